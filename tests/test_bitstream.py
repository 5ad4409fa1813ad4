"""The .mptvc container (docs/bitstream.md): the exact layout, a file of an earlier release read and
re-written byte for byte, the level-prefix property, a cut at every byte, a flipped bit at every bit,
the wrong checkpoint, crafted headers, fuzzing, the framing it shares with prior streams, and no torch."""

import dataclasses
import json
import logging
import os
import struct
import subprocess
import sys
import tracemalloc
import zlib
from pathlib import Path

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from mptvc_latents.formats import container as bs
from mptvc_latents.formats import framing
from mptvc_latents.formats.container import read_mptvc, truncate_mptvc, write_mptvc
from mptvc_latents.types import Compressed, Padding
from tests._tiny import random_video, tiny_config, tiny_model

K = 3
FUZZ = Path(__file__).with_name("fuzz_bitstream.py")
# Written by the `data` fixture's recipe (tiny_model(), 13 frames of 20x30 with a cut at frame 9) at
# commit ceaa28d, before the container took its types from mptvc_latents.types and its framing from
# formats.framing: the bytes a release wrote, which every later reader and writer must keep.
FIXTURE = Path(__file__).parent / "fixtures" / "container" / "tiny_v2.mptvc"


@pytest.fixture(scope="module")
def model():
    return tiny_model()


@pytest.fixture(scope="module")
def compressed(model):
    """13 frames of 20x30 (width x height): padding in t, h and w, two chunks, two scenes."""
    video = random_video(13, 30, 20)
    video[:9] //= 4  # dark, then bright: a hard cut at frame 9
    video[9:] = 192 + video[9:] // 4
    return model.compress(video, fps=29.97)


@pytest.fixture(scope="module")
def decoded(model, compressed) -> list[np.ndarray]:
    """``decoded[k]``: the video from levels 0..k."""
    return [model.decompress(compressed, k) for k in range(K)]


@pytest.fixture(scope="module")
def data(model, compressed) -> bytes:
    return write_mptvc(compressed, model.config.to_dict(), model.tables_digest())


@pytest.fixture(scope="module")
def header(data):
    return bs.parse_header(data)


def _sentence(error: BaseException) -> str:
    message = str(error)
    assert message[0].isupper() and message.endswith("."), f"not a sentence: {message!r}"
    assert "\n" not in message and len(message.split()) >= 6, message
    return message


def _restamp(data: bytes) -> bytes:
    """Recompute the header CRC (for crafted headers that must pass it)."""
    (body_len,) = struct.unpack_from("<I", data, 10)
    end = 14 + body_len
    return data[:end] + struct.pack("<I", zlib.crc32(data[:end])) + data[end + 4 :]


def _with_body(data: bytes, body: bytes) -> bytes:
    """The file with its header body replaced (length and CRC updated, segments kept)."""
    (old,) = struct.unpack_from("<I", data, 10)
    head = data[:10] + struct.pack("<I", len(body)) + body
    return head + struct.pack("<I", zlib.crc32(head)) + data[18 + old :]


# --------------------------------------------------------------------------- layout


def test_the_bytes_follow_the_documented_layout(model, compressed, data):
    """An independent parse with struct, straight from docs/bitstream.md."""
    assert data[:8] == b"\x89MPTVC\r\n"
    version, body_len = struct.unpack_from("<HI", data, 8)
    assert version == 2
    body = data[14 : 14 + body_len]
    assert struct.unpack_from("<I", data, 14 + body_len)[0] == zlib.crc32(data[: 14 + body_len])
    width, height, frames, fps, pt, ph, pw = struct.unpack_from("<IIId3I", body)
    assert (width, height, frames, fps, (pt, ph, pw)) == (20, 30, 13, 29.97, (3, 2, 12))
    pos = 32
    assert body[pos : pos + 32].hex() == model.tables_digest()
    (config_len,) = struct.unpack_from("<I", body, pos + 32)
    pos += 36
    assert json.loads(zlib.decompress(body[pos : pos + config_len])) == model.config.to_dict()
    pos += config_len
    (runs,) = struct.unpack_from("<I", body, pos)
    pairs = [struct.unpack_from("<iI", body, pos + 4 + 8 * i) for i in range(runs)]
    assert np.array_equal(np.repeat([i for i, _ in pairs], [n for _, n in pairs]), compressed.info.scene_ids)
    assert len(set(compressed.info.scene_ids.tolist())) == 2 == runs
    pos += 4 + 8 * runs
    levels, chunks = struct.unpack_from("<BI", body, pos)
    assert (levels, chunks) == (K, 2)
    pos += 5
    payload = 18 + body_len
    for k in range(K):  # level-major, then chunk, then z before y
        for c in range(chunks):
            for segment in compressed.segments[k][c]:
                length, crc = struct.unpack_from("<II", body, pos)
                assert (length, crc) == (len(segment), zlib.crc32(segment))
                assert data[payload : payload + length] == segment
                pos, payload = pos + 8, payload + length
    assert pos == body_len and payload == len(data)


