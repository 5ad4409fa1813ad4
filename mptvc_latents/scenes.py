"""Hard shot-cut detection from colour histograms with an adaptive threshold (pure numpy).

The scene ids feed the scene-aware RoPE phase jump (``layers.rope3d.temporal_positions``).
A cheap, classic detector in the spirit of histogram-based shot-boundary detection (Zhang,
Kankanhalli & Smoliar 1993, "Automatic partitioning of full-motion video") with the local
adaptive threshold of later work::

    frames (T, H, W, 3) uint8
      -> stride down to ~analysis_size on the long side
      -> per frame: Y, U, V histograms (bins each) and a block-mean luma thumbnail
      -> d_t = max(TV distance of the 3 histograms, mean |thumbnail difference| / 255)  in [0, 1]
      -> cut at t  if  d_t > threshold * median(d in t +- window, excluding t)  and  d_t > min_distance
      -> greedy by strength: keep cuts at least min_scene_len frames apart
      -> scene ids: cumulative count of cuts

:class:`SceneCutStream` runs this on a video that arrives a few frames at a time (chunked
encoding of long videos) and gives the same ids; :func:`detect_scene_cuts` is it fed at once.

Histograms ignore motion but miss cuts between shots with similar colours; the thumbnail term
catches those (taking the max keeps either signal at full strength), and the ratio to the local
median discounts fast motion and camera pans.
"""

from __future__ import annotations

import logging

import numpy as np

from mptvc_latents.config import SceneCutConfig

logger = logging.getLogger(__name__)

_THUMB_BLOCKS = 16


def _analysis_frames(frames: np.ndarray, size: int) -> np.ndarray:
    """Stride ``(T, H, W, 3)`` down so the long side is about ``size``; returns float32."""
    stride = max(1, int(round(max(frames.shape[1:3]) / size)))
    return frames[:, ::stride, ::stride].astype(np.float32)  # (T, H/s, W/s, 3)


def _yuv(rgb: np.ndarray) -> np.ndarray:
    """BT.601 full-range RGB -> YUV in [0, 255], ``(T, h, w, 3)``."""
    y = rgb @ np.array([0.299, 0.587, 0.114], dtype=np.float32)
    u = 0.564 * (rgb[..., 2] - y) + 128.0
    v = 0.713 * (rgb[..., 0] - y) + 128.0
    return np.clip(np.stack([y, u, v], axis=-1), 0.0, 255.0)


def _histograms(yuv: np.ndarray, bins: int) -> np.ndarray:
    """Normalised per-channel histograms ``(T, 3, bins)``."""
    frames = yuv.shape[0]
    quantized = np.minimum((yuv * (bins / 256.0)).astype(np.int64), bins - 1)  # (T, h, w, 3)
    quantized = quantized.reshape(frames, -1, 3).transpose(0, 2, 1)  # (T, 3, h*w)
    offsets = (np.arange(frames * 3).reshape(frames, 3, 1)) * bins
    counts = np.bincount((quantized + offsets).ravel(), minlength=frames * 3 * bins)
    return counts.reshape(frames, 3, bins) / quantized.shape[-1]


