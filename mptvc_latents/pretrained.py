"""The checkpoint shipped inside the package, and strict loading with errors that say what to do."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from mptvc_latents.codec import MPTVC

__all__ = ["DEFAULT_CHECKPOINT", "default_checkpoint_dir", "load_codec"]

DEFAULT_CHECKPOINT = "mptvc-cpu"


def default_checkpoint_dir() -> Path:
    """``mptvc_latents/checkpoints/mptvc-cpu``: a hub-style folder (config.json + model.safetensors)."""
    return Path(__file__).parent / "checkpoints" / DEFAULT_CHECKPOINT


def load_codec(ckpt: str | Path | None = None) -> MPTVC:
    """Load a codec strictly from ``ckpt`` (default: the shipped checkpoint), in eval mode.

    Raises:
        ValueError: when the folder is missing or is not a loadable checkpoint.
    """
    from safetensors import SafetensorError

    from mptvc_latents.codec import MPTVC

    path = Path(ckpt) if ckpt is not None else default_checkpoint_dir()
    if not path.is_dir():
        raise ValueError(f"There is no checkpoint at {str(path)!r}; pass --ckpt or train one with `mptvc train`.")
    try:
        model = MPTVC.load(path)
    except (RuntimeError, OSError, KeyError, TypeError, SafetensorError) as e:
        # load_state_dict(strict=True) reports missing or unexpected weights as RuntimeError.
        first = str(e).strip().splitlines()[0] if str(e).strip() else type(e).__name__
        raise ValueError(f"The checkpoint at {str(path)!r} could not be loaded: {first}") from e
    return model.eval()
