"""Tests for building integer CDF tables (mptvc_latents.entropy.cdf) and for the exact
table sampler the coder benchmark draws its workloads with (tests/table_sampling.py)."""

import heapq
import math

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp

from mptvc_latents.coder import RangeCoder
from mptvc_latents.entropy.cdf import check_alphabet, discretized_gaussian_pmf, quantize_pmf, scale_table
from tests.table_sampling import sample_from_tables

FAST = settings(max_examples=40, deadline=None)


def _pmfs(max_tables=4, max_alphabet=40):
    shapes = st.tuples(st.integers(1, max_tables), st.integers(1, max_alphabet))
    weights = st.one_of(st.just(0.0), st.floats(1e-12, 1.0), st.floats(0.0, 1e6))
    return shapes.flatmap(
        lambda shape: hnp.arrays(np.float64, shape, elements=weights).filter(lambda a: np.all(a.sum(axis=1) > 0))
    )


def _greedy_frequencies(probs, total):
    """Reference: one count at a time to the largest marginal gain (exact for this problem)."""
    probs = np.asarray(probs, dtype=np.float64) / np.sum(probs)
    freqs = [1] * len(probs)
    heap = [(-p * math.log1p(1.0), k) for k, p in enumerate(probs)]
    heapq.heapify(heap)
    for _ in range(total - len(probs)):
        _, k = heapq.heappop(heap)
        freqs[k] += 1
        heapq.heappush(heap, (-probs[k] * math.log1p(1.0 / freqs[k]), k))
    return np.array(freqs)


def _cross_entropy(probs, freqs):
    probs = np.asarray(probs) / np.sum(probs)
    return float(-np.sum(probs * np.log2(freqs / freqs.sum())))


# ---------------------------------------------------------------------------- quantize_pmf


@FAST
@given(pmf=_pmfs(), with_tail=st.booleans(), tail_scale=st.floats(0.0, 2.0))
def test_quantize_pmf_invariants(pmf, with_tail, tail_scale):
    tail = np.full(len(pmf), tail_scale) if with_tail else None
    cdfs = quantize_pmf(pmf, tail)
    n, alphabet = pmf.shape
    assert cdfs.dtype == np.int32
    assert cdfs.shape == (n, alphabet + 2)
    assert np.all(cdfs[:, 0] == 0)
    assert np.all(cdfs[:, -1] == 1 << 16)
    assert np.all(np.diff(cdfs, axis=1) >= 1)
    if not with_tail:
        assert np.all(cdfs[:, -1] - cdfs[:, -2] == 1)
    assert len(RangeCoder(cdfs, np.full(n, alphabet + 2), np.zeros(n, dtype=np.int32))) == n  # the coder accepts them


def test_quantize_pmf_is_deterministic_with_ties():
    pmf = np.ones((3, 7))
    first = quantize_pmf(pmf, None)
    assert np.array_equal(first, quantize_pmf(pmf.copy(), None))
    assert np.all(first == first[0])
    freqs = np.diff(first[0])
    assert freqs[-1] == 1 and freqs[:-1].max() - freqs[:-1].min() <= 1


@pytest.mark.parametrize("n_symbols, precision", [(10, 4), (15, 4), (3, 2), (255, 8), (7, 16)])
def test_quantize_pmf_uniform_ties_at_small_precision(n_symbols, precision):
    # Every gain ties at the threshold here: a regression test for the bisection bracket.
    cdfs = quantize_pmf(np.ones((2, n_symbols - 1)), np.ones(2), precision=precision)
    freqs = np.diff(cdfs, axis=1)
    assert np.all(cdfs[:, -1] == 1 << precision)
    assert freqs.min() >= 1 and freqs.max() - freqs.min() <= 1


@FAST
@given(
    probs=hnp.arrays(np.float64, st.integers(2, 12), elements=st.floats(0.0, 1.0)).filter(lambda a: a.sum() > 0),
    precision=st.integers(4, 9),
)
def test_quantize_pmf_matches_exact_greedy(probs, precision):
    total = 1 << precision
    if len(probs) > total:
        return
    ours = np.diff(quantize_pmf(probs[None, :-1], probs[-1:], precision=precision)[0])
    reference = _greedy_frequencies(probs, total)
    assert ours.sum() == total
    assert _cross_entropy(probs, ours) == pytest.approx(_cross_entropy(probs, reference), abs=1e-9)


