"""Training a ``CenterHead`` with the codec frozen: focal heatmap loss, L1 offset and log-size,
and an InfoNCE appearance loss between consecutive token frames.

A ``GridSequence`` is what training and evaluation read: head inputs ``(T', C, H', W')`` (float
FSQ codes, or uint8 pixel patches) and the boxes of each token frame's reference frame. Each step
draws ``batch`` random pairs of consecutive token frames of one random ``crop x crop`` cell window
(sequences are drawn in proportion to their token frames; a sequence of a single token frame gives
that frame twice, and no appearance loss).
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass

import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor

from heads.detector import CenterHead, HeadOutput
from heads.features import as_input
from heads.targets import Targets, encode_targets
from mptvc_latents.config import ConfigBase
from mptvc_latents.train.schedule import warmup_cosine

log = logging.getLogger(__name__)

__all__ = ["GridSequence", "TrainConfig", "train_head", "detection_loss", "focal_loss", "embedding_loss"]


@dataclass(frozen=True)
class GridSequence:
    """features ``(T', C, H', W')``; boxes[t] ``(n, 5)`` ``[id, x, y, w, h]`` of token frame t's
    reference frame ``refs[t]`` (0-based video frame); ``len(boxes) == len(refs) <= T'``."""

    name: str
    features: Tensor
    boxes: list[np.ndarray]
    refs: np.ndarray

    @property
    def num_frames(self) -> int:
        return len(self.refs)


@dataclass(frozen=True)
class TrainConfig(ConfigBase):
    """``steps`` of AdamW (linear warm-up to ``lr``, cosine decay to ``min_lr``: ``warmup_cosine``),
    ``batch`` frame pairs of ``crop`` x ``crop`` cells per step."""

    steps: int = 300
    batch: int = 4
    crop: int = 40
    lr: float = 2e-3
    warmup: int = 30
    min_lr: float = 0.0
    weight_decay: float = 1e-4
    embed_weight: float = 0.5
    temperature: float = 0.1
    seed: int = 0

    def __post_init__(self) -> None:
        for name in ("steps", "batch"):
            if not isinstance(getattr(self, name), int) or getattr(self, name) < 1:
                raise ValueError(f"TrainConfig.{name} must be a positive integer, got {getattr(self, name)!r}.")
        if not isinstance(self.crop, int) or self.crop < 4:
            raise ValueError(f"TrainConfig.crop must be an integer of at least 4 token cells, got {self.crop!r}.")
        if not isinstance(self.warmup, int) or self.warmup < 0:
            raise ValueError(f"TrainConfig.warmup must be a number of steps, 0 or more, got {self.warmup!r}.")
        if not self.lr > 0 or not 0 <= self.min_lr <= self.lr:
            raise ValueError(
                f"TrainConfig needs 0 <= min_lr <= lr with lr > 0, got lr={self.lr} and min_lr={self.min_lr}."
            )
        if self.weight_decay < 0 or self.embed_weight < 0 or self.temperature <= 0:
            raise ValueError(
                f"TrainConfig needs weight_decay >= 0, embed_weight >= 0 and temperature > 0, got "
                f"{self.weight_decay}, {self.embed_weight} and {self.temperature}."
            )


def focal_loss(logits: Tensor, target: Tensor, alpha: float = 2.0, beta: float = 4.0) -> Tensor:
    """CenterNet's penalty-reduced focal loss, summed and divided by the number of peaks (>= 1)."""
    p = torch.sigmoid(logits).clamp(1e-4, 1 - 1e-4)
    pos = target.eq(1).float()
    pos_loss = -torch.log(p) * (1 - p) ** alpha * pos
    neg_loss = -torch.log(1 - p) * p**alpha * (1 - target) ** beta * (1 - pos)
    return (pos_loss.sum() + neg_loss.sum()) / pos.sum().clamp(min=1)


def embedding_loss(e0: Tensor, ids0: Tensor, e1: Tensor, ids1: Tensor, temperature: float) -> Tensor | None:
    """InfoNCE of each identity's embedding at frame 0 against every embedding at frame 1.

    e0 ``(n0, E)``, e1 ``(n1, E)`` unit vectors; ids ``(n,)``. None when no identity is in both.
    """
    match = ids0[:, None] == ids1[None, :]  # (n0, n1)
    rows = match.any(dim=1)
    if not rows.any():
        return None
    logits = e0[rows] @ e1.T / temperature  # (m, n1)
    return F.cross_entropy(logits, match[rows].float().argmax(dim=1))


def detection_loss(out: HeadOutput, targets: list[Targets], heatmaps: Tensor) -> dict[str, Tensor]:
    """Heatmap focal loss over the batch, L1 on offset and log-size at the centre cells."""
    heat = focal_loss(out.heatmap[:, 0], heatmaps)
    reg, n = out.heatmap.new_zeros(()), 0
    for b, tg in enumerate(targets):
        if len(tg.ids) == 0:
            continue
        i, j = torch.from_numpy(tg.centres[:, 0]), torch.from_numpy(tg.centres[:, 1])
        reg = reg + F.l1_loss(out.offset[b, :, i, j].T, torch.from_numpy(tg.offset), reduction="sum")
        reg = reg + F.l1_loss(out.size[b, :, i, j].T, torch.from_numpy(tg.size), reduction="sum")
        n += len(tg.ids)
    return {"heatmap": heat, "regression": reg / max(n, 1)}


def _crop_boxes(boxes: np.ndarray, y0: int, x0: int, stride: int) -> np.ndarray:
    shifted = np.asarray(boxes, dtype=np.float64).reshape(-1, 5).copy()
    shifted[:, 1] -= x0 * stride
    shifted[:, 2] -= y0 * stride
    return shifted


def _sample(seqs: list[GridSequence], cfg: TrainConfig, rng: np.random.Generator, stride: int):
    """One batch: inputs (2B, C, crop, crop) [frame t of each pair, then frame t+1], targets, and
    whether each pair holds two distinct frames (single-frame sequences give the frame twice)."""
    weights = np.array([s.num_frames for s in seqs], dtype=np.float64)
    feats, targets, distinct = [[], []], [[], []], []
    for _ in range(cfg.batch):
        seq = seqs[rng.choice(len(seqs), p=weights / weights.sum())]
        t = int(rng.integers(max(seq.num_frames - 1, 1)))
        step = 1 if seq.num_frames > 1 else 0
        distinct.append(step == 1)
        _, _, gh, gw = seq.features.shape
        ch, cw = min(cfg.crop, gh), min(cfg.crop, gw)
        y0, x0 = int(rng.integers(gh - ch + 1)), int(rng.integers(gw - cw + 1))
        for d in (0, 1):
            feats[d].append(as_input(seq.features[t + d * step, :, y0 : y0 + ch, x0 : x0 + cw]))
            boxes = _crop_boxes(seq.boxes[t + d * step], y0, x0, stride)
            targets[d].append(encode_targets(boxes, (ch, cw), stride))
    shapes = {f.shape for f in feats[0]}
    if len(shapes) > 1:  # sequences smaller than the crop: pad to the largest window
        h, w = max(s[1] for s in shapes), max(s[2] for s in shapes)
        feats = [[F.pad(f, (0, w - f.shape[2], 0, h - f.shape[1])) for f in fs] for fs in feats]
        pad = lambda hm: np.pad(hm, ((0, h - hm.shape[0]), (0, w - hm.shape[1])))  # noqa: E731
        targets = [[Targets(pad(tg.heatmap), tg.centres, tg.offset, tg.size, tg.ids) for tg in ts] for ts in targets]
    x = torch.stack(feats[0] + feats[1])  # (2B, C, ch, cw)
    return x, targets[0] + targets[1], distinct


def train_head(
    model: CenterHead, seqs: list[GridSequence], cfg: TrainConfig, stride: int = 8, log_every: int = 50
) -> list[dict[str, float]]:
    """Train ``model`` in place for ``cfg.steps`` steps; returns the per-step losses."""
    usable = [s for s in seqs if s.num_frames >= 1]
    if not usable:
        raise ValueError("Training needs at least one sequence with an annotated token frame.")
    for s in usable:
        if s.features.shape[1] != model.config.in_channels:
            raise ValueError(
                f"Sequence {s.name!r} has {s.features.shape[1]} input channels, "
                f"the head expects {model.config.in_channels}."
            )
    torch.manual_seed(cfg.seed)
    rng = np.random.default_rng(cfg.seed)
    opt = torch.optim.AdamW(model.parameters(), lr=cfg.lr, weight_decay=cfg.weight_decay)
    history, start = [], time.perf_counter()
    model.train()
    for step in range(cfg.steps):
        for group in opt.param_groups:
            group["lr"] = warmup_cosine(step, cfg.lr, cfg.warmup, cfg.steps, cfg.min_lr)
        x, targets, distinct = _sample(usable, cfg, rng, stride)
        out = model(x)
        heatmaps = torch.from_numpy(np.stack([tg.heatmap for tg in targets]))  # (2B, ch, cw)
        losses = detection_loss(out, targets, heatmaps)
        emb = [
            out.embedding[b, :, torch.from_numpy(tg.centres[:, 0]), torch.from_numpy(tg.centres[:, 1])].T
            for b, tg in enumerate(targets)
        ]
        ids = [torch.from_numpy(tg.ids) for tg in targets]  # frame t of pair b at b, frame t+1 at b + batch
        pair_losses = [
            embedding_loss(emb[b], ids[b], emb[b + cfg.batch], ids[b + cfg.batch], cfg.temperature)
            for b in range(cfg.batch)
            if distinct[b]
        ]
        pair_losses = [p for p in pair_losses if p is not None]
        losses["embedding"] = torch.stack(pair_losses).mean() if pair_losses else out.heatmap.new_zeros(())
        total = losses["heatmap"] + losses["regression"] + cfg.embed_weight * losses["embedding"]
        opt.zero_grad(set_to_none=True)
        total.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 5.0)
        opt.step()
        history.append({"step": step, "total": total.item(), **{k: v.item() for k, v in losses.items()}})
        if log_every and (step % log_every == 0 or step == cfg.steps - 1):
            h = history[-1]
            log.info(
                "step %d/%d loss %.4f (heat %.4f reg %.4f emb %.4f) %.1f s",
                step + 1,
                cfg.steps,
                h["total"],
                h["heatmap"],
                h["regression"],
                h["embedding"],
                time.perf_counter() - start,
            )
    model.eval()
    return history
