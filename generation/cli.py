"""``mptvc generate`` and the prior's own commands, added to ``mptvc`` through the
``mptvc.commands`` entry point (the core never imports this package).

::

    mptvc generate [--prior DIR] --out sample.mp4 [--frames N] [--seed S] [--temperature T] [--top-k K] [--gif G]
    mptvc prior-tokenize VIDEOS... --out STORE.zarr [--size H W] [--max-frames N]     (resumable)
    mptvc prior-train STORE.zarr --run DIR [--level K] [--steps N] [--batch B] [--window T] [--max-minutes M]
    mptvc prior-eval VIDEOS... [--prior DIR] [--train-store STORE] [--coded] [--json OUT]   (bits/token vs the codec)

Flags left out take the defaults of the configs and functions they feed (``given_flags``):
``SampleConfig``, ``tokenize_fixed``, ``prior_config_for``, ``PriorConfig``, ``TrainConfig``, ``evaluate_prior``;
with ``--level K`` (K >= 1, a detail prior) ``DetailConfig`` and ``DetailTrainConfig``.
"""

from __future__ import annotations

import argparse
import json
import logging
from pathlib import Path

from mptvc_latents.cli import given_flags
from mptvc_latents.runtime import configure_threads

log = logging.getLogger("mptvc.generate")

__all__ = ["add_command"]


