"""Token stores as Hugging Face ``datasets``: one Arrow row per clip, cached by checkpoint and file list.

``load_token_dataset("videos/", ckpt="ckpt/")`` tokenizes a folder (through ``mptvc_latents.store``)
or reads an existing store (``store=...``) and returns a ``datasets.Dataset`` (see ``builder``).
"""

from mptvc_latents.hf.builder import MptvcTokens, MptvcTokensConfig, SymbolDataset, load_token_dataset, token_features

__all__ = ["MptvcTokens", "MptvcTokensConfig", "SymbolDataset", "load_token_dataset", "token_features"]
