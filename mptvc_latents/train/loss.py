"""The rate-distortion objective of MPT-VC.

    L = sum_k  w_k * MSE_255(x_hat_k, G_k)  +  lambda_k * R_k

``MSE_255`` is the mean squared error on the 0..255 scale at level k's own resolution, over R, G
and B, or (``color``, :func:`ycbcr_projection`) a weighted sum of the squared errors of BT.709 Y,
Cb and Cr, the space video codecs are measured in (e.g. PSNR-YUV with weights 6:1:1);
``R_k`` is level k's rate in bits per full-resolution pixel, taken from the hyperprior's
exact integer-table bits (the coder's own cost; gradients from the continuous relaxation).
A larger ``lambda_k`` buys fewer bits at level k. The returned loss is divided by 255^2 (an
MSE on the 0..1 scale plus ``lambda_k / 255^2`` times the rate) so gradient norms are O(1).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
from torch import Tensor

from mptvc_latents.codec import CodecOutput
from mptvc_latents.eval.metrics import BT709_YCBCR

__all__ = ["RDLoss", "rd_loss", "ycbcr_projection"]


@dataclass
class RDLoss:
    loss: Tensor
    mse: list[float]  # per level, 0..255 scale (the distortion the loss weighs: RGB or weighted YCbCr)
    psnr: list[float]  # per level (at the level's resolution), of that distortion
    bpp: list[float]  # per level, own bits per full-resolution pixel


def ycbcr_projection(weights: tuple[float, float, float]) -> Tensor:
    """``(3, 3)`` rows ``sqrt(w_c / sum(w)) * BT709_YCBCR[c]``: the sum over its outputs of the squared
    projected RGB error is the ``weights``-weighted mean of the Y, Cb and Cr squared errors."""
    w = torch.tensor(weights, dtype=torch.float64)
    if w.shape != (3,) or not bool(torch.all(w >= 0)) or not float(w.sum()) > 0:
        raise ValueError(f"The Y, Cb and Cr weights must be three numbers, 0 or more, not all 0, got {weights!r}.")
    rows = torch.sqrt(w / w.sum())[:, None] * torch.from_numpy(BT709_YCBCR)
    return rows.float()


def _squared_error(e: Tensor, color: Tensor | None) -> Tensor:
    """Mean squared error of ``e`` (B, 3, T, H, W): over R, G and B, or weighted in YCbCr by ``color``."""
    if color is None:
        return torch.mean(e**2)
    e = torch.einsum("dc,bcthw->bdthw", color.to(e.device, e.dtype), e)  # (B, 3, T, H, W): weighted Y, Cb, Cr
    return torch.mean(e**2) * e.shape[1]  # the weights sum to 1: sum over the channels, mean over pixels


def rd_loss(
    out: CodecOutput,
    lambdas: tuple[float, ...],
    weights: tuple[float, ...],
    pixels: int,
    color: Tensor | None = None,
) -> RDLoss:
    """Combine the levels present in ``out``; ``pixels`` is B * T * H * W at full resolution;
    ``color`` (:func:`ycbcr_projection`) measures the distortion in weighted YCbCr, None over RGB."""
    total = torch.zeros((), device=out.recon[0].device)
    mse, psnr, bpp = [], [], []
    for k, (recon, target) in enumerate(zip(out.recon, out.targets, strict=True)):
        d = _squared_error(recon - target, color) * 127.5**2  # [-1, 1] -> 0..255 scale
        r = (out.bits_y[k].sum() + out.bits_z[k].sum()) / pixels
        total = total + weights[k] * d + lambdas[k] * r
        mse.append(d.item())
        psnr.append(10 * math.log10(255.0**2 / max(d.item(), 1e-10)))
        bpp.append(r.item())
    return RDLoss(total / 255.0**2, mse, psnr, bpp)
