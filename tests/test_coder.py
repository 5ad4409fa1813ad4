"""The Python surface of the range coder: exact bytes, round trips, errors, robustness."""

import json
from pathlib import Path

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from mptvc_latents import _coder
from mptvc_latents.coder import RangeCoder, StreamDecoder, as_int32, crc32
from tests import coder_reference as ref

GOLDEN = json.loads((Path(__file__).parent / "fixtures" / "coder" / "golden.json").read_text())["cases"]


def _coder_of(case):
    return RangeCoder(np.array(case["cdfs"]), case["cdf_lengths"], case["offsets"])


@pytest.mark.parametrize("case", GOLDEN, ids=[c["name"] for c in GOLDEN])
def test_golden_bytes(case):
    coder = _coder_of(case)
    data = coder.encode(case["symbols"], case["indexes"])
    assert data.hex() == case["encoded_hex"]
    assert coder.decode(data, case["indexes"]).tolist() == case["symbols"]
    assert coder.ideal_bits(case["symbols"], case["indexes"]) == pytest.approx(case["ideal_bits"], rel=1e-12)
    # The CompressAI-style functions give the same bytes.
    args = (as_int32("c", case["cdfs"]), as_int32("l", case["cdf_lengths"]), as_int32("o", case["offsets"]))
    assert _coder.encode_with_indexes(as_int32("s", case["symbols"]), as_int32("i", case["indexes"]), *args) == data


@pytest.mark.parametrize("case", GOLDEN, ids=[c["name"] for c in GOLDEN])
def test_reference_reproduces_golden(case):
    args = (case["cdfs"], case["cdf_lengths"], case["offsets"])
    data = ref.encode(case["symbols"], case["indexes"], *args)
    assert data.hex() == case["encoded_hex"]
    assert ref.decode(data, case["indexes"], *args) == case["symbols"]


@pytest.mark.parametrize("case", GOLDEN, ids=[c["name"] for c in GOLDEN])
def test_golden_streams_decode_step_by_step(case):
    coder = _coder_of(case)
    dec = _coder.StreamDecoder(bytes.fromhex(case["encoded_hex"]))
    assert [dec.decode(coder._tables, i) for i in case["indexes"]] == case["symbols"]
    assert dec.position == len(case["symbols"])
    dec.finish()


@st.composite
def banks(draw):
    n_tables = draw(st.integers(1, 5))
    cdfs, offsets = [], []
    for _ in range(n_tables):
        n_sym = draw(st.integers(2, 24))
        cuts = draw(st.lists(st.integers(1, 65535), min_size=n_sym - 1, max_size=n_sym - 1, unique=True))
        cdfs.append([0, *sorted(cuts), 65536])
        offsets.append(draw(st.integers(-10, 10)))
    width = max(map(len, cdfs))
    lengths = [len(c) for c in cdfs]
    cdfs = [c + [0] * (width - len(c)) for c in cdfs]
    n = draw(st.integers(0, 300))
    indexes = draw(st.lists(st.integers(0, n_tables - 1), min_size=n, max_size=n))
    symbols = draw(st.lists(st.integers(-40, 60), min_size=n, max_size=n))
    return cdfs, lengths, offsets, symbols, indexes


@settings(max_examples=60, deadline=None)
@given(banks())
def test_round_trip_matches_reference(bank):
    cdfs, lengths, offsets, symbols, indexes = bank
    coder = RangeCoder(np.array(cdfs), lengths, offsets)
    data = coder.encode(symbols, indexes)
    assert data == ref.encode(symbols, indexes, cdfs, lengths, offsets)
    assert coder.decode(data, indexes).tolist() == symbols


