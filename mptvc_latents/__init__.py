"""mptvc-latents: compact, discrete, invertible video tokens (MPT-VC) and back."""

__version__ = "0.1.0"
