"""Writing outputs all at once: a temp file or folder beside the target, renamed when complete."""

from __future__ import annotations

import os
import shutil
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

__all__ = ["atomic_folder", "atomic_output", "completed_folder"]


@contextmanager
def atomic_output(path: str | Path) -> Iterator[Path]:
    """Yield a temp path in ``path``'s folder (same suffix, so writers that pick a format by
    extension still work); rename it onto ``path`` on success, remove it on any failure.

    Raises:
        ValueError: when the output folder does not exist.
    """
    path = Path(path)
    folder = path.parent
    if not folder.is_dir():
        raise ValueError(f"The output folder {str(folder)!r} does not exist.")
    if path.is_dir():
        raise ValueError(f"The output {str(path)!r} is a folder; give a file name.")
    # A fresh name, not a mkstemp file: the writer creates it with the usual permissions (umask).
    tmp_path = folder / f".{path.stem}.{uuid.uuid4().hex[:12]}.part{path.suffix}"
    try:
        yield tmp_path
        os.replace(tmp_path, path)
    except BaseException:
        tmp_path.unlink(missing_ok=True)
        raise


@contextmanager
def atomic_folder(path: str | Path) -> Iterator[Path]:
    """Yield an empty temp folder ``<path>.tmp`` to fill; on success swap it in for ``path``.

    The swap renames ``path`` to ``<path>.old``, the temp folder to ``path``, then removes
    ``<path>.old``: a crash at any point leaves a complete folder at ``path`` or, between the two
    renames, at ``<path>.old`` (:func:`completed_folder` finds it). On a failure while filling, the
    temp folder is removed and ``path`` is left as it was. Used for training checkpoints.
    """
    path = Path(path)
    tmp, old = _sibling(path, "tmp"), _sibling(path, "old")
    shutil.rmtree(tmp, ignore_errors=True)  # left by a crash while filling
    tmp.mkdir(parents=True)
    try:
        yield tmp
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    if path.exists():
        shutil.rmtree(old, ignore_errors=True)  # only now: while path is missing, old is the complete one
        path.rename(old)
    tmp.rename(path)
    shutil.rmtree(old, ignore_errors=True)


def completed_folder(path: str | Path) -> Path | None:
    """The complete folder that :func:`atomic_folder` left for ``path``: ``path`` itself, or
    ``<path>.old`` after a crash between its two renames; None when there is neither."""
    path = Path(path)
    for candidate in (path, _sibling(path, "old")):
        if candidate.is_dir():
            return candidate
    return None


def _sibling(path: Path, tag: str) -> Path:
    return path.with_name(f"{path.name}.{tag}")