@settings(max_examples=40, deadline=None)
@given(banks())
def test_step_decoder_with_a_table_per_symbol(bank):
    cdfs, lengths, offsets, symbols, indexes = bank
    # One table per symbol (indexes 0..n-1), as an autoregressive prior codes.
    picked = indexes or [0]
    rows = [cdfs[t] for t in picked]
    row_lengths, row_offsets = [lengths[t] for t in picked], [offsets[t] for t in picked]
    coder = RangeCoder(np.array(rows), row_lengths, row_offsets)
    per_symbol = list(range(len(symbols)))
    data = coder.encode(symbols, per_symbol)
    assert data == ref.encode(symbols, per_symbol, rows, row_lengths, row_offsets)
    dec = StreamDecoder(data)
    assert [dec.decode(coder, i) for i in per_symbol] == symbols
    assert dec.position == len(symbols)
    dec.finish()


@settings(max_examples=40, deadline=None)
@given(banks())
def test_step_decoder_with_tables_chosen_by_the_previous_symbol(bank):
    cdfs, lengths, offsets, symbols, _ = bank
    coder = RangeCoder(np.array(cdfs), lengths, offsets)
    choose = lambda previous: previous % len(cdfs)  # noqa: E731
    indexes = [choose(p) for p in [0, *symbols[:-1]]][: len(symbols)]
    data = coder.encode(symbols, indexes)
    dec, out = StreamDecoder(data), []
    for _ in symbols:
        out.append(dec.decode(coder, choose(out[-1] if out else 0)))
    assert out == symbols
    dec.finish()


@settings(max_examples=60, deadline=None)
@given(banks())
def test_ideal_costs_match_reference(bank):
    cdfs, lengths, offsets, symbols, indexes = bank
    coder = RangeCoder(np.array(cdfs), lengths, offsets)
    costs = [ref.value_bits(v, t, cdfs, lengths, offsets) for v, t in zip(symbols, indexes, strict=True)]
    per_value = coder.symbol_bits(symbols, indexes)
    assert per_value.dtype == np.float64 and per_value.shape == (len(symbols),)
    np.testing.assert_allclose(per_value, [bits + payload for bits, payload in costs], rtol=1e-12, atol=1e-12)
    cost = coder.ideal_cost(symbols, indexes)
    assert cost.table_bits == pytest.approx(sum(bits for bits, _ in costs), rel=1e-12, abs=1e-9)
    assert cost.n_escapes == sum(payload > 0 for _, payload in costs)
    assert cost.escape_bits == sum(payload for _, payload in costs)
    assert coder.ideal_bits(symbols, indexes) == pytest.approx(cost.total_bits, rel=1e-12, abs=1e-9)
    table = coder.bits_table()
    assert table.shape == (len(cdfs), max(lengths) - 1)
    for t, row in enumerate(cdfs):
        n_sym = lengths[t] - 1
        np.testing.assert_allclose(table[t, :n_sym], 16 - np.log2(np.diff(row[: n_sym + 1])), rtol=1e-12)
        assert np.all(np.isinf(table[t, n_sym:]))


def test_symbol_bits_keep_the_shape_and_count_escape_payloads():
    coder = RangeCoder(np.array([[0, 16384, 65535, 65536]]), [4], [-1])
    values = np.array([[-1, 0], [1, -3]])  # in range, in range, escape (raw 0), escape (raw 3)
    bits = coder.symbol_bits(values, np.zeros_like(values))
    np.testing.assert_allclose(bits, [[2.0, 16 - np.log2(49151)], [16.0 + 1, 16.0 + 5]], rtol=1e-12)
    assert coder.ideal_cost(values, np.zeros_like(values)) == (pytest.approx(bits.sum() - 6), 2, 6)


