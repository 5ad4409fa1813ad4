"""``DetailPrior``: a conditional prior of one finer pyramid level, with spatial context.

The codec's context entropy model of level k sees, per position, the coarser level at that
position and the previous chunk: it has no spatial neighbours, so drawing from it gives texture
that is uncorrelated with the picture's edges (docs/generation.md, "Every level"). A detail prior
models level k given **the coarser levels in a neighbourhood**, **the level's earlier token frames**
and **its own symbols already drawn around it in the same frame**: token frame by token frame, each
in the two-pass checkerboard order of He et al. 2021 ("Checkerboard Context Model for Efficient
Learned Image Compression")::

    for t' = 0, 1, ...:
        anchors     (h' + w' even):  p(y_k[t', anchors]     | y_<k[<= t'], y_k[< t'])
        non-anchors (h' + w' odd):   p(y_k[t', non-anchors] | y_<k[<= t'], y_k[< t'], y_k[t', anchors])

One network serves every frame and both passes: an axial transformer, causal along t' (the codec's
own windowed axial 3D-RoPE block, ``mptvc_latents.layers.AxialTransformer``, relative positions,
so any grid size), whose input at ``(t', h', w')`` is::

    coarser symbols at (t', h', w')   --per-channel embeddings, summed-->          (B, T', H', W', D)
  + level-k symbols of frame t'-1 at (h', w')  (a learned "none" before the first)
  + level-k symbols of frame t' where the pass shows them (anchors in pass 2), a learned mask elsewhere
  + a learned anchor / non-anchor vector
    -> causal AxialTransformer -> features (B, T', H', W', D)
    -> logits (B, T', H', W', C_k, L_k) = Linear(features) + MADE(features, the position's channels < c)

Because frame t'-1's symbols enter at frame t' and attention never looks ahead in t', one forward
pass scores every frame's anchors (and one more every frame's non-anchors) with teacher forcing,
and nothing a symbol's own draw could not know leaks in. The channels of one position are drawn in
order, channel c given the features and channels 0..c-1 through a masked one-hidden-layer network
(MADE, Germain et al. 2015), as the codec's context model reads earlier channels; the transformer
runs once per pass and only the small head once per channel. The likelihood of a clip is exact, so the same
network is an entropy model (bits per token on held-out clips, comparable with the codec's context
model) and a sampler. Clips longer than ``window`` token frames run in windows, each handed the last
frame of the one before (``y_before``).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor, nn

from mptvc_latents.config import AxialTransformerConfig, BlockConfig, ConfigBase
from mptvc_latents.hub import StrictHubMixin
from mptvc_latents.layers import AxialTransformer

__all__ = ["DetailConfig", "DetailPrior", "anchor_mask", "load_detail_priors", "store_bits", "window_schedule"]


@dataclass(frozen=True)
class DetailConfig(ConfigBase):
    """One detail prior: the level it draws, the codec levels it reads, and the network's shape.

    ``coarser`` lists ``(fsq_levels, channels)`` of levels ``0 .. level-1`` (the conditioning);
    ``fsq_levels`` and ``channels`` are level ``level``'s own.
    """

    level: int = 1
    coarser: tuple[tuple[int, int], ...] = ((8, 4),)
    fsq_levels: int = 8
    channels: int = 12
    dim: int = 96
    depth: int = 4
    heads: int = 4
    channel_hidden: int = 128  # hidden units of the MADE head over the channels of a position
    radius: tuple[int, int, int] = (2, 3, 3)
    window: int = 4  # token frames the transformer sees at once (training crops and sampling windows)
    codec_digest: str = ""  # weights digest of the codec whose tokens this models
    frame_size: tuple[int, int] = (256, 256)  # (h, w) pixels of the training clips (documentation)

    def __post_init__(self) -> None:
        if isinstance(self.level, bool) or not isinstance(self.level, int) or self.level < 1:
            raise ValueError(f"level must be a finer level (1 or more), got {self.level!r}.")
        coarser = tuple(tuple(int(v) for v in pair) for pair in self.coarser)
        object.__setattr__(self, "coarser", coarser)
        if len(coarser) != self.level or any(len(p) != 2 or min(p) < 1 for p in coarser):
            raise ValueError(
                f"coarser must give (fsq_levels, channels) for each of the {self.level} coarser levels, "
                f"got {self.coarser!r}."
            )
        for name in ("fsq_levels", "channels", "dim", "depth", "heads", "window", "channel_hidden"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int) or value < 1:
                raise ValueError(f"{name} must be a positive integer, got {value!r}.")
        if self.fsq_levels < 2:
            raise ValueError(f"fsq_levels must be at least 2 symbols per channel, got {self.fsq_levels}.")
        # Validates dim / heads / radius the way the codec's blocks do.
        BlockConfig(dim=self.dim, heads=self.heads, radius=tuple(self.radius))

    @property
    def coarser_channels(self) -> int:
        return sum(c for _, c in self.coarser)


def anchor_mask(h: int, w: int, device: torch.device | None = None) -> Tensor:
    """bool ``(h, w)``: the checkerboard's anchors of a token frame, ``(h' + w')`` even."""
    return (torch.arange(h, device=device)[:, None] + torch.arange(w, device=device)) % 2 == 0


