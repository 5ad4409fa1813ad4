"""One way to load a model: strict, local, quiet ``from_pretrained`` on hub-style folders.

Every model of the project (the codec here, the token prior in ``generation``, the heads) is a
``huggingface_hub.PyTorchModelHubMixin`` with this mixin in front: a folder with ``config.json``
and ``model.safetensors`` loads **strictly** (a missing or unexpected tensor is an error, never a
random init), never unpickles, never downloads (nothing may be fetched at run time), returns the
model in eval mode, and every failure is a ``ValueError`` sentence naming the folder.
"""

from __future__ import annotations

import contextlib
import io
from pathlib import Path
from typing import Any, TypeVar

from huggingface_hub import PyTorchModelHubMixin

__all__ = ["StrictHubMixin"]

_M = TypeVar("_M", bound="StrictHubMixin")


class StrictHubMixin(PyTorchModelHubMixin):
    """``PyTorchModelHubMixin`` whose ``from_pretrained`` is strict, local and quiet.

    Subclasses may define ``default_checkpoint_dir()`` (a classmethod) for ``from_pretrained()``
    without a path, e.g. the checkpoint shipped inside the package.
    """

    @classmethod
    def default_checkpoint_dir(cls) -> Path:
        raise ValueError(f"{cls.__name__} ships no default checkpoint: give the folder to load.")

    # Narrower than huggingface_hub's signature on purpose (local folders only, no download options).
    @classmethod
    def from_pretrained(  # type: ignore[override]
        cls: type[_M], pretrained_model_name_or_path: str | Path | None = None, *, map_location: str = "cpu"
    ) -> _M:
        """Load the hub-style folder ``pretrained_model_name_or_path`` (default: the shipped one).

        Raises:
            ValueError: when the folder is missing, lacks ``config.json`` or ``model.safetensors``,
                or its tensors do not match its config.
        """
        from safetensors import SafetensorError

        path = Path(pretrained_model_name_or_path) if pretrained_model_name_or_path else cls.default_checkpoint_dir()
        if not path.is_dir():
            raise ValueError(
                f"There is no checkpoint folder at {str(path)!r}; give the folder of a saved model "
                f"(config.json + model.safetensors)."
            )
        missing = [f for f in ("config.json", "model.safetensors") if not (path / f).is_file()]
        if missing:
            raise ValueError(
                f"{str(path)!r} is not a checkpoint folder: it lacks {' and '.join(missing)} "
                f"(save one with {cls.__name__}.save_pretrained)."
            )
        try:
            with contextlib.redirect_stdout(io.StringIO()):  # huggingface_hub prints "Loading weights ..."
                model = super().from_pretrained(str(path), local_files_only=True, map_location=map_location)
        except (RuntimeError, OSError, KeyError, TypeError, SafetensorError) as e:
            # load_state_dict reports missing or unexpected tensors and wrong shapes as RuntimeError.
            lines = str(e).strip().splitlines()
            first = " ".join(lines[:3]) if lines else type(e).__name__
            raise ValueError(f"The checkpoint {str(path)!r} could not be loaded: {first.rstrip('.')}.") from e
        model.eval()  # type: ignore[attr-defined]  # the mixin's type knows no nn.Module; subclasses are ones
        return model

    @classmethod
    def _from_pretrained(cls, *, strict: bool = True, **kwargs: Any) -> Any:
        """Strict by default: the mixin's default (``strict=False``) would leave missing weights at
        their random init and ignore unknown ones."""
        return super()._from_pretrained(strict=strict, **kwargs)
