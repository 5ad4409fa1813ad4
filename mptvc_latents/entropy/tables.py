"""A bank of zero-mean discretized Gaussian tables for the range coder, kept as buffers.

The scale hyperprior (Ballé et al. 2018, "Variational image compression with a scale
hyperprior", Sec. 3 and App. 6.2) codes each symbol with the Gaussian whose scale the
hyperprior predicts. The range coder needs integer tables, so the scales are snapped to a
bank of ``n`` log-spaced scales whose 16-bit CDFs are computed once::

    scale_table(min, max, n) --log--> log_scales (n,) float64
        --discretized_gaussian_pmf over [lo, hi]--> pmf (n, A), tail (n,)
        --quantize_pmf--> cdfs (n, A + 2) int32 --diff--> bits_table (n, A + 1) float32

    scales --index (nearest in log-scale, float64)--> indexes --+--> bits(values, indexes)
                                                                +--> coder().encode/decode

All five arrays are persistent buffers: a checkpoint carries the exact integers the decoder
needs, and loading never re-derives them from floats. ``bits`` is the exact cost under these
tables (what ``RangeCoder.ideal_bits`` reports), so a rate term built on it is the coder's own.
"""

from __future__ import annotations

import hashlib
import logging
from typing import Any

import numpy as np
import torch
from torch import Tensor, nn

from mptvc_latents.coder import RangeCoder
from mptvc_latents.entropy.cdf import PRECISION, discretized_gaussian_pmf, quantize_pmf, scale_table

logger = logging.getLogger(__name__)

__all__ = ["GaussianTableBank", "floor_log2"]

_INTEGER_BUFFERS = ("cdfs", "cdf_lengths", "offsets")


def floor_log2(x: Tensor) -> Tensor:
    """Exact ``floor(log2(x))`` of a positive int64 tensor (float log2 rounds near powers of 2)."""
    x = x.to(torch.int64)
    out = torch.zeros_like(x)
    for shift in (32, 16, 8, 4, 2, 1):
        big = x >= (1 << shift)
        x = torch.where(big, x >> shift, x)
        out = out + big.to(torch.int64) * shift
    return out


