"""One experiment = one head input (tokens of prefix k, pixels decoded from prefix k, or the source
pixels), trained on some cached sequences and evaluated on another: COCO mAP of the detections,
HOTA / MOTA / IDF1 of the tracks, bpp of the prefix.

What a detection frame is: token frame ``t`` covers video frames ``4t .. 4t+3``; the head predicts
the boxes of its reference frame ``4t + 1`` and is scored against that frame's ground truth.
Tracks live on token frames (6.25 Hz for 25 fps video) and are scored with TrackEval against the
ground truth of the reference frames, renumbered ``1 .. T'``.
"""

from __future__ import annotations

import dataclasses
import json
import logging
import time
from pathlib import Path

import numpy as np

from heads.cache import CachedSequence, load_cached
from heads.data import reference_frames
from heads.detector import CenterHead, DetectorConfig
from heads.evaluate import coco_map, track_metrics
from heads.features import PIXEL_CHANNELS, PREFIX_NAMES, pixel_patches, token_channels, token_features
from heads.infer import detect
from heads.mot import write_mot
from heads.tracker import TrackerConfig, track_sequence
from heads.train import GridSequence, TrainConfig, train_head
from mptvc_latents.store import TokenStore

log = logging.getLogger(__name__)

__all__ = ["INPUTS", "codec_levels", "grid_sequence", "new_head", "evaluate_head", "evaluate_scenes", "run_experiment"]

INPUTS = ("tokens", "decoded", "source")


def codec_levels(store: str | Path | CachedSequence) -> tuple[list[int], list[int]]:
    """FSQ level counts and latent channels per level of the codec that wrote a token store (its path,
    a cache folder holding ``tokens.zarr``, or a cached sequence)."""
    path = store.store if isinstance(store, CachedSequence) else Path(store)
    if (path / "tokens.zarr").is_dir():
        path = path / "tokens.zarr"
    levels = TokenStore.open(path).attrs["checkpoint"]["config"]["levels"]
    return [int(lv["fsq_levels"]) for lv in levels], [int(lv["latent_channels"]) for lv in levels]


def grid_sequence(seq: CachedSequence, input: str, k: int) -> GridSequence:
    """Head inputs of a cached sequence and the boxes of each token frame's reference frame."""
    if input not in INPUTS:
        raise ValueError(f"input must be one of {', '.join(INPUTS)}, got {input!r}.")
    grid = tuple(seq.meta["token_grid"])
    if input == "tokens":
        fsq_levels, _ = codec_levels(seq)
        features = token_features(seq.symbols(k), fsq_levels)  # (T', C, H', W') float codes
    else:
        video = seq.decoded(k) if input == "decoded" else seq.source()
        features = pixel_patches(np.asarray(video), grid)  # (T', 768, H', W') uint8
    refs = reference_frames(seq.num_frames, grid[0])
    boxes = [seq.boxes[seq.boxes[:, 0] == r + 1, 1:6] for r in refs]
    return GridSequence(seq.key, features, boxes, refs)


def new_head(store: str | Path | CachedSequence, input: str, k: int, **overrides) -> CenterHead:
    """A fresh head whose stem fits ``input`` at prefix ``k`` of the codec that wrote ``store``
    (``codec_levels``); ``overrides`` go to ``DetectorConfig`` (``dim``, ``depth``, ...)."""
    _, channels = codec_levels(store)
    if not 0 <= k < len(channels):
        raise ValueError(f"k={k} is out of range: the codec has levels 0..{len(channels) - 1}.")
    in_channels = token_channels(channels, k) if input == "tokens" else PIXEL_CHANNELS
    return CenterHead(DetectorConfig(in_channels=in_channels, input=input, k=k, **overrides))


def _reads(model: CenterHead, input: str | None, k: int | None) -> tuple[str, int]:
    """What a head is evaluated on: its own input and prefix, or decoded pixels of another prefix for
    a pixel head (a detector trained on source pixels, run on decoded video)."""
    cfg = model.config
    if input is None or (input == cfg.input and (k is None or k == cfg.k)):
        return cfg.input, cfg.k
    if cfg.input == "tokens" or input not in ("decoded", "source"):
        raise ValueError(f"A {cfg.input} head reads {cfg.input}; it cannot be evaluated on {input}.")
    return input, 0 if k is None else k


