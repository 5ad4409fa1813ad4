"""Long videos a chunk at a time: frames in, the codec's chunks (with settled scene ids) out.

The codec codes chunks of ``chunk_frames`` frames independently, so a video never needs to be
in memory whole. :class:`ChunkedVideo` takes frames as they are decoded (any iterable of uint8
arrays ``(n, H, W, 3)``, e.g. ``VideoReader.chunks``) and hands out :class:`FrameChunk` s::

    frame batches -> buffer (uint8) -> SceneCutStream (scenes.py): ids settle `window` frames behind
                  -> chunk c = frames [32c, 32c + 32) once their ids are final, the last one with
                     the end padding (pad_t frames repeating the last) -> MPTVC.encode_stream
    after the last chunk: ChunkedVideo.info -> VideoInfo (frames, size, padding, scene ids)

The buffer holds a chunk plus the lookahead scene detection needs (``window`` frames, more
while a group of candidate cuts is undecided), at most ``lookahead`` frames beyond the chunk
(:data:`DEFAULT_LOOKAHEAD`, 96: three chunks of the shipped codec): past that the
undecided group is decided with what is known (:meth:`SceneCutStream.force`), which is the only
case where the ids, and so the bytes, can differ from coding the whole video at once.

:class:`CodedChunk` and :class:`CodedStream` carry what ``MPTVC.encode_stream`` makes of each
chunk. Nothing here imports torch.
"""

from __future__ import annotations

import logging
from collections import deque
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass

import numpy as np

from mptvc_latents.config import CodecConfig, SceneCutConfig
from mptvc_latents.scenes import scene_cut_stream
from mptvc_latents.types import Padding, VideoInfo

log = logging.getLogger(__name__)

__all__ = ["DEFAULT_LOOKAHEAD", "ChunkedVideo", "CodedChunk", "CodedStream", "FrameChunk"]

#: Frames a stream may hold beyond the chunk it codes, for shot-cut detection.
DEFAULT_LOOKAHEAD = 96


@dataclass(frozen=True)
class FrameChunk:
    """One codec chunk of a video: ``frames`` uint8 ``(n, H, W, 3)`` (unpadded) starting at frame
    ``start``; ``pad_t`` frames (the last chunk's end padding) repeat its last frame; ``scene_ids``
    ``(n + pad_t,)`` int32."""

    index: int
    start: int
    frames: np.ndarray
    pad_t: int
    scene_ids: np.ndarray


@dataclass(frozen=True)
class CodedChunk:
    """What the encoder made of chunk ``index`` (frames ``start .. start + frames - 1``): the symbols
    of every level, uint8 ``(T', H', W', C_k)``, and with entropy coding the ``(z, y)`` segments."""

    index: int
    start: int
    frames: int
    symbols: list[np.ndarray]
    segments: list[tuple[bytes, bytes]] | None


