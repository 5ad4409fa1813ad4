"""Annotated sequences: frames plus boxes, read from MOTChallenge or OTB folders, and variants.

A ``Sequence`` holds uint8 frames ``(T, H, W, 3)`` and ground-truth boxes as a float array
``(N, 6)`` of MOT rows ``[frame, id, x, y, w, h]`` (``frame`` 1-based, boxes in pixels, top-left
corner). ``rescale`` and ``delay`` make honest variants for training (the boxes move exactly with
the pixels); ``reference_frames`` says which video frame each token frame is evaluated on.
"""

from __future__ import annotations

import configparser
import logging
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

log = logging.getLogger(__name__)

__all__ = [
    "Sequence",
    "read_mot_sequence",
    "read_otb_sequence",
    "reference_frames",
    "rescale",
    "delay",
    "crop",
    "box_window",
    "clip_frames",
    "boxes_at",
    "mot_rows",
]

#: The video frame (0-based, within its group of ``patch_t`` frames) a token frame is evaluated on.
REFERENCE_OFFSET = 1


@dataclass(frozen=True)
class Sequence:
    """Frames ``(T, H, W, 3)`` uint8, frame rate and MOT boxes ``(N, 6)`` ``[frame, id, x, y, w, h]``."""

    name: str
    frames: np.ndarray = field(repr=False)
    fps: float
    boxes: np.ndarray = field(repr=False)

    @property
    def num_frames(self) -> int:
        return int(self.frames.shape[0])


def _read_jpegs(pattern: Path, fps: float, max_frames: int | None) -> np.ndarray:
    import av

    frames = []
    with av.open(str(pattern), format="image2", options={"framerate": str(fps)}) as container:
        for frame in container.decode(video=0):
            frames.append(frame.to_ndarray(format="rgb24"))
            if max_frames is not None and len(frames) >= max_frames:
                break
    if not frames:
        raise ValueError(f"No frames could be read from {str(pattern)!r}.")
    return np.stack(frames)  # (T, H, W, 3)


def read_mot_sequence(folder: str | Path, max_frames: int | None = None) -> Sequence:
    """Read a MOTChallenge sequence folder (``seqinfo.ini``, ``img1/%06d.jpg``, ``gt/gt.txt``).

    Rows of ``gt.txt`` whose confidence flag (column 7) is 0 are ignored regions in MOTChallenge
    and are dropped here (``mot_rows``).
    """
    folder = Path(folder)
    ini, gt = folder / "seqinfo.ini", folder / "gt" / "gt.txt"
    if not ini.is_file() or not gt.is_file():
        raise ValueError(f"{str(folder)!r} is not a MOTChallenge sequence: it needs seqinfo.ini and gt/gt.txt.")
    info = configparser.ConfigParser()
    info.read(ini)
    seq = info["Sequence"]
    fps = float(seq.get("frameRate", "25"))
    frames = _read_jpegs(folder / seq.get("imDir", "img1") / f"%06d{seq.get('imExt', '.jpg')}", fps, max_frames)
    rows = mot_rows(np.loadtxt(gt, delimiter=",", ndmin=2))
    return Sequence(seq.get("name", folder.name), frames, fps, rows[rows[:, 0] <= frames.shape[0]])


def mot_rows(rows: np.ndarray) -> np.ndarray:
    """The pedestrian boxes of MOTChallenge ground-truth rows -> ``(N, 6)`` ``[frame, id, x, y, w, h]``.

    Rows with 6 columns are all kept. With more, column 7 is the MOT15 confidence flag or the
    MOT16/17 "consider" flag: rows where it is 0 (ignore regions) are dropped. MOT16/17 files have
    exactly 9 columns, the 8th being the class: only class 1 (pedestrian) is kept.
    """
    rows = np.asarray(rows, dtype=np.float64)
    if rows.ndim != 2 or (len(rows) and rows.shape[1] < 6):
        raise ValueError(f"MOTChallenge rows need at least 6 columns [frame, id, x, y, w, h], got shape {rows.shape}.")
    if len(rows) and rows.shape[1] >= 7:
        keep = rows[:, 6] != 0
        if rows.shape[1] == 9:
            keep &= rows[:, 7] == 1
        rows = rows[keep]
    return rows[:, :6].reshape(-1, 6)


def read_otb_sequence(folder: str | Path, fps: float = 30.0) -> Sequence:
    """Read an OTB sequence folder (``img/%04d.jpg`` and ``groundtruth_rect.txt``, one target, id 1)."""
    folder = Path(folder)
    rect = folder / "groundtruth_rect.txt"
    if not rect.is_file():
        raise ValueError(f"{str(folder)!r} is not an OTB sequence: it needs groundtruth_rect.txt.")
    frames = _read_jpegs(folder / "img" / "%04d.jpg", fps, None)
    text = rect.read_text().replace("\t", ",").replace(" ", ",")
    xywh = np.array([[float(v) for v in line.split(",") if v] for line in text.splitlines() if line.strip()])
    n = min(len(xywh), frames.shape[0])
    rows = np.column_stack([np.arange(1, n + 1), np.ones(n), xywh[:n, :4]])
    return Sequence(folder.name, frames, fps, rows)


