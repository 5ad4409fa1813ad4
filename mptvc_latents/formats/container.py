"""The ``.mptvc`` container, versions 2-4: a CRC-checked header, then the rANS segments ordered by rate.

Specified byte for byte in ``docs/bitstream.md``::

    magic | version | body_len | body (geometry, digest, config JSON, scene runs, segment table) | crc
    level 0: (z, y) of chunk 0 .. N-1 | level 1: ... | level 2: ...

Because the segments are ordered by level, the bytes up to the end of level k are a valid
file with k + 1 levels, and a file cut anywhere decodes every level complete before the cut
(``read_mptvc`` says which levels it dropped). The header is a frame of ``formats.framing``
(magic, version, length, body, CRC) whose body ends with the payload table of the segments.
Version 4 (rate control, ``ratecontrol.py``) adds to the header which levels and token frames
each chunk sends and the encoder-measured SSE of every prefix; a level a chunk does not send has
empty segments. Pure Python plus ``crc32``: no torch, so ``mptvc info`` is instant. ``write_mptvc`` takes the
:class:`~mptvc_latents.types.Compressed` of ``MPTVC.compress``; ``read_mptvc`` returns one for
``MPTVC.decompress``.
"""

from __future__ import annotations

import functools
import json
import logging
import math
import struct
import zlib
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, NoReturn

import numpy as np

from mptvc_latents.config import CodecConfig
from mptvc_latents.formats import framing
from mptvc_latents.types import ChunkRate, Compressed, Padding, RatePlan, VideoInfo, scene_ids_from_runs, scene_runs

log = logging.getLogger(__name__)

__all__ = [
    "MAGIC",
    "VERSION",
    "BitstreamError",
    "NotMptvcError",
    "UnsupportedVersionError",
    "TruncatedError",
    "TruncatedHeaderError",
    "NoCompleteLevelError",
    "ChecksumError",
    "HeaderCrcError",
    "SegmentCrcError",
    "MalformedHeaderError",
    "TrailingDataError",
    "WrongCheckpointError",
    "Header",
    "ReadReport",
    "Inspection",
    "write_mptvc",
    "mptvc_header",
    "parse_header",
    "read_mptvc",
    "check_checkpoint",
    "truncate_mptvc",
    "inspect_mptvc",
]

MAGIC = b"\x89MPTVC\r\n"
VERSION = 4  # v4: rate-controlled (either entropy model); v3: the context entropy model; v2: hyperprior alone
KINDS = ("z", "y")
MAX_SIDE = 65535
MAX_FRAMES = 1 << 24
MAX_CONFIG = 1 << 16  # bytes of config JSON after inflating

FRAMING = framing.Framing(
    MAGIC, VERSION, "an mptvc file", "the mptvc header", "re-encode the video with this version", also_reads=(2, 3)
)
_GEOMETRY = struct.Struct("<IIId3I32sI")  # width, height, frames, fps, padding t/h/w, digest, config_len
_COUNT = struct.Struct("<I")
_RUN = struct.Struct("<iI")  # scene id, run length
_TABLE_HEAD = struct.Struct("<BI")  # num_levels, num_chunks
_RATE_HEAD = struct.Struct("<Bd")  # v4: target kind (1 bpp, 2 psnr), target value
_TARGET_KINDS = {"bpp": 1, "psnr": 2}


# --------------------------------------------------------------------------- errors


class BitstreamError(ValueError):
    """An .mptvc file could not be read; the message says what is wrong and what to do."""


class NotMptvcError(BitstreamError, framing.WrongMagicError):
    """The data are empty or do not start with the .mptvc magic."""


class UnsupportedVersionError(BitstreamError, framing.UnsupportedVersionError):
    """The file is an .mptvc file of another version."""


class TruncatedError(BitstreamError):
    """The file ends too early to decode anything."""


class TruncatedHeaderError(TruncatedError, framing.TruncatedError):
    """The file ends inside the header."""


class NoCompleteLevelError(TruncatedError):
    """The header is whole, but the file ends before level 0 does."""


class ChecksumError(BitstreamError):
    """A CRC-32 does not match: the bytes are damaged."""


class HeaderCrcError(ChecksumError, framing.CrcMismatchError):
    """The header's CRC-32 does not match."""


