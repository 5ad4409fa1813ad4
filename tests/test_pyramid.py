"""Spatial Laplacian pyramid: exact collapse, shapes, partial reconstruction, shared token grid."""

import pytest
import torch

from mptvc_latents.config import PyramidConfig
from mptvc_latents.patching import patchify
from mptvc_latents.pyramid import LaplacianPyramid, down, up


@pytest.mark.parametrize("shape", [(2, 3, 5, 16, 24), (1, 3, 32, 8)])
@pytest.mark.parametrize("levels", [1, 2, 3])
def test_pyramid_collapses_back_to_its_input_exactly(shape, levels):
    """The pyramid collapses back to its input exactly before quantization."""
    torch.manual_seed(0)
    x = torch.rand(shape) * 2 - 1
    pyramid = LaplacianPyramid(PyramidConfig(levels=levels))
    bands = pyramid.decompose(x)
    assert len(bands) == levels
    torch.testing.assert_close(pyramid.collapse(bands), x, atol=1e-6, rtol=0)


def test_level_shapes_and_gaussian_stack():
    torch.manual_seed(0)
    x = torch.randn(2, 3, 5, 16, 24)
    pyramid = LaplacianPyramid(PyramidConfig(levels=3))
    bands = pyramid.decompose(x)
    gauss = pyramid.gaussian(x)
    expected = [(2, 3, 5, 4, 6), (2, 3, 5, 8, 12), (2, 3, 5, 16, 24)]
    assert [tuple(b.shape) for b in bands] == expected
    assert [tuple(g.shape) for g in gauss] == expected
    assert gauss[-1] is x
    torch.testing.assert_close(gauss[1][..., 0, 0], x[..., :2, :2].mean(dim=(-2, -1)))
    torch.testing.assert_close(bands[0], gauss[0])
    torch.testing.assert_close(bands[2], x - up(gauss[1]))


def test_partial_collapse_returns_the_level_approximation():
    torch.manual_seed(0)
    x = torch.randn(1, 3, 2, 16, 16)
    pyramid = LaplacianPyramid(PyramidConfig(levels=3))
    bands = pyramid.decompose(x)
    gauss = pyramid.gaussian(x)
    for k in range(3):
        torch.testing.assert_close(pyramid.collapse(bands, k_max=k), gauss[k], atol=1e-6, rtol=0)
        torch.testing.assert_close(pyramid.collapse(bands[: k + 1]), gauss[k], atol=1e-6, rtol=0)
        assert pyramid.to_full_resolution(gauss[k], k).shape == x.shape
    # The coarse approximation, upsampled, is a blurred x: closer to x than to noise, not equal.
    coarse = pyramid.to_full_resolution(pyramid.collapse(bands, k_max=0), 0)
    assert 0 < (coarse - x).abs().mean() < x.abs().mean()


def test_resampling_keeps_constants():
    x = torch.full((1, 2, 3, 4, 6), 0.25)
    torch.testing.assert_close(down(x), torch.full((1, 2, 3, 2, 3), 0.25))
    torch.testing.assert_close(up(x), torch.full((1, 2, 3, 8, 12), 0.25))


def test_all_levels_share_one_token_grid():
    """Level k patched with p_k = 8 / 2^(K-1-k) and patch_t = 4 gives (T/4, H/8, W/8) tokens."""
    x = torch.randn(1, 3, 8, 32, 48)
    bands = LaplacianPyramid(PyramidConfig(levels=3)).decompose(x)
    grids = [patchify(band, 8 // 2 ** (2 - k), 4).shape[1:4] for k, band in enumerate(bands)]
    assert grids == [(2, 4, 6)] * 3


def test_bad_inputs_raise_value_errors():
    pyramid = LaplacianPyramid(PyramidConfig(levels=3))
    with pytest.raises(ValueError, match="divisible by 2\\^\\(K-1\\) = 4"):
        pyramid.decompose(torch.zeros(1, 3, 2, 18, 16))
    bands = pyramid.decompose(torch.zeros(1, 3, 2, 16, 16))
    with pytest.raises(ValueError, match="k_max"):
        pyramid.collapse(bands, k_max=3)
    with pytest.raises(ValueError, match="twice"):
        pyramid.collapse([bands[0], bands[2]])
    with pytest.raises(ValueError, match="between 1 and 3"):
        pyramid.collapse([])
    with pytest.raises(ValueError):
        PyramidConfig(levels=0)
