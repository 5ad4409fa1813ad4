"""The prior as a real entropy coder: ``compress_indices`` / ``decompress_indices`` round trips
exactly, costs about the prior's ideal bits, keeps its documented bytes, and refuses damaged streams,
other versions or another prior."""

import math
import struct
import zlib

import numpy as np
import pytest
import torch

from generation.coding import PriorStreamConfig, compress_indices, decompress_indices, prior_digest, quantized_cdf
from generation.model import PriorConfig, TokenPrior
from generation.sample import SampleConfig, sample_indices
from mptvc_latents.formats import framing

TINY = dict(dim=32, depth=1, heads=2, mlp_dim=64)


def tiny_prior(seed: int = 0) -> TokenPrior:
    torch.manual_seed(seed)
    return TokenPrior(PriorConfig(grid=(2, 4, 4), **TINY)).eval()


def confident_prior(seed: int = 0) -> TokenPrior:
    """A random prior with sharp next-token distributions, so its tokens cost well below log2(V)."""
    prior = tiny_prior(seed)
    with torch.no_grad():
        prior.head.weight.mul_(40)
    return prior


@pytest.fixture(scope="module")
def prior(one_torch_thread):
    return confident_prior()


@pytest.fixture(scope="module")
def indices(prior):
    # 4 token frames of 4x4: the first window of 2, then 2 frames with sliding context.
    return sample_indices(prior, SampleConfig(frames=16, seed=5, patch_t=4, temporal_multiple=8))[0]


def test_quantized_cdf_is_a_valid_16_bit_table_that_follows_the_probabilities():
    logits = torch.randn(1, 4096, generator=torch.Generator().manual_seed(0)) * 4
    cdf = quantized_cdf(logits)
    assert cdf.dtype == np.int32 and cdf.shape == (4098,) and cdf[0] == 0 and cdf[-1] == 65536
    freq = np.diff(cdf)
    assert freq.min() >= 1 and freq[-1] == 1  # every index and the escape codable
    p = torch.softmax(logits[0].double(), -1).numpy()
    assert int(np.argmax(freq[:-1])) == int(np.argmax(p))
    assert np.abs(freq[:-1] / 65536 - p).max() < 0.07  # the floor of one slot per index
    assert np.array_equal(quantized_cdf(logits), cdf)


@pytest.mark.parametrize("stream_tokens", [4096, 7])
def test_round_trip_is_exact_and_costs_about_the_ideal_bits(prior, indices, stream_tokens):
    data = compress_indices(prior, indices, PriorStreamConfig(stream_tokens=stream_tokens))
    assert torch.equal(decompress_indices(prior, data), indices)
    assert compress_indices(prior, indices, PriorStreamConfig(stream_tokens=stream_tokens)) == data  # deterministic
    if stream_tokens == 4096:
        ideal = _ideal_bits(prior, indices)
        assert ideal < 0.5 * indices.numel() * math.log2(4096)
        # The whole stream: 57 bytes of header, 8 of table, 33 of one stream's flushed states and
        # header, and the table rounding (at least one slot of 2^16 for each of the 4096 indices).
        assert len(data) * 8 < 1.1 * ideal + 8 * (57 + 8 + 33) + 0.1 * indices.numel()


def _ideal_bits(prior, indices):
    from generation.evaluate import clip_bits

    return clip_bits(prior, indices, sliding=True)


def test_damage_truncation_and_another_prior_are_refused(prior, indices):
    data = compress_indices(prior, indices, PriorStreamConfig(stream_tokens=16))
    for cut in (0, 3, 20, len(data) - 1):
        with pytest.raises(ValueError):
            decompress_indices(prior, data[:cut])
    rng = np.random.default_rng(0)
    for _ in range(40):
        bad = bytearray(data)
        bad[int(rng.integers(len(bad)))] ^= 1 << int(rng.integers(8))
        with pytest.raises(ValueError):
            decompress_indices(prior, bytes(bad))
    with pytest.raises(ValueError, match="another prior"):
        decompress_indices(confident_prior(seed=1), data)
    with pytest.raises(ValueError, match="not a prior stream"):
        decompress_indices(prior, b"MPTV" + data[4:])
    with pytest.raises(ValueError, match="after its last stream"):
        decompress_indices(prior, data + b"\0")


