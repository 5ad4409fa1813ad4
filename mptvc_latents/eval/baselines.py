"""x264 and x265 baselines through PyAV, and their quality at a given bitrate.

Settings follow common practice for PSNR comparisons: ``-preset medium -tune psnr``, constant
rate factor (CRF), 8-bit yuv420p, the clip's frame rate, one encoder thread by default (the
output of both encoders depends on their thread count, and one thread makes numbers
reproducible across machines; x265 still varies by a byte or two on some tiny clips whose
frames fit in one 64x64 CTU)::

    uint8 RGB (T, H, W, 3) -> pad to even H, W (edge rows/columns repeated)
        -> swscale rgb24 -> yuv420p (BT.601 matrix, the same one used back) -> libx264 / libx265
        -> raw Annex B packets, no container -> h264 / hevc decoder -> rgb24 -> crop to (H, W)

swscale converts with its area filter both ways: of its filters it gives the best round trip
without any coding (carphone: 45.9 dB PSNR-Y, 45.9 dB PSNR-RGB; the default bilinear 45.7 and
44.0), so the ceiling that yuv420p puts on the baselines is as high as it can be.

**What the byte count is.** The encoder runs without a muxer, so every packet is raw Annex B
elementary stream, parameter sets (VPS/SPS/PPS) included in band. ``num_bytes`` is the sum of
the packet sizes, that is the bitstream without any container overhead, *minus* the SEI NAL
units: x264 writes its whole option string (about 600 bytes) as an SEI message into the first
frame, which carries no picture information and would dominate a 1 kB stream at low rates
(x265 is told ``info=0`` for the same reason). ``include_sei=True`` counts them too.

**Matched bitrate.** Bits per pixel fall (almost) monotonically with CRF, so
:meth:`RateSweep.at_bpp` finds two adjacent integer CRFs whose rates bracket the target and
interpolates PSNR linearly in ``log(bpp)`` between them, like the points of a BD-rate curve.
Every encode is cached, so matching several targets on one clip costs a few encodes each.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from fractions import Fraction
from typing import TYPE_CHECKING, Literal

import numpy as np

from mptvc_latents.eval.metrics import SquaredError
from mptvc_latents.eval.metrics import bpp as bits_per_pixel

if TYPE_CHECKING:
    import av

__all__ = [
    "CODECS",
    "CRF_RANGE",
    "RatePoint",
    "BaselinePoint",
    "OutOfRangeError",
    "RateSweep",
    "encode_decode",
    "measure",
    "at_matched_bpp",
    "rd_curve",
]

# encoder name -> (decoder name, SEI NAL unit types, NAL type of a header byte)
CODECS: dict[str, tuple[str, frozenset[int], Callable[[int], int]]] = {
    "libx264": ("h264", frozenset({6}), lambda b: b & 0x1F),
    "libx265": ("hevc", frozenset({39, 40}), lambda b: (b >> 1) & 0x3F),
}
CRF_RANGE = (0, 51)
_START_CRF, _STEP = 32, 8
_SWS = "AREA"


@dataclass(frozen=True)
class RatePoint:
    """One real encode: its CRF, its size (see the module docstring) and quality."""

    crf: int
    num_bytes: int
    bpp: float
    psnr_y: float
    psnr_rgb: float


@dataclass(frozen=True)
class BaselinePoint:
    """A baseline's quality at ``bpp``, interpolated between the encodes at ``crf_lo`` (rate at or
    above ``bpp``) and ``crf_hi`` (at or below); ``crf_lo == crf_hi`` when one encode hit it exactly."""

    bpp: float
    psnr_y: float
    psnr_rgb: float
    crf_lo: int
    crf_hi: int


class OutOfRangeError(ValueError):
    """The target rate lies outside what the encoder reaches between CRF 0 and 51."""


def _check_frames(frames: np.ndarray) -> np.ndarray:
    frames = np.asarray(frames)
    if frames.dtype != np.uint8 or frames.ndim != 4 or frames.shape[-1] != 3:
        raise ValueError(f"Frames must be uint8 of shape (T, H, W, 3), got {frames.dtype} {frames.shape}.")
    if min(frames.shape[:3]) == 0:
        raise ValueError(f"The video is empty: shape {frames.shape}.")
    return frames


def _check_codec(codec: str) -> None:
    if codec not in CODECS:
        raise ValueError(f"There is no baseline codec {codec!r}; choose one of {sorted(CODECS)}.")


def _video_codec(name: str, mode: Literal["r", "w"]) -> av.VideoCodecContext:
    import av

    context = av.CodecContext.create(name, mode)
    assert isinstance(context, av.VideoCodecContext), name  # CODECS names video codecs only
    return context


def _sei_bytes(packet: bytes, nal_type: Callable[[int], int], sei_types: frozenset[int]) -> int:
    """Bytes of the SEI NAL units of an Annex B packet, each with its start code."""
    starts = []  # (first byte of the start code, first byte of the NAL header)
    i = packet.find(b"\x00\x00\x01")
    while i >= 0:
        begin = i - 1 if i > 0 and packet[i - 1] == 0 else i  # a 4-byte start code
        starts.append((begin, i + 3))
        i = packet.find(b"\x00\x00\x01", i + 3)
    total = 0
    for n, (begin, header) in enumerate(starts):
        end = starts[n + 1][0] if n + 1 < len(starts) else len(packet)
        if header < len(packet) and nal_type(packet[header]) in sei_types:
            total += end - begin
    return total


FrameSource = Callable[[], Iterable[np.ndarray]]
"""Gives the clip's frames afresh each call, as uint8 batches ``(n, H, W, 3)`` (e.g. ``VideoReader.chunks``)."""


