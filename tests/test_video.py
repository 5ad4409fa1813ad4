"""Video discovery (the one search that training, tokenizing and evaluation share) and reading videos
a chunk at a time, awkward ones included: rotated, resized mid-stream, variable frame rate."""

import itertools
from fractions import Fraction

import av
import numpy as np
import pytest

from mptvc_latents.store import find_sources
from mptvc_latents.video import (
    FoundVideo,
    FrameWriter,
    VideoReader,
    VideoReadError,
    find_videos,
    read_video,
    write_video,
)
from tests._tiny import DATA


@pytest.fixture
def tree(tmp_path):
    """``data/b.mp4``, ``data/sub/a.gif``, ``data/notes.txt`` and ``extra/c.MKV``, all empty."""
    for name in ("data/b.mp4", "data/sub/a.gif", "data/notes.txt", "extra/c.MKV"):
        (tmp_path / name).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / name).write_bytes(b"")
    return tmp_path


def test_folders_are_searched_recursively_for_video_suffixes_in_sorted_order(tree):
    search = find_videos([tree / "data"])
    assert search.videos == (
        FoundVideo(tree / "data/b.mp4", tree / "data"),
        FoundVideo(tree / "data/sub/a.gif", tree / "data"),
    )
    assert search.unmatched == ()


def test_files_globs_and_folders_keep_the_argument_order_and_each_file_once(tree):
    notes = tree / "data" / "notes.txt"  # named directly, a file counts whatever its suffix
    paths = find_videos([notes, str(tree / "extra" / "*.MKV"), tree / "data", tree / "data" / "b.mp4"]).paths
    assert paths == [notes, tree / "extra/c.MKV", tree / "data/b.mp4", tree / "data/sub/a.gif"]
    assert find_videos([str(tree / "**" / "*.gif")]).paths == [tree / "data/sub/a.gif"]


def test_an_argument_that_matches_nothing_is_an_error_unless_skipped(tree):
    with pytest.raises(ValueError, match="'.*nowhere' matches nothing: no such file or folder"):
        find_videos([tree / "data", tree / "nowhere"])
    with pytest.raises(ValueError, match="the pattern matches no file"):
        find_videos([str(tree / "*.webm")])
    (tree / "empty").mkdir()
    with pytest.raises(ValueError, match=r"the folder holds no video files \(.mp4"):
        find_videos([tree / "empty"])
    search = find_videos([tree / "nowhere", tree / "data"], skip_missing=True)
    assert search.paths == [tree / "data/b.mp4", tree / "data/sub/a.gif"]
    assert search.unmatched == ((str(tree / "nowhere"), "no such file or folder"),)


def test_nothing_found_at_all_is_an_error_that_names_every_argument(tree):
    with pytest.raises(ValueError, match="No video was found: .*nowhere.*no such file.*empty.*no video files"):
        (tree / "empty").mkdir()
        find_videos([tree / "nowhere", tree / "empty"], skip_missing=True)
    with pytest.raises(ValueError, match="No video sources were given"):
        find_videos([])


def test_store_sources_name_clips_relative_to_their_folder_argument(tree):
    sources, unmatched = find_sources([tree / "data", tree / "nowhere"])
    assert [s.path for s in sources] == [(tree / "data/b.mp4").resolve(), (tree / "data/sub/a.gif").resolve()]
    assert [s.key.rsplit("-", 1)[0] for s in sources] == ["b", "sub_a"]
    assert unmatched == [(str(tree / "nowhere"), "no such file or folder")]


# --------------------------------------------------------------------------- reading a chunk at a time


QUADRANTS = np.array([[(230, 30, 30), (30, 230, 30)], [(30, 30, 230), (230, 230, 30)]], np.uint8)  # (2, 2, 3)


