"""Axial 3D RoPE, scene-aware phase jump and windowed axial attention."""

import pytest
import torch

from mptvc_latents.config import AttentionConfig, RoPEConfig
from mptvc_latents.layers import (
    AxialNeighborhoodAttention,
    RoPE3D,
    neighborhood_attention,
    neighborhood_to_dense,
    temporal_positions,
)
from mptvc_latents.layers.attention import _softmax_short
from mptvc_latents.layers.rope3d import Rotation


def _rotated_scores(rope, q, k, q_pos, k_pos):
    """Scores ``q_i . k_j`` after rotation; positions are (t, y, x) tuples of (N,) tensors."""
    q_rot = rope(q, *q_pos)
    k_rot = rope(k, *k_pos)
    return q_rot @ k_rot.T


# --------------------------------------------------------------------------- RoPE


@pytest.mark.parametrize(
    ("head_dim", "dims"), [(32, (12, 10, 10)), (34, (10, 12, 12)), (36, (12, 12, 12)), (6, (2, 2, 2))]
)
def test_default_axis_split(head_dim, dims):
    assert RoPEConfig(head_dim=head_dim).dims == dims


@pytest.mark.parametrize(
    "kwargs",
    [
        {"head_dim": 31},
        {"head_dim": 4},
        {"head_dim": 16, "axis_dims": (8, 4, 2)},
        {"head_dim": 16, "axis_dims": (7, 5, 4)},
        {"head_dim": 16, "theta_base": 1.0},
        {"head_dim": 16, "theta_jump": -1.0},
    ],
)
def test_bad_rope_config_raises(kwargs):
    with pytest.raises(ValueError):
        RoPEConfig(**kwargs)


def test_scores_depend_only_on_position_differences():
    torch.manual_seed(0)
    rope = RoPE3D(RoPEConfig(head_dim=24))
    q, k = torch.randn(2, 10, 24).unbind(0)
    q_pos = tuple(torch.randint(0, 20, (10,)).double() for _ in range(3))
    k_pos = tuple(torch.randint(0, 20, (10,)).double() for _ in range(3))
    base = _rotated_scores(rope, q, k, q_pos, k_pos)

    shift = (3.5 + 100 * 10000.0, -7.0, 11.0)  # includes a large scene-jump-sized temporal shift
    shifted = _rotated_scores(
        rope,
        q,
        k,
        tuple(p + s for p, s in zip(q_pos, shift, strict=True)),
        tuple(p + s for p, s in zip(k_pos, shift, strict=True)),
    )
    torch.testing.assert_close(shifted, base, atol=1e-4, rtol=1e-4)

    # Moving only the keys changes the scores: the check above can fail.
    moved = _rotated_scores(rope, q, k, q_pos, (k_pos[0] + 1, k_pos[1], k_pos[2]))
    assert (moved - base).abs().max() > 1e-2


def test_rotation_preserves_norm_and_dtype():
    torch.manual_seed(0)
    rope = RoPE3D(RoPEConfig(head_dim=12))
    x = torch.randn(5, 12, dtype=torch.bfloat16)
    pos = torch.arange(5).double()
    out = rope(x, pos, pos, pos)
    assert out.dtype == torch.bfloat16
    torch.testing.assert_close(out.float().norm(dim=-1), x.float().norm(dim=-1), atol=0.05, rtol=0.01)


def test_temporal_positions_take_scene_of_first_frame():
    ids = torch.tensor([0, 0, 0, 0, 0, 0, 1, 1, 1, 1, 1, 1])  # cut at frame 6, inside token 1
    positions = temporal_positions(3, ids, theta_jump=100.0, patch_t=4)
    assert positions.dtype == torch.float64
    assert positions.tolist() == [0.0, 1.0, 102.0]
    batched = temporal_positions(3, torch.stack([ids, torch.zeros_like(ids)]), theta_jump=100.0, patch_t=4)
    assert batched.tolist() == [[0.0, 1.0, 102.0], [0.0, 1.0, 2.0]]
    assert temporal_positions(3).tolist() == [0.0, 1.0, 2.0]
    with pytest.raises(ValueError, match="frames"):
        temporal_positions(4, ids, patch_t=4)