def test_the_stream_follows_its_documented_layout(prior, indices):
    """An independent parse with struct, from the module docstring: version 1's bytes stay as they were."""
    data = compress_indices(prior, indices, PriorStreamConfig(stream_tokens=16))
    magic, version, digest, t, h, w, step, n, indices_crc = struct.unpack_from("<4sB32sIHHIII", data)
    assert (magic, version, digest) == (b"MPTP", 1, prior_digest(prior))
    assert (t, h, w, step, n) == (4, 4, 4, 16, 4)  # 64 tokens in streams of 16
    assert indices_crc == zlib.crc32(indices.reshape(-1).numpy().astype("<i4").tobytes())
    entry = struct.calcsize("<4sB32sIHHIII")
    assert entry == 57
    payload = entry + 8 * n
    for _ in range(n):
        length, crc = struct.unpack_from("<II", data, entry)
        assert length > 0 and crc == zlib.crc32(data[payload : payload + length])
        entry, payload = entry + 8, payload + length
    assert payload == len(data)


def test_other_versions_cut_headers_and_damaged_streams_raise_framing_errors(prior, indices):
    data = compress_indices(prior, indices, PriorStreamConfig(stream_tokens=16))
    with pytest.raises(framing.UnsupportedVersionError, match="prior stream of version 2, but this library reads only"):
        decompress_indices(prior, data[:4] + b"\x02" + data[5:])
    with pytest.raises(framing.TruncatedError, match="cut inside the prior stream header: it has 40 of its 57 bytes"):
        decompress_indices(prior, data[:40])
    with pytest.raises(framing.TruncatedError, match="cut inside payload 3"):
        decompress_indices(prior, data[:-1])
    with pytest.raises(framing.PayloadCrcError, match="Payload 3 of the prior stream fails its CRC check") as info:
        decompress_indices(prior, data[:-1] + bytes([data[-1] ^ 1]))
    assert info.value.index == 3


def test_bad_input_is_refused(prior, indices):
    with pytest.raises(ValueError, match="token grid"):
        compress_indices(prior, indices[:, :3])
    with pytest.raises(ValueError, match="vocabulary"):
        compress_indices(prior, indices.clone().fill_(4096))
    with pytest.raises(ValueError, match="shorter than the prior's window"):
        compress_indices(prior, indices[:1])
    with pytest.raises(ValueError, match="stream_tokens"):
        PriorStreamConfig(stream_tokens=0)
    assert prior_digest(prior) == prior_digest(confident_prior()) != prior_digest(confident_prior(seed=1))


def test_fuzzed_containers_only_ever_raise_value_error(prior, indices):
    """Random bytes, and valid headers (right magic, version, digest) with random fields and
    tables behind them: the reader refuses each with a ValueError, never another exception."""
    from hypothesis import HealthCheck, given, settings
    from hypothesis import strategies as st

    good = compress_indices(prior, indices, PriorStreamConfig(stream_tokens=16))
    prefix = good[: 4 + 1 + 32]

    @settings(max_examples=150, deadline=None, suppress_health_check=list(HealthCheck))
    @given(st.binary(max_size=200), st.booleans())
    def check(tail, keep_header):
        data = prefix + tail if keep_header else tail
        with pytest.raises(ValueError):
            decompress_indices(prior, data)

    check()


def test_tables_that_drift_between_encoder_and_decoder_are_refused(prior, indices, monkeypatch):
    """Another machine's float logits give slightly other tables: decoding must refuse (the coder's
    end check or the CRC32 of the indices), never return other tokens."""
    from generation import coding

    data = compress_indices(prior, indices)
    exact = coding.quantized_cdf

    def drifted(logits):
        freq = np.diff(exact(logits))  # (V + 1,): a valid table either way
        j = int(np.argmax(freq[:-1]))
        freq[j] -= 3  # three of 2^16 slots move from the likeliest index to its neighbour
        freq[(j + 1) % (len(freq) - 1)] += 3
        return np.concatenate([[0], np.cumsum(freq)]).astype(np.int32)

    monkeypatch.setattr(coding, "quantized_cdf", drifted)
    with pytest.raises(ValueError, match="does not decode|other tokens"):
        decompress_indices(prior, data)
