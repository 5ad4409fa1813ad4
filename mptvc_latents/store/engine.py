"""Bulk tokenization into a token store and back, on a local pool of processes.

::

    sources (files, folders, globs) -> plan: (path, key, sha256), finished clips skipped
      -> workers (store/worker.py; spawned, one model and one torch thread each):
           read a chunk -> encode it -> append it to clip `key` (resumes after the last chunk written)
      -> parent: progress (frames), errors, consolidated metadata, summary

Each clip is written by exactly one worker into its own subgroup, so no two writers ever touch
one shard. A file that fails is reported and skipped; the store stays valid. Videos are read,
encoded and written a chunk at a time, so memory does not grow with their length, and a run that
was killed resumes a long clip after its last written chunk.
"""

from __future__ import annotations

import logging
import multiprocessing
import time
from collections.abc import Callable, Iterable, Iterator, Sequence
from concurrent.futures import ProcessPoolExecutor, as_completed
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

from mptvc_latents.formats.token_store import MASK_VERSION, TokenStore, clip_key, file_sha256
from mptvc_latents.store.worker import (
    ClipTokenizer,
    Job,
    Result,
    run_in_process_worker,
    start_process_worker,
    target_attrs,
)
from mptvc_latents.video import VIDEO_SUFFIXES, FrameWriter, VideoReader, find_videos

if TYPE_CHECKING:
    from mptvc_latents.codec import MPTVC
    from mptvc_latents.ratecontrol import RateTarget

Progress = Callable[[int], object]

log = logging.getLogger(__name__)

__all__ = ["Source", "TokenizeSummary", "detokenize", "find_sources", "tokenize"]


@dataclass(frozen=True)
class Source:
    path: Path
    key: str


@dataclass
class TokenizeSummary:
    """What a run did; ``failed`` holds ``(source, one-line reason)`` per skipped bad input."""

    written: list[str] = field(default_factory=list)
    skipped: list[str] = field(default_factory=list)
    failed: list[tuple[str, str]] = field(default_factory=list)
    frames: int = 0
    seconds: float = 0.0

    @property
    def clips_per_s(self) -> float:
        return len(self.written) / self.seconds if self.seconds > 0 else 0.0

    @property
    def frames_per_s(self) -> float:
        return self.frames / self.seconds if self.seconds > 0 else 0.0

    def format(self) -> str:
        return (
            f"{len(self.written)} clips written ({self.frames} frames), {len(self.skipped)} already done, "
            f"{len(self.failed)} failed, in {self.seconds:.1f} s: {self.clips_per_s:.2f} clips/s, "
            f"{self.frames_per_s:.1f} frames/s"
        )


def find_sources(
    sources: Iterable[str | Path], *, skip_missing: bool = True
) -> tuple[list[Source], list[tuple[str, str]]]:
    """The videos of ``sources`` (files, folders searched recursively, globs: :func:`video.find_videos`)
    with their clip keys (a file found in a folder argument is named relative to that folder).

    Returns the sources and ``(argument, reason)`` for each argument that matched nothing.

    Raises:
        ValueError: when nothing is found, or (``skip_missing=False``) an argument matches nothing.
    """
    search = find_videos(sources, skip_missing=skip_missing)
    found = [Source(video.path.resolve(), clip_key(video.path, video.root)) for video in search.videos]
    return found, list(search.unmatched)


# --------------------------------------------------------------------------- the engines


def _run_local(
    jobs: list[Job], model: MPTVC, store_path: Path, workers: int, progress: Progress | None = None
) -> Iterator[Result]:
    """A :class:`Result` per job as they finish: in this process (``progress(frames)`` as chunks
    finish), or in ``workers`` spawned ones."""
    if workers <= 1:
        tokenizer = ClipTokenizer(model, store_path)
        for job in jobs:
            yield tokenizer(job, progress)
        return
    ctx = multiprocessing.get_context("spawn")  # fork would copy torch's thread pool state
    pool = ProcessPoolExecutor(workers, ctx, initializer=start_process_worker, initargs=(model, str(store_path), 1))
    try:
        for future in as_completed([pool.submit(run_in_process_worker, job) for job in jobs]):
            yield future.result()
    except BaseException:  # Ctrl-C, a dead worker: drop the queued clips instead of finishing them
        pool.shutdown(wait=True, cancel_futures=True)
        raise
    pool.shutdown(wait=True)


