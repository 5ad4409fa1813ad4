"""``TokenPrior``: an autoregressive transformer over the FSQ indices of a fixed token grid.

A tiny ``transformers.LlamaModel`` (RMSNorm, SwiGLU, RoPE, SDPA) reads one sequence per window of
``t`` token frames in raster order over ``(t', h', w')``. Data flow (``N = t*h*w``, ``V = prod(L_c)``)::

    indices (B, N) --shift right, BOS first--> factorized embedding: sum_c E_c[symbol_c]   (B, N, D)
      + learned position of the token being predicted: P_t[t'] + P_h[h'] + P_w[w']
      -> LlamaModel (causal, 1-D RoPE over the raster position)                           (B, N, D)
      -> Linear head -> logits over the V indices (a direct softmax: V = 8^4 = 4096 at level 0)

The input embedding is factorized per FSQ channel (4 tables of 8 rows, not one of 4096) because
a few hundred thousand training tokens visit many of the 4096 indices rarely; the output keeps
the full joint softmax so channels stay dependent within a token. ``LlamaModel``'s own token
table is unused (one row): the embeddings come in through ``inputs_embeds``.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from pathlib import Path

import torch
import torch.nn.functional as F
from torch import Tensor, nn
from transformers import LlamaConfig, LlamaModel

from mptvc_latents.config import ConfigBase
from mptvc_latents.hub import StrictHubMixin

__all__ = ["PriorConfig", "PriorOutput", "TokenPrior"]


@dataclass(frozen=True)
class PriorConfig(ConfigBase):
    """The prior's shape, and the codec tokens it models (``codec_digest``, ``frame_size``, ``fps``)."""

    fsq_levels: tuple[int, ...] = (8, 8, 8, 8)  # level 0 of mptvc-cpu: 4 channels of 8 levels
    grid: tuple[int, int, int] = (4, 12, 16)  # (t', h', w') token frames x rows x columns
    dim: int = 128
    depth: int = 4
    heads: int = 4
    mlp_dim: int = 384
    rope_theta: float = 10000.0
    codec_digest: str = ""  # weights digest of the codec whose level-0 tokens this models
    frame_size: tuple[int, int] = (96, 128)  # (h, w) pixels of the tokenized frames
    fps: float = 25.0  # frame rate samples are written at
    level: int = 0

    def __post_init__(self) -> None:
        if len(self.grid) != 3 or min(self.grid) < 1:
            raise ValueError(f"grid must be three positive sizes (t, h, w), got {self.grid!r}.")
        if self.dim % self.heads:
            raise ValueError(f"dim={self.dim} must be a multiple of heads={self.heads}.")

    @property
    def vocab_size(self) -> int:
        return math.prod(self.fsq_levels)

    @property
    def seq_len(self) -> int:
        return math.prod(self.grid)

    @property
    def frame_tokens(self) -> int:
        return self.grid[1] * self.grid[2]


@dataclass
class PriorOutput:
    logits: Tensor  # (B, N, V) float32
    loss: Tensor | None = None  # mean cross-entropy in nats over the targets
    cache: object = field(default=None, repr=False)  # the transformers KV cache, when asked for


