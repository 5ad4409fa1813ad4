"""The fixed split by scene of ``docs/heads.md`` and the labelled videos made from it.

::

    ../shared/data/tracking/<scene>  --read (MOT gt; MOT17: consider=1, class=1)-->  Sequence
      --resize to the working height (at most WORK_HEIGHT px, never up)-->  <key>.mkv + <key>.txt
      training scenes also at the extra scales of TRAIN_SCALES (scale augmentation)

The split and the scales were fixed from the training scenes alone (box heights at the working
size: ``python -m heads.scenes --stats``), before any head was run on an evaluation scene.
``prepare_scenes`` writes ``out/train/`` and ``out/eval/``; ``mptvc tokenize out/train --out
train.zarr`` (and the same for eval) then writes the tokens once.
"""

from __future__ import annotations

import configparser
import logging
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from heads.data import Sequence, box_window, clip_frames, crop, mot_rows, read_mot_sequence, rescale
from heads.labels import write_labelled_video

log = logging.getLogger(__name__)

__all__ = [
    "WORK_HEIGHT",
    "Scene",
    "TRAIN_SCENES",
    "EVAL_SCENES",
    "TRAIN_SCALES",
    "working_scale",
    "prepare_scenes",
    "box_heights",
]

#: Frames taller than this are shrunk to it (aspect kept) before tokenizing, for training, evaluation
#: and ``mptvc heads detect`` alike: 1080p crowds and 720p streets are heavy for a CPU, and at 480 px
#: the training scenes' people are 11-377 px tall (median 86), within the head's 248 px view.
WORK_HEIGHT = 480


@dataclass(frozen=True)
class Scene:
    """A MOTChallenge folder under the tracking data, its key, and whether it is scored for tracking."""

    folder: str
    key: str
    track: bool = True


TRAIN_SCENES = (
    Scene("PETS09-S3-MF1", "pets"),
    Scene("PathTrack-street", "pathtrack"),
    Scene("MOT17-mini/MOT17-02", "mot17-02"),
    Scene("MOT17-mini/MOT17-04", "mot17-04"),
    Scene("MOT17-mini/MOT17-10", "mot17-10"),
    Scene("MOT17-mini/MOT17-13", "mot17-13"),
)
#: Never trained on. TUD-Campus is scored for detection and tracking, the MOT17 snippets (1-2 token
#: frames each) for detection only.
EVAL_SCENES = (
    Scene("TUD-Campus", "tud"),
    Scene("MOT17-mini/MOT17-09", "mot17-09", track=False),
    Scene("MOT17-mini/MOT17-11", "mot17-11", track=False),
)
#: Scale augmentation: extra copies of training scenes at ``scale`` x the working size (first
#: ``frames`` frames; ``window``: only the window holding every box is kept). At the working size
#: 90% of training people are under 170 px; these copies make 100-350 px people common too.
TRAIN_SCALES = (
    ("pets", 2.0, None, True),
    ("pathtrack", 1.5, 100, False),
    ("mot17-02", 2.0, None, False),
    ("mot17-04", 2.0, None, False),
    ("mot17-10", 2.0, None, False),
    ("mot17-13", 2.0, None, False),
)


def working_scale(height: int, work_height: int = WORK_HEIGHT) -> float:
    """The factor a frame of ``height`` rows is resized by: ``work_height / height``, never above 1."""
    if height < 1 or work_height < 1:
        raise ValueError(f"Heights must be positive, got {height} and {work_height}.")
    return min(1.0, work_height / height)


def _even(seq: Sequence) -> Sequence:
    """Crop a row or column so both sides are even (4:2:0 players and the codec's pad are happier)."""
    _, h, w, _ = seq.frames.shape
    return seq if h % 2 == 0 and w % 2 == 0 else crop(seq, 0, 0, h - h % 2, w - w % 2)


def _at_scale(seq: Sequence, scale: float) -> Sequence:
    return seq if abs(scale - 1.0) < 1e-9 else rescale(seq, scale)


def prepare_scenes(data: str | Path, out: str | Path, work_height: int = WORK_HEIGHT, augment: bool = True) -> None:
    """Write the labelled videos of the split: ``out/train/<key>[-x<scale>].mkv`` and ``out/eval/<key>.mkv``,
    each with its ``.txt`` boxes. Videos already written are kept (delete them to redo)."""
    data, out = Path(data), Path(out)
    for scene in (*TRAIN_SCENES, *EVAL_SCENES):
        if not (data / scene.folder / "gt" / "gt.txt").is_file():
            raise ValueError(f"{str(data / scene.folder)!r} is not a MOTChallenge sequence folder (no gt/gt.txt).")
    for part, scenes in (("eval", EVAL_SCENES), ("train", TRAIN_SCENES)):
        for scene in scenes:
            extra = [s for s in TRAIN_SCALES if s[0] == scene.key] if part == "train" and augment else []
            todo = [(scene.key, 1.0, None, False)] + [(f"{k}-x{s:g}", s, n, win) for k, s, n, win in extra]
            if all((out / part / f"{stem}.mkv").is_file() for stem, *_ in todo):
                continue
            seq = read_mot_sequence(data / scene.folder)
            base = working_scale(seq.frames.shape[1], work_height)
            for stem, scale, frames, window in todo:
                if (out / part / f"{stem}.mkv").is_file():
                    continue
                part_seq = seq if frames is None else clip_frames(seq, 0, frames)
                scaled = _at_scale(part_seq, base * scale)
                if window:
                    scaled = crop(scaled, *box_window(scaled))
                write_labelled_video(_even(scaled), out / part, stem)


def box_heights(
    data: str | Path, scenes: tuple[Scene, ...] = TRAIN_SCENES, work_height: int = WORK_HEIGHT
) -> dict[str, np.ndarray]:
    """Box heights in px at the working size, per scene (read from the ground truth only)."""
    out = {}
    for scene in scenes:
        rows = mot_rows(np.loadtxt(Path(data) / scene.folder / "gt" / "gt.txt", delimiter=",", ndmin=2))
        ini = configparser.ConfigParser()
        ini.read(Path(data) / scene.folder / "seqinfo.ini")
        out[scene.key] = rows[:, 5] * working_scale(int(ini["Sequence"]["imHeight"]), work_height)
    return out


if __name__ == "__main__":
    import sys

    for key, h in box_heights(sys.argv[1] if len(sys.argv) > 1 else "../shared/data/tracking").items():
        q = np.percentile(h, [10, 50, 90])
        print(f"{key:10s} {len(h):5d} boxes, height px q10/50/90 {q[0]:.0f}/{q[1]:.0f}/{q[2]:.0f}")
