"""A small generative transformer that samples directly into the MPT-VC discrete latent.

Built only on the public API of `mptvc_latents`.
"""
