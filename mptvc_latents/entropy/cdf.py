"""Integer CDF tables for the range coder (16-bit precision, CompressAI contract).

The coder (``mptvc_latents.coder.RangeCoder``, same layout as CompressAI's
``RansEncoder.encode_with_indexes``) reads a bank of tables::

    cdfs        int32 (n_tables, max_len)  row i: 0 = c_0 < c_1 < ... < c_{L_i - 1} = 2**16,
                                           then padding (ignored)
    cdf_lengths int32 (n_tables,)          L_i; the table has L_i - 1 symbols
    offsets     int32 (n_tables,)          value coded by symbol 0

Symbol ``k`` of table ``i`` has frequency ``c_{k+1} - c_k >= 1``. The last symbol,
``k = L_i - 2``, is the *escape*: a value ``v`` is coded as symbol ``v - offsets[i]`` when
``0 <= v - offsets[i] < L_i - 2`` and otherwise as the escape followed by a payload that is
coded outside the tables. A table for an alphabet of ``A`` values therefore has
``L_i = A + 2``.

This module builds tables from float densities; the integer side lives in the Rust coder:
constructing a ``RangeCoder`` checks the contract above, and its ``ideal_cost``,
``symbol_bits`` and ``bits_table`` count bits under the tables.

Data flow (Ballé et al. 2018, "Variational image compression with a scale hyperprior")::

    scales, means --discretized_gaussian_pmf--> pmf (n, A), tail (n,)
                  --quantize_pmf--------------> cdfs (n, A + 2) int32
                  --RangeCoder(cdfs, ...)-----> encode / decode / ideal bits

The normal CDF uses ``math.erfc`` through ``np.frompyfunc``: numpy has no erf, the banks
hold at most a few thousand tables, and this keeps the library free of a scipy
dependency while staying exact to double precision in both tails.
"""

from __future__ import annotations

import logging
import math
import numbers
from typing import Any

import numpy as np

from mptvc_latents.coder import PRECISION

logger = logging.getLogger(__name__)

_MAX_PRECISION = 30  # 2**precision must fit in an int32 CDF entry.
_BISECTION_STEPS = 100

__all__ = ["PRECISION", "check_alphabet", "discretized_gaussian_pmf", "quantize_pmf", "scale_table"]


# --------------------------------------------------------------------------------------
# Float pmf -> integer CDF.


def quantize_pmf(pmf: np.ndarray, tail_mass: np.ndarray | None = None, precision: int = PRECISION) -> np.ndarray:
    """Turn float pmfs into integer CDF tables whose last symbol is the escape.

    Args:
        pmf: ``(n_tables, A)`` nonnegative probabilities of the ``A`` in-range values.
            Rows need not be normalised; each row together with its tail mass is.
        tail_mass: ``(n_tables,)`` probability of the values outside the range, given to
            the escape symbol. ``None`` gives the escape the minimal frequency 1 and the
            in-range values the rest.
        precision: the frequencies of a row sum to ``2**precision``.

    Returns:
        ``(n_tables, A + 2)`` int32 CDFs, each starting at 0, strictly increasing, ending
        at ``2**precision``.

    The frequencies minimise the cross-entropy ``-sum_k p_k log f_k`` (equivalently the KL
    divergence from the float pmf) subject to ``f_k >= 1`` and ``sum_k f_k = 2**precision``.
    The problem is separable and convex, so the greedy that hands out one count at a time
    to the largest marginal gain ``p_k log((f_k + 1) / f_k)`` is exact; we find its
    stopping threshold by bisection for all rows at once and finish the last few counts
    greedily (ties go to the lower symbol index, so the result is deterministic).
    """
    pmf = np.asarray(pmf)
    if pmf.ndim != 2:
        raise ValueError(f"pmf must be a 2-D array (n_tables, A), but it has shape {pmf.shape}.")
    _check_precision(precision)
    n_tables, alphabet = pmf.shape
    if alphabet < 1:
        raise ValueError("pmf must have at least one column (alphabet size A >= 1).")
    total = 1 << precision
    if alphabet + 1 > total:
        raise ValueError(
            f"An alphabet of {alphabet} values plus the escape does not fit in "
            f"2**{precision} = {total} counts; use fewer values or a higher precision."
        )
    pmf = _check_probabilities(pmf, "pmf")
    if tail_mass is None:
        _check_row_mass(pmf.sum(axis=1), "pmf")
        freqs = _kl_optimal_frequencies(pmf, total - 1)
        freqs = np.concatenate([freqs, np.ones((n_tables, 1), dtype=np.int64)], axis=1)
    else:
        tail = _check_probabilities(np.asarray(tail_mass), "tail_mass")
        if tail.shape != (n_tables,):
            raise ValueError(f"tail_mass must have shape ({n_tables},) to match pmf, but it has shape {tail.shape}.")
        probs = np.concatenate([pmf, tail[:, None]], axis=1)
        _check_row_mass(probs.sum(axis=1), "pmf plus tail_mass")
        freqs = _kl_optimal_frequencies(probs, total)
    cdfs = np.zeros((n_tables, alphabet + 2), dtype=np.int64)
    np.cumsum(freqs, axis=1, out=cdfs[:, 1:])
    assert np.all(cdfs[:, -1] == total), "frequencies must sum to 2**precision"
    return cdfs.astype(np.int32)


