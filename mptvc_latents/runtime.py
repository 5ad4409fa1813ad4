"""Process-wide thread settings, applied by entry points only (``mptvc``, the demos, benchmarks).

Library modules never change them: importing the package leaves the process as it was.
"""

from __future__ import annotations

import logging
import os
import sys

log = logging.getLogger(__name__)

__all__ = ["WAIT_POLICY", "configure_threads"]

#: Idle OpenMP threads sleep instead of spinning: on a shared 2-core machine spinning workers
#: stalled training steps at 9-16 s instead of 0.3-0.6 s, and small torch calls 10-50x.
WAIT_POLICY = "PASSIVE"


def configure_threads(threads: int | None = None) -> None:
    """Set this process's thread policy: ``OMP_WAIT_POLICY`` (unless the environment already sets
    it) and, when ``threads`` is given, the number of torch intra-op threads.

    Call it first in an entry point, before anything imports torch: OpenMP reads its environment
    once, when torch loads it. Child processes inherit the policy through the environment.

    Raises:
        ValueError: when ``threads`` is not a positive integer or None.
    """
    if threads is not None and (isinstance(threads, bool) or not isinstance(threads, int) or threads < 1):
        raise ValueError(f"threads must be a positive number of torch threads (or None to keep them), got {threads!r}.")
    if "OMP_WAIT_POLICY" not in os.environ:
        os.environ["OMP_WAIT_POLICY"] = WAIT_POLICY
        if "torch" in sys.modules:
            log.debug(
                "OMP_WAIT_POLICY=%s was set after torch loaded OpenMP; it applies to child processes", WAIT_POLICY
            )
    if threads is not None:
        import torch

        torch.set_num_threads(threads)
