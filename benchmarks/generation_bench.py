"""Which sampler draws the finer levels best: the detail priors or the codec's context models?
(BENCHMARKS.md, "Generation at every level")

Run from the repository root, one torch thread::

    python -m benchmarks.generation_bench ../shared/data/val [--size 256 256] [--max-frames 64] [--seeds 0 1 2]
        [--finer detail context] [--detail DIR DIR] [--out benchmarks/results/generation/levels_val.json]

For each clip (centre-cropped and resized to ``--size``, the default prior's frame size), the shipped
codec encodes the frames; then levels 1 and 2 are drawn given the clip's own level 0, one draw per
seed and sampler (``generation.sample.sample_finer``: ``detail``, the detail priors with spatial
context, default the shipped ones; ``context``, the codec's context entropy models). Real and
sampled tokens are compared on what a sampler should reproduce:

- ``change``: the share of symbols that differ from the token frame before (temporal stability);
- ``bits``: the context model's code length of the tokens (bits per token; for the samples, the
  model's own entropy: a sampler that matches the model spends what the data spends);
- ``detail_bits``: the same under the detail priors (levels 1 and 2; the real tokens' numbers are
  the detail priors' held-out code length, comparable with ``bits``);
- ``detail``: the mean absolute Laplacian of the decoded luma at each prefix (how much fine
  detail the frames carry), against the source's;
- ``psnr``: PSNR-Y of the decoded prefix against the source (samples do not reproduce the
  source's detail, so this falls: it says how far the invented detail is from the real one);
- ``placement``: whether a sample puts its detail where the real levels put theirs, whatever its
  phase: the Pearson correlation, over every 8x8 patch of every frame, of the mean absolute luma
  the finer levels add (full decode minus preview) in the sample and in the real tokens (1: the
  same places; 0: unrelated);
- ``seconds``: the CPU time of drawing levels 1 and 2.
"""

from __future__ import annotations

import argparse
import datetime
import json
import logging
import os
import platform
import time
from pathlib import Path

import numpy as np
import torch

DEFAULT_OUT = Path(__file__).parent / "results" / "generation" / "levels_val.json"


def luma(frames: np.ndarray) -> np.ndarray:
    """uint8 ``(T, H, W, 3)`` -> float64 BT.709 luma ``(T, H, W)``."""
    return frames.astype(np.float64) @ np.array([0.2126, 0.7152, 0.0722])


def detail(frames: np.ndarray) -> float:
    """Mean absolute 4-neighbour Laplacian of the luma (interior pixels)."""
    y = luma(frames)
    lap = 4 * y[:, 1:-1, 1:-1] - y[:, :-2, 1:-1] - y[:, 2:, 1:-1] - y[:, 1:-1, :-2] - y[:, 1:-1, 2:]
    return float(np.abs(lap).mean())


def psnr_y(a: np.ndarray, b: np.ndarray) -> float:
    mse = float(np.mean((luma(a) - luma(b)) ** 2))
    return float("inf") if mse == 0 else 10 * np.log10(255.0**2 / mse)


def change_rate(symbols: np.ndarray) -> float:
    """Share of symbols ``(T', H', W', C)`` differing from the token frame before."""
    return float((symbols[1:] != symbols[:-1]).mean())


