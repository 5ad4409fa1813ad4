"""The rate-distortion objective: RGB or weighted-YCbCr distortion (``train.loss``)."""

import dataclasses
import json
from pathlib import Path

import numpy as np
import pytest
import torch

from mptvc_latents.codec import CodecOutput
from mptvc_latents.eval.metrics import BT709_LUMA, BT709_YCBCR
from mptvc_latents.train import TrainConfig, Trainer
from mptvc_latents.train.loss import rd_loss, ycbcr_projection
from tests._tiny import tiny_train_config


def _output(error: torch.Tensor) -> CodecOutput:
    """One level whose reconstruction misses its target by ``error`` (B, 3, T, H, W) in [-1, 1] units."""
    target = torch.zeros_like(error)
    zero_bits = torch.zeros(1)
    return CodecOutput([error], [target], [zero_bits], [zero_bits])


def test_ycbcr_rows_are_bt709_and_invert_to_rgb():
    assert np.allclose(BT709_YCBCR[0], BT709_LUMA)
    # Cb is (B - Y) / 1.8556 and Cr is (R - Y) / 1.5748: pure blue and pure red reach +1/2, grey is 0.
    assert BT709_YCBCR[1] @ [0, 0, 1] == pytest.approx(0.5)
    assert BT709_YCBCR[2] @ [1, 0, 0] == pytest.approx(0.5)
    assert np.allclose(BT709_YCBCR[1:] @ [1, 1, 1], 0)
    assert abs(np.linalg.det(BT709_YCBCR)) > 0.1  # invertible: no colour is free


def test_weighted_distortion_is_the_weighted_mean_of_the_y_cb_cr_squared_errors():
    torch.manual_seed(0)
    e = torch.randn(2, 3, 2, 4, 4) * 0.1  # (B, 3, T, H, W)
    per_channel = [np.mean(np.einsum("c,bcthw->bthw", BT709_YCBCR[d], e.double().numpy()) ** 2) for d in range(3)]
    scale = 127.5**2
    for weights in [(6.0, 1.0, 1.0), (1.0, 0.0, 0.0), (1.0, 2.0, 3.0)]:
        got = rd_loss(_output(e), (0.0,), (1.0,), pixels=1, color=ycbcr_projection(weights)).mse[0]
        want = sum(w * m for w, m in zip(weights, per_channel, strict=True)) / sum(weights) * scale
        assert got == pytest.approx(want, rel=1e-5)
    # Without weights the distortion is the mean over R, G and B, as before.
    rgb = rd_loss(_output(e), (0.0,), (1.0,), pixels=1).mse[0]
    assert rgb == pytest.approx(float(torch.mean(e.double() ** 2)) * scale, rel=1e-6)


def test_luma_only_weights_ignore_a_chroma_error_and_see_a_grey_one():
    grey = torch.full((1, 3, 1, 2, 2), 0.1)  # the same error in R, G and B: all luma
    chroma = torch.zeros(1, 3, 1, 2, 2)
    chroma[:, 0], chroma[:, 2] = 0.1, -0.1 * BT709_LUMA[0] / BT709_LUMA[2]  # R up, B down: Y unchanged
    luma_only = ycbcr_projection((1.0, 0.0, 0.0))
    assert rd_loss(_output(chroma), (0.0,), (1.0,), 1, color=luma_only).mse[0] == pytest.approx(0.0, abs=1e-9)
    assert rd_loss(_output(grey), (0.0,), (1.0,), 1, color=luma_only).mse[0] == pytest.approx(12.75**2, rel=1e-5)


@pytest.mark.parametrize("weights", [(0.0, 0.0, 0.0), (1.0, -1.0, 1.0), (1.0, 1.0)])
def test_bad_weights_are_refused_by_the_config(weights):
    with pytest.raises(ValueError, match="ycbcr_weights"):
        TrainConfig(sources=("a.mp4",), run_dir="run", ycbcr_weights=weights)


def test_a_run_trains_with_ycbcr_weights_and_keeps_them_in_its_config(tmp_path: Path):
    torch.set_num_threads(1)
    base = tiny_train_config(tmp_path, phase_steps=(0, 0, 0, 2))
    records = {}
    for name, weights in [("rgb", None), ("ycc", (6.0, 1.0, 1.0))]:
        config = dataclasses.replace(base, run_dir=str(tmp_path / name), ycbcr_weights=weights)
        Trainer(config).fit(progress=False)
        run = Path(config.run_dir)
        saved = json.loads((run / "train_config.json").read_text())
        assert saved.get("ycbcr_weights") == (list(weights) if weights else None)
        assert TrainConfig.from_dict(saved) == config
        records[name] = [json.loads(line) for line in (run / "log.jsonl").read_text().splitlines()]
    # Same weights, data and seed at step 1: the same rate; a different distortion (luma-weighted).
    first_rgb, first_ycc = records["rgb"][0], records["ycc"][0]
    assert first_rgb["bpp"] == first_ycc["bpp"]
    assert first_rgb["psnr"] != first_ycc["psnr"]
    assert all(np.isfinite(r["loss"]) for r in records["ycc"])
