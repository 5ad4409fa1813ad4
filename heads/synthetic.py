"""Shippable annotated video: textured sprites pasted onto real frames, with exact boxes and ids.

Used by the tests and the notebook (the tracking sequences may not be copied into the repo).
Each sprite has its own colour pair and stripe pattern, a size, and a straight path that
bounces off the borders; paths may cross. The boxes are the pasted pixels, exactly.
"""

from __future__ import annotations

import numpy as np

from heads.data import Sequence

__all__ = ["paste_sprites"]


def _sprite(h: int, w: int, rng: np.random.Generator) -> np.ndarray:
    """A ``(h, w, 3)`` uint8 sprite: two colours in horizontal stripes, a darker head block on top."""
    a, b = rng.integers(30, 226, size=(2, 3))
    period = int(rng.integers(3, 7))
    rows = (np.arange(h) // period) % 2  # (h,)
    img = np.where(rows[:, None, None] == 0, a, b) * np.ones((1, w, 1))
    img[: max(h // 5, 2)] = (a * 0.5).astype(int)
    return img.astype(np.uint8)


def paste_sprites(
    frames: np.ndarray,
    num_objects: int = 3,
    size: tuple[int, int] = (40, 16),
    seed: int = 0,
    fps: float = 25.0,
    name: str = "sprites",
) -> Sequence:
    """Paste ``num_objects`` moving sprites of about ``size = (h, w)`` px onto ``frames (T, H, W, 3)``.

    Returns a ``Sequence`` whose boxes ``[frame, id, x, y, w, h]`` are exactly the pasted rectangles
    (ids from 1, every object in every frame).
    """
    frames = np.array(frames, dtype=np.uint8, copy=True)
    if frames.ndim != 4 or frames.shape[-1] != 3:
        raise ValueError(f"frames must be uint8 (T, H, W, 3), got shape {frames.shape}.")
    t, H, W, _ = frames.shape
    sh, sw = size
    if num_objects < 1 or sh * 2 > H or sw * 2 > W:
        raise ValueError(f"Need at least one object, each at most half the frame: {num_objects} of {size} in {H}x{W}.")
    rng = np.random.default_rng(seed)
    rows = []
    for oid in range(1, num_objects + 1):
        h = int(sh * rng.uniform(0.8, 1.25))
        w = int(sw * rng.uniform(0.8, 1.25))
        sprite = _sprite(h, w, rng)
        pos = np.array([rng.uniform(0, W - w), rng.uniform(0, H - h)])
        vel = rng.uniform(1.0, 3.0, size=2) * rng.choice([-1, 1], size=2)
        for f in range(t):
            for d, limit in ((0, W - w), (1, H - h)):
                if not 0 <= pos[d] + vel[d] <= limit:
                    vel[d] = -vel[d]
            pos += vel
            x, y = int(round(pos[0])), int(round(pos[1]))
            frames[f, y : y + h, x : x + w] = sprite
            rows.append([f + 1, oid, x, y, w, h])
    return Sequence(name, frames, fps, np.array(rows, dtype=np.float64))
