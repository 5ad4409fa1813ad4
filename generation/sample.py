"""Sampling level-0 token videos from a :class:`TokenPrior` and decoding them with the codec.

::

    BOS -> prior.step -> logits / temperature -> top-k -> multinomial (seeded torch.Generator) -> index
      ... raster order over the first window of t' token frames (KV cache);
      longer videos slide: each further token frame is sampled with the previous t'-1 frames as context
    indices (t', h', w') -> FSQ symbols (t', h', w', C_0) -> codec.decode(k_max=0) -> uint8 (T, H, W, 3)

The prior samples level 0; with ``levels > 1`` each finer level is then drawn given the coarser
ones, by a detail prior (``finer="detail"``, the default: ``generation.detail``, spatial context
in checkerboard order) or by the codec's context entropy model (``finer="context"``:
``mptvc_latents.sampling.sample_finer_levels``, no spatial context), so the sample decodes at the
medium or full prefix. With ``levels = 1`` the codec decodes level 0 alone (the Matryoshka prefix property) at the
preview level's detail.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
import torch
from torch import Tensor

from generation.detail import DetailPrior
from generation.model import TokenPrior
from mptvc_latents.codec import MPTVC
from mptvc_latents.config import ConfigBase
from mptvc_latents.sampling import sample_finer_levels
from mptvc_latents.types import Padding, Tokens, VideoInfo

__all__ = [
    "FINER",
    "SampleConfig",
    "check_codec",
    "decode_sample",
    "draw",
    "load_shipped_detail",
    "sample_finer",
    "sample_indices",
    "sample_symbols",
    "sample_videos",
    "segments",
    "token_frames_for",
    "walk",
]


FINER = ("detail", "context")


@dataclass(frozen=True)
class SampleConfig(ConfigBase):
    """How to sample: ``frames`` video frames; ``top_k = 0`` keeps every index; ``top_k = 1`` is greedy."""

    frames: int = 32
    seed: int = 0
    temperature: float = 1.0
    top_k: int = 0
    levels: int | None = None  # pyramid levels sampled and decoded (None: all of the codec's)
    finer: str = "detail"  # what draws levels 1..: "detail" (the detail priors) or "context" (the codec's)
    patch_t: int = 4  # video frames per token frame (the codec's)
    temporal_multiple: int = 8  # the codec codes whole multiples of this many frames

    def __post_init__(self) -> None:
        if not isinstance(self.frames, int) or self.frames < 1:
            raise ValueError(f"frames must be a positive number of video frames, got {self.frames!r}.")
        if not self.temperature > 0 or not np.isfinite(self.temperature):
            raise ValueError(
                f"temperature must be a positive number (use --top-k 1 for greedy), got {self.temperature}."
            )
        if not isinstance(self.top_k, int) or self.top_k < 0:
            raise ValueError(f"top_k must be 0 (no limit) or a positive number of indices, got {self.top_k!r}.")
        if self.levels is not None and (not isinstance(self.levels, int) or self.levels < 1):
            raise ValueError(f"levels must be a positive number of pyramid levels (or None: all), got {self.levels!r}.")
        if self.finer not in FINER:
            raise ValueError(
                f"finer must be one of {', '.join(FINER)} (what draws the finer levels), got {self.finer!r}."
            )

    @property
    def token_frames(self) -> int:
        padded = -(-self.frames // self.temporal_multiple) * self.temporal_multiple
        return padded // self.patch_t


def token_frames_for(codec: MPTVC, config: SampleConfig) -> SampleConfig:
    """``config`` with the codec's temporal geometry (patch_t, temporal_multiple)."""
    c = codec.config
    return dataclasses.replace(config, patch_t=c.patch_t, temporal_multiple=c.temporal_multiple)


