"""Bjøntegaard deltas: the mean PSNR gap (BD-PSNR) and rate gap (BD-rate) between two RD curves.

Bjøntegaard (VCEG-M33, 2001) fits PSNR against log-rate for each codec and averages the gap over
the rate range both curves cover. A cubic polynomial needs four points and a codec with three
prefixes has three, so, as in VCEG-AL22 and the JVET common test conditions, each curve here is a
piecewise cubic Hermite interpolant (PCHIP, Fritsch and Carlson 1980): exact at the points,
monotone between them, defined from two points up. Averages are taken over the overlap only; no
curve is extrapolated.

``compare(result, anchor)`` applies both to two ``mptvc eval`` results clip by clip (clips matched
by name; the same frames must have been evaluated) and averages the clips.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import numpy as np

__all__ = ["bd_psnr", "bd_rate", "compare", "pchip"]

_GRID = 2049  # points of the trapezoid rule over the overlap (the interpolants are smooth cubics)


def pchip(x: np.ndarray, y: np.ndarray, at: np.ndarray) -> np.ndarray:
    """The monotone piecewise cubic Hermite interpolant of ``(x, y)`` (``x`` strictly increasing)
    evaluated at ``at`` (inside ``[x[0], x[-1]]``)."""
    h = np.diff(x)  # (n-1,)
    delta = np.diff(y) / h  # (n-1,): secant slopes
    d = np.zeros_like(y)  # (n,): slopes at the points
    if len(x) == 2:
        d[:] = delta[0]
    else:
        for k in range(1, len(x) - 1):  # interior: weighted harmonic mean, 0 at a local extremum
            if delta[k - 1] * delta[k] > 0:
                w1, w2 = 2 * h[k] + h[k - 1], h[k] + 2 * h[k - 1]
                d[k] = (w1 + w2) / (w1 / delta[k - 1] + w2 / delta[k])
        d[0] = _end_slope(h[0], h[1], delta[0], delta[1])
        d[-1] = _end_slope(h[-1], h[-2], delta[-1], delta[-2])
    seg = np.clip(np.searchsorted(x, at, side="right") - 1, 0, len(x) - 2)
    t = (at - x[seg]) / h[seg]
    h00, h10 = (1 + 2 * t) * (1 - t) ** 2, t * (1 - t) ** 2
    h01, h11 = t**2 * (3 - 2 * t), t**2 * (t - 1)
    return h00 * y[seg] + h10 * h[seg] * d[seg] + h01 * y[seg + 1] + h11 * h[seg] * d[seg + 1]


def _end_slope(h0: float, h1: float, delta0: float, delta1: float) -> float:
    """The shape-preserving three-point end slope of PCHIP."""
    d = ((2 * h0 + h1) * delta0 - h0 * delta1) / (h0 + h1)
    if np.sign(d) != np.sign(delta0):
        return 0.0
    if np.sign(delta0) != np.sign(delta1) and abs(d) > abs(3 * delta0):
        return 3 * delta0
    return float(d)


def _curve(points: Sequence[tuple[float, float]], name: str) -> tuple[np.ndarray, np.ndarray]:
    """``(log rate, PSNR)`` sorted by rate, checked: at least two points, positive finite rates,
    finite PSNRs, and PSNR strictly increasing with rate (else neither delta is defined)."""
    pts = sorted((float(r), float(p)) for r, p in points)
    if len(pts) < 2:
        raise ValueError(f"The {name} curve needs at least two (rate, PSNR) points, got {len(pts)}.")
    rates = np.array([r for r, _ in pts])
    psnrs = np.array([p for _, p in pts])
    if not (np.all(np.isfinite(rates)) and np.all(rates > 0) and np.all(np.isfinite(psnrs))):
        raise ValueError(f"The {name} curve has a rate that is not positive or a value that is not finite: {pts}.")
    if np.any(np.diff(rates) <= 0) or np.any(np.diff(psnrs) <= 0):
        raise ValueError(
            f"The {name} curve must rise: PSNR strictly increasing with strictly increasing rate, got {pts}."
        )
    return np.log(rates), psnrs


def _mean_gap(anchor_x, anchor_y, test_x, test_y) -> float:
    lo, hi = max(anchor_x[0], test_x[0]), min(anchor_x[-1], test_x[-1])
    if hi <= lo:
        raise ValueError("The two curves do not overlap, so there is no range to average their gap over.")
    grid = np.linspace(lo, hi, _GRID)
    gap = pchip(test_x, test_y, grid) - pchip(anchor_x, anchor_y, grid)
    return float(np.trapezoid(gap, grid) / (hi - lo))


def bd_psnr(anchor: Sequence[tuple[float, float]], test: Sequence[tuple[float, float]]) -> float:
    """Mean PSNR of ``test`` minus ``anchor`` (dB) over the log-rate range both cover; points are
    ``(rate, psnr)`` with any rate unit (bpp, kbit/s) shared by both curves."""
    ax, ay = _curve(anchor, "anchor")
    tx, ty = _curve(test, "test")
    return _mean_gap(ax, ay, tx, ty)


def bd_rate(anchor: Sequence[tuple[float, float]], test: Sequence[tuple[float, float]]) -> float:
    """Mean rate change of ``test`` against ``anchor`` at equal PSNR, in percent (negative: fewer
    bits), over the PSNR range both cover: ``exp(mean log-rate gap) - 1``."""
    ax, ay = _curve(anchor, "anchor")
    tx, ty = _curve(test, "test")
    return (math.exp(_mean_gap(ay, ax, ty, tx)) - 1) * 100


def compare(result: dict, anchor: dict, metric: str = "psnr_y") -> dict:
    """BD-PSNR and BD-rate of an ``mptvc eval`` result against another (the anchor), per clip over
    the prefixes, and their means. Clips are matched by name; a clip of ``result`` the anchor does
    not have is an error, as is a clip evaluated on a different number of frames."""
    anchors = {c["name"]: c for c in anchor["clips"]}
    clips = []
    for clip in result["clips"]:
        ref = anchors.get(clip["name"])
        if ref is None:
            raise ValueError(f"The anchor has no clip named {clip['name']!r}; it has {sorted(anchors)}.")
        if ref["frames"] != clip["frames"]:
            raise ValueError(
                f"The clip {clip['name']!r} was evaluated on {clip['frames']} frames but the anchor on "
                f"{ref['frames']}; evaluate both on the same frames."
            )
        a = [(p["bpp"], p[metric]) for p in ref["prefixes"]]
        t = [(p["bpp"], p[metric]) for p in clip["prefixes"]]
        clips.append({"name": clip["name"], "bd_psnr_db": bd_psnr(a, t), "bd_rate_percent": bd_rate(a, t)})
    return {
        "metric": metric,
        "anchor_model": anchor.get("model", {}),
        "clips": clips,
        "mean_bd_psnr_db": float(np.mean([c["bd_psnr_db"] for c in clips])),
        "mean_bd_rate_percent": float(np.mean([c["bd_rate_percent"] for c in clips])),
    }
