"""A Hugging Face ``datasets`` builder over token stores: one Arrow row per clip.

::

    videos (files, folders, globs) + checkpoint --tokenize--> CACHE/mptvc_tokens/stores/<digest>.zarr --+
    an existing token store ----------------------------------------------------------------------------+
        --> rows {key, source, fps, frames, height, width, [t0,] level_k, level_k_shape} --> Arrow in
            CACHE/mptvc_tokens/<name>-<id>/1.0.0/   (id: checkpoint digest + file-list fingerprint + k_max)

**Cache key.** ``MptvcTokensConfig`` resolves, when built, the checkpoint digest
(``MPTVC.weights_digest()``, or the store's recorded ``checkpoint.digest``) and a fingerprint of the
inputs (per video: resolved path, size and mtime; per store clip: key, source sha256 and levels).
Its ``create_config_id`` hashes both with ``k_max``, so the Arrow cache directory changes when the
checkpoint or the file list changes, and a second identical call reuses the cache without reading a
video or a store. Videos are tokenized into one store per checkpoint beside the Arrow caches; that
store resumes, so a grown file list only encodes the new files.

**Features.** ``datasets`` array features allow a dynamic size in their first dimension only
(``Array4D(shape=(None, h, w, c))`` needs fixed ``h, w``), and clips differ in size, so each level
is a flat ``List(Value("uint8"))`` of the ``(t, h, w, c)`` symbols (C order) with the shape beside it
in ``level_k_shape`` (four int32): ``row["level_0"].reshape(row["level_0_shape"])``.

**uint8 under torch.** The stock torch format turns every integer array into int64 (8x the
memory). :class:`SymbolDataset`, which ``load_token_dataset`` returns, keeps uint8 columns uint8
under ``with_format("torch")`` (unless a ``dtype`` is passed); other columns are as usual.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import datasets
import numpy as np
from datasets.formatting import format_table, query_table
from datasets.formatting.torch_formatter import TorchFormatter

log = logging.getLogger(__name__)

__all__ = ["MptvcTokens", "MptvcTokensConfig", "SymbolDataset", "load_token_dataset", "token_features"]

_TORCH_NAMES = frozenset({"torch", "pt", "pytorch"})


def token_features(levels: int, windowed: bool = False, masked: bool = False) -> datasets.Features:
    """One row per clip (or, ``windowed``, per window of a clip, with its first token frame ``t0``):
    its metadata, and per level the flat uint8 symbols plus their ``(t, h, w, c)`` shape; ``masked``
    (rate-controlled tokens): ``mask``, flat uint8 ``(t, levels)``, 1 where a level's token frame
    was sent, and ``mask_shape``."""
    features = {
        "key": datasets.Value("string"),
        "source": datasets.Value("string"),
        "fps": datasets.Value("float64"),
        "frames": datasets.Value("int32"),
        "height": datasets.Value("int32"),
        "width": datasets.Value("int32"),
    }
    if windowed:
        features["t0"] = datasets.Value("int32")
    for k in range(levels):
        features[f"level_{k}"] = datasets.List(datasets.Value("uint8"))
        features[f"level_{k}_shape"] = datasets.List(datasets.Value("int32"), length=4)
    if masked:
        features["mask"] = datasets.List(datasets.Value("uint8"))
        features["mask_shape"] = datasets.List(datasets.Value("int32"), length=2)
    return datasets.Features(features)


def _sha(obj: Any) -> str:
    return hashlib.sha256(json.dumps(obj, sort_keys=True).encode()).hexdigest()


@dataclass
class MptvcTokensConfig(datasets.BuilderConfig):
    """What to export: ``videos`` (files, folders, globs) with ``ckpt`` (default: the shipped
    checkpoint), or an existing token ``store``; levels ``0 .. k_max`` (default: all); a row per
    clip, or with ``window`` a row per ``window`` token frames of a clip (long clips: a row stays
    small, and the builder reads a window of the store at a time).

    ``checkpoint_digest``, ``files_fingerprint`` and ``levels`` are filled in when the config is
    built (the checkpoint is loaded for its digest); they key the cache. ``target`` (videos only,
    ``{"bpp": 0.05}`` or ``{"psnr": 30.0}``) tokenizes for a rate target (``ratecontrol.py``); rows of
    rate-controlled tokens (a target, or a store with such clips: ``masked``) carry ``mask``.
    """

    videos: Sequence[str] | None = None
    ckpt: str | None = None
    store: str | None = None
    k_max: int | None = None
    window: int | None = None
    target: dict[str, float] | None = None
    checkpoint_digest: str = ""
    files_fingerprint: str = ""
    levels: int = 0
    masked: bool = False

    def __post_init__(self) -> None:
        super().__post_init__()
        if self.target is not None:
            if self.store is not None:
                raise ValueError("target is for tokenizing videos; a store's clips were tokenized already.")
            self.rate_target()  # checks it
            self.masked = True
        if self.store is not None and self.videos is None:
            available = self._resolve_store(self.store)
        elif self.videos is not None and self.store is None:
            available = self._resolve_videos(self.videos)
        else:
            raise ValueError(
                "Give either videos (files, folders or globs) or an existing token store, not both or neither."
            )
        if self.window is not None and (not isinstance(self.window, int) or self.window < 1):
            raise ValueError(f"window must be a number of token frames, 1 or more, got {self.window!r}.")
        k_max = available - 1 if self.k_max is None else self.k_max
        if not 0 <= k_max < available:
            raise ValueError(f"k_max={k_max} is out of range: the tokens hold levels 0..{available - 1}.")
        self.k_max, self.levels = k_max, k_max + 1

    def _resolve_store(self, path: str) -> int:
        from mptvc_latents.store import TokenStore

        if self.ckpt is not None:
            raise ValueError("ckpt is for tokenizing videos; a store records its own checkpoint, leave ckpt out.")
        self.store = str(Path(path).resolve())
        store = TokenStore.open(self.store)
        self.checkpoint_digest = store.attrs["checkpoint"]["digest"]
        clips = [(key, meta) for key in store.clips() if (meta := store.clip_attrs(key)) is not None]
        if not clips:
            raise ValueError(f"The token store {self.store!r} has no complete clip.")
        self.files_fingerprint = _sha([[key, meta["sha256"], meta["levels"]] for key, meta in clips])
        self.masked = any("rate" in meta for _, meta in clips)
        if self.masked:  # the fingerprint above is the one unmasked stores always had
            self.files_fingerprint = _sha([self.files_fingerprint, [meta.get("rate") for _, meta in clips]])
        return min(meta["levels"] for _, meta in clips)

    def rate_target(self) -> Any:
        """``target`` as a ``ratecontrol.RateTarget`` (None without one)."""
        if self.target is None:
            return None
        from mptvc_latents.ratecontrol import RateTarget

        if not isinstance(self.target, dict) or len(self.target) != 1 or not set(self.target) <= {"bpp", "psnr"}:
            raise ValueError(f"target must be {{'bpp': value}} or {{'psnr': value}}, got {self.target!r}.")
        return RateTarget(bpp=self.target.get("bpp"), psnr=self.target.get("psnr"))

    def _resolve_videos(self, videos: Sequence[str]) -> int:
        from mptvc_latents.codec import MPTVC
        from mptvc_latents.store import find_sources

        self.videos = (str(videos),) if isinstance(videos, (str, os.PathLike)) else tuple(str(v) for v in videos)
        found, missing = find_sources(self.videos)
        if missing:
            arg, reason = missing[0]
            raise ValueError(f"Cannot export {arg!r}: {reason}.")
        stats = [(str(s.path), s.key, s.path.stat().st_size, s.path.stat().st_mtime_ns) for s in found]
        self.files_fingerprint = _sha(stats)
        self.ckpt = None if self.ckpt is None else str(Path(self.ckpt).resolve())
        model = MPTVC.from_pretrained(self.ckpt)
        self.checkpoint_digest = model.weights_digest()
        return model.num_levels

    def create_config_id(self, config_kwargs: dict, custom_features: datasets.Features | None = None) -> str:
        key: list[Any] = [self.checkpoint_digest, self.files_fingerprint, self.k_max]
        if self.window is not None:  # rows per clip keep the ids they had
            key.append({"window": self.window})
        if self.target is not None:
            key.append({"target": self.target})
        if custom_features is not None:
            key.append(custom_features.to_dict())
        return f"{self.name}-{_sha(key)[:20]}"


class MptvcTokens(datasets.GeneratorBasedBuilder):
    """One ``train`` split, one row per clip (features: :func:`token_features`).

    ``MptvcTokens(cache_dir=..., videos=[...], ckpt=...)`` or ``(store=...)``, then
    ``download_and_prepare()`` and ``as_dataset("train")``; :func:`load_token_dataset` does all three.
    """

    BUILDER_CONFIG_CLASS = MptvcTokensConfig
    VERSION = datasets.Version("1.0.0")

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        kwargs.setdefault("dataset_name", "mptvc_tokens")
        super().__init__(*args, **kwargs)

    def _info(self) -> datasets.DatasetInfo:
        return datasets.DatasetInfo(
            description="FSQ symbols of MPT-VC token stores, one row per clip (docs/token_store.md).",
            features=token_features(
                self.config.levels, windowed=self.config.window is not None, masked=self.config.masked
            ),
        )

    def _split_generators(self, dl_manager: Any) -> list[datasets.SplitGenerator]:
        return [datasets.SplitGenerator(name=datasets.Split.TRAIN, gen_kwargs={})]

    def store_path(self) -> Path:
        """Where videos are tokenized: one resumable store per checkpoint, beside the Arrow caches."""
        root = Path(self._cache_dir_root) / self.dataset_name / "stores"
        target = (
            "" if self.config.target is None else "-" + "-".join(f"{k}{v:g}" for k, v in self.config.target.items())
        )
        return root / f"{self.config.checkpoint_digest[:20]}{target}.zarr"

    def _generate_examples(self) -> Iterator[tuple[str, dict[str, Any]]]:
        from mptvc_latents.store import TokenStore

        config: MptvcTokensConfig = self.config
        if config.store is not None:
            store = TokenStore.open(config.store)
            keys = store.clips()
        else:
            assert config.videos is not None  # MptvcTokensConfig requires videos or a store
            store, keys = self._tokenize(config.videos)
        for key in keys:
            meta = store.clip_attrs(key)
            if meta is None:
                raise KeyError(f"The token store {str(store.path)!r} has no complete clip {key!r}.")
            tokens = store.read_tokens(key, config.k_max, lazy=True)  # zarr arrays, read by window
            mask = (
                tokens.mask
                if tokens.mask is not None
                else np.ones((tokens.symbols[0].shape[0], config.levels), np.uint8)
            )
            length = tokens.symbols[0].shape[0]
            window = length if config.window is None else config.window
            for t0 in range(0, length - window + 1, window):  # windows never run past the end
                row = {k: meta[k] for k in ("source", "fps", "frames", "height", "width")}
                row["key"] = key
                if config.window is not None:
                    row["t0"] = t0
                for k, array in enumerate(tokens.symbols):
                    symbols = np.asarray(array[t0 : t0 + window], dtype=np.uint8)  # (t, h, w, c)
                    row[f"level_{k}"] = symbols.reshape(-1)
                    row[f"level_{k}_shape"] = list(symbols.shape)
                if config.masked:
                    window_mask = np.asarray(mask[t0 : t0 + window], dtype=np.uint8)  # (t, levels)
                    row["mask"], row["mask_shape"] = window_mask.reshape(-1), list(window_mask.shape)
                yield (key if config.window is None else f"{key}@{t0}"), row

    def _tokenize(self, videos: Sequence[str]) -> tuple[Any, list[str]]:
        from filelock import FileLock

        from mptvc_latents.codec import MPTVC
        from mptvc_latents.store import StoreCheckpointError, TokenStore, find_sources, tokenize

        config: MptvcTokensConfig = self.config
        model = MPTVC.from_pretrained(config.ckpt)
        if model.weights_digest() != config.checkpoint_digest:
            raise StoreCheckpointError(f"The checkpoint at {config.ckpt!r} changed while the dataset was built; retry.")
        path = self.store_path()
        path.parent.mkdir(parents=True, exist_ok=True)
        with FileLock(str(path) + ".lock"):  # one writer per store (docs/token_store.md)
            target = config.rate_target()
            levels = None if target is not None else config.levels  # a target chooses the levels itself
            summary = tokenize(list(videos), path, model, levels=levels, progress=False, target=target)
        for source, reason in summary.failed:
            log.warning("left out %s: %s", source, reason)
        done = set(summary.written) | set(summary.skipped)
        found, _ = find_sources(videos)
        return TokenStore.open(path), [s.key for s in found if s.key in done]


class _SymbolTorchFormatter(TorchFormatter):
    """The torch formatter, but uint8 arrays stay uint8 (symbols are bytes; int64 would take 8x)."""

    def _tensorize(self, value: Any) -> Any:
        if isinstance(value, np.ndarray) and value.dtype == np.uint8 and not self.torch_tensor_kwargs:
            import torch

            return torch.from_numpy(np.array(value))  # a copy: Arrow buffers are read-only
        return super()._tensorize(value)


class SymbolDataset(datasets.Dataset):
    """A ``datasets.Dataset`` whose torch format keeps uint8 columns uint8 (indexing, batches,
    DataLoader and iteration); every other format and column behaves as in ``datasets``.
    Methods that make new datasets (``map``, ``select``, ...) return plain ``Dataset`` objects."""

    def _torch(self, format_type: str | None, format_kwargs: dict | None) -> bool:
        return format_type in _TORCH_NAMES and not format_kwargs

    def _getitem(self, key: Any, **kwargs: Any) -> Any:
        format_type = kwargs.get("format_type", self._format_type)
        format_kwargs = kwargs.get("format_kwargs", self._format_kwargs)
        if not self._torch(format_type, format_kwargs) or isinstance(key, bool):
            return super()._getitem(key, **kwargs)
        formatter = _SymbolTorchFormatter(features=self._info.features)
        return format_table(
            query_table(self._data, key, indices=self._indices),
            key,
            formatter=formatter,
            format_columns=kwargs.get("format_columns", self._format_columns),
            output_all_columns=kwargs.get("output_all_columns", self._output_all_columns),
        )

    def __iter__(self) -> Iterator[Any]:
        if not self._torch(self._format_type, self._format_kwargs):
            yield from super().__iter__()
            return
        for i in range(self.num_rows):
            yield self._getitem(i)


def load_token_dataset(
    source: str | os.PathLike | Sequence[str | os.PathLike] | None = None,
    *,
    ckpt: str | os.PathLike | None = None,
    store: str | os.PathLike | None = None,
    k_max: int | None = None,
    window: int | None = None,
    cache_dir: str | os.PathLike | None = None,
    target: dict[str, float] | None = None,
) -> SymbolDataset:
    """The clips of ``source`` (video files, folders, globs; encoded with ``ckpt``, default the
    shipped checkpoint) or of an existing token ``store``, levels ``0 .. k_max``, as a
    ``datasets.Dataset`` cached as Arrow under ``cache_dir`` (default: the ``datasets`` cache).

    A second call with the same checkpoint and the same files (paths, sizes, mtimes) or store
    clips reuses the cache; anything else builds a new one. ``window``: a row per ``window`` token
    frames of each clip (column ``t0``, the first), for long clips; windows never run past a clip's
    end, so a clip shorter than ``window`` gives none. ``target`` (``{"bpp": 0.05}`` or
    ``{"psnr": 30.0}``, with ``source``): tokenize for a rate target; rows then carry ``mask`` (as do
    rows of a store with rate-controlled clips).

    Raises:
        ValueError: for both or neither of ``source`` and ``store``, missing inputs, a bad
            checkpoint or ``k_max`` out of range.
    """
    config: dict[str, Any] = {"k_max": k_max, "window": window}
    if target is not None:
        config["target"] = dict(target)
    if store is not None and source is None:
        if ckpt is not None:
            raise ValueError("ckpt is for tokenizing videos; a store records its own checkpoint, leave ckpt out.")
        config["store"] = str(store)
    elif source is not None and store is None:
        config["videos"] = [source] if isinstance(source, (str, os.PathLike)) else list(source)
        config["ckpt"] = None if ckpt is None else str(ckpt)
    else:
        raise ValueError("Give either source (videos) or store=, not both or neither.")
    builder = MptvcTokens(cache_dir=None if cache_dir is None else str(cache_dir), **config)
    builder.download_and_prepare()
    ds = builder.as_dataset(split="train")
    return SymbolDataset(ds.data, info=ds.info, split=ds.split, indices_table=ds._indices, fingerprint=ds._fingerprint)
