"""``mptvc train-entropy``: fit the context entropy model of a checkpoint from token stores.

The transforms stay frozen and no pixel is read: the context tables are counts of the symbols a
store already holds, in the contexts the decoder will know (``entropy/context.py``), so fitting
costs minutes where training the codec costs hours, and every store written with the checkpoint
keeps its tokens (the weights digest ignores the context tables). The result is a checkpoint
folder: the base weights, the fitted tables and a config with ``context``.

Resumable: the counts and the finished clips are saved beside the output after every clip
(``<out>.entropy-state.npz``); a re-run with the same arguments continues where it stopped.
"""

from __future__ import annotations

import dataclasses
import json
import logging
import shutil
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch
from safetensors.torch import load_file, save_file

from mptvc_latents.codec import MPTVC, ChunkContexts, format2_name
from mptvc_latents.config import ContextConfig
from mptvc_latents.files import atomic_folder
from mptvc_latents.formats.token_store import TokenStore

log = logging.getLogger(__name__)

__all__ = ["clip_counts", "fit_context_model", "with_context_model"]


def with_context_model(base: MPTVC, context: ContextConfig) -> MPTVC:
    """A copy of ``base`` with (untrained, uniform) context tables of config ``context``."""
    model = MPTVC(dataclasses.replace(base.config, context=context))
    weights = {name: t for name, t in base.state_dict().items() if ".context." not in name}
    missing, unexpected = model.load_state_dict(weights, strict=False)
    stray = [name for name in missing if ".context." not in name]
    if stray or unexpected:
        raise ValueError(f"The base checkpoint does not match its config: missing {stray}, unexpected {unexpected}.")
    if base.config.context is not None:  # the new tables start uniform, in the layout of the new config
        log.info("The base checkpoint has a context model already; its tables are replaced.")
    return model.eval()


def _zero_counts(model: MPTVC) -> list[np.ndarray]:
    """``(n_contexts, L)`` zeros per level of a model with context tables."""
    zeros = []
    for level in model.pyramid_levels():
        if level.context is None:
            raise ValueError("The model has no context entropy model to count symbols for.")
        zeros.append(np.zeros((level.context.num_contexts, level.context.levels), np.int64))
    return zeros


def clip_counts(model: MPTVC, symbols: Sequence[np.ndarray]) -> list[np.ndarray]:
    """Symbol counts per level and context over one clip, chunk by chunk as the codec codes it.

    ``symbols[k]`` is level k's uint8 ``(T', H', W', C_k)`` (a token store's array, or ``Tokens``).
    """
    chunk_t = model.config.chunk_frames // model.config.patch_t
    contexts = ChunkContexts(model.intra_period, model.num_levels)
    counts = _zero_counts(model)
    for c, start in enumerate(range(0, symbols[0].shape[0], chunk_t)):
        chunk = [np.ascontiguousarray(s[start : start + chunk_t]).transpose(3, 0, 1, 2) for s in symbols]
        for k, level in enumerate(model.pyramid_levels()):
            assert level.context is not None
            scale_index = level.scale_index(torch.from_numpy(chunk[k])[None])  # (C_k, T', H', W')
            context = contexts.level(c, k, chunk[k - 1] if k else None)
            assert context is not None
            counts[k] += level.context.counts(chunk[k], scale_index, context)
        for k, s in enumerate(chunk):
            contexts.done(c, k, s)
    return counts


def fit_context_model(
    stores: Sequence[str | Path],
    base_dir: str | Path | None,
    out: str | Path,
    context: ContextConfig | None = None,
    alpha: float = 0.5,
) -> MPTVC:
    """Fit context tables for the checkpoint at ``base_dir`` (default: the shipped one) on every
    complete clip of ``stores`` and save the result as a checkpoint folder at ``out``: the base
    file's tensors exactly as stored (float16 stays float16, so the symbols are unchanged), the
    fitted tables and the config with ``context``; the base's other files are copied.

    Raises:
        ValueError: when a store was written with another checkpoint, holds fewer levels than the
            codec, or holds no clip.
    """
    out = Path(out)
    base_dir = Path(base_dir) if base_dir is not None else MPTVC.default_checkpoint_dir()
    base = MPTVC.from_pretrained(base_dir)
    model = with_context_model(base, context or ContextConfig())
    state_path = out.with_name(out.name + ".entropy-state.npz")
    counts = _zero_counts(model)
    done: set[str] = set()
    signature = json.dumps({"context": model.config.context.to_dict(), "base": base.weights_digest()})  # type: ignore[union-attr]
    if state_path.is_file():
        state = np.load(state_path, allow_pickle=False)
        if str(state["signature"]) == signature:
            counts = [state[f"counts_{k}"] for k in range(model.num_levels)]
            done = set(str(d) for d in state["done"])
            log.info("resuming: %d clips counted already", len(done))
    for path in stores:
        store = TokenStore.open(path, base)
        for key in store.clips():
            tag = f"{Path(path).resolve()}::{key}"
            if tag in done:
                continue
            meta = store.clip_attrs(key)
            if meta is None or meta["levels"] < model.num_levels:
                log.warning("Skipping clip %s of %s: it holds fewer levels than the codec.", key, path)
                continue
            for k, c in enumerate(clip_counts(model, store.read_tokens(key).symbols)):
                counts[k] += c
            done.add(tag)
            tmp = state_path.with_name(state_path.name + ".tmp.npz")
            arrays: dict[str, Any] = {f"counts_{k}": c for k, c in enumerate(counts)}
            np.savez(tmp, signature=np.array(signature), done=np.array(sorted(done)), **arrays)
            tmp.replace(state_path)
            log.info("counted %s (%d clips)", key, len(done))
    if not done:
        raise ValueError(f"The token stores {[str(s) for s in stores]} hold no complete clip to fit the tables on.")
    for level, c in zip(model.pyramid_levels(), counts, strict=True):
        assert level.context is not None
        level.context.fit(c, alpha)
    with atomic_folder(out) as tmp:
        for extra in base_dir.iterdir():  # training.json, README.md, ...
            if extra.is_file() and extra.name not in ("config.json", "model.safetensors", "entropy.json"):
                shutil.copy2(extra, tmp / extra.name)
        model.save_pretrained(tmp)
        tensors = {format2_name(n): t for n, t in load_file(str(base_dir / "model.safetensors")).items()}
        tensors.update({n: t.contiguous() for n, t in model.state_dict().items() if ".context." in n})
        save_file(tensors, str(tmp / "model.safetensors"))
        record = {"base": base.weights_digest(), "clips": len(done), "alpha": alpha,
                  "symbols_per_level": [int(c.sum()) for c in counts]}  # fmt: skip
        (tmp / "entropy.json").write_text(json.dumps(record, indent=1))
    state_path.unlink(missing_ok=True)
    return MPTVC.from_pretrained(out)  # strict round trip
