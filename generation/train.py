"""Training the generation models on a token store, on CPU, resumably: a :class:`TokenPrior` on the
level-0 windows (``train_prior``) or a :class:`DetailPrior` of a finer level on random crops
(``train_detail``), through one loop (``fit``).

::

    STORE.zarr -> IndexWindows (every window of t' token frames, stride 1, held in memory)
               or LevelWindows (levels 0..k of every clip in memory; crops of t' x crop x crop tokens)
      -> random batches (seeded by step, so a resumed run draws the same batches)
      -> AdamW, linear warm-up + cosine decay, grad-norm clip -> RUN/checkpoint/ every save_every steps
    RUN/log.jsonl   one JSON line per log_every steps: step, loss in bits/token, lr, tokens/s, elapsed
    RUN/prior/ (RUN/detail/)  the final model, hub-style (config.json + model.safetensors)

A killed run restarts from ``RUN/checkpoint`` (weights, optimizer, step) with the same command.
"""

from __future__ import annotations

import json
import logging
import math
import statistics
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import Tensor

from generation.data import IndexWindows, LevelWindows
from generation.detail import DetailConfig, DetailPrior
from generation.model import PriorConfig, TokenPrior
from mptvc_latents.config import ConfigBase
from mptvc_latents.files import atomic_folder, completed_folder
from mptvc_latents.store import TokenStore
from mptvc_latents.train.schedule import warmup_cosine

log = logging.getLogger(__name__)

__all__ = ["DetailTrainConfig", "TrainConfig", "detail_config_for", "fit", "train_detail", "train_prior"]


@dataclass(frozen=True)
class TrainConfig(ConfigBase):
    """Optimisation of one prior run."""

    steps: int = 400
    batch: int = 8
    lr: float = 2e-3
    min_lr: float = 1e-4
    warmup: int = 40
    weight_decay: float = 0.05
    grad_clip: float = 1.0
    seed: int = 0
    log_every: int = 10
    save_every: int = 25
    keep_every: int = 0  # also keep the model of every keep_every-th step in RUN/steps/<step> (0: none)

    def __post_init__(self) -> None:
        for name in ("steps", "batch", "log_every", "save_every"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int) or value < 1:
                raise ValueError(f"TrainConfig.{name} must be a positive integer, got {value!r}.")
        for name in ("warmup", "keep_every", "seed"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int) or value < 0:
                raise ValueError(f"TrainConfig.{name} must be an integer, 0 or more, got {value!r}.")
        if not self.lr > 0 or not 0 <= self.min_lr <= self.lr:
            raise ValueError(
                f"TrainConfig needs lr > 0 and 0 <= min_lr <= lr, got lr={self.lr} and min_lr={self.min_lr}."
            )
        if self.weight_decay < 0 or not self.grad_clip > 0:
            raise ValueError(
                f"TrainConfig needs weight_decay >= 0 and grad_clip > 0, got {self.weight_decay} and {self.grad_clip}."
            )

    def lr_at(self, step: int) -> float:
        return warmup_cosine(step, self.lr, self.warmup, self.steps, self.min_lr)


def prior_config_for(store_path: str | Path, window: int | None = None, **shape) -> PriorConfig:
    """A :class:`PriorConfig` for the level-0 tokens of ``store_path`` in windows of ``window`` token
    frames (default: the t' of ``PriorConfig``'s grid); ``shape`` sets other fields (dim, depth, ...).
    Its ``fps`` is the most common frame rate of the store's clips."""
    store = TokenStore.open(store_path)
    key = store.clips()[0] if store.clips() else None
    if key is None:
        raise ValueError(f"The token store {str(store_path)!r} holds no complete clip.")
    meta = store.clip_attrs(key)
    # Samples play at the most common frame rate of the clips (not the first clip's, which is arbitrary).
    fps = statistics.mode(round(float(store.clip_attrs(k)["fps"]), 2) for k in store.clips())
    codec = store.attrs["checkpoint"]["config"]
    level = codec["levels"][0]
    _, h, w, _ = store.level_array(key, 0).shape
    return PriorConfig(
        fsq_levels=(level["fsq_levels"],) * level["latent_channels"],
        grid=(PriorConfig().grid[0] if window is None else window, h, w),
        codec_digest=store.attrs["checkpoint"]["digest"],
        frame_size=(meta["height"], meta["width"]),
        fps=float(fps),
        **shape,
    )