def _thumbnails(luma: np.ndarray) -> np.ndarray:
    """Block means of ``(T, h, w)`` luma on a grid about ``_THUMB_BLOCKS`` blocks wide."""
    frames, h, w = luma.shape
    block = max(1, min(h, w, max(h, w) // _THUMB_BLOCKS))
    hb, wb = h // block, w // block
    cropped = luma[:, : hb * block, : wb * block]
    return cropped.reshape(frames, hb, block, wb, block).mean(axis=(2, 4))  # (T, hb, block, wb, block) -> (T, hb, wb)


def _features(frame: np.ndarray, config: SceneCutConfig) -> tuple[np.ndarray, np.ndarray]:
    """Histograms ``(1, 3, bins)`` and luma thumbnail ``(1, hb, wb)`` of one frame ``(H, W, 3)``.

    Always one frame at a time, so a frame's features (and so the scene ids) do not depend on how
    many frames a caller hands over at once.
    """
    yuv = _yuv(_analysis_frames(frame[None], config.analysis_size))  # (1, h, w, 3)
    return _histograms(yuv, config.bins), _thumbnails(yuv[..., 0])


def _distance(previous: tuple[np.ndarray, np.ndarray], current: tuple[np.ndarray, np.ndarray]) -> float:
    """``max(TV distance of the histograms, mean |thumbnail difference| / 255)`` of two frames."""
    hist = np.concatenate([previous[0], current[0]])  # (2, 3, bins)
    thumbs = np.concatenate([previous[1], current[1]])  # (2, hb, wb)
    hist_distance = 0.5 * np.abs(np.diff(hist, axis=0)).sum(axis=-1).mean(axis=-1)  # (1,)
    thumb_distance = np.abs(np.diff(thumbs, axis=0)).mean(axis=(1, 2)) / 255.0  # (1,)
    return float(np.maximum(hist_distance, thumb_distance)[0])


def frame_distances(frames: np.ndarray, config: SceneCutConfig) -> np.ndarray:
    """Distance ``d (T,)`` in [0, 1] between each frame and the previous one; ``d[0] = 0``."""
    _check_frames(frames)
    distances, previous = [], None
    for frame in frames:
        current = _features(frame, config)
        distances.append(0.0 if previous is None else _distance(previous, current))
        previous = current
    return np.asarray(distances)


def _local_median(distances: np.ndarray, t: int, window: int) -> float:
    """Median of ``distances[1:]`` within ``window`` frames of frame ``t``, excluding ``t``; 0 if none.

    ``distances`` holds every frame up to ``t + window`` (or every frame of the video, when it
    ends sooner): frames beyond it are not part of the video.
    """
    lo, hi = max(1, t - window), min(len(distances), t + window + 1)  # d[0] is a placeholder, not measured
    neighbours = np.concatenate([distances[lo:t], distances[max(lo, t + 1) : hi]])
    return float(np.median(neighbours)) if neighbours.size else 0.0


class SceneCutStream:
    """Shot-cut detection over a video handed over a few frames at a time, equal to whole-video detection.

    ``push(frames)`` as frames arrive, ``finish()`` after the last; the scene ids of frames
    ``0 .. settled - 1`` are final (``scene_ids(start, stop)``). Why the ids equal those of
    :func:`detect_scene_cuts` on the whole video, which is this class fed at once:

    - a frame's distance needs only the frame before it, and whether it is a *candidate* only the
      distances ``window`` frames on either side: known once ``window`` more frames have arrived;
    - the greedy pass (strongest candidate first, none closer than ``min_scene_len`` to an accepted
      one) only ever compares candidates closer than ``min_scene_len``, so it decides each *group*
      of candidates (chained by gaps below ``min_scene_len``) on its own, in the same order as the
      whole video would. A group is decided once ``min_scene_len`` frames after its last candidate
      are known not to be candidates.

    So ids settle ``window`` frames behind the input, plus the length of an undecided group.
    Only when a caller bounds its lookahead and calls :meth:`force` (a group still growing, i.e.
    candidate cuts each fewer than ``min_scene_len`` frames apart over a long stretch, as in
    strobe light) can the ids differ from whole-video detection; ``force`` returns which frames.
    """

    def __init__(self, config: SceneCutConfig | None = None) -> None:
        self.config = SceneCutConfig() if config is None else config
        self._distances: list[float] = []
        self._previous: tuple[np.ndarray, np.ndarray] | None = None
        self._known = 0  # frames whose candidacy is decided
        self._group: list[int] = []  # candidates of the undecided group, ascending
        self._cuts: list[int] = []  # accepted cuts, final
        self.finished = False

    @property
    def frames(self) -> int:
        """Frames pushed so far."""
        return len(self._distances)

    @property
    def settled(self) -> int:
        """Frames whose scene ids are final: ``0 .. settled - 1``."""
        if self.finished:
            return self.frames
        return self._group[0] if self._group else self._known

    def push(self, frames: np.ndarray) -> None:
        """Add the next frames ``(n, H, W, 3)`` uint8."""
        if self.finished:
            raise ValueError("This scene-cut stream is finished; make a new one for another video.")
        _check_frames(frames)
        distances = []
        for frame in frames:
            current = _features(frame, self.config)
            distances.append(0.0 if self._previous is None else _distance(self._previous, current))
            self._previous = current
        self._extend(distances)

    def _extend(self, distances: list[float]) -> None:
        """Add the next frames by their distances to the frame before each (``d[0] = 0``)."""
        self._distances.extend(distances)
        self._advance(self.frames - self.config.window)

    def finish(self) -> None:
        """The video has ended: every frame's id settles."""
        self.finished = True
        self._advance(self.frames)
        self._decide()

    def force(self) -> list[int]:
        """Decide the undecided group now, with the frames seen so far (a bounded lookahead), and
        return its candidate frames: their ids may differ from whole-video detection."""
        group = list(self._group)
        self._decide()
        if group:
            logger.warning(
                "Shot cuts at frames %s were decided with %d frames of lookahead; whole-video detection might "
                "decide them differently.",
                group,
                self.frames - group[0],
            )
        return group

    def scene_ids(self, start: int, stop: int) -> np.ndarray:
        """Scene ids ``(stop - start,)`` int32 of settled frames ``start .. stop - 1``."""
        if not 0 <= start <= stop <= self.settled:
            raise ValueError(f"Scene ids of frames {start}..{stop - 1} are not settled yet (settled: {self.settled}).")
        return np.searchsorted(self._cuts, np.arange(start, stop), side="right").astype(np.int32)

    def _advance(self, limit: int) -> None:
        c = self.config
        distances = np.asarray(self._distances)
        for t in range(self._known, max(self._known, limit)):
            median = _local_median(distances, t, c.window)
            if distances[t] > c.threshold * median and distances[t] > c.min_distance:
                if self._group and t - self._group[-1] >= c.min_scene_len:
                    self._decide()
                self._group.append(t)
            self._known = t + 1
        if self._group and self._known >= self._group[-1] + c.min_scene_len:
            self._decide()  # no later candidate can come closer than min_scene_len

    def _decide(self) -> None:
        """The greedy pass over the undecided group: strongest first (ties: earliest)."""
        accepted: list[int] = []
        for t in sorted(self._group, key=lambda i: -self._distances[i]):
            if all(abs(t - a) >= self.config.min_scene_len for a in accepted):
                accepted.append(t)
        self._cuts.extend(sorted(accepted))
        self._group = []
        if accepted:
            logger.debug("Scene cuts at frames %s.", sorted(accepted))


def detect_scene_cuts(frames: np.ndarray, config: SceneCutConfig | None = None, causal: bool = False) -> np.ndarray:
    """Per-frame scene ids ``(T,)`` int32: 0 at the start, +1 at each detected hard cut.

    Args:
        frames: ``(T, H, W, 3)`` uint8 RGB frames.
        config: detector settings; defaults to ``SceneCutConfig()``.
        causal: decide each frame from the frames before it only (:class:`CausalSceneCutStream`).
    """
    stream = scene_cut_stream(config, causal)
    stream.push(frames)
    stream.finish()
    return stream.scene_ids(0, stream.frames)


def _check_frames(frames: np.ndarray) -> None:
    if not isinstance(frames, np.ndarray) or frames.dtype != np.uint8:
        dtype = getattr(frames, "dtype", "")
        raise ValueError(f"frames must be a uint8 numpy array, got {type(frames).__name__} {dtype}.")
    if frames.ndim != 4 or frames.shape[-1] != 3 or frames.shape[0] == 0:
        raise ValueError(f"frames must have shape (T, H, W, 3) with T >= 1, got {frames.shape}.")


class CausalSceneCutStream(SceneCutStream):
    """Shot-cut detection without lookahead, for the causal codec (``CodecConfig.causal``).

    Frame ``t`` is a cut when ``d_t > threshold * median(d over the window frames before t)`` and
    ``d_t > min_distance``, and at least ``min_scene_len`` frames follow the last accepted cut (the
    first candidate wins; no greedy pass over later, stronger ones). Every id is final as soon as
    its frame is pushed (``settled == frames``), so a live encoder never waits for later frames.
    It misses cuts the two-sided detector finds when the frames before a cut are already busy
    (fast motion) and the median of the past alone is high; whole-video detection in the causal
    codec (``detect_scene_cuts(..., causal=True)``) is this class fed at once.
    """

    def _extend(self, distances: list[float]) -> None:
        self._distances.extend(distances)
        self._advance(self.frames)

    @property
    def settled(self) -> int:
        return self.frames

    def force(self) -> list[int]:
        return []  # nothing is ever undecided

    def finish(self) -> None:
        self.finished = True

    def _advance(self, limit: int) -> None:
        c = self.config
        for t in range(self._known, limit):
            past = self._distances[max(1, t - c.window) : t]  # d[0] is a placeholder, not measured
            median = float(np.median(past)) if past else 0.0
            d = self._distances[t]
            if t > 0 and d > c.threshold * median and d > c.min_distance:
                if not self._cuts or t - self._cuts[-1] >= c.min_scene_len:
                    self._cuts.append(t)
                    logger.debug("Scene cut at frame %d (causal).", t)
            self._known = t + 1


def scene_cut_stream(config: SceneCutConfig | None = None, causal: bool = False) -> SceneCutStream:
    """The shot-cut detector of the non-causal (two-sided window) or causal codec."""
    return CausalSceneCutStream(config) if causal else SceneCutStream(config)
