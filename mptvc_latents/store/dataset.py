"""``TokenDataset``: a torch ``Dataset`` of token clips or windows read from a token store.

Each item is ``{"key": str, "t0": int, "level_0": uint8 (T', H', W', C_0), ..., "level_k": ...,
"mask": uint8 (T', k_max + 1)}`` for levels ``0 .. k_max``; ``mask`` is 1 where a token frame of a
level holds sent tokens (0 where rate control did not send it: ``mptvc tokenize --target-bpp``;
all ones for other clips). The store is opened lazily in each process (the handle is never
pickled), so DataLoader workers each read through their own; a window reads only the zarr
chunks it overlaps.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch.utils.data import Dataset

from mptvc_latents.formats.token_store import TokenStore

__all__ = ["TokenDataset"]


class TokenDataset(Dataset):
    """Whole clips (``window=None``) or windows of ``window`` token frames every ``stride``
    (default ``window``) of the complete clips of a store, at levels ``0 .. k_max``.

    Windows never run past a clip's end (a clip shorter than ``window`` gives none); ``t0`` is
    the window's first token frame. Whole clips differ in shape: batch them with ``batch_size=None``.
    """

    def __init__(
        self,
        store_path: str | Path,
        k_max: int | None = None,
        window: int | None = None,
        stride: int | None = None,
        clips: list[str] | None = None,
    ) -> None:
        if window is not None and window < 1:
            raise ValueError(f"window must be 1 or more token frames, got {window}.")
        if stride is not None and (window is None or stride < 1):
            raise ValueError("stride needs a window and must be 1 or more.")
        self.store_path = Path(store_path)
        store = TokenStore.open(self.store_path)
        keys = store.clips() if clips is None else list(clips)
        levels = []
        self.items: list[tuple[str, int]] = []
        for key in keys:
            meta = store.clip_attrs(key)
            if meta is None:
                raise ValueError(f"The token store {str(self.store_path)!r} has no complete clip {key!r}.")
            levels.append(meta["levels"])
            if window is None:
                self.items.append((key, 0))
                continue
            length = store.level_array(key, 0).shape[0]
            self.items.extend((key, t0) for t0 in range(0, length - window + 1, stride or window))
        available = min(levels, default=1)
        self.k_max = available - 1 if k_max is None else k_max
        if not 0 <= self.k_max < available:
            raise ValueError(f"k_max={self.k_max} is out of range: every clip here holds levels 0..{available - 1}.")
        self.window = window
        self._store: TokenStore | None = None
        self._pid: int | None = None

    def __len__(self) -> int:
        return len(self.items)

    def _open(self) -> TokenStore:
        if self._store is None or self._pid != os.getpid():
            self._store, self._pid = TokenStore.open(self.store_path), os.getpid()
        return self._store

    def __getitem__(self, index: int) -> dict[str, Any]:
        key, t0 = self.items[index]
        store = self._open()
        span = slice(None) if self.window is None else slice(t0, t0 + self.window)
        item: dict[str, Any] = {"key": key, "t0": t0}
        for k in range(self.k_max + 1):
            item[f"level_{k}"] = torch.from_numpy(np.ascontiguousarray(store.level_array(key, k)[span]))
        mask = store.read_mask(key)  # (T', K), or None: every token sent
        if mask is None:
            mask = np.ones((item["level_0"].shape[0], self.k_max + 1), np.uint8)  # the item's (t, k_max + 1)
        else:
            mask = np.ascontiguousarray(mask[span, : self.k_max + 1])
        item["mask"] = torch.from_numpy(mask)
        return item

    def __getstate__(self) -> dict[str, Any]:
        return {**self.__dict__, "_store": None, "_pid": None}
