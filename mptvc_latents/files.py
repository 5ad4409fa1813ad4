"""Writing output files all at once: a temp file beside the target, renamed when complete."""

from __future__ import annotations

import os
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

__all__ = ["atomic_output"]


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