def added_detail(full: np.ndarray, preview: np.ndarray) -> np.ndarray:
    """Mean absolute luma the finer levels add, per 8x8 patch of every frame: flat ``(T * H/8 * W/8,)``."""
    a = np.abs(luma(full) - luma(preview))  # (T, H, W)
    t, h, w = a.shape
    return a.reshape(t, h // 8, 8, w // 8, 8).mean((2, 4)).ravel()  # (T, H/8, 8, W/8, 8) -> (T, H/8, W/8)


def context_bits(codec, tokens) -> list[float]:
    """Bits per token of every level under the codec's context models (ideal code lengths)."""
    from mptvc_latents.codec import ChunkContexts

    info, pt = tokens.info, codec.config.patch_t
    contexts = ChunkContexts(codec.intra_period, codec.num_levels)
    bits = [0.0] * len(tokens.symbols)
    for c, chunk in enumerate(codec._chunks(info)):
        grid = slice(chunk.start // pt, chunk.stop // pt)
        coarser = None
        for k, level_symbols in enumerate(tokens.symbols):
            s = np.ascontiguousarray(level_symbols[grid].transpose(3, 0, 1, 2))  # (C, T', H', W')
            context = contexts.level(c, k, coarser)
            level = codec.level(k)
            scale = level.scale_index(torch.from_numpy(s)[None])
            assert level.context is not None and context is not None
            bits[k] += level.context.ideal_bits(s, scale, context)
            contexts.done(c, k, s)
            coarser = s
    n = int(np.prod(tokens.symbols[0].shape[:3]))
    return [b / n for b in bits]


def detail_bits(priors, tokens) -> list[float]:
    """Bits per token of levels 1.. under the detail priors (ideal code lengths, sampling order)."""
    n = int(np.prod(tokens.symbols[0].shape[:3]))
    out = []
    for k in range(1, len(tokens.symbols)):
        coarser = np.concatenate([np.asarray(s) for s in tokens.symbols[:k]], -1)
        out.append(priors[k].clip_bits(coarser, np.asarray(tokens.symbols[k])) / n)
    return out


def main(argv: list[str] | None = None) -> int:
    from generation.data import fit_frames
    from generation.detail import load_detail_priors
    from generation.sample import load_shipped_detail, sample_finer
    from mptvc_latents.codec import MPTVC
    from mptvc_latents.runtime import configure_threads
    from mptvc_latents.video import find_videos, read_video

    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("clips", nargs="+", type=Path)
    p.add_argument("--size", type=int, nargs=2, default=[256, 256], metavar=("H", "W"))
    p.add_argument("--max-frames", type=int, default=64)
    p.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    p.add_argument("--finer", nargs="+", choices=("detail", "context"), default=["detail", "context"])
    p.add_argument("--detail", nargs="+", type=Path, help="detail prior folders (default: the shipped ones)")
    p.add_argument("--out", type=Path, default=DEFAULT_OUT)
    args = p.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(message)s")
    configure_threads(1)
    codec = MPTVC.from_pretrained().eval()
    priors = load_detail_priors(args.detail) if args.detail else load_shipped_detail()
    results: dict = {
        "benchmark": "generation_bench",
        "date": datetime.datetime.now().astimezone().isoformat(timespec="seconds"),
        "machine": {"platform": platform.platform(), "cpus": os.cpu_count(), "torch": torch.__version__},
        "load_before": os.getloadavg()[0],
        "size": args.size,
        "max_frames": args.max_frames,
        "seeds": args.seeds,
        "finer": args.finer,
        "detail_priors": [str(d) for d in args.detail] if args.detail else "shipped",
        "weights_digest": codec.weights_digest(),
        "tables_digest": codec.tables_digest(),
        "clips": {},
    }
    for path in find_videos(args.clips).paths:
        frames = fit_frames(read_video(path, max_frames=args.max_frames).frames, tuple(args.size))
        tokens = codec.encode(frames, 25.0)
        real_decoded = [codec.decode(tokens, k_max=k) for k in range(codec.num_levels)]
        real_added = added_detail(real_decoded[-1], real_decoded[0])
        real = {
            "change": [change_rate(s) for s in tokens.symbols],
            "bits": context_bits(codec, tokens),
            "detail_bits": detail_bits(priors, tokens),
            "detail": [detail(d) for d in real_decoded],
            "psnr": [psnr_y(d, frames) for d in real_decoded],
        }
        draws: dict[str, list[dict]] = {finer: [] for finer in args.finer}
        for finer in args.finer:
            for seed in args.seeds:
                start = time.process_time()
                sampled = sample_finer(codec, tokens, codec.num_levels, seed, finer, priors)
                seconds = time.process_time() - start
                decoded = [codec.decode(sampled, k_max=k) for k in range(codec.num_levels)]
                draws[finer].append(
                    {
                        "seed": seed,
                        "seconds": seconds,
                        "change": [change_rate(s) for s in sampled.symbols],
                        "bits": context_bits(codec, sampled),
                        "detail_bits": detail_bits(priors, sampled),
                        "detail": [detail(d) for d in decoded],
                        "psnr": [psnr_y(d, frames) for d in decoded],
                        "placement": float(np.corrcoef(added_detail(decoded[-1], decoded[0]), real_added)[0, 1]),
                    }
                )
        results["clips"][path.stem] = {
            "frames": int(frames.shape[0]),
            "source_detail": detail(frames),
            "real": real,
            "sampled": draws,
        }
        logging.info("%s: real %s, sampled %s", path.stem, real, {f: d[0] for f, d in draws.items()})
        args.out.parent.mkdir(parents=True, exist_ok=True)
        args.out.write_text(json.dumps(results, indent=2) + "\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
