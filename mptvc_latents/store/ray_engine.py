"""The ``tokenize(..., engine="ray")`` engine: Ray Data with an actor pool that holds the model.

::

    driver: jobs (path, key, sha256, levels) -> ray.data.from_items, one block per clip
      -> map_batches(_TokenizerActor, batch_size=1, `workers` actors of 1 CPU each):
           __init__: a ClipTokenizer (store/worker.py): the model (one ray.put, shared), one torch
                     thread, the store opened writable with the model
           __call__: ClipTokenizer(job): read -> encode -> TokenStore.write_clip(key) -> row (key, frames, error)
      -> driver: the rows as they finish -> the same summary as the local engine

Actors write whole clips into the store themselves, through ``TokenStore.write_clip``, so the
complete-marker protocol, resume and "one writer per clip, never two in one shard" are those of
the local engine (``docs/token_store.md``). The store path must therefore be a filesystem that
every actor sees (one machine, or a shared mount on a cluster).

Ray is an optional dependency (``pip install "mptvc-latents[ray]"``); ``engine.py`` imports this
module only when asked for it.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
import ray
import ray.data

from mptvc_latents.store.worker import ClipTokenizer, Job, Result

if TYPE_CHECKING:
    from mptvc_latents.codec import MPTVC

log = logging.getLogger(__name__)


class _TokenizerActor:
    """One Ray Data actor: a :class:`ClipTokenizer` made once, then one clip per batch (batch_size=1)."""

    def __init__(self, model_ref: ray.ObjectRef, store_path: str) -> None:
        # One torch thread, as in the local worker processes: runs must compute the same floats.
        self.tokenizer = ClipTokenizer(ray.get(model_ref), store_path, threads=1)

    def __call__(self, batch: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        rows = [
            self.tokenizer(Job(str(path), str(key), str(sha), int(levels)))
            for path, key, sha, levels in zip(
                batch["path"], batch["key"], batch["sha256"], batch["levels"], strict=True
            )
        ]
        return {
            "key": np.array([row.key for row in rows], dtype=object),
            "frames": np.array([row.frames for row in rows], dtype=np.int64),
            "error": np.array([row.error or "" for row in rows], dtype=object),
        }


def _connect(workers: int) -> bool:
    """Use the running Ray, or the cluster at ``RAY_ADDRESS``, or start a local one with ``workers`` CPUs.

    Returns whether this call started Ray (and so must shut it down).
    """
    if ray.is_initialized():
        return False
    if os.environ.get("RAY_ADDRESS"):
        ray.init(address=os.environ["RAY_ADDRESS"], log_to_driver=False)
    else:
        ray.init(num_cpus=workers, include_dashboard=False, log_to_driver=False)
    return True


def run_ray(
    jobs: list[Job], model: MPTVC, store_path: Path, workers: int, progress: Callable[[int], object] | None = None
) -> Iterator[Result]:
    """A :class:`Result` per job as the actors finish them (order not kept). ``progress`` is not
    called: actors report whole clips, which the caller counts."""
    if not jobs:
        return
    started = _connect(workers)
    try:
        context = ray.data.DataContext.get_current()
        context.enable_progress_bars = False  # tokenize draws its own bar
        items = [job._asdict() for job in jobs]
        results = ray.data.from_items(items, override_num_blocks=len(items)).map_batches(
            _TokenizerActor,
            fn_constructor_args=(ray.put(model), str(store_path)),
            batch_size=1,
            concurrency=min(workers, len(items)),
            num_cpus=1,
            batch_format="numpy",
        )
        for row in results.iter_rows():
            yield Result(str(row["key"]), int(row["frames"]), str(row["error"]) or None)
    finally:
        if started:
            ray.shutdown()
