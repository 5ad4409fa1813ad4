"""Spatial Laplacian pyramid (Burt & Adelson 1983, "The Laplacian Pyramid as a Compact Image Code").

Only H and W are resampled (the last two dims); time and channels are untouched, so both
``(B, C, T, H, W)`` video and ``(B, C, H, W)`` images work. With K levels, ordered coarse to
fine::

    G_{K-1} = x,   G_k = down(G_{k+1})                    (Gaussian stack, resolution 1/2^(K-1-k))
    decompose(x) = [G_0, L_1, ..., L_{K-1}],   L_k = G_k - up(G_{k-1})
    collapse:      G_0 = levels[0],   G_k = up(G_{k-1}) + L_k

``down`` is 2x2 average pooling and ``up`` bilinear x2 (``align_corners=False``). The pyramid
is linear and collapses back to its input exactly (up to fp rounding) before quantization.
In MPT-VC level k is patched with ``p_k = 8 / 2^(K-1-k)`` so all levels share one token grid.
"""

from __future__ import annotations

import torch.nn.functional as F
from torch import Tensor

from mptvc_latents.config import PyramidConfig


def down(x: Tensor) -> Tensor:
    """2x2 average pooling over the last two dims: ``(..., H, W) -> (..., H/2, W/2)``."""
    *lead, h, w = x.shape
    if h % 2 or w % 2:
        raise ValueError(f"down() needs even H and W, got ({h}, {w}).")
    # (..., H, W) -> (N, H, W): one batch dimension for the pooling kernel, 3x faster on CPU than a mean
    # over the two strided axes of a (..., H/2, 2, W/2, 2) view.
    pooled = F.avg_pool2d(x.reshape(-1, h, w), 2)
    return pooled.reshape(*lead, h // 2, w // 2)


def up(x: Tensor) -> Tensor:
    """Bilinear x2 upsampling (``align_corners=False``) of the last two dims."""
    *lead, h, w = x.shape
    flat = x.reshape(1, -1, h, w)  # (..., H, W) -> (1, N, H, W) for F.interpolate
    upsampled = F.interpolate(flat, scale_factor=2, mode="bilinear", align_corners=False)
    return upsampled.reshape(*lead, 2 * h, 2 * w)


def upsample(x: Tensor, steps: int) -> Tensor:
    """Apply ``up`` ``steps`` times, e.g. to view a coarse reconstruction at full resolution."""
    if steps < 0:
        raise ValueError(f"steps must be non-negative, got {steps}.")
    for _ in range(steps):
        x = up(x)
    return x


class LaplacianPyramid:
    """K-level spatial Laplacian pyramid; stateless, so not an ``nn.Module``."""

    def __init__(self, config: PyramidConfig) -> None:
        self.config = config

    @property
    def levels(self) -> int:
        return self.config.levels

    def gaussian(self, x: Tensor) -> list[Tensor]:
        """``[G_0, ..., G_{K-1}]`` coarse to fine; ``G_{K-1}`` is ``x`` itself."""
        self._check_input(x)
        stack = [x]
        for _ in range(self.levels - 1):
            stack.append(down(stack[-1]))
        return stack[::-1]

    def decompose(self, x: Tensor) -> list[Tensor]:
        """``[G_0, L_1, ..., L_{K-1}]``; level k has spatial size ``(H, W) / 2^(K-1-k)``."""
        gauss = self.gaussian(x)
        return [gauss[0]] + [gauss[k] - up(gauss[k - 1]) for k in range(1, self.levels)]

    def collapse(self, levels: list[Tensor], k_max: int | None = None) -> Tensor:
        """Rebuild ``G_{k_max}`` (default: the full-resolution input) at its own resolution.

        ``levels`` holds at least the first ``k_max + 1`` entries of ``decompose``; finer ones
        are ignored, so a decoder that only has the coarse levels can call this too.
        """
        if not 1 <= len(levels) <= self.levels:
            raise ValueError(f"Expected between 1 and {self.levels} pyramid levels, got {len(levels)}.")
        k_max = len(levels) - 1 if k_max is None else k_max
        if not 0 <= k_max < len(levels):
            raise ValueError(f"k_max must lie in [0, {len(levels) - 1}] for {len(levels)} given levels, got {k_max}.")
        x = levels[0]
        for k in range(1, k_max + 1):
            if levels[k].shape[-2:] != (2 * x.shape[-2], 2 * x.shape[-1]):
                raise ValueError(
                    f"Level {k} has spatial size {tuple(levels[k].shape[-2:])}, expected twice level {k - 1}'s "
                    f"{tuple(x.shape[-2:])}."
                )
            x = up(x) + levels[k]
        return x

    def to_full_resolution(self, x: Tensor, k: int) -> Tensor:
        """Upsample a level-``k`` reconstruction by ``2^(K-1-k)`` to the input resolution."""
        if not 0 <= k < self.levels:
            raise ValueError(f"k must lie in [0, {self.levels - 1}], got {k}.")
        return upsample(x, self.levels - 1 - k)

    def _check_input(self, x: Tensor) -> None:
        if x.ndim < 3:
            raise ValueError(f"Pyramid input must be (B, C, T, H, W) or (B, C, H, W), got shape {tuple(x.shape)}.")
        h, w = x.shape[-2:]
        m = self.config.multiple
        if h % m or w % m:
            raise ValueError(
                f"H and W must be divisible by 2^(K-1) = {m} for a {self.levels}-level pyramid, got ({h}, {w}); "
                f"pad with patching.pad_to_multiple first."
            )
