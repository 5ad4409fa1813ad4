"""ONE level of the Matryoshka pyramid: its transforms g_a and g_s, FSQ and its entropy model.

Level k works at resolution 1 / 2^(K-1-k) with spatial patch p_k = p / 2^(K-1-k) and temporal
patch p_t, so every level has the same token grid (T/p_t, H/p, W/p). Level 0 codes the coarsest
Gaussian level G_0; level k > 0 codes the residual of G_k against the upsampled reconstruction
of the levels below it (closed loop: the decoder's own reconstruction), and both its transforms
see that upsampled reconstruction as context::

    context = up(x_hat_{k-1})                                    (none for k = 0)
    g_a:     [patchify(G_k - context), patchify(context)] -> embed -> AxialTransformer -> y_k
    FSQ:     y_k -> codes_k in [-1, 1], symbols_k in [0, L_k)
    entropy: y_k, symbols_k -> bits (training), rANS segments (compress) and back (decompress)
    g_s:     codes_k -> embed (+ context embed + h_{k-1}) -> AxialTransformer -> h_k -> residual_hat_k
             x_hat_k = context + residual_hat_k

Like a CompressAI latent codec, :class:`PyramidLevel` has ``forward`` (training: reconstruction
and the coder's bits with straight-through gradients), ``analyze`` / ``synthesize`` (symbols and
pixels, no entropy coding) and ``compress`` / ``decompress`` (symbols <-> bytes). What one level
hands to the next is a :class:`LevelDecoded`. Token grids are channels-last ``(B, T', H', W', D)``
inside; tensors at the boundaries are ``(B, C, T, H, W)``.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
import torch
from torch import Tensor, nn

from mptvc_latents.config import CodecConfig
from mptvc_latents.entropy.context import ContextModel, LevelContext
from mptvc_latents.entropy.hyperprior import ScaleHyperprior
from mptvc_latents.layers.blocks import AxialTransformer
from mptvc_latents.patching import patchify, patchify_into, unpatchify
from mptvc_latents.pyramid import up
from mptvc_latents.quantization.fsq import FSQ

__all__ = ["LevelAnalysis", "LevelDecoded", "LevelOutput", "LevelSynthesis", "PyramidLevel", "Runner"]

Runner = Callable[[Callable[[Tensor], Tensor], Tensor], Tensor]
"""Runs a shape-preserving function over a ``(B, T', H', W', D)`` token grid (whole, or in tiles)."""


def _direct(fn: Callable[[Tensor], Tensor], grid: Tensor) -> Tensor:
    return fn(grid)


def _run(transformer: AxialTransformer, h: Tensor, t_pos: Tensor, runner: Runner) -> Tensor:
    """Run the transformer (in its own dtype, e.g. bf16) over ``h`` and return fp32."""
    dtype = next(transformer.parameters()).dtype
    return runner(lambda g: transformer(g.to(dtype), t_pos).float(), h)


@dataclass
class LevelDecoded:
    """What the decoder of level k knows and hands to level k+1.

    ``x_hat`` is the reconstruction of G_k ``(B, 3, T, H_k, W_k)``; ``h`` the decoder features
    ``(B, T', H', W', D_k)`` that the next level's g_s reads.
    """

    x_hat: Tensor
    h: Tensor

    @property
    def context(self) -> Tensor:
        """``up(x_hat)``: the prediction of the next level's Gaussian level."""
        return up(self.x_hat)


@dataclass
class LevelOutput:
    """Training forward of one level: what it decoded and the coder's bits ``(B,)`` for y and z."""

    decoded: LevelDecoded
    bits_y: Tensor
    bits_z: Tensor


class LevelAnalysis(nn.Module):
    """g_a of level ``k``: pixels (residual and context) -> latent ``y`` (B, C_k, T', H', W')."""

    def __init__(self, config: CodecConfig, k: int) -> None:
        super().__init__()
        level = config.levels[k]
        self.patch, self.patch_t = config.level_patch(k), config.patch_t
        features = 3 * self.patch_t * self.patch**2
        self.has_context = k > 0
        self.embed = nn.Linear(features * (2 if self.has_context else 1), level.dim)
        self.transformer = AxialTransformer(config.transformer(k, "encoder"))
        self.to_y = nn.Linear(level.dim, level.latent_channels)

    def forward(
        self, gaussian: Tensor, coarser: LevelDecoded | None, t_pos: Tensor, runner: Runner = _direct
    ) -> Tensor:
        """``G_k (B, 3, T, H_k, W_k)`` and the decoded level below -> ``y (B, C_k, T', H', W')``."""
        h = self.embed(self._tokens(gaussian, coarser))  # (B, T', H', W', D); the pixel tokens are freed here
        h = _run(self.transformer, h, t_pos, runner)
        return self.to_y(h).permute(0, 4, 1, 2, 3)  # (B, C_k, T', H', W')

    def _tokens(self, gaussian: Tensor, coarser: LevelDecoded | None) -> Tensor:
        """``[patchify(G_k - context), patchify(context)]`` ``(B, T', H', W', F or 2 F)``, built in one
        buffer: besides ``G_k`` only the context and the tokens are ever held at full resolution."""
        if not self.has_context:
            return patchify(gaussian, self.patch, self.patch_t)  # (B, T', H', W', F)
        assert coarser is not None
        context = coarser.context  # up(x_hat_{k-1}) (B, 3, T, H_k, W_k), freed on return
        b, _, t, h, w = gaussian.shape
        features = 3 * self.patch_t * self.patch**2
        tokens = gaussian.new_empty(b, t // self.patch_t, h // self.patch, w // self.patch, 2 * features)
        patchify_into(tokens[..., :features], gaussian, self.patch, self.patch_t, subtract=context)
        patchify_into(tokens[..., features:], context, self.patch, self.patch_t)
        return tokens


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
        self.transformer = AxialTransformer(config.transformer(k, "decoder"))
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


class PyramidLevel(nn.Module):
    """Level ``k`` of the pyramid: ``g_a``, ``fsq``, its entropy model (``hyperprior``, and the
    ``context`` tables when the config has a context model) and ``g_s``.

    Every method takes the level's Gaussian target ``G_k`` or its symbols, and ``coarser``, the
    :class:`LevelDecoded` of level k-1 (``None`` for level 0).
    """

    def __init__(self, config: CodecConfig, k: int) -> None:
        super().__init__()
        level = config.levels[k]
        self.k = k
        self.g_a = LevelAnalysis(config, k)
        self.fsq = FSQ(level.fsq)
        self.hyperprior = ScaleHyperprior(
            level.hyperprior, latent_channels=level.latent_channels, fsq_levels=level.fsq_levels
        )
        self.g_s = LevelSynthesis(config, k)
        self.context: ContextModel | None = None
        if config.context is not None:
            self.context = ContextModel(
                config.context,
                levels=level.fsq_levels,
                channels=level.latent_channels,
                has_coarser=k > 0,
                n_scales=level.hyperprior.n_scales,
                uses_hyper=k >= config.context.hyper_from,
            )

    def _check_coarser(self, coarser: LevelDecoded | None) -> None:
        if (coarser is None) != (self.k == 0):
            raise ValueError(
                f"Level {self.k} needs {'no coarser level' if self.k == 0 else 'the decoded level below it'}, "
                f"got {'none' if coarser is None else 'one'}."
            )

    def _decode(
        self, codes: Tensor, coarser: LevelDecoded | None, t_pos: Tensor, runner: Runner = _direct
    ) -> LevelDecoded:
        context = None if coarser is None else coarser.context
        residual, h = self.g_s(codes, context, None if coarser is None else coarser.h, t_pos, runner)
        return LevelDecoded(residual if context is None else context + residual, h)

    # ------------------------------------------------------------------ training

    def forward(self, gaussian: Tensor, coarser: LevelDecoded | None, t_pos: Tensor) -> LevelOutput:
        """Training pass: reconstruct ``G_k (B, 3, T, H_k, W_k)`` through FSQ (straight-through) and
        count the coder's integer-table bits (gradients from the continuous relaxation)."""
        self._check_coarser(coarser)
        y = self.g_a(gaussian, coarser, t_pos)
        q = self.fsq(y)
        hp = self.hyperprior(self.fsq.bound(y), q.symbols)
        return LevelOutput(self._decode(q.codes, coarser, t_pos), hp.bits_y, hp.bits_z)

    # ------------------------------------------------------------------ inference

    @torch.no_grad()
    def analyze(
        self, gaussian: Tensor, coarser: LevelDecoded | None, t_pos: Tensor, runner: Runner = _direct
    ) -> tuple[Tensor, Tensor]:
        """``G_k`` -> ``(symbols, y_bound)``: uint8 symbols ``(B, C_k, T', H', W')`` and the
        bounded latent the entropy model reads (float32, same shape)."""
        self._check_coarser(coarser)
        y = self.g_a(gaussian, coarser, t_pos, runner)
        return self.fsq(y).symbols, self.fsq.bound(y)

    @torch.no_grad()
    def synthesize(
        self, symbols: Tensor, coarser: LevelDecoded | None, t_pos: Tensor, runner: Runner = _direct
    ) -> LevelDecoded:
        """uint8 symbols ``(B, C_k, T', H', W')`` -> the decoded level."""
        self._check_coarser(coarser)
        return self._decode(self.fsq.symbols_to_codes(symbols), coarser, t_pos, runner)

    def compress(
        self, y_bound: Tensor, symbols: Tensor, context: LevelContext | None = None, sent: np.ndarray | None = None
    ) -> tuple[bytes, bytes]:
        """Entropy-code one chunk's symbols ``(1, C_k, T', H', W')``: ``(z_bytes, y_bytes)``.

        Without ``context`` the scale hyperprior codes y alone (container v2). With it, z is
        computed from the symbols themselves (so a token store holds every feature the context
        tables are fitted on) and y is coded with the context tables, frame by frame; ``sent``
        (bool ``(T',)``, rate control) codes only those token frames (``ContextModel.encode``).
        """
        if context is None:
            if sent is not None and not np.all(sent):
                raise ValueError(
                    "Token frames can be left out only by the context entropy model; this checkpoint codes with "
                    "the scale hyperprior alone (fit context tables with `mptvc train-entropy`)."
                )
            return self.hyperprior.compress(y_bound, symbols)
        model = self._context_model()
        if model.uses_hyper:
            z_bytes, scale_index = self.hyperprior.compress_z(symbols.float())
            scale = scale_index[0].cpu().numpy()
        else:  # no hyper latent: an empty z stream, one scale bin
            z_bytes, scale = b"", np.zeros(symbols.shape[1:], np.int32)
        y_bytes = model.encode(symbols[0].cpu().numpy(), scale, context, sent)
        return z_bytes, y_bytes

    def decompress(
        self,
        segment: tuple[bytes, bytes],
        latent_shape: tuple[int, int, int, int],
        context: LevelContext | None = None,
        sent: np.ndarray | None = None,
    ) -> Tensor:
        """``(z_bytes, y_bytes)`` of one chunk -> uint8 symbols ``(1, C_k, T', H', W')``; ``context``
        and ``sent`` as in :meth:`compress`."""
        if context is None:
            if sent is not None and not np.all(sent):
                raise ValueError(
                    "Token frames were left out, which only the context entropy model codes, but this file's "
                    "levels are coded with the scale hyperprior alone: the file is malformed."
                )
            return self.hyperprior.decompress(*segment, latent_shape)
        model = self._context_model()
        if model.uses_hyper:
            scale_index = self.hyperprior.decompress_z(segment[0], latent_shape)[0].cpu().numpy()
        elif segment[0]:
            raise ValueError(
                f"Level {self.k} codes no hyper latent in this checkpoint, but the segment carries a z stream of "
                f"{len(segment[0])} bytes: it was coded with another context configuration."
            )
        else:
            scale_index = np.zeros(latent_shape, np.int32)
        symbols = model.decode(segment[1], scale_index, context, sent)  # (C_k, T', H', W')
        return torch.from_numpy(symbols)[None].to(self.hyperprior.z_mean.device)

    @torch.no_grad()
    def sample(
        self, latent_shape: tuple[int, int, int, int], context: LevelContext, rng: np.random.Generator
    ) -> Tensor:
        """Draw one chunk of this level from its entropy model given what its decoder knows
        (``context``: the coarser level of the chunk, the previous chunk's last frames): z from the
        hyperprior's prior where the level sends one, then every symbol from the context tables in
        the decoder's order (``ContextModel.sample_symbols``). uint8 ``(1, C_k, T', H', W')``."""
        model = self._context_model()
        if model.uses_hyper:
            scale_index = self.hyperprior.sample_y_index(latent_shape, rng)[0].cpu().numpy()
        else:
            scale_index = np.zeros(latent_shape, np.int32)
        symbols = model.sample_symbols(scale_index, context, rng)  # (C_k, T', H', W')
        return torch.from_numpy(symbols)[None].to(self.hyperprior.z_mean.device)

    @torch.no_grad()
    def scale_index(self, symbols: Tensor) -> np.ndarray:
        """The hyperprior table index the context model sees for each symbol, computed from the
        symbols as :meth:`compress` does: int32 ``(C_k, T', H', W')`` of ``symbols (1, C_k, ...)``."""
        if self.context is not None and not self.context.uses_hyper:
            return np.zeros(symbols.shape[1:], np.int32)
        hp = self.hyperprior
        return hp._y_index(hp._exact_z_symbols(symbols.float()))[0].cpu().numpy()

    def _context_model(self) -> ContextModel:
        if self.context is None:
            raise ValueError(
                f"Level {self.k} has no context entropy model: this checkpoint's config has no `context` "
                f"(fit one with `mptvc train-entropy`), so it codes with the scale hyperprior alone."
            )
        return self.context
