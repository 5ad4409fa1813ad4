"""Windowed axial attention: each token attends to its 2r+1 neighbours along one grid axis.

Combines axial attention (Ho et al. 2019, "Axial Attention in Multidimensional Transformers")
with sliding-neighbourhood windows (Hassani et al. 2023, "Neighborhood Attention Transformer").
Along the chosen axis token ``i`` attends to keys ``j`` with ``|i - j| <= r``; keys outside the
grid are masked out. Because windows slide with the query (no fixed partition) and RoPE makes
scores depend on coordinate differences only, the layer is exactly translation-equivariant away
from borders. The cost is ``O(N * (2r + 1))`` for ``N`` tokens.

Data flow for ``x (B, T, H, W, D)`` and ``axis = "y"``::

    x -> qkv Linear -> q, k, v (B, T, H, W, heads, hd)
      -> move axis y last-but-one: (B, T, W, heads, H, hd)
      -> RoPE on the y channel pairs of q, k at each token's y (the t and x pairs would cancel
         in every score along y: see ``rope3d``)
      -> neighbourhood softmax(q k^T / sqrt(hd)) v over 2r_y+1 keys   (fp32 softmax)
      -> back to (B, T, H, W, D) -> output Linear

Causal variant (``AttentionConfig.causal``): along t the window is one-sided, token frame ``i``
attends to ``j`` with ``i - r_t <= j <= i``; y and x keep both sides. Future keys get a weight of
exactly zero, so for a fixed tensor shape the outputs of past frames are bit-identical whatever
the future frames hold (``causal.py`` relies on this; RoPE and the scene phase jump are unchanged).

The module is axis-agnostic: ``axis`` is a forward argument and the radius for that axis comes
from the config. ``AxialBlock`` keeps one unshared instance per axis, because time and space
carry different statistics (motion versus texture) and unsharing costs only 4 d^2 per axis.

Implementation: axes of up to ``DENSE_MAX_LENGTH`` tokens use two batched matmuls with the
neighbourhood as a mask (at most 32 keys per query, so the cost stays linear in N); longer
axes pad the keys and values once and visit the 2r+1 shifted views (pad + gather by
slicing). Both give identical results, with gradients; the matmul path is about 2x faster than
the shifted views for the 8-16 token axes of training crops, and beats
``F.scaled_dot_product_attention`` forward and backward there. Inference (no gradient, no
probabilities) on axes of ``SDPA_MIN_LENGTH`` tokens or more runs SDPA with the band as a
boolean mask instead: its fused CPU kernel never writes the scores out, and measured 3x faster
at 32 tokens and 2-7x beyond (the 32 x 32 tokens of a 256 x 256 frame, the 60 x 108 of a
480 x 864 tile), although it scores every pair of the axis. Masked keys get a weight of exactly
zero on every path.
"""

from __future__ import annotations

import math
from typing import Any, cast

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from mptvc_latents.config import AXES, AttentionConfig
from mptvc_latents.layers.rope3d import RoPE3D, Rotation

_AXIS_DIM = {"t": 1, "y": 2, "x": 3}


def _neighbour_keys(length: int, radius: int, device: torch.device, causal: bool = False) -> tuple[Tensor, Tensor]:
    """Key index ``(L, 2r+1)`` of slot ``w`` for query ``l`` (``l + w - r``) and its mask: in the
    grid and, when ``causal``, not after the query (slots ``w > r`` are masked)."""
    offsets = torch.arange(-radius, radius + 1, device=device)
    key = torch.arange(length, device=device)[:, None] + offsets[None, :]  # (L, 2r+1)
    valid = (key >= 0) & (key < length)
    if causal:
        valid = valid & (offsets <= 0)[None, :]
    return key.clamp(0, length - 1), valid


#: Axes up to this many tokens use the masked-matmul path.
DENSE_MAX_LENGTH = 32
#: Axes of at least this many tokens use SDPA when no gradient and no probabilities are needed.
SDPA_MIN_LENGTH = 12


def _band(length: int, radius: int, device: torch.device, causal: bool) -> Tensor:
    """``(L, L)`` bool: query ``i`` may attend to key ``j`` (``|i - j| <= r``, and ``j <= i`` when causal)."""
    distance = torch.arange(length, device=device)
    offset = distance[:, None] - distance[None, :]  # (L, L): query index minus key index
    near = offset.abs() <= radius
    return near & (offset >= 0) if causal else near


