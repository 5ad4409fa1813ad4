"""Inference speed: encode + decode of a short clip, this tree against a baseline revision.

`python -m benchmarks.infer_bench [--baseline REV] [--threads 2] [--frames 17] [--size 256] [--rounds 3]
[--wait-policy passive default]`

One measurement is ``model.compress`` then ``model.decompress`` (entropy coding and the
``.mptvc`` container included) of ``--frames`` frames of the sample clip resized to
``--size`` x ``--size``, with the transformers in bf16 (``set_inference_dtype``), after one
warm-up. Two kinds of weights:

- ``preset``: a freshly initialised ``mptvc-cpu`` (seed 0) in both trees, which code with the
  same kind of entropy model (the scale hyperprior): the kernels alone;
- ``shipped``: each tree's own shipped checkpoint, as a user of that revision gets it (the
  current one codes with the context model, which decodes token frame by token frame).

Each configuration runs in its own process, alternating over ``--rounds`` rounds (see
``benchmarks._revisions``); the table reports medians of wall time and frames per second, and
the JSON also the process CPU time. ``--wait-policy``: the workers' OpenMP threads sleep between
parallel regions (``passive``, the default: nothing spins on a shared machine) or keep the
library's default (``default``: ``OMP_WAIT_POLICY`` unset, as a user's shell has it, where idle
threads spin briefly before sleeping); rows of the default policy carry ``default wait`` in their
name. Results: ``benchmarks/results/infer_bench.json``.
"""

from __future__ import annotations

import argparse
import itertools
from contextlib import ExitStack
from pathlib import Path

import numpy as np

from benchmarks._revisions import ROOT, run_worker, worktree, write_report

RESULTS = ROOT / "benchmarks" / "results"

# Runs in a subprocess against whichever tree is on PYTHONPATH; uses only the API every revision
# has (MPTVC(preset), MPTVC.from_pretrained(folder), set_inference_dtype, compress, decompress); the
# working directory is the tree, so the relative checkpoint folder is that revision's own.
_WORKER = r"""
import json, os, sys, time
import numpy as np, torch
args = json.loads(sys.argv[1])
torch.set_num_threads(args["threads"])
torch.manual_seed(0)
from mptvc_latents.codec import MPTVC
from mptvc_latents.presets import preset
from mptvc_latents.video import read_video

clip = read_video(args["clip"], max_frames=args["frames"])
frames = torch.from_numpy(clip.frames).permute(0, 3, 1, 2).float()  # (T, 3, H, W)
size = args["size"]
frames = torch.nn.functional.interpolate(frames, size=(size, size), mode="bilinear", antialias=True)
video = frames.round().clamp(0, 255).to(torch.uint8).permute(0, 2, 3, 1).contiguous().numpy()  # (T, S, S, 3)
if args["weights"] == "preset":
    model = MPTVC(preset("mptvc-cpu"))
else:
    model = MPTVC.from_pretrained("mptvc_latents/checkpoints/mptvc-cpu")
model.eval().set_inference_dtype(torch.bfloat16)

def run():
    compressed = model.compress(video, clip.fps)
    model.decompress(compressed)
    return compressed

compressed = run()  # warm-up
times, cpu = [], []
for _ in range(args["repeats"]):
    t0, c0 = time.perf_counter(), time.process_time()
    run()
    times.append(time.perf_counter() - t0)
    cpu.append(time.process_time() - c0)
nbytes, policy = sum(compressed.level_bytes()), os.environ.get("OMP_WAIT_POLICY")
print(json.dumps({"seconds": times, "cpu_seconds": cpu, "bytes": nbytes, "omp_wait_policy": policy}))
"""


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--threads", type=int, nargs="+", default=[2])
    parser.add_argument("--frames", type=int, default=17)
    parser.add_argument("--size", type=int, default=256)
    parser.add_argument("--repeats", type=int, default=2, help="timed runs per configuration and round")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--weights", nargs="+", choices=("preset", "shipped"), default=["preset", "shipped"])
    parser.add_argument("--baseline", help="git revision to measure beside this tree")
    parser.add_argument(
        "--wait-policy",
        nargs="+",
        choices=("passive", "default"),
        default=["passive"],
        help="OpenMP wait policies to measure (passive: OMP_WAIT_POLICY=PASSIVE; default: unset)",
    )
    parser.add_argument("--out", type=Path, default=RESULTS / "infer_bench.json")
    args = parser.parse_args()

    from mptvc_latents.demo import SAMPLE

    shape = {"frames": args.frames, "size": args.size, "repeats": args.repeats, "clip": str(SAMPLE)}
    samples: dict[str, list[float]] = {}
    cpu_samples: dict[str, list[float]] = {}
    nbytes: dict[str, int] = {}
    policies: dict[str, str | None] = {}
    with ExitStack() as stack:
        trees = {"current": ROOT}
        if args.baseline:
            trees = {"baseline": stack.enter_context(worktree(args.baseline)), **trees}
        for _ in range(args.rounds):
            for policy, threads, weights in itertools.product(args.wait_policy, args.threads, args.weights):
                for name, tree in trees.items():
                    key = f"{name} {weights} {threads} thread(s)" + (" default wait" if policy == "default" else "")
                    config = {**shape, "threads": threads, "weights": weights, "wait_policy": policy}
                    measured = run_worker(_WORKER, tree, config)
                    assert isinstance(measured, dict)
                    samples.setdefault(key, []).extend(measured["seconds"])
                    nbytes[key] = measured["bytes"]
                    policies[key] = measured["omp_wait_policy"]
                    cpu_samples.setdefault(key, []).extend(measured["cpu_seconds"])
                    print(f"{key}: {np.median(samples[key]):.3f} s", flush=True)

    rows = {}
    for key, times in samples.items():
        seconds = float(np.median(times))
        rows[key] = {
            "seconds": seconds,
            "cpu_seconds": float(np.median(cpu_samples[key])),
            "frames_per_second": args.frames / seconds,
            "bytes": nbytes[key],
            "omp_wait_policy": policies[key],
        }
    for key, row in rows.items():
        base = rows.get(key.replace("current", "baseline", 1)) if key.startswith("current") else None
        if base:
            row["speedup_vs_baseline"] = base["seconds"] / row["seconds"]
            row["cpu_speedup_vs_baseline"] = base["cpu_seconds"] / row["cpu_seconds"]
    write_report(args.out, args.baseline, shape, rows)
    print(f"{'configuration':49s} {'s':>7s} {'CPU s':>7s} {'frames/s':>9s} {'speedup':>8s}")
    for key, row in rows.items():
        speedup = f"{row['speedup_vs_baseline']:.2f}x" if "speedup_vs_baseline" in row else ""
        seconds, cpu, fps = row["seconds"], row["cpu_seconds"], row["frames_per_second"]
        print(f"{key:49s} {seconds:7.3f} {cpu:7.3f} {fps:9.2f} {speedup:>8s}")


if __name__ == "__main__":
    main()
