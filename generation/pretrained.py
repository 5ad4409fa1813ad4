"""The priors shipped inside the package, by name (``TokenPrior.from_pretrained()`` loads the default).

``prior-l0-256x256`` samples 256x256 video (32x32 level-0 tokens per token frame) and is the
default of ``mptvc generate``; ``prior-l0-96x128`` is the small, fast one (12x16 tokens) that
``make demo`` codes with. ``--prior`` takes either name or a folder.

``detail-l1`` and ``detail-l2`` are the detail priors that draw levels 1 and 2 given the coarser
ones (``generation.detail``); their attention is relative, so they serve any token grid.
"""

from __future__ import annotations

from pathlib import Path

__all__ = [
    "DEFAULT_PRIOR",
    "SHIPPED_DETAIL",
    "SHIPPED_PRIORS",
    "default_prior_dir",
    "resolve_prior",
    "shipped_detail_dirs",
    "shipped_prior_dir",
]

SHIPPED_PRIORS = ("prior-l0-256x256", "prior-l0-96x128")
SHIPPED_DETAIL = ("detail-l1", "detail-l2")
DEFAULT_PRIOR = "prior-l0-256x256"


def shipped_prior_dir(name: str = DEFAULT_PRIOR) -> Path:
    """``generation/checkpoints/NAME``: a hub-style folder (config.json + model.safetensors)."""
    if name not in SHIPPED_PRIORS:
        raise ValueError(f"There is no shipped prior named {name!r}; the shipped ones are {', '.join(SHIPPED_PRIORS)}.")
    return Path(__file__).parent / "checkpoints" / name


def default_prior_dir() -> Path:
    """The folder of the default prior, ``DEFAULT_PRIOR``."""
    return shipped_prior_dir(DEFAULT_PRIOR)


def resolve_prior(prior: str | Path | None) -> Path:
    """A prior folder from a shipped prior's name, a folder, or None (the default prior). A folder
    that exists wins over a shipped name it happens to share."""
    if prior is None:
        return default_prior_dir()
    path = Path(prior)
    if str(prior) in SHIPPED_PRIORS and not path.exists():
        return shipped_prior_dir(str(prior))
    if not path.is_dir():
        raise ValueError(
            f"The prior {str(prior)!r} is neither a folder nor a shipped prior ({', '.join(SHIPPED_PRIORS)})."
        )
    return path


def shipped_detail_dirs() -> list[Path]:
    """The folders of the shipped detail priors, one per finer level of the shipped codec."""
    return [Path(__file__).parent / "checkpoints" / name for name in SHIPPED_DETAIL]
