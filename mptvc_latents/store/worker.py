"""The work of one clip, shared by both ``tokenize`` engines: read -> encode -> write into the store.

::

    Job(path, key, sha256, levels) -> ClipTokenizer: VideoReader.chunks -> model.encode_stream
      -> per chunk: ClipWriter.append (TokenStore.begin_clip(key), resumed after its last written chunk)
      -> ClipWriter.finish (attributes, timestamps, complete) -> Result(key, frames, error or None)

With a rate target (``Job.target``) the clip is planned whole (``ratecontrol.encode_to_target``, a
pass per search step over the source), then written at once with its mask of sent tokens.

``engine.py`` runs one :class:`ClipTokenizer` in this process, or one in each spawned worker process
(:func:`start_process_worker` is the pool's initializer, :func:`run_in_process_worker` its task);
``ray_engine.py`` holds one in each Ray Data actor. Each clip is written by exactly one worker.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, NamedTuple

from mptvc_latents.formats.token_store import ClipMeta, TokenStore
from mptvc_latents.runtime import configure_threads
from mptvc_latents.video import VideoReader

if TYPE_CHECKING:
    from mptvc_latents.codec import MPTVC
    from mptvc_latents.ratecontrol import RateTarget

__all__ = ["ClipTokenizer", "Job", "Result", "run_in_process_worker", "start_process_worker"]


class Job(NamedTuple):
    """One clip to tokenize: its source file, clip key, the file's sha256, how many levels to store
    and the rate target (None: every token of every level)."""

    path: str
    key: str
    sha256: str
    levels: int
    target: RateTarget | None = None


def target_attrs(target: RateTarget | None) -> dict[str, float] | None:
    """How a clip's attributes name its rate target (``{"bpp": 0.05}``), None without one."""
    return None if target is None else {target.kind: target.value}


class Result(NamedTuple):
    """What became of a job: frames written, or the one-line reason the source was skipped."""

    key: str
    frames: int
    error: str | None


class ClipTokenizer:
    """A worker's model and writable store; calling it tokenizes one clip.

    Args:
        threads: torch threads of the worker's process; None leaves them as they are (the in-process
            engine). Worker processes and actors use 1, so a clip's tokens are the same floats whatever
            the number of workers.
    """

    def __init__(self, model: MPTVC, store_path: str | Path, threads: int | None = None) -> None:
        if threads is not None:  # a worker process of its own: its thread policy is this worker's to set
            configure_threads(threads)
        self.model = model
        # Opened with the model: a worker never writes into a store of another checkpoint.
        self.store = TokenStore.open(store_path, model, writable=True)

    def __call__(self, job: Job, progress: Callable[[int], object] | None = None) -> Result:
        """Read, encode and write one clip a chunk at a time (memory flat in its length); a clip that
        an interrupted run left part-written resumes after its last written chunk. A source that
        cannot be read or encoded is reported, not raised, and its part-written clip deleted.
        ``progress(frames)`` is called as chunks finish (also for the chunks a resume skips)."""
        if job.target is not None:
            return self._rate_controlled(job)
        try:
            reader = VideoReader(job.path)
            pt = self.model.config.patch_t
            length = -(-reader.frame_count // pt) if reader.frame_count else None  # token frames, for the shards
            writer = self.store.begin_clip(job.key, job.path, job.sha256, job.levels, length, resume=True)
            stream = self.model.encode_stream(reader.chunks(self.model.config.chunk_frames), reader.fps)
            stream.skip(writer.chunks_written)
            for chunk in stream:
                if chunk.index >= writer.chunks_written:
                    writer.append(chunk.symbols)
                if progress is not None:
                    progress(chunk.frames)
            info = stream.info
        except Exception as e:  # noqa: BLE001 - whatever a bad file makes the decoder or codec raise, skip it
            self.store.discard(job.key)
            return Result(job.key, 0, " ".join(str(e).split()) or type(e).__name__)
        writer.finish(ClipMeta.of(info, job.path, job.sha256, job.levels), reader.timestamps)
        return Result(job.key, int(info.frames), None)

    def _rate_controlled(self, job: Job) -> Result:
        """Tokenize one clip for ``job.target``: plan it whole, then write it with its mask."""
        from mptvc_latents.ratecontrol import encode_to_target
        from mptvc_latents.streaming import DEFAULT_LOOKAHEAD

        assert job.target is not None
        readers: list[VideoReader] = []

        def frames():  # each encoder pass reads the source again, a chunk at a time
            readers.append(VideoReader(job.path))
            return readers[-1].chunks(self.model.config.chunk_frames)

        try:
            fps = VideoReader(job.path).fps
            tokens, plan = encode_to_target(self.model, frames, fps, job.target, lookahead=DEFAULT_LOOKAHEAD)
            assert tokens.mask is not None
            writer = self.store.begin_clip(job.key, job.path, job.sha256, job.levels, len(tokens.symbols[0]))
            writer.append(tokens.symbols[: job.levels])
            rate = {"target": target_attrs(job.target), "levels_per_chunk": [c.levels for c in plan.chunks]}
            meta = ClipMeta.of(tokens.info, job.path, job.sha256, job.levels)
            writer.finish(meta, readers[-1].timestamps, mask=tokens.mask[:, : job.levels], rate=rate)
        except Exception as e:  # noqa: BLE001 - as in __call__: a bad source is reported and skipped
            self.store.discard(job.key)
            return Result(job.key, 0, " ".join(str(e).split()) or type(e).__name__)
        return Result(job.key, int(tokens.info.frames), None)


# A process pool hands state from its initializer to its tasks only through the worker process's
# module globals: this one holds the worker's tokenizer, and is set only in spawned worker processes.
_process_worker: ClipTokenizer | None = None


def start_process_worker(model: MPTVC, store_path: str, threads: int) -> None:
    """Pool initializer: make this worker process's :class:`ClipTokenizer`."""
    global _process_worker
    _process_worker = ClipTokenizer(model, store_path, threads)


def run_in_process_worker(job: Job) -> Result:
    """Pool task: one clip with the tokenizer :func:`start_process_worker` made in this process."""
    if _process_worker is None:
        raise RuntimeError("run_in_process_worker runs only in a pool started with start_process_worker.")
    return _process_worker(job)
