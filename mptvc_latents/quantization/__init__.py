"""Quantizers: finite scalar quantization (FSQ)."""

from mptvc_latents.quantization.fsq import FSQ, FSQOutput, round_ste

__all__ = ["FSQ", "FSQOutput", "round_ste"]
