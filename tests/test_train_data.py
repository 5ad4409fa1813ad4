"""Training clips: the catalog, the per-step plan, the crop itself, the frame cache and the worker stream."""

import numpy as np
import pytest
import torch

from mptvc_latents.train import data
from mptvc_latents.train.data import (
    Augment,
    ClipStream,
    Crop,
    FrameCache,
    Stage,
    VideoEntry,
    clip_loader,
    cut_clip,
    decode_video,
    plan_crops,
    probe_videos,
)
from tests._tiny import SAMPLE


def _coded_video(frames: int = 20, height: int = 24, width: int = 40) -> np.ndarray:
    """uint8 frames whose channels hold the frame, row and column index of each pixel."""
    t, y, x = np.meshgrid(np.arange(frames), np.arange(height), np.arange(width), indexing="ij")
    return np.stack([t, y, x], axis=-1).astype(np.uint8)


def _pixels(clip: torch.Tensor) -> np.ndarray:
    """A clip of ``cut_clip`` back to exact 0..255 integers ``(3, T, H, W)``."""
    return np.rint((clip.numpy().astype(np.float64) + 1.0) * 127.5).astype(np.int64)


def test_the_catalog_knows_each_video_as_the_cache_decodes_it_without_decoding_it(tmp_path, monkeypatch):
    (entry,) = probe_videos([str(SAMPLE)], max_side=160, max_frames=40)
    frames = decode_video(SAMPLE, max_side=160, max_frames=40)
    assert (entry.frames, entry.height, entry.width) == frames.shape[:3] == (40, 68, 160)
    (full,) = probe_videos([str(SAMPLE)], max_side=480, max_frames=1000)
    assert (full.frames, full.height, full.width) == (64, 136, 320)

    bad = tmp_path / "broken.mp4"
    bad.write_bytes(b"not a video")
    assert probe_videos([str(bad), str(SAMPLE)], 160, 40) == [entry]  # skipped with a warning
    with pytest.raises(ValueError, match="None of the training videos"):
        probe_videos([str(bad)], 160, 40)


def test_the_frame_cache_decodes_a_video_once_and_then_reads_the_file(tmp_path, monkeypatch):
    cache = FrameCache(tmp_path / "frames", max_side=160, max_frames=40)
    frames, scenes = cache.get(str(SAMPLE))
    assert frames.shape == (40, 68, 160, 3) and scenes.shape == (40,) and scenes.dtype == np.int32
    assert sorted(p.suffix for p in (tmp_path / "frames").iterdir()) == [".npy", ".npy"]

    def no_decoding(*args, **kwargs):
        raise AssertionError("the cache decoded the video again")

    monkeypatch.setattr(data, "decode_video", no_decoding)
    again, _ = FrameCache(tmp_path / "frames", max_side=160, max_frames=40).get(str(SAMPLE))
    assert isinstance(again, np.memmap) and np.array_equal(again, frames)
    with pytest.raises(AssertionError, match="decoded the video again"):  # other settings: another file
        FrameCache(tmp_path / "frames", max_side=120, max_frames=40).get(str(SAMPLE))


def test_a_step_plans_the_same_crops_whenever_it_runs_and_other_steps_plan_others():
    entries = [VideoEntry("a", 100, 64, 64), VideoEntry("b", 10, 64, 64), VideoEntry("c", 100, 16, 16)]
    stage = Stage(0, 64, 8, (32, 32))
    augment = Augment(time_strides=(1, 2, 3), rescale=(0.5, 1.0))
    first = plan_crops(entries, seed=1, step=7, stage=stage, augment=augment)
    assert first == plan_crops(entries, seed=1, step=7, stage=stage, augment=augment)
    assert first != plan_crops(entries, seed=1, step=8, stage=stage, augment=augment)
    assert first != plan_crops(entries, seed=2, step=7, stage=stage, augment=augment)
    assert {c.video for c in first} == {0, 1}  # "c" is smaller than the crop
    assert sum(c.video == 0 for c in first) > 3 * sum(c.video == 1 for c in first)  # drawn by frame count
    assert {c.stride for c in first} == {1, 2, 3} and all(0.5 <= c.scale <= 1.0 for c in first)
    assert 0 < sum(c.flip for c in first) < 64
    unflipped = plan_crops(entries, seed=1, step=7, stage=stage, augment=Augment((1, 2, 3), (0.5, 1.0), flip=False))
    assert not any(c.flip for c in unflipped) and [c.t for c in unflipped] == [c.t for c in first]