def add_command(sub) -> None:
    """Add ``generate``, ``prior-tokenize``, ``prior-train`` and ``prior-eval`` to the ``mptvc`` subparsers."""
    given = {"default": argparse.SUPPRESS}  # left out: the default of the config or function the flag feeds
    p = sub.add_parser(
        "generate",
        help="sample a video from the token prior and decode it",
        description="Sample level-0 tokens from a token prior (default: the shipped one) and the finer levels "
        "(--levels) from the shipped detail priors (--finer detail, the default) or from the codec's context models "
        "(--finer context), decode them with the codec and write an mp4 and a GIF. A fixed --seed reproduces the "
        "same tokens.",
    )
    p.add_argument("--prior", help="prior folder or shipped name: prior-l0-256x256 (the default) or prior-l0-96x128")
    p.add_argument("--ckpt", type=Path, help="codec checkpoint (default: the shipped one); must be the prior's codec")
    p.add_argument("--out", type=Path, required=True, help="output video (.mp4, or .npy for the exact frames)")
    p.add_argument("--gif", type=Path, help="GIF path (default: the --out path with .gif)")
    p.add_argument("--no-gif", action="store_true", help="write no GIF")
    p.add_argument("--frames", type=int, **given, help="video frames (default: 32)")
    p.add_argument("--seed", type=int, **given)
    p.add_argument("--temperature", type=float, **given)
    p.add_argument("--top-k", type=int, **given, help="sample among the K likeliest indices (0: all)")
    p.add_argument(
        "--levels",
        type=int,
        **given,
        help="pyramid levels to sample and decode: level 0 from the prior, then the finer ones (default: all; "
        "1 = the preview)",
    )
    p.add_argument(
        "--finer",
        choices=("detail", "context"),
        **given,
        help="what draws the finer levels: the detail priors (spatial context; the default) or the codec's "
        "context entropy models",
    )
    p.add_argument(
        "--detail",
        nargs="+",
        metavar="DIR",
        help="detail prior folders, one per finer level (default: the shipped ones for the default codec)",
    )
    p.add_argument("--tokens", type=Path, help="also save the sampled level-0 symbols as .npy uint8 (t', h', w', C)")
    p.set_defaults(func=_generate)

    p = sub.add_parser(
        "prior-tokenize",
        help="tokenize videos at one fixed size into a token store (for training a prior)",
        description="Centre-crop and resize every clip to --size, take its first --max-frames frames (a multiple "
        "of 16) and write its tokens into a token store. Resumable.",
    )
    p.add_argument("videos", nargs="+")
    p.add_argument("--out", type=Path, required=True, help="token store (.zarr), created or resumed")
    p.add_argument(
        "--size", type=int, nargs=2, **given, metavar=("H", "W"), help="frame size (default: tokenize_fixed's)"
    )
    p.add_argument("--max-frames", type=int, **given, help="frames read per clip, cut to a multiple of 16")
    p.add_argument("--ckpt", type=Path, help="codec checkpoint (default: the shipped one)")
    p.set_defaults(func=_tokenize)

    p = sub.add_parser(
        "prior-train",
        help="train a token prior (level 0) or a detail prior (--level K) on a fixed-size token store (CPU, resumable)",
        description="Train a TokenPrior on every window of --window token frames of STORE, or with --level K >= 1 "
        "a DetailPrior of level K on random --crop x --crop token crops; RUN/log.jsonl logs it, RUN/checkpoint "
        "resumes it, RUN/prior (RUN/detail) holds the final model.",
    )
    p.add_argument("store", type=Path)
    p.add_argument("--run", type=Path, required=True)
    p.add_argument(
        "--level", type=int, **given, help="0 (the default): the token prior; K >= 1: the detail prior of level K"
    )
    p.add_argument("--crop", type=int, **given, help="detail prior: tokens per side of a training crop")
    p.add_argument("--window", type=int, **given, help="token frames per training sequence")
    p.add_argument("--steps", type=int, **given)
    p.add_argument("--batch", type=int, **given)
    p.add_argument("--lr", type=float, **given)
    p.add_argument("--dim", type=int, **given, help="model width (the MLP is 3x as wide)")
    p.add_argument("--depth", type=int, **given)
    p.add_argument("--heads", type=int, **given)
    p.add_argument("--max-minutes", type=float, help="stop (saving the state) after this long; rerun to resume")
    p.add_argument("--exclude", nargs="+", default=[], metavar="KEY", help="clips left out (a development split)")
    p.add_argument("--keep-every", type=int, **given, help="keep the model of every N-th step in RUN/steps/")
    p.add_argument("--threads", type=int, default=1, help="torch threads (default 1: the machine is shared)")
    p.set_defaults(func=_train)

    p = sub.add_parser(
        "prior-eval",
        help="held-out bits/token of the prior against the codec's coded level 0",
        description="Tokenize each video at the prior's frame size, score its level-0 tokens with the prior "
        "and compress it with the codec; print bits per token of both.",
    )
    p.add_argument("videos", nargs="+")
    p.add_argument("--prior", help="prior folder or shipped name (default: prior-l0-256x256)")
    p.add_argument("--ckpt", type=Path)
    p.add_argument("--max-frames", type=int, **given, help="frames read per clip")
    p.add_argument("--train-store", type=Path, help="also score a unigram baseline: this store's index histogram")
    p.add_argument(
        "--coded",
        action="store_true",
        help="also code the tokens with the prior through the rANS coder (real bytes, checked to decode back)",
    )
    p.add_argument("--json", type=Path, help="write the results as JSON")
    p.set_defaults(func=_evaluate)


def _load_prior(prior: str | None):
    from generation.model import TokenPrior
    from generation.pretrained import resolve_prior

    return TokenPrior.from_pretrained(resolve_prior(prior))


def _load_codec_for(prior, ckpt: Path | None):
    from generation.sample import check_codec
    from mptvc_latents.codec import MPTVC

    codec = MPTVC.from_pretrained(ckpt)
    check_codec(prior.config.codec_digest, codec, "the prior")
    return codec