def test_reading_restores_segments_info_and_decoded_video(model, compressed, decoded, data):
    stream, header, report = read_mptvc(data, digest=model.tables_digest(), config=model.config.to_dict())
    assert stream.segments == compressed.segments and not report.truncated and report.dropped_levels == ()
    info = stream.info
    assert (info.frames, info.height, info.width, info.fps) == (13, 30, 20, 29.97)
    assert info.padding == Padding(3, 2, 12) and info.padded_shape == compressed.info.padded_shape
    assert np.array_equal(info.scene_ids, compressed.info.scene_ids) and info.scene_ids.dtype == np.int32
    assert header.config == model.config.to_dict() and header.digest == model.tables_digest()
    assert type(stream) is Compressed and header.info is info
    assert np.array_equal(model.decompress(stream), decoded[-1])
    assert np.array_equal(model.decompress(stream, 0), decoded[0])


def test_a_file_of_an_earlier_release_reads_and_rewrites_to_the_same_bytes():
    old = FIXTURE.read_bytes()
    assert len(old) == 1028 and zlib.crc32(old) == 0xDA2DF976  # the fixture itself is intact
    stream, header, report = read_mptvc(old)
    assert not report.truncated and header.size == 488 and header.config["name"] == "tiny"
    assert header.segment_sizes == (((33, 49), (33, 49)), ((33, 65), (33, 49)), ((33, 65), (33, 65)))
    info = stream.info
    assert (info.frames, info.height, info.width, info.fps, info.padding) == (13, 30, 20, 29.97, Padding(3, 2, 12))
    assert info.scene_ids.tolist() == [0] * 9 + [1] * 7
    assert write_mptvc(stream, header.config, header.digest) == old
    assert header.level_ends() == [652, 832, 1028] and truncate_mptvc(old, 1) == old[:832]


def test_reading_from_a_path_names_the_file_in_errors(data, tmp_path):
    path = tmp_path / "clip.mptvc"
    path.write_bytes(data)
    assert read_mptvc(path)[0].segments == read_mptvc(data)[0].segments
    path.write_bytes(data[:-1] + bytes([data[-1] ^ 1]))
    with pytest.raises(bs.SegmentCrcError, match="clip.mptvc"):
        read_mptvc(str(path))
    with pytest.raises(ValueError, match="does not exist"):
        read_mptvc(tmp_path / "missing.mptvc")


def test_write_refuses_inconsistent_input(model, compressed):
    config, digest = model.config.to_dict(), model.tables_digest()
    for bad_digest in ("abc", "zz" * 32, None):
        with pytest.raises(ValueError, match="sha256"):
            write_mptvc(compressed, config, bad_digest)
    short = Compressed(compressed.segments[:2], compressed.info)
    with pytest.raises(ValueError, match="3 levels of 2 chunks"):
        write_mptvc(short, config, digest)
    with pytest.raises(ValueError, match="CodecConfig"):
        write_mptvc(compressed, {**config, "patch": 3}, digest)
    other = tiny_model(tiny_config(chunk_frames=16))
    with pytest.raises(ValueError, match="levels of 1 chunks"):
        write_mptvc(compressed, other.config.to_dict(), digest)