def _save_state(run: Path, model: Any, opt: torch.optim.Optimizer, step: int) -> None:
    with atomic_folder(run / "checkpoint") as tmp:
        model.save_pretrained(tmp)
        torch.save({"optimizer": opt.state_dict(), "step": step}, tmp / "trainer.pt")


def train_prior(
    store_path: str | Path,
    run: str | Path,
    config: PriorConfig,
    train: TrainConfig = TrainConfig(),
    max_seconds: float | None = None,
    clips: list[str] | None = None,
) -> TokenPrior:
    """Train (or resume) a prior on every window of ``config.grid[0]`` token frames of a store
    (of the clips named in ``clips``, default all: the others can serve as a development split).

    Stops after ``train.steps`` steps, or earlier after ``max_seconds`` of this call (the state is
    saved, so the same call resumes). Returns the model; the finished one is also in ``RUN/prior``.
    """
    data = IndexWindows(store_path, window=config.grid[0], stride=1, clips=clips)
    if (data.grid.h, data.grid.w) != tuple(config.grid[1:]):
        raise ValueError(f"The store's token grid is {data.grid.h}x{data.grid.w}, the config's {config.grid[1:]}.")
    windows = torch.stack([data[i] for i in range(len(data))])  # (num_windows, N) int64

    def loss(model: TokenPrior, g: torch.Generator) -> tuple[Tensor, int]:
        batch = windows[torch.randint(len(windows), (train.batch,), generator=g)]  # (B, N)
        return model(batch, batch).loss, batch.numel()

    meta = {"store": str(store_path), "windows": len(windows), "clips": sorted({k for k, _ in data.tokens.items})}
    return fit(run, TokenPrior, config, train, loss, meta, max_seconds, final="prior")


Loss = Callable[[Any, torch.Generator], tuple[Tensor, int]]


def fit(
    run: str | Path,
    model_type: type,
    config: Any,
    train: TrainConfig,
    loss: Loss,
    meta: dict,
    max_seconds: float | None = None,
    final: str = "prior",
) -> Any:
    """The optimisation loop every generation model shares, on CPU, resumably.

    ``loss(model, generator) -> (mean loss in nats per token, tokens)`` draws its batch from
    ``generator`` (seeded by the step, so a resumed run draws the same batches). A killed run
    restarts from ``RUN/checkpoint`` (weights, AdamW state, step); the finished model is saved to
    ``RUN/<final>``. Stops after ``train.steps`` steps or after ``max_seconds`` of this call.
    """
    run = Path(run)
    run.mkdir(parents=True, exist_ok=True)
    torch.manual_seed(train.seed)
    model = model_type(config)
    opt = torch.optim.AdamW(model.parameters(), lr=train.lr, betas=(0.9, 0.95), weight_decay=train.weight_decay)
    step = 0
    if (ckpt := completed_folder(run / "checkpoint")) is not None:
        model = model_type.from_pretrained(ckpt).train()
        if model.config != config:
            raise ValueError(f"The run {str(run)!r} holds a model with another config; use a new run folder.")
        opt = torch.optim.AdamW(model.parameters(), lr=train.lr, betas=(0.9, 0.95), weight_decay=train.weight_decay)
        state = torch.load(ckpt / "trainer.pt", weights_only=True)
        opt.load_state_dict(state["optimizer"])
        step = state["step"]
        log.info("resumed %s at step %d", run, step)
    (run / "train_config.json").write_text(
        json.dumps({final: config.to_dict(), "train": train.to_dict(), **meta}, indent=2)
    )
    model.train()
    start, last, tokens = time.time(), time.time(), 0
    with open(run / "log.jsonl", "a") as logf:
        while step < train.steps:
            g = torch.Generator().manual_seed(train.seed * 1_000_003 + step)
            for group in opt.param_groups:
                group["lr"] = train.lr_at(step)
            value, n = loss(model, g)
            opt.zero_grad(set_to_none=True)
            value.backward()
            torch.nn.utils.clip_grad_norm_(model.parameters(), train.grad_clip)
            opt.step()
            step += 1
            tokens += n
            if step % train.log_every == 0 or step == train.steps:
                now = time.time()
                record = {
                    "step": step,
                    "bits_per_token": value.item() / math.log(2),
                    "lr": train.lr_at(step - 1),
                    "tokens_per_s": tokens / (now - last),
                    "elapsed_s": now - start,
                }
                logf.write(json.dumps(record) + "\n")
                logf.flush()
                log.info(
                    "step %d  %.3f bits/token  %.0f tokens/s", step, record["bits_per_token"], record["tokens_per_s"]
                )
                last, tokens = now, 0
            out_of_time = max_seconds is not None and time.time() - start > max_seconds
            if step % train.save_every == 0 or step == train.steps or out_of_time:
                _save_state(run, model, opt, step)
            if train.keep_every and step % train.keep_every == 0:
                model.save_pretrained(run / "steps" / str(step))
            if out_of_time:
                log.info("stopping at step %d after %.0f s (max_seconds); rerun to resume", step, time.time() - start)
                return model.eval()
    model.eval().save_pretrained(run / final)
    return model


