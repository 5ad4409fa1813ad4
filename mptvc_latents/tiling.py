"""Overlapping spatial tiles over a token grid, blended with a partition of unity.

The transformers see local neighbourhoods only, so a large frame can be processed as
overlapping tiles: each tile runs on its own (bounded memory), and the tile outputs are
blended with weights that sum to exactly one at every token (a partition of unity).
A token within ``margin`` of a tile's inner edge had part of its neighbourhood cut off,
so its tile gives it weight 0; the weights ramp linearly between ``margin`` and
``overlap - margin``. With ``margin`` at least the network's reach (depth x radius), every
token with non-zero weight is computed exactly as the whole frame would compute it, so
the blend has no seams.

    grid (B, T, H, W, D) --split--> tiles (B, T, h, w, D) --fn--> (B, T, h, w, E)
                         <--blend-- sum_i  w_i * fn(tile_i),   sum_i w_i = 1
"""

from __future__ import annotations

from collections.abc import Callable

import torch
from torch import Tensor

__all__ = ["tile_margin", "tile_starts", "tile_weights", "run_tiled"]


def tile_starts(size: int, tile: int, overlap: int) -> list[int]:
    """Start offsets of tiles of length ``tile`` covering ``[0, size)`` with at least ``overlap`` shared.

    The last tile ends at ``size``; one tile when ``size <= tile``.
    """
    if tile <= 0 or not 0 <= overlap < tile:
        raise ValueError(f"A tile of {tile} with an overlap of {overlap} is invalid: need 0 <= overlap < tile.")
    if size <= tile:
        return [0]
    stride = tile - overlap
    starts = list(range(0, size - tile, stride))
    starts.append(size - tile)
    return starts


def _ramp(size: int, starts: list[int], tile: int, overlap: int, margin: int, device: torch.device) -> Tensor:
    """``(n_tiles, size)`` 1-D weights: 0 within ``margin`` of an inner tile edge, a linear ramp
    up to ``overlap - margin``, 1 beyond; 0 outside the tile. Frame borders get no ramp."""
    x = torch.arange(size, device=device, dtype=torch.float64) + 0.5
    span = max(overlap - 2 * margin, 1)
    rows = []
    for s in starts:
        w = torch.ones(size, device=device, dtype=torch.float64)
        if s > 0:  # another tile covers the left side
            w = torch.minimum(w, (x - s - margin) / span)
        if s + tile < size:
            w = torch.minimum(w, (s + tile - margin - x) / span)
        inside = (x > s) & (x < s + tile)
        rows.append(torch.where(inside, w.clamp(min=0), torch.zeros_like(w)))
    return torch.stack(rows)


def tile_margin(overlap: int, reach: int) -> int:
    """The largest margin up to ``reach`` that still leaves a ramp inside ``overlap``."""
    return max(0, min(reach, (overlap - 1) // 2))


def tile_weights(
    height: int,
    width: int,
    tile: tuple[int, int],
    overlap: tuple[int, int],
    margin: tuple[int, int] = (0, 0),
    device=None,
) -> list[tuple[int, int, Tensor]]:
    """``(y0, x0, weight (h, w))`` per tile; the weights of all tiles sum to one everywhere."""
    device = device or torch.device("cpu")
    th, tw = min(tile[0], height), min(tile[1], width)
    oy, ox = min(overlap[0], th - 1), min(overlap[1], tw - 1)
    ys, xs = tile_starts(height, th, oy), tile_starts(width, tw, ox)
    wy = _ramp(height, ys, th, oy, tile_margin(oy, margin[0]), device)
    wx = _ramp(width, xs, tw, ox, tile_margin(ox, margin[1]), device)
    total = wy.sum(0)[:, None] * wx.sum(0)[None, :]  # (H, W) > 0 everywhere
    out = []
    for i, y0 in enumerate(ys):
        for j, x0 in enumerate(xs):
            w = wy[i, y0 : y0 + th][:, None] * wx[j, x0 : x0 + tw][None, :]
            out.append((y0, x0, (w / total[y0 : y0 + th, x0 : x0 + tw]).float()))
    return out


def run_tiled(
    fn: Callable[[Tensor], Tensor],
    grid: Tensor,
    tile: tuple[int, int],
    overlap: tuple[int, int],
    margin: tuple[int, int] = (0, 0),
) -> Tensor:
    """Apply a shape-preserving (over B, T, H, W) ``fn`` to ``grid (B, T, H, W, D)`` tile by tile.

    With a single tile this is exactly ``fn(grid)``. ``tile``, ``overlap`` and ``margin`` (the
    reach of ``fn``: how far a cut neighbourhood corrupts its output) are in tokens.
    """
    if grid.ndim != 5:
        raise ValueError(f"run_tiled expects a (B, T, H, W, D) token grid, got shape {tuple(grid.shape)}.")
    _, _, height, width, _ = grid.shape
    if height <= tile[0] and width <= tile[1]:
        return fn(grid)
    out: Tensor | None = None
    for y0, x0, w in tile_weights(height, width, tile, overlap, margin, grid.device):
        th, tw = w.shape
        piece = fn(grid[:, :, y0 : y0 + th, x0 : x0 + tw])  # (B, T, th, tw, E)
        if out is None:
            out = piece.new_zeros(*grid.shape[:4], piece.shape[-1])
        out[:, :, y0 : y0 + th, x0 : x0 + tw] += piece * w[None, None, :, :, None].to(piece.dtype)
    assert out is not None
    return out