def test_a_crop_takes_its_frames_rows_and_columns_from_where_the_plan_says():
    video = _coded_video()
    scene_ids = (np.arange(20) >= 10).astype(np.int32)
    crop = Crop(video=0, t=0.5, y=0.0, x=1.0, flip=False, stride=2, scale=1.0)
    clip, scenes = cut_clip(video, scene_ids, crop, length=4, height=8, width=16)
    t, y, x = _pixels(clip)
    assert clip.shape == (3, 4, 8, 16) and clip.dtype == torch.float32
    assert t[:, 0, 0].tolist() == [7, 9, 11, 13]  # a span of 7 frames has 14 starts: the middle one
    assert y[0, :, 0].tolist() == list(range(8)) and x[0, 0].tolist() == list(range(24, 40))
    assert scenes.tolist() == [0, 0, 1, 1]

    flipped, _ = cut_clip(video, scene_ids, Crop(0, 0.5, 0.0, 1.0, True, 2, 1.0), 4, 8, 16)
    assert _pixels(flipped)[2][0, 0].tolist() == list(range(39, 23, -1))

    too_long, _ = cut_clip(video, scene_ids, Crop(0, 0.0, 0.0, 0.0, False, 9, 1.0), 4, 8, 16)
    assert _pixels(too_long)[0][:, 0, 0].tolist() == [0, 6, 12, 18]  # stride 9 does not fit: 6

    # Rescale 0.5: a 16x32 region shrunk to 8x16 (antialiased), so the columns step by about 2.
    shrunk, _ = cut_clip(video, scene_ids, Crop(0, 0.0, 0.0, 0.0, False, 1, 0.5), 4, 8, 16)
    columns = (shrunk[2, 0, 0].numpy() + 1.0) * 127.5
    assert shrunk.shape == (3, 4, 8, 16) and 29 <= columns[-1] - columns[0] <= 31
    # Scale 0.25 wants 32x64 pixels of a 24x40 video: the region is capped at 20x40 (scale 0.4).
    capped, _ = cut_clip(video, scene_ids, Crop(0, 0.0, 0.0, 0.0, False, 1, 0.25), 4, 8, 16)
    rows, columns = (capped[1, 0, :, 0].numpy() + 1.0) * 127.5, (capped[2, 0, 0].numpy() + 1.0) * 127.5
    assert 16.5 <= rows[-1] - rows[0] <= 18.5 and 36.5 <= columns[-1] - columns[0] <= 38.5


def test_ranks_take_disjoint_shares_of_the_global_batch_and_workers_change_nothing(tmp_path):
    entries = probe_videos([str(SAMPLE)], max_side=160, max_frames=40)
    cache = FrameCache(tmp_path / "frames", 160, 40)
    stages = (Stage(0, 4, 8, (32, 32)), Stage(3, 2, 4, (48, 64)))
    augment = Augment(time_strides=(1, 2), rescale=(0.75, 1.0))
    whole = ClipStream(entries, stages, augment, cache, seed=3, start=0, end=5)
    halves = [ClipStream(entries, stages, augment, cache, seed=3, start=0, end=5, rank=r, world_size=2) for r in (0, 1)]
    for step in range(5):
        x, scenes = whole.batch(step)
        parts = [half.batch(step) for half in halves]
        assert torch.equal(torch.cat([p[0] for p in parts]), x) and torch.equal(
            torch.cat([p[1] for p in parts]), scenes
        )
    assert whole.batch(2)[0].shape == (4, 3, 8, 32, 32) and whole.batch(3)[0].shape == (2, 3, 4, 48, 64)
    assert x.min() >= -1 and x.max() <= 1 and scenes.dtype == torch.int64

    in_process = list(ClipStream(entries, stages, augment, cache, seed=3, start=1, end=5))
    in_workers = list(clip_loader(ClipStream(entries, stages, augment, cache, seed=3, start=1, end=5), workers=2))
    assert [b[0] for b in in_workers] == [b[0] for b in in_process] == [1, 2, 3, 4]
    assert all(torch.equal(a[1], b[1]) and torch.equal(a[2], b[2]) for a, b in zip(in_process, in_workers, strict=True))

    with pytest.raises(ValueError, match="cannot be split evenly over 4 processes"):
        ClipStream(entries, stages, augment, cache, seed=3, start=0, end=5, rank=0, world_size=4)


def test_augmentation_and_stage_settings_are_checked():
    with pytest.raises(ValueError, match="time_strides"):
        Augment(time_strides=(0,))
    with pytest.raises(ValueError, match="rescale"):
        Augment(rescale=(1.0, 0.5))
    with pytest.raises(ValueError, match="crop"):
        Stage(10, 4, 8, (32,))
    assert Stage.from_dict(Stage(10, 4, 8, (32, 48)).to_dict()) == Stage(10, 4, 8, (32, 48))
