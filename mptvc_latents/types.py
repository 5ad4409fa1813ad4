"""The data a codec, a container and a store exchange, free of torch.

- :class:`Padding`: frames, rows and columns appended at the end of T, H and W.
- :class:`VideoInfo`: what a decoder needs besides the tokens (geometry, fps, padding, shots).
- :class:`Tokens`: the FSQ symbols of every level (``MPTVC.encode``, token stores).
- :class:`Compressed`: the entropy-coded segments of every level and chunk (``MPTVC.compress``,
  the ``.mptvc`` container); with rate control, its :class:`RatePlan` (levels and token frames
  sent per chunk, the encoder-measured distortion of every prefix; ``ratecontrol.py``).
- :class:`SceneRun` and :func:`scene_runs` / :func:`scene_ids_from_runs`: the one run-length
  code of per-frame scene ids, ``(id, length)`` pairs, used by the container and the store.

Arrays are numpy; nothing here imports torch, so the container and the store layout stay light.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from typing import NamedTuple

import numpy as np

__all__ = [
    "ChunkRate",
    "Compressed",
    "Padding",
    "RatePlan",
    "SceneRun",
    "Tokens",
    "VideoInfo",
    "scene_ids_from_runs",
    "scene_runs",
]


@dataclass(frozen=True)
class Padding:
    """Frames / rows / columns appended at the end of T, H and W."""

    t: int = 0
    h: int = 0
    w: int = 0

    def __post_init__(self) -> None:
        for name in ("t", "h", "w"):
            value = getattr(self, name)
            if not isinstance(value, int) or isinstance(value, bool) or value < 0:
                raise ValueError(f"Padding.{name} must be a non-negative integer, got {value!r}.")


class SceneRun(NamedTuple):
    """``length`` consecutive frames of scene ``id``."""

    id: int
    length: int


def scene_runs(scene_ids: np.ndarray | Sequence[int]) -> list[SceneRun]:
    """Run-length code per-frame scene ids: ids change only at shot cuts, so runs are few.

    Raises:
        ValueError: for an empty or non-1-D array, or ids outside signed 32 bits.
    """
    ids = np.asarray(scene_ids)
    if ids.ndim != 1 or ids.size == 0:
        raise ValueError(f"Scene ids must be a non-empty 1-D array, one per frame, got shape {ids.shape}.")
    if not np.issubdtype(ids.dtype, np.integer):
        raise ValueError(f"Scene ids must be integers, got dtype {ids.dtype}.")
    ids = ids.astype(np.int64)
    if ids.min() < -(2**31) or ids.max() >= 2**31:
        raise ValueError("Scene ids must fit in 32-bit signed integers.")
    starts = np.flatnonzero(np.r_[True, ids[1:] != ids[:-1]])
    lengths = np.diff(np.r_[starts, len(ids)])
    return [SceneRun(int(ids[s]), int(n)) for s, n in zip(starts, lengths, strict=True)]


def scene_ids_from_runs(runs: Iterable[tuple[int, int]], frames: int) -> np.ndarray:
    """The inverse of :func:`scene_runs`: int32 ``(frames,)``.

    Raises:
        ValueError: when a run is empty or the runs do not cover exactly ``frames`` frames.
    """
    parsed = [SceneRun(int(i), int(n)) for i, n in runs]
    if not parsed or any(r.length <= 0 for r in parsed):
        raise ValueError(f"Scene runs must be non-empty with positive lengths, got {parsed[:4]}.")
    total = sum(r.length for r in parsed)
    if total != frames:
        raise ValueError(f"The scene runs cover {total} frames, but the video has {frames}.")
    ids = np.array([r.id for r in parsed], dtype=np.int64)
    if ids.min() < -(2**31) or ids.max() >= 2**31:
        raise ValueError("Scene ids must fit in 32-bit signed integers.")
    return np.repeat(ids.astype(np.int32), [r.length for r in parsed])


@dataclass(frozen=True, eq=False)
class VideoInfo:
    """What a decoder needs besides the tokens: the source geometry and the shots."""

    frames: int
    height: int
    width: int
    fps: float
    padding: Padding  # end padding added in (t, h, w) before chunking
    scene_ids: np.ndarray = field(repr=False)  # (frames + padding.t,) int32, per padded frame

    @property
    def padded_shape(self) -> tuple[int, int, int]:
        return self.frames + self.padding.t, self.height + self.padding.h, self.width + self.padding.w


@dataclass(frozen=True)
class ChunkRate:
    """What rate control kept of one chunk (``ratecontrol.py``, container v4).

    ``levels``: levels 0 .. levels-1 are coded, the others are not sent. ``skipped[k]``: bit t set
    when token frame t of level k is not sent (the decoder repeats frame t-1 there; level 0 and
    frame 0 are always sent). ``sse[j]``: the encoder-measured sum of squared errors of the chunk's
    uint8 RGB frames (padding cropped) decoded from levels 0 .. min(j, levels-1), one per level j.
    """

    levels: int
    skipped: tuple[int, ...]
    sse: tuple[float, ...]

    def sent(self, k: int, frames: int) -> np.ndarray:
        """bool ``(frames,)``: which token frames of level ``k`` are sent (all False above ``levels``)."""
        if k >= self.levels:
            return np.zeros(frames, bool)
        return (self.skipped[k] >> np.arange(frames)) & 1 == 0


@dataclass(frozen=True)
class RatePlan:
    """A rate-controlled video: one :class:`ChunkRate` per chunk and the target it was coded for
    (``target_kind`` "bpp" or "psnr", ``target`` its value)."""

    chunks: tuple[ChunkRate, ...]
    target_kind: str
    target: float

    def levels(self, c: int, available: int) -> int:
        """Levels decoded in chunk ``c`` when ``available`` levels are asked for (a prefix, ``k_max``)."""
        return min(available, self.chunks[c].levels)

    def mask(self, frames_per_chunk: Sequence[int], num_levels: int) -> np.ndarray:
        """uint8 ``(T', K)``: 1 where level k of token frame t holds sent tokens."""
        rows = [
            np.stack([chunk.sent(k, n) for k in range(num_levels)], axis=1)
            for chunk, n in zip(self.chunks, frames_per_chunk, strict=True)
        ]
        return np.concatenate(rows).astype(np.uint8)


@dataclass
class Tokens:
    """FSQ symbols of every level: ``symbols[k]`` is uint8 ``(T', H', W', C_k)`` over all chunks.

    ``mask`` (rate-controlled tokens): uint8 ``(T', K)``, 1 where level k of token frame t was sent;
    a level not sent in a chunk holds zeros and is not decoded there, a skipped token frame holds
    the frame before it (what the decoder of the ``.mptvc`` file fills in). ``None``: all sent.
    """

    symbols: list[np.ndarray]
    info: VideoInfo
    mask: np.ndarray | None = None

    def chunk_levels(self, grid: slice, available: int) -> int:
        """Levels to decode in the chunk of token frames ``grid``: ``available``, fewer where the
        mask says a level was not sent in it (a level is sent in a chunk iff its first frame is)."""
        if self.mask is None:
            return available
        first = np.asarray(self.mask[grid.start])  # (K,)
        return min(available, int(first.argmin()) if not first.all() else len(first))


@dataclass
class Compressed:
    """Entropy-coded segments: ``segments[k][c] = (z_bytes, y_bytes)`` for level k, chunk c."""

    segments: list[list[tuple[bytes, bytes]]]
    info: VideoInfo
    # Chunks between restarts of the context entropy model's temporal context (container v3);
    # None: every level coded by its scale hyperprior alone (container v2).
    intra_period: int | None = None
    # Rate control (container v4): levels and token frames sent per chunk; None: everything sent.
    rate: RatePlan | None = None

    def level_bytes(self) -> list[int]:
        return [sum(len(z) + len(y) for z, y in level) for level in self.segments]

    def chunk_levels(self, c: int, available: int) -> int:
        """Levels to decode in chunk ``c`` when ``available`` are asked for (fewer where rate control
        did not send them)."""
        return available if self.rate is None else self.rate.levels(c, available)
