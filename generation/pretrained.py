"""The prior shipped inside the package (``generation/checkpoints``)."""

from __future__ import annotations

from pathlib import Path

__all__ = ["DEFAULT_PRIOR", "default_prior_dir", "load_prior"]

DEFAULT_PRIOR = "prior-l0-96x128"


def default_prior_dir() -> Path:
    """``generation/checkpoints/prior-l0-96x128``: a hub-style folder (config.json + model.safetensors)."""
    return Path(__file__).parent / "checkpoints" / DEFAULT_PRIOR


def load_prior(path: str | Path | None = None):
    """Load a :class:`~generation.model.TokenPrior` strictly (default: the shipped one), in eval mode."""
    from generation.model import TokenPrior

    path = default_prior_dir() if path is None else Path(path)
    if not path.is_dir():
        raise ValueError(f"There is no prior at {str(path)!r}; pass --prior or train one with `mptvc prior-train`.")
    return TokenPrior.load(path)
