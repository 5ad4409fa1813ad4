"""Long videos a chunk at a time: the streaming codec methods give the whole-video bytes, frames and
tokens, hold a bounded number of frames, and the .mptvc spool writes and reads the same file."""

import dataclasses
import itertools

import numpy as np
import pytest

from mptvc_latents.formats.container import (
    NoCompleteLevelError,
    SegmentCrcError,
    TrailingDataError,
    read_mptvc,
    write_mptvc,
)
from mptvc_latents.formats.spool import SegmentSpool, open_mptvc
from mptvc_latents.streaming import ChunkedVideo
from mptvc_latents.types import Compressed, Padding, Tokens, VideoInfo
from mptvc_latents.video import read_video
from tests._tiny import SAMPLE, random_video, tiny_config, tiny_model


@pytest.fixture(scope="module", autouse=True)
def _one_thread(one_torch_thread):
    """One torch thread: tiny ops gain nothing from two on a busy 2-core machine."""


@pytest.fixture(scope="module")
def clip() -> np.ndarray:
    """All 64 frames of the sample clip, cropped to 40x90 (pads to 48x96): 8 chunks of the tiny
    codec, the hard cut at frame 22 inside chunk 2."""
    return np.ascontiguousarray(read_video(SAMPLE).frames[:, 40:80, 100:190])


@pytest.fixture(scope="module")
def shots() -> np.ndarray:
    """37 frames of 21x30 in four random 'shots' (cuts at 9, 17 and 30), last chunk padded by 3."""
    rng = np.random.default_rng(0)
    ramp = np.linspace(0, 60, 30)[None, None, :, None]  # (1, 1, W, 1): a horizontal gradient
    parts = []
    for n, colour in zip((9, 8, 13, 7), ((200, 40, 40), (30, 180, 60), (40, 60, 220), (230, 220, 50)), strict=True):
        shot = np.asarray(colour, float) - ramp + rng.normal(0, 3, (n, 21, 30, 3))  # (n, 21, 30, 3)
        parts.append(np.clip(shot, 0, 255).astype(np.uint8))
    return np.concatenate(parts)


def _batches(video: np.ndarray, size: int):
    return (video[i : i + size] for i in range(0, len(video), size))


def _frames_one_by_one(video: np.ndarray):
    return iter(list(video))  # (H, W, 3) each


@pytest.mark.parametrize("name", ["clip", "shots"])
def test_compress_stream_gives_the_bytes_of_compress_whatever_the_batches(model, name, request):
    video = request.getfixturevalue(name)
    whole = model.compress(video, 24.0)
    assert whole.info.scene_ids[-1] >= 1  # the scene phase jump is part of what must match
    for frames in (_batches(video, 3), _batches(video, 8), _batches(video, 100), _frames_one_by_one(video)):
        streamed = model.compress_stream(frames, 24.0)
        assert streamed.segments == whole.segments
        assert streamed.info.scene_ids.tolist() == whole.info.scene_ids.tolist()
        assert (streamed.info.frames, streamed.info.padding) == (whole.info.frames, whole.info.padding)


@pytest.mark.parametrize("name", ["clip", "shots"])
def test_decoding_streams_give_the_frames_of_decode_and_decompress(model, name, request):
    video = request.getfixturevalue(name)
    compressed, tokens = model.compress(video), model.encode(video)
    for k_max in (0, 2):
        chunks = list(model.decompress_stream(compressed, k_max))
        assert [len(c) for c in chunks[:-1]] == [8] * (len(chunks) - 1)
        assert np.array_equal(np.concatenate(chunks), model.decompress(compressed, k_max))
        assert np.array_equal(np.concatenate(list(model.decode_stream(tokens, k_max))), model.decode(tokens, k_max))


def test_encode_stream_gives_the_tokens_of_encode_and_counts_frames(model, shots):
    done = []
    stream = model.encode_stream(_batches(shots, 5), 30.0, progress=done.append)
    chunks = list(stream)
    tokens = model.encode(shots, 30.0)
    assert [c.start for c in chunks] == [0, 8, 16, 24, 32] and [c.frames for c in chunks] == [8, 8, 8, 8, 5]
    assert done == [8, 8, 8, 8, 5] and all(c.segments is None for c in chunks)
    for k in range(3):
        assert np.array_equal(np.concatenate([c.symbols[k] for c in chunks]), tokens.symbols[k])
    assert stream.info.fps == 30.0 and stream.info.scene_ids.tolist() == tokens.info.scene_ids.tolist()


def test_a_tiled_codec_streams_the_same_bytes():
    model = tiny_model(dataclasses.replace(tiny_config(), tile=(32, 32), tile_overlap=(16, 16)))
    video = random_video(12, 40, 70, seed=3)  # 3 x 5 tiles of 4x4 tokens
    assert model.compress_stream(_batches(video, 5)).segments == model.compress(video).segments


def test_a_stream_holds_at_most_a_chunk_and_the_lookahead(model):
    """Count the frames pulled from the source against the frames handed out as chunks."""
    video = random_video(200, 16, 16, seed=1)
    pulled = []

    def source():
        for i in range(200):
            pulled.append(i)
            yield video[i : i + 1]

    chunks = ChunkedVideo(source(), model.config, 25.0, lookahead=20)
    held = []
    for chunk in chunks:
        held.append(len(pulled) - chunk.start)
    assert max(held) <= model.config.chunk_frames + 20
    assert chunks.info.frames == 200 and chunks.forced == []
    with pytest.raises(ValueError, match="window of 12 frames needs at least 13"):
        ChunkedVideo(iter([]), model.config, 25.0, lookahead=5)


