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
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import torch
from torch import Tensor, nn

from mptvc_latents.config import RoPEConfig

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

    def grid_rotation(self, t_pos: Tensor, batch: int, frames: int, height: int, width: int) -> Rotation:
        """The rotation of every token of a ``(B, T, H, W)`` grid, for per-head channels: ``cos`` and
        ``sin`` of shape ``(B or 1, T, H, W, 1, head_dim // 2)``. Computed once per transformer
        forward and shared by all its attention layers (they use the same positions)."""
        device = self.inv_freq_t.device
        y_pos = torch.arange(height, device=device).view(1, 1, height, 1)
        x_pos = torch.arange(width, device=device).view(1, 1, 1, width)
        t_grid = t_pos.to(device).expand(batch, frames).reshape(batch, frames, 1, 1)
        return Rotation.of(self.angles(t_grid, y_pos, x_pos).unsqueeze(-2))  # (B, T, H, W, 1, hd/2)

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
