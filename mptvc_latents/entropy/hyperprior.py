"""Scale hyperprior of one pyramid level (Ballé et al. 2018, "Variational image compression
with a scale hyperprior"), over FSQ symbols instead of a convolutional latent.

Data flow (``L`` FSQ levels, ``C`` latent channels, ``Z`` hyper channels, merge ``m``)::

    y_bound (B, C, T, H, W), symbol units in about (-0.5, L - 0.5); symbols = round(y_bound)
      | x = (y_bound - L//2) / (L/2)                               about [-1, 1]
      | h_a: merge m_t x m_y x m_x tokens -> MLP                    (B, Z, T', H', W')
    z ------------------- z - z_mean -> round --> z_symbols ==[z_tables @ index(z_scale_c)]==> z stream
      | z_hat = z_symbols + z_mean       (straight-through rounding in training)
      | h_s: MLP -> un-merge                                        (B, C, T, H, W)
      | scales_hat = sigma_floor * (sigma_max / sigma_floor) ** sigmoid(raw)
    symbols ==[y_tables @ index(scales_hat)]==> y stream            (value = symbol - L//2)

Rate. ``forward`` returns per-sample bits whose *values* are the exact integer-table cost the
range coder spends (``GaussianTableBank.bits``) and whose *gradients* come from the continuous
relaxation ``-log2(Phi((v + 1/2) / s) - Phi((v - 1/2) / s))`` at the continuous value ``v`` and
scale ``s``: ``bits = bits_int.detach() + (bits_cont - bits_cont.detach())``.

Determinism. The decoder must pick the same table for every symbol as the encoder did, on any
machine and thread count. Both sides therefore run ``h_s`` and the table choice in float64
from the integer ``z_symbols`` (the weights are cast on the fly with ``functional_call``), and
the encoder also runs ``h_a`` in float64 so the bytes do not depend on the thread count either.
Different BLAS kernels, reduction orders or libm builds move a float64 result by a few ulps
(relative ~1e-15); a decision flips only if a log-scale lands that close to a midpoint between
two tables, which are ``log(sigma_max / sigma_floor) / (n_scales - 1)`` (~0.05) apart, so a
flip has a probability around 1e-13 per symbol: practically never. Float32 (~1e-7) would flip
about once per million symbols, which is why the fast float32 training path is not used for
coding. ``forward(exact=True)`` (the default in eval mode) and ``estimate_bits`` use the
float64 path, so their bits are exactly what ``compress`` spends before stream overheads
(33 bytes per stream, see ``docs/range_coder.md``).
"""

from __future__ import annotations

import logging
import math
import numbers
from dataclasses import dataclass

import numpy as np
import torch
from torch import Tensor, nn
from torch.func import functional_call

from mptvc_latents.config import HyperpriorConfig
from mptvc_latents.entropy.tables import GaussianTableBank
from mptvc_latents.quantization.fsq import round_ste

logger = logging.getLogger(__name__)

__all__ = ["HyperpriorOutput", "ScaleHyperprior", "gaussian_bits", "merge_tokens", "unmerge_tokens"]

# Likelihood floor of the continuous relaxation (about 30 bits), as in CompressAI.
_LIKELIHOOD_FLOOR = 1e-9


@dataclass
class HyperpriorOutput:
    """Result of ``ScaleHyperprior.forward``.

    ``scales_hat (B, C, T, H, W)`` float32 scales of the y symbols; ``z_symbols (B, Z, T', H', W')``
    int64 coded hyper symbols ``round(z - z_mean)``; ``bits_y`` and ``bits_z`` ``(B,)`` float32
    exact integer-table bits with gradients of the continuous relaxation.
    """

    scales_hat: Tensor
    z_symbols: Tensor
    bits_y: Tensor
    bits_z: Tensor

    @property
    def bits(self) -> Tensor:
        """Total bits per sample ``(B,)``."""
        return self.bits_y + self.bits_z


# --------------------------------------------------------------------------- pieces