def _check_args(codec: str, crf: int, fps: float) -> None:
    _check_codec(codec)
    if not isinstance(crf, (int, np.integer)) or not CRF_RANGE[0] <= crf <= CRF_RANGE[1]:
        raise ValueError(f"CRF must be an integer in {CRF_RANGE[0]}..{CRF_RANGE[1]}, got {crf!r}.")
    if not fps > 0:
        raise ValueError(f"The frame rate must be positive, got {fps!r}.")


def _encode(
    batches: Iterable[np.ndarray], fps: float, codec: str, crf: int, threads: int
) -> tuple[list[bytes], int, int, int]:
    """Encode uint8 RGB batches ``(n, H, W, 3)`` at ``crf``: the Annex B packets, and ``(T, H, W)``."""
    import av

    encoder: av.VideoCodecContext | None = None
    packets: list[bytes] = []
    t, size = 0, (0, 0)
    rate = Fraction(fps).limit_denominator(1001)
    for batch in batches:
        batch = _check_frames(batch)
        if encoder is None:
            size = (batch.shape[1], batch.shape[2])
            encoder = _video_codec(codec, "w")
            encoder.width, encoder.height = size[1] + size[1] % 2, size[0] + size[0] % 2  # yuv420p: even sides
            encoder.pix_fmt = "yuv420p"
            encoder.time_base, encoder.framerate = 1 / rate, rate
            encoder.thread_count = threads
            options = {"preset": "medium", "tune": "psnr", "crf": str(int(crf))}
            if codec == "libx265":
                pools = f":pools={threads}:frame-threads={threads}" if threads else ""
                options["x265-params"] = "log-level=error:info=0" + pools
            encoder.options = options
        if batch.shape[1:3] != size:
            raise ValueError(f"Frame {t} is {batch.shape[2]}x{batch.shape[1]}, not {size[1]}x{size[0]} as before.")
        h, w = size
        if h % 2 or w % 2:  # yuv420p subsamples chroma by 2 both ways: repeat the last row/column
            batch = np.pad(batch, ((0, 0), (0, h % 2), (0, w % 2), (0, 0)), mode="edge")
        for rgb in batch:
            frame = av.VideoFrame.from_ndarray(np.ascontiguousarray(rgb), format="rgb24")
            frame = frame.reformat(format="yuv420p", interpolation=_SWS)
            frame.pts = t
            packets.extend(bytes(p) for p in encoder.encode(frame))
            t += 1
    if encoder is None:
        raise ValueError("The video is empty: it has no frames.")
    packets.extend(bytes(p) for p in encoder.encode(None))
    return packets, t, size[0], size[1]


