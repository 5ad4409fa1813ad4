"""Sampling the finer levels of the pyramid given the coarser ones (Matryoshka order).

The context entropy model of level k > 0 is a conditional distribution of level k's symbols
given everything its decoder knows: the coarser level of the chunk and the previous chunk's
last token frames (``entropy/context.py``). Drawing from it instead of decoding turns it into a
generator of detail: given level-0 tokens (from a token prior, or from an encoded video), each
finer level is sampled chunk by chunk, in the order the decoder would decode it::

    level 0 (given) --+--> level 1 ~ p_1(. | level 0, previous chunk) --> level 2 ~ p_2(. | level 1, ...)
    chunk c - 1 ------+

Each (chunk, level) draws from its own stream, ``numpy.random.default_rng([seed, chunk, level])``,
so the draw is reproducible on any machine (every table is integer and every draw an inverse CDF
over the integer frequencies, ``TableBank.sample``), and sampling fewer levels gives the same
coarser levels as sampling all of them: the full-detail sample refines the medium one.
"""

from __future__ import annotations

import logging

import numpy as np

from mptvc_latents.codec import MPTVC, ChunkContexts
from mptvc_latents.types import Tokens

logger = logging.getLogger(__name__)

__all__ = ["sample_finer_levels"]


def sample_finer_levels(codec: MPTVC, tokens: Tokens, levels: int | None = None, seed: int = 0) -> Tokens:
    """``tokens`` with levels ``1 .. levels - 1`` drawn from ``codec``'s context entropy models
    given level 0 of ``tokens`` (the finer levels it holds, if any, are ignored).

    Args:
        codec: a checkpoint with context tables (``mptvc train-entropy``; the shipped one has them).
        tokens: at least level 0, ``(T', H', W', C_0)`` uint8, and the video's ``info``.
        levels: how many levels the result holds (default: all of the codec's).
        seed: seeds the draw.

    Raises:
        ValueError: when the codec has no context model, or ``levels`` is out of range.
    """
    levels = codec.num_levels if levels is None else levels
    if not 1 <= levels <= codec.num_levels:
        raise ValueError(f"levels must lie in 1..{codec.num_levels} for this codec, got {levels!r}.")
    if codec.intra_period is None:
        raise ValueError(
            f"Sampling the finer levels needs a context entropy model, but checkpoint {codec.config.name!r} codes "
            f"with the scale hyperprior alone; fit one with `mptvc train-entropy`."
        )
    if not isinstance(seed, int) or seed < 0:
        raise ValueError(f"seed must be a non-negative integer, got {seed!r}.")
    if not tokens.symbols:
        raise ValueError("The tokens hold no level: level 0 is needed to sample the finer levels.")
    info, pt = tokens.info, codec.config.patch_t
    contexts = ChunkContexts(codec.intra_period, codec.num_levels)
    drawn: list[list[np.ndarray]] = [[] for _ in range(levels)]
    for c, chunk in enumerate(codec._chunks(info)):
        grid = slice(chunk.start // pt, chunk.stop // pt)
        coarser = np.ascontiguousarray(np.asarray(tokens.symbols[0][grid]).transpose(3, 0, 1, 2))  # (C_0, T', H', W')
        contexts.done(c, 0, coarser)
        for k in range(1, levels):
            context = contexts.level(c, k, coarser)
            assert context is not None
            rng = np.random.default_rng([seed, c, k])  # one stream per chunk and level
            symbols = codec.level(k).sample(codec.latent_shape(k, info, chunk), context, rng)[0].cpu().numpy()
            contexts.done(c, k, symbols)
            drawn[k].append(symbols.transpose(1, 2, 3, 0))  # (C_k, T', H', W') -> (T', H', W', C_k)
            coarser = symbols
    logger.debug("Sampled levels 1..%d of %d chunks (seed %d).", levels - 1, len(drawn[-1]), seed)
    finer = [np.concatenate(chunks) for chunks in drawn[1:]]
    return Tokens([np.asarray(tokens.symbols[0]), *finer], info)
