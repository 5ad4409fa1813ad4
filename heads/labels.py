"""Labelled videos: a video file and, beside it, its boxes as a MOTChallenge text file.

The format a user brings (``docs/heads.md``, "Your own labelled videos")::

    videos/
      street.mp4        any video FFmpeg reads (or the lossless .mkv that ``write_labelled_video`` makes)
      street.txt        one box per line: frame,id,x,y,w,h[,conf,...]   (MOTChallenge gt.txt rows)

``frame`` counts the video's frames from 1, ``x, y`` is the top-left corner and ``w, h`` the size,
in pixels of the video as stored. Rows whose 7th column is 0 are ignore regions and dropped; files
of exactly 9 columns are MOT16/17 ``gt.txt`` and keep class 1 (pedestrian) only
(``heads.data.mot_rows``). ``mptvc tokenize videos/ --out tokens.zarr`` writes the tokens once; the
store remembers each clip's source file, so ``labels_for`` finds ``street.txt`` beside it (or in a
``labels`` folder given instead, by the video's stem).
"""

from __future__ import annotations

import logging
from fractions import Fraction
from pathlib import Path

import numpy as np

from heads.data import Sequence, mot_rows
from heads.mot import write_mot

log = logging.getLogger(__name__)

__all__ = ["write_labelled_video", "read_labels", "labels_for"]


def write_labelled_video(seq: Sequence, folder: str | Path, stem: str) -> Path:
    """Write ``seq`` as ``folder/stem.mkv`` (FFV1, lossless RGB) and its boxes as ``folder/stem.txt``.

    Returns the video's path. The frames read back (``mptvc_latents.video.VideoReader``) equal
    ``seq.frames`` exactly, so the codec codes the very pixels the boxes were made for.
    """
    import av

    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    t, h, w, _ = seq.frames.shape
    path = folder / f"{stem}.mkv"
    with av.open(str(path), "w") as container:
        stream = container.add_stream("ffv1", rate=Fraction(seq.fps).limit_denominator(1001))
        stream.width, stream.height, stream.pix_fmt = w, h, "bgr0"
        for frame in seq.frames:
            for packet in stream.encode(av.VideoFrame.from_ndarray(np.ascontiguousarray(frame), format="rgb24")):
                container.mux(packet)
        for packet in stream.encode():
            container.mux(packet)
    rows = np.column_stack([seq.boxes, np.ones(len(seq.boxes))]) if len(seq.boxes) else np.zeros((0, 7))
    write_mot(folder / f"{stem}.txt", rows)
    log.info("wrote %s: %d frames %dx%d, %d boxes", path, t, w, h, len(seq.boxes))
    return path


def read_labels(path: str | Path) -> np.ndarray:
    """A MOTChallenge text file -> ``(N, 6)`` ``[frame, id, x, y, w, h]`` (see the module docstring)."""
    path = Path(path)
    if not path.is_file():
        raise ValueError(f"There is no label file {str(path)!r}: put the boxes beside the video as a MOT text file.")
    text = path.read_text().strip()
    if not text:
        return np.zeros((0, 6))
    try:
        rows = np.loadtxt(path, delimiter=",", ndmin=2)
    except ValueError as e:
        raise ValueError(f"{str(path)!r} is not a MOTChallenge text file (frame,id,x,y,w,h,...): {e}.") from None
    rows = mot_rows(rows)
    if len(rows) and (rows[:, 0].min() < 1 or (rows[:, 0] % 1).any()):
        raise ValueError(f"{str(path)!r}: frames must be whole numbers counted from 1.")
    return rows


def labels_for(source: str | Path, labels: str | Path | None = None) -> Path:
    """The label file of the video ``source``: ``labels/<stem>.txt`` when a ``labels`` folder is
    given, else ``<source without suffix>.txt`` beside the video."""
    source = Path(source)
    return Path(labels) / f"{source.stem}.txt" if labels is not None else source.with_suffix(".txt")
