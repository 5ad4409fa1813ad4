"""Where the prior shipped inside the package lives (``TokenPrior.from_pretrained()`` loads it)."""

from __future__ import annotations

from pathlib import Path

__all__ = ["DEFAULT_PRIOR", "default_prior_dir"]

DEFAULT_PRIOR = "prior-l0-96x128"


def default_prior_dir() -> Path:
    """``generation/checkpoints/prior-l0-96x128``: a hub-style folder (config.json + model.safetensors)."""
    return Path(__file__).parent / "checkpoints" / DEFAULT_PRIOR
