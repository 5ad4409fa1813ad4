"""``mptvc generate`` and the prior's own commands, added to ``mptvc`` through the
``mptvc.commands`` entry point (the core never imports this package).

::

    mptvc generate [--prior DIR] --out sample.mp4 [--frames N] [--seed S] [--temperature T] [--top-k K] [--gif G]
    mptvc prior-tokenize VIDEOS... --out STORE.zarr [--size H W] [--max-frames N]     (resumable)
    mptvc prior-train STORE.zarr --run DIR [--steps N] [--batch B] [--window T] [--max-minutes M]   (resumable)
    mptvc prior-eval VIDEOS... [--prior DIR] [--train-store STORE] [--coded] [--json OUT]   bits/token: prior vs codec level 0
"""

from __future__ import annotations

import argparse
import json
import logging
import os
from pathlib import Path

os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")  # idle OpenMP threads must not spin on a shared machine

log = logging.getLogger("mptvc.generate")

__all__ = ["add_command"]


def add_command(sub) -> None:
    """Add ``generate``, ``prior-tokenize``, ``prior-train`` and ``prior-eval`` to the ``mptvc`` subparsers."""
    p = sub.add_parser(
        "generate",
        help="sample a video from the token prior and decode it",
        description="Sample level-0 tokens from a token prior (default: the shipped one), decode them with the "
        "codec and write an mp4 and a GIF. A fixed --seed reproduces the same tokens.",
    )
    p.add_argument("--prior", type=Path, help="prior folder (default: the one shipped in generation/checkpoints)")
    p.add_argument("--ckpt", type=Path, help="codec checkpoint (default: the shipped one); must be the prior's codec")
    p.add_argument("--out", type=Path, required=True, help="output video (.mp4, or .npy for the exact frames)")
    p.add_argument("--gif", type=Path, help="GIF path (default: the --out path with .gif)")
    p.add_argument("--no-gif", action="store_true", help="write no GIF")
    p.add_argument("--frames", type=int, default=16, help="video frames (default 16 = the prior's window)")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--temperature", type=float, default=1.0)
    p.add_argument("--top-k", type=int, default=0, help="sample among the K likeliest indices (0: all)")
    p.add_argument("--tokens", type=Path, help="also save the sampled symbols as .npy uint8 (t', h', w', C)")
    p.set_defaults(func=_generate)

    p = sub.add_parser(
        "prior-tokenize",
        help="tokenize videos at one fixed size into a token store (for training a prior)",
        description="Centre-crop and resize every clip to --size, take its first --max-frames frames (a multiple "
        "of 16) and write its tokens into a token store. Resumable.",
    )
    p.add_argument("videos", nargs="+")
    p.add_argument("--out", type=Path, required=True, help="token store (.zarr), created or resumed")
    p.add_argument("--size", type=int, nargs=2, default=(96, 128), metavar=("H", "W"))
    p.add_argument("--max-frames", type=int, default=256)
    p.add_argument("--ckpt", type=Path, help="codec checkpoint (default: the shipped one)")
    p.set_defaults(func=_tokenize)

    p = sub.add_parser(
        "prior-train",
        help="train a token prior on a fixed-size token store (CPU, resumable)",
        description="Train a TokenPrior on every window of --window token frames of STORE; RUN/log.jsonl logs "
        "it, RUN/checkpoint resumes it, RUN/prior holds the final model.",
    )
    p.add_argument("store", type=Path)
    p.add_argument("--run", type=Path, required=True)
    p.add_argument("--window", type=int, default=4, help="token frames per training sequence")
    p.add_argument("--steps", type=int, default=400)
    p.add_argument("--batch", type=int, default=8)
    p.add_argument("--lr", type=float, default=2e-3)
    p.add_argument("--dim", type=int, default=128)
    p.add_argument("--depth", type=int, default=4)
    p.add_argument("--heads", type=int, default=4)
    p.add_argument("--max-minutes", type=float, help="stop (saving the state) after this long; rerun to resume")
    p.add_argument("--exclude", nargs="+", default=[], metavar="KEY", help="clips left out (a development split)")
    p.add_argument("--keep-every", type=int, default=0, help="keep the model of every N-th step in RUN/steps/")
    p.add_argument("--threads", type=int, default=1, help="torch threads (default 1: the machine is shared)")
    p.set_defaults(func=_train)

    p = sub.add_parser(
        "prior-eval",
        help="held-out bits/token of the prior against the codec's coded level 0",
        description="Tokenize each video at the prior's frame size, score its level-0 tokens with the prior "
        "and compress it with the codec; print bits per token of both.",
    )
    p.add_argument("videos", nargs="+")
    p.add_argument("--prior", type=Path)
    p.add_argument("--ckpt", type=Path)
    p.add_argument("--max-frames", type=int, default=256)
    p.add_argument("--train-store", type=Path, help="also score a unigram baseline: this store's index histogram")
    p.add_argument(
        "--coded",
        action="store_true",
        help="also code the tokens with the prior through the rANS coder (real bytes, checked to decode back)",
    )
    p.add_argument("--json", type=Path, help="write the results as JSON")
    p.set_defaults(func=_evaluate)