def draw(logits: Tensor, temperature: float, top_k: int, generator: torch.Generator) -> Tensor:
    """One index per row of ``logits (B, V)``: softmax(logits / temperature) restricted to the top ``top_k``."""
    logits = logits.float() / temperature
    if 0 < top_k < logits.shape[-1]:
        kth = torch.topk(logits, top_k, dim=-1).values[:, -1:]  # (B, 1)
        logits = logits.masked_fill(logits < kth, float("-inf"))
    probs = torch.softmax(logits, dim=-1)
    return torch.multinomial(probs, 1, generator=generator)[:, 0]  # (B,)


def segments(prior: TokenPrior, token_frames: int) -> list[tuple[int, int, int]]:
    """The autoregressive schedule over ``token_frames`` token frames: ``(context_start, start, stop)``
    raster positions per segment. The first segment is the first window (no context); each further
    token frame is one segment with the ``t'-1`` frames before it as context (a sliding window)."""
    window, per_frame = prior.config.grid[0], prior.config.frame_tokens
    out = [(0, 0, min(window, token_frames) * per_frame)]
    for f in range(window, token_frames):
        out.append(((f - window + 1) * per_frame, f * per_frame, (f + 1) * per_frame))
    return out


Choose = Callable[[Tensor, int], Tensor]


@torch.no_grad()
def walk(prior: TokenPrior, token_frames: int, choose: Choose, batch: int = 1) -> Tensor:
    """Run the prior over ``token_frames`` token frames in raster order, on its KV cache.

    ``choose(logits (B, V), position) -> index (B,)`` picks each token: a draw when sampling, the
    known token when encoding, the decoded one when decoding. All three take exactly this path
    (same calls, same shapes), so an encoder and a decoder on one machine see identical logits.
    Returns the chosen indices ``(B, token_frames * h' * w')`` int64.
    """
    out = torch.zeros(batch, token_frames * prior.config.frame_tokens, dtype=torch.int64)
    for context, start, stop in segments(prior, token_frames):
        # Prefill BOS + context, then one token at a time on the KV cache.
        bos = prior.bos.expand(batch, 1, -1)
        embeds = (
            torch.cat([bos, prior.embed_indices(out[:, context:start])], 1) if start > context else bos
        )  # (B, 1+n, D)
        pos, cache = 0, None
        for i in range(start, stop):
            step = prior.step(embeds, pos, cache)
            cache, pos = step.cache, pos + embeds.shape[1]
            out[:, i] = choose(step.logits, i)  # (B,)
            embeds = prior.embed_indices(out[:, i : i + 1])  # (B, 1, D)
    return out


def sample_indices(prior: TokenPrior, config: SampleConfig, batch: int = 1) -> Tensor:
    """Raster-order indices ``(batch, t', h', w')`` int64 with ``t' = config.token_frames``."""
    _, h, w = prior.config.grid
    g = torch.Generator().manual_seed(config.seed)
    out = walk(prior, config.token_frames, lambda logits, _: draw(logits, config.temperature, config.top_k, g), batch)
    return out.view(batch, config.token_frames, h, w)  # (B, t'*h'*w') -> (B, t', h', w')


def sample_symbols(prior: TokenPrior, config: SampleConfig) -> np.ndarray:
    """One sample as FSQ symbols, uint8 ``(t', h', w', C_0)`` as a token store holds them."""
    idx = sample_indices(prior, config)[0]  # (t', h', w')
    symbols = torch.div(idx[..., None], prior.basis, rounding_mode="floor") % prior.levels  # (t', h', w', C)
    return symbols.to(torch.uint8).numpy()


