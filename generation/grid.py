"""A PNG grid of samples, one row per seed (the picture in ``docs/generation.md``)::

python -m generation.grid --out docs/images/generation_samples.png [--prior DIR] [--seeds 0 1 2 3]
    [--frames 32] [--show 0 8 16 24 31] [--temperature T] [--top-k K]
"""

from __future__ import annotations

import argparse
import logging
import os
from pathlib import Path

os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")


def main(argv: list[str] | None = None) -> None:
    import torch

    from generation.images import tile, write_png
    from generation.pretrained import load_prior
    from generation.sample import SampleConfig, sample_videos
    from mptvc_latents.files import atomic_output
    from mptvc_latents.pretrained import load_codec

    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--out", type=Path, required=True)
    p.add_argument("--prior", type=Path)
    p.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2, 3])
    p.add_argument("--frames", type=int, default=32)
    p.add_argument("--show", type=int, nargs="+", default=[0, 8, 16, 24, 31], help="frames shown per row")
    p.add_argument("--temperature", type=float, default=1.0)
    p.add_argument("--top-k", type=int, default=0)
    args = p.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(message)s")
    torch.set_num_threads(1)
    if any(not 0 <= f < args.frames for f in args.show):
        raise SystemExit(f"--show frames must lie in 0..{args.frames - 1}.")
    prior = load_prior(args.prior)
    config = SampleConfig(frames=args.frames, temperature=args.temperature, top_k=args.top_k)
    videos = sample_videos(prior, load_codec(), config, args.seeds)
    with atomic_output(args.out) as tmp:
        write_png(tmp, tile([v[args.show] for v in videos]))
    logging.info("wrote %s: seeds %s, frames %s", args.out, args.seeds, args.show)


if __name__ == "__main__":
    main()
