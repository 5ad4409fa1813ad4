"""What the heads read, cached once per labelled clip.

The tokens live in a token store written by ``mptvc tokenize`` (``cache_from_store``) or, for
sequences already in memory, by ``cache_sequence``. Layout under a cache folder (keep it under
``runs/``: the tracking data must never be committed)::

    tokens.zarr                 TokenStore of ``cache_sequence`` (``cache_from_store`` names its store in <key>.json)
    <key>.json                  boxes, geometry, coded bytes per level, bpp per prefix, the store and clip
    <key>.decoded_k<k>.npy      uint8 (T, H, W, 3) decoded video of prefix k (the decode-then-detect input)
    <key>.source.npy            uint8 (T, H, W, 3) the original frames (the source-pixel input)
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
from heads.labels import labels_for, read_labels
from mptvc_latents.codec import MPTVC
from mptvc_latents.store import ClipMeta, TokenDataset, TokenStore
from mptvc_latents.video import read_video

log = logging.getLogger(__name__)

__all__ = ["CachedSequence", "cache_from_store", "cache_sequence", "load_cached", "prefix_bpp"]


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

    @property
    def store(self) -> Path:
        """The token store holding this sequence's tokens."""
        return Path(self.meta["store"]) if self.meta.get("store") else self.root / "tokens.zarr"

    @property
    def clip(self) -> str:
        """The sequence's clip key in its token store."""
        return str(self.meta.get("clip") or self.key)

    def symbols(self, k_max: int) -> list[np.ndarray]:
        """Levels ``0 .. k_max`` of uint8 symbols, each ``(T', H', W', C_k)``, read through ``TokenDataset``."""
        item = TokenDataset(self.store, k_max=k_max, clips=[self.clip])[0]
        return [item[f"level_{k}"].numpy() for k in range(k_max + 1)]

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


def cache_from_store(
    model: MPTVC,
    store_path: str | Path,
    root: str | Path,
    labels: str | Path | None = None,
    decode: bool = True,
    rate: bool = False,
    keys: list[str] | None = None,
    source: bool | None = None,
) -> list[CachedSequence]:
    """Cache every clip of a token store written by ``mptvc tokenize`` under the stem of its source
    (``street.mp4`` -> key ``street``): its boxes (``heads.labels``: ``street.txt`` beside the source,
    or in ``labels``), with ``decode`` every prefix decoded from the stored tokens, with ``source``
    (default: ``decode``) the source frames, with ``rate`` the real coded bytes per level (the source
    entropy-coded once more).

    The tokens are not copied: ``<key>.json`` names the store and the clip. A key already cached is
    kept as it is (delete its files to redo it); ``keys`` limits the work to those stems.
    """
    root, store_path = Path(root), Path(store_path).resolve()
    keep_source = decode if source is None else source
    store = TokenStore.open(store_path, model)
    out = []
    for clip in store.clips():
        attrs = store.clip_attrs(clip)
        if attrs is None:
            continue
        video = Path(attrs["source"])
        key = video.stem
        if keys is not None and key not in keys:
            continue
        if (root / f"{key}.json").is_file():
            out.append(load_cached(root, key))
            continue
        boxes = read_labels(labels_for(video, labels))
        t, h, w = int(attrs["frames"]), int(attrs["height"]), int(attrs["width"])
        if len(boxes) and boxes[:, 0].max() > t:
            raise ValueError(f"{key}: labels reach frame {int(boxes[:, 0].max())} but the clip has {t} frames.")
        root.mkdir(parents=True, exist_ok=True)
        tokens = store.read_tokens(clip)
        level_bytes = None
        if decode or rate or keep_source:
            frames = read_video(video).frames
            if rate:
                level_bytes = model.compress(frames, float(attrs["fps"])).level_bytes()
            if keep_source:
                np.save(root / f"{key}.source.npy", frames)
            if decode:
                for k in range(len(tokens.symbols)):
                    np.save(root / f"{key}.decoded_k{k}.npy", model.decode(tokens, k_max=k))
        meta = {
            "name": key, "frames": t, "height": h, "width": w, "fps": float(attrs["fps"]),
            "token_grid": list(tokens.symbols[0].shape[:3]), "level_bytes": level_bytes,
            "bpp": prefix_bpp(level_bytes, t, h, w) if level_bytes else None,
            "boxes": boxes.tolist(), "store": str(store_path), "clip": clip, "source": str(video),
        }  # fmt: skip
        (root / f"{key}.json").write_text(json.dumps(meta))
        log.info("cached %s (%s): %d frames %dx%d, grid %s, bytes %s", key, clip, t, w, h, meta["token_grid"],
                 level_bytes)  # fmt: skip
        out.append(CachedSequence(root, key, meta))
    return out


def load_cached(root: str | Path, key: str) -> CachedSequence:
    """A sequence cached by ``cache_sequence``."""
    root = Path(root)
    path = root / f"{key}.json"
    if not path.is_file():
        raise ValueError(f"No cached sequence {key!r} under {str(root)!r}: run `mptvc heads cache` first.")
    return CachedSequence(root, key, json.loads(path.read_text()))