# --------------------------------------------------------------------------- prefixes and cuts


def test_every_level_prefix_is_a_valid_file_with_fewer_levels(model, compressed, data, header, caplog):
    ends = header.level_ends()
    assert ends[-1] == len(data) and ends == sorted(ends)
    for k in range(K):
        prefix = truncate_mptvc(data, k)
        assert prefix == data[: ends[k]]
        with caplog.at_level(logging.WARNING, logger="mptvc_latents.formats.container"):
            caplog.clear()
            stream, _, report = read_mptvc(prefix)
        assert stream.segments == compressed.segments[: k + 1]
        assert report.levels_complete == k + 1 and report.dropped_levels == tuple(range(k + 1, K))
        assert (len(caplog.records) == 1) == (k < K - 1)  # a warning exactly when levels are dropped
        assert truncate_mptvc(prefix, k) == prefix
    with pytest.raises(ValueError, match=r"0\.\.0"):
        truncate_mptvc(data[: ends[0]], 1)


def test_a_cut_at_every_byte_keeps_the_complete_levels_or_raises_the_documented_error(
    model, compressed, decoded, data, header
):
    ends = header.level_ends()
    seen = {}
    for n in range(len(data) + 1):
        cut = data[:n]
        if n == 0:
            expected = bs.NotMptvcError
        elif n < header.size:
            expected = bs.TruncatedHeaderError
        elif n < ends[0]:
            expected = bs.NoCompleteLevelError
        else:
            stream, _, report = read_mptvc(cut, warn=False)
            complete = sum(end <= n for end in ends)
            assert report.levels_complete == complete == len(stream.segments), n
            assert stream.segments == compressed.segments[:complete], n
            seen.setdefault(complete, stream)
            continue
        with pytest.raises(bs.BitstreamError) as info:
            read_mptvc(cut)
        assert type(info.value) is expected, (n, info.value)
        _sentence(info.value)
    assert sorted(seen) == [1, 2, 3]
    for complete, stream in seen.items():  # decoding a cut file == decoding the whole file up to its levels
        assert np.array_equal(model.decompress(stream), decoded[complete - 1])
    with pytest.raises(bs.TrailingDataError):
        read_mptvc(data + b"\0")


def test_every_flipped_bit_raises_the_error_of_its_region(data, header):
    """Magic: not mptvc; version: unsupported (or the header CRC for another readable version);
    length: truncated header or header CRC; rest of the header: header CRC; a segment: segment CRC
    naming its level, chunk and kind."""
    owners = []  # (level, chunk, kind) of every payload byte
    for k, level in enumerate(header.segment_sizes):
        for c, pair in enumerate(level):
            for kind, length in zip(bs.KINDS, pair, strict=True):
                owners += [(k, c, kind)] * length
    assert header.size + len(owners) == len(data)
    for i in range(len(data)):
        for bit in range(8):
            flipped = bytearray(data)
            flipped[i] ^= 1 << bit
            with pytest.raises(bs.BitstreamError) as info:
                read_mptvc(bytes(flipped))
            error = info.value
            if i < 8:
                assert type(error) is bs.NotMptvcError, (i, bit)
            elif i < 10:
                # A flip to another version this library reads (2, 3, 4) is caught by the header CRC.
                readable = int.from_bytes(flipped[8:10], "little") in bs.FRAMING.readable
                assert type(error) is (bs.HeaderCrcError if readable else bs.UnsupportedVersionError), (i, bit)
            elif i < 14:
                assert type(error) in (bs.TruncatedHeaderError, bs.HeaderCrcError), (i, bit)
            elif i < header.size:
                assert type(error) is bs.HeaderCrcError, (i, bit)
            else:
                assert type(error) is bs.SegmentCrcError, (i, bit)
                k, c, kind = owners[i - header.size]
                assert (error.level, error.chunk, error.kind) == (k, c, kind)
                assert f"level {k}, chunk {c}" in str(error)


