"""Bjøntegaard deltas (``eval/bjontegaard.py``) and ``mptvc eval --anchor``."""

from __future__ import annotations

import json
import math

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from mptvc_latents.eval.bjontegaard import bd_psnr, bd_rate, compare, pchip
from tests._tiny import SAMPLE

ANCHOR = [(0.03, 24.0), (0.11, 28.0), (0.23, 31.0)]


def test_identical_curves_have_no_gap():
    assert bd_psnr(ANCHOR, ANCHOR) == pytest.approx(0.0, abs=1e-12)
    assert bd_rate(ANCHOR, ANCHOR) == pytest.approx(0.0, abs=1e-9)


def test_a_curve_shifted_up_gains_the_shift_at_any_rate():
    test = [(r, p + 1.25) for r, p in ANCHOR]
    assert bd_psnr(ANCHOR, test) == pytest.approx(1.25, abs=1e-9)
    assert bd_psnr(test, ANCHOR) == pytest.approx(-1.25, abs=1e-9)
    assert bd_rate(ANCHOR, test) < 0  # the same quality for fewer bits


def test_a_curve_at_four_fifths_of_the_rate_saves_twenty_percent():
    test = [(0.8 * r, p) for r, p in ANCHOR]
    assert bd_rate(ANCHOR, test) == pytest.approx(-20.0, abs=1e-9)
    assert bd_psnr(ANCHOR, test) > 0


def test_log_linear_curves_match_the_closed_form():
    # PSNR = 10 ln(rate) + c: halving the rate at equal PSNR is worth 10 ln 2 dB at equal rate.
    anchor = [(r, 10 * math.log(r) + 50) for r in (0.02, 0.05, 0.1, 0.3)]
    test = [(r / 2, p) for r, p in anchor]
    assert bd_psnr(anchor, test) == pytest.approx(10 * math.log(2), abs=1e-9)
    assert bd_rate(anchor, test) == pytest.approx(-50.0, abs=1e-9)


def test_pchip_is_exact_at_the_points_and_on_lines():
    x = np.array([0.0, 1.0, 3.0, 4.0])
    y = np.array([1.0, 2.0, 2.5, 5.0])
    assert np.allclose(pchip(x, y, x), y)
    at = np.linspace(0, 4, 33)
    assert np.allclose(pchip(x, 2 * x + 1, at), 2 * at + 1)


@settings(max_examples=60, deadline=None)
@given(
    st.lists(st.floats(0.05, 3.0), min_size=2, max_size=6),
    st.lists(st.floats(0.01, 5.0), min_size=2, max_size=6),
)
def test_pchip_keeps_monotone_data_monotone(dx, dy):
    n = min(len(dx), len(dy))
    x = np.cumsum(dx[:n])
    y = np.cumsum(dy[:n])
    values = pchip(x, y, np.linspace(x[0], x[-1], 400))
    assert np.all(np.diff(values) >= -1e-9)
    assert values.min() >= y[0] - 1e-9 and values.max() <= y[-1] + 1e-9


@pytest.mark.parametrize(
    ("curve", "message"),
    [
        ([(0.1, 30.0)], "at least two"),
        ([(0.1, 30.0), (0.2, 29.0)], "must rise"),
        ([(0.0, 20.0), (0.2, 29.0)], "not positive"),
        ([(0.1, float("nan")), (0.2, 29.0)], "not finite"),
    ],
)
def test_bad_curves_are_refused_with_the_reason(curve, message):
    with pytest.raises(ValueError, match=message):
        bd_psnr(ANCHOR, curve)


def test_curves_without_overlap_are_refused():
    with pytest.raises(ValueError, match="do not overlap"):
        bd_psnr(ANCHOR, [(1.0, 35.0), (2.0, 38.0)])


def _result(name: str, frames: int, points) -> dict:
    prefixes = [{"bpp": r, "psnr_y": p} for r, p in points]
    return {"model": {"name": name}, "clips": [{"name": "val/a.mp4", "frames": frames, "prefixes": prefixes}]}


def test_compare_matches_clips_by_name_and_frames():
    anchor = _result("old", 64, ANCHOR)
    result = _result("new", 64, [(r, p + 0.5) for r, p in ANCHOR])
    out = compare(result, anchor)
    assert out["mean_bd_psnr_db"] == pytest.approx(0.5, abs=1e-9)
    assert out["anchor_model"]["name"] == "old"
    with pytest.raises(ValueError, match="same frames"):
        compare(result, _result("old", 32, ANCHOR))
    other = _result("old", 64, ANCHOR)
    other["clips"][0]["name"] = "val/b.mp4"
    with pytest.raises(ValueError, match="no clip named"):
        compare(result, other)


def test_eval_refuses_an_unreadable_anchor_before_evaluating(tmp_path, capsys):
    from mptvc_latents.cli import main

    bad = tmp_path / "eval.json"
    bad.write_text("not json")
    out = tmp_path / "report"
    assert main(["eval", str(SAMPLE), "--anchor", str(bad), "--out", str(out)]) == 2
    assert "is not JSON" in capsys.readouterr().err
    bad.write_text(json.dumps({"model": {}}))
    assert main(["eval", str(SAMPLE), "--anchor", str(bad), "--out", str(out)]) == 2
    assert "has no clips" in capsys.readouterr().err
    assert main(["eval", str(SAMPLE), "--anchor", str(tmp_path / "missing.json"), "--out", str(out)]) == 2
    assert "cannot be read" in capsys.readouterr().err
    assert not out.exists()
