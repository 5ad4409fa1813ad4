"""Patchify / unpatchify and end padding / cropping."""

import pytest
import torch

from mptvc_latents.patching import crop, pad_to_multiple, patchify, patchify_into, unpatchify
from mptvc_latents.types import Padding


@pytest.mark.parametrize("patch", [2, 4, 8])
@pytest.mark.parametrize("size", [(5, 13, 7), (1, 1, 1), (8, 16, 24), (9, 17, 33)])
def test_pad_patchify_unpatchify_crop_round_trip(patch, size):
    torch.manual_seed(0)
    video = torch.randn(2, 3, *size)
    padded, padding = pad_to_multiple(video, 4, patch)
    tokens = patchify(padded, patch, 4)
    t, h, w = padded.shape[2:]
    assert tokens.shape == (2, t // 4, h // patch, w // patch, 3 * 4 * patch * patch)
    assert torch.equal(unpatchify(tokens, patch, 4, channels=3), padded)
    assert torch.equal(crop(padded, padding), video)
    assert padding == Padding(t=-size[0] % 4, h=-size[1] % patch, w=-size[2] % patch)


def test_token_features_are_ordered_channel_time_row_column():
    video = torch.arange(2 * 4 * 6 * 6, dtype=torch.float32).reshape(1, 2, 4, 6, 6)
    tokens = patchify(video, 3, 2)  # (1, 2, 2, 2, 2*2*3*3)
    c, i, j, k = 1, 1, 2, 0
    t_tok, h_tok, w_tok = 1, 0, 1
    feature = ((c * 2 + i) * 3 + j) * 3 + k
    assert tokens[0, t_tok, h_tok, w_tok, feature] == video[0, c, t_tok * 2 + i, h_tok * 3 + j, w_tok * 3 + k]


def test_replicate_padding_repeats_the_last_frame_row_and_column():
    video = torch.randn(1, 1, 3, 5, 6)
    padded, padding = pad_to_multiple(video, 4, 4)
    assert padding == Padding(t=1, h=3, w=2)
    assert torch.equal(padded[:, :, 3, :5, :6], video[:, :, 2])
    assert torch.equal(padded[:, :, :3, 7, :6], video[:, :, :, 4])
    assert torch.equal(padded[:, :, :3, :5, 7], video[:, :, :, :, 5])
    zeros, _ = pad_to_multiple(video, 4, 4, mode="constant")
    assert zeros[:, :, 3].abs().sum() == 0


def test_already_aligned_video_is_returned_unpadded():
    video = torch.randn(1, 3, 4, 8, 8)
    padded, padding = pad_to_multiple(video, 4, 8)
    assert padded is video and padding == Padding()


def test_bad_inputs_raise_value_errors():
    video = torch.randn(1, 3, 4, 8, 8)
    with pytest.raises(ValueError, match="rank 4"):
        patchify(video[0], 8, 4)
    with pytest.raises(ValueError, match="not divisible"):
        patchify(video[..., :7], 8, 4)
    with pytest.raises(ValueError, match="positive integer"):
        patchify(video, 0, 4)
    with pytest.raises(ValueError, match="features"):
        unpatchify(patchify(video, 8, 4), 8, 4, channels=2)
    with pytest.raises(ValueError, match="rank"):
        unpatchify(torch.zeros(1, 2, 3, 4), 8, 4, channels=3)
    with pytest.raises(ValueError, match="mode"):
        pad_to_multiple(video, 4, 8, mode="circular")
    with pytest.raises(ValueError, match="Reflect"):
        pad_to_multiple(video[:, :, :1], 4, 8, mode="reflect")
    with pytest.raises(ValueError, match="Cannot crop"):
        crop(video, Padding(t=4))
    with pytest.raises(ValueError, match="non-negative"):
        Padding(h=-1)


def test_patchify_into_a_slice_of_a_buffer_equals_patchify_and_the_difference():
    """``patchify_into`` writes the same floats as ``patchify`` (and as ``patchify(a - b)``) into a
    slice of a larger buffer, leaving the rest of the buffer untouched."""
    g = torch.Generator().manual_seed(0)
    a, b = torch.randn(2, 3, 8, 16, 24, generator=g), torch.randn(2, 3, 8, 16, 24, generator=g)
    f = 3 * 4 * 8 * 8
    buffer = torch.full((2, 2, 2, 3, 2 * f + 5), 7.0)
    patchify_into(buffer[..., :f], a, 8, 4, subtract=b)
    patchify_into(buffer[..., f : 2 * f], b, 8, 4)
    assert torch.equal(buffer[..., :f], patchify(a - b, 8, 4))
    assert torch.equal(buffer[..., f : 2 * f], patchify(b, 8, 4))
    assert torch.equal(buffer[..., 2 * f :], torch.full((2, 2, 2, 3, 5), 7.0))
    with pytest.raises(ValueError, match="token buffer has shape"):
        patchify_into(buffer[..., :f], a[:, :, :4], 8, 4)