def test_frames_of_another_size_or_no_frames_are_refused_with_a_sentence(model):
    frames = [np.zeros((2, 16, 16, 3), np.uint8), np.zeros((2, 16, 18, 3), np.uint8)]
    with pytest.raises(ValueError, match=r"Frame 2 is 18x16, but the video started at 16x16"):
        model.compress_stream(iter(frames))
    with pytest.raises(ValueError, match="The video is empty"):
        model.compress_stream(iter([]))
    with pytest.raises(ValueError, match="uint8"):
        model.compress_stream(iter([np.zeros((2, 16, 16, 3), np.float32)]))


def test_decode_stream_reads_token_arrays_a_chunk_at_a_time(model, clip):
    """Token arrays are only sliced per chunk (a zarr array in a store behaves so)."""
    tokens = model.encode(clip)
    reads = []

    class Recorder:
        def __init__(self, array):
            self.array = array

        def __getitem__(self, index):
            reads.append(index)
            return self.array[index]

    lazy = Tokens([Recorder(s) for s in tokens.symbols], tokens.info)
    assert np.array_equal(np.concatenate(list(model.decode_stream(lazy))), model.decode(tokens))
    assert {(r.start, r.stop) for r in reads} == {(2 * c, 2 * c + 2) for c in range(8)}


# ---------------------------------------------------------------------------- the .mptvc spool


def test_the_spool_writes_the_bytes_of_write_mptvc(model, clip, tmp_path):
    config, digest = model.config.to_dict(), model.tables_digest()
    with SegmentSpool(3, tmp_path) as spool:
        compressed = model.compress_stream(_batches(clip, 8), 25.0, segments=spool)
        assert [list(level) for level in spool] == model.compress(clip, 25.0).segments
        with open(tmp_path / "a.mptvc", "wb") as out:
            size = spool.write(out, compressed.info, config, digest)
    expected = write_mptvc(model.compress(clip, 25.0), config, digest)
    assert (tmp_path / "a.mptvc").read_bytes() == expected and size == len(expected)


def test_open_mptvc_reads_what_read_mptvc_reads_one_segment_at_a_time(model, clip, tmp_path):
    compressed = model.compress(clip)
    data = write_mptvc(compressed, model.config.to_dict(), model.tables_digest())
    path = tmp_path / "a.mptvc"
    path.write_bytes(data)
    lazy, header, report = open_mptvc(path, verify=True)
    eager, _, _ = read_mptvc(data)
    assert [list(level) for level in lazy.segments] == eager.segments and not report.truncated
    assert np.array_equal(np.concatenate(list(model.decompress_stream(lazy))), model.decompress(eager))
    cut = header.level_ends()[1] + 5  # levels 0 and 1 complete
    path.write_bytes(data[:cut])
    lazy, _, report = open_mptvc(path)
    assert len(lazy.segments) == 2 and report.levels_complete == 2 and report.truncated
    path.write_bytes(data[: header.size + 3])
    with pytest.raises(NoCompleteLevelError, match="no level can be decoded"):
        open_mptvc(path)
    path.write_bytes(data + b"x")
    with pytest.raises(TrailingDataError, match="1 unexpected bytes"):
        open_mptvc(path)


def test_a_damaged_segment_is_named_when_read_or_when_verified(model, clip, tmp_path):
    compressed = model.compress(clip)
    data = bytearray(write_mptvc(compressed, model.config.to_dict(), model.tables_digest()))
    header = open_mptvc_header(data, tmp_path)
    data[header.level_ends()[1] + 2] ^= 0xFF  # inside level 2, chunk 0's z
    path = tmp_path / "bad.mptvc"
    path.write_bytes(bytes(data))
    lazy, _, _ = open_mptvc(path)
    assert np.array_equal(np.concatenate(list(model.decompress_stream(lazy, 1))), model.decompress(compressed, 1))
    with pytest.raises(SegmentCrcError, match=r"Segment z of level 2, chunk 0 .* --k-max 1"):
        list(model.decompress_stream(lazy))
    with pytest.raises(SegmentCrcError):
        open_mptvc(path, verify=True)


def open_mptvc_header(data, tmp_path):
    (tmp_path / "good.mptvc").write_bytes(bytes(data))
    return open_mptvc(tmp_path / "good.mptvc")[1]


def test_a_header_longer_than_the_first_read_is_read_whole(model, tmp_path):
    """A long video's segment table (16 bytes per chunk and level) outgrows the first 64 KiB read."""
    frames = 8 * 1400  # 1400 chunks of the tiny codec: a 67 KB table
    info = VideoInfo(frames, 16, 16, 25.0, Padding(), np.zeros(frames, np.int32))
    segments = [[(b"z%d" % c, b"y%d-%d" % (k, c)) for c in range(1400)] for k in range(3)]
    data = write_mptvc(Compressed(segments, info), model.config.to_dict(), model.tables_digest())
    (tmp_path / "long.mptvc").write_bytes(data)
    lazy, header, _ = open_mptvc(tmp_path / "long.mptvc")
    assert header.size > 1 << 16
    assert list(itertools.islice(lazy.segments[2], 3)) == segments[2][:3]
    assert lazy.segments[1][1399] == segments[1][1399]
