"""ByteTrack-style multi-object tracking over token frames (Zhang et al. 2022, "ByteTrack").

Per token frame::

    tracks --constant-velocity prediction--> predicted boxes
    stage 1: Hungarian on high-score detections, cost = (1 - w) (1 - IoU) + w (1 - cos(emb)) / 2,
             gated by IoU >= match_iou or cosine >= match_cos
    stage 2: Hungarian on low-score detections vs the tracks left, cost = 1 - IoU, gated by low_iou
    unmatched high detections above new_track start tracks; tracks unseen for max_age frames end

Only tracks updated in the frame are reported, so a track lost for a frame or two keeps its id
when it is found again.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
from scipy.optimize import linear_sum_assignment

__all__ = ["TrackerConfig", "ByteTracker", "iou_matrix", "track_sequence"]

_INVALID = 1e6


@dataclass(frozen=True)
class TrackerConfig:
    """Score thresholds (high/low/new_track), gates, appearance weight, memory and smoothing."""

    high: float = 0.3
    low: float = 0.1
    new_track: float = 0.4
    match_iou: float = 0.1
    match_cos: float = 0.6
    low_iou: float = 0.3
    appearance_weight: float = 0.5
    max_age: int = 4
    embed_momentum: float = 0.8

    def __post_init__(self) -> None:
        if not 0 <= self.low <= self.high <= 1 or not self.high <= self.new_track <= 1:
            raise ValueError(f"TrackerConfig needs 0 <= low <= high <= new_track <= 1, got {self}.")
        if not 0 <= self.appearance_weight <= 1 or self.max_age < 0:
            raise ValueError(f"TrackerConfig needs appearance_weight in [0, 1] and max_age >= 0, got {self}.")


def iou_matrix(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """IoU of boxes ``a (n, 4)`` and ``b (m, 4)``, ``[x, y, w, h]`` -> ``(n, m)``."""
    a, b = np.asarray(a, float).reshape(-1, 4), np.asarray(b, float).reshape(-1, 4)
    x0 = np.maximum(a[:, None, 0], b[None, :, 0])
    y0 = np.maximum(a[:, None, 1], b[None, :, 1])
    x1 = np.minimum(a[:, None, 0] + a[:, None, 2], b[None, :, 0] + b[None, :, 2])
    y1 = np.minimum(a[:, None, 1] + a[:, None, 3], b[None, :, 1] + b[None, :, 3])
    inter = np.clip(x1 - x0, 0, None) * np.clip(y1 - y0, 0, None)
    union = a[:, None, 2] * a[:, None, 3] + b[None, :, 2] * b[None, :, 3] - inter
    return np.where(union > 0, inter / np.maximum(union, 1e-12), 0.0)


@dataclass
class _Track:
    id: int
    box: np.ndarray  # (4,) x, y, w, h
    embedding: np.ndarray | None
    velocity: np.ndarray = field(default_factory=lambda: np.zeros(2))
    age: int = 0  # frames since the last update
    hits: int = 1

    def predicted(self) -> np.ndarray:
        box = self.box.copy()
        box[:2] += self.velocity * (self.age + 1)
        return box


def _match(cost: np.ndarray) -> list[tuple[int, int]]:
    if cost.size == 0:
        return []
    rows, cols = linear_sum_assignment(cost)
    return [(r, c) for r, c in zip(rows, cols, strict=True) if cost[r, c] < _INVALID]


class ByteTracker:
    """Online tracker; call ``update`` once per token frame in order."""

    def __init__(self, config: TrackerConfig | None = None) -> None:
        self.config = config or TrackerConfig()
        self.tracks: list[_Track] = []
        self._next_id = 1

    def _update_track(self, track: _Track, box: np.ndarray, emb: np.ndarray | None) -> None:
        steps = track.age + 1
        new_v = (box[:2] - track.box[:2]) / steps
        # the first step sets the velocity; later ones smooth it
        track.velocity = new_v if track.hits == 1 else 0.5 * track.velocity + 0.5 * new_v
        track.box, track.age, track.hits = box.copy(), 0, track.hits + 1
        if emb is not None:
            m = self.config.embed_momentum
            e = emb if track.embedding is None else m * track.embedding + (1 - m) * emb
            track.embedding = e / max(np.linalg.norm(e), 1e-12)

    def update(self, boxes: np.ndarray, scores: np.ndarray, embeddings: np.ndarray | None = None) -> np.ndarray:
        """Detections ``boxes (n, 4)``, ``scores (n,)``, optional unit ``embeddings (n, E)`` ->
        tracks updated now as ``(m, 6)`` ``[id, x, y, w, h, score]``."""
        cfg = self.config
        boxes, scores = np.asarray(boxes, float).reshape(-1, 4), np.asarray(scores, float).reshape(-1)
        if len(boxes) != len(scores) or (embeddings is not None and len(embeddings) != len(boxes)):
            raise ValueError(
                f"boxes, scores and embeddings must have one row per detection, got {len(boxes)}, {len(scores)}"
                f" and {None if embeddings is None else len(embeddings)}."
            )
        high, low = np.flatnonzero(scores >= cfg.high), np.flatnonzero((scores >= cfg.low) & (scores < cfg.high))
        pred = np.array([t.predicted() for t in self.tracks]).reshape(-1, 4)
        out = []
        # stage 1: high detections against every track, IoU and appearance
        iou = iou_matrix(pred, boxes[high])
        cost = 1.0 - iou
        if embeddings is not None and self.tracks and all(t.embedding is not None for t in self.tracks):
            cos = np.array([t.embedding for t in self.tracks]) @ embeddings[high].T  # (tracks, high)
            cost = (1 - cfg.appearance_weight) * cost + cfg.appearance_weight * (1 - cos) / 2
            cost = np.where((iou >= cfg.match_iou) | (cos >= cfg.match_cos), cost, _INVALID)
        else:
            cost = np.where(iou >= cfg.match_iou, cost, _INVALID)
        matched_t, matched_d = set(), set()
        for r, c in _match(cost):
            d = high[c]
            self._update_track(self.tracks[r], boxes[d], None if embeddings is None else embeddings[d])
            matched_t.add(r), matched_d.add(d)
            out.append([self.tracks[r].id, *boxes[d], scores[d]])
        # stage 2: low detections against the tracks left, IoU only
        rest = [r for r in range(len(self.tracks)) if r not in matched_t]
        iou = iou_matrix(pred[rest], boxes[low])
        for r, c in _match(np.where(iou >= cfg.low_iou, 1.0 - iou, _INVALID)):
            track, d = self.tracks[rest[r]], low[c]
            self._update_track(track, boxes[d], None)
            matched_t.add(rest[r])
            out.append([track.id, *boxes[d], scores[d]])
        # age the rest, drop the old, start new tracks
        for r, track in enumerate(self.tracks):
            if r not in matched_t:
                track.age += 1
        self.tracks = [t for t in self.tracks if t.age <= cfg.max_age]
        for d in high:
            if d not in matched_d and scores[d] >= cfg.new_track:
                emb = None if embeddings is None else embeddings[d] / max(np.linalg.norm(embeddings[d]), 1e-12)
                self.tracks.append(_Track(self._next_id, boxes[d].copy(), emb))
                out.append([self._next_id, *boxes[d], scores[d]])
                self._next_id += 1
        return np.array(out, dtype=np.float64).reshape(-1, 6)


def track_sequence(detections, config: TrackerConfig | None = None, use_appearance: bool = True) -> np.ndarray:
    """Track a list of per-frame detections (``heads.infer.Detections``-like: boxes, scores,
    embeddings) -> MOT rows ``(N, 7)`` ``[frame, id, x, y, w, h, score]``, frame = index + 1."""
    tracker = ByteTracker(config)
    rows = []
    for t, det in enumerate(detections):
        emb = det.embeddings if use_appearance else None
        for tid, x, y, w, h, s in tracker.update(det.boxes, det.scores, emb):
            rows.append([t + 1, tid, x, y, w, h, s])
    return np.array(rows, dtype=np.float64).reshape(-1, 7)
