"""The analysis and synthesis transforms of one Matryoshka pyramid level (g_a, g_s).

Level k works at resolution 1 / 2^(K-1-k) with spatial patch p_k = p / 2^(K-1-k) and
temporal patch p_t, so every level has the same token grid (T/p_t, H/p, W/p). Level 0
codes the coarsest Gaussian level G_0; level k > 0 codes the residual of G_k against
the upsampled reconstruction of the levels below it (closed loop: the decoder's own
reconstruction), and both its transforms see that upsampled reconstruction as context:

    g_a:  [patchify(G_k - up(x_hat_{k-1})), patchify(up(x_hat_{k-1}))] -> embed -> AxialTransformer -> y_k
    g_s:  codes_k -> embed (+ context embed + h_{k-1}) -> AxialTransformer -> h_k -> pixels -> residual_hat_k
          x_hat_k = up(x_hat_{k-1}) + residual_hat_k

Token grids are channels-last ``(B, T', H', W', D)`` inside; tensors at the boundaries are
``(B, C, T, H, W)``.
"""

from __future__ import annotations

from collections.abc import Callable

import torch
from torch import Tensor, nn

from mptvc_latents.config import AxialTransformerConfig, BlockConfig, CodecConfig, RoPEConfig
from mptvc_latents.layers.blocks import AxialTransformer
from mptvc_latents.patching import patchify, unpatchify

__all__ = ["LevelAnalysis", "LevelSynthesis", "transformer_config"]

Runner = Callable[[Callable[[Tensor], Tensor], Tensor], Tensor]


def _direct(fn: Callable[[Tensor], Tensor], grid: Tensor) -> Tensor:
    return fn(grid)


def transformer_config(config: CodecConfig, k: int, depth: int) -> AxialTransformerConfig:
    """The axial transformer of level ``k`` with ``depth`` blocks."""
    level = config.levels[k]
    rope = RoPEConfig(head_dim=level.dim // level.heads, theta_base=config.theta_base, theta_jump=config.theta_jump)
    block = BlockConfig(dim=level.dim, heads=level.heads, mlp_ratio=config.mlp_ratio, radius=config.radius, rope=rope)
    return AxialTransformerConfig(block=block, depth=depth)


def _run(transformer: AxialTransformer, h: Tensor, t_pos: Tensor, runner: Runner) -> Tensor:
    """Run the transformer (in its own dtype, e.g. bf16) over ``h`` and return fp32."""
    dtype = next(transformer.parameters()).dtype
    return runner(lambda g: transformer(g.to(dtype), t_pos).float(), h)


class LevelAnalysis(nn.Module):
    """g_a of level ``k``: pixels (residual and context) -> latent ``y`` (B, C_k, T', H', W')."""

    def __init__(self, config: CodecConfig, k: int) -> None:
        super().__init__()
        level = config.levels[k]
        self.patch, self.patch_t = config.level_patch(k), config.patch_t
        features = 3 * self.patch_t * self.patch**2
        self.has_context = k > 0
        self.embed = nn.Linear(features * (2 if self.has_context else 1), level.dim)
        self.transformer = AxialTransformer(transformer_config(config, k, level.encoder_depth))
        self.to_y = nn.Linear(level.dim, level.latent_channels)

    def forward(self, target: Tensor, context: Tensor | None, t_pos: Tensor, runner: Runner = _direct) -> Tensor:
        """``target`` and ``context`` ``(B, 3, T, H_k, W_k)`` -> ``y (B, C_k, T', H', W')``."""
        tokens = patchify(target, self.patch, self.patch_t)  # (B, T', H', W', 3 p_t p^2)
        if self.has_context:
            assert context is not None
            tokens = torch.cat([tokens, patchify(context, self.patch, self.patch_t)], dim=-1)
        h = _run(self.transformer, self.embed(tokens), t_pos, runner)  # (B, T', H', W', D)
        return self.to_y(h).permute(0, 4, 1, 2, 3)  # (B, C_k, T', H', W')


class LevelSynthesis(nn.Module):
    """g_s of level ``k``: FSQ codes (+ context and the coarser level's features) -> pixels."""

    def __init__(self, config: CodecConfig, k: int) -> None:
        super().__init__()
        level = config.levels[k]
        self.patch, self.patch_t = config.level_patch(k), config.patch_t
        features = 3 * self.patch_t * self.patch**2
        self.from_codes = nn.Linear(level.latent_channels, level.dim)
        self.has_context = k > 0
        if self.has_context:
            self.from_context = nn.Linear(features, level.dim)
            self.from_coarser = nn.Linear(config.levels[k - 1].dim, level.dim)
        self.transformer = AxialTransformer(transformer_config(config, k, level.decoder_depth))
        self.to_pixels = nn.Linear(level.dim, features)
        if self.has_context:  # start as "add nothing to the coarser reconstruction"
            nn.init.zeros_(self.to_pixels.weight)
            nn.init.zeros_(self.to_pixels.bias)

    def forward(
        self,
        codes: Tensor,
        context: Tensor | None,
        coarser: Tensor | None,
        t_pos: Tensor,
        runner: Runner = _direct,
    ) -> tuple[Tensor, Tensor]:
        """``codes (B, C_k, T', H', W')`` -> ``(residual_hat (B, 3, T, H_k, W_k), h_k (B, T', H', W', D))``."""
        h = self.from_codes(codes.permute(0, 2, 3, 4, 1).float())  # (B, T', H', W', D)
        if self.has_context:
            assert context is not None and coarser is not None
            h = h + self.from_context(patchify(context, self.patch, self.patch_t)) + self.from_coarser(coarser)
        h = _run(self.transformer, h, t_pos, runner)
        residual = unpatchify(self.to_pixels(h), self.patch, self.patch_t, 3)  # (B, 3, T, H_k, W_k)
        return residual, h
