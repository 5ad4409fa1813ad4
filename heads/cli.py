"""``mptvc heads ...``: cache annotated sequences as tokens, train heads, evaluate and track.

mptvc heads detect video.mp4 --out dets.txt [--k-max K]      # the shipped pedestrian head; MOT rows
mptvc heads track img1/ --out tracks.txt                     # the same with identities
mptvc heads prepare --data ../shared/data/tracking --out runs/heads/data   # the split as labelled videos
mptvc tokenize runs/heads/data/train --out runs/heads/data/train.zarr      # tokens, once
mptvc heads cache --store runs/heads/data/train.zarr --out runs/heads/cache  # boxes (+ decoded prefixes)
mptvc heads train --cache runs/heads/cache --train pets pathtrack --input tokens --k 2 --out runs/heads/tok-k2
mptvc heads eval  --cache runs/heads/cache --head runs/heads/tok-k2/head --key tud mot17-09 --out runs/heads/tok-k2
mptvc heads bench --cache runs/heads/cache --train pets pathtrack --eval tud mot17-09 --out runs/heads/bench
"""

from __future__ import annotations

import argparse
import json
import logging
from pathlib import Path

import numpy as np

from mptvc_latents.cli import given_flags
from mptvc_latents.runtime import configure_threads

log = logging.getLogger(__name__)


def _prepare(args) -> None:
    from heads.scenes import prepare_scenes

    prepare_scenes(args.data, args.out, args.height, augment=not args.no_augment)
    log.info("wrote %s/train and %s/eval; next: mptvc tokenize %s/train --out %s/train.zarr (and eval)",
             args.out, args.out, args.out, args.out)  # fmt: skip


def _cache(args) -> None:
    from heads.cache import cache_from_store
    from mptvc_latents.codec import MPTVC

    configure_threads(args.threads)
    model = MPTVC.from_pretrained(args.ckpt)
    for store in args.store:
        cached = cache_from_store(
            model, store, args.out, args.labels, args.pixels == "all", args.rate, source=args.pixels != "none"
        )
        log.info("%s: %d labelled clips cached under %s", store, len(cached), args.out)


def _train_config(args):
    from heads.train import TrainConfig

    return TrainConfig(**given_flags(args, TrainConfig))


def _train(args) -> None:
    from heads.cache import load_cached
    from heads.experiment import grid_sequence, new_head
    from heads.train import train_head

    configure_threads(args.threads)
    cached = [load_cached(args.cache, key) for key in args.train]
    seqs = [grid_sequence(seq, args.input, args.k) for seq in cached]
    model = new_head(cached[0], args.input, args.k, **_head_flags(args, cached[0]))
    train_head(model, seqs, _train_config(args))
    model.save_pretrained(Path(args.out) / "head")
    log.info("saved the head to %s", Path(args.out) / "head")


def _head_flags(args, seq=None) -> dict:
    """DetectorConfig overrides of the command line; the work height and codec digest of the data."""
    from heads.scenes import WORK_HEIGHT

    flags = {"dim": args.dim, "depth": args.depth, "work_height": args.work_height or WORK_HEIGHT}
    if seq is not None:
        from mptvc_latents.store import TokenStore

        flags["codec"] = TokenStore.open(seq.store).attrs["checkpoint"]["digest"]
    return flags


def _eval(args) -> None:
    from heads.cache import load_cached
    from heads.detector import CenterHead
    from heads.experiment import evaluate_scenes
    from heads.features import PREFIX_NAMES
    from heads.report import write_report

    configure_threads(args.threads)
    seqs = [load_cached(args.cache, key) for key in args.key]
    out = Path(args.out)
    results = []
    for head in args.head:
        model = CenterHead.from_pretrained(head)
        folder = out if len(args.head) == 1 else out / Path(head).resolve().parent.name
        tracker, calibration = None, None
        if args.calibrate:
            from heads.calibrate import calibrated_tracker, fit_threshold
            from heads.experiment import grid_sequence

            cfg = model.config
            own = [grid_sequence(load_cached(args.cache, key), cfg.input, cfg.k) for key in args.calibrate]
            threshold, f1 = fit_threshold(model, own)
            tracker = calibrated_tracker(threshold)
            calibration = {"threshold": threshold, "f1": f1, "keys": args.calibrate}
            log.info("%s: threshold %.3f (F1 %.3f on its training clips)", head, threshold, f1)
        result = evaluate_scenes(model, seqs, folder, tracker, input=args.on, k=args.k)
        result["calibration"] = calibration
        input, k = result["input"], result["k"]
        trained = Path(head).resolve().parent / "result.json"  # written by `bench` beside the head
        train_s = json.loads(trained.read_text())["train_s"] if trained.is_file() else float("nan")
        result.update({"input": input, "k": k, "eval_keys": args.key, "head": str(head),
                       "trained_on": model.config.input, "prefix": "source" if input == "source" else PREFIX_NAMES[k],
                       "train_s": train_s, "params": sum(p.numel() for p in model.parameters())})  # fmt: skip
        folder.mkdir(parents=True, exist_ok=True)
        suffix = ("" if args.on is None else f"-on-{args.on}-k{k}") + ("-calibrated" if args.calibrate else "")
        (folder / f"eval-{'+'.join(args.key)}{suffix}.json").write_text(json.dumps(result, indent=2))
        results.append(result)
    if len(results) > 1:
        order = ("tokens", "decoded", "source")
        results.sort(key=lambda r: (order.index(r["input"]), r["k"], r["params"]))
        write_report(results, out / f"results-{'+'.join(args.key)}.json")
    print(json.dumps(results[0]["detection"] if len(results) == 1 else [r["detection"] for r in results], indent=2))