def _quadrant_frame(height=32, width=64) -> np.ndarray:
    """Red top-left, green top-right, blue bottom-left, yellow bottom-right: every turn and mirror differs."""
    return np.repeat(np.repeat(QUADRANTS, height // 2, axis=0), width // 2, axis=1)  # (H, W, 3)


def _write(path, frames, rate=25, rotation=None, times=None, codec="libx264"):
    """Frames through PyAV (lossless-ish: crf 0); a display matrix, or presentation times in ms."""
    with av.open(str(path), "w") as container:
        stream = container.add_stream(codec, rate=rate)
        stream.width, stream.height, stream.pix_fmt = frames.shape[2], frames.shape[1], "yuv420p"
        stream.options = {"crf": "0"}
        if rotation is not None:
            stream.set_display_rotation(*rotation)
        if times is not None:
            stream.codec_context.time_base = Fraction(1, 1000)
        for i, rgb in enumerate(frames):
            frame = av.VideoFrame.from_ndarray(rgb, format="rgb24")
            if times is not None:
                frame.pts, frame.time_base = times[i], Fraction(1, 1000)
            for packet in stream.encode(frame):
                container.mux(packet)
        for packet in stream.encode():
            container.mux(packet)


def _quadrants_of(frame: np.ndarray) -> np.ndarray:
    """The mean colour of each quadrant ``(2, 2, 3)``."""
    h, w = frame.shape[0] // 2, frame.shape[1] // 2
    return frame[: 2 * h, : 2 * w].reshape(2, h, 2, w, 3).mean(axis=(1, 3))  # (2, h, 2, w, 3) -> (2, 2, 3)


@pytest.mark.parametrize(
    ("degrees", "hflip", "vflip"), list(itertools.product((0, 90, 180, -90), (False, True), (False, True)))
)
def test_display_matrices_are_applied_as_a_player_does(tmp_path, degrees, hflip, vflip):
    """PyAV's ``set_display_rotation``: rotate counterclockwise by ``degrees``, then mirror."""
    _write(tmp_path / "r.mp4", np.stack([_quadrant_frame()] * 3), rotation=(degrees, hflip, vflip))
    expected = np.rot90(_quadrant_frame(), degrees // 90)
    expected = expected[:, ::-1] if hflip else expected
    expected = expected[::-1] if vflip else expected
    frames = read_video(tmp_path / "r.mp4").frames
    assert frames.shape == (3, *expected.shape)
    assert np.abs(_quadrants_of(frames[1]) - _quadrants_of(expected)).max() < 8


def test_a_rotation_that_is_no_quarter_turn_is_a_clear_error(tmp_path):
    _write(tmp_path / "tilted.mp4", np.stack([_quadrant_frame()] * 2), rotation=(30,))
    with pytest.raises(VideoReadError, match=r"Frame 0 of '.*tilted.mp4' asks to be displayed rotated by -?30 degrees"):
        read_video(tmp_path / "tilted.mp4")


def test_frames_of_a_new_size_are_rescaled_to_the_first_frames_size(tmp_path, caplog):
    """An H.264 elementary stream whose second half is coded at another size (a new SPS)."""
    small, large = np.stack([_quadrant_frame(32, 64)] * 4), np.stack([_quadrant_frame(48, 80)] * 5)
    for name, frames in (("a.h264", small), ("b.h264", large)):
        with av.open(str(tmp_path / name), "w", format="h264") as container:
            stream = container.add_stream("libx264", rate=25)
            stream.width, stream.height, stream.pix_fmt = frames.shape[2], frames.shape[1], "yuv420p"
            for rgb in frames:
                for packet in stream.encode(av.VideoFrame.from_ndarray(rgb, format="rgb24")):
                    container.mux(packet)
            for packet in stream.encode():
                container.mux(packet)
    joined = tmp_path / "joined.h264"
    joined.write_bytes((tmp_path / "a.h264").read_bytes() + (tmp_path / "b.h264").read_bytes())
    reader = VideoReader(joined)
    chunks = list(reader.chunks(3))
    assert [c.shape for c in chunks] == [(3, 32, 64, 3), (3, 32, 64, 3), (3, 32, 64, 3)]
    assert np.abs(_quadrants_of(chunks[-1][-1]) - QUADRANTS).max() < 12  # the same picture, rescaled
    assert "frame 4 is 80x48, not 64x32 like the first frame; rescaling it" in caplog.text
    assert reader.size == (32, 64) and reader.fps == 25.0


def test_variable_frame_rates_keep_every_frame_and_its_time(tmp_path):
    times = [0, 40, 80, 200, 240, 500, 540, 580]  # ms: pauses, as in screen recordings
    frames = np.stack([_quadrant_frame()] * len(times))
    _write(tmp_path / "vfr.mkv", frames, times=times)
    reader = VideoReader(tmp_path / "vfr.mkv")
    clip = reader.read()
    assert len(clip.frames) == 8 and clip.timestamps.tolist() == [t / 1000 for t in times]
    assert reader.fps == 25.0  # as the container declares it
    assert reader.frame_count == 8


def test_chunks_windows_and_reading_again_give_the_same_frames(tmp_path):
    frames = np.random.default_rng(0).integers(0, 256, (11, 16, 24, 3), dtype=np.uint8)
    write_video(tmp_path / "v.mp4", frames, 25.0)
    whole = read_video(tmp_path / "v.mp4").frames
    reader = VideoReader(tmp_path / "v.mp4")
    assert [len(c) for c in reader.chunks(4)] == [4, 4, 3] and reader.frame_count == 11
    assert np.array_equal(np.concatenate(list(reader.chunks(4))), whole)
    assert np.array_equal(VideoReader(tmp_path / "v.mp4", start=3, max_frames=5).read().frames, whole[3:8])
    assert VideoReader(tmp_path / "v.mp4", start=3, max_frames=5).frame_count == 5
    with pytest.raises(VideoReadError, match="no frames in the requested range"):
        read_video(tmp_path / "v.mp4", start=20)
    (tmp_path / "not.mp4").write_bytes(b"nothing here")
    with pytest.raises(VideoReadError, match="could not be opened as a video"):
        VideoReader(tmp_path / "not.mp4")


def test_frame_writer_appends_chunks_as_np_save_and_video_would_write_them(tmp_path):
    frames = np.random.default_rng(1).integers(0, 256, (7, 15, 21, 3), dtype=np.uint8)
    np.save(tmp_path / "ref.npy", frames)
    with FrameWriter(tmp_path / "a.npy", 25.0, frames=7) as writer:
        for i in range(0, 7, 3):
            writer.write(frames[i : i + 3])
    assert (tmp_path / "a.npy").read_bytes() == (tmp_path / "ref.npy").read_bytes()
    with FrameWriter(tmp_path / "a.mp4", 25.0) as writer:
        writer.write(frames[:4])
        writer.write(frames[4:])
    write_video(tmp_path / "b.mp4", frames, 25.0)
    assert np.array_equal(read_video(tmp_path / "a.mp4").frames, read_video(tmp_path / "b.mp4").frames)
    with pytest.raises(ValueError, match="got 3 frames of the 7 it was opened for"):
        with FrameWriter(tmp_path / "c.npy", 25.0, frames=7) as writer:
            writer.write(frames[:3])
    with pytest.raises(ValueError, match=r"cannot follow frames of \(15, 21\)"):
        with FrameWriter(tmp_path / "d.mp4", 25.0) as writer:
            writer.write(frames[:2])
            writer.write(frames[:2, :14])


def test_the_real_screen_recording_whose_size_changes_reads_at_its_first_size():
    path = DATA / "train" / "ffmpegwasm_ffmpeg.wasm" / "playground-how-to.webm"
    if not path.exists():
        pytest.skip(f"Real data not present at {DATA}.")
    reader = VideoReader(path, start=255, max_frames=16)  # the size changes at frame 262
    frames = reader.read().frames
    assert frames.shape == (16, 882, 1920, 3)
    assert 19 < reader.fps < 21  # WebM declares no rate (its time base is 1/1000); the packets give ~19.9
    assert np.all(np.diff(reader.timestamps) > 0)
