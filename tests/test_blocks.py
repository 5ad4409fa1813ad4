"""Axial transformer blocks: translation equivariance, parameter count, gradients, configs."""

import json

import pytest
import torch

from mptvc_latents.config import AxialTransformerConfig, BlockConfig
from mptvc_latents.layers import AxialBlock, AxialTransformer, temporal_positions


def _small_stack(radius=(1, 1, 1)):
    torch.manual_seed(0)
    config = AxialTransformerConfig(block=BlockConfig(dim=32, heads=2, mlp_ratio=2.0, radius=radius), depth=2)
    return AxialTransformer(config).eval()


@pytest.mark.parametrize("axis", [2, 3])  # y, x in (B, T, H, W, D)
def test_transformer_is_translation_equivariant_away_from_borders(axis):
    model = _small_stack(radius=(1, 1, 1))
    depth, r = 2, 1
    size = 12
    grid = torch.randn(1, 2, size + 1, size + 1, 32)
    a = grid.narrow(axis, 0, size)  # rows/cols 0..size-1 of the big grid
    b = grid.narrow(axis, 1, size)  # rows/cols 1..size: the same content shifted by one token
    t_pos = temporal_positions(2)
    with torch.no_grad():
        out_a, out_b = model(a, t_pos), model(b, t_pos)

    # Big-grid index g sits at a-index g and b-index g - 1; each block widens the border zone by r.
    margin = depth * r
    g = torch.arange(margin + 1, size - margin)
    torch.testing.assert_close(out_b.index_select(axis, g - 1), out_a.index_select(axis, g), atol=1e-5, rtol=1e-5)

    # Near the border the shifted input does change the output, so the check above is not vacuous.
    border = torch.tensor([1])
    assert (out_b.index_select(axis, border - 1) - out_a.index_select(axis, border)).abs().max() > 1e-3


def test_parameter_count_matches_formula():
    d, hidden, depth = 128, 512, 2
    model = AxialTransformer(AxialTransformerConfig(block=BlockConfig(dim=d, heads=4), depth=depth))
    attention = 3 * ((d * 3 * d + 3 * d) + (d * d + d))
    mlp = (d * hidden + hidden) + (hidden * d + d)
    norms = 4 * 2 * d
    expected = depth * (attention + mlp + norms) + 2 * d
    assert sum(p.numel() for p in model.parameters()) == expected == 662_016


def test_block_gradients_reach_every_parameter_and_shapes_hold():
    torch.manual_seed(0)
    block = AxialBlock(BlockConfig(dim=24, heads=2, radius=(1, 2, 2)))
    x = torch.randn(2, 3, 4, 5, 24, requires_grad=True)
    t_pos = temporal_positions(3).expand(2, 3)
    out = block(x, t_pos)
    assert out.shape == x.shape
    out.square().mean().backward()
    for name, param in block.named_parameters():
        assert param.grad is not None and param.grad.abs().sum() > 0, name
    assert x.grad.abs().sum() > 0


def test_block_config_resolves_rope_and_round_trips_through_json():
    config = AxialTransformerConfig(block=BlockConfig(dim=64, heads=4, radius=(1, 2, 3)), depth=3)
    assert config.block.rope.head_dim == 16
    restored = AxialTransformerConfig.from_dict(json.loads(json.dumps(config.to_dict())))
    assert restored == config
    with pytest.raises(ValueError, match="unknown|no fields"):
        BlockConfig.from_dict({"dim": 64, "heads": 4, "depth": 2})
    with pytest.raises(ValueError):
        BlockConfig(dim=64, heads=4, mlp_ratio=0.0)
    with pytest.raises(ValueError):
        AxialTransformerConfig(block=config.block, depth=0)
