"""The training loop: progressive curriculum, stages, data-parallel processes, resumable checkpoints, a JSON log.

Curriculum (Matryoshka): phase k < K trains level k alone (levels below it frozen, loss on
level k only, decoding up to k); the last phase trains all levels jointly. Stages
(``TrainConfig.stages``) change the clips (crop, frames, batch) at given steps, as VidTok trains
at low resolution first and then at high resolution. A run is a folder::

    RUN/checkpoint/            hub-style model folder (config.json + model.safetensors)
    RUN/checkpoint/trainer.pt  optimizer state and step (tensors only, loaded with weights_only)
    RUN/log.jsonl              one JSON object per logged step
    RUN/frames/                decoded training videos (``train.data.FrameCache``; ``frame_cache`` moves it)

Re-running the same command resumes from ``RUN/checkpoint``. The clips of a step depend only on
the seed and the step (``train.data.plan_crops``), so a resumed run sees the clips an
uninterrupted one would have seen, on any number of processes. Under ``torchrun`` each process
trains on its share of the global batch inside ``DistributedDataParallel``
(``train.distributed``); rank 0 alone reads and writes the run folder.
"""

from __future__ import annotations

import gc
import json
import logging
import math
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch.nn.parallel import DistributedDataParallel

from mptvc_latents.codec import MPTVC, format2_name
from mptvc_latents.config import CodecConfig, ConfigBase
from mptvc_latents.files import atomic_folder, completed_folder
from mptvc_latents.presets import causal_config, preset
from mptvc_latents.train.data import Augment, ClipStream, FrameCache, Stage, clip_loader, plan_crops, probe_videos
from mptvc_latents.train.distributed import World, broadcast_object, mean_over_ranks
from mptvc_latents.train.ema import EMA_FILE, ParameterEMA
from mptvc_latents.train.loss import rd_loss, ycbcr_projection
from mptvc_latents.train.schedule import warmup_cosine

log = logging.getLogger(__name__)

__all__ = ["TrainConfig", "Trainer", "training_autocast"]

AUTOCAST_CHOICES = ("auto", "bf16", "off")


def _codec_config(name_or_path: str) -> CodecConfig:
    """A preset name (``mptvc-cpu``) or the path of a codec config.json."""
    path = Path(name_or_path)
    if path.suffix == ".json":
        if not path.is_file():
            raise ValueError(f"The codec config file {name_or_path!r} does not exist.")
        return CodecConfig.from_dict(json.loads(path.read_text()))
    return preset(name_or_path)


def _causal_copy(model: MPTVC) -> MPTVC:
    """``model``'s weights (and context tables) in the causal variant of its config."""
    causal = MPTVC(causal_config(model.config))
    causal.load_state_dict(model.state_dict(), strict=True)
    return causal


def _reorder_optimizer_state(state: dict, saved_names: list[str] | None, model: MPTVC) -> dict:
    """The optimizer state of ``state`` re-indexed to ``model``'s parameter order.

    AdamW keys its moments by parameter position. ``trainer.pt`` records the parameter names
    (since checkpoint format 2); an older one was saved in format-1 order (every level's g_a,
    then every g_s, then every hyperprior), which is rebuilt from the current names.
    """
    names = [name for name, _ in model.named_parameters()]
    if saved_names is None:
        parts = {"g_a": 0, "g_s": 1, "hyperprior": 2}
        order = sorted(range(len(names)), key=lambda i: (parts[names[i].split(".")[2]], int(names[i].split(".")[1]), i))
        saved_names = [names[i] for i in order]
    position = {name: i for i, name in enumerate(names)}
    saved = [format2_name(name) for name in saved_names]
    if sorted(saved) != sorted(names):
        raise ValueError("The optimizer state in trainer.pt belongs to a model with other parameters; resume refused.")
    (group,) = state["param_groups"]
    return {
        "state": {position[saved[i]]: moments for i, moments in state["state"].items()},
        "param_groups": [{**group, "params": list(range(len(names)))}],
    }