def _decode(packets: list[bytes], codec: str, height: int, width: int) -> Iterator[np.ndarray]:
    """The frames ``(H, W, 3)`` of ``codec``'s packets, as rgb24 cropped to ``(height, width)``."""
    import av

    decoder = _video_codec(CODECS[codec][0], "r")
    for data in [*packets, None]:
        for frame in decoder.decode(None if data is None else av.Packet(data)):
            yield frame.reformat(format="rgb24", interpolation=_SWS).to_ndarray()[:height, :width]


def _stream_bytes(packets: list[bytes], codec: str, include_sei: bool) -> int:
    _, sei_types, nal_type = CODECS[codec]
    num_bytes = sum(len(p) for p in packets)
    if not include_sei:
        num_bytes -= sum(_sei_bytes(p, nal_type, sei_types) for p in packets)
    return num_bytes


def encode_decode(
    frames: np.ndarray, fps: float, codec: str, crf: int, *, threads: int = 1, include_sei: bool = False
) -> tuple[np.ndarray, int]:
    """Encode uint8 RGB ``(T, H, W, 3)`` at ``crf`` and decode it back.

    Returns the decoded uint8 ``(T, H, W, 3)`` frames and the size in bytes of the elementary
    stream (packets without container, SEI excluded unless ``include_sei``; module docstring).
    ``threads=0`` lets the encoder choose (faster, but the bytes then depend on the machine).
    """
    frames = _check_frames(frames)
    _check_args(codec, crf, fps)
    packets, t, h, w = _encode([frames], fps, codec, crf, threads)
    decoded = list(_decode(packets, codec, h, w))
    if len(decoded) != t:
        raise RuntimeError(f"The {codec} round trip returned {len(decoded)} frames for {t} encoded.")
    return np.stack(decoded), _stream_bytes(packets, codec, include_sei)


def measure(
    source: FrameSource, fps: float, codec: str, crf: int, *, threads: int = 1, include_sei: bool = False
) -> RatePoint:
    """:func:`encode_decode` of the clip ``source()`` gives, measured a chunk at a time: the frames are
    encoded as they come (only the packets are kept), then decoded and compared with a second pass
    of ``source()``, so a long clip never sits in memory. The numbers equal those of the arrays."""
    _check_args(codec, crf, fps)
    packets, t, h, w = _encode(source(), fps, codec, crf, threads)
    error, decoded = SquaredError(), _decode(packets, codec, h, w)
    count = 0
    for batch in source():
        for reference in batch:
            frame = next(decoded, None)
            if frame is None:
                raise RuntimeError(f"The {codec} round trip returned {count} frames for {t} encoded.")
            error.add(reference[None], frame[None])
            count += 1
    if count != t or next(decoded, None) is not None:
        raise RuntimeError(f"The {codec} round trip does not return the {t} frames encoded.")
    num_bytes = _stream_bytes(packets, codec, include_sei)
    return RatePoint(int(crf), num_bytes, bits_per_pixel(num_bytes, t, h, w), error.psnr_y(), error.psnr_rgb())


