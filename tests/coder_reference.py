"""A slow, independent Python model of the rANS stream format (docs/range_coder.md).

It uses exact integer division instead of the Rust coder's reciprocals and plain
loops instead of the unrolled interleaving, so byte equality between the two is a
real check of the format. It writes the golden fixtures that `cargo test` and
pytest both read.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

PRECISION = 16
TOTAL = 1 << PRECISION
N_STATES = 4
RANS_L = 1 << 31


def _table(cdfs, cdf_lengths, offsets, t):
    n = cdf_lengths[t]
    return list(cdfs[t][:n]), n - 2, offsets[t]


def _zigzag(v: int, max_value: int) -> int:
    return -2 * v - 1 if v < 0 else 2 * (v - max_value)


def _unzigzag(raw: int, max_value: int) -> int:
    return -((raw + 1) // 2) if raw & 1 else raw // 2 + max_value


def _gamma_bits(raw: int) -> str:
    value = raw + 1
    body = bin(value)[2:]
    return "0" * (len(body) - 1) + body


def _leb128(v: int) -> bytes:
    out = bytearray()
    while True:
        byte, v = v & 0x7F, v >> 7
        if v == 0:
            out.append(byte)
            return bytes(out)
        out.append(byte | 0x80)


def encode(symbols: Sequence[int], indexes: Sequence[int], cdfs, cdf_lengths, offsets) -> bytes:
    """Encode one stream exactly as `mptvc_latents._coder.encode_with_indexes`."""
    coded = []  # (start, freq) per symbol
    bits = []
    for sym, t in zip(symbols, indexes, strict=True):
        cdf, max_value, offset = _table(cdfs, cdf_lengths, offsets, t)
        v = sym - offset
        if 0 <= v < max_value:
            s = v
        else:
            s = max_value
            bits.append(_gamma_bits(_zigzag(v, max_value)))
        coded.append((cdf[s], cdf[s + 1] - cdf[s]))
    states = [RANS_L] * N_STATES
    words = []  # encoder order
    for i in reversed(range(len(coded))):
        start, freq = coded[i]
        j = i % N_STATES
        x = states[j]
        if x >= freq << (63 - PRECISION):
            words.append(x & 0xFFFFFFFF)
            x >>= 32
        states[j] = (x // freq) * TOTAL + x % freq + start
    for x in reversed(states):
        words.append(x >> 32)
        words.append(x & 0xFFFFFFFF)
    words.reverse()
    bitstring = "".join(bits)
    bitstring += "0" * (-len(bitstring) % 8)
    payload = bytes(int(bitstring[k : k + 8], 2) for k in range(0, len(bitstring), 8))
    return _leb128(len(payload)) + payload + b"".join(w.to_bytes(4, "little") for w in words)


def decode(data: bytes, indexes: Sequence[int], cdfs, cdf_lengths, offsets) -> list[int]:
    """Decode one stream; raises ValueError on any inconsistency."""
    n_esc, pos = 0, 0
    for k in range(10):
        if pos >= len(data):
            raise ValueError("truncated header")
        byte = data[pos]
        pos += 1
        n_esc |= (byte & 0x7F) << (7 * k)
        if not byte & 0x80:
            break
    payload, rest = data[pos : pos + n_esc], data[pos + n_esc :]
    if len(payload) != n_esc or len(rest) % 4:
        raise ValueError("bad layout")
    words = [int.from_bytes(rest[k : k + 4], "little") for k in range(0, len(rest), 4)]
    bitstring = "".join(f"{b:08b}" for b in payload)
    wpos, bpos = 2 * N_STATES, 0
    if len(words) < wpos:
        raise ValueError("truncated states")
    states = [words[2 * j] | words[2 * j + 1] << 32 for j in range(N_STATES)]
    out = []
    for i, t in enumerate(indexes):
        cdf, max_value, offset = _table(cdfs, cdf_lengths, offsets, t)
        j = i % N_STATES
        x = states[j]
        slot = x & (TOTAL - 1)
        s = max(k for k in range(len(cdf) - 1) if cdf[k] <= slot)
        x = (cdf[s + 1] - cdf[s]) * (x >> PRECISION) + slot - cdf[s]
        if x < RANS_L:
            if wpos >= len(words):
                raise ValueError("truncated words")
            x = (x << 32) | words[wpos]
            wpos += 1
        states[j] = x
        if s < max_value:
            out.append(s + offset)
            continue
        zeros = 0
        while bitstring[bpos] == "0":
            zeros, bpos = zeros + 1, bpos + 1
        raw = int(bitstring[bpos : bpos + zeros + 1], 2) - 1
        bpos += zeros + 1
        out.append(_unzigzag(raw, max_value) + offset)
    if states != [RANS_L] * N_STATES or wpos != len(words) or math.ceil(bpos / 8) != len(payload):
        raise ValueError("inconsistent end state")
    return out


def value_bits(sym: int, t: int, cdfs, cdf_lengths, offsets) -> tuple[float, int]:
    """Cost of one value under table ``t``: -log2 of its integer probability, and the
    Elias-gamma payload bits (0 when it is in range)."""
    cdf, max_value, offset = _table(cdfs, cdf_lengths, offsets, t)
    v = sym - offset
    if 0 <= v < max_value:
        return PRECISION - math.log2(cdf[v + 1] - cdf[v]), 0
    escape = PRECISION - math.log2(cdf[max_value + 1] - cdf[max_value])
    return escape, len(_gamma_bits(_zigzag(v, max_value)))


def ideal_bits(symbols, indexes, cdfs, cdf_lengths, offsets) -> float:
    """-log2 of the integer probabilities plus Elias-gamma payload bits."""
    return sum(sum(value_bits(sym, t, cdfs, cdf_lengths, offsets)) for sym, t in zip(symbols, indexes, strict=True))
