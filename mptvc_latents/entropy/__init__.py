"""Entropy coding: integer CDF tables, the Gaussian table bank and the scale hyperprior."""

from mptvc_latents.entropy.cdf import (
    PRECISION,
    IdealCost,
    discretized_gaussian_pmf,
    ideal_bits,
    quantize_pmf,
    sample_from_tables,
    scale_table,
    validate_tables,
)
from mptvc_latents.entropy.hyperprior import HyperpriorOutput, ScaleHyperprior
from mptvc_latents.entropy.tables import GaussianTableBank

__all__ = [
    "PRECISION",
    "GaussianTableBank",
    "HyperpriorOutput",
    "IdealCost",
    "ScaleHyperprior",
    "discretized_gaussian_pmf",
    "ideal_bits",
    "quantize_pmf",
    "sample_from_tables",
    "scale_table",
    "validate_tables",
]
