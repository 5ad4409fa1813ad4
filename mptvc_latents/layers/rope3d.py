"""Axial 3D rotary position embedding with a scene-aware temporal phase jump.

RoPE (Su et al. 2021, "RoFormer: Enhanced Transformer with Rotary Position Embedding") rotates
pairs of query/key channels by angles proportional to the position, so ``q(m) . k(n)`` depends
only on ``m - n``. The axial 3D variant gives each of (t, y, x) its own slice of the head
dimension (``RoPEConfig.dims``) with its own geometric frequency ladder
``theta_base ** (-2 i / d_axis)``.

Scene-aware phase jump: the temporal coordinate of a token is ``tau + scene_id * theta_jump``.
Inside a shot only differences of ``tau`` matter; across a cut the large extra offset turns the
temporal rotation into a pseudo-random phase per frequency, which decorrelates the temporal
share of ``q . k`` so attention fades across cuts without any mask.

Channel pairing is the split-half convention: channel ``i`` pairs with ``i + head_dim/2`` and
turns by ``angles[i]``, whose ``head_dim/2`` entries are the t, y and x frequency ladders laid
end to end. Queries and keys come from learned projections, so the pairing is a free choice.
Angles are computed in float64 and reduced modulo 2 pi before casting to fp32, so large jump
offsets keep their precision.

Axial attention rotates one axis only. Along axis ``a`` a query and its keys share the other two
coordinates, and a rotation is orthogonal (``R(p)^T R(p) = I``), so the channel pairs of the
other axes contribute ``q . k`` unrotated to every score: rotating only the pairs of ``a`` by the
positions along ``a`` gives the same scores as the full 3D rotation (exactly in real arithmetic;
the float rounding differs) at a third of the work, with a rotation of shape ``(L, d_a / 2)``
instead of one per token. ``axis_rotation`` and ``rotate_axis`` do this; the attention layer uses
them.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any, cast

import numpy as np
import torch
from torch import Tensor, nn

from mptvc_latents.config import AXES, RoPEConfig

_TWO_PI = 2.0 * math.pi


def temporal_positions(
    num_tokens_t: int,
    scene_ids: Tensor | np.ndarray | None = None,
    *,
    theta_jump: float = 10000.0,
    patch_t: int = 4,
) -> Tensor:
    """Temporal coordinates ``tau + scene_id * theta_jump`` of the temporal tokens, float64.

    Args:
        num_tokens_t: T', the number of temporal tokens.
        scene_ids: per-frame scene ids, ``(T,)`` or ``(B, T)`` with ``T >= (T' - 1) * patch_t + 1``,
            or ``None`` for a single scene. A temporal token covers frames
            ``[tau * patch_t, (tau + 1) * patch_t)`` and takes the scene id of its **first** frame.
        theta_jump: offset added per scene id (``RoPEConfig.theta_jump``).
        patch_t: frames per temporal token.

    Returns:
        ``(T',)`` for ``scene_ids`` of shape ``(T,)`` or ``None``, else ``(B, T')``.
    """
    if num_tokens_t <= 0:
        raise ValueError(f"num_tokens_t must be positive, got {num_tokens_t}.")
    if patch_t <= 0:
        raise ValueError(f"patch_t must be positive, got {patch_t}.")
    tau = torch.arange(num_tokens_t, dtype=torch.float64)
    if scene_ids is None:
        return tau
    ids = torch.as_tensor(scene_ids)
    if ids.ndim not in (1, 2) or ids.is_floating_point():
        raise ValueError(
            f"scene_ids must be an integer array of shape (T,) or (B, T), got {tuple(ids.shape)} {ids.dtype}."
        )
    needed = (num_tokens_t - 1) * patch_t + 1
    if ids.shape[-1] < needed:
        raise ValueError(
            f"scene_ids covers {ids.shape[-1]} frames but {num_tokens_t} temporal tokens of {patch_t} frames "
            f"need at least {needed}."
        )
    first_frames = ids[..., :needed:patch_t].to(torch.float64)  # (..., T')
    return tau.to(first_frames.device) + first_frames * theta_jump


@dataclass(frozen=True)
class Rotation:
    """``cos`` and ``sin`` of RoPE angles (fp32), ready to rotate queries and keys."""

    cos: Tensor
    sin: Tensor

    @classmethod
    def of(cls, angles: Tensor) -> Rotation:
        return cls(angles.cos(), angles.sin())

    def apply(self, x: Tensor) -> Tensor:
        """Turn channel ``i`` with channel ``i + d/2`` of ``x (..., d)``; fp32 inside, ``x.dtype`` out."""
        xf = x.float()
        half = xf.shape[-1] // 2
        a, b = xf[..., :half], xf[..., half:]
        return torch.cat([a * self.cos - b * self.sin, a * self.sin + b * self.cos], dim=-1).to(x.dtype)


class _RotatePairs(torch.autograd.Function):
    """Turn the channel pairs ``(lo + i, half + lo + i)``, ``0 <= i < hi - lo``, of ``x (..., d)`` by
    ``(cos, sin)`` broadcastable to ``(..., hi - lo)``; every other channel passes through.

    The turn runs in fp32 (fp64 for fp64 ``x``) and the result is one new contiguous tensor in
    ``x.dtype``: a copy of ``x`` (which is also the copy a following matmul would make of a strided
    ``x``) whose turned pairs are then overwritten, 2x faster than gathering the pieces with
    ``cat``. The backward is the inverse turn of the incoming gradient, written out rather than
    traced: autograd through the slices would allocate and zero a full-size gradient per slice.
    """

    @staticmethod
    def _turn(x: Tensor, lo: int, hi: int, cos: Tensor, sin: Tensor) -> Tensor:
        half = x.shape[-1] // 2
        out = x.clone(memory_format=torch.contiguous_format)  # the one full copy
        work = torch.promote_types(x.dtype, torch.float32)  # fp32, or fp64 for fp64 input
        a, b = out[..., lo:hi], out[..., half + lo : half + hi]  # views of the pairs to turn
        # Gather the strided pairs in their own dtype, then change dtype on contiguous memory (and back
        # before scattering): a converting copy of a strided slice of 5-6 channels is 6x slower.
        a_w, b_w = a.contiguous().to(work, copy=True), b.contiguous().to(work, copy=True)  # copies even in fp32
        a.copy_((a_w * cos - b_w * sin).to(x.dtype))
        b.copy_((a_w * sin + b_w * cos).to(x.dtype))
        return out

    @staticmethod
    def forward(ctx: Any, x: Tensor, lo: int, hi: int, cos: Tensor, sin: Tensor) -> Tensor:
        ctx.lo, ctx.hi = lo, hi
        ctx.save_for_backward(cos, sin)
        return _RotatePairs._turn(x, lo, hi, cos, sin)

    @staticmethod
    def backward(ctx: Any, *grads: Tensor) -> tuple[Tensor | None, ...]:
        cos, sin = ctx.saved_tensors
        # The inverse turn (by -angle); the gradient arrives contiguous, so the slices are cheap.
        grad_x = _RotatePairs._turn(grads[0], ctx.lo, ctx.hi, cos, -sin)
        return grad_x, None, None, None, None


def _axis_index(axis: str) -> int:
    if axis not in AXES:
        raise ValueError(f"axis must be one of {AXES}, got {axis!r}.")
    return AXES.index(axis)


class RoPE3D(nn.Module):
    """Axial rotary embedding over (t, y, x); ``x`` has ``head_dim`` channels in its last dim."""

    # float64 inverse frequencies per axis, (d_axis / 2,) each: buffers registered in __init__.
    inv_freq_t: Tensor
    inv_freq_y: Tensor
    inv_freq_x: Tensor

    def __init__(self, config: RoPEConfig) -> None:
        super().__init__()
        self.config = config
        for axis, dim in zip("tyx", config.dims, strict=True):
            exponents = torch.arange(0, dim, 2, dtype=torch.float64) / dim
            # float64 so the jump offset times the lowest frequency keeps its precision.
            self.register_buffer(f"inv_freq_{axis}", config.theta_base ** (-exponents), persistent=False)

    def angles(self, t_pos: Tensor, y_pos: Tensor, x_pos: Tensor) -> Tensor:
        """Rotation angles ``(*S, head_dim // 2)`` fp32 for positions broadcastable to shape ``S``."""
        parts = []
        for pos, inv_freq in ((t_pos, self.inv_freq_t), (y_pos, self.inv_freq_y), (x_pos, self.inv_freq_x)):
            phase = pos.to(device=inv_freq.device, dtype=torch.float64).unsqueeze(-1) * inv_freq  # (..., d_a/2)
            parts.append(torch.remainder(phase, _TWO_PI).to(torch.float32))
        shape = torch.broadcast_shapes(*(p.shape[:-1] for p in parts))
        return torch.cat([p.expand(*shape, p.shape[-1]) for p in parts], dim=-1)  # (*S, head_dim/2)

    def axis_rotation(self, axis: str, positions: Tensor) -> Rotation:
        """The rotation of axis ``axis`` ("t", "y" or "x") at ``positions (..., L)`` along it:
        ``cos`` and ``sin`` of shape ``(..., L, d_axis / 2)``, fp32 (for ``rotate_axis``)."""
        index = _axis_index(axis)
        inv_freq = (self.inv_freq_t, self.inv_freq_y, self.inv_freq_x)[index]
        phase = positions.to(device=inv_freq.device, dtype=torch.float64).unsqueeze(-1) * inv_freq  # (..., L, d_a/2)
        return Rotation.of(torch.remainder(phase, _TWO_PI).to(torch.float32))

    def rotate_axis(self, x: Tensor, axis: str, rotation: Rotation) -> Tensor:
        """Rotate only the channel pairs of ``axis`` in ``x (..., L, head_dim)`` (the attended axis at
        dim -2) by ``rotation = axis_rotation(axis, positions)``. Attention along ``axis`` then scores
        as with the full rotation (module docstring). fp32 inside; a new contiguous tensor in
        ``x.dtype``, differentiable in ``x``."""
        if x.shape[-1] != self.config.head_dim:
            raise ValueError(f"RoPE3D expects a last dimension of {self.config.head_dim}, got shape {tuple(x.shape)}.")
        index = _axis_index(axis)
        pairs = [d // 2 for d in self.config.dims]
        lo = sum(pairs[:index])
        return cast(Tensor, _RotatePairs.apply(x, lo, lo + pairs[index], rotation.cos, rotation.sin))

    def rotate(self, x: Tensor, angles: Tensor | Rotation) -> Tensor:
        """Rotate ``x (..., head_dim)`` by ``angles`` broadcastable to ``(..., head_dim // 2)``
        (or their precomputed :class:`Rotation`). Computed in fp32 and cast back to ``x.dtype``.
        """
        if x.shape[-1] != self.config.head_dim:
            raise ValueError(f"RoPE3D expects a last dimension of {self.config.head_dim}, got shape {tuple(x.shape)}.")
        rotation = angles if isinstance(angles, Rotation) else Rotation.of(angles)
        return rotation.apply(x)

    def forward(self, x: Tensor, t_pos: Tensor, y_pos: Tensor, x_pos: Tensor) -> Tensor:
        """Rotate queries or keys ``x (*S, head_dim)`` at positions broadcastable to ``S``."""
        return self.rotate(x, self.angles(t_pos, y_pos, x_pos))
