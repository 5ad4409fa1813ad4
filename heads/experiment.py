"""One experiment = one head input (tokens of prefix k, pixels decoded from prefix k, or the source
pixels), trained on some cached sequences and evaluated on another: COCO mAP of the detections,
HOTA / MOTA / IDF1 of the tracks, bpp of the prefix.

What a detection frame is: token frame ``t`` covers video frames ``4t .. 4t+3``; the head predicts
the boxes of its reference frame ``4t + 1`` and is scored against that frame's ground truth.
Tracks live on token frames (6.25 Hz for 25 fps video) and are scored with TrackEval against the
ground truth of the reference frames, renumbered ``1 .. T'``.
"""

from __future__ import annotations

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

__all__ = ["INPUTS", "codec_levels", "grid_sequence", "new_head", "evaluate_head", "run_experiment"]

INPUTS = ("tokens", "decoded", "source")


def codec_levels(cache_root: str | Path) -> tuple[list[int], list[int]]:
    """FSQ level counts and latent channels per level of the codec that filled the cache's store."""
    levels = TokenStore.open(Path(cache_root) / "tokens.zarr").attrs["checkpoint"]["config"]["levels"]
    return [int(lv["fsq_levels"]) for lv in levels], [int(lv["latent_channels"]) for lv in levels]


def grid_sequence(seq: CachedSequence, input: str, k: int) -> GridSequence:
    """Head inputs of a cached sequence and the boxes of each token frame's reference frame."""
    if input not in INPUTS:
        raise ValueError(f"input must be one of {', '.join(INPUTS)}, got {input!r}.")
    grid = tuple(seq.meta["token_grid"])
    if input == "tokens":
        fsq_levels, _ = codec_levels(seq.root)
        features = token_features(seq.symbols(k), fsq_levels)  # (T', C, H', W') float codes
    else:
        video = seq.decoded(k) if input == "decoded" else seq.source()
        features = pixel_patches(np.asarray(video), grid)  # (T', 768, H', W') uint8
    refs = reference_frames(seq.num_frames, grid[0])
    boxes = [seq.boxes[seq.boxes[:, 0] == r + 1, 1:6] for r in refs]
    return GridSequence(seq.key, features, boxes, refs)


def new_head(cache_root: str | Path, input: str, k: int, **overrides) -> CenterHead:
    """A fresh head whose stem fits ``input`` at prefix ``k``."""
    _, channels = codec_levels(cache_root)
    if not 0 <= k < len(channels):
        raise ValueError(f"k={k} is out of range: the codec has levels 0..{len(channels) - 1}.")
    in_channels = token_channels(channels, k) if input == "tokens" else PIXEL_CHANNELS
    return CenterHead(DetectorConfig(in_channels=in_channels, input=input, k=k, **overrides))


def evaluate_head(
    model: CenterHead, seq: CachedSequence, out_dir: str | Path | None = None, tracker: TrackerConfig | None = None
) -> dict:
    """Detection and tracking metrics of ``model`` on a cached sequence; writes MOT tracks to ``out_dir``."""
    cfg = model.config
    gs = grid_sequence(seq, cfg.input, cfg.k)
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
    result["bpp"] = None if cfg.input == "source" or not bpp else bpp[cfg.k]
    result["token_frames"] = gs.num_frames
    return result


def run_experiment(
    cache_root: str | Path,
    train_keys: list[str],
    eval_key: str,
    input: str,
    k: int,
    train: TrainConfig,
    out_dir: str | Path,
    tracker: TrackerConfig | None = None,
) -> dict:
    """Train a head on ``train_keys``, save it to ``out_dir/head``, evaluate on ``eval_key``."""
    if eval_key in train_keys:
        raise ValueError(f"The evaluation sequence {eval_key!r} must not be among the training sequences.")
    out_dir = Path(out_dir)
    seqs = [grid_sequence(load_cached(cache_root, key), input, k) for key in train_keys]
    model = new_head(cache_root, input, k)
    start = time.perf_counter()
    history = train_head(model, seqs, train)
    train_s = time.perf_counter() - start
    model.save_pretrained(out_dir / "head")
    result = evaluate_head(model, load_cached(cache_root, eval_key), out_dir, tracker)
    result.update({
        "input": input, "k": k, "prefix": PREFIX_NAMES[k] if input != "source" else "source",
        "train_keys": train_keys, "eval_key": eval_key, "train": train.to_dict(), "train_s": train_s,
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
