"""A tiny codec and short clips for the bitstream and CLI tests (seconds on a CPU)."""

from __future__ import annotations

import dataclasses
import json
import os
from pathlib import Path

import numpy as np
import torch

import mptvc_latents
from mptvc_latents.codec import MPTVC
from mptvc_latents.config import CodecConfig, HyperpriorConfig, LevelConfig
from mptvc_latents.train import TrainConfig

SAMPLE = Path(mptvc_latents.__file__).parent / "assets" / "bikes_sample.mp4"
# The shared real data (not shipped) sits beside the repository; MPTVC_DATA_DIR points elsewhere.
DATA = Path(os.environ.get("MPTVC_DATA_DIR", Path(__file__).resolve().parents[2] / "shared" / "data"))


def tiny_config(**overrides) -> CodecConfig:
    """K=3 levels 16/16/32 wide with 2/3/4 latent channels, one block each way, radius 1,
    chunks of 8 frames (frames pad to 8, sides to 16)."""
    hp = HyperpriorConfig(hyper_channels=4, hidden=16)
    levels = tuple(
        LevelConfig(dim=d, heads=1, latent_channels=c, fsq_levels=8, encoder_depth=1, decoder_depth=1, hyperprior=hp)
        for d, c in ((16, 2), (16, 3), (32, 4))
    )
    return dataclasses.replace(CodecConfig(levels=levels, radius=(1, 1, 1), chunk_frames=8, name="tiny"), **overrides)


def tiny_train_config(tmp_path: Path, **overrides) -> TrainConfig:
    """A few steps of the tiny codec on 2 crops of 8x32x32 from the bundled sample, checkpointed every
    2 steps, clips cut in the test process; the run folder is ``tmp_path / "run"`` unless overridden."""
    config_path = tmp_path / "codec.json"
    config_path.write_text(json.dumps(tiny_config().to_dict()))
    base = TrainConfig(
        sources=(str(SAMPLE),),
        run_dir=str(tmp_path / "run"),
        preset=str(config_path),
        batch=2,
        frames=8,
        crop=(32, 32),
        phase_steps=(1, 1, 1, 2),
        checkpoint_every=2,
        log_every=1,
        warmup=1,
        workers=0,  # clips in the test process (the resume test runs a background worker)
    )
    return dataclasses.replace(base, **overrides)


def tiny_model(config: CodecConfig | None = None, seed: int = 0) -> MPTVC:
    """A tiny codec in eval mode whose every level changes the picture (``g_s`` of levels
    above 0 starts as "add nothing"; left so, a wrong prefix could not be told apart)."""
    torch.manual_seed(seed)
    model = MPTVC(config or tiny_config())
    with torch.no_grad():
        for level in model.levels:
            level.g_s.to_pixels.weight.normal_(0.0, 0.02)
    return model.eval()


def random_video(frames: int, height: int, width: int, seed: int = 0) -> np.ndarray:
    return np.random.default_rng(seed).integers(0, 256, (frames, height, width, 3), dtype=np.uint8)