# --------------------------------------------------------------------------- neighbourhood attention


def _dense_reference(q, k, v, radius):
    length = q.shape[-2]
    scores = q @ k.transpose(-1, -2) / q.shape[-1] ** 0.5
    idx = torch.arange(length)
    far = (idx[:, None] - idx[None, :]).abs() > radius
    probs = scores.masked_fill(far, float("-inf")).softmax(-1)
    return probs @ v, probs


# Lengths above DENSE_MAX_LENGTH (32) take the shifted-slices path, the others the masked matmuls.
@pytest.mark.parametrize(("length", "radius"), [(5, 2), (3, 2), (9, 2), (12, 3), (4, 0), (33, 2), (40, 3), (37, 0)])
def test_neighborhood_attention_matches_masked_dense_attention(length, radius):
    torch.manual_seed(0)
    q, k, v = torch.randn(3, 2, 3, length, 8).unbind(0)
    out, probs = neighborhood_attention(q, k, v, radius)
    ref_out, ref_probs = _dense_reference(q, k, v, radius)
    assert probs.shape == (2, 3, length, 2 * radius + 1)
    torch.testing.assert_close(out, ref_out, atol=1e-5, rtol=1e-5)
    torch.testing.assert_close(neighborhood_to_dense(probs, radius), ref_probs, atol=1e-6, rtol=1e-5)


def test_short_softmax_matches_torch_softmax_with_exact_zeros_and_its_gradient():
    """The attention's softmax over a neighbourhood (elementwise ops, a written-out backward) is
    torch.softmax: the same values, masked keys exactly 0, and gradcheck passes in fp64."""
    torch.manual_seed(0)
    scores = torch.randn(4, 3, 6, 6, dtype=torch.float64) * 5
    idx = torch.arange(6)
    far = (idx[:, None] - idx[None, :]).abs() > 1
    masked = scores.masked_fill(far, float("-inf"))
    probs = _softmax_short(masked)
    torch.testing.assert_close(probs, masked.softmax(-1), atol=1e-12, rtol=1e-12)
    assert (probs[..., far] == 0).all() and torch.isfinite(probs).all()
    torch.autograd.gradcheck(_softmax_short, (scores.requires_grad_(),))
    # The backward is checked with masked keys too (their gradient is exactly 0).
    leaf = scores.detach().requires_grad_()
    weight = torch.randn_like(scores)
    (_softmax_short(leaf.masked_fill(far, float("-inf"))) * weight).sum().backward()
    ref = scores.detach().requires_grad_()
    (ref.masked_fill(far, float("-inf")).softmax(-1) * weight).sum().backward()
    torch.testing.assert_close(leaf.grad, ref.grad, atol=1e-12, rtol=1e-10)
    assert (leaf.grad[..., far] == 0).all()


@pytest.mark.parametrize("causal", [False, True])
@pytest.mark.parametrize(("length", "radius"), [(8, 2), (12, 3), (16, 2), (32, 3), (40, 3), (108, 3)])
def test_inference_path_matches_the_training_path(length, radius, causal):
    """Without gradient and probabilities, axes of SDPA_MIN_LENGTH tokens or more take the fused
    kernel: the same outputs, and (causal) later keys have no influence at all on earlier queries."""
    torch.manual_seed(0)
    q, k, v = torch.randn(3, 2, 3, length, 8).unbind(0)
    train_out, _ = neighborhood_attention(q, k, v, radius, causal=causal)
    with torch.no_grad():
        out, probs = neighborhood_attention(q, k, v, radius, need_probs=False, causal=causal)
    assert probs is None
    torch.testing.assert_close(out, train_out, atol=1e-5, rtol=1e-5)
    if causal:
        cut = length // 2
        k2, v2 = k.clone(), v.clone()
        k2[..., cut:, :], v2[..., cut:, :] = 1e3, -1e3
        with torch.no_grad():
            out2, _ = neighborhood_attention(q, k2, v2, radius, need_probs=False, causal=True)
        assert torch.equal(out2[..., :cut, :], out[..., :cut, :])
        assert not torch.equal(out2[..., cut:, :], out[..., cut:, :])
    with torch.no_grad():  # bf16, as set_inference_dtype runs it
        low, _ = neighborhood_attention(*(t.bfloat16() for t in (q, k, v)), radius, need_probs=False, causal=causal)
    assert low.dtype == torch.bfloat16
    torch.testing.assert_close(low.float(), train_out, atol=0.05, rtol=0.05)