def _bench(args) -> None:
    from heads.cache import load_cached
    from heads.experiment import run_experiment
    from heads.report import write_report

    configure_threads(args.threads)
    cfg = _train_config(args)
    flags = _head_flags(args, load_cached(args.cache, args.train[0]))
    results = []
    for input in args.inputs:
        for k in [0] if input == "source" else args.prefixes:
            out = Path(args.out) / f"{input}-k{k}"
            results.append(run_experiment(args.cache, args.train, args.eval, input, k, cfg, out, **flags))
    write_report(results, Path(args.out) / "results.json")


def _detect(args, track: bool = False) -> None:
    from heads.detect import detect_people, open_frames, pretrained_head, track_people
    from heads.detector import CenterHead
    from heads.mot import write_mot
    from mptvc_latents.codec import MPTVC

    configure_threads(args.threads)
    source = open_frames(args.input, args.fps)
    k = 2 if args.k_max is None else args.k_max
    head = CenterHead.from_pretrained(args.head) if args.head else pretrained_head(k)
    codec = MPTVC.from_pretrained(args.ckpt)
    rows: list[np.ndarray] = []
    if track:
        rows = list(track_people(source, head, codec, args.k_max))
    else:
        for det in detect_people(source, head, codec, args.k_max, args.threshold):
            n = len(det.scores)
            rows.append(np.column_stack([np.full(n, det.frame), -np.ones(n), det.boxes, det.scores]))
    table = np.concatenate(rows) if rows else np.zeros((0, 7))
    write_mot(args.out, table)
    frames = len(np.unique(table[:, 0])) if len(table) else 0
    what = f"{len(np.unique(table[:, 1]))} tracks" if track and len(table) else f"{len(table)} boxes"
    log.info("%s in %d frames written to %s", what, frames, args.out)
    print(f"{args.out}: {what} in {frames} predicted frames")