def test_step_decoder_errors_are_value_errors_with_sentences():
    coder = _fsq_bank()
    rng = np.random.default_rng(5)
    indexes = rng.integers(0, 8, size=60)
    symbols = rng.integers(-2, 10, size=60)  # some escapes
    data = coder.encode(symbols, indexes)
    for cut in range(len(data)):
        with pytest.raises(ValueError, match=r"(truncated|corrupt)") as info:
            dec = StreamDecoder(data[:cut])
            for i in indexes:
                dec.decode(coder, i)
            dec.finish()
        assert str(info.value).endswith(".")
    dec = StreamDecoder(data)
    with pytest.raises(ValueError, match="table index 8 at position 0 is out of range"):
        dec.decode(coder, 8)
    with pytest.raises(ValueError, match="table index 1099511627776 at position 0 is out of range"):
        dec.decode(coder, 2**40)
    assert dec.position == 0  # a failed decode consumes nothing
    assert [dec.decode(coder, i) for i in indexes[:-1]] == symbols[:-1].tolist()
    with pytest.raises(ValueError, match="corrupt"):
        dec.finish()  # one symbol short
    assert dec.decode(coder, indexes[-1]) == symbols[-1]
    dec.finish()
    with pytest.raises(ValueError, match="truncated"):
        dec.decode(coder, 0)  # one symbol too many
    with pytest.raises(TypeError):
        _coder.StreamDecoder(data).decode(coder, 0)  # the raw class takes CdfTables


