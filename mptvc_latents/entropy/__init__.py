"""Entropy coding: integer CDF tables and the range-coder backend."""

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

__all__ = [
    "PRECISION",
    "IdealCost",
    "discretized_gaussian_pmf",
    "ideal_bits",
    "quantize_pmf",
    "sample_from_tables",
    "scale_table",
    "validate_tables",
]
