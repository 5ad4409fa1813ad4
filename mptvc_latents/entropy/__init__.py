"""Entropy coding: integer CDF tables, the Gaussian table bank and the scale hyperprior."""

from mptvc_latents.entropy.cdf import PRECISION, discretized_gaussian_pmf, quantize_pmf, scale_table
from mptvc_latents.entropy.hyperprior import HyperpriorOutput, ScaleHyperprior
from mptvc_latents.entropy.tables import GaussianTableBank

__all__ = [
    "PRECISION",
    "GaussianTableBank",
    "HyperpriorOutput",
    "ScaleHyperprior",
    "discretized_gaussian_pmf",
    "quantize_pmf",
    "scale_table",
]
