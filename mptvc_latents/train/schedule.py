"""The learning-rate schedule of every trainer here (codec, token prior, heads): linear warm-up, then
cosine decay to a floor.

::

    lr
    peak |      ____
         |    /      ``-.
         |  /             `.
         |/                 `-.__  min_lr
         +------|-------------------|--> step
           warmup                 total
"""

from __future__ import annotations

import math

__all__ = ["warmup_cosine"]


def warmup_cosine(step: int, lr: float, warmup: int, total: int, min_lr: float = 0.0) -> float:
    """The learning rate of 0-based ``step``: ``lr * (step + 1) / warmup`` during the ``warmup``
    steps, then a half cosine from ``lr`` down to ``min_lr`` at step ``total`` (and ``min_lr`` after).

    Returns a Python float: optimizer states hold it and must load with ``weights_only=True``.
    """
    if step < warmup:
        return float(lr * (step + 1) / warmup)
    progress = min(1.0, (step - warmup) / max(1, total - warmup))
    return float(min_lr + (lr - min_lr) * 0.5 * (1 + math.cos(math.pi * progress)))
