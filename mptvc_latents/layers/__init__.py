"""Transformer layers: axial 3D RoPE, windowed axial attention and blocks."""

from mptvc_latents.layers.attention import (
    AxialNeighborhoodAttention,
    neighborhood_attention,
    neighborhood_to_dense,
)
from mptvc_latents.layers.blocks import MLP, AxialBlock, AxialTransformer
from mptvc_latents.layers.rope3d import RoPE3D, temporal_positions

__all__ = [
    "MLP",
    "AxialBlock",
    "AxialNeighborhoodAttention",
    "AxialTransformer",
    "RoPE3D",
    "neighborhood_attention",
    "neighborhood_to_dense",
    "temporal_positions",
]
