"""An exponential moving average of a model's parameters (Polyak averaging), kept beside training.

After every optimizer step each shadow parameter moves towards the live one::

    d_n = min(decay, (1 + n) / (10 + n))          # n: updates so far (a short warm-up, as in TF's EMA)
    ema  <- d_n * ema + (1 - d_n) * theta

so the shadow is a weighted mean of the last ~1 / (1 - decay) steps' weights. Val measured on this
codec depends on the learning rate more than on the recipe: weights taken mid-cosine are noisier
than the same run annealed to its floor (BENCHMARKS.md). An average over the recent steps removes
much of that noise without stopping the schedule, so a run can be exported and judged at any
step (``mptvc export RUN OUT --ema``). The shadow is fp32 whatever the parameters' dtype, lives on
the training process (rank 0 under torchrun: every rank's parameters are the same after the
step) and is saved next to the checkpoint as ``ema.safetensors``. Buffers (the fixed entropy tables)
are not averaged: they come from the live model.
"""

from __future__ import annotations

from pathlib import Path

import torch
from torch import nn

__all__ = ["EMA_FILE", "ParameterEMA", "load_ema_weights"]

#: The shadow weights in a checkpoint folder: ``{parameter name: fp32 tensor}`` plus ``__updates__``.
EMA_FILE = "ema.safetensors"
_UPDATES = "__updates__"


class ParameterEMA:
    """The moving average of ``model``'s parameters with ``decay`` in (0, 1), started from their values."""

    def __init__(self, model: nn.Module, decay: float) -> None:
        if not 0.0 < decay < 1.0:
            raise ValueError(f"The EMA decay must be between 0 and 1 (exclusive), got {decay!r}.")
        self.decay = float(decay)
        self.updates = 0
        self.shadow = {name: p.detach().float().clone() for name, p in model.named_parameters()}

    def rate(self) -> float:
        """The decay of the next update: ``min(decay, (1 + n) / (10 + n))``."""
        return min(self.decay, (1 + self.updates) / (10 + self.updates))

    @torch.no_grad()
    def update(self, model: nn.Module) -> None:
        """Move every shadow parameter a step ``1 - rate()`` towards the live one."""
        weight = 1.0 - self.rate()
        for name, p in model.named_parameters():
            self.shadow[name].lerp_(p.detach().float(), weight)
        self.updates += 1

    def save(self, folder: str | Path) -> None:
        from safetensors.torch import save_file

        tensors = {name: t.detach().cpu().contiguous() for name, t in self.shadow.items()}
        tensors[_UPDATES] = torch.tensor([self.updates], dtype=torch.int64)
        save_file(tensors, str(Path(folder) / EMA_FILE))

    def load(self, folder: str | Path) -> None:
        """Take the shadow and the update count saved in ``folder`` (by :meth:`save`)."""
        tensors = _read(Path(folder), self.shadow)
        self.updates = int(tensors.pop(_UPDATES)[0])
        self.shadow = {name: t.float().to(self.shadow[name].device) for name, t in tensors.items()}


def _read(folder: Path, like: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """The tensors of ``folder/ema.safetensors``, checked against ``like``'s names and shapes."""
    from safetensors.torch import load_file

    path = folder / EMA_FILE
    if not path.is_file():
        raise ValueError(f"{str(folder)!r} has no {EMA_FILE}: the run was not trained with an EMA (--ema DECAY).")
    tensors = load_file(str(path))
    if _UPDATES not in tensors:
        raise ValueError(f"{str(path)!r} is not an EMA file of `mptvc train`: it has no update count.")
    names = set(tensors) - {_UPDATES}
    if names != set(like):
        missing, extra = sorted(set(like) - names), sorted(names - set(like))
        raise ValueError(
            f"{str(path)!r} does not match the model's parameters (missing {missing[:3]}, unexpected {extra[:3]})."
        )
    for name, t in like.items():
        if tensors[name].shape != t.shape:
            raise ValueError(
                f"{str(path)!r} holds {name} of shape {tuple(tensors[name].shape)}, the model {tuple(t.shape)}."
            )
    return tensors


def load_ema_weights(model: nn.Module, folder: str | Path) -> int:
    """Copy the EMA shadow saved in ``folder`` into ``model``'s parameters (in their dtype); returns
    the number of updates it averaged."""
    params = dict(model.named_parameters())
    tensors = _read(Path(folder), {name: p.detach() for name, p in params.items()})
    updates = int(tensors.pop(_UPDATES)[0])
    with torch.no_grad():
        for name, p in params.items():
            p.copy_(tensors[name].to(p.dtype))
    return updates