def sample_finer(
    codec: MPTVC,
    tokens: Tokens,
    levels: int,
    seed: int = 0,
    finer: str = "detail",
    detail: dict[int, DetailPrior] | None = None,
) -> Tokens:
    """``tokens`` (level 0 and the video's info) with levels ``1 .. levels-1`` drawn given the coarser
    ones: by the detail priors (``detail``, one per level, default the shipped ones) or by the codec's
    context models. Level k draws from ``seed * 1000 + k`` (the detail priors) or from the codec's
    per-chunk streams (the context models), so sampling fewer levels gives the same coarser ones."""
    if not 1 <= levels <= codec.num_levels:
        raise ValueError(f"levels must lie in 1..{codec.num_levels} for this codec, got {levels!r}.")
    if finer == "context":
        return sample_finer_levels(codec, tokens, levels, seed)
    if finer != "detail":
        raise ValueError(f"finer must be one of {', '.join(FINER)}, got {finer!r}.")
    priors = load_shipped_detail() if detail is None else detail
    symbols = [np.asarray(tokens.symbols[0])]
    for k in range(1, levels):
        prior = priors.get(k)
        if prior is None:
            raise ValueError(
                f"No detail prior draws level {k}; pass one per finer level (mptvc prior-train --level {k})."
            )
        check_codec(prior.config.codec_digest, codec, f"the detail prior of level {k}")
        symbols.append(prior.sample(np.concatenate(symbols, -1), seed=seed * 1000 + k))
    return Tokens(symbols, tokens.info)


def load_shipped_detail() -> dict[int, DetailPrior]:
    """The shipped detail priors by level (``generation/checkpoints/detail-l*``)."""
    from generation.detail import load_detail_priors
    from generation.pretrained import shipped_detail_dirs

    return load_detail_priors(shipped_detail_dirs())


def check_codec(digest: str, codec: MPTVC, what: str) -> None:
    """Raise unless ``digest`` (a model's record of the codec it learned from) is ``codec``'s."""
    if digest and codec.weights_digest() != digest:
        raise ValueError(
            f"{what[0].upper() + what[1:]} models the tokens of another codec checkpoint (digest {digest[:12]}...) "
            f"than {codec.config.name!r} ({codec.weights_digest()[:12]}...); pass the codec it was trained on "
            "(mptvc generate --ckpt)."
        )


def decode_sample(
    codec: MPTVC,
    symbols: np.ndarray,
    frames: int,
    fps: float,
    levels: int | None = 1,
    seed: int = 0,
    finer: str = "detail",
    detail: dict[int, DetailPrior] | None = None,
) -> np.ndarray:
    """Level-0 symbols ``(t', h', w', C_0)`` -> uint8 video ``(frames, H, W, 3)``: the finer levels up
    to ``levels`` (None: all) drawn with ``sample_finer``, then ``codec.decode(k_max=levels - 1)``."""
    t, h, w, _ = symbols.shape
    c = codec.config
    padded = t * c.patch_t
    if not frames <= padded < frames + c.temporal_multiple or padded % c.temporal_multiple:
        raise ValueError(f"{t} token frames do not make {frames} video frames for this codec.")
    info = VideoInfo(
        frames, h * c.patch, w * c.patch, float(fps), Padding(t=padded - frames, h=0, w=0), np.zeros(padded, np.int32)
    )
    tokens = Tokens([np.ascontiguousarray(symbols)], info)
    levels = codec.num_levels if levels is None else levels
    if levels > 1:
        tokens = sample_finer(codec, tokens, levels, seed, finer, detail)
    return codec.decode(tokens, k_max=levels - 1)


def sample_videos(
    prior: TokenPrior,
    codec: MPTVC,
    config: SampleConfig,
    seeds: list[int],
    detail: dict[int, DetailPrior] | None = None,
) -> list[np.ndarray]:
    """One decoded uint8 video ``(frames, H, W, 3)`` per seed, each exactly what ``mptvc generate --seed`` writes."""
    config = token_frames_for(codec, config)
    levels = codec.num_levels if config.levels is None else config.levels
    if config.finer == "detail" and levels > 1 and detail is None:
        detail = load_shipped_detail()
    videos = []
    for seed in seeds:
        one = dataclasses.replace(config, seed=seed)
        symbols = sample_symbols(prior, one)
        videos.append(
            decode_sample(codec, symbols, config.frames, prior.config.fps, config.levels, seed, config.finer, detail)
        )
    return videos