class SegmentCrcError(ChecksumError):
    """A segment's CRC-32 does not match; ``level``, ``chunk`` and ``kind`` ("z" or "y") say which."""

    def __init__(self, message: str, level: int, chunk: int, kind: str) -> None:
        super().__init__(message)
        self.level, self.chunk, self.kind = level, chunk, kind


class MalformedHeaderError(BitstreamError):
    """The header's CRC matches but a field breaks the format (a writer bug or a crafted file)."""


class TrailingDataError(BitstreamError):
    """Bytes follow the last segment."""


class WrongCheckpointError(BitstreamError):
    """The file was written by a codec with other tables or another configuration."""


# The framing checks the header's signature, length and CRC; its errors become the container's.
_FRAME_ERRORS: dict[type[framing.FramingError], type[BitstreamError]] = {
    framing.WrongMagicError: NotMptvcError,
    framing.UnsupportedVersionError: UnsupportedVersionError,
    framing.TruncatedError: TruncatedHeaderError,
    framing.CrcMismatchError: HeaderCrcError,
}


# --------------------------------------------------------------------------- data


@dataclass(frozen=True, eq=False)
class Header:
    """Everything before the segments. ``segment_sizes[k][c] = (z_len, y_len)``."""

    version: int
    info: VideoInfo
    config: dict[str, Any]
    digest: str  # sha256 hex of MPTVC.tables_digest(): the integer tables and the hyperprior weights
    segment_sizes: tuple[tuple[tuple[int, int], ...], ...] = field(repr=False)
    segment_crcs: tuple[tuple[tuple[int, int], ...], ...] = field(repr=False)
    size: int  # bytes of the header, CRC included
    rate: RatePlan | None = field(default=None, repr=False)  # version 4: what each chunk sends

    @property
    def num_levels(self) -> int:
        return len(self.segment_sizes)

    @property
    def num_chunks(self) -> int:
        return len(self.segment_sizes[0])

    def level_sizes(self) -> list[int]:
        return [sum(z + y for z, y in level) for level in self.segment_sizes]

    def level_ends(self) -> list[int]:
        """File offset just after each level: the size of the prefix file with levels 0 .. k."""
        return [self.size + int(s) for s in np.cumsum(self.level_sizes())]


@dataclass(frozen=True)
class ReadReport:
    """How much of the file was usable."""

    levels_total: int
    levels_complete: int
    file_bytes: int
    expected_bytes: int

    @property
    def truncated(self) -> bool:
        return self.file_bytes < self.expected_bytes

    @property
    def dropped_levels(self) -> tuple[int, ...]:
        return tuple(range(self.levels_complete, self.levels_total))

    def summary(self) -> str:
        if not self.truncated:
            return f"The file is complete: {self.levels_total} levels in {self.file_bytes} bytes."
        return (
            f"The file is cut at {self.file_bytes} of {self.expected_bytes} bytes: it holds "
            f"{self.levels_complete} of {self.levels_total} levels, so level(s) "
            f"{', '.join(map(str, self.dropped_levels))} are dropped."
        )


# --------------------------------------------------------------------------- writing


def write_mptvc(compressed: Compressed, config: Mapping[str, Any], digest: str) -> bytes:
    """The bytes of an .mptvc file.

    Args:
        compressed: ``MPTVC.compress``'s result (or ``read_mptvc``'s): ``segments[k][c] = (z, y)`` and ``info``.
        config: ``model.config.to_dict()``.
        digest: ``model.tables_digest()``, 64 hex digits.

    Raises:
        ValueError: when the data do not describe a video this config could have coded.
    """
    if compressed.intra_period != intra_period(config):
        raise ValueError(
            f"The segments were coded with intra period {compressed.intra_period} but the config says "
            f"{intra_period(config)}; write them with the config of the model that coded them."
        )
    payloads = [bytes(s) for level in compressed.segments for pair in level for s in pair]
    chunks = [len(level) for level in compressed.segments]
    if compressed.rate is not None:
        for k, level in enumerate(compressed.segments):
            for c, (z, y) in enumerate(level[: len(compressed.rate.chunks)]):
                if k >= compressed.rate.chunks[c].levels and (z or y):
                    raise ValueError(
                        f"Chunk {c} sends {compressed.rate.chunks[c].levels} levels but level {k} has bytes."
                    )
    table = framing.payload_table(payloads)
    return mptvc_header(compressed.info, config, digest, chunks, table, compressed.rate) + b"".join(payloads)


