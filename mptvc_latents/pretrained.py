"""Where the checkpoint shipped inside the package lives (``MPTVC.from_pretrained()`` loads it)."""

from __future__ import annotations

from pathlib import Path

__all__ = ["CAUSAL_CHECKPOINT", "DEFAULT_CHECKPOINT", "causal_checkpoint_dir", "default_checkpoint_dir"]

DEFAULT_CHECKPOINT = "mptvc-cpu"
CAUSAL_CHECKPOINT = "mptvc-cpu-causal"


def default_checkpoint_dir() -> Path:
    """``mptvc_latents/checkpoints/mptvc-cpu``: a hub-style folder (config.json + model.safetensors)."""
    return Path(__file__).parent / "checkpoints" / DEFAULT_CHECKPOINT


def causal_checkpoint_dir() -> Path:
    """``mptvc_latents/checkpoints/mptvc-cpu-causal``: the causal variant (``causal.py``), fine-tuned
    from the default checkpoint; ``mptvc encode --stream`` uses it by default."""
    return Path(__file__).parent / "checkpoints" / CAUSAL_CHECKPOINT
