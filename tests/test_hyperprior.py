"""Gaussian table bank and scale hyperprior: exact integer bits, gradients, coding, checkpoints."""

import math
import pickle

import numpy as np
import pytest
import torch

from mptvc_latents.coder import RangeCoder
from mptvc_latents.config import HyperpriorConfig
from mptvc_latents.entropy import GaussianTableBank, ScaleHyperprior
from mptvc_latents.entropy.cdf import scale_table
from mptvc_latents.entropy.hyperprior import merge_tokens, unmerge_tokens

SMALL = HyperpriorConfig(hyper_channels=8, hidden=16, merge=(2, 2, 2), n_scales=24)


def _model(config=SMALL, channels=4, levels=8, seed=0, spread=0.3):
    """A hyperprior whose weights are perturbed so scales and z vary across the latent."""
    torch.manual_seed(seed)
    model = ScaleHyperprior(config, latent_channels=channels, fsq_levels=levels)
    with torch.no_grad():
        for param in model.parameters():
            param.add_(spread * torch.randn_like(param))
    return model


def _latent(shape, levels, seed=1):
    """A latent in symbol units whose spread varies over channels and space, and its symbols."""
    gen = torch.Generator().manual_seed(seed)
    b, c, t, h, w = shape
    spread = 0.3 + 2.5 * torch.rand(1, c, 1, h, w, generator=gen)  # (1, C, 1, H, W)
    y_bound = levels // 2 + spread * torch.randn(shape, generator=gen)
    y_bound = y_bound.clamp(-0.49, levels - 0.51)
    return y_bound, torch.round(y_bound).to(torch.uint8)


# ---------------------------------------------------------------------------- table bank


@pytest.mark.parametrize("tail", [True, False])
def test_table_bank_buffers_are_valid_16_bit_tables(tail):
    bank = GaussianTableBank(0.1, 20.0, 12, (-5, 5), tail=tail)
    cdfs, lengths, offsets = bank.cdfs.numpy(), bank.cdf_lengths.numpy(), bank.offsets.numpy()
    assert len(RangeCoder(cdfs, lengths, offsets)) == 12  # the coder accepts them

    assert bank.log_scales.dtype == torch.float64 and bank.cdfs.dtype == torch.int32
    assert lengths.dtype == offsets.dtype == np.int32
    assert np.allclose(np.exp(bank.log_scales.numpy()), scale_table(0.1, 20.0, 12), rtol=1e-12)
    assert cdfs.shape == (12, 11 + 2) and np.all(lengths == 13) and np.all(offsets == -5)
    freqs = np.diff(cdfs.astype(np.int64), axis=1)  # (12, A + 1), escape last
    assert bank.bits_table.dtype == torch.float32
    assert np.allclose(bank.bits_table.numpy(), 16 - np.log2(freqs), rtol=0, atol=1e-5)
    if tail:
        assert freqs[-1, -1] > freqs[0, -1] >= 1, "wider Gaussians put more mass beyond the alphabet"
    else:
        assert np.all(freqs[:, -1] == 1), "bounded symbols give the escape the minimal frequency"


def test_index_is_nearest_table_in_log_scale_and_clamped():
    bank = GaussianTableBank(0.3, 8.0, 64, (-4, 3), tail=False)
    scales = torch.cat([torch.exp(torch.empty(500).uniform_(-3.0, 3.5)), torch.tensor([1e-6, 0.3, 8.0, 1e6])])
    index = bank.index(scales)
    brute = (torch.log(scales.double())[:, None] - bank.log_scales[None, :]).abs().argmin(dim=1)

    assert index.dtype == torch.int32 and index.shape == scales.shape
    assert torch.equal(index.long(), brute)
    assert index[-4] == 0 and index[-1] == 63


def test_bits_are_the_table_entry_plus_the_gamma_payload_of_escapes():
    bank = GaussianTableBank(0.05, 32.0, 16, (-16, 16), tail=True)
    gen = torch.Generator().manual_seed(0)
    values = torch.randint(-70, 70, (40, 100), generator=gen)
    index = torch.randint(0, 16, (40, 100), generator=gen, dtype=torch.int32)
    bits = bank.bits(values, index)

    assert bits.dtype == torch.float64 and bits.shape == values.shape
    escaped = values.abs() > 16
    assert escaped.sum() > 100
    # Independently of the coder's count: the table entry (escape last), plus for an escape
    # 2 floor(log2(raw + 1)) + 1 payload bits of the zig-zag overflow raw.
    table = bank.bits_table.double()
    for value, t, got in zip(values.flatten().tolist(), index.flatten().tolist(), bits.flatten().tolist(), strict=True):
        if -16 <= value <= 16:
            expected = table[t, value + 16].item()
        else:
            raw = -2 * (value + 16) - 1 if value < -16 else 2 * (value - 17)
            expected = table[t, -1].item() + 2 * math.floor(math.log2(raw + 1)) + 1
        assert got == pytest.approx(expected, rel=1e-6)
    ideal = bank.coder().ideal_bits(values.numpy(), index.numpy())
    assert math.isclose(bits.sum().item(), ideal, rel_tol=1e-12)
    # Broadcasting: one table for a whole row.
    row = bank.bits(values, index[:, :1])
    assert torch.equal(row[:, 0], bits[:, 0]) and row.shape == values.shape