def test_attention_module_shapes_and_bad_inputs():
    torch.manual_seed(0)
    attn = AxialNeighborhoodAttention(AttentionConfig(dim=24, heads=2, radius=(1, 2, 3)))
    x = torch.randn(2, 3, 5, 9, 24)
    t_pos = temporal_positions(3)
    for axis, (others, length, radius) in {"t": ((5, 9), 3, 1), "y": ((3, 9), 5, 2), "x": ((3, 5), 9, 3)}.items():
        out, probs = attn(x, axis, t_pos, return_probs=True)
        assert out.shape == x.shape
        assert probs.shape == (2, *others, 2, length, 2 * radius + 1)
        torch.testing.assert_close(probs.sum(-1), torch.ones(probs.shape[:-1]))
    torch.testing.assert_close(attn(x, "y", t_pos), attn(x, "y", t_pos.expand(2, 3)))
    with pytest.raises(ValueError, match="axis"):
        attn(x, "z", t_pos)
    with pytest.raises(ValueError, match="t_pos"):
        attn(x, "t", temporal_positions(4))
    with pytest.raises(ValueError, match="shape"):
        attn(x[..., :8], "t", t_pos)
    with pytest.raises(ValueError):
        AttentionConfig(dim=24, heads=5)
    with pytest.raises(ValueError):
        AttentionConfig(dim=24, heads=2, radius=(1, 2))


def test_scene_phase_jump_fades_attention_across_the_cut():
    """Queries before a cut put far less attention on keys after it once the scene ids jump.

    A static scene is repeated over time, and q = k projections (as a trained model would learn
    for matching content) make attention follow content similarity. Batch 0 has all scene ids 0,
    batch 1 has a cut at temporal token ``m``; both see identical tokens.
    """
    torch.manual_seed(0)
    dim, frames_t, cut, radius, patch_t = 32, 8, 4, 3, 4
    attn = AxialNeighborhoodAttention(AttentionConfig(dim=dim, heads=1, radius=(radius, 1, 1)))
    with torch.no_grad():
        weight = 3.0 * torch.randn(dim, dim) / dim**0.5
        attn.qkv.weight[:dim] = weight
        attn.qkv.weight[dim : 2 * dim] = weight
        attn.qkv.bias.zero_()

    scene = torch.randn(1, 1, 3, 3, dim)
    clip = scene.expand(1, frames_t, 3, 3, dim) + 0.1 * torch.randn(1, frames_t, 3, 3, dim)
    x = clip.expand(2, -1, -1, -1, -1)  # identical content in both batch entries
    frame_ids = torch.tensor([0] * (cut * patch_t) + [1] * ((frames_t - cut) * patch_t))
    scene_ids = torch.stack([torch.zeros_like(frame_ids), frame_ids])
    t_pos = temporal_positions(frames_t, scene_ids, theta_jump=attn.config.rope.theta_jump, patch_t=patch_t)

    _, probs = attn(x, "t", t_pos, return_probs=True)
    dense = neighborhood_to_dense(probs, radius)  # (B, H, W, heads, T', T')
    near_cut = slice(cut - radius, cut)  # shot-A queries whose window reaches shot B
    cross = dense[..., near_cut, cut:].sum(-1).mean(dim=(1, 2, 3, 4))  # per batch entry
    no_jump, with_jump = cross.tolist()
    assert no_jump > 0.05, "the setup must attend across the cut without a jump"
    assert with_jump < 0.5 * no_jump

    # Within-shot structure is unchanged: queries whose window stays inside shot A are identical,
    # and for the others the attention renormalised over shot-A keys is identical.
    torch.testing.assert_close(dense[1, ..., : cut - radius, :], dense[0, ..., : cut - radius, :])
    within = dense[..., near_cut, :cut]
    within = within / within.sum(-1, keepdim=True)
    torch.testing.assert_close(within[1], within[0], atol=1e-5, rtol=1e-4)


