"""Named codec configurations.

- ``mptvc-full``: the published configuration (patch 8, p_t 4, chunks of 32 frames, K=3,
  widths 64/96/128, FSQ levels 8/8/10, RoPE theta 1e4, scene jump 1e4, hyperprior with
  sigma_floor 0.3 and 32 hyper channels, canonical tile 480x864). The published model has
  5,039,641 parameters (backbone 4,354,201 + entropy 685,440). Its depth and MLP ratio are not
  published: 4 encoder + 4 decoder blocks per level with an MLP ratio of 2 give a backbone of
  4,357,784 (+0.08%), the only one of depths 2-4 and ratios 2/3/4 within 1% (3 + 3 blocks at
  ratio 4 give 4,110,424, -5.6%). The entropy count is not reached by any plain scale
  hyperprior of a round width (192 gives 383,840; 256 gives 609,888), so the published entropy
  model must differ in a way not described (MODEL_CARD.md); the width stays 192.
- ``mptvc-cpu``: the same structure sized to train on a 2-core CPU (2+2 blocks per level,
  narrower hyperprior), the configuration of the shipped checkpoint.
- ``mptvc-cpu-causal`` and ``mptvc-full-causal``: the same with ``causal=True`` (temporal attention
  over past and present token frames only; ``causal.py``), the same weight shapes, so a causal
  model is fine-tuned from its non-causal checkpoint (``mptvc train --init CKPT --causal``).
"""

from __future__ import annotations

import dataclasses

from mptvc_latents.config import CodecConfig, HyperpriorConfig, LevelConfig

__all__ = ["PRESETS", "causal_config", "preset"]

PUBLISHED_PARAMETERS = {"total": 5_039_641, "backbone": 4_354_201, "entropy": 685_440}


def _full() -> CodecConfig:
    hp = HyperpriorConfig(hyper_channels=32, hidden=192, sigma_floor=0.3)
    return CodecConfig(
        levels=(
            LevelConfig(
                dim=64, heads=2, latent_channels=4, fsq_levels=8, encoder_depth=4, decoder_depth=4, hyperprior=hp
            ),
            LevelConfig(
                dim=96, heads=3, latent_channels=12, fsq_levels=8, encoder_depth=4, decoder_depth=4, hyperprior=hp
            ),
            LevelConfig(
                dim=128, heads=4, latent_channels=24, fsq_levels=10, encoder_depth=4, decoder_depth=4, hyperprior=hp
            ),
        ),
        mlp_ratio=2.0,
        tile_overlap=(208, 208),  # 26 tokens > 2 x (4 blocks x radius 3) + 1
        name="mptvc-full",
    )


def _cpu() -> CodecConfig:
    hp0 = HyperpriorConfig(hyper_channels=8, hidden=64)
    hp = HyperpriorConfig(hyper_channels=32, hidden=128)
    return CodecConfig(
        levels=(
            LevelConfig(dim=64, heads=2, latent_channels=4, fsq_levels=8, hyperprior=hp0),
            LevelConfig(dim=96, heads=3, latent_channels=12, fsq_levels=8, hyperprior=hp),
            LevelConfig(dim=128, heads=4, latent_channels=24, fsq_levels=10, hyperprior=hp),
        ),
        name="mptvc-cpu",
    )


def causal_config(config: CodecConfig) -> CodecConfig:
    """The causal variant of ``config`` (same weight shapes), named ``<name>-causal``."""
    if config.causal:
        return config
    return dataclasses.replace(config, causal=True, name=f"{config.name}-causal")


PRESETS = {
    "mptvc-full": _full,
    "mptvc-cpu": _cpu,
    "mptvc-full-causal": lambda: causal_config(_full()),
    "mptvc-cpu-causal": lambda: causal_config(_cpu()),
}


def preset(name: str) -> CodecConfig:
    """The named configuration; ValueError lists the known names."""
    if name not in PRESETS:
        raise ValueError(f"There is no preset named {name!r}; choose one of {sorted(PRESETS)}.")
    return PRESETS[name]()
