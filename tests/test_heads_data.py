"""Reading the annotated real sequences of ../shared/data/tracking (never copied into the repo).

Skips when the data folder is absent (it is not shipped: non-commercial research data).
"""

from pathlib import Path

import numpy as np
import pytest

from heads.data import read_mot_sequence, read_otb_sequence, reference_frames

TRACKING = Path(__file__).resolve().parents[1].parent / "shared" / "data" / "tracking"

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