def test_fsq_bank_codes_uint8_symbols_directly():
    levels = 10
    bank = GaussianTableBank(0.3, 8.0, 8, (-(levels // 2), levels - 1 - levels // 2), tail=False, offset=0)
    symbols = torch.randint(0, levels, (3000,), dtype=torch.uint8)
    index = torch.randint(0, 8, (3000,), dtype=torch.int32)
    coder = bank.coder()
    data = coder.encode(symbols.numpy(), index.numpy())

    assert torch.all(bank.offsets == 0)
    assert np.array_equal(coder.decode(data, index.numpy()), symbols.numpy().astype(np.int32))
    ideal = coder.ideal_bits(symbols.numpy(), index.numpy())
    assert math.isclose(bank.bits(symbols, index).double().sum().item(), ideal, rel_tol=1e-6)


def test_coder_is_cached_until_tables_are_loaded():
    bank = GaussianTableBank(0.3, 8.0, 8, (-3, 3), tail=True)
    first = bank.coder()
    assert bank.coder() is first
    other = GaussianTableBank(0.5, 9.0, 8, (-3, 3), tail=True)
    bank.load_state_dict(other.state_dict())
    assert bank.coder() is not first
    assert torch.equal(bank.cdfs, other.cdfs) and not torch.equal(
        bank.cdfs, GaussianTableBank(0.3, 8.0, 8, (-3, 3), tail=True).cdfs
    )
    symbols, index = torch.arange(-3, 4), torch.arange(7, dtype=torch.int32)
    assert bank.coder().encode(symbols.numpy(), index.numpy()) == other.coder().encode(symbols.numpy(), index.numpy())


def test_bank_pickles_without_its_coder_and_rebuilds_it():
    bank = GaussianTableBank(0.3, 8.0, 8, (-3, 3), tail=True)
    values, index = torch.arange(-5, 6), torch.full((11,), 2, dtype=torch.int32)
    copy = pickle.loads(pickle.dumps(bank))  # as ray.put does
    assert torch.equal(copy.bits(values, index), bank.bits(values, index))


# ---------------------------------------------------------------------------- hyperprior: rate


def test_merge_and_unmerge_are_inverse():
    x = torch.randn(2, 3, 4, 6, 8)
    merged = merge_tokens(x, (2, 3, 4))
    assert merged.shape == (2, 2, 2, 2, 3 * 2 * 3 * 4)
    assert torch.equal(merged[0, 1, 0, 1, : 3 * 24 : 24], x[0, :, 2, 0, 4])  # channel-major per token
    assert torch.equal(unmerge_tokens(merged, (2, 3, 4)), x)


def test_forward_bits_are_the_integer_table_bits():
    model = _model()
    y_bound, symbols = _latent((2, 4, 4, 8, 8), levels=8)
    out = model.train()(y_bound, symbols)

    y_index = model.y_tables.index(out.scales_hat)
    z_index = model.z_tables.index(model.z_scales(torch.float64)).view(1, -1, 1, 1, 1).expand(out.z_symbols.shape)
    bits_y = model.y_tables.bits(symbols, y_index).double().flatten(1).sum(1)
    bits_z = model.z_tables.bits(out.z_symbols, z_index).double().flatten(1).sum(1)
    assert out.scales_hat.shape == y_bound.shape and out.z_symbols.shape == (2, 8, 2, 4, 4)
    assert torch.equal(out.bits_y, bits_y.float()) and torch.equal(out.bits_z, bits_z.float())
    assert out.scales_hat.min() >= SMALL.sigma_floor and out.scales_hat.max() <= SMALL.sigma_max

    model.eval()
    with torch.no_grad():
        exact = model(y_bound, symbols)
    assert exact.bits.sum().item() == pytest.approx(model.estimate_bits(y_bound, symbols), rel=1e-6)
    assert torch.allclose(exact.bits, out.bits, rtol=1e-4), "float32 and float64 index paths agree"


def test_gradients_reach_y_bound_h_a_h_s_and_z_prior():
    model = _model().train()
    y_bound, symbols = _latent((1, 4, 2, 4, 4), levels=8)
    y_bound.requires_grad_(True)
    model(y_bound, symbols).bits.sum().backward()

    grads = {"y_bound": y_bound.grad, **{name: p.grad for name, p in model.named_parameters()}}
    for name in ("y_bound", "h_a.mlp.0.weight", "h_s.mlp.0.weight", "h_s.mlp.4.bias", "z_mean", "z_log_scale"):
        assert grads[name] is not None, name
        assert torch.isfinite(grads[name]).all() and grads[name].abs().sum() > 0, name


# ---------------------------------------------------------------------------- hyperprior: coding


@pytest.mark.parametrize(("levels", "merge"), [(8, (2, 2, 2)), (5, (1, 2, 1))])
def test_compress_decompress_round_trip_is_exact(levels, merge):
    config = HyperpriorConfig(hyper_channels=6, hidden=16, merge=merge, n_scales=16)
    model = _model(config, channels=3, levels=levels).eval()
    y_bound, symbols = _latent((1, 3, 2, 6, 4), levels=levels)
    z_bytes, y_bytes = model.compress(y_bound, symbols)
    decoded = model.decompress(z_bytes, y_bytes, (3, 2, 6, 4))

    assert decoded.dtype == torch.uint8 and decoded.shape == (1, 3, 2, 6, 4)
    assert torch.equal(decoded, symbols)


def test_bytes_do_not_depend_on_the_thread_count():
    model = _model(HyperpriorConfig(), channels=8, levels=8).eval()
    y_bound, symbols = _latent((1, 8, 4, 16, 16), levels=8)
    threads = torch.get_num_threads()
    try:
        torch.set_num_threads(1)
        one = model.compress(y_bound, symbols)
        torch.set_num_threads(2)
        two = model.compress(y_bound, symbols)
    finally:
        torch.set_num_threads(threads)
    assert one == two


def test_estimated_bits_are_within_one_percent_of_the_bytes():
    model = _model(HyperpriorConfig(), channels=16, levels=8, spread=0.1).eval()
    y_bound, symbols = _latent((1, 16, 8, 32, 32), levels=8)
    z_bytes, y_bytes = model.compress(y_bound, symbols)
    estimate = model.estimate_bits(y_bound, symbols)
    actual = 8 * (len(z_bytes) + len(y_bytes))

    assert len(torch.unique(model.y_tables.index(model(y_bound, symbols).scales_hat))) > 10
    assert abs(actual - estimate) <= 0.01 * actual
    assert actual >= estimate, "the streams add flushed states and padding to the ideal cost"


# ---------------------------------------------------------------------------- checkpoints


def test_state_dict_carries_the_tables_and_a_strict_reload_gives_the_same_bytes():
    model = _model().eval()
    y_bound, symbols = _latent((1, 4, 2, 4, 4), levels=8)
    state = model.state_dict()
    for prefix in ("y_tables", "z_tables"):
        for name, dtype in (("cdfs", torch.int32), ("cdf_lengths", torch.int32), ("offsets", torch.int32),
                            ("log_scales", torch.float64), ("bits_table", torch.float32)):  # fmt: skip
            assert state[f"{prefix}.{name}"].dtype == dtype

    fresh = ScaleHyperprior(SMALL, latent_channels=4, fsq_levels=8).eval()
    fresh.load_state_dict(state, strict=True)
    assert fresh.compress(y_bound, symbols) == model.compress(y_bound, symbols)


def test_other_tables_break_decoding():
    model = _model().eval()
    y_bound, symbols = _latent((1, 4, 4, 8, 8), levels=8)
    z_bytes, y_bytes = model.compress(y_bound, symbols)

    other = GaussianTableBank(0.5, 6.0, SMALL.n_scales, (-4, 3), tail=False, offset=0)
    state = model.state_dict()
    state.update({f"y_tables.{name}": buf for name, buf in other.state_dict().items()})
    tampered = ScaleHyperprior(SMALL, latent_channels=4, fsq_levels=8).eval()
    tampered.load_state_dict(state, strict=True)

    try:
        decoded = tampered.decompress(z_bytes, y_bytes, (4, 4, 8, 8))
    except ValueError:
        return
    assert not torch.equal(decoded, symbols)


# ---------------------------------------------------------------------------- validation


def _bad_calls():
    y_bound, symbols = _latent((1, 4, 2, 4, 4), levels=8)
    odd, odd_symbols = _latent((1, 4, 3, 4, 4), levels=8)
    wide, wide_symbols = _latent((1, 5, 2, 4, 4), levels=8)
    pair, pair_symbols = _latent((2, 4, 2, 4, 4), levels=8)
    return {
        "merge": lambda m: m(odd, odd_symbols),
        "channels": lambda m: m.estimate_bits(wide, wide_symbols),
        "range": lambda m: m(y_bound, symbols.clone().fill_(8)),
        "float_symbols": lambda m: m(y_bound, symbols.float()),
        "symbol_shape": lambda m: m(y_bound, symbols[..., :2]),
        "batch": lambda m: m.compress(pair, pair_symbols),
        "latent_shape": lambda m: m.decompress(b"", b"", (4, 2, 4, 3)),
        "latent_channels": lambda m: m.decompress(b"", b"", (5, 2, 4, 4)),
        "damaged": lambda m: m.decompress(*(s[:-5] for s in m.compress(y_bound, symbols)), (4, 2, 4, 4)),
        "scale": lambda m: m.y_tables.index(torch.tensor([0.5, -1.0])),
        "alphabet": lambda m: GaussianTableBank(0.3, 8.0, 8, (3, 1), tail=True),
        "fsq_levels": lambda m: ScaleHyperprior(SMALL, latent_channels=4, fsq_levels=1),
    }


@pytest.mark.parametrize("case", sorted(_bad_calls()))
def test_bad_inputs_raise_value_errors_with_sentences(case):
    model = _model().eval()
    with pytest.raises(ValueError, match=r"^[A-Za-z_].*\.$"):
        _bad_calls()[case](model)