def _generate(args: argparse.Namespace) -> None:
    import numpy as np
    import torch

    from generation.detail import load_detail_priors
    from generation.images import write_gif
    from generation.sample import SampleConfig, decode_sample, sample_symbols, token_frames_for
    from mptvc_latents.files import atomic_output
    from mptvc_latents.video import write_frames

    config = SampleConfig(**given_flags(args, SampleConfig))
    if args.detail and config.finer != "detail":
        raise ValueError("--detail gives detail priors, which only --finer detail uses.")
    gif = None if args.no_gif else (args.gif or args.out.with_suffix(".gif"))
    if gif is not None and gif.resolve() == args.out.resolve():
        raise ValueError(f"The GIF and the video would both be written to {str(args.out)!r}; pass another --gif.")
    prior = _load_prior(args.prior)
    codec = _load_codec_for(prior, args.ckpt)
    config = token_frames_for(codec, config)
    configure_threads(min(torch.get_num_threads(), 2))
    detail = load_detail_priors(args.detail) if args.detail else None
    symbols = sample_symbols(prior, config)  # uint8 (t', h', w', C)
    frames = decode_sample(
        codec, symbols, config.frames, prior.config.fps, config.levels, config.seed, config.finer, detail
    )
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
    configure_threads(1)
    from generation.data import tokenize_fixed
    from mptvc_latents.codec import MPTVC

    model = MPTVC.from_pretrained(args.ckpt)
    written = tokenize_fixed(args.videos, args.out, model, **given_flags(args, tokenize_fixed))
    log.info("%d clips written to %s", len(written), args.out)


def _train(args: argparse.Namespace) -> None:
    configure_threads(args.threads)
    from generation.detail import DetailConfig
    from generation.model import PriorConfig
    from generation.train import (
        DetailTrainConfig,
        TrainConfig,
        detail_config_for,
        prior_config_for,
        train_detail,
        train_prior,
    )

    if not args.store.is_dir():
        raise ValueError(f"There is no token store at {str(args.store)!r}; make one with `mptvc prior-tokenize`.")
    level = getattr(args, "level", 0)
    if level < 0:
        raise ValueError(f"--level must be 0 (the token prior) or a finer level, got {level}.")
    if level == 0 and hasattr(args, "crop"):
        raise ValueError(
            "--crop is a flag of the detail priors (--level 1 or more); the token prior trains on whole grids."
        )
    max_seconds = None if args.max_minutes is None else 60 * args.max_minutes
    clips = _clips(args)
    if level > 0:
        shape = {k: v for k, v in given_flags(args, DetailConfig).items() if k != "level"}
        detail = detail_config_for(args.store, level, **shape)
        detail_train = DetailTrainConfig(**given_flags(args, DetailTrainConfig))
        train_detail(args.store, args.run, detail, detail_train, max_seconds=max_seconds, clips=clips)
        return
    shape = given_flags(args, PriorConfig)
    if "dim" in shape:
        shape["mlp_dim"] = 3 * shape["dim"]
    config = prior_config_for(args.store, **given_flags(args, prior_config_for), **shape)
    train = TrainConfig(**given_flags(args, TrainConfig))
    train_prior(args.store, args.run, config, train, max_seconds=max_seconds, clips=clips)


def _clips(args: argparse.Namespace) -> list[str] | None:
    """The store's clips less ``--exclude`` (None: all)."""
    clips = None
    if args.exclude:
        from mptvc_latents.store import TokenStore

        keys = TokenStore.open(args.store).clips()
        unknown = sorted(set(args.exclude) - set(keys))
        if unknown:
            raise ValueError(f"--exclude names clips that the store does not hold: {unknown}.")
        clips = [k for k in keys if k not in set(args.exclude)]
    return clips


def _evaluate(args: argparse.Namespace) -> None:
    configure_threads(1)
    from generation.evaluate import evaluate_prior, unigram_bits_table
    from mptvc_latents.video import find_videos

    prior = _load_prior(args.prior)
    codec = _load_codec_for(prior, args.ckpt)
    paths = find_videos(args.videos).paths
    unigram = None if args.train_store is None else unigram_bits_table(args.train_store, prior.config.vocab_size)
    report = evaluate_prior(prior, codec, paths, unigram=unigram, **given_flags(args, evaluate_prior))
    print(report.format())
    if args.json is not None:
        from mptvc_latents.files import atomic_output

        with atomic_output(args.json) as tmp:
            tmp.write_text(json.dumps(report.to_dict(), indent=2))
