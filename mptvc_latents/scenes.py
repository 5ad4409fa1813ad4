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

Histograms ignore motion but miss cuts between shots with similar colours; the thumbnail term
catches those (taking the max keeps either signal at full strength), and the ratio to the local
median discounts fast motion and camera pans.
"""

from __future__ import annotations

import logging
import warnings

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


def frame_distances(frames: np.ndarray, config: SceneCutConfig) -> np.ndarray:
    """Distance ``d (T,)`` in [0, 1] between each frame and the previous one; ``d[0] = 0``."""
    _check_frames(frames)
    yuv = _yuv(_analysis_frames(frames, config.analysis_size))
    hist = _histograms(yuv, config.bins)
    hist_distance = 0.5 * np.abs(np.diff(hist, axis=0)).sum(axis=-1).mean(axis=-1)  # (T-1,)
    thumbs = _thumbnails(yuv[..., 0])
    thumb_distance = np.abs(np.diff(thumbs, axis=0)).mean(axis=(1, 2)) / 255.0  # (T-1,)
    return np.concatenate([[0.0], np.maximum(hist_distance, thumb_distance)])


def _local_median(distances: np.ndarray, window: int) -> np.ndarray:
    """Median of ``distances[1:]`` within ``window`` frames of each frame, excluding the frame itself."""
    padded = np.concatenate([np.full(window, np.nan), distances, np.full(window, np.nan)])
    padded[window] = np.nan  # d[0] is a placeholder, not a measured distance
    neighbours = np.lib.stride_tricks.sliding_window_view(padded, 2 * window + 1).copy()  # (T, 2w+1)
    neighbours[:, window] = np.nan
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)  # all-NaN rows for very short clips
        median = np.nanmedian(neighbours, axis=1)
    return np.nan_to_num(median, nan=0.0)


def detect_scene_cuts(frames: np.ndarray, config: SceneCutConfig | None = None) -> np.ndarray:
    """Per-frame scene ids ``(T,)`` int32: 0 at the start, +1 at each detected hard cut.

    Args:
        frames: ``(T, H, W, 3)`` uint8 RGB frames.
        config: detector settings; defaults to ``SceneCutConfig()``.
    """
    config = SceneCutConfig() if config is None else config
    _check_frames(frames)
    distances = frame_distances(frames, config)
    median = _local_median(distances, config.window)
    candidates = np.flatnonzero((distances > config.threshold * median) & (distances > config.min_distance))
    accepted: list[int] = []
    for t in sorted(candidates.tolist(), key=lambda i: -distances[i]):
        if all(abs(t - c) >= config.min_scene_len for c in accepted):
            accepted.append(t)
    accepted.sort()
    logger.debug("Scene cuts at frames %s (distances %s).", accepted, np.round(distances[accepted], 3).tolist())
    boundaries = np.zeros(frames.shape[0], dtype=np.int32)
    boundaries[accepted] = 1
    return np.cumsum(boundaries, dtype=np.int32)


def _check_frames(frames: np.ndarray) -> None:
    if not isinstance(frames, np.ndarray) or frames.dtype != np.uint8:
        dtype = getattr(frames, "dtype", "")
        raise ValueError(f"frames must be a uint8 numpy array, got {type(frames).__name__} {dtype}.")
    if frames.ndim != 4 or frames.shape[-1] != 3 or frames.shape[0] == 0:
        raise ValueError(f"frames must have shape (T, H, W, 3) with T >= 1, got {frames.shape}.")
