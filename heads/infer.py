"""Running a trained head over whole token frames: boxes, scores and appearance embeddings."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch
from torch import Tensor

from heads.detector import CenterHead
from heads.features import as_input
from heads.targets import decode_boxes

__all__ = ["Detections", "detect"]


@dataclass
class Detections:
    """One token frame: boxes ``(n, 4)`` ``[x, y, w, h]`` px, scores ``(n,)``, embeddings ``(n, E)``."""

    boxes: np.ndarray
    scores: np.ndarray
    embeddings: np.ndarray


@torch.no_grad()
def detect(
    model: CenterHead,
    features: Tensor,
    frames: int | None = None,
    stride: int = 8,
    top_k: int = 100,
    threshold: float = 0.01,
) -> list[Detections]:
    """Detections of token frames ``0 .. frames - 1`` of ``features (T', C, H', W')``, one at a time."""
    if features.ndim != 4:
        raise ValueError(f"features must be (T', C, H', W'), got shape {tuple(features.shape)}.")
    model.eval()
    out = []
    for t in range(features.shape[0] if frames is None else frames):
        y = model(as_input(features[t : t + 1]))
        boxes, scores, cells = decode_boxes(
            torch.sigmoid(y.heatmap[0, 0]), y.offset[0], y.size[0], stride, top_k, threshold
        )
        emb = y.embedding[0, :, cells[:, 0], cells[:, 1]].T  # (n, E)
        out.append(Detections(boxes.numpy().astype(np.float64), scores.numpy().astype(np.float64), emb.numpy()))
    return out