def _engine(name: str):
    """The job runner of engine ``name``; Ray is imported only when asked for."""
    if name == "local":
        return _run_local
    if name == "ray":
        try:
            from mptvc_latents.store.ray_engine import run_ray
        except ImportError as e:
            raise ValueError(
                f"engine='ray' needs Ray Data, which is not installed ({e}); "
                'install it with `pip install "mptvc-latents[ray]"` or use engine="local".'
            ) from e
        return run_ray
    raise ValueError(f"engine must be 'local' or 'ray', got {name!r}.")


# --------------------------------------------------------------------------- the two directions


def tokenize(
    sources: Sequence[str | Path],
    store_path: str | Path,
    model: MPTVC,
    workers: int = 1,
    levels: int | None = None,
    progress: bool = True,
    engine: str = "local",
    target: RateTarget | None = None,
) -> TokenizeSummary:
    """Tokenize videos into the store at ``store_path`` (created if absent, resumed if present).

    Args:
        sources: video files, folders (searched recursively) and glob patterns.
        workers: processes; 1 runs in this process (with its torch threads as they are). More
            are spawned, each with a copy of ``model`` and one torch thread, so a script that calls
            this needs the usual ``if __name__ == "__main__":`` guard.
        levels: how many levels to store (a prefix 0 .. levels-1; default every level).
        progress: a tqdm bar over the clips (True), none (False).
        engine: ``"local"`` (this process or ``workers`` spawned ones) or ``"ray"`` (Ray Data, an
            actor pool of ``workers`` actors, 1 CPU each, that hold the model and write the clips;
            ``store/ray_engine.py``). Ray joins the running Ray, else the cluster at ``RAY_ADDRESS``
            (the store must then be on a filesystem every node sees), else starts a local one with
            ``workers`` CPUs for this call. Needs the ``ray`` extra.
        target: a ``ratecontrol.RateTarget``: each clip sends the levels and token frames that meet
            it (planned per clip), and the store records per clip which tokens were sent (a mask,
            layout v3; ``TokenDataset`` and the datasets builder expose it). A clip tokenized for
            another target (or none) is tokenized again.

    A clip already complete with the same key, source sha256 and at least ``levels`` levels is
    skipped; an incomplete one (a crash) is rewritten. Bad inputs land in ``summary.failed``.

    Raises:
        StoreCheckpointError: when the store was written with another checkpoint.
        ValueError: for bad arguments or when no source matched anything.
    """
    if workers < 1:
        raise ValueError(f"workers must be 1 or more, got {workers}.")
    run = _engine(engine)
    if target is not None and levels is not None:
        raise ValueError("A rate target chooses the levels of every chunk itself; leave levels out.")
    if target is not None and engine != "local":
        raise ValueError(f"Tokenizing for a rate target runs on the local engine only, not {engine!r}.")
    levels = model.num_levels if levels is None else levels
    if not 1 <= levels <= model.num_levels:
        raise ValueError(f"levels must lie in 1..{model.num_levels} (a prefix of the codec's levels), got {levels}.")
    start = time.perf_counter()
    found, failed = find_sources(sources)
    store_path = Path(store_path)
    if store_path.exists():
        store = TokenStore.open(store_path, model, writable=True)
    else:
        store = TokenStore.create(store_path, model)
    if target is not None and store.version < MASK_VERSION:
        raise ValueError(
            f"The token store {str(store_path)!r} is layout v{store.version}, which cannot record which tokens a "
            f"rate-controlled clip sent; tokenize with a target into a new store."
        )
    summary = TokenizeSummary(failed=list(failed))
    for key in store.sweep(resumable={source.key for source in found}):
        log.info("removed the incomplete clip %s (an interrupted run); it is rewritten if among the sources", key)
    for arg, reason in failed:
        log.warning("skipped %s: %s", arg, reason)
    jobs = []
    for source in found:
        try:
            sha = file_sha256(source.path)
        except OSError as e:
            summary.failed.append((str(source.path), e.strerror or str(e)))
            continue
        done = store.clip_attrs(source.key)
        same_target = done is not None and (done.get("rate") or {}).get("target") == target_attrs(target)
        if done is not None and done["sha256"] == sha and done["levels"] >= levels and same_target:
            summary.skipped.append(source.key)
        else:
            jobs.append(Job(str(source.path), source.key, sha, levels, target))
    paths = {job.key: job.path for job in jobs}
    bar = _FrameBar("tokenize", sum(_frame_count(job.path) for job in jobs), len(jobs)) if progress else None
    refresh = _Consolidator(store)
    try:
        for key, frames, error in run(jobs, model, store_path, workers, None if bar is None else bar.chunk):
            refresh.maybe()
            if error is None:
                summary.written.append(key)
                summary.frames += frames
            else:
                summary.failed.append((paths[key], error))
                log.warning("skipped %s: %s", paths[key], error)
            if bar is not None:
                bar.clip(frames)
    finally:
        if bar is not None:
            bar.close()
        store.consolidate()
    summary.seconds = time.perf_counter() - start
    return summary


