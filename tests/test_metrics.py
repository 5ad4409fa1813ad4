"""PSNR on BT.709 luma and on RGB, and bits per pixel, against values worked out by hand."""

import math

import numpy as np
import pytest

from mptvc_latents.eval.metrics import BT709_LUMA, SquaredError, bpp, mse_rgb, mse_y, psnr_rgb, psnr_y

ONE_GREY_LEVEL_DB = 20 * math.log10(255)  # MSE = 1: 48.1308 dB


def _video(frames=3, height=4, width=5, seed=0) -> np.ndarray:
    return np.random.default_rng(seed).integers(10, 240, (frames, height, width, 3), dtype=np.uint8)


def _sentence(fn, *words: str) -> None:
    with pytest.raises(ValueError) as info:
        fn()
    message = str(info.value)
    assert message[0].isupper() and message.endswith("."), message
    assert all(word in message for word in words), message


def test_identical_videos_have_infinite_psnr():
    video = _video()
    assert psnr_y(video, video) == math.inf
    assert psnr_rgb(video, video.copy()) == math.inf


@pytest.mark.parametrize("sign", [1, -1])
def test_a_constant_offset_of_one_grey_level_is_48_13_db(sign):
    video = _video()
    shifted = (video.astype(np.int16) + sign).astype(np.uint8)
    assert ONE_GREY_LEVEL_DB == pytest.approx(48.1308, abs=1e-4)
    assert psnr_y(video, shifted) == pytest.approx(ONE_GREY_LEVEL_DB, abs=1e-9)  # the weights sum to 1
    assert psnr_rgb(shifted, video) == pytest.approx(ONE_GREY_LEVEL_DB, abs=1e-9)


@pytest.mark.parametrize(("channel", "weight"), [(0, 0.2126), (1, 0.7152), (2, 0.0722)])
def test_luma_weights_are_bt709(channel, weight):
    """A difference of 10 in one channel only: luma differs by 10 * weight, RGB MSE is 100 / 3."""
    a = np.zeros((2, 3, 4, 3), np.uint8)
    b = a.copy()
    b[..., channel] = 10
    assert BT709_LUMA[channel] == weight
    assert mse_y(a, b) == pytest.approx((10 * weight) ** 2, rel=1e-12)
    assert psnr_y(a, b) == pytest.approx(10 * math.log10(255**2 / (10 * weight) ** 2), abs=1e-9)
    assert mse_rgb(a, b) == pytest.approx(100 / 3, rel=1e-12)
    assert psnr_rgb(a, b) == pytest.approx(10 * math.log10(255**2 * 3 / 100), abs=1e-9)


def test_pure_red_difference_gives_the_red_weight():
    a = np.zeros((1, 2, 2, 3), np.uint8)
    red = a.copy()
    red[..., 0] = 255
    assert psnr_y(a, red) == pytest.approx(-20 * math.log10(0.2126), abs=1e-9)  # 13.45 dB


def test_the_error_is_pooled_over_frames_before_the_log():
    """One bad frame of two halves the MSE (+3.01 dB), where a mean of per-frame PSNRs would be inf."""
    a = np.zeros((2, 4, 4, 3), np.uint8)
    b = a.copy()
    b[0] = 4
    assert mse_y(a, b) == pytest.approx(8.0)
    assert psnr_y(a, b) == pytest.approx(psnr_y(a[:1], b[:1]) + 10 * math.log10(2), abs=1e-9)


def test_bits_per_pixel():
    assert bpp(1000, 10, 100, 80) == pytest.approx(0.1)
    assert bpp(0, 1, 1, 1) == 0.0
    _sentence(lambda: bpp(100, 0, 10, 10), "frames")
    _sentence(lambda: bpp(100, 2, 10.5, 10), "height")
    _sentence(lambda: bpp(-1, 2, 10, 10), "byte count")


def test_bad_inputs_are_refused_with_a_sentence():
    video = _video()
    _sentence(lambda: psnr_y(video, video.astype(np.float32)), "uint8", "(T, H, W, 3)")
    _sentence(lambda: psnr_rgb(video[..., 0], video[..., 0]), "(T, H, W, 3)")
    _sentence(lambda: psnr_y(video, video[:, :, :4]), "same shape")
    _sentence(lambda: psnr_rgb(video[:0], video[:0]), "empty")


def test_squared_error_added_chunk_by_chunk_gives_the_whole_videos_psnr_exactly():
    rng = np.random.default_rng(7)
    a = rng.integers(0, 256, (37, 9, 13, 3), dtype=np.uint8)
    b = np.clip(a.astype(int) + rng.integers(-9, 10, a.shape), 0, 255).astype(np.uint8)
    error = SquaredError()
    for start in range(0, 37, 8):
        error.add(a[start : start + 8], b[start : start + 8])
    assert error.psnr_y() == psnr_y(a, b) and error.psnr_rgb() == psnr_rgb(a, b)
    with pytest.raises(ValueError, match="No frames were added"):
        SquaredError().psnr_y()
    with pytest.raises(ValueError, match="same shape"):
        error.add(a[:2], b[:3])