def window_schedule(token_frames: int, window: int) -> list[tuple[int, int]]:
    """``(start, stop)`` token frames of the windows a clip runs in (each after the first is handed
    the last frame of the one before as ``y_before``)."""
    if token_frames < 1:
        raise ValueError(f"A clip needs at least one token frame, got {token_frames}.")
    return [(s, min(s + window, token_frames)) for s in range(0, token_frames, window)]


def _offsets(pairs: list[tuple[int, int]]) -> Tensor:
    """Row offsets into one embedding table holding every channel's symbols: ``(channels,)``."""
    sizes = [levels for levels, channels in pairs for _ in range(channels)]
    return torch.tensor([0, *np.cumsum(sizes)[:-1].tolist()], dtype=torch.int64)


def _made_masks(channels: int, levels: int, hidden: int) -> tuple[Tensor, Tensor]:
    """MADE masks over the channels of one position: hidden unit j may read channels ``<= m_j`` and
    output channel c may read hidden units with ``m_j < c``, so channel c sees channels ``< c`` only.
    ``(hidden, C*L)`` and ``(C*L, hidden)`` float (all zero when there is one channel)."""
    channel = torch.arange(channels * levels) // levels  # (C*L,): the channel of each one-hot slot / logit
    degree = torch.arange(hidden) % max(channels - 1, 1)  # (hidden,): m_j in 0..C-2
    mask_in = (channel[None, :] <= degree[:, None]).float()
    mask_out = (degree[None, :] < channel[:, None]).float()
    if channels == 1:
        mask_in.zero_()
        mask_out.zero_()
    return mask_in, mask_out