def test_messages_are_sentences_for_every_error(data, header):
    cases = [b"", b"GIF89a....", data[:5], data[:12], data[: header.size - 1], data[: header.size], data + b"x"]
    cases.append(data[:8] + b"\x01\x00" + data[10:])
    cases.append(data[:20] + bytes([data[20] ^ 0x10]) + data[21:])
    for case in cases:
        with pytest.raises(bs.BitstreamError) as info:
            read_mptvc(case)
        _sentence(info.value)


def test_versions_other_than_2_to_4_are_refused(data):
    for version in (0, 1, 5, 0xFFFF):
        with pytest.raises(
            bs.UnsupportedVersionError, match=f"version {version}, but this library reads only versions 2, 3 and 4;"
        ):
            read_mptvc(data[:8] + struct.pack("<H", version) + data[10:])
    with pytest.raises(bs.UnsupportedVersionError):
        read_mptvc(data[:8] + b"\x01\x00")  # even when the rest is missing


def test_a_framing_writes_its_older_versions_and_reads_them_back():
    old = framing.Framing(b"TOY", 3, "a toy", "the toy header", "update", also_reads=(2,))
    assert old.unframe(old.frame(b"body", version=2)).version == 2
    with pytest.raises(ValueError, match="no version 1"):
        old.frame(b"body", version=1)


# --------------------------------------------------------------------------- checkpoints


def test_a_file_from_another_checkpoint_is_a_clear_error(model, data):
    levels = tiny_config().levels
    other = tiny_model(tiny_config(levels=levels[:2] + (dataclasses.replace(levels[2], fsq_levels=10),)))
    assert other.tables_digest() != model.tables_digest()
    with pytest.raises(bs.WrongCheckpointError, match="another checkpoint") as info:
        read_mptvc(data, digest=other.tables_digest(), config=other.config.to_dict())
    _sentence(info.value)
    # Same tables (the digest only covers the integer tables) but another configuration.
    changed = {**model.config.to_dict(), "radius": [2, 2, 2]}
    with pytest.raises(bs.WrongCheckpointError, match="radius"):
        read_mptvc(data, digest=model.tables_digest(), config=changed)
    read_mptvc(data, digest=model.tables_digest(), config={**model.config.to_dict(), "name": "renamed"})


# --------------------------------------------------------------------------- crafted headers


def _body(data: bytes) -> bytes:
    (body_len,) = struct.unpack_from("<I", data, 10)
    return data[14 : 14 + body_len]


@pytest.mark.parametrize(
    "edit, words",
    [
        (lambda b: struct.pack("<I", 0) + b[4:], "out of range"),  # width 0
        (lambda b: b[:8] + struct.pack("<I", 2**24 + 1) + b[12:], "out of range"),  # frames
        (lambda b: b[:12] + struct.pack("<d", float("nan")) + b[20:], "frame rate"),
        (lambda b: b[:20] + struct.pack("<I", 11) + b[24:], "padding"),
        (lambda b: b[:64] + struct.pack("<I", 2**32 - 1) + b[68:], "codec config needs"),  # config_len
        (lambda b: b + b"\0", "unexpected bytes"),
        (lambda b: b[:-1], "segment table"),
    ],
)
def test_crafted_headers_with_a_valid_crc_are_malformed(data, edit, words):
    with pytest.raises(bs.MalformedHeaderError, match=words) as info:
        read_mptvc(_with_body(data, edit(_body(data))))
    _sentence(info.value)


def test_crafted_config_and_scene_runs_are_malformed(model, compressed, data):
    digest = model.tables_digest()
    body = _body(data)
    (config_len,) = struct.unpack_from("<I", body, 64)
    rest = body[68 + config_len :]

    def with_config(raw: bytes) -> bytes:
        return _with_body(data, body[:64] + struct.pack("<I", len(raw)) + raw + rest)

    for raw, words in [
        (b"not zlib", "zlib"),
        (zlib.compress(b"[1, 2]"), "JSON object"),
        (zlib.compress(b'{"levels": Infinity}'), "JSON"),
        (zlib.compress(json.dumps({**model.config.to_dict(), "patch": 3}).encode()), "CodecConfig"),
        (zlib.compress(b" " * (bs.MAX_CONFIG + 1)), "at most"),  # a deflate bomb stops at the cap
    ]:
        with pytest.raises(bs.MalformedHeaderError, match=words):
            read_mptvc(with_config(raw))
    runs_at = 68 + config_len
    (runs,) = struct.unpack_from("<I", body, runs_at)
    bad_runs = body[: runs_at + 4] + struct.pack("<iI", 0, 1) + body[runs_at + 12 :]  # first run of length 1
    with pytest.raises(bs.MalformedHeaderError, match="scene runs"):
        read_mptvc(_with_body(data, bad_runs))
    huge = body[:runs_at] + struct.pack("<I", 2**32 - 1) + body[runs_at + 4 :]
    with pytest.raises(bs.MalformedHeaderError, match="scene runs cannot cover"):
        read_mptvc(_with_body(data, huge))
    assert digest  # the edits above never touch the digest


