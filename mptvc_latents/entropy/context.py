"""A context entropy model for one pyramid level: integer contexts into a bank of learned tables.

When level k of chunk n is decoded, the decoder already knows the hyper latent of the level,
the coarser levels of the chunk and the token frames decoded before. Each FSQ symbol
``s[c, t, h, w]`` is coded with the table of its context, a mixed-radix integer of

- ``scale``: the hyperprior's table index of the symbol (``ScaleHyperprior``; its z stream is
  sent as before), in ``scale_bins`` bins — from level ``ContextConfig.hyper_from`` on: the
  coarsest level sends no z at all, since there the temporal context says more than z costs
  (measured on held-out data: -16 to -23% of level-0 bits without z);
- ``temporal``: the symbol at the same channel and position one token frame earlier (the last
  frame of the previous chunk for ``t = 0``; "none" in the first frame of an intra chunk);
- ``coarser`` (levels k > 0): how many channels of level k-1 changed at that position from the
  previous token frame (0, 1, 2 or more; "unknown" where the previous frame is not available):
  where the coarser level is static, the finer residual tends to repeat too;
- ``channel``: the channel ``c``;
- ``channel changes``: how many of the channels ``< c`` at that position changed from the
  previous token frame (0, 1, 2 or more): a cheap, local motion detector. Channels of a frame
  are then decoded one after another.

Token frames are coded in time order, each frame's contexts computed from what precedes it,
so the decoder decodes one frame per ``StreamDecoder.decode_many`` call. Every decision is
integer arithmetic on symbols and table indexes, and the tables are int32 buffers saved in the
checkpoint: encoder and decoder use identical tables on any machine and thread count.

Why categorical tables and not a Gaussian: FSQ alphabets are small (8 to 10 values), and given
the previous symbol the distribution is sharply peaked at that value with asymmetric, often
bimodal tails that a zero-mean (or even a mean-shifted) Gaussian cannot follow; measured on val
tokens (BENCHMARKS.md), the learned tables spend 25-57% fewer bits per symbol than the scale
hyperprior at level 0 and 3-44% fewer at the finer levels. The tables are fitted from symbol
counts over token stores (``mptvc train-entropy``), smoothed towards the level's marginal.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
import torch

from mptvc_latents.coder import StreamDecoder
from mptvc_latents.config import ContextConfig
from mptvc_latents.entropy.cdf import quantize_pmf
from mptvc_latents.entropy.tables import TableBank

logger = logging.getLogger(__name__)

__all__ = ["ContextModel", "LevelContext", "check_sent", "repeat_skipped"]


@dataclass
class LevelContext:
    """What the decoder of level k knows besides the level's own stream, for one chunk.

    ``coarser``: uint8 symbols ``(C_{k-1}, T', H', W')`` of level k-1 in this chunk (``None`` at
    level 0); ``previous`` and ``coarser_previous``: the last token frame ``(C, H', W')`` of
    this level and of level k-1 in the previous chunk (``None`` in an intra chunk).
    """

    coarser: np.ndarray | None = None
    previous: np.ndarray | None = None
    coarser_previous: np.ndarray | None = None


class ContextModel(TableBank):
    """Learned tables ``p(s | context)`` for the symbols of one level (see the module docstring).

    Args:
        config: which contexts to use.
        levels: ``L``, the FSQ levels of every channel (symbols in ``[0, L)``).
        channels: ``C``, latent channels of the level.
        has_coarser: whether a coarser level exists (k > 0).
        n_scales: number of tables of the hyperprior's y bank (its table indexes are ``[0, n_scales)``).
        uses_hyper: whether the level sends its hyper latent z and conditions on the scale bin;
            without it (``ContextConfig.hyper_from`` above the level) there is no z stream at all.

    Buffers (persistent, int32): ``cdfs (n, L + 2)``, ``cdf_lengths (n,)``, ``offsets (n,)``.
    Until :meth:`fit` the tables are uniform.
    """

    def __init__(
        self, config: ContextConfig, levels: int, channels: int, has_coarser: bool, n_scales: int, uses_hyper: bool
    ) -> None:
        super().__init__()
        self.config, self.levels, self.channels, self.n_scales = config, levels, channels, n_scales
        self.uses_hyper = uses_hyper
        # Radices of (scale bin, previous symbol or "none", coarser change or "unknown", channel,
        # earlier channels changed or "unknown").
        self.radix = (
            config.scale_bins if uses_hyper else 1,
            levels + 1 if config.temporal else 1,
            4 if (config.coarser and has_coarser) else 1,
            channels if config.channels else 1,
            4 if (config.channel_changes and config.temporal) else 1,
        )
        n = int(np.prod(self.radix))
        cdfs = quantize_pmf(np.ones((n, levels)))
        self.set_tables(cdfs, np.full(n, cdfs.shape[1], np.int32), np.zeros(n, np.int32))

    @property
    def num_contexts(self) -> int:
        return int(self.cdfs.shape[0])

    def extra_repr(self) -> str:
        return f"contexts={self.num_contexts} (scale, temporal, coarser, channel, channel-change radices {self.radix})"

    # ------------------------------------------------------------------ contexts

    def frame_contexts(
        self,
        scale_index: np.ndarray,
        previous: np.ndarray | None,
        coarser: np.ndarray | None,
        coarser_previous: np.ndarray | None,
        current: np.ndarray | None = None,
    ) -> np.ndarray:
        """Context of every symbol of one token frame: int32 ``(C, H', W')``.

        ``scale_index (C, H', W')`` are the hyperprior's table indexes of the frame; ``previous``
        the same level one frame earlier (``(C, H', W')`` or ``None``); ``coarser`` and
        ``coarser_previous`` level k-1 in this frame and the one before (``(C', H', W')``);
        ``current`` the frame's own symbols (``(C, H', W')``): channel c's context reads only
        its channels ``< c`` (how many of them changed from the previous frame), so a decoder
        that has filled channels ``0 .. c-1`` gets channel c's context right.
        """
        c, h, w = scale_index.shape
        r_scale, r_prev, r_coarse, r_chan, r_changes = self.radix
        ctx = scale_index.astype(np.int64) * r_scale // self.n_scales  # (C, H, W) in [0, scale_bins)
        if r_prev > 1:
            prev = np.full((c, h, w), self.levels, np.int64) if previous is None else previous.astype(np.int64)
            ctx = ctx * r_prev + prev
        if r_coarse > 1:
            if coarser is None or coarser_previous is None:
                change = np.full((h, w), 3, np.int64)
            else:
                change = np.minimum((coarser != coarser_previous).sum(0), 2).astype(np.int64)  # (H, W)
            ctx = ctx * r_coarse + change[None]
        if r_chan > 1:
            ctx = ctx * r_chan + np.arange(c, dtype=np.int64)[:, None, None]
        if r_changes > 1:
            changes = np.full((c, h, w), 3, np.int64)  # "unknown": channel 0, or no previous frame
            if previous is not None and current is not None and c > 1:
                changed = (current[:-1] != previous[:-1]).astype(np.int64)  # (C - 1, H, W)
                changes[1:] = np.minimum(np.cumsum(changed, axis=0), 2)  # channels 0 .. c-1 that changed
            ctx = ctx * r_changes + changes
        return ctx.astype(np.int32)

    def contexts(self, symbols: np.ndarray, scale_index: np.ndarray, context: LevelContext) -> np.ndarray:
        """Contexts of every symbol of a chunk, int32 ``(C, T', H', W')``, frame by frame in time order."""
        out = np.empty(symbols.shape, np.int32)
        previous, coarser_previous = context.previous, context.coarser_previous
        for t in range(symbols.shape[1]):
            coarser = None if context.coarser is None else context.coarser[:, t]
            out[:, t] = self.frame_contexts(scale_index[:, t], previous, coarser, coarser_previous, symbols[:, t])
            previous, coarser_previous = symbols[:, t], coarser
        return out

    # ------------------------------------------------------------------ coding

    def encode(
        self, symbols: np.ndarray, scale_index: np.ndarray, context: LevelContext, sent: np.ndarray | None = None
    ) -> bytes:
        """Code one chunk's symbols ``(C, T', H', W')`` of this level, frame by frame: bytes.

        ``sent`` (bool ``(T',)``, rate control): only these token frames are coded; every other
        frame must already equal the frame before it (:func:`repeat_skipped`), which is what the
        decoder fills in, and the contexts of later frames read it.
        """
        self._check(symbols, scale_index)
        ctx = self.contexts(symbols, scale_index, context)
        frames = check_sent(sent, symbols)
        skipped = np.flatnonzero(~frames)
        if not np.array_equal(symbols[:, skipped], symbols[:, skipped - 1]):
            raise ValueError(
                "A token frame that is not sent must repeat the frame before it (what the decoder fills in); "
                "pass the symbols through repeat_skipped first."
            )
        # (C, T', H', W') -> (T', C, H', W'): the stream holds one frame after another.
        return self.coder().encode(
            symbols.transpose(1, 0, 2, 3)[frames].astype(np.int32), ctx.transpose(1, 0, 2, 3)[frames]
        )

    def decode(
        self, data: bytes, scale_index: np.ndarray, context: LevelContext, sent: np.ndarray | None = None
    ) -> np.ndarray:
        """Decode :meth:`encode`'s bytes into uint8 symbols ``(C, T', H', W')`` (a frame not ``sent``
        repeats the one before it).

        Raises:
            ValueError: when the bytes are damaged, cut, or were coded with other tables.
        """
        decoder = StreamDecoder(data)
        symbols = self._fill(scale_index, context, sent, lambda ctx: self._decode_group(decoder, ctx))
        decoder.finish()
        return symbols

    def sample_symbols(self, scale_index: np.ndarray, context: LevelContext, rng: np.random.Generator) -> np.ndarray:
        """Draw a chunk of this level from the tables, in the decoder's order (frame by frame, and
        channel by channel where contexts read earlier channels), each symbol from the table of
        the context the symbols drawn before it give: uint8 ``(C, T', H', W')``. With the previous
        chunk and the coarser level in ``context`` this samples the level given what is known; a
        seeded ``rng`` reproduces it (``TableBank.sample``)."""
        return self._fill(scale_index, context, None, lambda ctx: self.sample(ctx, rng).astype(np.uint8))

    def _fill(
        self,
        scale_index: np.ndarray,
        context: LevelContext,
        sent: np.ndarray | None,
        draw: Callable[[np.ndarray], np.ndarray],
    ) -> np.ndarray:
        """The decoder's walk over one chunk: ``draw(ctx)`` gives the symbols of a group of contexts
        (decoded from a stream, or sampled), in the order their contexts become known."""
        symbols = np.empty(scale_index.shape, np.uint8)
        frames = check_sent(sent, symbols)
        previous, coarser_previous = context.previous, context.coarser_previous
        for t in range(scale_index.shape[1]):
            coarser = None if context.coarser is None else context.coarser[:, t]
            frame = symbols[:, t]  # (C, H', W'), filled channel by channel when contexts read earlier channels
            ctx = self.frame_contexts(scale_index[:, t], previous, coarser, coarser_previous)  # changes "unknown"
            if not frames[t]:
                frame[:] = symbols[:, t - 1]  # not sent: the decoder repeats the frame before
            elif self.radix[4] == 1 or previous is None:
                frame[:] = draw(ctx)
            else:
                # The channel-change digit is the last one: "unknown" (3) -> the count of channels
                # 0 .. c-1 that changed, kept as the channels are decoded.
                changed = np.zeros(frame.shape[1:], np.int64)  # (H', W')
                for ch in range(frame.shape[0]):
                    digit = 3 if ch == 0 else np.minimum(changed, 2)
                    frame[ch] = draw(ctx[ch] - 3 + digit)
                    changed += frame[ch] != previous[ch]
            previous, coarser_previous = frame, coarser
        return symbols

    def _decode_group(self, decoder: StreamDecoder, ctx: np.ndarray) -> np.ndarray:
        """Decode ``ctx.size`` symbols with these contexts; refuse values outside the alphabet."""
        decoded = decoder.decode_many(self.coder(), ctx)
        if decoded.size and (decoded.min() < 0 or decoded.max() >= self.levels):
            raise ValueError(
                f"The context-coded stream decoded to symbols outside [0, {self.levels - 1}]; the bytes "
                f"are damaged or were coded with other tables."
            )
        return decoded.astype(np.uint8)

    def ideal_bits(self, symbols: np.ndarray, scale_index: np.ndarray, context: LevelContext) -> float:
        """Bits :meth:`encode` spends on the symbols, without the stream's fixed overhead."""
        self._check(symbols, scale_index)
        return self.coder().ideal_bits(symbols.astype(np.int32), self.contexts(symbols, scale_index, context))

    def frame_bits(self, symbols: np.ndarray, scale_index: np.ndarray, context: LevelContext) -> np.ndarray:
        """Ideal bits of each token frame: float64 ``(T',)`` (what rate control saves by not sending one)."""
        self._check(symbols, scale_index)
        ctx = self.contexts(symbols, scale_index, context)
        coder = self.coder()
        return np.array([coder.ideal_bits(symbols[:, t].astype(np.int32), ctx[:, t]) for t in range(ctx.shape[1])])

    # ------------------------------------------------------------------ fitting

    def counts(self, symbols: np.ndarray, scale_index: np.ndarray, context: LevelContext) -> np.ndarray:
        """How often each symbol occurs in each context: int64 ``(n_contexts, L)``."""
        self._check(symbols, scale_index)
        ctx = self.contexts(symbols, scale_index, context).astype(np.int64)
        flat = ctx.ravel() * self.levels + symbols.astype(np.int64).ravel()
        return np.bincount(flat, minlength=self.num_contexts * self.levels).reshape(self.num_contexts, self.levels)

    @torch.no_grad()
    def fit(self, counts: np.ndarray, alpha: float = 0.5) -> None:
        """Set the tables to ``(counts + alpha L m) / (n + alpha L)``, ``m`` the marginal over all
        contexts (rare contexts fall back to the level's histogram), quantized to 16 bits."""
        counts = np.asarray(counts, dtype=np.float64)
        if counts.shape != (self.num_contexts, self.levels) or (counts < 0).any():
            raise ValueError(
                f"counts must be non-negative of shape ({self.num_contexts}, {self.levels}), got {counts.shape}."
            )
        if not alpha > 0:
            raise ValueError(f"alpha must be positive (it keeps every symbol codable), got {alpha!r}.")
        total = counts.sum()
        marginal = counts.sum(0) / total if total > 0 else np.full(self.levels, 1.0 / self.levels)
        marginal = np.maximum(marginal, 1e-6)
        pmf = (counts + alpha * self.levels * marginal) / (counts.sum(1, keepdims=True) + alpha * self.levels)
        self.cdfs.copy_(torch.from_numpy(quantize_pmf(pmf)))
        self.tables_changed()
        logger.info("Fitted %d context tables from %d symbols.", self.num_contexts, int(total))

    def _check(self, symbols: np.ndarray, scale_index: np.ndarray) -> None:
        if symbols.ndim != 4 or symbols.shape[0] != self.channels or symbols.shape != scale_index.shape:
            raise ValueError(
                f"Expected symbols and scale indexes of one shape (C={self.channels}, T', H', W'), got "
                f"{symbols.shape} and {scale_index.shape}."
            )


def check_sent(sent: np.ndarray | None, symbols: np.ndarray) -> np.ndarray:
    """``sent`` as bool ``(T',)`` (None: every frame) for ``symbols (C, T', H', W')``, checked: one
    entry per token frame, and frame 0 (which has no frame before it to repeat) is sent."""
    t = symbols.shape[1]
    if sent is None:
        return np.ones(t, bool)
    sent = np.asarray(sent, bool)
    if sent.shape != (t,) or not sent[0]:
        raise ValueError(
            f"The mask of sent token frames must have one entry per token frame ({t}) and send frame 0, got "
            f"{sent.astype(int).tolist()}."
        )
    return sent


def repeat_skipped(symbols: np.ndarray, sent: np.ndarray) -> np.ndarray:
    """``symbols (C, T', H', W')`` with every token frame not ``sent`` replaced by the frame before
    it (in time order, so runs repeat the last sent frame): what the decoder reconstructs."""
    out = symbols.copy()
    for t in np.flatnonzero(~np.asarray(sent, bool)):
        if t == 0:
            raise ValueError("Token frame 0 of a chunk is always sent: it has no frame before it to repeat.")
        out[:, t] = out[:, t - 1]
    return out
