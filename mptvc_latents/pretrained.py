"""Where the checkpoint shipped inside the package lives (``MPTVC.from_pretrained()`` loads it)."""

from __future__ import annotations

from pathlib import Path

__all__ = ["DEFAULT_CHECKPOINT", "default_checkpoint_dir"]

DEFAULT_CHECKPOINT = "mptvc-cpu"


def default_checkpoint_dir() -> Path:
    """``mptvc_latents/checkpoints/mptvc-cpu``: a hub-style folder (config.json + model.safetensors)."""
    return Path(__file__).parent / "checkpoints" / DEFAULT_CHECKPOINT
