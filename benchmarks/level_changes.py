"""Are the finer levels paying for noise? Temporal symbol changes per level, and what freezing them costs.

Run from the repository root, one torch thread::

    python -m benchmarks.level_changes ../shared/data/val/facebookresearch_sam2/04_coffee.mp4 \
        [--max-frames 64] [--ckpt DIR] [--out benchmarks/results/level_changes.json]

The shipped codec encodes the clip; for each level it reports the share of symbols that differ from
the same position one token frame earlier (inside a chunk), the share of those changes that are a
single FSQ step (+-1: what noise straddling a quantization boundary produces), and the level's
real coded bytes (context entropy model, ``compress_tokens``). Then, level by level from the finest,
every +-1 change is undone (the symbol keeps its value of the token frame before, cascading through
time), the tokens are coded and decoded again, and the bytes saved are set against the PSNR-Y lost.
A level that pays for noise gives up many bytes for little PSNR; compare the dB per saved bit with
the slope between the medium and full prefixes.
"""

from __future__ import annotations

import argparse
import dataclasses
import datetime
import json
import os
from pathlib import Path

import numpy as np

DEFAULT_OUT = Path(__file__).parent / "results" / "level_changes.json"


def freeze_small_changes(symbols: np.ndarray, chunk: int) -> np.ndarray:
    """``symbols`` (T', H', W', C) with every change of one step from the (already frozen) token frame
    before undone, frame by frame: a drift moves once it is two steps away; chunk starts are left alone."""
    out = symbols.copy()
    for t in range(1, out.shape[0]):
        if t % chunk == 0:
            continue
        step = out[t].astype(np.int16) - out[t - 1].astype(np.int16)
        small = np.abs(step) == 1
        out[t][small] = out[t - 1][small]
    return out


def change_stats(symbols: np.ndarray, chunk: int) -> dict:
    """Share of symbols that change from the token frame before (inside chunks) and of those changes
    that are a single step."""
    t = np.arange(1, symbols.shape[0])
    inside = t[t % chunk != 0]
    step = symbols[inside].astype(np.int16) - symbols[inside - 1].astype(np.int16)
    changed = step != 0
    return {
        "changed": float(changed.mean()),
        "single_step_share_of_changes": float((np.abs(step) == 1).sum() / max(int(changed.sum()), 1)),
    }


def main(argv: list[str] | None = None) -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("clip", type=Path)
    p.add_argument("--max-frames", type=int, default=64)
    p.add_argument("--ckpt")
    p.add_argument("--out", type=Path, default=DEFAULT_OUT)
    args = p.parse_args(argv)

    from mptvc_latents.codec import MPTVC
    from mptvc_latents.eval.metrics import psnr_y
    from mptvc_latents.runtime import configure_threads
    from mptvc_latents.video import read_video

    configure_threads(1)
    model = MPTVC.from_pretrained(args.ckpt)
    clip = read_video(args.clip, max_frames=args.max_frames)
    frames = clip.frames
    pixels = frames.shape[0] * frames.shape[1] * frames.shape[2]
    chunk = model.config.chunk_frames // model.config.patch_t  # token frames per chunk
    tokens = model.encode(frames, clip.fps)

    def measure(tok) -> dict:
        coded = model.compress_tokens(tok)
        level_bytes = coded.level_bytes()
        decoded = model.decode(tok)
        return {"level_bytes": level_bytes, "bpp": 8 * sum(level_bytes) / pixels, "psnr_y": psnr_y(frames, decoded)}

    base = measure(tokens)
    medium = psnr_y(frames, model.decode(tokens, k_max=model.num_levels - 2))
    result = {
        "benchmark": "level_changes",
        "date": datetime.datetime.now().astimezone().isoformat(timespec="seconds"),
        "load_before": os.getloadavg()[0],
        "clip": str(args.clip),
        "frames": int(frames.shape[0]),
        "size": [int(frames.shape[1]), int(frames.shape[2])],
        "weights_digest": model.weights_digest(),
        "levels": [change_stats(s, chunk) for s in tokens.symbols],
        "base": base,
        "medium_prefix": {"bpp": 8 * sum(base["level_bytes"][:-1]) / pixels, "psnr_y": medium},
        "frozen": [],
    }
    symbols = list(tokens.symbols)
    for k in range(model.num_levels - 1, 0, -1):  # freeze the finest level first, then add coarser ones
        symbols[k] = freeze_small_changes(symbols[k], chunk)
        frozen = measure(dataclasses.replace(tokens, symbols=list(symbols)))
        frozen["levels_frozen"] = list(range(k, model.num_levels))
        result["frozen"].append(frozen)
        print(f"levels {k}..: bpp {base['bpp']:.4f} -> {frozen['bpp']:.4f}, PSNR-Y {base['psnr_y']:.2f} -> "
              f"{frozen['psnr_y']:.2f} dB", flush=True)  # fmt: skip
    for k, s in enumerate(result["levels"]):
        one = s["single_step_share_of_changes"]
        print(f"level {k}: {s['changed']:.1%} of symbols change, {one:.1%} of them by one step, "
              f"{base['level_bytes'][k]} bytes", flush=True)  # fmt: skip
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(result, indent=1) + "\n")


if __name__ == "__main__":
    main()