@dataclass(frozen=True)
class DetailTrainConfig(TrainConfig):
    """``TrainConfig`` and the training crops of a detail prior: ``crop x crop`` tokens of
    ``DetailConfig.window`` token frames, handed the frame before them in ``before_rate`` of the crops
    that have one (the others learn to start a clip)."""

    steps: int = 600
    lr: float = 1e-3
    crop: int = 16
    before_rate: float = 0.75

    def __post_init__(self) -> None:
        super().__post_init__()
        if isinstance(self.crop, bool) or not isinstance(self.crop, int) or self.crop < 2:
            raise ValueError(f"DetailTrainConfig.crop must be at least 2 tokens, got {self.crop!r}.")
        if not 0 <= self.before_rate <= 1:
            raise ValueError(f"DetailTrainConfig.before_rate must lie in [0, 1], got {self.before_rate!r}.")


def detail_config_for(store_path: str | Path, level: int, **shape) -> DetailConfig:
    """A :class:`DetailConfig` for level ``level`` of the codec that wrote ``store_path``."""
    store = TokenStore.open(store_path)
    clips = store.clips()
    if not clips:
        raise ValueError(f"The token store {str(store_path)!r} holds no complete clip.")
    levels = store.attrs["checkpoint"]["config"]["levels"]
    if not 1 <= level < len(levels):
        raise ValueError(f"level must be a finer level of this codec, 1..{len(levels) - 1}, got {level}.")
    meta = store.clip_attrs(clips[0])
    return DetailConfig(
        level=level,
        coarser=tuple((lv["fsq_levels"], lv["latent_channels"]) for lv in levels[:level]),
        fsq_levels=levels[level]["fsq_levels"],
        channels=levels[level]["latent_channels"],
        codec_digest=store.attrs["checkpoint"]["digest"],
        frame_size=(meta["height"], meta["width"]),
        **shape,
    )


def train_detail(
    store_path: str | Path,
    run: str | Path,
    config: DetailConfig,
    train: DetailTrainConfig = DetailTrainConfig(),
    max_seconds: float | None = None,
    clips: list[str] | None = None,
) -> DetailPrior:
    """Train (or resume) a detail prior of level ``config.level`` on random crops of a store's clips
    (those named in ``clips``, default all). The finished model is also in ``RUN/detail``; the
    transformer runs under bf16 autocast while training (fp32 when sampling and scoring)."""
    data = LevelWindows(store_path, config.level, clips)

    def loss(model: DetailPrior, g: torch.Generator) -> tuple[Tensor, int]:
        coarser, y, y_before, has_before = data.batch(train.batch, config.window, train.crop, g, train.before_rate)
        model.transformer.autocast = torch.bfloat16
        try:
            bits = model(coarser, y, y_before, has_before)  # (B, T', H', W', C_k)
        finally:
            model.transformer.autocast = None
        positions = int(np.prod(y.shape[:4]))
        return bits.sum() * math.log(2) / positions, positions  # nats per position (all channels)

    meta = {"store": str(store_path), "positions": data.positions, "clips": sorted(data.keys)}
    return fit(run, DetailPrior, config, train, loss, meta, max_seconds, final="detail")