def add_command(sub) -> None:
    """Add ``mptvc heads`` with its sub-commands to the ``mptvc`` sub-parsers."""
    p = sub.add_parser("heads", help="people detection and tracking heads on frozen tokens")
    hs = p.add_subparsers(dest="heads_command", required=True)

    def common(q, cache=True):
        q.add_argument("--threads", type=int, default=1, help="torch threads (default 1)")
        if cache:
            q.add_argument("--cache", required=True, help="cache folder written by `mptvc heads cache`")

    def training(q):
        config = {"default": argparse.SUPPRESS}  # defaults: heads.train.TrainConfig's (given_flags)
        q.epilog = "Training flags left out take the defaults of heads.train.TrainConfig."
        q.add_argument("--train", nargs="+", required=True, help="cached sequence keys to train on")
        q.add_argument("--steps", type=int, **config, help="training steps")
        q.add_argument("--batch", type=int, **config, help="frame pairs per step")
        q.add_argument("--crop", type=int, **config, help="crop side in token cells")
        q.add_argument("--lr", type=float, **config, help="peak learning rate")
        q.add_argument("--seed", type=int, **config)
        q.add_argument("--dim", type=int, default=64, help="head width (default 64)")
        q.add_argument("--depth", type=int, default=4, help="residual blocks (default 4)")
        q.add_argument("--work-height", type=int, default=0, help="recorded in the head: frames taller are shrunk "
                       "to it by `detect` (default heads.scenes.WORK_HEIGHT, what `prepare` used)")  # fmt: skip
        q.add_argument("--out", required=True)

    def video(q, what):
        q.add_argument("input", help="a video file, or a folder of numbered frames (e.g. MOTChallenge img1/)")
        q.add_argument("--out", required=True, help=f"MOTChallenge text file of the {what}")
        q.add_argument("--k-max", type=int, default=None, help="level prefix the head reads: 0 preview, 1 medium, "
                       "2 full (default: the --head's, or 2)")  # fmt: skip
        q.add_argument("--head", default=None, help="a head folder (default: the shipped one for --k-max)")
        q.add_argument("--fps", type=float, default=None, help="frame rate of a frame folder without seqinfo.ini")
        q.add_argument("--ckpt", default=None, help="codec checkpoint (default: the shipped one)")
        q.add_argument("--threads", type=int, default=1, help="torch threads (default 1)")

    q = hs.add_parser("detect", help="find the people in a video: MOT rows frame,-1,x,y,w,h,score,-1,-1,-1")
    video(q, "detections")
    q.add_argument("--threshold", type=float, default=None, help="lowest score written (default: the head's)")
    q.set_defaults(func=_detect)

    q = hs.add_parser("track", help="find and track the people in a video: MOT rows frame,id,x,y,w,h,score,-1,-1,-1")
    video(q, "tracks")
    q.set_defaults(func=lambda args: _detect(args, track=True))

    q = hs.add_parser("prepare", help="write the scene split of docs/heads.md as labelled videos (.mkv + .txt)")
    q.add_argument("--data", required=True, help="the tracking data folder (../shared/data/tracking)")
    q.add_argument("--out", required=True, help="writes OUT/train and OUT/eval")
    q.add_argument("--height", type=int, default=480, help="working height: taller frames are shrunk to it")
    q.add_argument("--no-augment", action="store_true", help="leave out the extra training scales")
    q.set_defaults(func=_prepare)

    q = hs.add_parser("cache", help="boxes, decoded prefixes and coded bytes of the labelled clips of token stores")
    common(q, cache=False)
    q.add_argument("--store", nargs="+", required=True, help="token stores written by `mptvc tokenize`")
    q.add_argument("--labels", default=None, help="folder of <video stem>.txt labels (default: beside each video)")
    q.add_argument("--pixels", choices=("all", "source", "none"), default="all", help="pixels cached for the "
                   "baselines: every prefix decoded and the source frames (all), the source only, or none")  # fmt: skip
    q.add_argument("--rate", action="store_true", help="also entropy-code each clip for its real bytes per level")
    q.add_argument("--ckpt", default=None, help="codec checkpoint (default: the shipped one)")
    q.add_argument("--out", required=True)
    q.set_defaults(func=_cache)

    q = hs.add_parser("train", help="train one head on cached sequences")
    common(q)
    training(q)
    q.add_argument("--input", choices=("tokens", "decoded", "source"), default="tokens")
    q.add_argument("--k", type=int, default=2, help="level prefix: 0 preview, 1 medium, 2 full")
    q.set_defaults(func=_train)

    q = hs.add_parser("eval", help="COCO mAP and HOTA/MOTA/IDF1 of saved heads on cached sequences; writes MOT tracks")
    common(q)
    q.add_argument("--head", nargs="+", required=True, help="folders with config.json and model.safetensors")
    q.add_argument("--key", nargs="+", required=True, help="cached sequences to evaluate on (tracking: the first)")
    q.add_argument("--on", choices=("decoded", "source"), default=None, help="run a pixel head on these pixels "
                   "instead of its own (decoded: of prefix --k)")  # fmt: skip
    q.add_argument("--k", type=int, default=None, help="prefix of the decoded pixels for --on decoded")
    q.add_argument("--calibrate", nargs="+", default=None, help="cached training keys: track with thresholds "
                   "fitted on them (heads.calibrate) instead of the fixed ones")  # fmt: skip
    q.add_argument("--out", required=True)
    q.set_defaults(func=_eval)

    q = hs.add_parser("bench", help="train and evaluate every input and prefix at one training budget")
    common(q)
    training(q)
    q.add_argument("--eval", nargs="+", required=True, help="cached keys to evaluate on, never trained on (tracking: "
                   "the first)")  # fmt: skip
    q.add_argument(
        "--inputs", nargs="+", choices=("tokens", "decoded", "source"), default=["tokens", "decoded", "source"]
    )
    q.add_argument("--prefixes", type=int, nargs="+", default=[0, 1, 2])
    q.set_defaults(func=_bench)
