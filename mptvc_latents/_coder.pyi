"""Type stubs of the Rust extension `mptvc_latents._coder` (crate `coder_ext/`)."""

from collections.abc import Sequence

import numpy as np
import numpy.typing as npt

PRECISION: int
N_STATES: int
STREAM_VERSION: int

class CdfTables:
    """A validated bank of 16-bit CDF tables (CompressAI contract).

    ``cdfs`` is ``(n_tables, max_len)`` int32; row ``t`` holds ``cdf_lengths[t]`` entries
    rising strictly from 0 to 65536; the last symbol of each table is the escape.
    """

    def __init__(
        self,
        cdfs: npt.NDArray[np.int32],
        cdf_lengths: npt.NDArray[np.int32],
        offsets: npt.NDArray[np.int32],
    ) -> None: ...
    def __len__(self) -> int: ...
    def encode(self, symbols: npt.NDArray[np.int32], indexes: npt.NDArray[np.int32]) -> bytes: ...
    def decode(self, data: bytes | bytearray, indexes: npt.NDArray[np.int32]) -> npt.NDArray[np.int32]: ...
    def encode_streams(
        self,
        symbols: npt.NDArray[np.int32],
        indexes: npt.NDArray[np.int32],
        stream_sizes: Sequence[int],
        num_threads: int = 0,
    ) -> list[bytes]: ...
    def decode_streams(
        self,
        streams: Sequence[bytes | bytearray],
        indexes: npt.NDArray[np.int32],
        stream_sizes: Sequence[int],
        num_threads: int = 0,
    ) -> npt.NDArray[np.int32]: ...
    def ideal_bits(self, symbols: npt.NDArray[np.int32], indexes: npt.NDArray[np.int32]) -> float: ...
    def ideal_cost(self, symbols: npt.NDArray[np.int32], indexes: npt.NDArray[np.int32]) -> tuple[float, int, int]: ...
    def symbol_bits(
        self, symbols: npt.NDArray[np.int32], indexes: npt.NDArray[np.int32]
    ) -> npt.NDArray[np.float64]: ...
    def bits_table(self) -> npt.NDArray[np.float64]: ...

class StreamDecoder:
    """Decode one stream made by ``CdfTables.encode`` symbol by symbol (adaptive tables).

    Symbol ``i`` is decoded with the table the caller passes for it, so the table may
    depend on symbols ``< i``. The stream format is unchanged. A failed ``decode``
    consumes nothing; ``finish`` checks that the stream ended with the last symbol.
    """

    def __init__(self, data: bytes | bytearray) -> None: ...
    def decode(self, tables: CdfTables, index: int) -> int: ...
    def decode_many(self, tables: CdfTables, indexes: npt.NDArray[np.int32]) -> npt.NDArray[np.int32]: ...
    @property
    def position(self) -> int: ...
    def finish(self) -> None: ...

def encode_with_indexes(
    symbols: npt.NDArray[np.int32],
    indexes: npt.NDArray[np.int32],
    cdfs: npt.NDArray[np.int32],
    cdf_lengths: npt.NDArray[np.int32],
    offsets: npt.NDArray[np.int32],
) -> bytes: ...
def decode_with_indexes(
    data: bytes | bytearray,
    indexes: npt.NDArray[np.int32],
    cdfs: npt.NDArray[np.int32],
    cdf_lengths: npt.NDArray[np.int32],
    offsets: npt.NDArray[np.int32],
) -> npt.NDArray[np.int32]: ...
def crc32(data: bytes | bytearray) -> int: ...
