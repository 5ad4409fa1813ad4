"""Finite scalar quantization: codebook round trips, ranges, gradients, dtype and config checks."""

import json

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from mptvc_latents.config import FSQConfig
from mptvc_latents.quantization import FSQ


@pytest.mark.parametrize("levels", [(8, 5, 5, 5), (8, 8, 10), (2, 3), (256,)])
def test_whole_codebook_round_trips(levels):
    fsq = FSQ(FSQConfig(levels))
    indices = torch.arange(fsq.codebook_size)
    codes = fsq.indices_to_codes(indices)  # (N,) -> (N, C)
    symbols = fsq.codes_to_symbols(codes)

    assert codes.shape == (fsq.codebook_size, len(levels))
    assert symbols.dtype == torch.uint8
    assert torch.equal(fsq.symbols_to_indices(symbols), indices)
    assert torch.equal(fsq.codes_to_indices(codes), indices)
    assert codes.min() >= -1 and codes.max() <= 1
    assert torch.unique(codes, dim=0).shape[0] == fsq.codebook_size


@pytest.mark.parametrize("levels", [(8, 5, 5, 5), (8, 8, 10), (2, 7, 256)])
def test_each_channel_uses_exactly_its_levels_and_extremes_stay_in_range(levels):
    fsq = FSQ(FSQConfig(levels))
    sweep = torch.cat([torch.linspace(-8, 8, 4001), torch.tensor([-1e4, 1e4])])
    y = sweep.view(1, 1, -1).expand(1, len(levels), -1)  # (1, C, N)
    out = fsq(y)
    for channel, level in enumerate(levels):
        used = torch.unique(out.symbols[0, channel])
        assert torch.equal(used, torch.arange(level, dtype=torch.uint8)), f"channel {channel} with L={level}"
    assert torch.equal(out.symbols[0, :, -2], torch.zeros(len(levels), dtype=torch.uint8))
    assert torch.equal(out.symbols[0, :, -1], torch.tensor(levels).sub(1).to(torch.uint8))


def test_forward_agrees_with_bound_and_conversions():
    torch.manual_seed(0)
    fsq = FSQ(FSQConfig((8, 5, 5, 5)))
    y = 2 * torch.randn(2, 4, 3, 5, 6)
    out = fsq(y)
    assert out.codes.shape == y.shape and out.symbols.shape == y.shape
    assert torch.equal(torch.round(fsq.bound(y)).to(torch.uint8), out.symbols)
    assert torch.equal(fsq.codes_to_symbols(out.codes), out.symbols)
    assert torch.equal(fsq.symbols_to_codes(out.symbols), out.codes)
    indices = fsq.symbols_to_indices(out.symbols)
    assert indices.shape == (2, 3, 5, 6) and indices.dtype == torch.int64
    assert torch.equal(fsq.indices_to_symbols(indices), out.symbols)


def test_zero_input_maps_to_the_centre_code():
    fsq = FSQ(FSQConfig((8, 5)))
    codes = fsq(torch.zeros(1, 2, 1)).codes
    assert torch.equal(codes, torch.zeros(1, 2, 1))


def test_gradient_passes_rounding_and_equals_bound_derivative():
    torch.manual_seed(0)
    fsq = FSQ(FSQConfig((8, 5, 3)))
    y = torch.randn(4, 3, 7, requires_grad=True)
    fsq(y).codes.sum().backward()
    grad_ste = y.grad.clone()

    y_ref = y.detach().clone().requires_grad_(True)
    half_width = torch.tensor([4.0, 2.0, 1.0]).view(1, 3, 1)
    (fsq.bound(y_ref) / half_width).sum().backward()

    assert bool((grad_ste.abs() > 0).all())
    torch.testing.assert_close(grad_ste, y_ref.grad)


def test_quantization_runs_in_fp32_under_bf16_input():
    torch.manual_seed(0)
    fsq = FSQ(FSQConfig((8, 5, 5, 5)))
    y = (3 * torch.randn(2, 4, 64)).to(torch.bfloat16)
    out = fsq(y)
    reference = fsq(y.float())
    assert fsq.bound(y).dtype == torch.float32
    assert out.codes.dtype == torch.bfloat16
    assert torch.equal(out.symbols, reference.symbols)
    assert torch.equal(out.codes, reference.codes.to(torch.bfloat16))


@settings(max_examples=30, deadline=None)
@given(
    levels=st.lists(st.integers(min_value=2, max_value=256), min_size=1, max_size=4),
    seed=st.integers(min_value=0, max_value=2**16),
)
def test_random_indices_round_trip(levels, seed):
    fsq = FSQ(FSQConfig(tuple(levels)))
    generator = torch.Generator().manual_seed(seed)
    indices = torch.randint(0, fsq.codebook_size, (3, 5), generator=generator)
    symbols = fsq.indices_to_symbols(indices)
    assert symbols.shape == (3, len(levels), 5)
    assert torch.equal(fsq.symbols_to_indices(symbols), indices)
    assert torch.equal(fsq.codes_to_indices(fsq.indices_to_codes(indices)), indices)


@pytest.mark.parametrize("levels", [(), (1, 5), (8, 257), (8, 2.5), [8, 5], (True, 4)])
def test_bad_config_raises(levels):
    with pytest.raises(ValueError):
        FSQConfig(levels)


def test_bad_inputs_raise():
    fsq = FSQ(FSQConfig((8, 5)))
    with pytest.raises(ValueError, match="FSQ channels"):
        fsq(torch.zeros(1, 3, 4))
    with pytest.raises(ValueError, match="codebook size"):
        fsq.indices_to_symbols(torch.tensor([40]))
    with pytest.raises(ValueError, match="lie in"):
        fsq.symbols_to_indices(torch.tensor([[[0], [5]]], dtype=torch.uint8))
    with pytest.raises(ValueError, match="integer"):
        fsq.symbols_to_codes(torch.zeros(1, 2, 1))


def test_config_json_round_trip_and_buffers_not_in_state_dict():
    config = FSQConfig((8, 5, 5, 5))
    assert FSQConfig.from_dict(json.loads(json.dumps(config.to_dict()))) == config
    assert FSQ(config).state_dict() == {}


def test_codebooks_beyond_int64_keep_symbols_but_refuse_indices():
    """24 channels of 10 levels (the finest pyramid level) overflow an int64 index."""
    fsq = FSQ(FSQConfig((10,) * 24))
    assert not fsq.config.has_indices
    y = torch.randn(2, 24, 3)
    out = fsq(y)
    assert torch.equal(fsq.codes_to_symbols(out.codes), out.symbols)
    with pytest.raises(ValueError, match="does not fit an int64 index"):
        fsq.symbols_to_indices(out.symbols)
    with pytest.raises(ValueError, match="does not fit an int64 index"):
        fsq.indices_to_symbols(torch.zeros(2, 3, dtype=torch.int64))
