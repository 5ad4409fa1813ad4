"""benchmarks/rate_bench.py: its BD-rate is the library's Bjøntegaard on each curve's efficient points."""

from __future__ import annotations

import pytest

from benchmarks.rate_bench import _bd_rate
from mptvc_latents.eval.bjontegaard import bd_rate

FIXED = [(0.02, 24.0), (0.07, 28.5), (0.15, 32.0)]


def test_clean_curves_give_the_library_value():
    curve = [(0.03, 25.0), (0.08, 29.0), (0.12, 31.0), (0.16, 32.2)]
    assert _bd_rate(FIXED, curve) == pytest.approx(bd_rate(FIXED, curve))


def test_dominated_and_repeated_points_are_left_out():
    clean = [(0.03, 25.0), (0.08, 29.0), (0.16, 32.2)]
    # A repeated point, a cheaper-but-worse duplicate at one rate, and a point no better than a cheaper one.
    noisy = [*clean, (0.08, 29.0), (0.08, 28.0), (0.10, 28.9)]
    assert _bd_rate(FIXED, noisy) == pytest.approx(bd_rate(FIXED, clean))


def test_no_overlap_or_too_few_points_is_none():
    assert _bd_rate(FIXED, [(0.5, 40.0), (0.6, 41.0)]) is None  # PSNR ranges do not overlap
    assert _bd_rate(FIXED, [(0.05, 27.0)]) is None
    assert _bd_rate(FIXED, [(0.05, 27.0), (0.09, 26.0)]) is None  # one efficient point left