def mptvc_header(
    info: VideoInfo,
    config: Mapping[str, Any],
    digest: str,
    chunks: Sequence[int],
    table: bytes,
    rate: RatePlan | None = None,
) -> bytes:
    """The header of an .mptvc file whose levels hold ``chunks[k]`` chunks each and whose segments
    the payload ``table`` lists (``framing.payload_table``, in file order): the segments follow it.
    ``write_mptvc`` is this header and the segments; ``formats.spool`` writes the segments from disk.
    With ``rate`` (rate control) the file is version 4.

    Raises:
        ValueError: when the data do not describe a video this config could have coded.
    """
    try:
        raw_digest = bytes.fromhex(digest)
    except (TypeError, ValueError):
        raw_digest = b""
    if len(raw_digest) != 32:
        raise ValueError(f"The digest must be a sha256 hex string of 64 digits, got {digest!r}.")
    config_json = json.dumps(dict(config), sort_keys=True, separators=(",", ":"), allow_nan=False).encode()
    if len(config_json) > MAX_CONFIG:
        raise ValueError(
            f"The codec config is {len(config_json)} bytes of JSON; the container holds at most {MAX_CONFIG}."
        )
    codec = _codec_config(json.loads(config_json), _invalid_config)
    packed_config = zlib.compress(config_json, 9)
    pad = info.padding
    frames, height, width, fps = int(info.frames), int(info.height), int(info.width), float(info.fps)
    problem = _geometry_problem(codec, frames, height, width, fps, pad)
    if problem:
        raise ValueError(f"The video cannot be written: {problem}")
    ids = np.asarray(info.scene_ids)
    if ids.shape != (frames + pad.t,):
        raise ValueError(f"scene_ids must have one entry per padded frame ({frames + pad.t}), got shape {ids.shape}.")
    runs = scene_runs(ids)
    expected = -(-(frames + pad.t) // codec.chunk_frames)
    if len(chunks) != codec.num_levels or any(n != expected for n in chunks):
        raise ValueError(
            f"Expected {codec.num_levels} levels of {expected} chunks each, got {list(chunks)} chunks per level."
        )
    if len(table) != codec.num_levels * expected * 2 * framing.ENTRY.size:
        raise ValueError(f"The payload table of {len(table)} bytes does not list 2 segments per level and chunk.")

    body = bytearray(_GEOMETRY.pack(width, height, frames, fps, pad.t, pad.h, pad.w, raw_digest, len(packed_config)))
    body += packed_config
    body += _COUNT.pack(len(runs)) + b"".join(_RUN.pack(*run) for run in runs)
    if rate is not None:
        body += _pack_rate(rate, codec, info, expected)
    body += _TABLE_HEAD.pack(codec.num_levels, expected)
    body += table
    return FRAMING.frame(bytes(body), version=4 if rate is not None else file_version(config))


def _chunk_token_frames(codec: CodecConfig, padded_t: int) -> list[int]:
    """Token frames of each chunk of a video of ``padded_t`` padded frames."""
    step = codec.chunk_frames
    return [(min(s + step, padded_t) - s) // codec.patch_t for s in range(0, padded_t, step)]


def _mask_bytes(codec: CodecConfig) -> int:
    return -(-(codec.chunk_frames // codec.patch_t) // 8)


def _rate_problem(rate: RatePlan, codec: CodecConfig, frames: Sequence[int]) -> str | None:
    """What is wrong with a rate plan for this codec and these chunks (token frames each), or None."""
    K = codec.num_levels
    if rate.target_kind not in _TARGET_KINDS or not (math.isfinite(rate.target) and rate.target > 0):
        return (
            f"the rate target must be bpp or psnr with a positive finite value, got {rate.target_kind} {rate.target!r}"
        )
    if len(rate.chunks) != len(frames):
        return f"the rate plan has {len(rate.chunks)} chunks but the video has {len(frames)}"
    for c, (chunk, t) in enumerate(zip(rate.chunks, frames, strict=True)):
        if not 1 <= chunk.levels <= K or len(chunk.skipped) != K or len(chunk.sse) != K:
            return f"chunk {c} of the rate plan must send 1 to {K} levels with {K} masks and {K} SSEs"
        for k, mask in enumerate(chunk.skipped):
            if mask < 0 or mask >> t or mask & 1 or (mask and (k == 0 or k >= chunk.levels or codec.context is None)):
                return (
                    f"the skipped token frames {mask:#x} of level {k} in chunk {c} are not allowed (frame 0, level 0, "
                    f"levels not sent, frames past the chunk's {t}, and every frame without a context model are sent)"
                )
        if not all(math.isfinite(v) and v >= 0 for v in chunk.sse) or any(
            v != chunk.sse[chunk.levels - 1] for v in chunk.sse[chunk.levels :]
        ):
            return f"the SSEs of chunk {c} must be finite, non-negative and equal past the levels it sends"
    return None


def _pack_rate(rate: RatePlan, codec: CodecConfig, info: VideoInfo, chunks: int) -> bytes:
    frames = _chunk_token_frames(codec, info.frames + info.padding.t)
    problem = _rate_problem(rate, codec, frames)
    if problem:
        raise ValueError(f"The rate plan cannot be written: {problem}.")
    width = _mask_bytes(codec)
    out = bytearray(_RATE_HEAD.pack(_TARGET_KINDS[rate.target_kind], rate.target))
    for chunk in rate.chunks:
        out += bytes([chunk.levels])
        out += b"".join(mask.to_bytes(width, "little") for mask in chunk.skipped)
        out += struct.pack(f"<{codec.num_levels}d", *chunk.sse)
    return bytes(out)


def _parse_rate(body: _Body, codec: CodecConfig, padded_t: int) -> RatePlan:
    kind, target = body.unpack(_RATE_HEAD, "rate target")
    names = {v: n for n, v in _TARGET_KINDS.items()}
    if kind not in names:
        body.fail(f"the rate target kind {kind} is neither 1 (bpp) nor 2 (psnr)")
    frames = _chunk_token_frames(codec, padded_t)
    K, width = codec.num_levels, _mask_bytes(codec)
    entry = struct.Struct(f"<B{K * width}s{K}d")
    raw = body.take(entry.size * len(frames), "rate plan")
    chunks = []
    for c in range(len(frames)):
        levels, masks, *sse = entry.unpack_from(raw, c * entry.size)
        skipped = tuple(int.from_bytes(masks[k * width : (k + 1) * width], "little") for k in range(K))
        chunks.append(ChunkRate(levels, skipped, tuple(sse)))
    rate = RatePlan(tuple(chunks), names[kind], target)
    problem = _rate_problem(rate, codec, frames)
    if problem:
        body.fail(problem)
    return rate


def file_version(config: Mapping[str, Any]) -> int:
    """3 for a codec config with a context entropy model, else 2 (whose bytes are unchanged)."""
    return 3 if config.get("context") is not None else 2


def intra_period(config: Mapping[str, Any]) -> int | None:
    """The context model's intra period a file with this config was coded with (None: v2, hyperprior)."""
    context = config.get("context")
    return None if context is None else int(context["intra_period"])


# --------------------------------------------------------------------------- reading


def parse_header(data: bytes, name: str = "the data") -> Header:
    """Parse and check the header (steps 1-4 of docs/bitstream.md); segments are not read."""
    try:
        frame = FRAMING.unframe(data, name)
    except framing.FramingError as e:
        raise _FRAME_ERRORS[type(e)](str(e)) from None
    header = _parse_body(frame.body, frame.version, frame.size, name)
    if header.version != 4 and file_version(header.config) != header.version:
        raise MalformedHeaderError(
            f"The header of {name} is malformed: a version {header.version} file "
            f"{'must' if header.version == 3 else 'cannot'} carry a context entropy model in its config."
        )
    return header


class _Body:
    """A cursor over the header body that refuses to read past its end."""

    def __init__(self, data: bytes, name: str) -> None:
        self.data, self.pos, self.name = data, 0, name

    def unpack(self, s: struct.Struct, what: str) -> tuple:
        return s.unpack(self.take(s.size, what))

    def take(self, size: int, what: str) -> bytes:
        if size > len(self.data) - self.pos:
            self.fail(f"the {what} needs {size} bytes but only {len(self.data) - self.pos} remain in the header")
        self.pos += size
        return self.data[self.pos - size : self.pos]

    def fail(self, problem: str) -> NoReturn:
        raise MalformedHeaderError(f"The header of {self.name} is malformed: {problem}.")


def _parse_body(data: bytes, version: int, size: int, name: str) -> Header:
    body = _Body(data, name)
    width, height, frames, fps, pad_t, pad_h, pad_w, digest, config_len = body.unpack(_GEOMETRY, "geometry")
    config_dict = _json_object(body.take(config_len, "codec config"), body)
    codec = _codec_config(config_dict, body.fail)
    pad = Padding(pad_t, pad_h, pad_w)
    problem = _geometry_problem(codec, frames, height, width, fps, pad)
    if problem:
        body.fail(problem.rstrip("."))
    padded_t = frames + pad.t

    (n_runs,) = body.unpack(_COUNT, "scene run count")
    if not 1 <= n_runs <= padded_t:
        body.fail(f"{n_runs} scene runs cannot cover {padded_t} frames")
    runs = np.frombuffer(body.take(n_runs * _RUN.size, "scene runs"), dtype=np.dtype([("id", "<i4"), ("n", "<u4")]))
    try:
        scene_ids = scene_ids_from_runs(zip(runs["id"].tolist(), runs["n"].tolist(), strict=True), padded_t)
    except ValueError:
        body.fail(f"the scene runs must be non-empty and cover exactly {padded_t} frames")
    rate = _parse_rate(body, codec, padded_t) if version == 4 else None

    levels, chunks = body.unpack(_TABLE_HEAD, "segment table size")
    if levels != codec.num_levels or chunks != -(-padded_t // codec.chunk_frames):
        body.fail(
            f"the segment table has {levels} levels of {chunks} chunks, but the config and frame count need "
            f"{codec.num_levels} levels of {-(-padded_t // codec.chunk_frames)}"
        )
    table = framing.payload_entries(body.take(levels * chunks * 2 * framing.ENTRY.size, "segment table"))
    if body.pos != len(data):
        body.fail(f"{len(data) - body.pos} unexpected bytes follow the segment table")
    table = table.reshape(levels, chunks, 2, 2)  # (segments, [length, crc]) -> (level, chunk, kind, [length, crc])
    if rate is not None:
        for c, chunk in enumerate(rate.chunks):
            if table[chunk.levels :, c].any():
                body.fail(f"chunk {c} sends {chunk.levels} level(s), but a level above has a non-empty segment")
    info = VideoInfo(frames, height, width, fps, pad, scene_ids)
    sizes, crcs = _nested(table[..., 0]), _nested(table[..., 1])
    return Header(version, info, config_dict, digest.hex(), sizes, crcs, size, rate)


def _nested(a: np.ndarray) -> tuple[tuple[tuple[int, int], ...], ...]:
    return tuple(tuple((int(z), int(y)) for z, y in level) for level in a)


def _json_object(packed: bytes, body: _Body) -> dict[str, Any]:
    inflater = zlib.decompressobj()
    try:
        raw = inflater.decompress(packed, MAX_CONFIG + 1)  # bounded: a small field cannot inflate to gigabytes
    except zlib.error:
        body.fail("the codec config is not a valid zlib stream")
    if len(raw) > MAX_CONFIG or not inflater.eof or inflater.unused_data or inflater.unconsumed_tail:
        body.fail(f"the codec config must be one zlib stream of at most {MAX_CONFIG} bytes, filling its field")
    try:
        value = json.loads(raw.decode("utf-8"), parse_constant=_no_constant)
    except (UnicodeDecodeError, ValueError, RecursionError):
        body.fail("the codec config is not valid UTF-8 JSON (NaN and Infinity are refused, as the writer does)")
    if not isinstance(value, dict):
        body.fail("the codec config is not a JSON object")
    return value


def _no_constant(token: str) -> NoReturn:
    raise ValueError(f"{token} is not JSON")


@functools.lru_cache(maxsize=16)
def _config_from_json(canonical: str) -> CodecConfig:
    # from_dict resolves type hints on every call (~4 ms); files of one codec share one config.
    return CodecConfig.from_dict(json.loads(canonical))


def _codec_config(config: dict[str, Any], fail: Callable[[str], NoReturn]) -> CodecConfig:
    try:
        return _config_from_json(json.dumps(config, sort_keys=True))
    except (ValueError, TypeError, KeyError, AttributeError, IndexError, OverflowError, RecursionError) as e:
        fail(f"the codec config is not a valid CodecConfig ({e})")


def _invalid_config(problem: str) -> NoReturn:
    raise ValueError(f"The video cannot be written: {problem}.")


def _geometry_problem(codec: CodecConfig, frames: int, height: int, width: int, fps: float, pad: Padding) -> str | None:
    """What is wrong with this geometry for this codec, as a sentence, or None."""
    if not (1 <= width <= MAX_SIDE and 1 <= height <= MAX_SIDE and 1 <= frames <= MAX_FRAMES):
        return (
            f"a video of {width}x{height} with {frames} frames is out of range (sides 1 to {MAX_SIDE}, "
            f"1 to {MAX_FRAMES} frames)."
        )
    if not (math.isfinite(fps) and fps > 0):
        return f"the frame rate must be a positive finite number, got {fps!r}."
    expected = Padding(
        -frames % codec.temporal_multiple, -height % codec.spatial_multiple, -width % codec.spatial_multiple
    )
    if pad != expected:
        return f"the padding {_thw(pad)} is not the codec's padding {_thw(expected)} for this size."
    return None


def _thw(pad: Padding) -> tuple[int, int, int]:
    return pad.t, pad.h, pad.w


def _load(source: bytes | bytearray | memoryview | str | Path) -> tuple[bytes, str]:
    """The bytes and how messages name them ("the data" or "the file 'x.mptvc'")."""
    if isinstance(source, (bytes, bytearray, memoryview)):
        return bytes(source), "the data"
    path = Path(source)
    if not path.is_file():
        raise ValueError(f"The input file {str(path)!r} does not exist (or is not a file).")
    return path.read_bytes(), f"the file {str(path)!r}"


def check_checkpoint(header: Header, digest: str, config: Mapping[str, Any], name: str = "the data") -> None:
    """Raise :class:`WrongCheckpointError` unless the codec that wrote ``header`` is this one."""
    if digest != header.digest:
        raise WrongCheckpointError(
            f"{_cap(name)} was encoded with another checkpoint: its tables digest is {header.digest[:12]}... but "
            f"this checkpoint's is {digest[:12]}...; decode it with the checkpoint that encoded it (--ckpt)."
        )
    ours = {k: v for k, v in json.loads(json.dumps(dict(config))).items() if k != "name"}
    theirs = {k: v for k, v in header.config.items() if k != "name"}
    if ours != theirs:
        fields = sorted(k for k in ours.keys() | theirs.keys() if ours.get(k) != theirs.get(k))
        raise WrongCheckpointError(
            f"{_cap(name)} was encoded with another codec configuration (fields {fields} differ); decode it "
            f"with the checkpoint that encoded it (--ckpt)."
        )


def _complete_levels(data: bytes, header: Header, name: str) -> list[list[tuple[bytes, bytes]]]:
    """Check the trailing bytes and the CRCs of every complete level; return their segments."""
    ends = header.level_ends()
    if len(data) > ends[-1]:
        raise TrailingDataError(
            f"{_cap(name)} has {len(data) - ends[-1]} unexpected bytes after its last segment "
            f"(it should end at byte {ends[-1]})."
        )
    segments = []
    for k in range(sum(end <= len(data) for end in ends)):
        # (chunk, kind) -> the level's entries in file order: chunk 0 z, chunk 0 y, chunk 1 z, ...
        entries = [
            entry
            for pair, crcs in zip(header.segment_sizes[k], header.segment_crcs[k], strict=True)
            for entry in zip(pair, crcs, strict=True)
        ]
        try:
            payloads = framing.split_payloads(data, ends[k - 1] if k else header.size, entries, name)
        except framing.PayloadCrcError as e:
            c, kind = e.index // 2, KINDS[e.index % 2]
            hint = f" (the levels below it survive: `mptvc truncate --k-max {k - 1}`)" if k else ""
            raise SegmentCrcError(
                f"Segment {kind} of level {k}, chunk {c} in {name} fails its CRC check: the file is damaged{hint}.",
                k,
                c,
                kind,
            ) from None
        segments.append(list(zip(payloads[0::2], payloads[1::2], strict=True)))
    return segments


def read_mptvc(
    source: bytes | bytearray | memoryview | str | Path,
    *,
    digest: str | None = None,
    config: Mapping[str, Any] | None = None,
    warn: bool = True,
) -> tuple[Compressed, Header, ReadReport]:
    """Read an .mptvc file (path or bytes): the segments of every complete level, for ``MPTVC.decompress``.

    ``digest`` and ``config`` (``model.tables_digest()``, ``model.config.to_dict()``) check that
    the file was written by this checkpoint. A cut file keeps its complete levels and logs a
    warning (unless ``warn=False``); ``report`` says what was dropped.

    Raises:
        BitstreamError: the subclass names the problem (docs/bitstream.md, "Errors").
    """
    data, name = _load(source)
    header = parse_header(data, name)
    if digest is not None or config is not None:
        check_checkpoint(header, digest if digest is not None else header.digest, config or header.config, name)
    segments = _complete_levels(data, header, name)
    complete = len(segments)
    report = ReadReport(header.num_levels, complete, len(data), header.level_ends()[-1])
    if complete == 0:
        raise NoCompleteLevelError(
            f"{_cap(name)} is cut at byte {len(data)}, before level 0 ends at byte {header.level_ends()[0]}, "
            f"so no level can be decoded."
        )
    if report.truncated and warn:
        log.warning("%s", report.summary())
    return Compressed(segments, header.info, intra_period(header.config), header.rate), header, report


def truncate_mptvc(source: bytes | bytearray | memoryview | str | Path, k_max: int) -> bytes:
    """The prefix of the file with levels ``0 .. k_max``: exactly its bytes up to the end of level k_max."""
    data, name = _load(source)
    header = parse_header(data, name)
    complete = len(_complete_levels(data, header, name))
    if not isinstance(k_max, int) or not 0 <= k_max < complete:
        raise ValueError(
            f"The requested k_max={k_max!r} is out of range: {name} holds {complete} complete level(s), "
            f"so k_max must lie in 0..{complete - 1}."
            if complete
            else f"{_cap(name)} holds no complete level, so there is no prefix to keep."
        )
    return data[: header.level_ends()[k_max]]


# --------------------------------------------------------------------------- inspecting


@dataclass(frozen=True)
class Inspection:
    """What ``mptvc info`` shows: the header, and bytes and bits per pixel of every prefix."""

    name: str
    file_bytes: int
    header: Header
    levels_complete: int

    def to_dict(self) -> dict[str, Any]:
        h, i = self.header, self.header.info
        pixels = i.frames * i.height * i.width
        frames = _chunk_token_frames(_config_from_json(json.dumps(h.config, sort_keys=True)), i.frames + i.padding.t)
        levels: list[dict[str, Any]] = []
        for k, (size, end) in enumerate(zip(h.level_sizes(), h.level_ends(), strict=True)):
            z, y = (sum(pair[j] for pair in h.segment_sizes[k]) for j in (0, 1))
            levels.append(
                {
                    "level": k,
                    "bytes": size,
                    "z_bytes": z,
                    "y_bytes": y,
                    "prefix_bytes": end,
                    "prefix_bpp": 8 * end / pixels,
                    "complete": k < self.levels_complete,
                }
            )
            if h.rate is not None:  # the encoder's measurement: the decoder gets the same frames
                sse = sum(chunk.sse[k] for chunk in h.rate.chunks)
                levels[-1]["predicted_psnr"] = _psnr(sse, 3 * pixels)
        rate = None
        if h.rate is not None:
            held = self.levels_complete
            rate = {
                "target": {h.rate.target_kind: h.rate.target},
                "bpp": 8 * self.file_bytes / pixels,
                "predicted_psnr": _psnr(sum(c.sse[held - 1] for c in h.rate.chunks), 3 * pixels) if held else None,
                "levels_per_chunk": [c.levels for c in h.rate.chunks],
                "chunks_per_levels": [sum(c.levels == n for c in h.rate.chunks) for n in range(1, h.num_levels + 1)],
                "skipped_token_frames": [
                    sum(bin(c.skipped[k]).count("1") for c in h.rate.chunks) for k in range(h.num_levels)
                ],
                "sent_token_frames": [
                    sum(
                        t - bin(c.skipped[k]).count("1")
                        for c, t in zip(h.rate.chunks, frames, strict=True)
                        if k < c.levels
                    )
                    for k in range(h.num_levels)
                ],
            }
        return {
            "file": self.name,
            "file_bytes": self.file_bytes,
            "version": h.version,
            "header_bytes": h.size,
            "width": i.width,
            "height": i.height,
            "frames": i.frames,
            "fps": i.fps,
            "padding": {"t": i.padding.t, "h": i.padding.h, "w": i.padding.w},
            "scenes": int(len(np.unique(i.scene_ids))),
            "config_name": h.config.get("name"),
            "chunks": h.num_chunks,
            "digest": h.digest,
            "entropy": "scale hyperprior" if intra_period(h.config) is None else "context model",
            "intra_period": intra_period(h.config),
            "levels_total": h.num_levels,
            "levels_complete": self.levels_complete,
            "truncated": self.file_bytes < h.level_ends()[-1],
            "levels": levels,
            "rate_control": rate,
        }

    def format(self) -> str:
        d = self.to_dict()
        lines = [
            f"{d['file']}: mptvc v{d['version']}, {d['file_bytes']} bytes (header {d['header_bytes']})",
            f"video   {d['width']}x{d['height']}, {d['frames']} frames at {d['fps']:g} fps, {d['scenes']} scene(s)",
            f"codec   {d['config_name']}, {d['levels_total']} levels, {d['chunks']} chunk(s), "
            f"tables sha256 {d['digest']}",
            f"entropy {d['entropy']}"
            + (f", temporal context restarts every {d['intra_period']} chunks" if d["intra_period"] else ""),
            f"levels  {d['levels_complete']} of {d['levels_total']} complete"
            + (" (the file is cut)" if d["truncated"] else ""),
        ]
        rate = d["rate_control"]
        if rate is not None:
            ((kind, value),) = rate["target"].items()
            psnr = "-" if rate["predicted_psnr"] is None else f"{rate['predicted_psnr']:.2f} dB"  # -: no error
            lines += [
                f"rate    target {value:g} {'bpp' if kind == 'bpp' else 'dB PSNR'}: achieved {rate['bpp']:.4f} bpp, "
                f"predicted PSNR-RGB {psnr} (measured by the encoder)",
                f"        chunks sending 1..{d['levels_total']} levels: {rate['chunks_per_levels']}; token frames "
                f"sent / left out per level: "
                + ", ".join(
                    f"{s}/{k}" for s, k in zip(rate["sent_token_frames"], rate["skipped_token_frames"], strict=True)
                ),
            ]
        lines.append("level  level bytes  prefix bytes  prefix bpp" + ("  predicted PSNR" if rate else ""))
        for row in d["levels"]:
            mark = "" if row["complete"] else "  (missing)"
            value = row.get("predicted_psnr")
            psnr = "" if not rate else "  " + ("-" if value is None else f"{value:.2f}").rjust(14)
            sizes = f"{row['level']:>5}  {row['bytes']:>11}  {row['prefix_bytes']:>12}  {row['prefix_bpp']:>10.4f}"
            lines.append(f"{sizes}{psnr}{mark}")
        return "\n".join(lines)


def inspect_mptvc(source: bytes | bytearray | memoryview | str | Path) -> Inspection:
    """Describe a file: its header, and the size and bpp of each level prefix (CRCs checked)."""
    data, name = _load(source)
    header = parse_header(data, name)
    complete = len(_complete_levels(data, header, name))
    shown = "<bytes>" if isinstance(source, (bytes, bytearray, memoryview)) else str(source)
    return Inspection(shown, len(data), header, complete)


def _psnr(sse: float, samples: int) -> float | None:
    """PSNR in dB of uint8 samples with this sum of squared errors (None when exact: no finite PSNR,
    and JSON has no infinity)."""
    return None if sse <= 0 else 10.0 * math.log10(255.0**2 * samples / sse)


def _cap(text: str) -> str:
    return text[:1].upper() + text[1:]