def test_quantize_pmf_kl_is_small_for_smooth_pmfs():
    pmf, tail = discretized_gaussian_pmf(scale_table(0.5, 8.0, 16), 0.3, (-16, 16))
    cdfs = quantize_pmf(pmf, tail)
    probs = np.concatenate([pmf, tail[:, None]], axis=1)
    freqs = np.diff(cdfs, axis=1) / 2**16
    kl = np.sum(probs * np.log2(probs / freqs), axis=1)
    assert np.all(kl < 2e-3)  # bits per symbol; a handful of symbols sit at the floor of 1


# ------------------------------------------------------------------------- gaussian pmfs


def test_gaussian_pmf_and_tail_sum_to_one():
    scales = np.array([0.05, 0.3, 1.0, 8.0, 50.0])
    means = np.array([0.0, -3.7, 2.2, 0.5, -10.0])
    pmf, tail = discretized_gaussian_pmf(scales, means, (-5, 4))
    assert pmf.shape == (5, 10) and tail.shape == (5,)
    assert np.all(pmf >= 0) and np.all(tail >= 0)
    np.testing.assert_allclose(pmf.sum(axis=1) + tail, 1.0, atol=1e-12)


def test_gaussian_pmf_values_and_far_tails():
    pmf, tail = discretized_gaussian_pmf(np.array([1.0]), 0.0, (0, 10))
    phi = lambda x: 0.5 * math.erfc(-x / math.sqrt(2))  # noqa: E731
    assert pmf[0, 0] == pytest.approx(phi(0.5) - phi(-0.5), rel=1e-14)
    assert tail[0] == pytest.approx(phi(-0.5) + phi(-10.5), rel=1e-14)
    # Far in the tail the probability must not cancel to 0.
    assert pmf[0, 10] == pytest.approx(phi(-9.5) - phi(-10.5), rel=1e-10)
    assert pmf[0, 10] > 0


def test_scale_table_is_log_spaced():
    table = scale_table()
    assert table.shape == (64,)
    assert table[0] == pytest.approx(0.3) and table[-1] == pytest.approx(8.0)
    ratios = table[1:] / table[:-1]
    np.testing.assert_allclose(ratios, ratios[0])


# -------------------------------------------------------------------- exact sampling


def _small_bank():
    scales, means = np.array([0.4, 1.5, 4.0]), np.array([0.0, 1.0, -2.0])
    pmf, tail = discretized_gaussian_pmf(scales, means, (-3, 3))
    cdfs = quantize_pmf(pmf, tail)
    # Pad to a longer row and give one table a different length and offset.
    cdfs = np.pad(cdfs, ((0, 1), (0, 3)), constant_values=-7)
    cdfs[3, :4] = [0, 30000, 65000, 1 << 16]
    lengths = np.array([9, 9, 9, 4], dtype=np.int32)
    offsets = np.array([-3, -3, -3, 5], dtype=np.int32)
    return cdfs, lengths, offsets