def _is_count(value: object, minimum: int) -> bool:
    return isinstance(value, int) and not isinstance(value, bool) and value >= minimum


def _cpu_has_bf16() -> bool:
    """Whether this CPU computes bf16 natively (AVX-512 BF16 or AMX); elsewhere autocast emulates it slowly."""
    checks = ("_is_avx512_bf16_supported", "_is_amx_tile_supported")
    return any(bool(getattr(torch.cpu, name, lambda: False)()) for name in checks)


def training_autocast(setting: str, device: torch.device) -> torch.dtype | None:
    """The dtype the transformers train in under ``setting`` (``TrainConfig.autocast``) on ``device``.

    ``auto`` is bf16 where the hardware has it (CUDA GPUs with bf16, CPUs with AVX-512 BF16 or
    AMX) and fp32 elsewhere: on this repository's AVX-512 BF16 CPU a step costs about 1.26x less
    CPU time under bf16 autocast (BENCHMARKS.md), while a CPU without it only emulates bf16.
    FSQ, RoPE, the softmax and the rate stay fp32 either way (``MPTVC.set_training_autocast``).
    """
    if setting == "off":
        return None
    if setting == "bf16":
        return torch.bfloat16
    if device.type == "cuda":
        return torch.bfloat16 if torch.cuda.is_bf16_supported() else None
    return torch.bfloat16 if device.type == "cpu" and _cpu_has_bf16() else None


