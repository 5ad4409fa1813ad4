"""A PNG grid of samples, one row per seed and prefix (the picture in ``docs/generation.md``)::

python -m generation.grid --out docs/images/generation_samples.png [--prior DIR_OR_NAME] [--seeds 0 1 2 3]
    [--frames 32] [--show 0 8 16 24 31] [--levels 1 2 3] [--finer detail|context] [--temperature T] [--top-k K]

For each seed the same level-0 sample is decoded at every prefix in ``--levels`` (the finer
levels drawn by the detail priors, or with ``--finer context`` by the codec's context models), one
row each.
"""

from __future__ import annotations

import argparse
import logging
from pathlib import Path

from mptvc_latents.runtime import configure_threads


def main(argv: list[str] | None = None) -> None:
    configure_threads(1)
    from generation.images import tile, write_png
    from generation.model import TokenPrior
    from generation.pretrained import resolve_prior
    from generation.sample import SampleConfig, sample_videos
    from mptvc_latents.cli import given_flags
    from mptvc_latents.codec import MPTVC
    from mptvc_latents.files import atomic_output

    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--out", type=Path, required=True)
    p.add_argument("--prior", help="prior folder or shipped name (default: the default prior)")
    p.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2, 3])
    p.add_argument("--frames", type=int, default=32)
    p.add_argument("--show", type=int, nargs="+", default=[0, 8, 16, 24, 31], help="frames shown per row")
    p.add_argument("--temperature", type=float, default=argparse.SUPPRESS, help="default: SampleConfig's")
    p.add_argument("--top-k", type=int, default=argparse.SUPPRESS, help="default: SampleConfig's")
    p.add_argument("--levels", type=int, nargs="+", default=[1], help="prefixes shown per seed (levels decoded)")
    p.add_argument(
        "--finer", choices=("detail", "context"), default=argparse.SUPPRESS, help="what draws the finer levels"
    )
    args = p.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(message)s")
    if any(not 0 <= f < args.frames for f in args.show):
        raise SystemExit(f"--show frames must lie in 0..{args.frames - 1}.")
    prior = TokenPrior.from_pretrained(resolve_prior(args.prior))
    flags = {k: v for k, v in given_flags(args, SampleConfig).items() if k != "levels"}
    codec = MPTVC.from_pretrained()
    rows = []
    for seed in args.seeds:
        for levels in args.levels:
            config = SampleConfig(**flags, levels=levels)
            rows.append(sample_videos(prior, codec, config, [seed])[0][args.show])
    with atomic_output(args.out) as tmp:
        write_png(tmp, tile(rows))
    logging.info("wrote %s: seeds %s at levels %s, frames %s", args.out, args.seeds, args.levels, args.show)


if __name__ == "__main__":
    main()
