"""Tokenize annotated sequences once and cache what the heads read.

Layout under a cache folder (keep it under ``runs/``: the tracking data must never be committed)::

    tokens.zarr                 TokenStore: FSQ symbols per level, one clip per sequence key
    <key>.json                  boxes, geometry, coded bytes per level, bpp per prefix
    <key>.decoded_k<k>.npy      uint8 (T, H, W, 3) decoded video of prefix k (the baseline's input)
    <key>.source.npy            uint8 (T, H, W, 3) the original frames (an uncompressed reference)
"""

from __future__ import annotations

import hashlib
import json
import logging
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from heads.data import Sequence
from mptvc_latents.codec import MPTVC
from mptvc_latents.store import ClipMeta, TokenStore

log = logging.getLogger(__name__)

__all__ = ["CachedSequence", "cache_sequence", "load_cached", "prefix_bpp"]


@dataclass(frozen=True)
class CachedSequence:
    """A cached sequence: where its tokens and decoded videos live, and its boxes and rates."""

    root: Path
    key: str
    meta: dict

    @property
    def boxes(self) -> np.ndarray:
        return np.asarray(self.meta["boxes"], dtype=np.float64).reshape(-1, 6)  # (N, 6) MOT rows

    @property
    def num_frames(self) -> int:
        return int(self.meta["frames"])

    def symbols(self, k_max: int) -> list[np.ndarray]:
        """Levels ``0 .. k_max`` of uint8 symbols, each ``(T', H', W', C_k)``."""
        return TokenStore.open(self.root / "tokens.zarr").read_tokens(self.key, k_max).symbols

    def decoded(self, k: int) -> np.ndarray:
        """uint8 ``(T, H, W, 3)`` video decoded from prefix ``k`` (memory-mapped)."""
        return np.load(self.root / f"{self.key}.decoded_k{k}.npy", mmap_mode="r")

    def source(self) -> np.ndarray:
        return np.load(self.root / f"{self.key}.source.npy", mmap_mode="r")


def prefix_bpp(level_bytes: list[int], frames: int, height: int, width: int) -> list[float]:
    """Bits per pixel of each prefix: ``8 * sum(bytes[:k+1]) / (T * H * W)``."""
    if frames <= 0 or height <= 0 or width <= 0:
        raise ValueError(f"A video of {frames} frames of {height}x{width} has no pixels to spread bits over.")
    return [8.0 * sum(level_bytes[: k + 1]) / (frames * height * width) for k in range(len(level_bytes))]


def cache_sequence(
    model: MPTVC, seq: Sequence, root: str | Path, key: str | None = None, decode: bool = True, rate: bool = True
) -> CachedSequence:
    """Encode ``seq`` with the frozen codec, write its tokens to ``root/tokens.zarr`` and, when
    ``decode``, every prefix decoded back; ``rate`` also entropy-codes it for real bytes per level.

    A key already cached is returned as it is (delete its files to redo it).
    """
    root = Path(root)
    key = key or seq.name
    meta_path = root / f"{key}.json"
    if meta_path.is_file():
        return load_cached(root, key)
    root.mkdir(parents=True, exist_ok=True)
    store_path = root / "tokens.zarr"
    store = (
        TokenStore.open(store_path, model, writable=True)
        if store_path.exists()
        else TokenStore.create(store_path, model)
    )
    t, h, w, _ = seq.frames.shape
    start = time.perf_counter()
    tokens = model.encode(seq.frames, seq.fps)
    encode_s = time.perf_counter() - start
    digest = hashlib.sha256(seq.frames.tobytes()).hexdigest()
    store.write_clip(key, tokens, ClipMeta.build(tokens, seq.name, digest, model.num_levels))
    store.consolidate()
    level_bytes = model.compress(seq.frames, seq.fps).level_bytes() if rate else None
    if decode:
        for k in range(model.num_levels):
            np.save(root / f"{key}.decoded_k{k}.npy", model.decode(tokens, k_max=k))
        np.save(root / f"{key}.source.npy", seq.frames)
    meta = {
        "name": seq.name, "frames": t, "height": h, "width": w, "fps": seq.fps,
        "token_grid": list(tokens.symbols[0].shape[:3]),
        "level_bytes": level_bytes,
        "bpp": prefix_bpp(level_bytes, t, h, w) if level_bytes else None,
        "encode_s": encode_s, "boxes": seq.boxes.tolist(),
    }  # fmt: skip
    meta_path.write_text(json.dumps(meta))
    log.info(
        "cached %s: %d frames %dx%d, grid %s, encode %.1f s, bytes %s",
        key,
        t,
        w,
        h,
        meta["token_grid"],
        encode_s,
        level_bytes,
    )
    return CachedSequence(root, key, meta)


def load_cached(root: str | Path, key: str) -> CachedSequence:
    """A sequence cached by ``cache_sequence``."""
    root = Path(root)
    path = root / f"{key}.json"
    if not path.is_file():
        raise ValueError(f"No cached sequence {key!r} under {str(root)!r}: run `mptvc heads cache` first.")
    return CachedSequence(root, key, json.loads(path.read_text()))