@settings(max_examples=30, deadline=None)
@given(banks(), st.integers(1, 6))
def test_streams_deterministic_across_threads(bank, n_streams):
    cdfs, lengths, offsets, symbols, indexes = bank
    coder = RangeCoder(np.array(cdfs), lengths, offsets)
    n = len(symbols)
    sizes = [n // n_streams] * (n_streams - 1)
    sizes.append(n - sum(sizes))
    one = coder.encode_streams(symbols, indexes, sizes, num_threads=1)
    assert one == coder.encode_streams(symbols, indexes, sizes, num_threads=2)
    assert one == coder.encode_streams(symbols, indexes, sizes)
    assert coder.decode_streams(one, indexes, sizes, num_threads=2).tolist() == symbols


def _fsq_bank():
    rng = np.random.default_rng(0)
    cdfs = []
    for _ in range(8):
        cuts = np.sort(rng.choice(np.arange(1, 65536), size=8, replace=False))
        cdfs.append([0, *cuts.tolist(), 65536])
    return RangeCoder(np.array(cdfs), [10] * 8, [0] * 8)


def test_shapes_are_kept_and_size_is_near_ideal():
    coder = _fsq_bank()
    rng = np.random.default_rng(1)
    indexes = rng.integers(0, 8, size=(3, 5, 7, 11))
    symbols = rng.integers(0, 8, size=indexes.shape)
    data = coder.encode(symbols, indexes)
    out = coder.decode(data, indexes)
    assert out.shape == indexes.shape and out.dtype == np.int32
    np.testing.assert_array_equal(out, symbols)
    assert len(data) * 8 <= coder.ideal_bits(symbols, indexes) + 8 * 33


def test_every_truncation_and_bit_flip_is_a_clear_error():
    coder = _fsq_bank()
    rng = np.random.default_rng(2)
    indexes = rng.integers(0, 8, size=200)
    symbols = rng.integers(-2, 10, size=200)  # some escapes
    data = coder.encode(symbols, indexes)
    for cut in range(len(data)):
        with pytest.raises(ValueError, match=r"(truncated|corrupt)"):
            coder.decode(data[:cut], indexes)
    n_payload = data[0]  # one-byte LEB128 header here
    assert 0 < n_payload < 128
    for k in range(len(data)):
        bad = bytearray(data)
        bad[k] ^= 1 << (k % 8)
        if k > n_payload:
            # The rANS words: the end-state check catches the damage.
            with pytest.raises(ValueError, match="corrupt|truncated"):
                coder.decode(bytes(bad), indexes)
            continue
        # The escape payload has no redundancy of its own (the container's CRC32 guards
        # it): a flip may decode to other values, but never crashes.
        try:
            out = coder.decode(bytes(bad), indexes)
        except ValueError as e:
            assert str(e).endswith(".")
        else:
            assert out.shape == indexes.shape


def test_random_bytes_never_crash():
    coder = _fsq_bank()
    rng = np.random.default_rng(3)
    indexes = rng.integers(0, 8, size=50)
    for n in range(0, 300, 7):
        with pytest.raises(ValueError):
            coder.decode(rng.integers(0, 256, size=n, dtype=np.uint8).tobytes(), indexes)


@pytest.mark.parametrize(
    ("cdfs", "lengths", "offsets", "message"),
    [
        ([[0, 10, 65535]], [3], [0], "ends at 65535 instead of 65536"),
        ([[0, 10, 10, 65536]], [4], [0], "not strictly increasing"),
        ([[0, 10, 65536]], [4], [0], "length 4 must lie in 2..=3"),
        ([[0, 10, 65536]], [3], [0, 1], "offsets has 2 entries but 1 were expected"),
        ([0, 10, 65536], [3], [0], "must be 2-D"),
        ([[0.0, 10.5, 65536.0]], [3], [0], "must hold integers"),
    ],
)
def test_invalid_tables_raise_value_error(cdfs, lengths, offsets, message):
    with pytest.raises(ValueError, match=message):
        RangeCoder(np.array(cdfs), lengths, offsets)


def test_invalid_coding_arguments_raise_value_error():
    coder = RangeCoder(np.array([[0, 10, 65536]]), [3], [0])
    with pytest.raises(ValueError, match="indexes has 1 entries but 2 were expected"):
        coder.encode([0, 0], [0])
    with pytest.raises(ValueError, match="table index 3 at position 1 is out of range"):
        coder.encode([0, 0], [0, 3])
    with pytest.raises(ValueError, match="do not fit in 32-bit"):
        coder.encode([2**40], [0])
    with pytest.raises(ValueError, match="sum of stream sizes has 3 entries but 2 were expected"):
        coder.encode_streams([0, 0], [0, 0], [1, 2])
    with pytest.raises(ValueError, match="A stream size is negative"):
        coder.encode_streams([0, 0], [0, 0], [3, -1])
    for count in (coder.ideal_bits, coder.ideal_cost, coder.symbol_bits):
        with pytest.raises(ValueError, match="indexes has 1 entries but 2 were expected"):
            count([0, 0], [0])
        with pytest.raises(ValueError, match="table index 3 at position 1 is out of range"):
            count([0, 0], [0, 3])
        with pytest.raises(ValueError, match="must hold integers"):
            count([0.5, 0.0], [0, 0])


def test_crc32_matches_zlib():
    import zlib

    for data in [b"", b"mptvc", bytes(range(256)) * 17]:
        assert crc32(data) == zlib.crc32(data)


def test_gil_is_released_while_coding():
    """Two Python threads coding at once finish with the right bytes (no GIL deadlock or race)."""
    from concurrent.futures import ThreadPoolExecutor

    coder = _fsq_bank()
    rng = np.random.default_rng(4)
    indexes = rng.integers(0, 8, size=200_000)
    symbols = rng.integers(0, 8, size=200_000)
    want = coder.encode(symbols, indexes)
    with ThreadPoolExecutor(2) as pool:
        got = list(pool.map(lambda _: coder.encode(symbols, indexes), range(4)))
    assert all(g == want for g in got)


@pytest.mark.parametrize("case", GOLDEN, ids=[c["name"] for c in GOLDEN])
def test_golden_streams_decode_in_batches(case):
    """``decode_many`` is a batch of ``decode`` calls: any split of the stream into batches gives
    the symbols of ``decode``; a batch that fails (bad index, too many symbols) consumes nothing."""
    coder = _coder_of(case)
    data, indexes = bytes.fromhex(case["encoded_hex"]), np.array(case["indexes"])
    rng = np.random.default_rng(len(indexes))
    cuts = np.sort(rng.choice(np.arange(1, max(2, len(indexes))), size=min(3, max(0, len(indexes) - 1)), replace=False))
    dec, out = StreamDecoder(data), []
    for part in np.split(indexes, cuts):
        with pytest.raises(ValueError):
            dec.decode_many(coder, np.full(len(part) + 1, len(coder) + 5))  # a table that does not exist
        position = dec.position
        out += dec.decode_many(coder, part).tolist()
        assert dec.position == position + len(part)
    assert out == case["symbols"]
    with pytest.raises(ValueError):
        dec.decode_many(coder, np.zeros(1, np.int32))  # one symbol past the end
    assert dec.position == len(indexes)
    dec.finish()
