"""Real .mptvc bytes per prefix on the val clips: one checkpoint coded with the scale hyperprior
alone (container v2) against a checkpoint with context tables (v3), on the same tokens (each
chunk is analysed once and entropy-coded both ways; the context file's preview is decoded back
and checked against the hyperprior's).

`python benchmarks/context_real_bytes.py HYPERPRIOR_CKPT CONTEXT_CKPT FRAMES OUT.json`, e.g.
`python benchmarks/context_real_bytes.py runs/base mptvc_latents/checkpoints/mptvc-cpu 96
benchmarks/results/context/real_bytes_val_96frames.json` (a checkpoint's tables-only twin is its
folder without `context` in config.json; the digests tell them apart).
"""

from __future__ import annotations

import glob
import json
import sys
import time

import numpy as np


def main(argv: list[str]) -> None:
    import torch

    from mptvc_latents.codec import MPTVC, ChunkContexts
    from mptvc_latents.formats.container import truncate_mptvc, write_mptvc
    from mptvc_latents.types import Compressed
    from mptvc_latents.video import read_video

    torch.set_num_threads(1)
    base, ctx = MPTVC.from_pretrained(argv[0]), MPTVC.from_pretrained(argv[1])
    frames, out_path = int(argv[2]), argv[3]
    if base.weights_digest() != ctx.weights_digest():
        raise ValueError("The two checkpoints have other weights, so their tokens differ.")
    out: dict = {}
    for path in sorted(glob.glob("../shared/data/val/*/*")):
        clip = read_video(path, max_frames=frames)
        x, info = base._prepare(clip.frames, clip.fps)
        seg_a: list[list[tuple[bytes, bytes]]] = [[] for _ in range(3)]
        seg_b: list[list[tuple[bytes, bytes]]] = [[] for _ in range(3)]
        ca, cb = ChunkContexts(None, 3), ChunkContexts(ctx.intra_period, 3)
        t0 = time.time()
        for c, chunk in enumerate(base._chunks(info)):
            t_pos = base._t_pos(chunk.stop - chunk.start, info.scene_ids[chunk])
            symbols, bounds = base._analyze(x[:, :, chunk], t_pos)
            for k, s in enumerate(base._compress_chunk(c, symbols, bounds, ca)):
                seg_a[k].append(s)
            for k, s in enumerate(ctx._compress_chunk(c, symbols, bounds, cb)):
                seg_b[k].append(s)
        a, b = Compressed(seg_a, info), Compressed(seg_b, info, ctx.intra_period)
        da = write_mptvc(a, base.config.to_dict(), base.tables_digest())
        db = write_mptvc(b, ctx.config.to_dict(), ctx.tables_digest())
        pa = [len(truncate_mptvc(da, k)) for k in range(3)]
        pb = [len(truncate_mptvc(db, k)) for k in range(3)]
        pixels = info.frames * info.height * info.width
        assert np.array_equal(ctx.decompress(b, k_max=0), base.decompress(a, k_max=0))
        name = path.split("/")[-1]
        out[name] = {
            "frames": info.frames,
            "size": [info.height, info.width],
            "hyperprior_bytes": pa,
            "context_bytes": pb,
            "hyperprior_bpp": [8 * p / pixels for p in pa],
            "context_bpp": [8 * p / pixels for p in pb],
            "saving": [1 - q / p for p, q in zip(pa, pb, strict=True)],
        }
        print(name, info.frames, "bytes", pa, pb, "saving", [round(v, 3) for v in out[name]["saving"]],
              f"{time.time() - t0:.0f}s", flush=True)  # fmt: skip
    out["mean_saving"] = [float(np.mean([v["saving"][k] for v in out.values()])) for k in range(3)]
    print("mean saving", [round(v, 3) for v in out["mean_saving"]])
    with open(out_path, "w") as f:
        json.dump(out, f, indent=1)


if __name__ == "__main__":
    main(sys.argv[1:])
