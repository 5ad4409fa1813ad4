"""The range coder: interleaved rANS over a bank of 16-bit integer CDF tables.

A thin, typed front for the Rust extension `mptvc_latents._coder` (crate `coder_ext/`).
The contract is CompressAI's `encode_with_indexes` (Ballé et al. 2018 entropy models):
symbol ``i`` is coded with table ``indexes[i]``; a table's last symbol is the escape for
values outside ``offset .. offset + cdf_length - 3``. The stream layout is specified in
``docs/range_coder.md``. Coding releases the GIL; many streams can be coded in parallel
and the bytes never depend on the number of threads.

Example::

    coder = RangeCoder(cdfs, cdf_lengths, offsets)
    data = coder.encode(symbols, indexes)
    assert (coder.decode(data, indexes) == symbols).all()

The same tables count ideal code lengths (``ideal_bits``, ``ideal_cost``, ``symbol_bits``,
``bits_table``): the yardstick of the coder's overhead and the exact rate term of training.
Constructing a :class:`RangeCoder` is the check of the table contract.

An autoregressive prior, whose table for symbol ``i`` depends on symbols ``< i``, encodes
with one table per symbol and decodes the same bytes step by step::

    dec = StreamDecoder(data)
    for i in range(n):
        symbols[i] = dec.decode(coder_for(symbols[:i]), index=0)
    dec.finish()
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import NamedTuple

import numpy as np
import numpy.typing as npt

from mptvc_latents import _coder

PRECISION: int = _coder.PRECISION
crc32 = _coder.crc32

__all__ = ["PRECISION", "IdealCost", "RangeCoder", "StreamDecoder", "as_int32", "crc32"]


def as_int32(name: str, values: npt.ArrayLike) -> np.ndarray:
    """Return ``values`` as a contiguous int32 array, refusing silent wrap-around.

    Raises:
        ValueError: when the values are not integers or do not fit in 32 bits.
    """
    a = np.asarray(values)
    if a.dtype == np.int32:
        return np.ascontiguousarray(a)
    if a.size == 0:
        return np.ascontiguousarray(a, dtype=np.int32)
    if a.dtype.kind not in "iub":
        raise ValueError(f"The array '{name}' must hold integers, but its dtype is {a.dtype}.")
    lo, hi = int(a.min()), int(a.max())
    if lo < -(2**31) or hi >= 2**31:
        raise ValueError(f"The array '{name}' holds values in [{lo}, {hi}], which do not fit in 32-bit integers.")
    return np.ascontiguousarray(a, dtype=np.int32)


class IdealCost(NamedTuple):
    """Ideal cost of a run of values under integer tables.

    Attributes:
        table_bits: ``16 - log2(freq)`` summed over the coded table symbols, the escape's own
            frequency included for out-of-range values.
        n_escapes: how many values fell outside their table's range.
        escape_bits: the Elias-gamma payload bits of those values (``docs/range_coder.md``).
    """

    table_bits: float
    n_escapes: int
    escape_bits: int

    @property
    def total_bits(self) -> float:
        """Table bits plus escape payload bits: what ``RangeCoder.ideal_bits`` returns."""
        return self.table_bits + self.escape_bits


class RangeCoder:
    """Encode and decode integer symbols with a validated bank of CDF tables.

    Args:
        cdfs: ``(n_tables, max_len)`` integer CDFs, row ``t`` valid up to ``cdf_lengths[t]``,
            each rising strictly from 0 to ``2**16``; the last symbol is the escape.
        cdf_lengths: ``(n_tables,)`` number of valid entries of each row.
        offsets: ``(n_tables,)`` value coded by symbol 0 of each table.

    Raises:
        ValueError: when a table breaks the contract (the message names the table).
    """

    def __init__(self, cdfs: npt.ArrayLike, cdf_lengths: npt.ArrayLike, offsets: npt.ArrayLike) -> None:
        cdfs = as_int32("cdfs", cdfs)
        if cdfs.ndim != 2:
            raise ValueError(f"The array 'cdfs' must be 2-D (n_tables, max_len), but it has shape {cdfs.shape}.")
        self._tables = _coder.CdfTables(cdfs, as_int32("cdf_lengths", cdf_lengths), as_int32("offsets", offsets))

    def __len__(self) -> int:
        return len(self._tables)

    def __repr__(self) -> str:
        return f"RangeCoder(n_tables={len(self)}, precision={PRECISION})"

    def encode(self, symbols: npt.ArrayLike, indexes: npt.ArrayLike) -> bytes:
        """Encode ``symbols[i]`` with table ``indexes[i]`` (any shape, C order) into one stream."""
        return self._tables.encode(as_int32("symbols", symbols), as_int32("indexes", indexes))

    def decode(self, data: bytes | bytearray, indexes: npt.ArrayLike) -> np.ndarray:
        """Decode one stream; the result has the shape of ``indexes``.

        Raises:
            ValueError: when the bytes are truncated, damaged or belong to other tables.
        """
        ix = as_int32("indexes", indexes)
        return self._tables.decode(data, ix).reshape(ix.shape)

    def encode_streams(
        self,
        symbols: npt.ArrayLike,
        indexes: npt.ArrayLike,
        stream_sizes: Sequence[int],
        num_threads: int = 0,
    ) -> list[bytes]:
        """Encode consecutive runs of ``stream_sizes[k]`` symbols as independent streams in parallel.

        ``num_threads=0`` uses every core; the bytes are the same for any thread count.
        """
        return self._tables.encode_streams(
            as_int32("symbols", symbols), as_int32("indexes", indexes), [int(s) for s in stream_sizes], num_threads
        )

    def decode_streams(
        self,
        streams: Sequence[bytes | bytearray],
        indexes: npt.ArrayLike,
        stream_sizes: Sequence[int],
        num_threads: int = 0,
    ) -> np.ndarray:
        """Decode streams made by :meth:`encode_streams`; the result has the shape of ``indexes``."""
        ix = as_int32("indexes", indexes)
        out = self._tables.decode_streams(list(streams), ix, [int(s) for s in stream_sizes], num_threads)
        return out.reshape(ix.shape)

    def ideal_bits(self, symbols: npt.ArrayLike, indexes: npt.ArrayLike) -> float:
        """Ideal cost in bits under these integer tables, escape payload bits included."""
        return self._tables.ideal_bits(as_int32("symbols", symbols), as_int32("indexes", indexes))

    def ideal_cost(self, symbols: npt.ArrayLike, indexes: npt.ArrayLike) -> IdealCost:
        """:meth:`ideal_bits` split into table bits, the number of escapes and their payload bits."""
        return IdealCost(*self._tables.ideal_cost(as_int32("symbols", symbols), as_int32("indexes", indexes)))

    def symbol_bits(self, symbols: npt.ArrayLike, indexes: npt.ArrayLike) -> np.ndarray:
        """Ideal cost in bits of each value on its own (escape payload included): float64 of the
        shape of ``indexes``."""
        ix = as_int32("indexes", indexes)
        return self._tables.symbol_bits(as_int32("symbols", symbols), ix).reshape(ix.shape)

    def bits_table(self) -> np.ndarray:
        """``(n_tables, n_symbols)`` float64 bits of every table symbol, the escape last (without
        its payload); ``inf`` past the escape of a table shorter than the longest."""
        return self._tables.bits_table()


class StreamDecoder:
    """Decode one stream made by :meth:`RangeCoder.encode` symbol by symbol (adaptive tables).

    Symbol ``i`` is decoded with the tables the caller passes for it, so they may depend
    on the symbols before it; the bytes are those of :meth:`RangeCoder.encode` (the format
    is unchanged). A failed :meth:`decode` consumes nothing.

    Args:
        data: one stream.

    Raises:
        ValueError: when the header or the initial states are truncated or damaged.
    """

    def __init__(self, data: bytes | bytearray) -> None:
        self._decoder = _coder.StreamDecoder(data)

    def __repr__(self) -> str:
        return f"StreamDecoder(position={self.position})"

    @property
    def position(self) -> int:
        """Number of symbols decoded so far (the position of the next one)."""
        return self._decoder.position

    def decode(self, coder: RangeCoder | _coder.CdfTables, index: int = 0) -> int:
        """Decode the next symbol with table ``index`` of ``coder``'s bank.

        Raises:
            ValueError: when the index is out of range or the stream ran out or is damaged.
        """
        tables = coder._tables if isinstance(coder, RangeCoder) else coder
        return self._decoder.decode(tables, int(index))

    def decode_many(self, coder: RangeCoder | _coder.CdfTables, indexes: npt.ArrayLike) -> np.ndarray:
        """Decode the next ``len(indexes)`` symbols, symbol ``i`` with table ``indexes[i]``: int32
        of the shape of ``indexes``. For tables that depend on earlier batches (a frame at a time).

        Raises:
            ValueError: when an index is out of range or the stream ran out or is damaged; nothing
                of the batch is consumed then.
        """
        tables = coder._tables if isinstance(coder, RangeCoder) else coder
        ix = as_int32("indexes", indexes)
        return self._decoder.decode_many(tables, ix).reshape(ix.shape)

    def finish(self) -> None:
        """Check that the stream ended with the last decoded symbol.

        Raises:
            ValueError: when symbols, words or escape bytes are left, i.e. too few symbols
                were decoded or the stream is damaged.
        """
        self._decoder.finish()
