"""A bank of zero-mean discretized Gaussian tables for the range coder, kept as buffers.

The scale hyperprior (Ballé et al. 2018, "Variational image compression with a scale
hyperprior", Sec. 3 and App. 6.2) codes each symbol with the Gaussian whose scale the
hyperprior predicts. The range coder needs integer tables, so the scales are snapped to a
bank of ``n`` log-spaced scales whose 16-bit CDFs are computed once::

    scale_table(min, max, n) --log--> log_scales (n,) float64
        --discretized_gaussian_pmf over [lo, hi]--> pmf (n, A), tail (n,)
        --quantize_pmf--> cdfs (n, A + 2) int32 --RangeCoder.bits_table--> bits_table (n, A + 1) float32

    scales --index (nearest in log-scale, float64)--> indexes --+--> bits(values, indexes)
                                                                +--> coder().encode/decode

All five arrays are persistent buffers: a checkpoint carries the exact integers the decoder
needs, and loading never re-derives them from floats. ``bits`` asks the coder
(``RangeCoder.symbol_bits``), so the exact rate term of training is counted where the bytes
are made; it carries no gradient (``ScaleHyperprior`` adds that from a continuous relaxation).
"""

from __future__ import annotations

import logging
from typing import Any

import numpy as np
import torch
from torch import Tensor, nn

from mptvc_latents.coder import RangeCoder
from mptvc_latents.entropy.cdf import check_alphabet, discretized_gaussian_pmf, quantize_pmf, scale_table

logger = logging.getLogger(__name__)

__all__ = ["GaussianTableBank", "TableBank"]


class TableBank(nn.Module):
    """Integer CDF tables kept as persistent int32 buffers (``cdfs (n, width)``, ``cdf_lengths
    (n,)``, ``offsets (n,)``) and the range coder over them, built once and rebuilt whenever the
    buffers are loaded from a checkpoint (or refitted: call :meth:`tables_changed`)."""

    cdfs: Tensor
    cdf_lengths: Tensor
    offsets: Tensor

    def __init__(self) -> None:
        super().__init__()
        self._coder: RangeCoder | None = None

    def set_tables(self, cdfs: np.ndarray, cdf_lengths: np.ndarray, offsets: np.ndarray) -> None:
        """Register (or overwrite) the three table buffers."""
        for name, value in (("cdfs", cdfs), ("cdf_lengths", cdf_lengths), ("offsets", offsets)):
            if name in self._buffers:
                getattr(self, name).copy_(torch.from_numpy(value))
            else:
                self.register_buffer(name, torch.from_numpy(value))
        self.tables_changed()

    def tables_changed(self) -> None:
        self._coder = None

    def coder(self) -> RangeCoder:
        """The range coder over these tables, built once and cached until tables are loaded."""
        if self._coder is None:
            self._coder = RangeCoder(
                self.cdfs.cpu().numpy(), self.cdf_lengths.cpu().numpy(), self.offsets.cpu().numpy()
            )
        return self._coder

    def sample(self, index: np.ndarray, rng: np.random.Generator) -> np.ndarray:
        """Draw one value from table ``index[i]`` for every entry: int32 coder integers (``offset +
        symbol``), the same shape as ``index``. The escape symbol is never drawn: a sample stays
        inside the tables' alphabet (its mass is ``2**-16`` or the Gaussian tail beyond it).

        The draw is the inverse CDF of one ``rng.integers`` per entry over the integer
        frequencies, so a seeded ``rng`` reproduces the values on any machine.

        Raises:
            ValueError: when an index names no table.
        """
        index = np.asarray(index)
        n = int(self.cdfs.shape[0])
        if index.size and (not np.issubdtype(index.dtype, np.integer) or index.min() < 0 or index.max() >= n):
            raise ValueError(f"Every table index must be an integer in [0, {n - 1}], got {index.dtype} values.")
        cdfs = self.cdfs.cpu().numpy().astype(np.int64)  # (n, width): 0 .. 2**16, escape last
        lengths = self.cdf_lengths.cpu().numpy().astype(np.int64)
        rows = cdfs[index.ravel()]  # (N, width)
        # The escape occupies [cdf[len - 2], cdf[len - 1]): draw below its start.
        limit = rows[np.arange(rows.shape[0]), lengths[index.ravel()] - 2]  # (N,)
        u = rng.integers(0, limit)  # (N,) uniform in [0, limit)
        j = np.arange(1, rows.shape[1])  # (width - 1,): the ends of symbols 0 .. width - 2
        real = j[None, :] < lengths[index.ravel()][:, None] - 1  # a row's own entries, escape excluded
        symbol = ((rows[:, 1:] <= u[:, None]) & real).sum(1)  # the s with cdf[s] <= u < cdf[s + 1]
        values = symbol + self.offsets.cpu().numpy()[index.ravel()]
        return values.reshape(index.shape).astype(np.int32)

    def __getstate__(self) -> dict[str, Any]:
        # The Rust coder does not pickle (ray.put, deepcopy); it is rebuilt from the buffers.
        return {**self.__dict__, "_coder": None}

    def _load_from_state_dict(self, state_dict: dict[str, Any], prefix: str, *args: Any, **kwargs: Any) -> None:
        super()._load_from_state_dict(state_dict, prefix, *args, **kwargs)
        # The buffers now hold the checkpoint's integers; the cached coder holds the old ones.
        self._coder = None


