"""fp32 against bf16 transformers: encode + decode time and quality on the sample clip.

`python -m benchmarks.bf16_bench` (uses the shipped checkpoint).
"""

from __future__ import annotations

import argparse
import json
import os
import time

import numpy as np

from mptvc_latents.runtime import configure_threads


def main() -> None:
    configure_threads()  # before torch loads
    import torch

    from mptvc_latents.codec import MPTVC
    from mptvc_latents.demo import SAMPLE
    from mptvc_latents.eval.metrics import psnr_y
    from mptvc_latents.video import read_video

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--frames", type=int, default=32)
    args = parser.parse_args()
    clip = read_video(SAMPLE, max_frames=args.frames)
    rows = {}
    for name, dtype in (("fp32", None), ("bf16", torch.bfloat16)):
        model = MPTVC.from_pretrained()
        if dtype is not None:
            model.set_inference_dtype(dtype)
        times = []
        for _ in range(args.repeats):
            t0 = time.perf_counter()
            compressed = model.compress(clip.frames, clip.fps)
            video = model.decompress(compressed)
            times.append(time.perf_counter() - t0)
        rows[name] = {
            "seconds": float(np.median(times)),
            "bytes": sum(len(z) + len(y) for level in compressed.segments for z, y in level),
            "psnr_y": psnr_y(clip.frames, video),
        }
    rows["speedup"] = rows["fp32"]["seconds"] / rows["bf16"]["seconds"]
    rows["load_average"] = os.getloadavg()
    print(json.dumps(rows, indent=1))


if __name__ == "__main__":
    main()