def test_a_huge_segment_length_allocates_nothing(data, header):
    """A length field of 4 GiB with a valid header CRC: the level is incomplete, not allocated."""
    body = bytearray(_body(data))
    first_entry = len(body) - 8 * 2 * header.num_levels * header.num_chunks
    struct.pack_into("<I", body, first_entry, 2**32 - 1)
    crafted = _with_body(data, bytes(body))
    tracemalloc.start()
    with pytest.raises(bs.NoCompleteLevelError):
        read_mptvc(crafted)
    peak = tracemalloc.get_traced_memory()[1]
    tracemalloc.stop()
    assert peak < 10 * len(data) + 2**20
    assert bs.inspect_mptvc(crafted).levels_complete == 0


# --------------------------------------------------------------------------- inspect


def test_inspect_reports_every_prefix(model, data, header):
    d = bs.inspect_mptvc(data[:-1]).to_dict()
    pixels = 13 * 30 * 20
    assert (d["width"], d["height"], d["frames"], d["fps"]) == (20, 30, 13, 29.97)
    assert d["digest"] == model.tables_digest() and d["config_name"] == "tiny" and d["scenes"] == 2
    assert d["levels_total"] == K and d["levels_complete"] == K - 1 and d["truncated"]
    assert [row["prefix_bytes"] for row in d["levels"]] == header.level_ends()
    assert [row["bytes"] for row in d["levels"]] == header.level_sizes()
    assert all(row["z_bytes"] + row["y_bytes"] == row["bytes"] for row in d["levels"])
    assert [row["prefix_bpp"] for row in d["levels"]] == [8 * e / pixels for e in header.level_ends()]
    assert [row["complete"] for row in d["levels"]] == [True, True, False]
    json.dumps(d)
    text = bs.inspect_mptvc(data).format()
    assert "20x30, 13 frames at 29.97 fps" in text and model.tables_digest() in text


# --------------------------------------------------------------------------- the framing

TOY = framing.Framing(b"TOY", 3, "a toy file", "the toy header", "write it again with this version")


def test_a_frame_follows_its_layout_and_each_cut_or_flip_raises_the_error_of_its_region():
    body = bytes(range(40))
    data = TOY.frame(body)
    assert data[:3] == b"TOY" and struct.unpack_from("<HI", data, 3) == (3, 40) and data[9:49] == body
    assert struct.unpack_from("<I", data, 49)[0] == zlib.crc32(data[:49]) and len(data) == 53
    assert TOY.unframe(data + b"payloads") == framing.Frame(body, 53, 3)
    for n in range(len(data)):
        with pytest.raises(framing.FramingError) as info:
            TOY.unframe(data[:n])
        assert type(info.value) is (framing.WrongMagicError if n == 0 else framing.TruncatedError), n
        _sentence(info.value)
    for i in range(len(data)):
        for bit in range(8):
            flipped = bytearray(data)
            flipped[i] ^= 1 << bit
            with pytest.raises(framing.FramingError) as info:
                TOY.unframe(bytes(flipped))
            if i < 3:
                expected = (framing.WrongMagicError,)
            elif i < 5:
                expected = (framing.UnsupportedVersionError,)
            elif i < 9:  # the body length: the CRC moves, or lies past the end
                expected = (framing.TruncatedError, framing.CrcMismatchError)
            else:
                expected = (framing.CrcMismatchError,)
            assert type(info.value) in expected, (i, bit)
    with pytest.raises(framing.UnsupportedVersionError, match="version 4, but this library reads only version 3;"):
        TOY.unframe(b"TOY\x04\x00")


