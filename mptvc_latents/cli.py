"""The ``mptvc`` command line."""

from __future__ import annotations

import os

# Idle OpenMP threads must not spin: on a shared 2-core machine spinning workers stalled
# training steps at 9-16 s instead of 0.3-0.6 s. Set before torch starts its thread pool.
os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")

import argparse  # noqa: E402
import logging  # noqa: E402
import sys  # noqa: E402

log = logging.getLogger("mptvc")


def _train(args: argparse.Namespace) -> None:
    import torch

    from mptvc_latents.train import TrainConfig, Trainer

    if args.threads:
        torch.set_num_threads(args.threads)
    config = TrainConfig(
        sources=tuple(args.sources),
        run_dir=args.run,
        preset=args.preset,
        batch=args.batch,
        frames=args.frames,
        crop=(args.crop, args.crop),
        phase_steps=tuple(args.phase_steps),
        lr=args.lr,
        lambdas=tuple(args.lambdas),
        checkpoint_every=args.checkpoint_every,
        seed=args.seed,
    )
    Trainer(config).fit(progress=not args.no_progress)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="mptvc", description="MPT-VC: neural video codec and tokenizer.")
    parser.add_argument("-v", "--verbose", action="store_true", help="log more")
    sub = parser.add_subparsers(dest="command", required=True)

    p = sub.add_parser("train", help="train a codec on folders of videos (resumable)")
    p.add_argument("sources", nargs="+", help="video files or folders")
    p.add_argument("--run", required=True, help="run folder (checkpoint, log.jsonl); re-running resumes")
    p.add_argument("--preset", default="mptvc-cpu")
    p.add_argument("--batch", type=int, default=8)
    p.add_argument("--frames", type=int, default=16)
    p.add_argument("--crop", type=int, default=64)
    p.add_argument("--phase-steps", type=int, nargs="+", default=[1500, 1500, 1500, 20000])
    p.add_argument("--lr", type=float, default=4e-4)
    p.add_argument("--lambdas", type=float, nargs="+", default=[3000.0, 800.0, 250.0])
    p.add_argument("--checkpoint-every", type=int, default=250)
    p.add_argument("--threads", type=int, default=0, help="torch threads (0: torch's default)")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--no-progress", action="store_true")
    p.set_defaults(func=_train)
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    logging.basicConfig(level=logging.DEBUG if args.verbose else logging.INFO, format="%(levelname)s %(message)s")
    try:
        args.func(args)
    except ValueError as e:
        print(f"mptvc: error: {e}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("mptvc: interrupted", file=sys.stderr)
        return 130
    return 0


if __name__ == "__main__":
    sys.exit(main())
