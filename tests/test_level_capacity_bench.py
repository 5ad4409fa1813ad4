"""benchmarks/level_capacity.py: growing a level by identity blocks keeps the codec's function."""

import pytest
import torch

from benchmarks.level_capacity import grow_level
from tests._tiny import tiny_model


def test_grown_level_codes_exactly_as_before_until_trained():
    model = tiny_model()
    grown = grow_level(model, 2, encoder_depth=3, decoder_depth=2).eval()
    assert grown.config.levels[2].encoder_depth == 3 and grown.config.levels[2].decoder_depth == 2
    assert grown.config.levels[:2] == model.config.levels[:2]
    added = sum(p.numel() for p in grown.parameters()) - sum(p.numel() for p in model.parameters())
    assert added > 0
    torch.manual_seed(1)
    clip = torch.rand(1, 3, 8, 32, 32) * 2 - 1
    with torch.no_grad():
        before, after = model(clip), grown(clip)
    for a, b in zip(before.recon, after.recon, strict=True):
        assert torch.equal(a, b)
    # The check can fail: once a new block's output projection is not zero, level 2 changes.
    with torch.no_grad():
        grown.levels[2].g_s.transformer.blocks[1].mlp.out.bias.fill_(0.5)
        changed = grown(clip)
    assert torch.equal(changed.recon[1], before.recon[1]) and not torch.equal(changed.recon[2], before.recon[2])


def test_growth_refuses_to_shrink_or_to_grow_a_missing_level():
    model = tiny_model()
    with pytest.raises(ValueError, match="only adds blocks"):
        grow_level(model, 1, encoder_depth=0, decoder_depth=1)
    with pytest.raises(ValueError, match="level 3 does not exist"):
        grow_level(model, 3, encoder_depth=2, decoder_depth=2)