class GaussianTableBank(nn.Module):
    """``n`` zero-mean discretized Gaussians over the integer alphabet ``[lo, hi]``.

    Args:
        min_scale, max_scale, n: the bank's scales, ``n`` log-spaced values from min to max.
        alphabet: inclusive integer range ``(lo, hi)`` of the values the Gaussians model.
        tail: True gives the escape symbol the Gaussian mass outside ``[lo, hi]`` (unbounded
            values such as the hyper latent ``z``); False gives it the minimal frequency 1
            and renormalises the in-range mass (bounded values such as FSQ symbols).
        offset: the integer the coder sees for the value ``lo``; defaults to ``lo`` (the coder
            sees the values themselves). FSQ symbols use ``offset=0`` so that uint8 symbol
            ``s`` stands for the value ``s + lo``.

    Buffers (persistent): ``log_scales (n,) float64``, ``cdfs (n, A + 2) int32``,
    ``cdf_lengths (n,) int32``, ``offsets (n,) int32``, ``bits_table (n, A + 1) float32``
    with ``A = hi - lo + 1`` and the escape last.
    """

    def __init__(
        self,
        min_scale: float,
        max_scale: float,
        n: int,
        alphabet: tuple[int, int],
        *,
        tail: bool,
        offset: int | None = None,
    ) -> None:
        super().__init__()
        lo, hi = self._check_alphabet(alphabet)
        size = hi - lo + 1
        if size + 1 > 1 << PRECISION:
            raise ValueError(
                f"An alphabet of {size} values plus the escape does not fit in 16-bit tables; "
                f"use an alphabet of at most {(1 << PRECISION) - 1} values."
            )
        offset = lo if offset is None else offset
        if not isinstance(offset, int) or isinstance(offset, bool):
            raise ValueError(f"offset must be an integer, got {offset!r}.")
        self.alphabet = (lo, hi)
        self.tail = bool(tail)

        scales = scale_table(float(min_scale), float(max_scale), int(n))  # (n,) float64
        pmf, tail_mass = discretized_gaussian_pmf(scales, 0.0, (lo, hi))  # (n, A), (n,)
        cdfs = quantize_pmf(pmf, tail_mass if self.tail else None)  # (n, A + 2) int32
        self.register_buffer("log_scales", torch.from_numpy(np.log(scales)))
        self.register_buffer("cdfs", torch.from_numpy(cdfs))
        self.register_buffer("cdf_lengths", torch.full((n,), size + 2, dtype=torch.int32))
        self.register_buffer("offsets", torch.full((n,), offset, dtype=torch.int32))
        self.register_buffer("bits_table", self._bits_table(self.cdfs))
        self._coder: RangeCoder | None = None
        logger.debug("Built %d Gaussian tables over [%d, %d] (tail=%s).", n, lo, hi, self.tail)

    @staticmethod
    def _bits_table(cdfs: Tensor) -> Tensor:
        freqs = torch.diff(cdfs.to(torch.float64), dim=1)  # (n, A + 2) -> (n, A + 1)
        return (PRECISION - torch.log2(freqs)).to(torch.float32)

    @staticmethod
    def _check_alphabet(alphabet: Any) -> tuple[int, int]:
        ok = (
            isinstance(alphabet, tuple)
            and len(alphabet) == 2
            and all(isinstance(v, int) and not isinstance(v, bool) for v in alphabet)
            and alphabet[0] <= alphabet[1]
        )
        if not ok:
            raise ValueError(f"alphabet must be a pair of integers (lo, hi) with lo <= hi, got {alphabet!r}.")
        return alphabet

    @property
    def num_tables(self) -> int:
        return int(self.log_scales.shape[0])

    @property
    def escape(self) -> int:
        """Column of the escape symbol in ``bits_table`` (the alphabet size ``A``)."""
        return int(self.bits_table.shape[1]) - 1

    def extra_repr(self) -> str:
        return f"n={self.num_tables}, alphabet={self.alphabet}, tail={self.tail}"

    # ------------------------------------------------------------------ indexes and bits

    def index(self, scales: Tensor) -> Tensor:
        """Nearest table in log-scale for every scale, clamped to the bank: int32, same shape.

        Computed in float64 against the midpoints of ``log_scales``, so encoder and decoder
        that feed the same float64 scales always pick the same table.
        """
        scales = torch.as_tensor(scales)
        if not bool((scales > 0).all()):
            raise ValueError("Every scale must be strictly positive and not NaN to pick a table.")
        log_s = torch.log(scales.to(device=self.log_scales.device, dtype=torch.float64))
        midpoints = 0.5 * (self.log_scales[:-1] + self.log_scales[1:])  # (n - 1,)
        return torch.bucketize(log_s, midpoints).to(torch.int32)

    def bits(self, values: Tensor, index: Tensor) -> Tensor:
        """Exact bits of coding each ``values[i]`` (coder integers) with table ``index[i]``.

        In-range values cost ``16 - log2(freq)``; the others cost the escape plus the
        Elias-gamma payload ``2 floor(log2(raw + 1)) + 1`` of the zig-zag overflow ``raw``,
        exactly as ``docs/range_coder.md`` and ``RangeCoder.ideal_bits`` count them.
        Returns float32 of the broadcast shape of ``values`` and ``index``.
        """
        if values.is_floating_point() or values.is_complex():
            raise ValueError(f"values must be an integer tensor, got dtype {values.dtype}.")
        index = index.to(device=self.cdfs.device, dtype=torch.int64)
        if index.numel() and (int(index.min()) < 0 or int(index.max()) >= self.num_tables):
            raise ValueError(f"Every table index must lie in [0, {self.num_tables}).")
        values, index = torch.broadcast_tensors(values.to(device=self.cdfs.device, dtype=torch.int64), index)
        d = values - self.offsets.to(torch.int64)[index]
        n_values = self.cdf_lengths.to(torch.int64)[index] - 2
        below, above = d < 0, d >= n_values
        coded = torch.where(below | above, n_values, d)
        table_bits = self.bits_table[index, coded]
        raw = torch.where(below, -2 * d - 1, 2 * (d - n_values))
        payload = torch.where(below | above, 2 * floor_log2(raw.clamp_min(0) + 1) + 1, 0)
        return table_bits + payload.to(table_bits.dtype)

    # ------------------------------------------------------------------ coder and identity

    def coder(self) -> RangeCoder:
        """The range coder over these tables, built once and cached until tables are loaded."""
        if self._coder is None:
            self._coder = RangeCoder(
                self.cdfs.cpu().numpy(), self.cdf_lengths.cpu().numpy(), self.offsets.cpu().numpy()
            )
        return self._coder

    def digest(self) -> str:
        """sha256 hex of the integer tables (shape, then little-endian int32 cdfs, lengths, offsets)."""
        h = hashlib.sha256()
        h.update(f"GaussianTableBank/v1:{tuple(self.cdfs.shape)}".encode())
        for name in _INTEGER_BUFFERS:
            array = getattr(self, name).detach().cpu().numpy().astype("<i4", copy=False)
            h.update(np.ascontiguousarray(array).tobytes())
        return h.hexdigest()

    def _load_from_state_dict(self, state_dict: dict[str, Any], prefix: str, *args: Any, **kwargs: Any) -> None:
        super()._load_from_state_dict(state_dict, prefix, *args, **kwargs)
        # The buffers now hold the checkpoint's integers; the cached coder holds the old ones.
        self._coder = None