def boxes_at(seq: Sequence, frame: int) -> np.ndarray:
    """Boxes of 0-based video frame ``frame``: ``(n, 5)`` ``[id, x, y, w, h]``."""
    return seq.boxes[seq.boxes[:, 0] == frame + 1, 1:6]


def reference_frames(num_frames: int, num_token_frames: int, patch_t: int = 4) -> np.ndarray:
    """0-based video frame of each token frame that has one: ``patch_t * t + REFERENCE_OFFSET``.

    Token frame ``t`` covers video frames ``patch_t*t .. patch_t*t + patch_t - 1``; its detections
    are boxes of the reference frame. Token frames of end padding (no reference frame) are left out,
    so the result has ``min(num_token_frames, ceil((num_frames - OFFSET) / patch_t))`` entries.
    """
    refs = patch_t * np.arange(num_token_frames) + REFERENCE_OFFSET
    return refs[refs < num_frames]


def rescale(seq: Sequence, scale: float) -> Sequence:
    """Resize frames by ``scale`` (bilinear, PyAV/libswscale) and the boxes exactly with them."""
    import av

    if scale <= 0:
        raise ValueError(f"scale must be positive, got {scale}.")
    t, h, w, _ = seq.frames.shape
    nh, nw = int(round(h * scale)), int(round(w * scale))
    out = np.empty((t, nh, nw, 3), np.uint8)
    for i in range(t):
        frame = av.VideoFrame.from_ndarray(seq.frames[i], format="rgb24")
        out[i] = frame.reformat(width=nw, height=nh, interpolation="BILINEAR").to_ndarray()
    boxes = seq.boxes.copy()
    boxes[:, [2, 4]] *= nw / w
    boxes[:, [3, 5]] *= nh / h
    return Sequence(f"{seq.name}-x{scale:g}", out, seq.fps, boxes)


def delay(seq: Sequence, start: int) -> Sequence:
    """Drop the first ``start`` frames, so token frames group other 4-frame windows."""
    if not 0 <= start < seq.num_frames:
        raise ValueError(f"start must be in 0..{seq.num_frames - 1}, got {start}.")
    boxes = seq.boxes[seq.boxes[:, 0] > start].copy()
    boxes[:, 0] -= start
    return Sequence(f"{seq.name}-d{start}", seq.frames[start:], seq.fps, boxes)


def crop(seq: Sequence, y0: int, x0: int, height: int, width: int) -> Sequence:
    """Cut the window ``[y0, y0 + height) x [x0, x0 + width)``; boxes move with it and are clipped
    to it (boxes left with no area are dropped)."""
    t, h, w, _ = seq.frames.shape
    if not (0 <= y0 < y0 + height <= h and 0 <= x0 < x0 + width <= w):
        raise ValueError(f"The window {height}x{width} at ({y0}, {x0}) does not lie inside the {h}x{w} frames.")
    b = seq.boxes.copy()
    x1 = np.clip(b[:, 2] + b[:, 4] - x0, 0, width)
    y1 = np.clip(b[:, 3] + b[:, 5] - y0, 0, height)
    b[:, 2], b[:, 3] = np.clip(b[:, 2] - x0, 0, width), np.clip(b[:, 3] - y0, 0, height)
    b[:, 4], b[:, 5] = x1 - b[:, 2], y1 - b[:, 3]
    b = b[(b[:, 4] > 0) & (b[:, 5] > 0)]
    return Sequence(f"{seq.name}-crop", seq.frames[:, y0 : y0 + height, x0 : x0 + width], seq.fps, b)


def box_window(seq: Sequence, multiple: int = 16) -> tuple[int, int, int, int]:
    """``(y0, x0, height, width)`` of the window holding every box, snapped to ``multiple`` px
    (start rounded down, end to the nearest multiple, both inside the frame)."""
    if len(seq.boxes) == 0:
        raise ValueError(f"Sequence {seq.name!r} has no boxes to take a window around.")
    _, h, w, _ = seq.frames.shape
    b = seq.boxes
    x0 = int(np.floor(b[:, 2].min() / multiple)) * multiple
    y0 = int(np.floor(b[:, 3].min() / multiple)) * multiple
    x1 = min(int(np.round((b[:, 2] + b[:, 4]).max() / multiple)) * multiple, w)
    y1 = min(int(np.round((b[:, 3] + b[:, 5]).max() / multiple)) * multiple, h)
    return max(y0, 0), max(x0, 0), y1 - max(y0, 0), x1 - max(x0, 0)


def clip_frames(seq: Sequence, start: int, count: int) -> Sequence:
    """Frames ``start .. start + count - 1`` (fewer at the end) with their boxes renumbered from 1."""
    if count < 1:
        raise ValueError(f"count must be 1 or more frames, got {count}.")
    late = delay(seq, start)
    boxes = late.boxes[late.boxes[:, 0] <= count]
    return Sequence(f"{seq.name}-f{start}", late.frames[:count], seq.fps, boxes)
