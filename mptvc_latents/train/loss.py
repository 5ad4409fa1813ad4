"""The rate-distortion objective of MPT-VC.

    L = sum_k  w_k * MSE_255(x_hat_k, G_k)  +  lambda_k * R_k

``MSE_255`` is the mean squared error on the 0..255 scale at level k's own resolution;
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

__all__ = ["RDLoss", "rd_loss"]


@dataclass
class RDLoss:
    loss: Tensor
    mse: list[float]  # per level, 0..255 scale
    psnr: list[float]  # per level (at the level's resolution)
    bpp: list[float]  # per level, own bits per full-resolution pixel


def rd_loss(out: CodecOutput, lambdas: tuple[float, ...], weights: tuple[float, ...], pixels: int) -> RDLoss:
    """Combine the levels present in ``out``; ``pixels`` is B * T * H * W at full resolution."""
    total = torch.zeros((), device=out.recon[0].device)
    mse, psnr, bpp = [], [], []
    for k, (recon, target) in enumerate(zip(out.recon, out.targets, strict=True)):
        d = torch.mean((recon - target) ** 2) * 127.5**2  # [-1, 1] -> 0..255 scale
        r = (out.bits_y[k].sum() + out.bits_z[k].sum()) / pixels
        total = total + weights[k] * d + lambdas[k] * r
        mse.append(d.item())
        psnr.append(10 * math.log10(255.0**2 / max(d.item(), 1e-10)))
        bpp.append(r.item())
    return RDLoss(total / 255.0**2, mse, psnr, bpp)