def evaluate_head(
    model: CenterHead,
    seq: CachedSequence,
    out_dir: str | Path | None = None,
    tracker: TrackerConfig | None = None,
    input: str | None = None,
    k: int | None = None,
) -> dict:
    """Detection and tracking metrics of ``model`` on a cached sequence; writes MOT tracks to ``out_dir``.

    ``input`` / ``k``: a pixel head may be run on other pixels than it was trained on (``_reads``)."""
    input, k = _reads(model, input, k)
    gs = grid_sequence(seq, input, k)
    dets = detect(model, gs.features, frames=gs.num_frames)
    det = coco_map([b[:, 1:5] for b in gs.boxes], [(d.boxes, d.scores) for d in dets])
    gt = np.concatenate([np.column_stack([np.full(len(b), t + 1), b]) for t, b in enumerate(gs.boxes)])  # (N, 6)
    result = {"detection": det, "tracking": {}}
    for name, appearance in (("bytetrack+emb", True), ("bytetrack-iou", False)):
        rows = track_sequence(dets, tracker, use_appearance=appearance)
        result["tracking"][name] = track_metrics(gt, rows, gs.num_frames, seq.key)
        if out_dir is not None:
            write_mot(Path(out_dir) / f"{seq.key}.{name}.txt", rows)
    bpp = seq.meta.get("bpp")
    result["bpp"] = None if input == "source" or not bpp else bpp[k]
    result["token_frames"] = gs.num_frames
    return result


def evaluate_scenes(
    model: CenterHead,
    seqs: list[CachedSequence],
    out_dir: str | Path | None = None,
    tracker: TrackerConfig | None = None,
    input: str | None = None,
    k: int | None = None,
) -> dict:
    """``evaluate_head`` on each sequence (``scenes``), then the detections of all of them pooled into
    one COCO evaluation (``detection``: every reference frame of every scene is one image) and the
    bpp of all of them together (``8 * bytes / pixels``); ``tracking`` is that of the first sequence."""
    input, k = _reads(model, input, k)
    scenes, gts, preds = {}, [], []
    for seq in seqs:
        scenes[seq.key] = evaluate_head(model, seq, out_dir, tracker, input, k)
        gs = grid_sequence(seq, input, k)
        gts += [b[:, 1:5] for b in gs.boxes]
        preds += [(d.boxes, d.scores) for d in detect(model, gs.features, frames=gs.num_frames)]
    rated = [s for s in seqs if s.meta.get("level_bytes")]
    bpp = None
    if input != "source" and len(rated) == len(seqs):
        bits = sum(8 * sum(s.meta["level_bytes"][: k + 1]) for s in seqs)
        bpp = bits / sum(s.meta["frames"] * s.meta["height"] * s.meta["width"] for s in seqs)
    first = scenes[seqs[0].key]
    return {"detection": coco_map(gts, preds), "tracking": first["tracking"], "bpp": bpp, "scenes": scenes,
            "input": input, "k": k,
            "track_key": seqs[0].key, "token_frames": sum(r["token_frames"] for r in scenes.values())}  # fmt: skip


def run_experiment(
    cache_root: str | Path,
    train_keys: list[str],
    eval_keys: str | list[str],
    input: str,
    k: int,
    train: TrainConfig,
    out_dir: str | Path,
    tracker: TrackerConfig | None = None,
    **head: int,
) -> dict:
    """Train a head (``head``: ``DetectorConfig`` overrides, e.g. ``dim``) on ``train_keys``, save it to
    ``out_dir/head``, evaluate on ``eval_keys`` (``evaluate_scenes``; tracking on the first)."""
    eval_keys = [eval_keys] if isinstance(eval_keys, str) else list(eval_keys)
    if set(eval_keys) & set(train_keys):
        raise ValueError(
            f"The evaluation sequences {sorted(set(eval_keys) & set(train_keys))} must not be among the "
            "training sequences."
        )
    out_dir = Path(out_dir)
    cached = [load_cached(cache_root, key) for key in train_keys]
    seqs = [grid_sequence(seq, input, k) for seq in cached]
    model = new_head(cached[0], input, k, **head)
    start = time.perf_counter()
    history = train_head(model, seqs, train)
    train_s = time.perf_counter() - start
    model.save_pretrained(out_dir / "head")
    result = evaluate_scenes(model, [load_cached(cache_root, key) for key in eval_keys], out_dir, tracker)
    result.update({
        "input": input, "k": k, "prefix": PREFIX_NAMES[k] if input != "source" else "source",
        "train_keys": train_keys, "eval_key": eval_keys[0], "eval_keys": eval_keys, "train": train.to_dict(),
        "train_s": train_s, "head": dataclasses.asdict(model.config),
        "loss_first": float(np.mean([h["total"] for h in history[:20]])),
        "loss_last": float(np.mean([h["total"] for h in history[-20:]])),
        "params": sum(p.numel() for p in model.parameters()),
    })  # fmt: skip
    (out_dir / "result.json").write_text(json.dumps(result, indent=2))
    det, trk = result["detection"], result["tracking"]["bytetrack+emb"]
    log.info(
        "%s k=%d: mAP %.3f AP50 %.3f HOTA %.3f MOTA %.3f IDF1 %.3f (train %.0f s)",
        input, k, det["mAP"], det["AP50"], trk["HOTA"], trk["MOTA"], trk["IDF1"], train_s,
    )  # fmt: skip
    return result
