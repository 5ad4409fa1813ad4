"""x264 and x265 through PyAV on a 64x128x8 crop of the sample clip: rate falls and quality
falls with CRF, the matched-bpp point interpolates between its brackets, odd sizes round-trip."""

import math
from pathlib import Path

import numpy as np
import pytest

import mptvc_latents
from mptvc_latents.eval.baselines import (
    OutOfRangeError,
    RateSweep,
    at_matched_bpp,
    encode_decode,
    measure,
    rd_curve,
)
from mptvc_latents.eval.metrics import psnr_rgb, psnr_y
from mptvc_latents.video import read_video

SAMPLE = Path(mptvc_latents.__file__).parent / "assets" / "bikes_sample.mp4"
CODECS = ("libx264", "libx265")


@pytest.fixture(scope="module")
def clip() -> np.ndarray:
    """(8, 64, 128, 3). Not 64x64: on some frames of a single 64x64 CTU x265 (one thread, no pools)
    still varies by a byte or two between runs; on this crop it repeats exactly."""
    return np.ascontiguousarray(read_video(SAMPLE, max_frames=8).frames[:, 40:104, 100:228])


@pytest.fixture(scope="module", params=CODECS)
def sweep(request, clip) -> RateSweep:
    return RateSweep(clip, 25.0, request.param)


def test_higher_crf_gives_fewer_bytes_and_lower_psnr(sweep):
    good, bad = sweep.point(22), sweep.point(38)
    assert good.num_bytes > bad.num_bytes > 0
    assert good.psnr_y > bad.psnr_y and good.psnr_rgb > bad.psnr_rgb
    assert good.bpp == pytest.approx(8 * good.num_bytes / (8 * 64 * 128))


def test_decoded_frames_match_the_source_geometry_and_the_reported_psnr(clip, sweep):
    decoded, num_bytes = encode_decode(clip, 25.0, sweep.codec, 22)
    assert decoded.shape == clip.shape and decoded.dtype == np.uint8
    assert num_bytes == sweep.point(22).num_bytes  # one thread: the same bytes every time
    assert psnr_y(clip, decoded) == sweep.point(22).psnr_y > 30


def test_matched_bpp_point_lies_between_its_brackets(sweep):
    target = math.sqrt(sweep.point(26).bpp * sweep.point(34).bpp)
    point = sweep.at_bpp(target)
    lo, hi = sweep.point(point.crf_lo), sweep.point(point.crf_hi)
    assert point.crf_hi == point.crf_lo + 1 and point.bpp == target
    assert lo.bpp >= target >= hi.bpp
    assert min(lo.psnr_y, hi.psnr_y) <= point.psnr_y <= max(lo.psnr_y, hi.psnr_y)
    assert min(lo.psnr_rgb, hi.psnr_rgb) <= point.psnr_rgb <= max(lo.psnr_rgb, hi.psnr_rgb)
    s = math.log(lo.bpp / target) / math.log(lo.bpp / hi.bpp)  # linear in log(bpp)
    assert point.psnr_y == pytest.approx(lo.psnr_y + s * (hi.psnr_y - lo.psnr_y), abs=1e-12)


def test_a_target_hit_exactly_returns_that_encode(sweep):
    exact = sweep.point(30)
    point = sweep.at_bpp(exact.bpp)
    assert point.psnr_y == exact.psnr_y
    assert sweep.point(point.crf_lo).bpp == exact.bpp and point.crf_lo == point.crf_hi


def test_module_functions_agree_with_the_sweep(clip):
    curve = rd_curve(clip, 25.0, "libx264", [34, 26])
    assert [p.crf for p in curve] == [26, 34]
    target = math.sqrt(curve[0].bpp * curve[1].bpp)
    assert at_matched_bpp(clip, 25.0, "libx264", target) == RateSweep(clip, 25.0, "libx264").at_bpp(target)


def test_rates_out_of_reach_raise(sweep):
    with pytest.raises(OutOfRangeError, match="CRF 51"):
        sweep.at_bpp(1e-4)
    with pytest.raises(ValueError, match="positive"):
        sweep.at_bpp(0.0)


def test_odd_sizes_are_padded_and_cropped_back(clip):
    odd = np.ascontiguousarray(clip[:3, :37, :23])
    decoded, _ = encode_decode(odd, 25.0, "libx264", 18)
    assert decoded.shape == odd.shape
    assert psnr_rgb(odd, decoded) > 30


def test_the_x264_option_string_sei_is_left_out_of_the_count(clip):
    _, without = encode_decode(clip, 25.0, "libx264", 30)
    _, with_sei = encode_decode(clip, 25.0, "libx264", 30, include_sei=True)
    assert with_sei - without > 300  # x264 writes its options as an SEI message in the first frame
    _, x265 = encode_decode(clip, 25.0, "libx265", 30)
    assert encode_decode(clip, 25.0, "libx265", 30, include_sei=True)[1] == x265  # info=0: no SEI


def test_bad_arguments_are_refused(clip):
    with pytest.raises(ValueError, match="libx264"):
        encode_decode(clip, 25.0, "vp9", 30)
    with pytest.raises(ValueError, match="0..51"):
        encode_decode(clip, 25.0, "libx264", 52)
    with pytest.raises(ValueError, match="uint8"):
        encode_decode(clip.astype(np.float32), 25.0, "libx264", 30)


def test_a_clip_read_a_chunk_at_a_time_measures_what_the_whole_array_does(clip, sweep):
    """``measure`` keeps only packets and compares chunk by chunk: the same bytes and PSNR as the arrays."""
    decoded, num_bytes = encode_decode(clip, 25.0, sweep.codec, 30)
    point = measure(lambda: (clip[i : i + 3] for i in range(0, 8, 3)), 25.0, sweep.codec, 30)
    assert point.num_bytes == num_bytes
    assert point.psnr_y == psnr_y(clip, decoded) and point.psnr_rgb == psnr_rgb(clip, decoded)
    assert RateSweep(lambda: [clip[:4], clip[4:]], 25.0, sweep.codec).point(30) == point