class TokenPrior(
    nn.Module,
    StrictHubMixin,
    library_name="mptvc-latents",
    tags=["video", "generation", "token-prior"],
    coders={PriorConfig: (PriorConfig.to_dict, PriorConfig.from_dict)},
):
    """p(index_i | index_<i) over one token grid; ``forward(idx, targets) -> PriorOutput``.

    ``TokenPrior.from_pretrained(folder)`` loads strictly (default: the prior shipped in
    ``generation/checkpoints``).
    """

    @classmethod
    def default_checkpoint_dir(cls) -> Path:
        from generation.pretrained import default_prior_dir

        return default_prior_dir()

    def __init__(self, config: PriorConfig) -> None:
        super().__init__()
        if isinstance(config, dict):
            config = PriorConfig.from_dict(config)
        self.config = config
        d = config.dim
        self.symbol_embed = nn.ModuleList(nn.Embedding(levels, d) for levels in config.fsq_levels)
        self.bos = nn.Parameter(torch.zeros(d))
        self.pos_t, self.pos_h, self.pos_w = (nn.Embedding(n, d) for n in config.grid)
        llama = LlamaConfig(
            vocab_size=1,  # unused: embeddings come in through inputs_embeds
            hidden_size=d,
            intermediate_size=config.mlp_dim,
            num_hidden_layers=config.depth,
            num_attention_heads=config.heads,
            num_key_value_heads=config.heads,
            max_position_embeddings=config.seq_len,
            rope_parameters={"rope_type": "default", "rope_theta": config.rope_theta},
            bos_token_id=None,
            eos_token_id=None,
            attn_implementation="sdpa",
        )
        self.backbone = LlamaModel(llama)
        self.head = nn.Linear(d, config.vocab_size)
        levels = torch.tensor(config.fsq_levels, dtype=torch.int64)
        basis = torch.cumprod(torch.cat([torch.ones(1, dtype=torch.int64), levels[:-1]]), 0)  # as FSQ's
        self.register_buffer("levels", levels, persistent=False)
        self.register_buffer("basis", basis, persistent=False)
        for emb in (*self.symbol_embed, self.pos_t, self.pos_h, self.pos_w):
            nn.init.normal_(emb.weight, std=0.02)
        nn.init.normal_(self.head.weight, std=0.02)
        nn.init.zeros_(self.head.bias)

    # ------------------------------------------------------------------ pieces

    def embed_indices(self, idx: Tensor) -> Tensor:
        """int64 indices ``(B, n)`` -> ``(B, n, D)``: the sum of the per-channel symbol embeddings."""
        symbols = torch.div(idx[..., None], self.basis, rounding_mode="floor") % self.levels  # (B, n, C)
        return sum(emb(symbols[..., c]) for c, emb in enumerate(self.symbol_embed))

    def position_embed(self, start: int, n: int) -> Tensor:
        """``(n, D)``: the learned (t', h', w') embedding of raster positions ``start .. start+n``."""
        _, h, w = self.config.grid
        pos = torch.arange(start, start + n, device=self.bos.device)
        return self.pos_t(pos // (h * w)) + self.pos_h(pos // w % h) + self.pos_w(pos % w)

    def _inputs(self, idx: Tensor) -> Tensor:
        """Teacher forcing: slot i holds token i-1 (BOS at 0) plus the position of token i. ``(B, N, D)``."""
        b, n = idx.shape
        prev = self.embed_indices(idx[:, :-1])  # (B, n-1, D)
        bos = self.bos.expand(b, 1, -1)  # (B, 1, D)
        return torch.cat([bos, prev], 1) + self.position_embed(0, n)

    # ------------------------------------------------------------------ training / scoring

    def forward(self, idx: Tensor, targets: Tensor | None = None) -> PriorOutput:
        """Next-index logits for a batch of raster-order index sequences ``idx (B, n)``, ``n <= N``.

        ``targets`` (usually ``idx`` itself) gives the mean cross-entropy in nats.
        """
        if idx.ndim != 2 or idx.shape[1] > self.config.seq_len or idx.shape[1] == 0:
            raise ValueError(
                f"idx must be (batch, n) with 1 <= n <= {self.config.seq_len} tokens, got shape {tuple(idx.shape)}."
            )
        if bool((idx < 0).any()) or bool((idx >= self.config.vocab_size).any()):
            raise ValueError(f"indices must lie in [0, {self.config.vocab_size}), the FSQ codebook of the prior.")
        hidden = self.backbone(inputs_embeds=self._inputs(idx), use_cache=False).last_hidden_state  # (B, n, D)
        logits = self.head(hidden).float()  # (B, n, V)
        loss = None if targets is None else F.cross_entropy(logits.flatten(0, 1), targets.flatten())
        return PriorOutput(logits, loss)

    @torch.no_grad()
    def bits(self, idx: Tensor) -> Tensor:
        """Code length of every index in bits, ``-log2 p(idx_i | idx_<i)``: ``(B, n)`` float64."""
        logp = torch.log_softmax(self.forward(idx).logits.double(), -1)  # (B, n, V)
        return -logp.gather(-1, idx[..., None])[..., 0] / math.log(2)

    # ------------------------------------------------------------------ incremental (sampling)

    def step(self, embeds: Tensor, start: int, cache: object | None) -> PriorOutput:
        """Run input slots ``start .. start+n`` (embeddings ``(B, n, D)`` without positions) on a KV cache."""
        from transformers import DynamicCache

        cache = DynamicCache() if cache is None else cache
        n = embeds.shape[1]
        x = embeds + self.position_embed(start, n)
        positions = torch.arange(start, start + n, device=x.device)[None]  # (1, n)
        out = self.backbone(inputs_embeds=x, position_ids=positions, cache=cache, use_cache=True)
        return PriorOutput(self.head(out.last_hidden_state[:, -1:]).float()[:, 0], cache=cache)  # (B, V)