def merge_tokens(x: Tensor, merge: tuple[int, int, int]) -> Tensor:
    """``(B, C, T, H, W) -> (B, T/m_t, H/m_y, W/m_x, C*m_t*m_y*m_x)``, channel-major per token."""
    b, c, t, h, w = x.shape
    m_t, m_y, m_x = merge
    x = x.reshape(b, c, t // m_t, m_t, h // m_y, m_y, w // m_x, m_x)  # (B, C, T', m_t, H', m_y, W', m_x)
    x = x.permute(0, 2, 4, 6, 1, 3, 5, 7)  # (B, T', H', W', C, m_t, m_y, m_x)
    return x.reshape(b, t // m_t, h // m_y, w // m_x, c * m_t * m_y * m_x)


def unmerge_tokens(x: Tensor, merge: tuple[int, int, int]) -> Tensor:
    """Inverse of ``merge_tokens``: ``(B, T', H', W', C*m_t*m_y*m_x) -> (B, C, T, H, W)``."""
    b, t, h, w, d = x.shape
    m_t, m_y, m_x = merge
    c = d // (m_t * m_y * m_x)
    x = x.reshape(b, t, h, w, c, m_t, m_y, m_x)  # (B, T', H', W', C, m_t, m_y, m_x)
    x = x.permute(0, 4, 1, 5, 2, 6, 3, 7)  # (B, C, T', m_t, H', m_y, W', m_x)
    return x.reshape(b, c, t * m_t, h * m_y, w * m_x)


def gaussian_bits(v: Tensor, scale: Tensor) -> Tensor:
    """``-log2(Phi((v + 1/2) / s) - Phi((v - 1/2) / s))`` elementwise, likelihood floored at 1e-9.

    Evaluated on the lower tail at ``-|v|`` (the Gaussian is symmetric), so the difference of
    two small numbers keeps its precision where a difference of two numbers near 1 would not.
    """
    a = -v.abs()
    upper = torch.special.ndtr((a + 0.5) / scale)
    lower = torch.special.ndtr((a - 0.5) / scale)
    return -torch.log2((upper - lower).clamp_min(_LIKELIHOOD_FLOOR))


def _mlp(d_in: int, hidden: int, d_out: int) -> nn.Sequential:
    return nn.Sequential(
        nn.Linear(d_in, hidden), nn.GELU(), nn.Linear(hidden, hidden), nn.GELU(), nn.Linear(hidden, d_out)
    )


class HyperAnalysis(nn.Module):
    """``h_a``: ``(B, C, T, H, W)`` normalised latent -> ``z (B, Z, T', H', W')``; dtype-agnostic."""

    def __init__(self, latent_channels: int, config: HyperpriorConfig) -> None:
        super().__init__()
        self.merge = config.merge
        self.mlp = _mlp(latent_channels * math.prod(config.merge), config.hidden, config.hyper_channels)

    def forward(self, x: Tensor) -> Tensor:
        z = self.mlp(merge_tokens(x, self.merge))  # (B, T', H', W', Z)
        return z.permute(0, 4, 1, 2, 3)  # (B, Z, T', H', W')


class HyperSynthesis(nn.Module):
    """``h_s``: ``z_hat (B, Z, T', H', W')`` -> raw scale parameter ``(B, C, T, H, W)``; dtype-agnostic."""

    def __init__(self, latent_channels: int, config: HyperpriorConfig) -> None:
        super().__init__()
        self.merge = config.merge
        self.mlp = _mlp(config.hyper_channels, config.hidden, latent_channels * math.prod(config.merge))

    def forward(self, z_hat: Tensor) -> Tensor:
        raw = self.mlp(z_hat.permute(0, 2, 3, 4, 1))  # (B, T', H', W', C*m_t*m_y*m_x)
        return unmerge_tokens(raw, self.merge)  # (B, C, T, H, W)


def _float64_call(module: nn.Module, x: Tensor) -> Tensor:
    """Run ``module`` in float64 with its weights cast on the fly (no copy to keep in sync)."""
    params = {name: p.detach().to(torch.float64) for name, p in module.named_parameters()}
    with torch.autocast(device_type=x.device.type, enabled=False):
        return functional_call(module, params, (x.to(torch.float64),))


# --------------------------------------------------------------------------- the hyperprior


class ScaleHyperprior(nn.Module):
    """Scale hyperprior for the FSQ symbols of one pyramid level; see the module docstring.

    Args:
        config: the level's ``HyperpriorConfig``.
        latent_channels: ``C``, channels of ``y``.
        fsq_levels: ``L``, the FSQ levels of every channel; symbols lie in ``[0, L - 1]``.

    The networks run in float32 whatever autocast says (the rate must not depend on bf16).
    """

    def __init__(self, config: HyperpriorConfig, latent_channels: int, fsq_levels: int) -> None:
        super().__init__()
        if not isinstance(config, HyperpriorConfig):
            raise ValueError(f"config must be a HyperpriorConfig, got {type(config).__name__}.")
        if not isinstance(latent_channels, int) or latent_channels < 1:
            raise ValueError(f"latent_channels must be a positive integer, got {latent_channels!r}.")
        if not isinstance(fsq_levels, int) or not 2 <= fsq_levels <= 256:
            raise ValueError(f"fsq_levels must be an integer in [2, 256] so symbols fit uint8, got {fsq_levels!r}.")
        self.config = config
        self.latent_channels = latent_channels
        self.fsq_levels = fsq_levels
        self.centre = fsq_levels // 2
        z_lo, z_hi = config.z_scale_range
        self._log_sigma = (math.log(config.sigma_floor), math.log(config.sigma_max))
        self._log_z_scale = (math.log(z_lo), math.log(z_hi))

        self.h_a = HyperAnalysis(latent_channels, config)
        self.h_s = HyperSynthesis(latent_channels, config)
        self.z_mean = nn.Parameter(torch.zeros(config.hyper_channels))
        self.z_log_scale = nn.Parameter(torch.zeros(config.hyper_channels))
        self.y_tables = GaussianTableBank(
            config.sigma_floor, config.sigma_max, config.n_scales,
            (-self.centre, fsq_levels - 1 - self.centre), tail=False, offset=0,
        )  # fmt: skip
        self.z_tables = GaussianTableBank(z_lo, z_hi, config.n_scales, (-config.z_support, config.z_support), tail=True)

    # ------------------------------------------------------------------ scales

    def bounded_scales(self, raw: Tensor) -> Tensor:
        """``sigma_floor * (sigma_max / sigma_floor) ** sigmoid(raw)``: smooth, inside the bank.

        Uniform in log-scale like the tables, with no hard clamp that would cut the gradient, and
        starts at the geometric mean of the range for ``raw = 0``.
        """
        lo, hi = self._log_sigma
        return torch.exp(lo + torch.sigmoid(raw) * (hi - lo))

    def z_scales(self, dtype: torch.dtype = torch.float32) -> Tensor:
        """Per-channel scales of the z prior ``(Z,)``, clamped to ``z_scale_range``."""
        return torch.exp(self.z_log_scale.to(dtype).clamp(*self._log_z_scale))

    def _z_index(self, z_shape: tuple[int, ...]) -> Tensor:
        """Table of each z symbol: its channel's learned scale, in float64. ``(Z,) -> z_shape``."""
        index = self.z_tables.index(self.z_scales(torch.float64).detach())  # (Z,)
        return index.view(1, -1, 1, 1, 1).expand(z_shape)

    def _y_index(self, z_symbols: Tensor) -> Tensor:
        """Table of each y symbol from the integer z symbols, all in float64 (both sides)."""
        z_hat = z_symbols.to(torch.float64) + self.z_mean.detach().to(torch.float64).view(1, -1, 1, 1, 1)
        return self.y_tables.index(self.bounded_scales(_float64_call(self.h_s, z_hat)))

    def _exact_z_symbols(self, y_bound: Tensor) -> Tensor:
        """Encoder-side ``round(h_a(x) - z_mean)`` in float64, independent of thread count."""
        x = (y_bound.to(torch.float64) - self.centre) / (self.fsq_levels / 2)
        z = _float64_call(self.h_a, x)
        return torch.round(z - self.z_mean.detach().to(torch.float64).view(1, -1, 1, 1, 1)).to(torch.int64)

    # ------------------------------------------------------------------ training path

    def forward(self, y_bound: Tensor, symbols: Tensor, *, exact: bool | None = None) -> HyperpriorOutput:
        """Scales and rate of ``symbols`` (B, C, T, H, W) given their continuous ``y_bound``.

        ``exact`` (default: ``not self.training``) takes ``z_symbols`` and the y tables from the
        float64 coding path, so the bits are exactly what ``compress`` spends; otherwise from
        the float32 training path (a rare flip at a table midpoint moves the rate term by a
        fraction of a bit and never the gradients).
        """
        self._check_latent(y_bound, symbols)
        exact = not self.training if exact is None else exact
        shape5 = (1, -1, 1, 1, 1)
        with torch.autocast(device_type=y_bound.device.type, enabled=False):
            y_bound = y_bound.float()
            z = self.h_a((y_bound - self.centre) / (self.fsq_levels / 2))  # (B, Z, T', H', W')
            z_centred = z - self.z_mean.view(shape5)
            z_hat = round_ste(z_centred) + self.z_mean.view(shape5)
            scales_hat = self.bounded_scales(self.h_s(z_hat))  # (B, C, T, H, W)
            z_scale = self.z_scales().view(shape5)
            bits_y_cont = gaussian_bits(y_bound - self.centre, scales_hat).flatten(1).sum(1)
            bits_z_cont = gaussian_bits(z_centred, z_scale).flatten(1).sum(1)

        with torch.no_grad():
            if exact:
                z_symbols = self._exact_z_symbols(y_bound)
                y_index = self._y_index(z_symbols)
            else:
                z_symbols = torch.round(z_centred).to(torch.int64)
                y_index = self.y_tables.index(scales_hat)
            bits_y_int = self.y_tables.bits(symbols, y_index).to(torch.float64).flatten(1).sum(1)
            bits_z_int = self.z_tables.bits(z_symbols, self._z_index(z_symbols.shape))
            bits_z_int = bits_z_int.to(torch.float64).flatten(1).sum(1)

        return HyperpriorOutput(
            scales_hat=scales_hat,
            z_symbols=z_symbols,
            bits_y=bits_y_int.float() + (bits_y_cont - bits_y_cont.detach()),
            bits_z=bits_z_int.float() + (bits_z_cont - bits_z_cont.detach()),
        )

    @torch.no_grad()
    def estimate_bits(self, y_bound: Tensor, symbols: Tensor) -> float:
        """Exact bits ``compress`` spends on the whole batch (float64 path), without coding."""
        self._check_latent(y_bound, symbols)
        z_symbols = self._exact_z_symbols(y_bound)
        bits_y = self.y_tables.bits(symbols, self._y_index(z_symbols)).to(torch.float64).sum()
        bits_z = self.z_tables.bits(z_symbols, self._z_index(z_symbols.shape)).to(torch.float64).sum()
        return float(bits_y + bits_z)

    # ------------------------------------------------------------------ coding path

    @torch.no_grad()
    def compress(self, y_bound: Tensor, symbols: Tensor) -> tuple[bytes, bytes]:
        """Code one sample: ``(z_bytes, y_bytes)``; symbols in C order of ``(1, C, T, H, W)``."""
        self._check_latent(y_bound, symbols)
        if y_bound.shape[0] != 1:
            raise ValueError(f"compress codes one sample at a time, but the batch has {y_bound.shape[0]}.")
        if not bool(torch.isfinite(y_bound).all()):
            raise ValueError("y_bound must be finite to be compressed, but it holds NaN or infinity.")
        z_bytes, y_index = self.compress_z(y_bound)
        y_bytes = self.y_tables.coder().encode(symbols.cpu().numpy(), y_index.cpu().numpy())
        return z_bytes, y_bytes

    @torch.no_grad()
    def compress_z(self, y_bound: Tensor) -> tuple[bytes, Tensor]:
        """The z stream of one sample ``(1, C, T, H, W)`` and the y table index of every symbol
        (int32, same shape): what another model of y (a context model) builds on."""
        z_symbols = self._exact_z_symbols(y_bound)  # (1, Z, T', H', W')
        z_index = self._z_index(z_symbols.shape)
        z_bytes = self.z_tables.coder().encode(z_symbols.cpu().numpy(), z_index.cpu().numpy())
        return z_bytes, self._y_index(z_symbols)

    @torch.no_grad()
    def decompress_z(self, z_bytes: bytes, latent_shape: tuple[int, int, int, int]) -> Tensor:
        """Decode a z stream into the y table index of every symbol, int32 ``(1, C, T, H, W)``.

        Raises:
            ValueError: for a bad shape or bytes that are damaged.
        """
        if not isinstance(z_bytes, (bytes, bytearray)):
            raise ValueError(f"z_bytes must be bytes, got {type(z_bytes).__name__}.")
        z_index = self._z_index(self._z_shape(latent_shape)).cpu().numpy()
        z_symbols = torch.from_numpy(self.z_tables.coder().decode(z_bytes, z_index)).to(self.z_mean.device, torch.int64)
        return self._y_index(z_symbols)

    @torch.no_grad()
    def sample_y_index(self, latent_shape: tuple[int, int, int, int], rng: np.random.Generator) -> Tensor:
        """The generative order of the hyperprior: draw ``z`` from its prior (the z tables), then
        return the y table index of every symbol, int32 ``(1, C, T, H, W)``, as :meth:`decompress_z`
        does for a decoded z. A sampler of y (``ContextModel.sample``) builds on it."""
        z_index = self._z_index(self._z_shape(latent_shape)).cpu().numpy()
        z_symbols = torch.from_numpy(self.z_tables.sample(z_index, rng)).to(self.z_mean.device, torch.int64)
        return self._y_index(z_symbols)

    def _z_shape(self, latent_shape: tuple[int, int, int, int]) -> tuple[int, int, int, int, int]:
        """``(1, Z, T / m_t, H / m_y, W / m_x)`` of the hyper latent of one latent of ``latent_shape``."""
        _, t, h, w = self._check_shape(latent_shape)
        m_t, m_y, m_x = self.config.merge
        return (1, self.config.hyper_channels, t // m_t, h // m_y, w // m_x)

    @torch.no_grad()
    def decompress(self, z_bytes: bytes, y_bytes: bytes, latent_shape: tuple[int, int, int, int]) -> Tensor:
        """Decode the streams of ``compress`` into uint8 symbols ``(1, C, T, H, W)``.

        The z stream comes first: its tables depend only on the learned per-channel scales.
        Then ``z_hat -> h_s -> indexes`` (float64, as on the encoder) decode the y stream.

        Raises:
            ValueError: for a bad shape, or bytes that are damaged or were coded with other
                tables or weights.
        """
        if not isinstance(y_bytes, (bytes, bytearray)):
            raise ValueError(f"y_bytes must be bytes, got {type(y_bytes).__name__}.")
        y_index = self.decompress_z(z_bytes, latent_shape).cpu().numpy()  # (1, C, T, H, W)
        symbols = self.y_tables.coder().decode(y_bytes, y_index)
        if symbols.size and (symbols.min() < 0 or symbols.max() >= self.fsq_levels):
            raise ValueError(
                f"The y stream decoded to symbols outside [0, {self.fsq_levels - 1}]; the bytes are damaged "
                f"or were coded with other tables."
            )
        return torch.from_numpy(symbols.astype("uint8")).to(self.z_mean.device)

    # ------------------------------------------------------------------ validation

    def _check_shape(self, shape: tuple[int, ...]) -> tuple[int, int, int, int]:
        ok = isinstance(shape, (tuple, list, torch.Size)) and len(shape) == 4
        if not ok or not all(isinstance(s, numbers.Integral) and not isinstance(s, bool) and s > 0 for s in shape):
            raise ValueError(f"The latent shape must be four positive integers (C, T, H, W), got {shape!r}.")
        c, t, h, w = (int(s) for s in shape)
        if c != self.latent_channels:
            raise ValueError(f"The latent has {c} channels, but this hyperprior was built for {self.latent_channels}.")
        if any(n % m for n, m in zip((t, h, w), self.config.merge, strict=True)):
            raise ValueError(
                f"The latent grid (T, H, W) = {(t, h, w)} must be divisible by the hyperprior merge "
                f"{self.config.merge}; pad the latent to a multiple of it."
            )
        return c, t, h, w

    def _check_latent(self, y_bound: Tensor, symbols: Tensor) -> None:
        if not isinstance(y_bound, Tensor) or not y_bound.is_floating_point() or y_bound.ndim != 5:
            raise ValueError(f"y_bound must be a floating tensor of shape (B, C, T, H, W), got {_describe(y_bound)}.")
        self._check_shape(tuple(y_bound.shape[1:]))
        if not isinstance(symbols, Tensor) or symbols.shape != y_bound.shape:
            raise ValueError(
                f"symbols must have the shape of y_bound {tuple(y_bound.shape)}, got {_describe(symbols)}."
            )
        if symbols.is_floating_point() or symbols.is_complex() or symbols.dtype == torch.bool:
            raise ValueError(f"symbols must be an integer tensor (uint8 from FSQ), got dtype {symbols.dtype}.")
        if symbols.numel() and (int(symbols.min()) < 0 or int(symbols.max()) >= self.fsq_levels):
            raise ValueError(
                f"symbols must lie in [0, {self.fsq_levels - 1}] for {self.fsq_levels} FSQ levels, "
                f"got values in [{int(symbols.min())}, {int(symbols.max())}]."
            )


def _describe(x: object) -> str:
    if isinstance(x, Tensor):
        return f"shape {tuple(x.shape)} and dtype {x.dtype}"
    return type(x).__name__
