"""Head inputs on the shared token grid: FSQ codes of a level prefix, or patchified pixels.

Both give float ``(T', C, H', W')`` on the same grid (stride 8 px, 4 frames), so one head
architecture reads either::

    tokens   symbols of levels 0..k (T', H', W', C_k) uint8 -> FSQ codes in [-1, 1], concatenated:
             C = 4 / 16 / 40 for prefixes preview / medium / full of the shipped codec
    pixels   uint8 video (T, H, W, 3), edge-padded to the grid, each 4x8x8x3 block flattened:
             C = 4*8*8*3 = 768, values in [-1, 1] (the decode-then-detect baseline)
"""

from __future__ import annotations

import numpy as np
import torch
from torch import Tensor

from mptvc_latents.config import FSQConfig
from mptvc_latents.quantization.fsq import FSQ

__all__ = [
    "token_features",
    "item_features",
    "pixel_features",
    "pixel_patches",
    "as_input",
    "token_channels",
    "PIXEL_CHANNELS",
    "PREFIX_NAMES",
]

PREFIX_NAMES = ("preview", "medium", "full")
PATCH, PATCH_T = 8, 4
PIXEL_CHANNELS = PATCH_T * PATCH * PATCH * 3


def token_channels(latent_channels: list[int], k: int) -> int:
    """Input channels of prefix ``k``: the latent channels of levels ``0 .. k`` summed."""
    return int(sum(latent_channels[: k + 1]))


def token_features(symbols: list[np.ndarray], fsq_levels: list[int]) -> Tensor:
    """Symbols of levels ``0 .. k``, each uint8 ``(T', H', W', C_k)`` -> codes ``(T', sum C_k, H', W')``."""
    if not symbols or len(fsq_levels) < len(symbols):
        raise ValueError(f"Need one FSQ level count per symbol array: {len(symbols)} arrays, {len(fsq_levels)} counts.")
    grids = {s.shape[:3] for s in symbols}
    if len(grids) != 1:
        raise ValueError(f"Every level must share one token grid, got grids {sorted(grids)}.")
    codes = []
    for s, levels in zip(symbols, fsq_levels, strict=False):  # fsq_levels may go past the prefix
        fsq = FSQ(FSQConfig(levels=(int(levels),) * s.shape[-1]))
        sym = torch.from_numpy(np.ascontiguousarray(s)).permute(0, 3, 1, 2)  # (T', C_k, H', W')
        codes.append(fsq.symbols_to_codes(sym))
    return torch.cat(codes, dim=1)


def pixel_features(video: np.ndarray, grid: tuple[int, int, int]) -> Tensor:
    """uint8 ``(T, H, W, 3)`` -> float ``(T', 768, H', W')`` in [-1, 1] on ``grid = (T', H', W')``."""
    return as_input(pixel_patches(video, grid))


def as_input(features: Tensor) -> Tensor:
    """Head input as float: uint8 pixel patches map to [-1, 1], float codes pass through."""
    return features.float() / 127.5 - 1.0 if features.dtype == torch.uint8 else features.float()


def pixel_patches(video: np.ndarray, grid: tuple[int, int, int]) -> Tensor:
    """uint8 ``(T, H, W, 3)`` -> uint8 ``(T', 768, H', W')`` on ``grid = (T', H', W')`` (edge padding).

    Kept as uint8 so the pixel features of long or large sequences fit in memory; ``as_input`` converts.
    """
    video = np.asarray(video)
    if video.dtype != np.uint8 or video.ndim != 4 or video.shape[-1] != 3:
        raise ValueError(f"Video must be uint8 of shape (T, H, W, 3), got {video.dtype} {video.shape}.")
    gt, gh, gw = grid
    t, h, w, _ = video.shape
    if t > gt * PATCH_T or h > gh * PATCH or w > gw * PATCH:
        raise ValueError(f"A {t}x{h}x{w} video does not fit a token grid of {grid} (stride {PATCH_T}x{PATCH}x{PATCH}).")
    padded = np.pad(video, ((0, gt * PATCH_T - t), (0, gh * PATCH - h), (0, gw * PATCH - w), (0, 0)), mode="edge")
    x = torch.from_numpy(padded).view(gt, PATCH_T, gh, PATCH, gw, PATCH, 3)  # (T', pt, H', p, W', p, 3)
    return x.permute(0, 1, 3, 5, 6, 2, 4).reshape(gt, PIXEL_CHANNELS, gh, gw)  # (T', pt*p*p*3, H', W')


def item_features(item: dict, fsq_levels: list[int]) -> Tensor:
    """Codes of one ``TokenDataset`` item (``level_0 .. level_k`` uint8 tensors) -> ``(T', C, H', W')``."""
    levels = sorted((key for key in item if key.startswith("level_")), key=lambda key: int(key.split("_")[1]))
    if not levels:
        raise ValueError("A TokenDataset item needs level_0 .. level_k entries.")
    return token_features([np.asarray(item[key]) for key in levels], fsq_levels)
