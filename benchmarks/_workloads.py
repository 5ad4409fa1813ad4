"""Synthetic symbol streams for the entropy-coder benchmark.

Each workload is a bank of 16-bit CDF tables (the coder contract of
``mptvc_latents.entropy.cdf``) plus symbols drawn *exactly* from those integer tables, so
the ideal cost under the tables is the right yardstick for every coder.

    fsq8_scales        FSQ-8 symbols (-4..3), 64 zero-mean Gaussian scale tables
    fsq10_scale_mean   FSQ-10 symbols (-5..4), 64 scales x 32 means = 2048 tables
    hyper_factorized   hyper-latent (-16..16), 192 per-channel heavy-tailed tables with
                       escapes (values outside the range) at a rate of a few 1e-4
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from mptvc_latents.entropy.cdf import discretized_gaussian_pmf, quantize_pmf, scale_table
from tests.table_sampling import sample_from_tables

FULL_SIZES = {
    "fsq8_scales": 8_000_000,
    "fsq10_scale_mean": 8_000_000,
    "hyper_factorized": 1_000_000,
}
MIN_SCALE, MAX_SCALE, N_SCALES = 0.3, 8.0, 64


@dataclass(frozen=True)
class Workload:
    """Symbols with their table indexes and the table bank (all int32)."""

    name: str
    description: str
    symbols: np.ndarray  # (n,)
    indexes: np.ndarray  # (n,)
    cdfs: np.ndarray  # (n_tables, max_len)
    cdf_lengths: np.ndarray  # (n_tables,)
    offsets: np.ndarray  # (n_tables,)

    @property
    def n_symbols(self) -> int:
        return int(self.symbols.size)

    @property
    def n_tables(self) -> int:
        return int(self.cdfs.shape[0])


def build_workloads(size_scale: float = 1.0, seed: int = 2024) -> list[Workload]:
    """All three workloads, sized ``FULL_SIZES * size_scale`` (at least 64 symbols each)."""
    if not size_scale > 0:
        raise ValueError(f"size_scale must be positive, but it is {size_scale}.")
    builders = (fsq8_scales, fsq10_scale_mean, hyper_factorized)
    workloads = []
    for k, build in enumerate(builders):
        n = max(64, round(FULL_SIZES[build.__name__] * size_scale))
        workloads.append(build(n, np.random.default_rng([seed, k])))
    return workloads


def fsq8_scales(n: int, rng: np.random.Generator) -> Workload:
    """(a) FSQ-8, zero mean, per-symbol log-uniform scale snapped to a 64-entry bank."""
    lo, hi = -4, 3
    scales = scale_table(MIN_SCALE, MAX_SCALE, N_SCALES)
    pmf, _ = discretized_gaussian_pmf(scales, 0.0, (lo, hi))
    # FSQ symbols are bounded: the escape keeps its minimal frequency 1 (tail_mass=None).
    cdfs = quantize_pmf(pmf, None)
    indexes = _nearest_scale(rng, n).astype(np.int32)
    return _finish("fsq8_scales", "FSQ-8 (-4..3), 64 scale tables", rng, indexes, cdfs, lo)


def fsq10_scale_mean(n: int, rng: np.random.Generator) -> Workload:
    """(b) FSQ-10 with means: 64 scales x 32 means in [-5, 4], 2048 tables."""
    lo, hi, n_means = -5, 4, 32
    scales = scale_table(MIN_SCALE, MAX_SCALE, N_SCALES)
    means = np.linspace(lo, hi, n_means)
    # (n_scales * n_means,) table k = scale_index * n_means + mean_index
    grid_scales, grid_means = np.repeat(scales, n_means), np.tile(means, N_SCALES)
    pmf, _ = discretized_gaussian_pmf(grid_scales, grid_means, (lo, hi))
    cdfs = quantize_pmf(pmf, None)
    mean_index = np.rint((rng.uniform(lo, hi, n) - lo) / (means[1] - means[0]))
    indexes = (_nearest_scale(rng, n) * n_means + mean_index).astype(np.int32)
    desc = "FSQ-10 (-5..4), 64 scales x 32 means = 2048 tables"
    return _finish("fsq10_scale_mean", desc, rng, indexes, cdfs, lo)


def hyper_factorized(n: int, rng: np.random.Generator, n_channels: int = 192) -> Workload:
    """(c) Factorized hyper-latent: per-channel two-component logistic mixtures.

    Channels differ like learned factorized priors do: narrow (almost always 0) to wide,
    off-centre, with a heavier second component whose mass beyond +-16.5 feeds the escape.
    Symbols are laid out channel-major, as a flattened ``(C, H, W)`` tensor.
    """
    lo, hi = -16, 16
    width = np.exp(rng.uniform(math.log(0.15), math.log(2.5), n_channels))
    loc = rng.normal(0.0, 0.4, n_channels) * width
    heavy_weight = rng.uniform(0.03, 0.25, n_channels)
    heavy_width = np.minimum(width * rng.uniform(2.0, 4.0, n_channels), 2.8)
    pmf, tail = _logistic_pmf(loc, width, (lo, hi))
    pmf_heavy, tail_heavy = _logistic_pmf(loc, heavy_width, (lo, hi))
    pmf = (1 - heavy_weight[:, None]) * pmf + heavy_weight[:, None] * pmf_heavy
    tail = (1 - heavy_weight) * tail + heavy_weight * tail_heavy
    cdfs = quantize_pmf(pmf, tail)
    indexes = np.repeat(np.arange(n_channels, dtype=np.int32), -(-n // n_channels))[:n]
    desc = "hyper-latent (-16..16), 192 channel tables, with escapes"
    return _finish("hyper_factorized", desc, rng, indexes, cdfs, lo, draw_escapes=True)


def _nearest_scale(rng: np.random.Generator, n: int) -> np.ndarray:
    """Log-uniform scales in [MIN_SCALE, MAX_SCALE] mapped to the nearest bank index."""
    log_s = rng.uniform(math.log(MIN_SCALE), math.log(MAX_SCALE), n)
    step = (math.log(MAX_SCALE) - math.log(MIN_SCALE)) / (N_SCALES - 1)
    return np.rint((log_s - math.log(MIN_SCALE)) / step).astype(np.int64)


def _logistic_pmf(loc, width, alphabet):
    """Discretized logistic pmf on integers in ``alphabet`` and the mass outside it."""
    lo, hi = alphabet
    edges = np.arange(lo, hi + 2) - 0.5
    z = (edges[None, :] - loc[:, None]) / width[:, None]
    lower = 0.5 * (1 + np.tanh(z / 2))  # sigmoid(z), tails kept apart below
    upper = 0.5 * (1 + np.tanh(-z / 2))
    centres = 0.5 * (z[:, 1:] + z[:, :-1])
    pmf = np.where(centres >= 0, upper[:, :-1] - upper[:, 1:], lower[:, 1:] - lower[:, :-1])
    return np.maximum(pmf, 0.0), lower[:, 0] + upper[:, -1]


def _finish(name, description, rng, indexes, cdfs, lo, draw_escapes=False) -> Workload:
    n_tables, length = cdfs.shape
    cdf_lengths = np.full(n_tables, length, dtype=np.int32)
    offsets = np.full(n_tables, lo, dtype=np.int32)
    symbols = sample_from_tables(
        rng, indexes, cdfs, cdf_lengths, offsets, draw_escapes=draw_escapes, escape_continue=0.7
    )
    return Workload(name, description, symbols, indexes, cdfs, cdf_lengths, offsets)