class _Consolidator:
    """Refresh the consolidated metadata now and then during a run, so readers see finished clips
    before it ends: every 30 s, or less often when consolidating itself takes long (big stores)."""

    def __init__(self, store: TokenStore) -> None:
        self.store, self.last, self.cost = store, time.monotonic(), 0.0

    def maybe(self) -> None:
        if time.monotonic() - self.last < max(30.0, 10 * self.cost):
            return
        start = time.monotonic()
        try:
            self.store.consolidate()
        except (OSError, ValueError, KeyError) as e:  # a worker deleted or created a group meanwhile
            log.debug("consolidation skipped this time: %s", e)
        self.last = time.monotonic()
        self.cost = self.last - start


def _frame_count(path: str | Path) -> int:
    """The frames a video declares (or its packets count), for a progress bar; 0 if unreadable."""
    try:
        return VideoReader(path).frame_count
    except (ValueError, OSError):
        return 0


class _FrameBar:
    """A tqdm bar in frames (with the estimated time left) over a run of clips: chunks as they
    finish where the engine reports them (in this process), else whole clips; clips in the postfix."""

    def __init__(self, desc: str, frames: int, clips: int) -> None:
        from tqdm import tqdm

        self.bar = tqdm(total=frames, desc=desc, unit="frame", disable=None, dynamic_ncols=True)
        self.clips, self.done, self.counted = clips, 0, 0

    def chunk(self, frames: int) -> None:
        self.bar.update(frames)
        self.counted += frames

    def clip(self, frames: int) -> None:
        """A clip of ``frames`` frames is done: whatever its chunks did not report yet."""
        self.bar.update(max(0, frames - self.counted))
        self.counted, self.done = 0, self.done + 1
        self.bar.set_postfix_str(f"{self.done}/{self.clips} clips")

    def close(self) -> None:
        self.bar.close()


def detokenize(
    store_path: str | Path,
    out_dir: str | Path,
    model: MPTVC,
    k_max: int | None = None,
    clips: Sequence[str] | None = None,
    suffix: str = ".mp4",
    progress: bool = True,
) -> list[Path]:
    """Decode clips of a store (default: every complete one) into ``out_dir/<key><suffix>``.

    The frames are ``model.decode(tokens, k_max)``, i.e. ``decode(encode(x), k_max)`` of the source;
    ``.npy`` keeps them exactly, ``.mp4`` (H.264) as closely as the video codec does. Each clip is
    read, decoded and written a chunk at a time, so memory does not grow with its length.

    Raises:
        StoreCheckpointError: when ``model`` did not write the store.
        ValueError: when ``out_dir`` is not a folder or a requested clip is absent or incomplete.
    """
    from mptvc_latents.files import atomic_output

    store = TokenStore.open(store_path, model)
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    keys = store.clips() if clips is None else list(clips)
    frames_of = {key: store.clip_attrs(key) for key in keys}
    absent = [key for key, meta in frames_of.items() if meta is None]
    if absent:
        raise ValueError(f"The token store {str(store_path)!r} has no complete clip named {absent[0]!r}.")
    if suffix.lower() not in (".npy", *VIDEO_SUFFIXES):
        raise ValueError(f"suffix must be .npy or a video suffix such as .mp4, got {suffix!r}.")
    total = sum(int(meta["frames"]) for meta in frames_of.values() if meta is not None)
    bar = _FrameBar("detokenize", total, len(keys)) if progress else None
    written = []
    try:
        for key in keys:
            tokens = store.read_tokens(key, k_max, lazy=True)  # zarr arrays: read a chunk at a time
            info = tokens.info
            with atomic_output(out_dir / f"{key}{suffix}") as tmp:
                with FrameWriter(tmp, info.fps, frames=info.frames) as writer:
                    for frames in model.decode_stream(tokens, progress=None if bar is None else bar.chunk):
                        writer.write(frames)
            written.append(out_dir / f"{key}{suffix}")
            if bar is not None:
                bar.clip(info.frames)
    finally:
        if bar is not None:
            bar.close()
    return written