class DetailPrior(
    nn.Module,
    StrictHubMixin,
    library_name="mptvc-latents",
    tags=["video", "generation", "detail-prior"],
    coders={DetailConfig: (DetailConfig.to_dict, DetailConfig.from_dict)},
):
    """p(level k | coarser levels), frame by frame in two checkerboard passes; see the module docstring.

    Symbols are int64 channels-last grids as a token store holds them: ``coarser (B, T', H', W',
    C_<k)`` (levels 0 .. k-1 concatenated), ``y (B, T', H', W', C_k)``, and ``y_before (B, H', W',
    C_k)`` the level-k symbols of the frame before the window (None: the window starts the clip).
    """

    def __init__(self, config: DetailConfig) -> None:
        super().__init__()
        if isinstance(config, dict):
            config = DetailConfig.from_dict(config)
        self.config = config
        d = config.dim
        own = [(config.fsq_levels, config.channels)]
        self.coarser_embed = nn.Embedding(sum(lv * c for lv, c in config.coarser), d)
        self.level_embed = nn.Embedding(config.fsq_levels * config.channels, d)
        self.before_embed = nn.Embedding(config.fsq_levels * config.channels, d)
        self.masked = nn.Parameter(torch.zeros(d))
        self.no_before = nn.Parameter(torch.zeros(d))
        self.anchor_embed = nn.Embedding(2, d)
        block = BlockConfig(dim=d, heads=config.heads, mlp_ratio=2.0, radius=tuple(config.radius), causal=True)
        self.transformer = AxialTransformer(AxialTransformerConfig(block=block, depth=config.depth))
        cl = config.channels * config.fsq_levels
        self.head = nn.Linear(d, cl)
        self.channel_context = nn.Linear(d, config.channel_hidden)
        self.channel_in = nn.Linear(cl, config.channel_hidden, bias=False)
        self.channel_out = nn.Linear(config.channel_hidden, cl, bias=False)
        mask_in, mask_out = _made_masks(config.channels, config.fsq_levels, config.channel_hidden)
        self.register_buffer("mask_in", mask_in, persistent=False)
        self.register_buffer("mask_out", mask_out, persistent=False)
        self.register_buffer("coarser_offsets", _offsets(list(config.coarser)), persistent=False)
        self.register_buffer("level_offsets", _offsets(own), persistent=False)
        coarser_levels = [lv for lv, c in config.coarser for _ in range(c)]  # (C_<k,): symbols per channel
        self.register_buffer("coarser_levels", torch.tensor(coarser_levels), persistent=False)
        for emb in (self.coarser_embed, self.level_embed, self.before_embed, self.anchor_embed):
            nn.init.normal_(emb.weight, std=0.02)
        nn.init.zeros_(self.head.weight)
        nn.init.zeros_(self.head.bias)
        nn.init.zeros_(self.channel_out.weight)

    # ------------------------------------------------------------------ pieces

    def _check(self, coarser: Tensor, y: Tensor | None, y_before: Tensor | None = None) -> None:
        c = self.config
        if coarser.ndim != 5 or coarser.shape[-1] != c.coarser_channels:
            raise ValueError(
                f"coarser must be (batch, t', h', w', {c.coarser_channels}) symbols of levels 0..{c.level - 1}, "
                f"got shape {tuple(coarser.shape)}."
            )
        if y is not None and (y.shape[:-1] != coarser.shape[:-1] or y.shape[-1] != c.channels):
            raise ValueError(
                f"y must be (batch, t', h', w', {c.channels}) symbols of level {c.level} on the coarser grid "
                f"{tuple(coarser.shape[:-1])}, got shape {tuple(y.shape)}."
            )
        if bool((coarser < 0).any()) or bool((coarser >= self.coarser_levels).any()):
            raise ValueError(
                f"coarser holds a symbol outside its channel's FSQ range (levels {list(c.coarser)}): "
                "these are not the tokens of the codec this prior models."
            )
        for name, symbols in (("y", y), ("y_before", y_before)):
            if symbols is not None and (bool((symbols < 0).any()) or bool((symbols >= c.fsq_levels).any())):
                raise ValueError(f"{name} holds a symbol outside [0, {c.fsq_levels}), level {c.level}'s FSQ range.")
        b, _, h, w, _ = coarser.shape
        if y_before is not None and tuple(y_before.shape) != (b, h, w, c.channels):
            raise ValueError(
                f"y_before must be the (batch, h', w', {c.channels}) symbols of the frame before the window, "
                f"({b}, {h}, {w}, {c.channels}) here, got shape {tuple(y_before.shape)}."
            )

    def logits(
        self,
        coarser: Tensor,
        y: Tensor,
        y_before: Tensor | None,
        anchors_visible: bool,
        has_before: Tensor | None = None,
    ) -> Tensor:
        """``(B, T', H', W', C_k, L_k)`` float32 logits of every symbol: ``features`` and, for channel c,
        the channels before c of the same position in ``y`` (``channel_logits``)."""
        return self.channel_logits(self.features(coarser, y, y_before, anchors_visible, has_before), y)

    def channel_logits(self, features: Tensor, y: Tensor) -> Tensor:
        """``features (..., D)`` and symbols ``y (..., C_k)`` -> logits ``(..., C_k, L_k)``; channel c's
        depend on channels 0..c-1 of ``y`` only (the MADE masks)."""
        c = self.config
        onehot = F.one_hot(y, c.fsq_levels).flatten(-2).to(features.dtype)  # (..., C_k, L_k) -> (..., C_k * L_k)
        hidden = F.gelu(
            self.channel_context(features) + F.linear(onehot, self.channel_in.weight * self.mask_in)
        )  # (..., hidden)
        out = self.head(features) + F.linear(hidden, self.channel_out.weight * self.mask_out)  # (..., C_k * L_k)
        return out.float().unflatten(-1, (c.channels, c.fsq_levels))

    def features(
        self,
        coarser: Tensor,
        y: Tensor,
        y_before: Tensor | None,
        anchors_visible: bool,
        has_before: Tensor | None = None,
    ) -> Tensor:
        """``(B, T', H', W', D)``: the transformer's features of every position given the coarser levels,
        the level-k symbols of the frames before each (``y`` shifted by one frame, ``y_before`` first: of
        the batch items ``has_before (B,)`` marks, default all) and, with ``anchors_visible`` (pass 2),
        the anchors of its own frame."""
        b, t, h, w, _ = coarser.shape
        x = self.coarser_embed(coarser + self.coarser_offsets).sum(-2)  # (B, T', H', W', C_<k, D) -> (..., D)
        before = self.before_embed(y[:, :-1] + self.level_offsets).sum(-2)  # frames 0..T'-2 -> (B, T'-1, H', W', D)
        first = self.no_before.expand(b, 1, h, w, -1)
        if y_before is not None:
            given = self.before_embed(y_before[:, None] + self.level_offsets).sum(-2)  # (B, 1, H', W', D)
            first = given if has_before is None else torch.where(has_before[:, None, None, None, None], given, first)
        x = x + torch.cat([first, before], 1)
        anchors = anchor_mask(h, w, x.device)
        x = x + self.anchor_embed(anchors.long())  # (H', W', D), broadcast over batch and frames
        if anchors_visible:
            own = self.level_embed(y + self.level_offsets).sum(-2)  # (B, T', H', W', D)
            x = x + torch.where(anchors[..., None], own, self.masked)
        else:
            x = x + self.masked
        return self.transformer(x, torch.arange(t, device=x.device))

    # ------------------------------------------------------------------ scoring / training

    def forward(
        self, coarser: Tensor, y: Tensor, y_before: Tensor | None = None, has_before: Tensor | None = None
    ) -> Tensor:
        """Bits of each symbol of ``y`` in the frame-by-frame checkerboard order, ``(B, T', H', W', C_k)``
        float32: the anchors' from pass 1, the others' from pass 2 (teacher forcing, two forwards).
        ``has_before (B,)`` marks the batch items ``y_before`` applies to (default: all)."""
        self._check(coarser, y, y_before)
        anchors = anchor_mask(*coarser.shape[2:4], coarser.device)[..., None]  # (H', W', 1)
        bits = torch.zeros(y.shape, dtype=torch.float32, device=y.device)
        for scored, visible in ((anchors, False), (~anchors, True)):
            logits = self.logits(coarser, y, y_before, visible, has_before)  # (B, T', H', W', C_k, L_k)
            logp = F.log_softmax(logits, -1)
            nats = -logp.gather(-1, y[..., None])[..., 0]  # (B, T', H', W', C_k)
            bits = bits + torch.where(scored, nats, 0.0) / math.log(2)
        return bits

    # ------------------------------------------------------------------ sampling

    @torch.no_grad()
    def sample_window(
        self,
        coarser: Tensor,
        y_before: Tensor | None,
        generator: torch.Generator,
        temperature: float = 1.0,
    ) -> Tensor:
        """Draw level k over one window, frame by frame, anchors then the others: ``coarser (1, T', H',
        W', C_<k)``, ``y_before (1, H', W', C_k)`` or None. Returns int64 ``(1, T', H', W', C_k)``."""
        self._check(coarser, None, y_before)
        if not temperature > 0:
            raise ValueError(f"temperature must be positive, got {temperature}.")
        b, t, h, w, _ = coarser.shape
        y = torch.zeros(b, t, h, w, self.config.channels, dtype=torch.int64, device=coarser.device)
        anchors = anchor_mask(h, w, coarser.device)
        for f in range(t):
            # attention is causal in t': frames after f change nothing, so run frames 0..f only
            for scored, visible in ((anchors, False), (~anchors, True)):
                frame = self.features(coarser[:, : f + 1], y[:, : f + 1], y_before, visible)[:, f]  # (B, H', W', D)
                feats = frame[:, scored]  # (B, N, D)
                drawn = y[:, f][:, scored]  # (B, N, C_k)
                for ch in range(self.config.channels):  # channel c given channels 0..c-1 of its position
                    logits = self.channel_logits(feats, drawn)[..., ch, :] / temperature  # (B, N, L_k)
                    probs = torch.softmax(logits, -1)
                    draws = torch.multinomial(probs.flatten(0, 1), 1, generator=generator)  # (B * N, 1)
                    drawn[..., ch] = draws.view(probs.shape[:2])  # (B * N, 1) -> (B, N)
                y[:, f, scored] = drawn
        return y

    @torch.no_grad()
    def sample(self, coarser: np.ndarray, seed: int = 0, temperature: float = 1.0) -> np.ndarray:
        """Level k of a whole clip: ``coarser`` uint8 ``(T', H', W', C_<k)`` -> uint8 ``(T', H', W', C_k)``,
        window by window (``window_schedule``), from ``torch.Generator().manual_seed(seed)``."""
        x = torch.from_numpy(np.ascontiguousarray(coarser)).long()[None]  # (1, T', H', W', C_<k)
        self._check(x, None)
        g = torch.Generator().manual_seed(seed)
        out = torch.zeros(*x.shape[:-1], self.config.channels, dtype=torch.int64)
        for start, stop in window_schedule(x.shape[1], self.config.window):
            before = out[:, start - 1] if start > 0 else None
            out[:, start:stop] = self.sample_window(x[:, start:stop], before, g, temperature)
        return out[0].to(torch.uint8).numpy()

    @torch.no_grad()
    def clip_bits(self, coarser: np.ndarray, y: np.ndarray) -> float:
        """Total bits of level k of a whole clip (uint8 ``(T', H', W', C)`` grids) in the sampling order:
        the same windows, each after the first handed the frame before it."""
        x = torch.from_numpy(np.ascontiguousarray(coarser)).long()[None]
        yy = torch.from_numpy(np.ascontiguousarray(y)).long()[None]
        self._check(x, yy)
        total = 0.0
        for start, stop in window_schedule(x.shape[1], self.config.window):
            before = yy[:, start - 1] if start > 0 else None
            total += float(self.forward(x[:, start:stop], yy[:, start:stop], before).double().sum())
        return total


def load_detail_priors(folders: list[str | Path]) -> dict[int, DetailPrior]:
    """Detail priors by the level they draw, from hub-style folders (each level at most once)."""
    priors: dict[int, DetailPrior] = {}
    for folder in folders:
        prior = DetailPrior.from_pretrained(folder).eval()
        if prior.config.level in priors:
            raise ValueError(f"Two detail priors draw level {prior.config.level}; pass one per level.")
        priors[prior.config.level] = prior
    return priors


@torch.no_grad()
def store_bits(prior: DetailPrior, store_path: str | Path, clips: list[str] | None = None) -> float:
    """Bits per token (all channels of one position) of level ``prior.config.level`` over the whole
    clips of a token store (those named in ``clips``, default all), in the sampling order."""
    from generation.data import LevelWindows

    data = LevelWindows(store_path, prior.config.level, clips)
    total = sum(prior.clip_bits(coarser, y) for coarser, y in zip(data.coarser, data.y, strict=True))
    return total / data.positions
