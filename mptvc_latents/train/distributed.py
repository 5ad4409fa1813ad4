"""Data-parallel training across processes with ``torch.distributed`` (one process per GPU or CPU socket).

``torchrun`` starts the processes and sets ``RANK``, ``WORLD_SIZE``, ``LOCAL_RANK`` and the
rendezvous variables; :func:`init_from_env` (called by the ``mptvc train`` entry point) joins
the process group with NCCL when CUDA is available and gloo otherwise. The trainer then wraps
the model in ``DistributedDataParallel``: every process draws its share of the same global
batch, gradients are averaged, and only rank 0 reads and writes the run folder (it sends the
weights and the optimizer state to the others when a run resumes).
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from typing import Any

import torch
import torch.distributed as dist

__all__ = ["World", "broadcast_object", "init_from_env", "mean_over_ranks"]


@dataclass(frozen=True)
class World:
    """This process's place among the training processes (one process: rank 0 of 1)."""

    rank: int = 0
    world_size: int = 1
    local_rank: int = 0

    @property
    def is_main(self) -> bool:
        return self.rank == 0

    @classmethod
    def current(cls) -> World:
        """From the initialised process group, else a single process."""
        if not (dist.is_available() and dist.is_initialized()):
            return cls()
        return cls(dist.get_rank(), dist.get_world_size(), int(os.environ.get("LOCAL_RANK", 0)))

    def device(self) -> torch.device:
        """The GPU of this process's local rank when CUDA is available, else the CPU."""
        if torch.cuda.is_available():
            return torch.device("cuda", self.local_rank % torch.cuda.device_count())
        return torch.device("cpu")


def init_from_env() -> World:
    """Join the process group that ``torchrun`` describes in the environment (``WORLD_SIZE`` > 1);
    a plain single-process start returns rank 0 of 1 and initialises nothing."""
    if int(os.environ.get("WORLD_SIZE", "1")) <= 1 or dist.is_initialized():
        return World.current()
    if torch.cuda.is_available():
        torch.cuda.set_device(int(os.environ.get("LOCAL_RANK", 0)) % torch.cuda.device_count())
        dist.init_process_group("nccl")
    else:
        dist.init_process_group("gloo")
    return World.current()


def broadcast_object(value: Any, world: World) -> Any:
    """Rank 0's ``value`` on every rank (pickled; tensors are sent as CPU tensors)."""
    if world.world_size == 1:
        return value
    box = [value if world.is_main else None]
    dist.broadcast_object_list(box, src=0)
    return box[0]


def mean_over_ranks(values: list[float], world: World, device: torch.device) -> list[float]:
    """The mean of each value over the ranks (for logging: every rank's share of the batch is equal)."""
    if world.world_size == 1:
        return values
    tensor = torch.tensor(values, dtype=torch.float64, device=device)
    dist.all_reduce(tensor)
    return (tensor / world.world_size).tolist()
