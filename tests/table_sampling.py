"""Draw values exactly from integer CDF tables (tests and the coder benchmark's workloads).

The tables follow the coder contract of ``mptvc_latents.entropy.cdf``; constructing a
``RangeCoder`` checks them, as everywhere else.
"""

from __future__ import annotations

import numpy as np

from mptvc_latents.coder import PRECISION, RangeCoder, as_int32


def sample_from_tables(
    rng: np.random.Generator,
    indexes: np.ndarray,
    cdfs: np.ndarray,
    cdf_lengths: np.ndarray,
    offsets: np.ndarray,
    *,
    draw_escapes: bool = False,
    escape_continue: float = 0.5,
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
    RangeCoder(cdfs, cdf_lengths, offsets)  # refuses tables that break the contract
    cdfs, cdf_lengths = as_int32("cdfs", cdfs), as_int32("cdf_lengths", cdf_lengths)
    offsets = as_int32("offsets", offsets)
    indexes = as_int32("indexes", indexes)
    n_tables, max_len = cdfs.shape
    if indexes.size and (indexes.min() < 0 or indexes.max() >= n_tables):
        raise ValueError(f"Every index must name a table in [0, {n_tables}).")
    if not 0.0 <= escape_continue < 1.0:
        raise ValueError(f"escape_continue must be in [0, 1), but it is {escape_continue}.")
    flat_idx = indexes.reshape(-1)
    total = 1 << PRECISION
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
