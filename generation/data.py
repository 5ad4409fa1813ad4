"""Token stores at one fixed frame size, and the level-0 index windows a prior trains on.

::

    video (T, H, W, 3) -> centre crop to the aspect of SIZE -> area resize to SIZE (h, w)
      -> first max_frames frames, cut to a multiple of 16 (whole token frames, no padding)
      -> codec.encode -> TokenStore.write_clip          (a real store: `mptvc detokenize` reads it)
    TokenDataset(window=W) -> level_0 uint8 (W, h/8, w/8, C_0) -> FSQ indices, raster order (W*h/8*w/8,)

Every clip of such a store has the same token grid, so windows of ``W`` token frames stack into
batches and the prior sees one fixed sequence length.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

from mptvc_latents.codec import MPTVC
from mptvc_latents.config import FSQConfig
from mptvc_latents.quantization.fsq import FSQ
from mptvc_latents.store import ClipMeta, TokenDataset, TokenStore, file_sha256, find_sources
from mptvc_latents.video import read_video

log = logging.getLogger(__name__)

__all__ = [
    "FRAME_MULTIPLE",
    "Grid",
    "IndexWindows",
    "LevelWindows",
    "fit_frames",
    "level_fsq",
    "symbols_to_indices",
    "indices_to_symbols",
    "tokenize_fixed",
]

#: Frames are cut to a multiple of this so a clip is whole token frames and whole codec tiles in time.
FRAME_MULTIPLE = 16
_RESIZE_BATCH = 32  # frames resized at a time: bounds memory for 720p sources


def fit_frames(frames: np.ndarray, size: tuple[int, int]) -> np.ndarray:
    """uint8 ``(T, H, W, 3)`` -> uint8 ``(T, h, w, 3)`` for ``size = (h, w)``: centre crop to the
    aspect ``w/h``, then area (box-filter) resize, so nothing is stretched."""
    h, w = size
    t, H, W, _ = frames.shape
    if H * w > W * h:  # too tall: crop rows
        crop = round(W * h / w)
        frames = frames[:, (H - crop) // 2 : (H - crop) // 2 + crop]
    else:  # too wide: crop columns
        crop = round(H * w / h)
        frames = frames[:, :, (W - crop) // 2 : (W - crop) // 2 + crop]
    out = []
    for start in range(0, t, _RESIZE_BATCH):
        x = torch.from_numpy(np.ascontiguousarray(frames[start : start + _RESIZE_BATCH]))
        x = x.permute(0, 3, 1, 2).float()  # (t, 3, H, W)
        x = F.interpolate(x, size=(h, w), mode="area")
        out.append(x.round().clamp(0, 255).to(torch.uint8).permute(0, 2, 3, 1).numpy())  # (t, h, w, 3)
    return np.concatenate(out)


def tokenize_fixed(
    sources: Sequence[str | Path],
    store_path: str | Path,
    model: MPTVC,
    size: tuple[int, int] = (96, 128),
    max_frames: int = 256,
) -> list[str]:
    """Tokenize videos at one frame ``size`` ``(h, w)`` (multiples of 16) into a token store.

    Takes each clip's first ``max_frames`` frames, cut to a multiple of 16. Resumable: clips already
    complete in the store are skipped. Returns the keys written.

    Raises:
        ValueError: for a bad size, no sources, or a clip shorter than 16 frames.
    """
    if len(size) != 2 or any(s < 16 or s % 16 for s in size):
        raise ValueError(f"size must be (height, width), both multiples of 16 and at least 16, got {size!r}.")
    if max_frames < FRAME_MULTIPLE:
        raise ValueError(f"max_frames must be at least {FRAME_MULTIPLE}, got {max_frames}.")
    found, _ = find_sources(sources, skip_missing=False)
    path = Path(store_path)
    store = TokenStore.open(path, model, writable=True) if path.exists() else TokenStore.create(path, model)
    store.sweep()
    written = []
    for source in found:
        if source.key in store:
            continue
        clip = read_video(source.path, max_frames=max_frames)
        t = clip.frames.shape[0] // FRAME_MULTIPLE * FRAME_MULTIPLE
        if t == 0:
            raise ValueError(f"{str(source.path)!r} has {clip.frames.shape[0]} frames; a clip needs {FRAME_MULTIPLE}.")
        tokens = model.encode(fit_frames(clip.frames[:t], size), clip.fps)
        meta = ClipMeta.build(tokens, source.path, file_sha256(source.path), model.num_levels)
        store.write_clip(source.key, tokens, meta)
        written.append(source.key)
        log.info("tokenized %s: %d frames at %dx%d", source.key, t, *size)
    store.consolidate()
    return written


def level_fsq(store: TokenStore | str | Path, k: int = 0) -> FSQ:
    """The FSQ of level ``k`` of the checkpoint that wrote ``store`` (it fixes the index radix)."""
    store = store if isinstance(store, TokenStore) else TokenStore.open(store)
    level = store.attrs["checkpoint"]["config"]["levels"][k]
    return FSQ(FSQConfig(levels=(level["fsq_levels"],) * level["latent_channels"]))


def symbols_to_indices(fsq: FSQ, symbols: torch.Tensor) -> torch.Tensor:
    """uint8 symbols ``(..., C)`` (channels last, as stored) -> int64 indices ``(...)``."""
    flat = symbols.reshape(-1, symbols.shape[-1])  # (N, C)
    return fsq.symbols_to_indices(flat).reshape(symbols.shape[:-1])


def indices_to_symbols(fsq: FSQ, indices: torch.Tensor) -> torch.Tensor:
    """int64 indices ``(...)`` -> uint8 symbols ``(..., C)`` (channels last, as stored)."""
    return fsq.indices_to_symbols(indices.reshape(-1)).reshape(*indices.shape, fsq.num_channels)  # (N, C) -> (..., C)


@dataclass(frozen=True)
class Grid:
    """A token grid ``(t, h, w)``: ``t`` token frames of ``h x w`` tokens, raster order t, h, w."""

    t: int
    h: int
    w: int

    @property
    def size(self) -> int:
        return self.t * self.h * self.w


class IndexWindows(torch.utils.data.Dataset):
    """Windows of ``window`` level-0 token frames of a store as raster-order indices ``(window*h*w,)``.

    Wraps :class:`TokenDataset` (``stride`` token frames apart); every clip must share one grid.
    """

    def __init__(self, store_path: str | Path, window: int, stride: int = 1, clips: list[str] | None = None) -> None:
        self.tokens = TokenDataset(store_path, k_max=0, window=window, stride=stride, clips=clips)
        if len(self.tokens) == 0:
            raise ValueError(f"The token store {str(store_path)!r} has no window of {window} token frames.")
        self.fsq = level_fsq(store_path)
        first = self.tokens[0]["level_0"]
        self.grid = Grid(*first.shape[:3])
        store = TokenStore.open(store_path)
        for key in {k for k, _ in self.tokens.items}:
            shape = store.level_array(key, 0).shape
            if tuple(shape[1:3]) != (self.grid.h, self.grid.w):
                raise ValueError(
                    f"Clip {key!r} has a {shape[1]}x{shape[2]} token grid, not {self.grid.h}x{self.grid.w}: "
                    f"a prior trains on one grid; tokenize every clip at one size (tokenize_fixed)."
                )

    def __len__(self) -> int:
        return len(self.tokens)

    def __getitem__(self, index: int) -> torch.Tensor:
        symbols = self.tokens[index]["level_0"]  # uint8 (t, h, w, C)
        return symbols_to_indices(self.fsq, symbols).reshape(-1)  # (t*h*w,) raster order


class LevelWindows:
    """Every clip of a store at levels ``0 .. level`` in memory, and random training crops of them.

    A crop is ``window`` token frames of ``crop x crop`` tokens (the whole grid when it is smaller)
    from a random clip, start frame and place; ``batch`` returns the coarser levels concatenated
    ``(B, window, h, w, C_<k)``, level ``level`` ``(B, window, h, w, C_k)`` and level ``level`` of the
    frame before the crop ``(B, h, w, C_k)``, int64, channels last.
    """

    def __init__(self, store_path: str | Path, level: int, clips: list[str] | None = None) -> None:
        if level < 1:
            raise ValueError(f"level must be a finer level (1 or more) to have coarser levels, got {level}.")
        data = TokenDataset(store_path, k_max=level, clips=clips)
        self.level = level
        self.coarser: list[np.ndarray] = []  # per clip (T', H', W', C_<k) uint8
        self.y: list[np.ndarray] = []  # per clip (T', H', W', C_k) uint8
        self.keys: list[str] = []
        for i in range(len(data)):
            item = data[i]
            self.keys.append(item["key"])
            self.coarser.append(np.concatenate([item[f"level_{k}"].numpy() for k in range(level)], -1))
            self.y.append(item[f"level_{level}"].numpy())
        if not self.y:
            raise ValueError(f"The token store {str(store_path)!r} holds no clip to train on.")

    @property
    def positions(self) -> int:
        return sum(int(np.prod(y.shape[:3])) for y in self.y)

    def batch(
        self, batch: int, window: int, crop: int, g: torch.Generator, before_rate: float = 0.75
    ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:
        """``(coarser, y, y_before, has_before)``: ``batch`` random crops; ``has_before (B,)`` marks the
        crops handed the frame before them (about ``before_rate`` of those not at a clip's start;
        ``y_before`` is zeros for the others)."""
        usable = [i for i, y in enumerate(self.y) if y.shape[0] >= window]
        if not usable:
            raise ValueError(f"No clip of the store holds {window} token frames.")
        h = min(crop, *(self.y[i].shape[1] for i in usable))
        w = min(crop, *(self.y[i].shape[2] for i in usable))

        def pick(n: int) -> int:
            return int(torch.randint(n, (1,), generator=g))

        coarser, y, before = [], [], []
        has_before = torch.zeros(batch, dtype=torch.bool)
        for b in range(batch):
            i = usable[pick(len(usable))]
            t, hh, ww, _ = self.y[i].shape
            t0, y0, x0 = pick(t - window + 1), pick(hh - h + 1), pick(ww - w + 1)
            span = (slice(t0, t0 + window), slice(y0, y0 + h), slice(x0, x0 + w))
            coarser.append(torch.from_numpy(self.coarser[i][span]))
            y.append(torch.from_numpy(self.y[i][span]))
            has_before[b] = t0 > 0 and bool(torch.rand(1, generator=g) < before_rate)
            frame = (
                self.y[i][t0 - 1, span[1], span[2]] if has_before[b] else np.zeros_like(self.y[i][0, span[1], span[2]])
            )
            before.append(torch.from_numpy(frame))
        return torch.stack(coarser).long(), torch.stack(y).long(), torch.stack(before).long(), has_before
