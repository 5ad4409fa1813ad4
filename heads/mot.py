"""MOTChallenge text files: ``frame,id,x,y,w,h,conf,-1,-1,-1`` per line (frame 1-based, pixels)."""

from __future__ import annotations

from pathlib import Path

import numpy as np

__all__ = ["write_mot", "read_mot"]


def write_mot(path: str | Path, rows: np.ndarray) -> None:
    """Write ``rows (N, 7)`` ``[frame, id, x, y, w, h, conf]`` sorted by frame then id."""
    rows = np.asarray(rows, dtype=np.float64).reshape(-1, 7) if len(rows) else np.zeros((0, 7))
    if rows.shape[1] != 7:
        raise ValueError(f"MOT rows must have 7 columns [frame, id, x, y, w, h, conf], got {rows.shape[1]}.")
    if len(rows) and (rows[:, 0].min() < 1 or (rows[:, 0] % 1).any() or (rows[:, 1] % 1).any()):
        raise ValueError("MOT frames must be integers from 1 and ids integers.")
    rows = rows[np.lexsort((rows[:, 1], rows[:, 0]))]
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("w") as f:
        for fr, tid, x, y, w, h, c in rows:
            f.write(f"{int(fr)},{int(tid)},{x:.2f},{y:.2f},{w:.2f},{h:.2f},{c:.4f},-1,-1,-1\n")


def read_mot(path: str | Path) -> np.ndarray:
    """Read a MOT file as ``(N, 7)`` ``[frame, id, x, y, w, h, conf]`` (an empty file gives ``(0, 7)``)."""
    path = Path(path)
    if not path.is_file():
        raise ValueError(f"The MOT file {str(path)!r} does not exist.")
    text = path.read_text().strip()
    if not text:
        return np.zeros((0, 7))
    rows = np.loadtxt(path, delimiter=",", ndmin=2)
    if rows.shape[1] < 7:
        raise ValueError(f"{str(path)!r} is not a MOT file: lines need at least 7 comma-separated numbers.")
    return rows[:, :7]