def test_sampling_matches_table_frequencies():
    cdfs, lengths, offsets = _small_bank()
    rng = np.random.default_rng(2)
    n = 200_000
    indexes = np.repeat(np.arange(4, dtype=np.int32), n // 4)
    values = sample_from_tables(rng, indexes, cdfs, lengths, offsets, draw_escapes=True)
    for i in range(4):
        v = values[indexes == i].astype(np.int64) - offsets[i]
        n_values = lengths[i] - 2
        coded = np.where((v < 0) | (v >= n_values), n_values, v)
        observed = np.bincount(coded, minlength=n_values + 1)
        expected = np.diff(cdfs[i, : lengths[i]]) / 2**16 * len(v)
        # Pearson chi-square over the cells with enough expected mass.
        big = expected >= 5
        chi2 = np.sum((observed[big] - expected[big]) ** 2 / expected[big])
        dof = max(int(big.sum()) - 1, 1)
        assert chi2 < dof + 6 * math.sqrt(2 * dof) + 10


def test_sampling_without_escapes_stays_in_range_and_escapes_leave_it():
    cdfs, lengths, offsets = _small_bank()
    rng = np.random.default_rng(3)
    indexes = np.full((50, 1000), 3, dtype=np.int32)
    inside = sample_from_tables(rng, indexes, cdfs, lengths, offsets)
    assert inside.shape == indexes.shape
    assert set(np.unique(inside).tolist()) == {5, 6}
    mixed = sample_from_tables(rng, indexes, cdfs, lengths, offsets, draw_escapes=True)
    escaped = (mixed < 5) | (mixed > 6)
    # Table 3's escape has frequency 536 / 65536.
    assert abs(escaped.mean() - 536 / 65536) < 0.003
    assert (mixed[escaped] < 5).any() and (mixed[escaped] > 6).any()


def test_sampling_is_reproducible():
    cdfs, lengths, offsets = _small_bank()
    indexes = np.arange(1000, dtype=np.int32) % 4
    a = sample_from_tables(np.random.default_rng(5), indexes, cdfs, lengths, offsets)
    b = sample_from_tables(np.random.default_rng(5), indexes, cdfs, lengths, offsets)
    assert np.array_equal(a, b)


# ------------------------------------------------------------------------ bad input


@pytest.mark.parametrize(
    "pmf, tail, match",
    [
        (np.ones(4), None, "2-D"),
        (np.ones((2, 0)), None, "at least one column"),
        (np.array([[0.5, -0.1]]), None, "nonnegative"),
        (np.array([[0.5, np.nan]]), None, "finite"),
        (np.zeros((1, 3)), None, "positive total"),
        (np.ones((2, 3)), np.ones(3), "tail_mass must have shape"),
        (np.ones((2, 3)), np.array([1.0, -1.0]), "nonnegative"),
        (np.ones((1, 1 << 16)), None, "does not fit"),
    ],
)
def test_quantize_pmf_rejects_bad_input(pmf, tail, match):
    with pytest.raises(ValueError, match=match):
        quantize_pmf(pmf, tail)


def test_quantize_pmf_rejects_bad_precision():
    with pytest.raises(ValueError, match="precision"):
        quantize_pmf(np.ones((1, 3)), None, precision=40)


def test_gaussian_and_scale_table_reject_bad_input():
    with pytest.raises(ValueError, match="strictly positive"):
        discretized_gaussian_pmf(np.array([1.0, 0.0]), 0.0, (0, 3))
    with pytest.raises(ValueError, match="means must be"):
        discretized_gaussian_pmf(np.array([1.0, 2.0]), np.zeros(3), (0, 3))
    with pytest.raises(ValueError, match="lo <= hi"):
        discretized_gaussian_pmf(np.array([1.0]), 0.0, (3, 0))
    with pytest.raises(ValueError, match="larger than"):
        scale_table(2.0, 1.0)
    with pytest.raises(ValueError, match="at least 2"):
        scale_table(n=1)


def test_alphabet_must_be_an_ordered_pair_of_integers():
    assert check_alphabet((-3, 4)) == (-3, 4) and check_alphabet([np.int64(0), 7]) == (0, 7)
    for bad in [(0.0, 3), (True, 3), (1, 2, 3), 5, "ab"]:
        with pytest.raises(ValueError, match="pair of integers"):
            check_alphabet(bad)
    with pytest.raises(ValueError, match="lo <= hi"):
        check_alphabet((2, 1))


def test_sampling_rejects_bad_input():
    cdfs, lengths, offsets = _small_bank()
    rng = np.random.default_rng(0)
    with pytest.raises(ValueError, match="escape_continue"):
        sample_from_tables(rng, np.zeros(3, dtype=np.int32), cdfs, lengths, offsets, escape_continue=1.0)
    with pytest.raises(ValueError, match="name a table"):
        sample_from_tables(rng, np.array([0, 4]), cdfs, lengths, offsets)
    broken = cdfs.copy()
    broken[0, 3] = broken[0, 2]
    with pytest.raises(ValueError, match="not strictly increasing"):
        sample_from_tables(rng, np.zeros(3, dtype=np.int32), broken, lengths, offsets)