def _kl_optimal_frequencies(probs: np.ndarray, total: int) -> np.ndarray:
    """Integer frequencies ``>= 1`` summing to ``total`` per row, minimising cross-entropy.

    With threshold ``lam``, the greedy gives symbol ``k`` every count whose marginal gain
    ``p log(1 + 1/f) > lam``, i.e. ``f(lam) = max(1, ceil(1 / expm1(lam / p)))``.
    ``sum f(lam)`` decreases in ``lam``; we bisect (in log space) for the smallest ``lam``
    with ``sum f(lam) <= total`` and hand out the remaining counts by largest gain.
    """
    probs = probs / probs.sum(axis=1, keepdims=True)
    n_rows, n_symbols = probs.shape
    if n_rows == 0:
        return np.zeros((0, n_symbols), dtype=np.int64)
    # At lam = max p every f is 1 (1 / expm1(1) < 1), so sum f(hi) = n_symbols <= total;
    # and sum f(lo) >= 1/lo - n_symbols/2 >= total.
    log_hi = np.log(probs.max(axis=1))
    log_lo = np.full(n_rows, -math.log(total + n_symbols))
    for _ in range(_BISECTION_STEPS):
        log_mid = 0.5 * (log_lo + log_hi)
        fits = _frequencies_at(probs, np.exp(log_mid)).sum(axis=1) <= total
        log_hi = np.where(fits, log_mid, log_hi)
        log_lo = np.where(fits, log_lo, log_mid)
    freqs = _frequencies_at(probs, np.exp(log_hi))
    deficit = total - freqs.sum(axis=1)
    assert np.all(deficit >= 0), "the upper threshold must never overshoot"
    while np.any(deficit > 0):
        gain = probs * np.log1p(1.0 / freqs)
        order = np.argsort(-gain, axis=1, kind="stable")
        rank = np.empty_like(order)
        np.put_along_axis(rank, order, np.arange(n_symbols)[None, :], axis=1)
        grant = rank < deficit[:, None]
        freqs += grant
        deficit -= grant.sum(axis=1)
    return freqs


def _frequencies_at(probs: np.ndarray, lam: np.ndarray) -> np.ndarray:
    with np.errstate(divide="ignore", over="ignore"):
        counts = np.ceil(1.0 / np.expm1(lam[:, None] / probs))
    # A huge count only happens for lam far below the solution; clip to stay in int64.
    return np.maximum(np.minimum(counts, 2.0**62), 1.0).astype(np.int64)


# --------------------------------------------------------------------------------------
# Parametric pmfs.