@dataclass(frozen=True)
class TrainConfig(ConfigBase):
    """Everything a training run needs; stored in the run folder (``train_config.json``).

    The learning rate warms up linearly over ``warmup`` steps to ``lr``, then decays on a cosine
    to ``lr * min_lr_ratio`` at the last step (``schedule.warmup_cosine``). ``batch``, ``frames``
    and ``crop`` make the clips of the first stage; ``stages`` lists later ones (``Stage``: from
    which step, the global batch, frames and crop). ``batch`` is global: under ``torchrun`` each
    of N processes takes ``batch / N`` clips. ``time_strides``, ``rescale`` and ``flip`` augment
    the clips (``train.data.Augment``). ``workers`` decode and cut clips in background processes
    (0: in the training process). ``autocast`` is ``auto`` (bf16 where the hardware has it, see
    ``training_autocast``), ``bf16`` or ``off``. ``ycbcr_weights`` measures the distortion as the
    weighted mean of the BT.709 Y, Cb and Cr squared errors (``train.loss``; e.g. (6, 1, 1), the
    weights of PSNR-YUV) instead of the mean over R, G and B.
    """

    sources: tuple[str, ...]
    run_dir: str
    preset: str = "mptvc-cpu"  # a preset name or the path of a codec config.json
    batch: int = 8
    frames: int = 16
    crop: tuple[int, int] = (64, 64)
    stages: tuple[Stage, ...] = ()
    phase_steps: tuple[int, ...] = (1500, 1500, 1500, 20000)  # level 0, 1, 2 alone, then joint
    lr: float = 4e-4
    warmup: int = 200
    min_lr_ratio: float = 0.1
    lambdas: tuple[float, ...] = (3000.0, 800.0, 250.0)
    weights: tuple[float, ...] = (1.0, 1.0, 1.0)
    ycbcr_weights: tuple[float, float, float] | None = None  # distortion in weighted Y, Cb, Cr; None: RGB
    grad_clip: float = 1.0
    time_strides: tuple[int, ...] = (1,)
    rescale: tuple[float, float] = (1.0, 1.0)
    flip: bool = True
    autocast: str = "auto"
    workers: int = 1
    max_side: int = 480
    max_frames: int = 300
    frame_cache: str | None = None  # folder of decoded videos; None: RUN/frames
    checkpoint_every: int = 250
    log_every: int = 10
    seed: int = 0
    init: str | None = None  # a checkpoint folder to start from when the run has none (weights only)
    causal: bool = False  # train the causal variant (with init: its weights, from step 0; presets.causal_config)
    ema: float = 0.0  # decay of a moving average of the parameters kept beside them (train.ema); 0: none

    def __post_init__(self) -> None:
        if not isinstance(self.sources, tuple) or not self.sources or not all(isinstance(s, str) for s in self.sources):
            raise ValueError(
                f"TrainConfig.sources must be a non-empty tuple of video files or folders, got {self.sources!r}."
            )
        if not isinstance(self.run_dir, str) or not self.run_dir:
            raise ValueError(f"TrainConfig.run_dir must name the run folder, got {self.run_dir!r}.")
        for name in ("batch", "frames", "max_side", "max_frames", "checkpoint_every", "log_every"):
            if not _is_count(getattr(self, name), minimum=1):
                raise ValueError(f"TrainConfig.{name} must be a positive integer, got {getattr(self, name)!r}.")
        for name in ("warmup", "seed", "workers"):
            if not _is_count(getattr(self, name), minimum=0):
                raise ValueError(f"TrainConfig.{name} must be an integer, 0 or more, got {getattr(self, name)!r}.")
        if not (isinstance(self.crop, tuple) and len(self.crop) == 2 and all(_is_count(c, 1) for c in self.crop)):
            raise ValueError(f"TrainConfig.crop must be (height, width) in pixels, got {self.crop!r}.")
        if not isinstance(self.stages, tuple) or not all(isinstance(s, Stage) for s in self.stages):
            raise ValueError(f"TrainConfig.stages must be a tuple of Stage, got {self.stages!r}.")
        starts = [0] + [s.start for s in self.stages]
        if any(b <= a for a, b in zip(starts, starts[1:], strict=False)):
            raise ValueError(
                f"TrainConfig.stages must start at increasing steps after 0 (the first stage is batch, frames "
                f"and crop), got starts {starts[1:]}."
            )
        if not self.phase_steps or not all(_is_count(s, 0) for s in self.phase_steps) or not sum(self.phase_steps):
            raise ValueError(
                f"TrainConfig.phase_steps must be steps of each level alone, then jointly (integers, 0 or more, "
                f"not all 0), got {self.phase_steps!r}."
            )
        if not self.lr > 0 or not 0 <= self.min_lr_ratio <= 1 or not self.grad_clip > 0:
            raise ValueError(
                f"TrainConfig needs lr > 0, 0 <= min_lr_ratio <= 1 and grad_clip > 0, "
                f"got {self.lr}, {self.min_lr_ratio} and {self.grad_clip}."
            )
        if any(v < 0 for v in (*self.lambdas, *self.weights)):
            raise ValueError(
                f"TrainConfig.lambdas and weights must be 0 or more, got {self.lambdas} and {self.weights}."
            )
        if self.ycbcr_weights is not None:
            try:
                ycbcr_projection(self.ycbcr_weights)
            except (TypeError, ValueError) as e:
                raise ValueError(f"TrainConfig.ycbcr_weights is not valid: {e}") from None
        if self.autocast not in AUTOCAST_CHOICES:
            raise ValueError(f"TrainConfig.autocast must be one of {AUTOCAST_CHOICES}, got {self.autocast!r}.")
        self.augment  # noqa: B018 - Augment validates the augmentation fields
        if not (isinstance(self.ema, int | float) and (self.ema == 0 or 0 < self.ema < 1)):
            raise ValueError(f"TrainConfig.ema must be 0 (no average) or a decay in (0, 1), got {self.ema!r}.")
        if not isinstance(self.causal, bool):
            raise ValueError(f"TrainConfig.causal must be true or false, got {self.causal!r}.")
        for name in ("init", "frame_cache"):
            if getattr(self, name) is not None and not isinstance(getattr(self, name), str):
                raise ValueError(f"TrainConfig.{name} must be a folder or None, got {getattr(self, name)!r}.")

    @property
    def total_steps(self) -> int:
        return sum(self.phase_steps)

    @property
    def all_stages(self) -> tuple[Stage, ...]:
        """The first stage (``batch``, ``frames``, ``crop`` from step 0), then ``stages``."""
        return (Stage(0, self.batch, self.frames, self.crop), *self.stages)

    @property
    def augment(self) -> Augment:
        return Augment(self.time_strides, self.rescale, self.flip)

    def phase(self, step: int) -> int:
        """Curriculum phase of a step: 0 .. K-1 (one level alone), K (joint)."""
        for p, end in enumerate(np.cumsum(self.phase_steps)):
            if step < end:
                return p
        return len(self.phase_steps) - 1


