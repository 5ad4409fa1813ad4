"""Adapters that give each entropy coder the same interface for the benchmark.

Each adapter is built from a :class:`~benchmarks._workloads.Workload` (table setup, timed
apart) and splits a round trip into the coder call and the Python conversions around it::

    encode_inputs(w) -> x          numpy -> the coder's input form     (Python API only)
    encode(x) -> payload           the coder call                      (core)
    decode_inputs(w) -> y          numpy -> the coder's input form     (Python API only)
    decode(payload, y) -> raw      the coder call                      (core)
    decode_outputs(raw, w) -> int32 array                              (Python API only)
    n_bytes(payload)

Adapters with ``multithreaded = True`` also offer ``encode_parallel`` / ``decode_parallel``
over independent streams. A coder that is not installed raises ImportError when built.
"""

from __future__ import annotations

import functools
import glob
import importlib.util
import os

import numpy as np

from benchmarks._workloads import Workload


class OursAdapter:
    name = "ours"
    multithreaded = True

    def __init__(self, w: Workload):
        from mptvc_latents import _coder

        self.tables = _coder.CdfTables(w.cdfs, w.cdf_lengths, w.offsets)

    def encode_inputs(self, w):
        return w.symbols, w.indexes

    def encode(self, x):
        return self.tables.encode(*x)

    def decode_inputs(self, w):
        return w.indexes

    def decode(self, payload, indexes):
        return self.tables.decode(payload, indexes)

    def decode_outputs(self, raw, w):
        return raw

    def n_bytes(self, payload):
        return len(payload)

    def encode_parallel(self, w, sizes, threads):
        return self.tables.encode_streams(w.symbols, w.indexes, sizes, num_threads=threads)

    def decode_parallel(self, streams, w, sizes, threads):
        return self.tables.decode_streams(streams, w.indexes, sizes, num_threads=threads)


class CompressaiAdapter:
    """CompressAI's C++ rANS (16-bit, 4-bit bypass chunks for escapes); Python lists in."""

    name = "compressai"
    multithreaded = False

    def __init__(self, w: Workload):
        self.ans = load_compressai_ans()
        self.tables = (
            [row[:n].tolist() for row, n in zip(w.cdfs, w.cdf_lengths, strict=True)],
            w.cdf_lengths.tolist(),
            w.offsets.tolist(),
        )

    def encode_inputs(self, w):
        return w.symbols.tolist(), w.indexes.tolist()

    def encode(self, x):
        return self.ans.RansEncoder().encode_with_indexes(*x, *self.tables)

    def decode_inputs(self, w):
        return w.indexes.tolist()

    def decode(self, payload, indexes):
        return self.ans.RansDecoder().decode_with_indexes(payload, indexes, *self.tables)

    def decode_outputs(self, raw, w):
        return np.asarray(raw, dtype=np.int32)

    def n_bytes(self, payload):
        return len(payload)