class ChunkedVideo:
    """Frame batches cut into the codec's chunks, each with final scene ids (see the module docstring).

    Args:
        frames: uint8 arrays ``(n, H, W, 3)`` (or single frames ``(H, W, 3)``), all of one size.
        config: the codec's config (chunk length, padding multiples, shot-cut detector).
        fps: the frame rate recorded in :attr:`info`.
        lookahead: most frames held beyond the chunk being cut (at least the detector's ``window``
            + 1); None: no bound, for frames already in memory (the ids are then always those of
            whole-video detection).

    Iterate it once; :attr:`info` is known after the last chunk.
    """

    def __init__(
        self,
        frames: Iterable[np.ndarray],
        config: CodecConfig,
        fps: float,
        lookahead: int | None = DEFAULT_LOOKAHEAD,
        scenes: SceneCutConfig | None = None,
    ) -> None:
        self.config, self.fps = config, float(fps)
        self.scenes = scene_cut_stream(scenes, config.causal)  # the causal codec's decides without lookahead
        least = self.scenes.config.window + 1
        if lookahead is not None and lookahead < least:
            raise ValueError(
                f"A lookahead of {lookahead} frames is too short: the shot-cut detector's window of "
                f"{self.scenes.config.window} frames needs at least {least}."
            )
        self.lookahead = lookahead
        self._source = iter(frames)
        self._buffer: deque[np.ndarray] = deque()
        self._buffered = 0
        self._size: tuple[int, int] | None = None
        self._info: VideoInfo | None = None
        self.forced: list[int] = []  # candidate cuts decided with a bounded lookahead

    @property
    def padding(self) -> Padding:
        """The spatial end padding (known from the first frame on); ``t`` is the last chunk's."""
        if self._size is None:
            raise ValueError("The padding is known once the first frame has arrived.")
        m = self.config.spatial_multiple
        return Padding(h=-self._size[0] % m, w=-self._size[1] % m)

    @property
    def info(self) -> VideoInfo:
        """The video's ``VideoInfo``, once every chunk has been handed out."""
        if self._info is None:
            raise ValueError("The video's info is known only after its last chunk.")
        return self._info

    def _pull(self) -> bool:
        """Read the next batch into the buffer and the shot-cut detector; False at the end."""
        batch = next(self._source, None)
        if batch is None:
            return False
        batch = np.asarray(batch)
        if batch.ndim == 3:
            batch = batch[None]
        if batch.dtype != np.uint8 or batch.ndim != 4 or batch.shape[-1] != 3:
            raise ValueError(f"Video frames must be uint8 of shape (n, H, W, 3), got {batch.dtype} {batch.shape}.")
        if batch.shape[0] == 0 or min(batch.shape[1:3]) == 0:
            return True  # nothing in it
        if self._size is None:
            self._size = batch.shape[1:3]
        if batch.shape[1:3] != self._size:
            raise ValueError(
                f"Frame {self.scenes.frames} is {batch.shape[2]}x{batch.shape[1]}, but the video started at "
                f"{self._size[1]}x{self._size[0]}; every frame of a video must have one size (VideoReader rescales)."
            )
        self.scenes.push(batch)
        self._buffer.append(batch)
        self._buffered += batch.shape[0]
        return True

    def _take(self, n: int) -> np.ndarray:
        """The first ``n`` buffered frames ``(n, H, W, 3)`` (a view when they lie in one batch)."""
        pieces, needed = [], n
        while needed:
            head = self._buffer[0]
            if head.shape[0] <= needed:
                pieces.append(self._buffer.popleft())
                needed -= head.shape[0]
            else:
                pieces.append(head[:needed])
                self._buffer[0] = head[needed:]
                needed = 0
        self._buffered -= n
        return pieces[0] if len(pieces) == 1 else np.concatenate(pieces)

    def __iter__(self) -> Iterator[FrameChunk]:
        step, start, index = self.config.chunk_frames, 0, 0
        while True:
            end = start + step
            while not self.scenes.finished and self.scenes.settled < end:
                if self.lookahead is not None and self.scenes.frames - end >= self.lookahead:
                    self.forced.extend(self.scenes.force())
                    if self.scenes.settled >= end:
                        break
                if not self._pull():
                    self.scenes.finish()
            if self._buffered == 0:
                break
            frames = self._take(min(step, self._buffered))
            last = self.scenes.finished and self._buffered == 0
            pad_t = -(start + frames.shape[0]) % self.config.temporal_multiple if last else 0
            ids = self.scenes.scene_ids(start, start + frames.shape[0])
            ids = np.concatenate([ids, np.full(pad_t, ids[-1], np.int32)])
            yield FrameChunk(index, start, frames, pad_t, ids)
            start, index = start + frames.shape[0], index + 1
        if start == 0:
            raise ValueError("The video is empty: it has no frames.")
        t = self.scenes.frames
        pad = self.padding
        pad = Padding(t=-t % self.config.temporal_multiple, h=pad.h, w=pad.w)
        ids = self.scenes.scene_ids(0, t)
        ids = np.concatenate([ids, np.full(pad.t, ids[-1], np.int32)])
        assert self._size is not None
        self._info = VideoInfo(t, self._size[0], self._size[1], self.fps, pad, ids)


class CodedStream(Iterator[CodedChunk]):
    """The :class:`CodedChunk` s of a video as they are coded; :attr:`info` after the last one."""

    def __init__(self, chunks: ChunkedVideo, code: Callable[[FrameChunk], CodedChunk]) -> None:
        self.chunks, self._code, self._iter = chunks, code, iter(chunks)
        self._skip = 0

    def skip(self, chunks: int) -> None:
        """Cut the first ``chunks`` chunks but do not code them: they come out without symbols. Their
        frames are still read, so the scene ids of the chunks after them are right; this is how a
        token store resumes a clip mid-way. Symbol streams only: an entropy coder's context, which
        carries from chunk to chunk, would miss the skipped ones."""
        self._skip = chunks

    def __next__(self) -> CodedChunk:
        chunk = next(self._iter)
        if chunk.index < self._skip:
            return CodedChunk(chunk.index, chunk.start, len(chunk.frames), [], None)
        return self._code(chunk)

    @property
    def info(self) -> VideoInfo:
        return self.chunks.info