class _SoftmaxShort(torch.autograd.Function):
    """Softmax over a short last dim (the 3-32 keys of a neighbourhood) from elementwise ops and two
    reductions: ``torch.softmax``'s CPU kernel vectorises along that dim and measured 6x slower on
    rows of 6. The backward is the softmax Jacobian written out, ``p * (g - sum(g * p))``."""

    @staticmethod
    def forward(ctx: Any, scores: Tensor) -> Tensor:
        # Every row holds its own query's key, so the max is finite and masked (-inf) keys get exactly 0.
        e = (scores - scores.amax(dim=-1, keepdim=True)).exp_()
        probs = e.div_(e.sum(dim=-1, keepdim=True))
        ctx.save_for_backward(probs)
        return probs

    @staticmethod
    def backward(ctx: Any, *grads: Tensor) -> Tensor:
        (probs,) = ctx.saved_tensors
        g = grads[0]
        return probs * (g - (g * probs).sum(dim=-1, keepdim=True))


def _softmax_short(scores: Tensor) -> Tensor:
    """``softmax(scores, dim=-1)`` for short rows (``_SoftmaxShort``), differentiable."""
    return cast(Tensor, _SoftmaxShort.apply(scores))


def neighborhood_attention(
    q: Tensor, k: Tensor, v: Tensor, radius: int, need_probs: bool = True, causal: bool = False
) -> tuple[Tensor, Tensor | None]:
    """Attention of ``q (..., L, hd)`` to keys within ``radius`` along dim -2 (with ``causal``, only
    to keys at or before the query).

    Returns ``out (..., L, hd)`` in ``v.dtype`` and ``probs (..., L, 2r+1)`` in fp32 (``None``
    unless ``need_probs``), where slot ``w`` holds the weight of key ``l + w - r`` (zero for keys
    outside the grid, and for later keys when ``causal``).
    """
    length, head_dim = q.shape[-2], q.shape[-1]
    window = 2 * radius + 1
    scale = 1.0 / math.sqrt(head_dim)
    needs_grad = torch.is_grad_enabled() and (q.requires_grad or k.requires_grad or v.requires_grad)
    if length >= SDPA_MIN_LENGTH and not need_probs and not needs_grad:
        batch_shape = q.shape[:-2]
        # (..., L, hd) -> (N, L, hd): one batch dimension for the fused kernel.
        q3, k3, v3 = (t.reshape(-1, length, head_dim) for t in (q, k, v))
        out = F.scaled_dot_product_attention(q3, k3, v3, attn_mask=_band(length, radius, q.device, causal))
        return out.view(*batch_shape, length, head_dim), None
    key_index, valid = _neighbour_keys(length, radius, q.device, causal)
    if length <= DENSE_MAX_LENGTH:
        # Dense scores with the neighbourhood as a mask: two batched matmuls.
        scores = torch.matmul(q, k.transpose(-1, -2)).float() * scale  # (..., L, L)
        near = _band(length, radius, q.device, causal)
        dense = _softmax_short(scores.masked_fill(~near, float("-inf")))
        out = torch.matmul(dense.to(v.dtype), v)  # (..., L, hd)
        if not need_probs:
            return out, None
        probs = dense.gather(-1, key_index.expand(*dense.shape[:-1], window)) * valid
        return out, probs
    # Pad once, then visit the 2r+1 shifted views: memory stays O(N) instead of the
    # (2r+1)-fold copy an unfold + einsum makes, and it measured ~1.7x faster on CPU.
    k_pad = F.pad(k, (0, 0, radius, radius))  # (..., L + 2r, hd)
    v_pad = F.pad(v, (0, 0, radius, radius))
    scores = (
        torch.stack([(q * k_pad[..., w : w + length, :]).sum(-1) for w in range(window)], dim=-1).float() * scale
    )  # (..., L, 2r+1)
    probs = _softmax_short(scores.masked_fill(~valid, float("-inf")))
    weights = probs.to(v.dtype)
    out = weights[..., 0:1] * v_pad[..., 0:length, :]
    for w in range(1, window):
        out = out + weights[..., w : w + 1] * v_pad[..., w : w + length, :]  # (..., L, hd)
    return out, (probs if need_probs else None)


def neighborhood_to_dense(probs: Tensor, radius: int) -> Tensor:
    """Scatter banded probabilities ``(..., L, 2r+1)`` into dense ``(..., L, L)`` (for analysis)."""
    length = probs.shape[-2]
    if probs.shape[-1] != 2 * radius + 1:
        raise ValueError(f"probs has {probs.shape[-1]} slots but radius {radius} needs {2 * radius + 1}.")
    key_index, valid = _neighbour_keys(length, radius, probs.device)
    dense = probs.new_zeros(*probs.shape[:-1], length)
    return dense.scatter_add(-1, key_index.expand_as(probs), probs * valid)


