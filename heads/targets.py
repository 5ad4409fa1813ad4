"""CenterNet targets on the token grid (Zhou et al. 2019, "Objects as Points"), and their decoding.

A box ``[x, y, w, h]`` in pixels has centre ``(cx, cy)``; on a grid of ``stride`` pixels its centre
cell is ``(floor(cy/stride), floor(cx/stride))``. Per cell the head predicts::

    heatmap  (1, H', W')   Gaussian peak 1 at each centre cell (sigma from the box size)
    offset   (2, H', W')   (cx/stride - j, cy/stride - i) in [0, 1): the sub-cell centre
    size     (2, H', W')   (log(w/stride), log(h/stride))

``decode_boxes`` takes 3x3 local maxima of the heatmap and turns them back into boxes; for
targets built by ``encode_targets`` it returns the input boxes exactly (up to float error) as
long as no two centres share a cell.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor

__all__ = ["Targets", "encode_targets", "decode_boxes", "gaussian_sigma"]


@dataclass
class Targets:
    """Dense targets of one grid and the sparse centre list (for the regression and embedding losses).

    heatmap (H', W') float32; centres (n, 2) int64 cells (i, j); offset (n, 2) and size (n, 2)
    float32 at those cells; ids (n,) int64 track identities.
    """

    heatmap: np.ndarray
    centres: np.ndarray
    offset: np.ndarray
    size: np.ndarray
    ids: np.ndarray


def gaussian_sigma(w_cells: np.ndarray, h_cells: np.ndarray) -> np.ndarray:
    """Per-box heatmap sigma in cells: a sixth of the smaller side, at least half a cell."""
    return np.maximum(0.5, np.minimum(w_cells, h_cells) / 6.0)


def encode_targets(boxes: np.ndarray, grid: tuple[int, int], stride: int = 8) -> Targets:
    """``boxes (n, 5)`` ``[id, x, y, w, h]`` in pixels -> targets on a ``grid = (H', W')`` grid.

    Boxes whose centre falls outside the grid, or with no area, are left out.
    """
    boxes = np.asarray(boxes, dtype=np.float64).reshape(-1, 5)
    gh, gw = grid
    cx = (boxes[:, 1] + boxes[:, 3] / 2) / stride
    cy = (boxes[:, 2] + boxes[:, 4] / 2) / stride
    keep = (cx >= 0) & (cx < gw) & (cy >= 0) & (cy < gh) & (boxes[:, 3] > 0) & (boxes[:, 4] > 0)
    boxes, cx, cy = boxes[keep], cx[keep], cy[keep]
    j, i = np.floor(cx).astype(np.int64), np.floor(cy).astype(np.int64)
    heatmap = np.zeros((gh, gw), np.float32)
    yy, xx = np.mgrid[0:gh, 0:gw]  # (H', W') each
    for n, sigma in enumerate(gaussian_sigma(boxes[:, 3] / stride, boxes[:, 4] / stride)):
        peak = np.exp(-((yy - i[n]) ** 2 + (xx - j[n]) ** 2) / (2 * sigma**2))
        np.maximum(heatmap, peak.astype(np.float32), out=heatmap)
    return Targets(
        heatmap=heatmap,
        centres=np.stack([i, j], axis=1) if len(i) else np.zeros((0, 2), np.int64),
        offset=np.stack([cx - j, cy - i], axis=1).astype(np.float32).reshape(-1, 2),
        size=np.log(boxes[:, 3:5] / stride).astype(np.float32).reshape(-1, 2),
        ids=boxes[:, 0].astype(np.int64),
    )


def decode_boxes(
    heatmap: Tensor, offset: Tensor, size: Tensor, stride: int = 8, top_k: int = 100, threshold: float = 0.01
) -> tuple[Tensor, Tensor, Tensor]:
    """Peaks of one grid -> boxes.

    Args:
        heatmap: ``(H', W')`` scores in [0, 1] (sigmoid of the logits).
        offset, size: ``(2, H', W')`` as in the module docstring.
    Returns:
        boxes ``(n, 4)`` ``[x, y, w, h]`` pixels, scores ``(n,)``, cells ``(n, 2)`` ``(i, j)``,
        best first, at most ``top_k``, scores at least ``threshold``.
    """
    if heatmap.ndim != 2 or offset.shape != (2, *heatmap.shape) or size.shape != (2, *heatmap.shape):
        raise ValueError(f"heatmap must be (H, W) and offset/size (2, H, W), got {tuple(heatmap.shape)}, "
                         f"{tuple(offset.shape)} and {tuple(size.shape)}.")  # fmt: skip
    pooled = F.max_pool2d(heatmap[None, None], 3, stride=1, padding=1)[0, 0]
    peaks = torch.where(heatmap == pooled, heatmap, torch.zeros_like(heatmap))
    scores, flat = peaks.flatten().topk(min(top_k, peaks.numel()))
    keep = scores >= threshold
    scores, flat = scores[keep], flat[keep]
    i, j = flat // heatmap.shape[1], flat % heatmap.shape[1]
    cx = (j.float() + offset[0, i, j]) * stride
    cy = (i.float() + offset[1, i, j]) * stride
    w, h = size[0, i, j].exp() * stride, size[1, i, j].exp() * stride
    boxes = torch.stack([cx - w / 2, cy - h / 2, w, h], dim=1)  # (n, 4)
    return boxes, scores, torch.stack([i, j], dim=1)
