"""The training loop: progressive curriculum, resumable checkpoints, a JSON log.

Curriculum (Matryoshka): phase k < K trains level k alone (levels below it frozen, loss on
level k only, decoding up to k); the last phase trains all levels jointly. A run is a
folder::

    RUN/checkpoint/            hub-style model folder (config.json + model.safetensors)
    RUN/checkpoint/trainer.pt  optimizer, step and sampler state (tensors only, loaded with weights_only)
    RUN/log.jsonl              one JSON object per logged step

Re-running the same command resumes from ``RUN/checkpoint``.
"""

from __future__ import annotations

import json
import logging
import time
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch

from mptvc_latents.codec import MPTVC, format2_name
from mptvc_latents.config import CodecConfig, ConfigBase
from mptvc_latents.files import atomic_folder
from mptvc_latents.presets import preset
from mptvc_latents.train.data import ClipSampler, load_videos
from mptvc_latents.train.loss import rd_loss
from mptvc_latents.train.schedule import warmup_cosine

log = logging.getLogger(__name__)

__all__ = ["TrainConfig", "Trainer"]


def _codec_config(name_or_path: str) -> CodecConfig:
    """A preset name (``mptvc-cpu``) or the path of a codec config.json."""
    path = Path(name_or_path)
    if path.suffix == ".json":
        if not path.is_file():
            raise ValueError(f"The codec config file {name_or_path!r} does not exist.")
        return CodecConfig.from_dict(json.loads(path.read_text()))
    return preset(name_or_path)


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


@dataclass(frozen=True)
class TrainConfig(ConfigBase):
    """Everything a training run needs; stored in the run folder (``train_config.json``).

    The learning rate warms up linearly over ``warmup`` steps to ``lr``, then decays on a cosine
    to ``lr * min_lr_ratio`` at the last step (``schedule.warmup_cosine``).
    """

    sources: tuple[str, ...]
    run_dir: str
    preset: str = "mptvc-cpu"  # a preset name or the path of a codec config.json
    batch: int = 8
    frames: int = 16
    crop: tuple[int, int] = (64, 64)
    phase_steps: tuple[int, ...] = (1500, 1500, 1500, 20000)  # level 0, 1, 2 alone, then joint
    lr: float = 4e-4
    warmup: int = 200
    min_lr_ratio: float = 0.1
    lambdas: tuple[float, ...] = (3000.0, 800.0, 250.0)
    weights: tuple[float, ...] = (1.0, 1.0, 1.0)
    grad_clip: float = 1.0
    max_side: int = 480
    max_frames: int = 300
    checkpoint_every: int = 250
    log_every: int = 10
    seed: int = 0
    init: str | None = None  # a checkpoint folder to start from when the run has none (weights only)

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
        for name in ("warmup", "seed"):
            if not _is_count(getattr(self, name), minimum=0):
                raise ValueError(f"TrainConfig.{name} must be an integer, 0 or more, got {getattr(self, name)!r}.")
        if not (isinstance(self.crop, tuple) and len(self.crop) == 2 and all(_is_count(c, 1) for c in self.crop)):
            raise ValueError(f"TrainConfig.crop must be (height, width) in pixels, got {self.crop!r}.")
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
        if self.init is not None and not isinstance(self.init, str):
            raise ValueError(f"TrainConfig.init must be a checkpoint folder or None, got {self.init!r}.")

    @property
    def total_steps(self) -> int:
        return sum(self.phase_steps)

    def phase(self, step: int) -> int:
        """Curriculum phase of a step: 0 .. K-1 (one level alone), K (joint)."""
        for p, end in enumerate(np.cumsum(self.phase_steps)):
            if step < end:
                return p
        return len(self.phase_steps) - 1


