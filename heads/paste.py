"""Copy-paste enlargement: the annotated boxes of a sequence pasted onto another real clip.

Every box rectangle of source frame ``f`` is copied, pixels and position unchanged, onto frame ``f``
of a background clip (resized to cover the source frame and centre-cropped), farther people
(smaller box bottom) first so nearer ones occlude them. The boxes stay exactly the source boxes;
only the scenery around the people changes, so a head cannot learn the training scene's background.
"""

from __future__ import annotations

import numpy as np

from heads.data import Sequence, crop, rescale

__all__ = ["cover", "paste_boxes"]


def cover(frames: np.ndarray, height: int, width: int) -> np.ndarray:
    """Resize ``frames (T, h, w, 3)`` to cover ``height x width`` (aspect kept) and centre-crop to it."""
    t, h, w, _ = frames.shape
    scale = max(height / h, width / w)
    seq = Sequence("bg", np.asarray(frames), 25.0, np.zeros((0, 6)))
    big = rescale(seq, scale) if abs(scale - 1) > 1e-9 else seq
    bh, bw = big.frames.shape[1:3]
    if bh < height or bw < width:  # rounding: one more pixel
        big = rescale(seq, scale * (1 + 2 / min(h, w)))
        bh, bw = big.frames.shape[1:3]
    return crop(big, (bh - height) // 2, (bw - width) // 2, height, width).frames


def paste_boxes(source: Sequence, background: np.ndarray, name: str | None = None) -> Sequence:
    """Paste ``source``'s boxes onto ``background (T_b, h, w, 3)`` (``T_b >= source.num_frames``)."""
    t, h, w, _ = source.frames.shape
    if background.ndim != 4 or background.shape[0] < t:
        raise ValueError(f"The background needs at least {t} frames of (H, W, 3), got shape {background.shape}.")
    out = np.array(cover(background[:t], h, w), dtype=np.uint8, copy=True)
    for f in range(t):
        rows = source.boxes[source.boxes[:, 0] == f + 1]
        for _, _, x, y, bw, bh in rows[np.argsort(rows[:, 3] + rows[:, 5])]:
            x0, y0 = max(int(np.floor(x)), 0), max(int(np.floor(y)), 0)
            x1, y1 = min(int(np.ceil(x + bw)), w), min(int(np.ceil(y + bh)), h)
            out[f, y0:y1, x0:x1] = source.frames[f, y0:y1, x0:x1]
    return Sequence(name or f"{source.name}-pasted", out, source.fps, source.boxes.copy())
