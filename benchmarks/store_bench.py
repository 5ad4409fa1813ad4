"""Throughput of ``mptvc tokenize`` (``mptvc_latents.store.tokenize``) with 1, 2, ... workers.

Run from the repository root::

    python -m benchmarks.store_bench [--workers 1,2] [--clips 6] [--frames 32] [--size 128x96] \
        [--ckpt DIR] [--out benchmarks/results/store_bench.json]

Clips are crops of the sample (``mptvc_latents/assets/bikes_sample.mp4``) at different offsets,
written as H.264; each worker count tokenizes all of them into a fresh store. The time is the
whole run as a user sees it: planning, hashing, starting the workers (spawn, one model and one
torch thread each), reading, encoding and writing, and the final consolidation.
"""

from __future__ import annotations

import argparse
import datetime
import json
import os
import platform
import tempfile
from pathlib import Path

from mptvc_latents.runtime import configure_threads

DEFAULT_OUT = Path(__file__).parent / "results" / "store_bench.json"


def make_clips(folder: Path, clips: int, frames: int, width: int, height: int) -> list[Path]:
    from mptvc_latents.video import read_video, write_video

    sample = read_video(Path(__file__).parents[1] / "mptvc_latents" / "assets" / "bikes_sample.mp4", max_frames=64)
    if height > sample.frames.shape[1] or width > sample.frames.shape[2] or frames > sample.frames.shape[0]:
        raise ValueError(
            f"Clips of {frames} frames of {width}x{height} do not fit in the sample (64 frames of 320x136)."
        )
    paths = []
    for i in range(clips):
        t0 = (7 * i) % (sample.frames.shape[0] - frames + 1)
        x0 = (23 * i) % (sample.frames.shape[2] - width + 1)
        path = folder / f"clip{i:03d}.mp4"
        write_video(path, sample.frames[t0 : t0 + frames, :height, x0 : x0 + width], sample.fps)
        paths.append(path)
    return paths


def run(workers: list[int], clips: int, frames: int, width: int, height: int, ckpt: str | None) -> dict:
    from mptvc_latents.codec import MPTVC
    from mptvc_latents.store import tokenize

    load_start = os.getloadavg()
    model = MPTVC.from_pretrained(ckpt)
    configure_threads(1)  # as each worker does: the comparison is processes, not threads
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        sources = make_clips(Path(tmp), clips, frames, width, height)
        for n in workers:
            summary = tokenize(sources, Path(tmp) / f"w{n}.zarr", model, workers=n, progress=False)
            if summary.failed or len(summary.written) != clips:
                raise RuntimeError(f"the run with {n} workers failed: {summary.failed}")
            rows.append(
                {
                    "workers": n,
                    "seconds": round(summary.seconds, 3),
                    "clips_per_s": round(summary.clips_per_s, 3),
                    "frames_per_s": round(summary.frames_per_s, 2),
                }
            )
            print(
                f"| {n} | {summary.seconds:.2f} | {summary.clips_per_s:.3f} | {summary.frames_per_s:.2f} |", flush=True
            )
    return {
        "date": datetime.datetime.now(datetime.UTC).isoformat(timespec="seconds"),
        "machine": f"{platform.processor() or platform.machine()}, {os.cpu_count()} logical CPUs, {platform.system()}",
        "load_average": {"start": load_start, "end": os.getloadavg()},
        "checkpoint": model.config.name,
        "clips": clips,
        "frames": frames,
        "size": f"{width}x{height}",
        "rows": rows,
    }


def main(argv: list[str] | None = None) -> None:
    configure_threads()  # before torch loads, and inherited by the spawned workers
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--workers", default="1,2", help="comma-separated worker counts")
    parser.add_argument("--clips", type=int, default=6)
    parser.add_argument("--frames", type=int, default=32)
    parser.add_argument("--size", default="128x96", help="WxH, at most 320x136")
    parser.add_argument("--ckpt", help="checkpoint folder (default: the shipped one)")
    parser.add_argument("--out", type=Path, default=DEFAULT_OUT)
    args = parser.parse_args(argv)
    width, height = map(int, args.size.lower().split("x"))
    print(f"load average {os.getloadavg()}, {os.cpu_count()} CPUs")
    print("| workers | seconds | clips/s | frames/s |\n|---|---|---|---|")
    report = run([int(w) for w in args.workers.split(",")], args.clips, args.frames, width, height, args.ckpt)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(report, indent=2) + "\n")
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