# --------------------------------------------------------------------------- one-axis rotation


def _full_rotation_reference(attn, x, axis, t_pos):
    """The layer as first written: q and k turned by the full 3D rotation at every token's
    (t, y, x), then the masked dense neighbourhood attention along ``axis``."""
    batch, frames, height, width, _ = x.shape
    heads, head_dim = attn.config.heads, attn.config.head_dim
    q, k, v = attn.qkv(x).view(batch, frames, height, width, 3, heads, head_dim).unbind(4)
    t = t_pos.expand(batch, frames).reshape(batch, frames, 1, 1, 1)
    y = torch.arange(height).view(1, 1, height, 1, 1).double()
    xx = torch.arange(width).view(1, 1, 1, width, 1).double()
    q, k = attn.rope(q, t, y, xx), attn.rope(k, t, y, xx)
    dim = {"t": 1, "y": 2, "x": 3}[axis]
    q, k, v = (a.movedim(dim, 4) for a in (q, k, v))
    out, _ = _dense_reference(q, k, v, attn.config.radius["tyx".index(axis)])
    return attn.proj(out.movedim(4, dim).flatten(4))


@pytest.mark.parametrize("axis", ["t", "y", "x"])
def test_rotating_the_attended_axis_only_matches_the_full_rotation(axis):
    """Along one axis the other axes' rotations cancel in every score, so turning only the
    attended axis' channel pairs gives the full 3D rotation's outputs and gradients."""
    torch.manual_seed(0)
    attn = AxialNeighborhoodAttention(AttentionConfig(dim=36, heads=2, radius=(2, 2, 3))).double()
    x = torch.randn(2, 5, 6, 7, 36, dtype=torch.float64, requires_grad=True)
    scene_ids = torch.tensor([[0] * 20, [0] * 8 + [1] * 12])  # a cut in batch entry 1
    t_pos = temporal_positions(5, scene_ids, theta_jump=attn.config.rope.theta_jump, patch_t=4)
    out = attn(x, axis, t_pos)
    ref = _full_rotation_reference(attn, x, axis, t_pos)
    torch.testing.assert_close(out, ref, atol=1e-6, rtol=1e-5)  # fp32 cos and sin
    weight = torch.randn_like(out)
    grads = torch.autograd.grad((out * weight).sum(), [x, attn.qkv.weight])
    ref_grads = torch.autograd.grad((ref * weight).sum(), [x, attn.qkv.weight])
    for g, r in zip(grads, ref_grads, strict=True):
        torch.testing.assert_close(g, r, atol=1e-6, rtol=1e-5)
    # The check can fail: without the attended axis' turn the outputs differ.
    rotations = attn.axis_rotations(t_pos, 6, 7)
    rotations[axis] = Rotation(torch.ones_like(rotations[axis].cos), torch.zeros_like(rotations[axis].sin))
    assert (attn(x, axis, t_pos, rotations=rotations) - ref).abs().max() > 1e-3


def test_rotate_axis_gradient_and_dtype():
    torch.manual_seed(0)
    rope = RoPE3D(RoPEConfig(head_dim=12))
    x = torch.randn(3, 4, 12, dtype=torch.float64, requires_grad=True)
    rotation = rope.axis_rotation("y", torch.arange(4))
    torch.autograd.gradcheck(lambda a: rope.rotate_axis(a, "y", rotation), (x,))
    out = rope.rotate_axis(x.detach().to(torch.bfloat16), "t", rope.axis_rotation("t", torch.arange(4).double()))
    assert out.dtype == torch.bfloat16 and out.is_contiguous()
    torch.testing.assert_close(out.float().norm(dim=-1), x.detach().float().norm(dim=-1), atol=0.05, rtol=0.01)
    with pytest.raises(ValueError, match="axis"):
        rope.axis_rotation("z", torch.arange(4))