class RateSweep:
    """Encodes of one clip with one codec at integer CRFs, cached; finds the rate a target needs.

    ``frames``: the clip as uint8 ``(T, H, W, 3)``, or a :data:`FrameSource` that reads it afresh
    a chunk at a time (long clips: :func:`measure`).
    """

    def __init__(self, frames: np.ndarray | FrameSource, fps: float, codec: str, *, threads: int = 1) -> None:
        if callable(frames):
            self.source: FrameSource = frames
        else:
            clip = _check_frames(frames)
            self.source = lambda: [clip]
        _check_codec(codec)
        self.fps, self.codec, self.threads = float(fps), codec, threads
        self._points: dict[int, RatePoint] = {}

    def point(self, crf: int) -> RatePoint:
        """The encode at ``crf`` (computed once)."""
        if crf not in self._points:
            self._points[crf] = measure(self.source, self.fps, self.codec, crf, threads=self.threads)
        return self._points[crf]

    @property
    def points(self) -> list[RatePoint]:
        """Every encode made so far, by increasing CRF."""
        return [self._points[c] for c in sorted(self._points)]

    def curve(self, crfs) -> list[RatePoint]:
        """The encodes at ``crfs``, by increasing CRF."""
        return [self.point(int(c)) for c in sorted(set(crfs))]

    def _bracket(self, target: float) -> tuple[int, int]:
        """Integer CRFs ``lo <= hi`` with ``bpp(lo) >= target >= bpp(hi)``, by steps of 8 from 32."""
        lowest, highest = CRF_RANGE
        if self.point(_START_CRF).bpp >= target:
            lo = _START_CRF
            while self.point(lo).bpp > target:
                if lo == highest:
                    raise OutOfRangeError(
                        f"The encoder {self.codec} spends {self.point(lo).bpp:.4g} bpp even at CRF {highest}, "
                        f"above the target of {target:.4g} bpp."
                    )
                hi = min(lo + _STEP, highest)
                if self.point(hi).bpp <= target:
                    return lo, hi
                lo = hi
            return lo, lo  # hit exactly
        hi = _START_CRF
        while True:
            if hi == lowest:
                raise OutOfRangeError(
                    f"The encoder {self.codec} spends only {self.point(hi).bpp:.4g} bpp at CRF {lowest}, "
                    f"below the target of {target:.4g} bpp."
                )
            lo = max(hi - _STEP, lowest)
            if self.point(lo).bpp >= target:
                return lo, hi
            hi = lo

    def at_bpp(self, target: float) -> BaselinePoint:
        """PSNR at ``target`` bpp, linear in log(bpp) between the bracketing integer CRFs.

        Raises:
            OutOfRangeError: when no CRF in 0..51 reaches the target from both sides.
        """
        if not (isinstance(target, (int, float)) and math.isfinite(target) and target > 0):
            raise ValueError(f"The target rate must be a positive number of bits per pixel, got {target!r}.")
        lo, hi = self._bracket(float(target))
        while hi - lo > 1:  # invariant: bpp(lo) >= target >= bpp(hi)
            mid = (lo + hi) // 2
            if self.point(mid).bpp >= target:
                lo = mid
            else:
                hi = mid
        a, b = self.point(lo), self.point(hi)
        if a.bpp == target or a.bpp == b.bpp:
            return BaselinePoint(float(target), a.psnr_y, a.psnr_rgb, lo, lo)
        if b.bpp == target:
            return BaselinePoint(float(target), b.psnr_y, b.psnr_rgb, hi, hi)
        s = (math.log(a.bpp) - math.log(target)) / (math.log(a.bpp) - math.log(b.bpp))  # 0 at lo, 1 at hi
        return BaselinePoint(
            float(target), a.psnr_y + s * (b.psnr_y - a.psnr_y), a.psnr_rgb + s * (b.psnr_rgb - a.psnr_rgb), lo, hi
        )


def at_matched_bpp(frames: np.ndarray, fps: float, codec: str, target_bpp: float, *, threads: int = 1) -> BaselinePoint:
    """``codec``'s PSNR at ``target_bpp`` on this clip (see :meth:`RateSweep.at_bpp`)."""
    return RateSweep(frames, fps, codec, threads=threads).at_bpp(target_bpp)


def rd_curve(frames: np.ndarray, fps: float, codec: str, crfs, *, threads: int = 1) -> list[RatePoint]:
    """Rate and PSNR of ``codec`` on this clip at each CRF, by increasing CRF."""
    return RateSweep(frames, fps, codec, threads=threads).curve(crfs)
