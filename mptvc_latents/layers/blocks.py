"""Pre-norm axial transformer blocks over ``(B, T, H, W, D)`` token grids.

Pre-norm residual layout (Xiong et al. 2020, "On Layer Normalization in the Transformer
Architecture") with factorised attention along t, then y, then x (Ho et al. 2019, axial
attention), each a sliding neighbourhood (``AxialNeighborhoodAttention``)::

    x = x + attn_t(norm_t(x))
    x = x + attn_y(norm_y(x))
    x = x + attn_x(norm_x(x))
    x = x + mlp(norm_mlp(x))            mlp = Linear -> GELU -> Linear

Three sublayers of radius r give each block a (2r_t+1) x (2r_y+1) x (2r_x+1) receptive field.
"""

from __future__ import annotations

from typing import cast

import torch
from torch import Tensor, nn

from mptvc_latents.config import AXES, AxialTransformerConfig, BlockConfig
from mptvc_latents.layers.attention import AxialNeighborhoodAttention
from mptvc_latents.layers.rope3d import Rotation


class MLP(nn.Module):
    """Position-wise feed-forward network ``D -> hidden -> D`` with GELU."""

    def __init__(self, dim: int, hidden: int) -> None:
        super().__init__()
        self.fc = nn.Linear(dim, hidden)
        self.act = nn.GELU()
        self.out = nn.Linear(hidden, dim)

    def forward(self, x: Tensor) -> Tensor:
        return self.out(self.act(self.fc(x)))


class AxialBlock(nn.Module):
    """One pre-norm block: residual attention along t, y, x, then a residual GELU MLP."""

    def __init__(self, config: BlockConfig) -> None:
        super().__init__()
        self.config = config
        self.norms = nn.ModuleDict({axis: nn.LayerNorm(config.dim) for axis in AXES})
        self.attns = nn.ModuleDict({axis: AxialNeighborhoodAttention(config.attention) for axis in AXES})
        self.norm_mlp = nn.LayerNorm(config.dim)
        self.mlp = MLP(config.dim, config.mlp_hidden)

    def forward(self, x: Tensor, t_pos: Tensor, rotations: dict[str, Rotation] | None = None) -> Tensor:
        """``x (B, T, H, W, D)``, ``t_pos (B, T)`` or ``(T,)`` -> ``(B, T, H, W, D)``."""
        for axis in AXES:
            x = x + self.attns[axis](self.norms[axis](x), axis, t_pos, rotations=rotations)
        return x + self.mlp(self.norm_mlp(x))


class AxialTransformer(nn.Module):
    """A stack of ``depth`` ``AxialBlock``s and a final LayerNorm; shape-preserving."""

    def __init__(self, config: AxialTransformerConfig) -> None:
        super().__init__()
        self.config = config
        self.blocks = nn.ModuleList(AxialBlock(config.block) for _ in range(config.depth))
        self.norm = nn.LayerNorm(config.block.dim)
        self.autocast: torch.dtype | None = None  # a run-time switch for training, not saved

    def forward(self, x: Tensor, t_pos: Tensor) -> Tensor:
        """``x (B, T, H, W, D)``, ``t_pos (B, T)`` or ``(T,)`` -> ``(B, T, H, W, D)``.

        The per-axis RoPE rotations of the grid are computed once here and shared by every attention
        layer.
        With ``autocast`` set (``MPTVC.set_training_autocast``) the blocks run under
        ``torch.autocast`` in that dtype; the rotation, the softmax and everything outside the
        transformer stay fp32.
        """
        # Every attention layer has the same RoPE; the first one computes the shared rotations.
        first_attention = cast(AxialNeighborhoodAttention, cast(AxialBlock, self.blocks[0]).attns["t"])
        rotations = first_attention.axis_rotations(t_pos, x.shape[2], x.shape[3])
        with torch.autocast(x.device.type, dtype=self.autocast or torch.bfloat16, enabled=self.autocast is not None):
            for block in self.blocks:
                x = block(x, t_pos, rotations)
        return self.norm(x.float() if self.autocast is not None else x)
