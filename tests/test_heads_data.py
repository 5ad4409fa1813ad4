"""Reading the annotated real sequences of ../shared/data/tracking (never copied into the repo).

Skips when the data folder is absent (it is not shipped: non-commercial research data).
"""

import numpy as np
import pytest

from heads.data import read_mot_sequence, read_otb_sequence, reference_frames
from tests._tiny import DATA

TRACKING = DATA / "tracking"

pytestmark = pytest.mark.skipif(
    not (TRACKING / "TUD-Campus" / "gt" / "gt.txt").is_file(),
    reason=f"the MOTChallenge/OTB tracking sequences are not at {TRACKING} (see ../shared/data/README.md)",
)


def test_tud_campus_reads_with_its_ground_truth():
    seq = read_mot_sequence(TRACKING / "TUD-Campus")
    assert seq.frames.shape == (71, 480, 640, 3) and seq.fps == 25
    assert len(seq.boxes) == 359 and set(np.unique(seq.boxes[:, 1]).astype(int)) == set(range(1, 9))
    refs = reference_frames(seq.num_frames, 18)
    assert len(refs) == 18 and all((seq.boxes[:, 0] == r + 1).any() for r in refs)


def test_pets_and_otb_read():
    pets = read_mot_sequence(TRACKING / "PETS09-S3-MF1", max_frames=8)
    assert pets.frames.shape == (8, 576, 768, 3) and pets.boxes[:, 0].max() <= 8
    otb = read_otb_sequence(TRACKING / "OTB-Crossing")
    assert otb.frames.shape == (120, 240, 360, 3) and otb.boxes.shape == (120, 6)


def test_a_folder_without_ground_truth_is_refused(tmp_path):
    with pytest.raises(ValueError, match="not a MOTChallenge sequence"):
        read_mot_sequence(tmp_path)
    with pytest.raises(ValueError, match="not an OTB sequence"):
        read_otb_sequence(tmp_path)


def test_mot17_snippets_keep_pedestrians_to_consider_only():
    seq = read_mot_sequence(TRACKING / "MOT17-mini" / "MOT17-09")
    raw = np.loadtxt(TRACKING / "MOT17-mini" / "MOT17-09" / "gt" / "gt.txt", delimiter=",", ndmin=2)
    assert seq.frames.shape == (4, 1080, 1920, 3) and seq.fps == 30
    assert len(seq.boxes) == int(((raw[:, 6] == 1) & (raw[:, 7] == 1)).sum()) == 24 < len(raw)


def test_the_split_never_evaluates_on_a_training_scene():
    from heads.scenes import EVAL_SCENES, TRAIN_SCALES, TRAIN_SCENES, box_heights

    train, held = {s.folder for s in TRAIN_SCENES}, {s.folder for s in EVAL_SCENES}
    assert not train & held and len(train) == 6 and len(held) == 3
    assert all((TRACKING / f / "gt" / "gt.txt").is_file() for f in train | held)
    assert {key for key, *_ in TRAIN_SCALES} <= {s.key for s in TRAIN_SCENES}
    heights = np.concatenate(list(box_heights(TRACKING).values()))  # at the 480 px working size
    assert len(heights) == 5043 and 10 < heights.min() and heights.max() < 400