def discretized_gaussian_pmf(
    scales: np.ndarray, means: np.ndarray | float, alphabet: tuple[int, int]
) -> tuple[np.ndarray, np.ndarray]:
    """Discretized Gaussian ``P(v) = Phi((v + 1/2 - mu) / s) - Phi((v - 1/2 - mu) / s)``.

    Args:
        scales: ``(n,)`` positive standard deviations.
        means: ``(n,)`` means, or a scalar broadcast to all tables.
        alphabet: inclusive integer range ``(lo, hi)`` of the in-range values.

    Returns:
        ``pmf`` of shape ``(n, hi - lo + 1)`` and ``tail_mass`` of shape ``(n,)``, the
        probability of ``v < lo`` or ``v > hi``; each row of pmf plus its tail sums to 1.

    Intervals above the mean are integrated with the upper tail ``Q`` and those below with
    the lower tail ``Phi``, so small probabilities far from the mean keep full relative
    precision instead of cancelling as a difference of numbers close to 1.
    """
    scales = np.asarray(scales, dtype=np.float64)
    if scales.ndim != 1:
        raise ValueError(f"scales must be a 1-D array, but it has shape {scales.shape}.")
    if not np.all(np.isfinite(scales)) or np.any(scales <= 0):
        raise ValueError("Every scale must be finite and strictly positive.")
    try:
        means = np.broadcast_to(np.asarray(means, dtype=np.float64), scales.shape)
    except ValueError:
        raise ValueError(
            f"means must be a scalar or have the shape of scales {scales.shape}, but it has shape {np.shape(means)}."
        ) from None
    if not np.all(np.isfinite(means)):
        raise ValueError("Every mean must be finite.")
    lo, hi = check_alphabet(alphabet)
    edges = np.arange(lo, hi + 2, dtype=np.float64) - 0.5  # (A + 1,) interval edges
    z = (edges[None, :] - means[:, None]) / scales[:, None]  # (n, A + 1)
    lower = _normal_lower_tail(z)  # Phi(z)
    upper = _normal_lower_tail(-z)  # Q(z) = 1 - Phi(z)
    centres = 0.5 * (z[:, :-1] + z[:, 1:])
    pmf = np.where(centres >= 0, upper[:, :-1] - upper[:, 1:], lower[:, 1:] - lower[:, :-1])
    pmf = np.maximum(pmf, 0.0)
    tail_mass = lower[:, 0] + upper[:, -1]
    return pmf, tail_mass


_erfc = np.frompyfunc(math.erfc, 1, 1)


def _normal_lower_tail(z: np.ndarray) -> np.ndarray:
    """``Phi(z)``, accurate to double precision relative error in the lower tail."""
    return 0.5 * np.asarray(_erfc(-z / math.sqrt(2.0)), dtype=np.float64)


def scale_table(min_scale: float = 0.3, max_scale: float = 8.0, n: int = 64) -> np.ndarray:
    """``n`` log-spaced scales from ``min_scale`` to ``max_scale`` (Ballé hyperprior bank)."""
    if not (math.isfinite(min_scale) and math.isfinite(max_scale)) or min_scale <= 0:
        raise ValueError("min_scale and max_scale must be finite and min_scale positive.")
    if max_scale <= min_scale:
        raise ValueError(f"max_scale ({max_scale}) must be larger than min_scale ({min_scale}).")
    if n < 2:
        raise ValueError(f"A scale table needs at least 2 entries, but n is {n}.")
    return np.exp(np.linspace(math.log(min_scale), math.log(max_scale), n))


# --------------------------------------------------------------------------------------
# Input checks.


def check_alphabet(alphabet: Any) -> tuple[int, int]:
    """``alphabet`` as an inclusive integer range ``(lo, hi)`` with ``lo <= hi``.

    Raises:
        ValueError: when it is not a pair of integers or ``hi < lo``.
    """
    pair = alphabet if isinstance(alphabet, (tuple, list)) else ()
    if len(pair) != 2 or not all(isinstance(v, numbers.Integral) and not isinstance(v, bool) for v in pair):
        raise ValueError(f"alphabet must be a pair of integers (lo, hi), but it is {alphabet!r}.")
    lo, hi = int(pair[0]), int(pair[1])
    if hi < lo:
        raise ValueError(f"alphabet (lo, hi) needs lo <= hi, but it is {alphabet!r}.")
    return lo, hi


def _check_probabilities(arr, name):
    if arr.dtype.kind not in "fiu":
        raise ValueError(f"{name} must be a numeric array, but its dtype is {arr.dtype}.")
    arr = arr.astype(np.float64)
    if not np.all(np.isfinite(arr)):
        raise ValueError(f"{name} must be finite, but it contains NaN or infinity.")
    if np.any(arr < 0):
        raise ValueError(f"{name} must be nonnegative, but it has negative entries.")
    return arr


def _check_row_mass(mass, what):
    if np.any(mass <= 0):
        raise ValueError(
            f"Every row of {what} must have positive total probability, but row {int(np.argmin(mass))} sums to 0."
        )


def _check_precision(precision):
    if not isinstance(precision, (int, np.integer)) or not 1 <= precision <= _MAX_PRECISION:
        raise ValueError(f"precision must be an integer in [1, {_MAX_PRECISION}], but it is {precision!r}.")
