"""Distortion and rate of decoded video: PSNR on BT.709 luma and on RGB, bits per pixel.

Both PSNRs pool the squared error over every frame and pixel of the clip before taking the
log (one MSE per clip, not a mean of per-frame PSNRs), on full-range 8-bit RGB::

    Y    = 0.2126 R + 0.7152 G + 0.0722 B          (ITU-R BT.709 luma weights, on 0..255)
    PSNR = 10 log10(255^2 / MSE)                    inf when the two videos are identical

Identical inputs give ``math.inf``, not a capped number: a cap would quietly enter means
over clips, an ``inf`` shows up. Reports write it as ``null`` in JSON.
"""

from __future__ import annotations

import math

import numpy as np

__all__ = ["BT709_LUMA", "BT709_YCBCR", "SquaredError", "psnr_y", "psnr_rgb", "mse_y", "mse_rgb", "bpp"]

BT709_LUMA = np.array([0.2126, 0.7152, 0.0722], dtype=np.float64)
# Rows Y, Cb, Cr of BT.709 (analogue form): Cb = (B - Y) / 1.8556, Cr = (R - Y) / 1.5748, so each
# chroma row spans [-1/2, 1/2] of the range of RGB; the training loss can weigh these three.
BT709_YCBCR = np.stack(
    [
        BT709_LUMA,
        (np.array([0.0, 0.0, 1.0]) - BT709_LUMA) / (2 * (1 - BT709_LUMA[2])),
        (np.array([1.0, 0.0, 0.0]) - BT709_LUMA) / (2 * (1 - BT709_LUMA[0])),
    ]
)
_PEAK = 255.0


def _check_pair(a: np.ndarray, b: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    a, b = np.asarray(a), np.asarray(b)
    for name, v in (("first", a), ("second", b)):
        if v.dtype != np.uint8 or v.ndim != 4 or v.shape[-1] != 3:
            raise ValueError(f"The {name} video must be uint8 of shape (T, H, W, 3), got {v.dtype} {v.shape}.")
    if a.shape != b.shape:
        raise ValueError(f"The two videos must have the same shape to be compared, got {a.shape} and {b.shape}.")
    if a.size == 0:
        raise ValueError(f"The videos are empty: shape {a.shape}.")
    return a, b


def _frame_squared_error(a: np.ndarray, b: np.ndarray, weights: np.ndarray | None) -> float:
    """Sum of the squared (luma-weighted, if ``weights``) difference of two frames ``(H, W, 3)``, float64."""
    diff = a.astype(np.float64) - b  # (H, W, 3)
    if weights is not None:
        diff = diff @ weights  # (H, W): Y is linear, so Y(a) - Y(b) = Y(a - b)
    return float(np.dot(diff.ravel(), diff.ravel()))


def _sum_squared_error(a: np.ndarray, b: np.ndarray, weights: np.ndarray | None) -> float:
    """Sum over all frames of the squared (luma-weighted, if ``weights``) difference, in float64.

    One frame at a time: a 720p clip of 32 frames would need 700 MB as one float64 array.
    """
    total = 0.0
    for fa, fb in zip(a, b, strict=True):
        total += _frame_squared_error(fa, fb, weights)
    return total


class SquaredError:
    """PSNR of two videos compared a chunk at a time (long videos never in memory whole).

    ``add(reference, decoded)`` per chunk of uint8 frames ``(n, H, W, 3)``; :meth:`psnr_y` and
    :meth:`psnr_rgb` pool the squared error over every frame added, frame by frame in the same
    order as :func:`psnr_y` / :func:`psnr_rgb` of the whole videos, so the numbers are identical.
    """

    def __init__(self) -> None:
        self.sum_y, self.sum_rgb, self.pixels = 0.0, 0.0, 0

    def add(self, a: np.ndarray, b: np.ndarray) -> None:
        a, b = _check_pair(a, b)
        for fa, fb in zip(a, b, strict=True):
            self.sum_y += _frame_squared_error(fa, fb, BT709_LUMA)
            self.sum_rgb += _frame_squared_error(fa, fb, None)
        self.pixels += a.size // 3

    def _check(self) -> None:
        if self.pixels == 0:
            raise ValueError("No frames were added, so there is no error to measure.")

    def psnr_y(self) -> float:
        self._check()
        return _psnr(self.sum_y / self.pixels)

    def psnr_rgb(self) -> float:
        self._check()
        return _psnr(self.sum_rgb / (3 * self.pixels))


def mse_y(a: np.ndarray, b: np.ndarray) -> float:
    """Mean squared error of BT.709 luma over all frames and pixels."""
    a, b = _check_pair(a, b)
    return _sum_squared_error(a, b, BT709_LUMA) / (a.size // 3)


def mse_rgb(a: np.ndarray, b: np.ndarray) -> float:
    """Mean squared error over all frames, pixels and the three channels."""
    a, b = _check_pair(a, b)
    return _sum_squared_error(a, b, None) / a.size


def _psnr(mse: float) -> float:
    return math.inf if mse == 0.0 else 10.0 * math.log10(_PEAK**2 / mse)


def psnr_y(a: np.ndarray, b: np.ndarray) -> float:
    """PSNR in dB of the BT.709 luma of two uint8 RGB videos ``(T, H, W, 3)``; inf if identical."""
    return _psnr(mse_y(a, b))


def psnr_rgb(a: np.ndarray, b: np.ndarray) -> float:
    """PSNR in dB over the R, G and B channels of two uint8 videos ``(T, H, W, 3)``; inf if identical."""
    return _psnr(mse_rgb(a, b))


def bpp(num_bytes: int, frames: int, height: int, width: int) -> float:
    """Bits per pixel: ``8 * num_bytes / (frames * height * width)`` (pixels of the source, not padded)."""
    for name, value in (("frames", frames), ("height", height), ("width", width)):
        if not isinstance(value, (int, np.integer)) or value <= 0:
            raise ValueError(f"Bits per pixel need a positive integer {name}, got {value!r}.")
    if not isinstance(num_bytes, (int, np.integer)) or num_bytes < 0:
        raise ValueError(f"Bits per pixel need a non-negative integer byte count, got {num_bytes!r}.")
    return 8.0 * int(num_bytes) / (int(frames) * int(height) * int(width))
