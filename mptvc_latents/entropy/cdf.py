"""Integer CDF tables for the range coder (16-bit precision, CompressAI contract).

The coder (``mptvc_latents._coder``, same layout as CompressAI's
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

Data flow (Ballé et al. 2018, "Variational image compression with a scale hyperprior")::

    scales, means --discretized_gaussian_pmf--> pmf (n, A), tail (n,)
                  --quantize_pmf--------------> cdfs (n, A + 2) int32
    symbols, indexes + tables --ideal_bits----> exact cost under the integer tables
    indexes + tables --sample_from_tables-----> symbols drawn exactly from the tables

The normal CDF uses ``math.erfc`` through ``np.frompyfunc``: numpy has no erf, the banks
hold at most a few thousand tables, and this keeps the library free of a scipy
dependency while staying exact to double precision in both tails.
"""

from __future__ import annotations

import logging
import math
from dataclasses import dataclass

import numpy as np

logger = logging.getLogger(__name__)

PRECISION = 16
_MAX_PRECISION = 30  # 2**precision must fit in an int32 CDF entry.
_BISECTION_STEPS = 100

__all__ = [
    "PRECISION",
    "IdealCost",
    "discretized_gaussian_pmf",
    "ideal_bits",
    "quantize_pmf",
    "sample_from_tables",
    "scale_table",
    "validate_tables",
]


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
    lo, hi = _check_alphabet(alphabet)
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
    return 0.5 * _erfc(-z / math.sqrt(2.0)).astype(np.float64)


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
# Using the integer tables: validation, ideal cost, exact sampling.


@dataclass(frozen=True)
class IdealCost:
    """Ideal cost of a symbol stream under integer tables.

    Attributes:
        bits: sum of ``-log2(freq / 2**precision)`` of the coded table symbol, the escape's
            own frequency included for out-of-range values.
        n_escapes: how many values fell outside their table's range.
        escape_payload_bits: a reference cost for the escape payloads, which the tables do
            not model: an Elias-gamma code of ``r + 1`` where ``r`` is the zig-zag overflow
            (``-2 d - 1`` for ``d = v - offset < 0``, ``2 (d - (L - 2))`` above the range).
    """

    bits: float
    n_escapes: int
    escape_payload_bits: int

    @property
    def total_bits(self) -> float:
        return self.bits + self.escape_payload_bits