class ConstrictionAdapter:
    """constriction's AnsCoder with a batched ``Categorical(perfect=False)`` model family.

    Probabilities are the integer table frequencies / 2**16, one row per symbol. The
    escape payload (not modelled by constriction) is coded on the same stack as
    ``nb = floor(log2(raw + 1))`` with P(nb) = 2**-(nb + 1) followed by nb uniform bits,
    i.e. at the cost of an Elias-gamma code.
    """

    name = "constriction"
    multithreaded = False
    _MAX_NB = 34

    def __init__(self, w: Workload):
        import constriction

        self.stream = constriction.stream
        self.family = constriction.stream.model.Categorical(perfect=False)
        self.bit = constriction.stream.model.Uniform(2)
        nb_probs = 0.5 ** np.arange(1, self._MAX_NB + 1)
        self.nb_model = constriction.stream.model.Categorical(nb_probs, perfect=False)
        freqs = np.diff(w.cdfs.astype(np.int64), axis=1)
        # Padding beyond a table's length is garbage: give it probability 0.
        freqs[np.arange(freqs.shape[1])[None, :] >= (w.cdf_lengths - 1)[:, None]] = 0
        self.probs = (freqs / 2.0**16).astype(np.float32)  # exact: freq <= 2**16
        self.n_values = (w.cdf_lengths - 2).astype(np.int64)

    def encode_inputs(self, w):
        d = w.symbols.astype(np.int64) - w.offsets[w.indexes]
        n_values = self.n_values[w.indexes]
        outside = (d < 0) | (d >= n_values)
        coded = np.where(outside, n_values, d).astype(np.int32)
        d_out, n_out = d[outside], n_values[outside]
        raw = np.where(d_out < 0, -2 * d_out - 1, 2 * (d_out - n_out))
        nb, bits = gamma_split(raw + 1)
        return coded, self.probs[w.indexes], nb.astype(np.int32), bits.astype(np.int32)

    def encode(self, x):
        coded, probs, nb, bits = x
        coder = self.stream.stack.AnsCoder()
        if nb.size:  # decoded last, so encoded first (stack)
            coder.encode_reverse(bits, self.bit)
            coder.encode_reverse(nb, self.nb_model)
        coder.encode_reverse(coded, self.family, probs)
        return coder.get_compressed()

    def decode_inputs(self, w):
        return self.probs[w.indexes], self.n_values[w.indexes]

    def decode(self, payload, y):
        probs, n_values = y
        coder = self.stream.stack.AnsCoder(payload)
        coded = coder.decode(self.family, probs)
        n_escapes = int(np.count_nonzero(coded == n_values))
        nb = bits = np.zeros(0, dtype=np.int32)
        if n_escapes:
            nb = coder.decode(self.nb_model, n_escapes)
            bits = coder.decode(self.bit, int(nb.sum()))
        return coded, nb, bits

    def decode_outputs(self, raw, w):
        coded, nb, bits = raw
        values = coded.astype(np.int64)
        n_values = self.n_values[w.indexes]
        escaped = values == n_values
        if nb.size:
            r = gamma_join(nb, bits) - 1
            values[escaped] = np.where(r % 2 == 1, -(r + 1) // 2, r // 2 + n_values[escaped])
        return (values + w.offsets[w.indexes]).astype(np.int32)

    def n_bytes(self, payload):
        return int(payload.nbytes)


def gamma_split(m: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """For m >= 1: nb = floor(log2 m) and the nb bits of m below its leading 1, MSB first."""
    nb = np.zeros(m.shape, dtype=np.int64)
    while np.any(m >> (nb + 1)):
        nb += (m >> (nb + 1)) > 0
    owner = np.repeat(np.arange(m.size), nb)
    pos = np.arange(owner.size) - np.repeat(np.cumsum(nb) - nb, nb)  # 0 = MSB below leading 1
    bits = (m[owner] >> (nb[owner] - 1 - pos)) & 1
    return nb, bits


def gamma_join(nb: np.ndarray, bits: np.ndarray) -> np.ndarray:
    nb = nb.astype(np.int64)
    owner = np.repeat(np.arange(nb.size), nb)
    pos = np.arange(owner.size) - np.repeat(np.cumsum(nb) - nb, nb)
    m = np.int64(1) << nb
    np.add.at(m, owner, bits.astype(np.int64) << (nb[owner] - 1 - pos))
    return m


ADAPTERS = {
    "ours": OursAdapter,
    "constriction": ConstrictionAdapter,
    "compressai": CompressaiAdapter,
}


@functools.cache
def load_compressai_ans():
    """CompressAI's compiled rANS module, without importing the whole (torch-heavy) package."""
    try:
        import compressai.ans as ans

        return ans
    except ImportError:
        spec = importlib.util.find_spec("compressai")
        if spec is None or not spec.submodule_search_locations:
            raise
    for folder in spec.submodule_search_locations:
        for path in glob.glob(os.path.join(folder, "ans*.so")):
            mod_spec = importlib.util.spec_from_file_location("compressai.ans", path)
            module = importlib.util.module_from_spec(mod_spec)
            mod_spec.loader.exec_module(module)
            return module
    raise ImportError("compressai is installed but its compiled 'ans' extension was not found.")
