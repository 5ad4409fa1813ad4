"""Score thresholds from the training clips: where a head's detections are best, F1 at IoU 0.5.

A head trained briefly with the focal loss gives low peak scores, so fixed tracker thresholds (high
0.3, new track 0.4, low 0.1: ``TrackerConfig``'s defaults) may start no track at all. ``fit_threshold``
picks the score threshold with the best F1 on the head's own *training* clips (never on evaluation
scenes), and ``calibrated_tracker`` anchors the tracker's thresholds there in the default ratios
(high = t, new track = 4/3 t, low = t/3).
"""

from __future__ import annotations

from dataclasses import replace

import numpy as np
from scipy.optimize import linear_sum_assignment

from heads.detector import CenterHead
from heads.infer import detect
from heads.tracker import TrackerConfig, iou_matrix
from heads.train import GridSequence

__all__ = ["fit_threshold", "calibrated_tracker"]

#: The score thresholds tried, from 0.05 to 0.9.
THRESHOLDS = np.round(np.arange(0.05, 0.91, 0.025), 3)


def _matched_scores(boxes: np.ndarray, scores: np.ndarray, gt: np.ndarray, iou: float) -> np.ndarray:
    """Scores of the detections a one-to-one matching at IoU >= ``iou`` pairs with ground truth."""
    if len(boxes) == 0 or len(gt) == 0:
        return np.zeros(0)
    m = iou_matrix(boxes, gt)
    rows, cols = linear_sum_assignment(-m)
    return scores[rows[m[rows, cols] >= iou]]


def fit_threshold(model: CenterHead, seqs: list[GridSequence], iou: float = 0.5) -> tuple[float, float]:
    """``(threshold, F1)``: the score threshold of ``THRESHOLDS`` with the best F1 (detections at least
    that score, matched one-to-one at IoU >= ``iou``) over every annotated token frame of ``seqs``."""
    matched, scores, positives = [], [], 0
    for seq in seqs:
        for det, gt in zip(detect(model, seq.features, frames=seq.num_frames, threshold=float(THRESHOLDS[0])),
                           seq.boxes, strict=True):  # fmt: skip
            scores.append(det.scores)
            matched.append(_matched_scores(det.boxes, det.scores, gt[:, 1:5], iou))
            positives += len(gt)
    if positives == 0:
        raise ValueError("Calibration needs annotated boxes in the training clips.")
    all_scores, hits = np.concatenate(scores), np.concatenate(matched)
    tp = np.array([(hits >= t).sum() for t in THRESHOLDS], dtype=np.float64)
    found = np.array([(all_scores >= t).sum() for t in THRESHOLDS], dtype=np.float64)
    f1 = 2 * tp / np.maximum(found + positives, 1)
    best = int(np.argmax(f1))
    return float(THRESHOLDS[best]), float(f1[best])


def calibrated_tracker(threshold: float, base: TrackerConfig | None = None) -> TrackerConfig:
    """``base`` (default ``TrackerConfig()``) with high = ``threshold``, new track = 4/3 of it, low = 1/3."""
    if not 0 < threshold < 1:
        raise ValueError(f"A score threshold lies in (0, 1), got {threshold}.")
    return replace(base or TrackerConfig(), high=threshold, new_track=min(4 * threshold / 3, 0.99), low=threshold / 3)