@dataclass
class Trainer:
    config: TrainConfig
    device: torch.device = field(default_factory=lambda: torch.device("cuda" if torch.cuda.is_available() else "cpu"))

    def __post_init__(self) -> None:
        c = self.config
        self.run = Path(c.run_dir)
        self.run.mkdir(parents=True, exist_ok=True)
        torch.manual_seed(c.seed)
        ckpt = self.run / "checkpoint"
        self.step = 0
        if (ckpt / "model.safetensors").is_file():
            self.model = MPTVC.from_pretrained(ckpt, map_location=str(self.device))
            log.info("resuming from %s", ckpt)
        elif c.init:
            # Weights only (e.g. the shipped float16 export): the optimizer starts fresh, the
            # schedule continues from the step the folder's training.json records.
            self.model = MPTVC.from_pretrained(c.init, map_location=str(self.device))
            record = Path(c.init) / "training.json"
            self.step = int(json.loads(record.read_text())["steps"]) if record.is_file() else 0
            log.info("starting from the weights of %s at step %d", c.init, self.step)
        else:
            self.model = MPTVC(_codec_config(c.preset)).to(self.device)
        if len(c.lambdas) != self.model.num_levels or len(c.weights) != self.model.num_levels:
            raise ValueError(
                f"lambdas and weights need one entry per level ({self.model.num_levels}), "
                f"got {c.lambdas} and {c.weights}."
            )
        if len(c.phase_steps) != self.model.num_levels + 1:
            raise ValueError(f"phase_steps needs {self.model.num_levels + 1} entries (one per level, then joint).")
        self.optimizer = torch.optim.AdamW(self.model.parameters(), lr=c.lr, weight_decay=0.01, betas=(0.9, 0.99))
        self.sampler = ClipSampler(
            load_videos(list(c.sources), c.max_side, c.max_frames), c.frames, c.crop[0], c.crop[1], seed=c.seed
        )
        state = ckpt / "trainer.pt"
        if state.is_file():
            s = torch.load(state, map_location=self.device, weights_only=True)
            self.optimizer.load_state_dict(_reorder_optimizer_state(s["optimizer"], s.get("param_names"), self.model))
            self.step = int(s["step"])
            self.sampler.rng = np.random.default_rng(int(s["sampler_seed"]))
            self._trim_log()
        (self.run / "train_config.json").write_text(json.dumps(c.to_dict(), indent=1))

    def _trim_log(self) -> None:
        """Drop log records past the checkpoint (steps that ran before a crash are run again)."""
        path = self.run / "log.jsonl"
        if path.is_file():
            lines = path.read_text().splitlines()
            kept = [line for line in lines if line.strip() and json.loads(line)["step"] <= self.step]
            if len(kept) != len(lines):
                path.write_text("".join(line + "\n" for line in kept))

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

    def train_step(self) -> dict:
        c = self.config
        phase = c.phase(self.step)
        k_max, weights = self._set_phase(phase)
        lambdas = tuple(lam if w > 0 else 0.0 for lam, w in zip(c.lambdas, weights, strict=True))
        self.model.train()
        x, scenes = self.sampler.sample(c.batch)
        x, scenes = x.to(self.device), scenes.to(self.device)
        lr = warmup_cosine(self.step, c.lr, c.warmup, c.total_steps, c.lr * c.min_lr_ratio)
        for group in self.optimizer.param_groups:
            group["lr"] = lr
        t0 = time.perf_counter()
        out = self.model(x, scenes, k_max=k_max)
        result = rd_loss(out, lambdas, weights, pixels=x.shape[0] * x.shape[2] * x.shape[3] * x.shape[4])
        self.optimizer.zero_grad(set_to_none=True)
        result.loss.backward()
        params = [p for p in self.model.parameters() if p.grad is not None]
        grad_norm = float(torch.nn.utils.clip_grad_norm_(params, c.grad_clip))
        self.optimizer.step()
        self.step += 1
        return {
            "step": self.step,
            "phase": phase,
            "loss": result.loss.item(),
            "psnr": [round(v, 3) for v in result.psnr],
            "bpp": [round(v, 5) for v in result.bpp],
            "lr": lr,
            "grad_norm": round(grad_norm, 4),
            "seconds": round(time.perf_counter() - t0, 3),
        }

    def save(self) -> None:
        """Write the checkpoint atomically (``files.atomic_folder``: a crash never leaves a half-written one)."""
        with atomic_folder(self.run / "checkpoint") as tmp:
            self.model.save_pretrained(tmp)
            seed = int(self.sampler.rng.integers(0, 2**62))
            self.sampler.rng = np.random.default_rng(seed)
            torch.save(
                {
                    "optimizer": self.optimizer.state_dict(),
                    "param_names": [name for name, _ in self.model.named_parameters()],
                    "step": self.step,
                    "sampler_seed": seed,
                },
                tmp / "trainer.pt",
            )

    def fit(self, progress: bool = True) -> None:
        c = self.config
        from tqdm import tqdm

        bar = tqdm(total=c.total_steps, initial=self.step, disable=not progress, unit="step", dynamic_ncols=True)
        with open(self.run / "log.jsonl", "a") as log_file:
            while self.step < c.total_steps:
                record = self.train_step()
                bar.update(1)
                if self.step % c.log_every == 0 or self.step == c.total_steps:
                    record["time"] = time.time()
                    log_file.write(json.dumps(record) + "\n")
                    log_file.flush()
                    bar.set_postfix(phase=record["phase"], psnr=record["psnr"][-1], bpp=sum(record["bpp"]))
                if self.step % c.checkpoint_every == 0 or self.step == c.total_steps:
                    self.save()
        bar.close()