def _load_prior(path: Path | None):
    from generation.pretrained import load_prior

    return load_prior(path)


def _load_codec_for(prior, ckpt: Path | None):
    from mptvc_latents.pretrained import load_codec

    codec = load_codec(ckpt)
    if prior.config.codec_digest and codec.weights_digest() != prior.config.codec_digest:
        raise ValueError(
            f"The prior models the tokens of another codec checkpoint (digest {prior.config.codec_digest[:12]}...) "
            f"than {codec.config.name!r} ({codec.weights_digest()[:12]}...); pass the codec it was trained on with --ckpt."
        )
    return codec


def _generate(args: argparse.Namespace) -> None:
    import numpy as np
    import torch

    from generation.images import write_gif
    from generation.sample import SampleConfig, decode_sample, sample_symbols, token_frames_for
    from mptvc_latents.files import atomic_output
    from mptvc_latents.video import write_frames

    config = SampleConfig(frames=args.frames, seed=args.seed, temperature=args.temperature, top_k=args.top_k)
    gif = None if args.no_gif else (args.gif or args.out.with_suffix(".gif"))
    if gif is not None and gif.resolve() == args.out.resolve():
        raise ValueError(f"The GIF and the video would both be written to {str(args.out)!r}; pass another --gif.")
    prior = _load_prior(args.prior)
    codec = _load_codec_for(prior, args.ckpt)
    config = token_frames_for(codec, config)
    torch.set_num_threads(max(1, min(torch.get_num_threads(), 2)))
    symbols = sample_symbols(prior, config)  # uint8 (t', h', w', C)
    frames = decode_sample(codec, symbols, config.frames, prior.config.fps)  # uint8 (frames, H, W, 3)
    with atomic_output(args.out) as tmp:
        write_frames(tmp, frames, prior.config.fps)
    if gif is not None:
        with atomic_output(gif) as tmp:
            write_gif(tmp, frames, prior.config.fps)
    if args.tokens is not None:
        with atomic_output(args.tokens) as tmp:
            np.save(tmp, symbols)
    log.info(
        "wrote %s%s: %d frames of %dx%d (seed %d, temperature %g, top-k %d)",
        args.out,
        f" and {gif}" if gif else "",
        frames.shape[0],
        frames.shape[2],
        frames.shape[1],
        config.seed,
        config.temperature,
        config.top_k,
    )


def _tokenize(args: argparse.Namespace) -> None:
    import torch

    from generation.data import tokenize_fixed
    from mptvc_latents.pretrained import load_codec

    torch.set_num_threads(1)
    written = tokenize_fixed(args.videos, args.out, load_codec(args.ckpt), tuple(args.size), args.max_frames)
    log.info("%d clips written to %s", len(written), args.out)


def _train(args: argparse.Namespace) -> None:
    import torch

    from generation.train import TrainConfig, prior_config_for, train_prior

    if args.threads < 1:
        raise ValueError(f"--threads must be 1 or more, got {args.threads}.")
    torch.set_num_threads(args.threads)
    if not args.store.is_dir():
        raise ValueError(f"There is no token store at {str(args.store)!r}; make one with `mptvc prior-tokenize`.")
    config = prior_config_for(
        args.store, args.window, dim=args.dim, depth=args.depth, heads=args.heads, mlp_dim=3 * args.dim
    )
    train = TrainConfig(steps=args.steps, batch=args.batch, lr=args.lr, keep_every=args.keep_every)
    max_seconds = None if args.max_minutes is None else 60 * args.max_minutes
    clips = None
    if args.exclude:
        from mptvc_latents.store import TokenStore

        keys = TokenStore.open(args.store).clips()
        unknown = sorted(set(args.exclude) - set(keys))
        if unknown:
            raise ValueError(f"--exclude names clips that the store does not hold: {unknown}.")
        clips = [k for k in keys if k not in set(args.exclude)]
    train_prior(args.store, args.run, config, train, max_seconds=max_seconds, clips=clips)


def _evaluate(args: argparse.Namespace) -> None:
    import torch

    from generation.evaluate import evaluate_prior, unigram_bits_table
    from mptvc_latents.store import find_sources

    torch.set_num_threads(1)
    prior = _load_prior(args.prior)
    codec = _load_codec_for(prior, args.ckpt)
    sources, missing = find_sources(args.videos)
    if missing:
        raise ValueError(f"No video found for {missing[0][0]!r} ({missing[0][1]}).")
    unigram = None if args.train_store is None else unigram_bits_table(args.train_store, prior.config.vocab_size)
    report = evaluate_prior(
        prior, codec, [s.path for s in sources], max_frames=args.max_frames, unigram=unigram, coded=args.coded
    )
    print(report.format())
    if args.json is not None:
        from mptvc_latents.files import atomic_output

        with atomic_output(args.json) as tmp:
            tmp.write_text(json.dumps(report.to_dict(), indent=2))
