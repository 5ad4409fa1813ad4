"""Finite Scalar Quantization (Mentzer et al. 2023, "Finite Scalar Quantization: VQ-VAE Made Simple").

Each channel ``c`` of ``y`` is squashed by a tanh bound onto ``L_c`` integer levels and rounded
with a straight-through estimator. There are no learned parameters and no projections here: the
codec projects to ``len(levels)`` channels before and back after.

Three words are kept apart::

    codes    float in [-1, 1]          (B, C, ...)   what the decoder consumes
    symbols  uint8 in [0, L_c - 1]     (B, C, ...)   what the range coder sees
    indices  int64 in [0, prod(L))     (B, ...)      one mixed-radix integer per token

    y --bound--> b (symbol units) --round(STE)--> symbols --(s - L//2) / (L//2)--> codes
    indices = sum_c symbols_c * basis_c,   basis = cumprod([1, L_0, ..., L_{C-2}])

Even levels follow the paper's half-step offset, so ``L_c`` even gives exactly ``L_c`` levels
({-L/2, ..., L/2 - 1} before shifting to symbols) and codes lie in [-1, 1 - 2/L].
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import Tensor, nn

from mptvc_latents.config import FSQConfig

# Stretches the tanh range a little so the outermost level is reached for finite inputs.
_EPS = 1e-3


@dataclass
class FSQOutput:
    """Result of ``FSQ.forward``: ``codes`` (input dtype, STE gradients) and ``symbols`` (uint8)."""

    codes: Tensor
    symbols: Tensor


def round_ste(x: Tensor) -> Tensor:
    """Round to the nearest integer, passing the gradient straight through (Bengio et al. 2013)."""
    return x + (torch.round(x) - x).detach()


class FSQ(nn.Module):
    """Finite scalar quantizer over dim 1 of ``(B, C, ...)`` tensors with ``C == len(levels)``."""

    levels: Tensor  # (C,) int64 buffer
    basis: Tensor  # (C,) int64 buffer

    def __init__(self, config: FSQConfig) -> None:
        super().__init__()
        self.config = config
        levels = torch.tensor(config.levels, dtype=torch.int64)
        # Mixed-radix basis; meaningless (and unused) when the codebook overflows int64.
        basis = torch.cumprod(torch.cat([torch.ones(1, dtype=torch.int64), levels[:-1]]), dim=0)
        if not config.has_indices:
            basis = torch.zeros_like(basis)
        # Derived from the config, so not stored in checkpoints.
        self.register_buffer("levels", levels, persistent=False)
        self.register_buffer("basis", basis, persistent=False)

    @property
    def num_channels(self) -> int:
        return len(self.config.levels)

    @property
    def codebook_size(self) -> int:
        return self.config.codebook_size

    # ------------------------------------------------------------------ training path

    def bound(self, y: Tensor) -> Tensor:
        """Continuous bounded value in symbol units, fp32: ``symbols == round(bound(y))``.

        Lies in about (-0.5, L_c - 0.5), so adding uniform noise of width 1 gives the usual
        noise relaxation of the rounding for a rate model.
        """
        self._check_channels(y, "y")
        levels = self._per_channel(self.levels, y.ndim).float()
        half_l = (levels - 1) * (1 + _EPS) / 2
        offset = torch.where(levels % 2 == 0, 0.5, 0.0)
        shift = torch.atanh(offset / half_l)
        centred = torch.tanh(y.float() + shift) * half_l - offset
        return centred + torch.div(levels, 2, rounding_mode="floor")

    def forward(self, y: Tensor) -> FSQOutput:
        """Quantize ``y`` of shape ``(B, C, ...)``; the arithmetic runs in fp32 whatever its dtype."""
        rounded = round_ste(self.bound(y))  # (B, C, ...) fp32, integer-valued
        half_width = self._half_width(y.ndim)
        codes = (rounded - half_width) / half_width
        symbols = rounded.detach().to(torch.uint8)
        return FSQOutput(codes=codes.to(y.dtype), symbols=symbols)

    # ------------------------------------------------------------------ conversions

    def codes_to_symbols(self, codes: Tensor) -> Tensor:
        """``(B, C, ...)`` codes in [-1, 1] -> uint8 symbols of the same shape."""
        self._check_channels(codes, "codes")
        half_width = self._half_width(codes.ndim)
        return torch.round(codes.float() * half_width + half_width).to(torch.uint8)

    def symbols_to_codes(self, symbols: Tensor) -> Tensor:
        """``(B, C, ...)`` integer symbols -> fp32 codes of the same shape."""
        self._check_channels(symbols, "symbols")
        self._check_symbol_range(symbols)
        half_width = self._half_width(symbols.ndim)
        return (symbols.float() - half_width) / half_width

    def symbols_to_indices(self, symbols: Tensor) -> Tensor:
        """``(B, C, ...)`` integer symbols -> int64 indices ``(B, ...)``."""
        self._check_has_indices()
        self._check_channels(symbols, "symbols")
        self._check_symbol_range(symbols)
        basis = self._per_channel(self.basis, symbols.ndim)
        return (symbols.to(torch.int64) * basis).sum(dim=1)

    def indices_to_symbols(self, indices: Tensor) -> Tensor:
        """int64 indices ``(B, ...)`` -> uint8 symbols ``(B, C, ...)``."""
        self._check_has_indices()
        if indices.is_floating_point() or indices.is_complex():
            raise ValueError(f"indices must be an integer tensor, got dtype {indices.dtype}.")
        if bool((indices < 0).any()) or bool((indices >= self.codebook_size).any()):
            raise ValueError(f"indices must lie in [0, {self.codebook_size}), the FSQ codebook size.")
        expanded = indices.to(torch.int64).unsqueeze(1)  # (B, 1, ...)
        basis = self._per_channel(self.basis, expanded.ndim)
        levels = self._per_channel(self.levels, expanded.ndim)
        return torch.div(expanded, basis, rounding_mode="floor").remainder(levels).to(torch.uint8)

    def codes_to_indices(self, codes: Tensor) -> Tensor:
        return self.symbols_to_indices(self.codes_to_symbols(codes))

    def indices_to_codes(self, indices: Tensor) -> Tensor:
        return self.symbols_to_codes(self.indices_to_symbols(indices))

    def implicit_codebook(self) -> Tensor:
        """All codes ``(codebook_size, C)`` in index order; only sensible for small codebooks."""
        if self.codebook_size > 2**24:
            raise ValueError(f"The codebook has {self.codebook_size} entries, too many to materialize.")
        indices = torch.arange(self.codebook_size, device=self.levels.device)
        return self.indices_to_codes(indices)  # (N,) -> (N, C)

    # ------------------------------------------------------------------ helpers

    def _per_channel(self, values: Tensor, ndim: int) -> Tensor:
        # (C,) -> (1, C, 1, ..., 1) broadcastable against a (B, C, ...) tensor of rank ndim.
        return values.view(1, -1, *([1] * (ndim - 2)))

    def _half_width(self, ndim: int) -> Tensor:
        return torch.div(self._per_channel(self.levels, ndim), 2, rounding_mode="floor").float()

    def _check_has_indices(self) -> None:
        if not self.config.has_indices:
            raise ValueError(
                f"FSQ levels {self.config.levels} give a codebook of {self.codebook_size} entries, which does not "
                f"fit an int64 index; work with per-channel symbols instead."
            )

    def _check_channels(self, x: Tensor, name: str) -> None:
        if x.ndim < 2 or x.shape[1] != self.num_channels:
            raise ValueError(
                f"{name} must have shape (B, C, ...) with C = {self.num_channels} FSQ channels "
                f"(levels {self.config.levels}), got shape {tuple(x.shape)}."
            )

    def _check_symbol_range(self, symbols: Tensor) -> None:
        if symbols.is_floating_point() or symbols.is_complex():
            raise ValueError(f"symbols must be an integer tensor, got dtype {symbols.dtype}.")
        levels = self._per_channel(self.levels, symbols.ndim)
        if bool((symbols.to(torch.int64) < 0).any()) or bool((symbols.to(torch.int64) >= levels).any()):
            raise ValueError(f"symbols must lie in [0, L_c - 1] per channel for levels {self.config.levels}.")