def validate_tables(
    cdfs: np.ndarray,
    cdf_lengths: np.ndarray,
    offsets: np.ndarray,
    precision: int = PRECISION,
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Check the table contract and return the arrays as int32 (``cdfs`` 2-D)."""
    _check_precision(precision)
    cdfs = _as_int32(cdfs, "cdfs")
    cdf_lengths = _as_int32(cdf_lengths, "cdf_lengths")
    offsets = _as_int32(offsets, "offsets")
    if cdfs.ndim != 2:
        raise ValueError(f"cdfs must be 2-D (n_tables, max_len), but it has shape {cdfs.shape}.")
    n_tables, max_len = cdfs.shape
    for name, arr in (("cdf_lengths", cdf_lengths), ("offsets", offsets)):
        if arr.shape != (n_tables,):
            raise ValueError(f"{name} must have shape ({n_tables},) to match cdfs, but it has shape {arr.shape}.")
    if np.any(cdf_lengths < 3) or np.any(cdf_lengths > max_len):
        raise ValueError(
            f"Every cdf_length must be between 3 (one value plus the escape) and the row length {max_len} of cdfs."
        )
    cols = np.arange(max_len)[None, :]
    inside = cols < cdf_lengths[:, None]
    if np.any(cdfs[:, 0] != 0):
        raise ValueError("Every CDF must start at 0.")
    last = np.take_along_axis(cdfs, (cdf_lengths - 1)[:, None].astype(np.int64), axis=1)
    if np.any(last != 1 << precision):
        raise ValueError(f"Every CDF must end at 2**{precision} = {1 << precision}.")
    steps_inside = inside[:, 1:]
    if np.any((np.diff(cdfs.astype(np.int64), axis=1) <= 0) & steps_inside):
        raise ValueError(
            "Every CDF must be strictly increasing up to its length (each symbol, the "
            "escape included, needs a frequency of at least 1)."
        )
    return cdfs, cdf_lengths, offsets


def ideal_bits(
    symbols: np.ndarray,
    indexes: np.ndarray,
    cdfs: np.ndarray,
    cdf_lengths: np.ndarray,
    offsets: np.ndarray,
    precision: int = PRECISION,
) -> IdealCost:
    """Exact ideal cost of coding ``symbols[j]`` with table ``indexes[j]``.

    See :class:`IdealCost` for what is and is not counted.
    """
    cdfs, cdf_lengths, offsets = validate_tables(cdfs, cdf_lengths, offsets, precision)
    symbols, indexes = _check_stream(symbols, indexes, len(cdfs))
    coded, overflow = _table_symbols(symbols, indexes, cdf_lengths, offsets)
    flat = cdfs.reshape(-1).astype(np.int64)
    start = indexes.astype(np.int64) * cdfs.shape[1] + coded
    freq = flat[start + 1] - flat[start]
    # Sum log2 over distinct frequencies only: exact, and fast for millions of symbols.
    used, counts = _histogram(freq, 1 << precision)
    bits = float(np.dot(counts, precision - np.log2(used.astype(np.float64))))
    escaped = overflow[overflow >= 0]
    payload = int(np.sum(2 * _floor_log2(escaped + 1) + 1)) if escaped.size else 0
    return IdealCost(bits=bits, n_escapes=int(escaped.size), escape_payload_bits=payload)


def sample_from_tables(
    rng: np.random.Generator,
    indexes: np.ndarray,
    cdfs: np.ndarray,
    cdf_lengths: np.ndarray,
    offsets: np.ndarray,
    *,
    draw_escapes: bool = False,
    escape_continue: float = 0.5,
    precision: int = PRECISION,
) -> np.ndarray:
    """Draw one value per entry of ``indexes`` exactly from the integer tables.

    A uniform integer ``u`` is mapped through the inverse CDF of table ``indexes[j]``.
    With ``draw_escapes=False``, ``u`` is drawn below the escape's interval, i.e. exactly
    from the tables conditioned on staying in range. With ``draw_escapes=True`` the escape
    is drawn with its table frequency and replaced by a value outside the range: below or
    above with probability 1/2 each, at distance ``m >= 1`` from the range with
    ``P(m) = (1 - q) q**(m - 1)``, ``q = escape_continue``.

    Returns:
        int32 values of the shape of ``indexes``.
    """
    cdfs, cdf_lengths, offsets = validate_tables(cdfs, cdf_lengths, offsets, precision)
    indexes = _check_indexes(indexes, len(cdfs))
    if not 0.0 <= escape_continue < 1.0:
        raise ValueError(f"escape_continue must be in [0, 1), but it is {escape_continue}.")
    flat_idx = indexes.reshape(-1)
    n_tables, max_len = cdfs.shape
    total = 1 << precision
    escape_start = np.take_along_axis(cdfs, (cdf_lengths - 2)[:, None].astype(np.int64), 1)[:, 0]
    high = total if draw_escapes else escape_start[flat_idx]
    u = rng.integers(0, high, size=flat_idx.shape, dtype=np.int64)
    # One sorted array for all tables: pad each row with its total, shift row r by
    # r * (total + 1), and search every u in its own row.
    padded = np.where(np.arange(max_len)[None, :] < cdf_lengths[:, None], cdfs, total)
    stride = np.int64(total + 1)
    flat = (padded.astype(np.int64) + stride * np.arange(n_tables)[:, None]).reshape(-1)
    pos = np.searchsorted(flat, u + stride * flat_idx, side="right")
    coded = pos - 1 - max_len * flat_idx.astype(np.int64)
    values = coded + offsets[flat_idx]
    escaped = coded == cdf_lengths[flat_idx] - 2
    if np.any(escaped):
        n_esc = int(escaped.sum())
        distance = rng.geometric(1.0 - escape_continue, size=n_esc)
        below = rng.random(n_esc) < 0.5
        lo = offsets[flat_idx[escaped]].astype(np.int64)
        hi = lo + cdf_lengths[flat_idx[escaped]] - 3  # largest in-range value
        values[escaped] = np.where(below, lo - distance, hi + distance)
    if np.any((values < np.iinfo(np.int32).min) | (values > np.iinfo(np.int32).max)):
        raise ValueError("Sampled escapes overflow int32; lower escape_continue.")
    return values.astype(np.int32).reshape(indexes.shape)


# --------------------------------------------------------------------------------------
# Helpers.


def _table_symbols(symbols, indexes, cdf_lengths, offsets):
    """Coded table symbol per value and the zig-zag overflow (-1 where in range)."""
    d = symbols.astype(np.int64) - offsets[indexes]
    n_values = (cdf_lengths[indexes] - 2).astype(np.int64)
    below, above = d < 0, d >= n_values
    coded = np.where(below | above, n_values, d)
    overflow = np.where(below, -2 * d - 1, np.where(above, 2 * (d - n_values), -1))
    return coded, overflow


def _histogram(values: np.ndarray, max_value: int) -> tuple[np.ndarray, np.ndarray]:
    """Distinct nonnegative ints and their counts (bincount when the range is small)."""
    if max_value <= 1 << 20:
        counts = np.bincount(values, minlength=1)
        used = np.nonzero(counts)[0]
        return used, counts[used]
    return np.unique(values, return_counts=True)


def _floor_log2(x: np.ndarray) -> np.ndarray:
    """Exact ``floor(log2(x))`` for positive int64 (float log2 rounds near powers of 2)."""
    x = x.astype(np.int64)
    out = np.zeros(x.shape, dtype=np.int64)
    for shift in (32, 16, 8, 4, 2, 1):
        big = x >= (np.int64(1) << shift)
        x = np.where(big, x >> shift, x)
        out += big * shift
    return out


def _check_stream(symbols, indexes, n_tables):
    symbols = _as_int32(symbols, "symbols").reshape(-1)
    indexes = _check_indexes(indexes, n_tables).reshape(-1)
    if symbols.shape != indexes.shape:
        raise ValueError(
            f"symbols and indexes must have the same number of entries, but they have "
            f"{symbols.size} and {indexes.size}."
        )
    return symbols, indexes


def _check_indexes(indexes, n_tables):
    indexes = _as_int32(indexes, "indexes")
    if indexes.size and (indexes.min() < 0 or indexes.max() >= n_tables):
        raise ValueError(
            f"Every index must name a table in [0, {n_tables}), but indexes span [{indexes.min()}, {indexes.max()}]."
        )
    return indexes


def _as_int32(arr, name):
    arr = np.asarray(arr)
    if arr.dtype.kind not in "iu":
        raise ValueError(f"{name} must be an integer array, but its dtype is {arr.dtype}.")
    info = np.iinfo(np.int32)
    if arr.size and (arr.min() < info.min or arr.max() > info.max):
        raise ValueError(f"{name} must fit in int32, but it has values outside that range.")
    return arr.astype(np.int32, copy=False)


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


def _check_alphabet(alphabet):
    try:
        lo, hi = alphabet
    except (TypeError, ValueError):
        raise ValueError(f"alphabet must be a pair (lo, hi), but it is {alphabet!r}.") from None
    if int(lo) != lo or int(hi) != hi:
        raise ValueError(f"alphabet bounds must be integers, but they are {alphabet!r}.")
    if hi < lo:
        raise ValueError(f"alphabet (lo, hi) needs lo <= hi, but it is {alphabet!r}.")
    return int(lo), int(hi)