@dataclass
class Trainer:
    """Runs a ``TrainConfig``: alone, or as one of the processes ``torchrun`` started (the process
    group must be initialised first: ``train.distributed.init_from_env``)."""

    config: TrainConfig
    device: torch.device = field(default_factory=lambda: World.current().device())  # this process's GPU, or the CPU

    def __post_init__(self) -> None:
        c = self.config
        self.world = World.current()
        self.run = Path(c.run_dir)
        torch.manual_seed(c.seed)
        model, state, self.step = self._restore_everywhere()
        self.model = model.to(self.device)
        if len(c.lambdas) != self.model.num_levels or len(c.weights) != self.model.num_levels:
            raise ValueError(
                f"lambdas and weights need one entry per level ({self.model.num_levels}), "
                f"got {c.lambdas} and {c.weights}."
            )
        if len(c.phase_steps) != self.model.num_levels + 1:
            raise ValueError(f"phase_steps needs {self.model.num_levels + 1} entries (one per level, then joint).")
        self.color = ycbcr_projection(c.ycbcr_weights).to(self.device) if c.ycbcr_weights is not None else None
        self.autocast = training_autocast(c.autocast, self.device)
        self.model.set_training_autocast(self.autocast)
        self.optimizer = torch.optim.AdamW(self.model.parameters(), lr=c.lr, weight_decay=0.01, betas=(0.9, 0.99))
        if state is not None:
            self.optimizer.load_state_dict(_reorder_optimizer_state(state["optimizer"], state["param_names"], model))
        self.ema = self._restore_ema() if c.ema and self.world.is_main else None
        self.videos = probe_videos(c.sources, c.max_side, c.max_frames)
        for stage in c.all_stages:  # a stage no video can serve fails now, not hours into the run
            plan_crops(self.videos, c.seed, stage.start, stage, c.augment)
        self.frames = FrameCache(c.frame_cache or self.run / "frames", c.max_side, c.max_frames)
        self._stream(self.step)  # checks that every stage's batch splits over the processes
        self._batches: Iterator[tuple[int, torch.Tensor, torch.Tensor]] | None = None
        self._wrapped: tuple[int, torch.nn.Module] | None = None
        if self.world.is_main:
            self._trim_log()
            (self.run / "train_config.json").write_text(json.dumps(c.to_dict(), indent=1))
        log.info(
            "training on %s (%d process(es)), transformers in %s, from step %d",
            self.device,
            self.world.world_size,
            "fp32" if self.autocast is None else str(self.autocast).removeprefix("torch."),
            self.step,
        )

    # ------------------------------------------------------------------ state

    def _restore(self) -> tuple[MPTVC, dict | None, int]:
        """The model, optimizer state and step to start from: the run's checkpoint (also the
        ``checkpoint.old`` a crash inside ``atomic_folder`` leaves), else ``init``'s weights, else a
        fresh model of ``preset``."""
        c = self.config
        self.run.mkdir(parents=True, exist_ok=True)
        ckpt = completed_folder(self.run / "checkpoint")
        if ckpt is not None and (ckpt / "model.safetensors").is_file():
            log.info("resuming from %s", ckpt)
            model = MPTVC.from_pretrained(ckpt)
            if not (ckpt / "trainer.pt").is_file():
                return model, None, 0
            s = torch.load(ckpt / "trainer.pt", map_location="cpu", weights_only=True)
            return model, {"optimizer": s["optimizer"], "param_names": s.get("param_names")}, int(s["step"])
        if c.init:
            # Weights only (e.g. the shipped float16 export): the optimizer starts fresh, the
            # schedule continues from the step the folder's training.json records.
            model = MPTVC.from_pretrained(c.init)
            record = Path(c.init) / "training.json"
            step = int(json.loads(record.read_text())["steps"]) if record.is_file() else 0
            if c.causal and not model.config.causal:
                # A fine-tune into the causal variant: the same weights, a schedule of its own.
                model, step = _causal_copy(model), 0
            log.info("starting from the weights of %s at step %d", c.init, step)
            return model, None, step
        config = _codec_config(c.preset)
        return MPTVC(causal_config(config) if c.causal else config), None, 0

    def _restore_everywhere(self) -> tuple[MPTVC, dict | None, int]:
        """``_restore`` on rank 0; the other ranks receive its config, weights and optimizer state
        (they need no access to the run folder)."""
        if self.world.world_size == 1:
            return self._restore()
        restored: tuple[MPTVC, dict | None, int] | None = None
        payload: Any = None
        if self.world.is_main:
            try:
                restored = self._restore()
                model, state, step = restored
                payload = (model.config.to_dict(), model.state_dict(), state, step)
            except ValueError as e:
                payload = e  # every rank raises it, rather than waiting for weights that never come
        payload = broadcast_object(payload, self.world)
        if isinstance(payload, ValueError):
            raise payload
        if restored is not None:
            return restored
        config, weights, state, step = payload
        model = MPTVC(CodecConfig.from_dict(config))
        model.load_state_dict(weights, strict=True)
        return model, state, step

    def _restore_ema(self) -> ParameterEMA:
        """The moving average of the run's checkpoint, or a new one from the weights the run starts from."""
        ema = ParameterEMA(self.model, self.config.ema)
        ckpt = completed_folder(self.run / "checkpoint")
        if ckpt is not None and (ckpt / EMA_FILE).is_file():
            ema.load(ckpt)
        else:
            log.info(
                "the parameters' moving average (decay %g) starts from the weights at step %d", ema.decay, self.step
            )
        return ema

    def _trim_log(self) -> None:
        """Drop log records past the checkpoint (steps that ran before a crash are run again)."""
        path = self.run / "log.jsonl"
        if path.is_file():
            lines = path.read_text().splitlines()
            kept = [line for line in lines if line.strip() and json.loads(line)["step"] <= self.step]
            if len(kept) != len(lines):
                path.write_text("".join(line + "\n" for line in kept))

    def save(self) -> None:
        """Write the checkpoint atomically (``files.atomic_folder``: a crash never leaves a half-written
        one); only rank 0 writes."""
        if not self.world.is_main:
            return
        with atomic_folder(self.run / "checkpoint") as tmp:
            self.model.save_pretrained(tmp)
            torch.save(
                {
                    "optimizer": self.optimizer.state_dict(),
                    "param_names": [name for name, _ in self.model.named_parameters()],
                    "step": self.step,
                },
                tmp / "trainer.pt",
            )
            if self.ema is not None:
                self.ema.save(tmp)

    # ------------------------------------------------------------------ data

    def _stream(self, start: int) -> ClipStream:
        c = self.config
        return ClipStream(
            self.videos, c.all_stages, c.augment, self.frames, seed=c.seed, start=start, end=c.total_steps,
            rank=self.world.rank, world_size=self.world.world_size,
        )  # fmt: skip

    def _next_batch(self) -> tuple[torch.Tensor, torch.Tensor]:
        """This process's clips of the current step, from the background workers."""
        if self._batches is None:
            loader = clip_loader(self._stream(self.step), self.config.workers, pin_memory=self.device.type == "cuda")
            self._batches = iter(loader)
        step, x, scenes = next(self._batches)
        assert step == self.step, f"the data stream is at step {step}, the trainer at {self.step}"
        return x, scenes

    def close(self) -> None:
        """Stop the data workers (``fit`` does this when it ends)."""
        self._batches = None

    # ------------------------------------------------------------------ steps

    def _set_phase(self, phase: int) -> tuple[int, tuple[float, ...]]:
        """Freeze the levels below a single-level phase; return k_max and the loss weights."""
        k_levels = self.model.num_levels
        if phase >= k_levels:  # joint
            for p in self.model.parameters():
                p.requires_grad_(True)
            return k_levels - 1, self.config.weights
        for k, level in enumerate(self.model.levels):
            for p in level.parameters():
                p.requires_grad_(k == phase)
        weights = tuple(w if k == phase else 0.0 for k, w in enumerate(self.config.weights))
        return phase, weights

    def _network(self, phase: int) -> torch.nn.Module:
        """The model, or under torchrun the model in a ``DistributedDataParallel`` built for this
        phase's trainable parameters (DDP fixes them when it is built, so each phase gets its own)."""
        if self.world.world_size == 1:
            return self.model
        if self._wrapped is None or self._wrapped[0] != phase:
            self._wrapped = None
            gc.collect()  # the previous wrapper's gradient hooks go with it
            device_ids = [self.device] if self.device.type == "cuda" else None
            ddp = DistributedDataParallel(self.model, device_ids=device_ids, forward_sync_buffers=False)
            self._wrapped = (phase, ddp)
        return self._wrapped[1]

    def train_step(self) -> dict:
        c = self.config
        phase = c.phase(self.step)
        k_max, weights = self._set_phase(phase)
        lambdas = tuple(lam if w > 0 else 0.0 for lam, w in zip(c.lambdas, weights, strict=True))
        self.model.train()
        t_data = time.perf_counter()
        x, scenes = self._next_batch()
        x, scenes = x.to(self.device, non_blocking=True), scenes.to(self.device, non_blocking=True)
        lr = warmup_cosine(self.step, c.lr, c.warmup, c.total_steps, c.lr * c.min_lr_ratio)
        for group in self.optimizer.param_groups:
            group["lr"] = lr
        t0 = time.perf_counter()
        out = self._network(phase)(x, scenes, k_max=k_max)
        pixels = x.shape[0] * x.shape[2] * x.shape[3] * x.shape[4]
        result = rd_loss(out, lambdas, weights, pixels, color=self.color)
        self.optimizer.zero_grad(set_to_none=True)
        result.loss.backward()
        params = [p for p in self.model.parameters() if p.grad is not None]
        grad_norm = float(torch.nn.utils.clip_grad_norm_(params, c.grad_clip))
        self.optimizer.step()
        if self.ema is not None:
            self.ema.update(self.model)
        self.step += 1
        loss, mse, bpp = result.loss.item(), result.mse, result.bpp
        psnr = result.psnr
        if self.world.world_size > 1:  # the global batch's values: every rank has an equal share
            loss, *rest = mean_over_ranks([loss, *mse, *bpp], self.world, self.device)
            mse, bpp = rest[: len(mse)], rest[len(mse) :]
            psnr = [10 * math.log10(255.0**2 / max(d, 1e-10)) for d in mse]
        return {
            "step": self.step,
            "phase": phase,
            "loss": loss,
            "psnr": [round(v, 3) for v in psnr],
            "bpp": [round(v, 5) for v in bpp],
            "lr": lr,
            "grad_norm": round(grad_norm, 4),
            "seconds": round(time.perf_counter() - t0, 3),
            "data_seconds": round(t0 - t_data, 3),
        }

    def fit(self, progress: bool = True) -> None:
        c = self.config
        from tqdm import tqdm

        main = self.world.is_main
        bar = tqdm(
            total=c.total_steps, initial=self.step, disable=not (progress and main), unit="step", dynamic_ncols=True
        )
        log_file = open(self.run / "log.jsonl", "a") if main else None  # noqa: SIM115 - closed below
        try:
            while self.step < c.total_steps:
                record = self.train_step()
                bar.update(1)
                if log_file is not None and (self.step % c.log_every == 0 or self.step == c.total_steps):
                    record["time"] = time.time()
                    log_file.write(json.dumps(record) + "\n")
                    log_file.flush()
                    bar.set_postfix(phase=record["phase"], psnr=record["psnr"][-1], bpp=sum(record["bpp"]))
                if self.step % c.checkpoint_every == 0 or self.step == c.total_steps:
                    self.save()
        finally:
            if log_file is not None:
                log_file.close()
            bar.close()
            self.close()