def test_the_container_raises_its_own_errors_which_are_framing_errors(data):
    for case, error in [
        (b"GIF89a", framing.WrongMagicError),
        (data[:8] + b"\x01\x00", framing.UnsupportedVersionError),
        (data[:12], framing.TruncatedError),
        (data[:20] + bytes([data[20] ^ 1]) + data[21:], framing.CrcMismatchError),
    ]:
        with pytest.raises(bs.BitstreamError) as info:
            read_mptvc(case)
        assert isinstance(info.value, error)


def test_payload_tables_list_lengths_and_crcs_and_splitting_checks_them():
    payloads = [b"", b"abc", bytes(100)]
    table = framing.payload_table(payloads)
    assert table == b"".join(struct.pack("<II", len(p), zlib.crc32(p)) for p in payloads)
    entries = framing.payload_entries(table)
    assert entries.tolist() == [[0, 0], [3, zlib.crc32(b"abc")], [100, zlib.crc32(bytes(100))]]
    data = b"head" + b"".join(payloads)
    assert framing.split_payloads(data, 4, entries) == payloads
    with pytest.raises(framing.TruncatedError, match="cut inside payload 2: it needs 100 bytes but only 99") as info:
        framing.split_payloads(data[:-1], 4, entries)
    _sentence(info.value)
    with pytest.raises(framing.PayloadCrcError, match="Payload 1 of the data fails its CRC check") as info:
        framing.split_payloads(data[:5] + b"X" + data[6:], 4, entries)
    assert info.value.index == 1
    with pytest.raises(ValueError, match="multiple of 8 bytes"):
        framing.payload_entries(table[:-1])


def test_the_formats_and_types_import_without_torch():
    """``mptvc info``, stores read by data loaders and the container stay light: no torch, no hub."""
    code = (
        "import sys\n"
        "import mptvc_latents.formats.container, mptvc_latents.formats.framing\n"
        "import mptvc_latents.formats.token_store, mptvc_latents.types\n"
        "heavy = sorted(m for m in sys.modules if m.split('.')[0] in ('torch', 'huggingface_hub'))\n"
        "assert not heavy, heavy[:5]\n"
    )
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=FIXTURE.parents[2])
    assert result.returncode == 0, result.stderr[-2000:]


# --------------------------------------------------------------------------- fuzzing


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(st.binary(max_size=200))
def test_arbitrary_bytes_raise_only_bitstream_errors(blob):
    for candidate in (blob, bs.MAGIC + blob, bs.MAGIC + b"\x02\x00" + blob):
        try:
            read_mptvc(candidate)
        except bs.BitstreamError:
            pass


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(
    edits=st.lists(st.tuples(st.integers(0, 10**6), st.integers(0, 255)), min_size=1, max_size=4),
    cut=st.integers(0, 10**6),
    restamp=st.booleans(),
)
def test_mutated_files_raise_only_bitstream_errors(data, edits, cut, restamp):
    buf = bytearray(data)
    for pos, value in edits:
        buf[pos % len(buf)] = value
    mutant = bytes(buf[: len(buf) - cut % 64])
    mutant = _restamp(mutant) if restamp and len(mutant) >= 18 + struct.unpack_from("<I", mutant, 10)[0] else mutant
    try:
        read_mptvc(mutant, warn=False)
        bs.inspect_mptvc(mutant)
    except bs.BitstreamError:
        pass


@pytest.mark.slow
def test_fuzz_the_reader_with_atheris_or_random_mutations():
    """tests/fuzz_bitstream.py for MPTVC_FUZZ_SECONDS (default 15): atheris when installed."""
    seconds = os.environ.get("MPTVC_FUZZ_SECONDS", "15")
    result = subprocess.run(
        [sys.executable, str(FUZZ), "--seconds", seconds], capture_output=True, text=True, timeout=float(seconds) + 120
    )
    assert result.returncode == 0, result.stdout[-2000:] + result.stderr[-4000:]