class GaussianTableBank(TableBank):
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

    log_scales: Tensor
    bits_table: Tensor

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
        lo, hi = check_alphabet(alphabet)
        offset = lo if offset is None else offset
        if not isinstance(offset, int) or isinstance(offset, bool):
            raise ValueError(f"offset must be an integer, got {offset!r}.")
        self.alphabet = (lo, hi)
        self.tail = bool(tail)

        scales = scale_table(float(min_scale), float(max_scale), int(n))  # (n,) float64
        pmf, tail_mass = discretized_gaussian_pmf(scales, 0.0, (lo, hi))  # (n, A), (n,)
        cdfs = quantize_pmf(pmf, tail_mass if self.tail else None)  # (n, A + 2) int32
        cdf_lengths = np.full(n, cdfs.shape[1], dtype=np.int32)
        offsets = np.full(n, offset, dtype=np.int32)
        coder = RangeCoder(cdfs, cdf_lengths, offsets)
        self.register_buffer("log_scales", torch.from_numpy(np.log(scales)))
        self.register_buffer("cdfs", torch.from_numpy(cdfs))
        self.register_buffer("cdf_lengths", torch.from_numpy(cdf_lengths))
        self.register_buffer("offsets", torch.from_numpy(offsets))
        self.register_buffer("bits_table", torch.from_numpy(coder.bits_table().astype(np.float32)))  # (n, A + 1)
        self._coder = coder
        logger.debug("Built %d Gaussian tables over [%d, %d] (tail=%s).", n, lo, hi, self.tail)

    @property
    def num_tables(self) -> int:
        return int(self.log_scales.shape[0])

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
        Elias-gamma payload ``2 floor(log2(raw + 1)) + 1`` of the zig-zag overflow ``raw``
        (``docs/range_coder.md``). The coder counts them on the CPU (``RangeCoder.symbol_bits``):
        an integer cost has no gradient. Returns float64 of the broadcast shape of ``values``
        and ``index``, on the device of ``values``.

        Raises:
            ValueError: when ``values`` is not an integer tensor or an index names no table.
        """
        if values.is_floating_point() or values.is_complex():
            raise ValueError(f"values must be an integer tensor, got dtype {values.dtype}.")
        values, index = torch.broadcast_tensors(values.detach(), index.detach().to(values.device))
        bits = self.coder().symbol_bits(values.cpu().numpy(), index.cpu().numpy())
        return torch.from_numpy(bits).to(values.device)

    # ------------------------------------------------------------------ coder