class AxialNeighborhoodAttention(nn.Module):
    """Multi-head neighbourhood attention along one axis of a ``(B, T, H, W, D)`` token grid."""

    def __init__(self, config: AttentionConfig) -> None:
        super().__init__()
        self.config = config
        self.qkv = nn.Linear(config.dim, 3 * config.dim)
        self.proj = nn.Linear(config.dim, config.dim)
        assert config.rope is not None  # AttentionConfig.__post_init__ resolves the default
        self.rope = RoPE3D(config.rope)

    def axis_rotations(self, t_pos: Tensor, height: int, width: int) -> dict[str, Rotation]:
        """The RoPE rotation of each axis of a ``(B, T, H, W)`` grid, shaped to broadcast over the
        attention layout ``(B, O1, O2, heads, L, hd/2)``: t ``(B or 1, 1, 1, 1, T, d_t/2)`` or
        ``(T, d_t/2)``, y ``(H, d_y/2)``, x ``(W, d_x/2)``. An ``AxialTransformer`` computes them
        once per forward and shares them over its layers (they all use the same positions)."""
        device = self.rope.inv_freq_t.device
        t_rot = self.rope.axis_rotation("t", t_pos)  # (B, T, d_t/2) or (T, d_t/2)
        if t_pos.ndim == 2:
            batch, frames, pairs = t_rot.cos.shape
            shape = (batch, 1, 1, 1, frames, pairs)  # (B, T, d/2) -> (B, 1, 1, 1, T, d/2)
            t_rot = Rotation(t_rot.cos.view(shape), t_rot.sin.view(shape))
        return {
            "t": t_rot,
            "y": self.rope.axis_rotation("y", torch.arange(height, device=device)),
            "x": self.rope.axis_rotation("x", torch.arange(width, device=device)),
        }

    def forward(
        self,
        x: Tensor,
        axis: str,
        t_pos: Tensor,
        return_probs: bool = False,
        rotations: dict[str, Rotation] | None = None,
    ) -> Tensor | tuple[Tensor, Tensor]:
        """Attend along ``axis`` ("t", "y" or "x").

        Args:
            x: tokens ``(B, T, H, W, D)``.
            axis: the grid axis to attend along.
            t_pos: temporal coordinates ``(B, T)`` or ``(T,)`` (see ``temporal_positions``);
                y and x coordinates are the integer grid indices.
            return_probs: also return the attention probabilities.
            rotations: the grid's per-axis RoPE rotations when the caller computed them already
                (``axis_rotations``; an ``AxialTransformer`` shares them over its layers).

        Returns:
            ``(B, T, H, W, D)``; with ``return_probs`` also ``probs (B, O1, O2, heads, L, 2r+1)``
            in fp32, where ``O1, O2`` are the other two grid axes in (T, H, W) order, ``L`` the
            attended axis and slot ``w`` the key at offset ``w - r``.
        """
        self._check_inputs(x, axis, t_pos)
        batch, frames, height, width, dim = x.shape
        heads, head_dim = self.config.heads, self.config.head_dim
        grid_dim = _AXIS_DIM[axis]
        qkv = self.qkv(x).view(batch, frames, height, width, 3, heads, head_dim)  # (B, T, H, W, 3, h, hd)
        # (B, T, H, W, 3, h, hd) -> (B, O1, O2, 3, h, L, hd): the attended axis next to head_dim (a view).
        q, k, v = qkv.movedim(grid_dim, 5).unbind(dim=3)  # 3 x (B, O1, O2, h, L, hd)
        if rotations is None:
            rotations = self.axis_rotations(t_pos, height, width)
        # Only the attended axis' channel pairs turn (rope3d docstring); each result is contiguous.
        q = self.rope.rotate_axis(q, axis, rotations[axis])
        k = self.rope.rotate_axis(k, axis, rotations[axis])
        radius = self.config.radius[AXES.index(axis)]
        causal = self.config.causal and axis == "t"
        # (B, O1, O2, h, L, hd)
        out, probs = neighborhood_attention(q, k, v, radius, need_probs=return_probs, causal=causal)
        out = out.movedim(4, grid_dim).flatten(4)  # (B, T, H, W, h, hd) -> (B, T, H, W, D)
        out = self.proj(out)
        if not return_probs:
            return out
        assert probs is not None  # need_probs=True always returns them
        return out, probs

    def _check_inputs(self, x: Tensor, axis: str, t_pos: Tensor) -> None:
        if axis not in AXES:
            raise ValueError(f"axis must be one of {AXES}, got {axis!r}.")
        if x.ndim != 5 or x.shape[-1] != self.config.dim:
            raise ValueError(f"x must have shape (B, T, H, W, {self.config.dim}), got {tuple(x.shape)}.")
        batch, frames = x.shape[:2]
        if t_pos.shape not in ((batch, frames), (frames,), (1, frames)):
            raise ValueError(f"t_pos must have shape (B, T) = ({batch}, {frames}) or (T,), got {tuple(t_pos.shape)}.")
