"""A small generative transformer that samples directly into the MPT-VC discrete latent.

Built only on the public API of `mptvc_latents` (``docs/generation.md``):

- ``data``: token stores at one fixed frame size (``tokenize_fixed``), level-0 index windows.
- ``model``: ``TokenPrior``, a tiny ``transformers.LlamaModel`` over raster-order FSQ indices.
- ``train``: resumable CPU training with a JSON log; ``evaluate``: bits/token against the codec's rate.
- ``sample``: seeded sampling with temperature and top-k, decoding with the codec at level 0; ``walk``,
  the one autoregressive pass that sampling and coding share.
- ``coding``: lossless recompression of level-0 tokens, the prior driving the rANS coder.
- ``demo``: the prior's part of ``make demo``.
- ``images``: GIF, PNG and grids through PyAV; ``grid``: the sample grid of the docs.
- ``cli``: ``mptvc generate``, ``prior-tokenize``, ``prior-train``, ``prior-eval``.
- ``pretrained``: the prior shipped in ``generation/checkpoints/prior-l0-96x128``.
"""
