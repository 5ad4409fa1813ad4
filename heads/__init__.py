"""Detection and multi-object tracking heads trained on frozen MPT-VC tokens.

Built only on the public API of `mptvc_latents`.
"""
