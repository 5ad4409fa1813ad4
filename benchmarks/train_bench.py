"""Training throughput: pixels and steps per second of one optimizer step, against a baseline revision.

`python -m benchmarks.train_bench [--baseline REV] [--threads 1 2] [--processes 2] [--steps 4] [--rounds 3] [--profile]`

One step is what ``mptvc train`` runs in its joint phase: forward of every level of the preset
(default ``mptvc-cpu``) at the training crop (default batch 8 of 16x64x64, random crops of the
sample clip), the rate-distortion loss, backward, gradient clipping and AdamW. Each
configuration runs in its own process (so ``--threads`` applies cleanly), and the
configurations alternate over ``--rounds`` rounds so that a busy machine slows them alike. The
table reports medians of wall time and of the process's CPU time (with one thread the CPU time
is what a step costs, whatever else the machine runs; with two it sums both threads).
``--baseline REV`` checks the given git revision out into a temporary worktree and measures its
training step the same way in the same run (fp32 only: older revisions have no autocast),
which is how "faster than before" is measured.
``--processes 2`` (the default) also runs this tree's bf16 step as ``mptvc train`` runs under
``torchrun --nproc-per-node 2``: two one-thread processes, each half of the global batch, gradients
all-reduced by ``DistributedDataParallel`` over gloo; its wall time is compared with the baseline's
fastest configuration on the same cores (its CPU column is rank 0's alone).
``--profile`` writes a torch.profiler table of one step (fp32 and bf16) next to the JSON.
"""

from __future__ import annotations

import argparse
from contextlib import ExitStack
from pathlib import Path

import numpy as np

from benchmarks._revisions import ROOT, run_worker, worktree, write_report

RESULTS = ROOT / "benchmarks" / "results"

# Runs in a subprocess against whichever tree is on PYTHONPATH; uses only the API every revision
# has (MPTVC(preset), forward(x, scenes), train.loss.rd_loss).
_WORKER = r"""
import json, sys, time
import numpy as np, torch
args = json.loads(sys.argv[1])
torch.set_num_threads(args["threads"])
torch.manual_seed(0)
from mptvc_latents.codec import MPTVC
from mptvc_latents.presets import preset
from mptvc_latents.train.loss import rd_loss
from mptvc_latents.video import read_video

model = MPTVC(preset(args["preset"])).train()
if args["autocast"]:
    model.set_training_autocast(torch.bfloat16)
optimizer = torch.optim.AdamW(model.parameters(), lr=1e-4, weight_decay=0.01, betas=(0.9, 0.99))
video = read_video(args["clip"]).frames
world, rank = args.get("processes", 1), 0
net = model
if world > 1:  # under torchrun: each process a share of the same global batch, as `mptvc train` runs
    import torch.distributed as dist
    from torch.nn.parallel import DistributedDataParallel
    dist.init_process_group("gloo")
    rank = dist.get_rank()
    net = DistributedDataParallel(model, forward_sync_buffers=False)
rng = np.random.default_rng(rank)
b, t, h, w = args["batch"] // world, args["frames"], args["crop"], args["crop"]

def batch():
    clips = []
    for _ in range(b):
        t0 = rng.integers(0, video.shape[0] - t + 1)
        y0 = rng.integers(0, video.shape[1] - h + 1)
        x0 = rng.integers(0, video.shape[2] - w + 1)
        clips.append(video[t0 : t0 + t, y0 : y0 + h, x0 : x0 + w])
    return torch.from_numpy(np.stack(clips)).permute(0, 4, 1, 2, 3).float() / 127.5 - 1.0  # (B, 3, T, H, W)

def step(x):
    out = net(x)
    loss = rd_loss(out, (5000.0, 500.0, 100.0), (1.0, 1.0, 1.0), pixels=x[:, 0].numel()).loss
    optimizer.zero_grad(set_to_none=True)
    loss.backward()
    torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
    optimizer.step()

step(batch())  # warm-up: first calls pay for lazy initialisation
if args["profile"]:
    from torch.profiler import ProfilerActivity, profile
    with profile(activities=[ProfilerActivity.CPU]) as p:
        step(batch())
    print(p.key_averages().table(sort_by="self_cpu_time_total", row_limit=20))
    sys.exit(0)
times, cpu = [], []
for _ in range(args["steps"]):
    x = batch()
    t0, c0 = time.perf_counter(), time.process_time()
    step(x)
    times.append(time.perf_counter() - t0)
    cpu.append(time.process_time() - c0)
if rank == 0:
    print(json.dumps({"seconds": times, "cpu_seconds": cpu}))
"""


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--preset", default="mptvc-cpu")
    parser.add_argument("--batch", type=int, default=8)
    parser.add_argument("--frames", type=int, default=16)
    parser.add_argument("--crop", type=int, default=64)
    parser.add_argument("--threads", type=int, nargs="+", default=[1, 2])
    parser.add_argument(
        "--processes",
        type=int,
        default=2,
        help="also measure this tree's bf16 step on that many one-thread processes under torchrun "
        "(DistributedDataParallel over gloo, the same global batch); 1: skip",
    )
    parser.add_argument("--steps", type=int, default=4, help="timed steps per configuration and round")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--baseline", help="git revision to measure beside this tree (e.g. the last release)")
    parser.add_argument("--profile", action="store_true", help="also write a profile of one step")
    parser.add_argument("--out", type=Path, default=RESULTS / "train_bench.json")
    args = parser.parse_args()
    if args.processes < 1 or args.batch % args.processes:
        parser.error(
            f"--batch {args.batch} must split evenly over --processes {args.processes} (the global batch is kept)."
        )

    from mptvc_latents.demo import SAMPLE

    shape = {"preset": args.preset, "batch": args.batch, "frames": args.frames, "crop": args.crop, "clip": str(SAMPLE)}
    trees = {"current": ROOT}
    stack = ExitStack()
    if args.baseline:
        trees["baseline"] = stack.enter_context(worktree(args.baseline))
    configs = [("baseline", "fp32")] * bool(args.baseline) + [("current", "fp32"), ("current", "bf16")]
    # One round: every (row name, tree, worker settings), in this order.
    runs = [
        (f"{tree} {dtype} {threads} thread(s)", tree, {"threads": threads, "autocast": dtype == "bf16"})
        for threads in args.threads
        for tree, dtype in configs
    ]
    if args.processes > 1:
        settings = {"threads": 1, "processes": args.processes, "autocast": True}
        runs.append((f"current bf16 {args.processes} processes x 1 thread", "current", settings))
    samples: dict[str, list[float]] = {}
    cpu_samples: dict[str, list[float]] = {}
    try:
        for _ in range(args.rounds):
            for key, tree, settings in runs:
                config = {**shape, **settings, "steps": args.steps, "profile": False}
                measured = run_worker(_WORKER, trees[tree], config)
                assert isinstance(measured, dict)
                samples.setdefault(key, []).extend(measured["seconds"])
                cpu_samples.setdefault(key, []).extend(measured["cpu_seconds"])
                print(f"{key}: {np.median(samples[key]):.3f} s/step, {np.median(cpu_samples[key]):.3f} CPU s/step")
        profile = ""
        if args.profile:
            for dtype in ("fp32", "bf16"):
                config = {**shape, "threads": 1, "steps": 1, "autocast": dtype == "bf16"}
                table = run_worker(_WORKER, ROOT, {**config, "profile": True}, raw=True)
                profile += f"== one step, {dtype}, 1 thread ==\n{table}\n"
    finally:
        stack.close()

    pixels = args.batch * args.frames * args.crop * args.crop
    rows = {}
    for key, times in samples.items():
        seconds = float(np.median(times))
        rows[key] = {
            "seconds_per_step": seconds,
            "cpu_seconds_per_step": float(np.median(cpu_samples[key])),
            "steps_per_second": 1 / seconds,
            "pixels_per_second": pixels / seconds,
        }
    for threads in args.threads:
        base = rows.get(f"baseline fp32 {threads} thread(s)")
        for dtype in ("fp32", "bf16"):
            row = rows[f"current {dtype} {threads} thread(s)"]
            if base:
                row["speedup_vs_baseline"] = base["seconds_per_step"] / row["seconds_per_step"]
                row["cpu_speedup_vs_baseline"] = base["cpu_seconds_per_step"] / row["cpu_seconds_per_step"]
    ddp = rows.get(f"current bf16 {args.processes} processes x 1 thread")
    baselines = [row for key, row in rows.items() if key.startswith("baseline")]
    if ddp and baselines:
        # Against the baseline's fastest way to use the same cores (any of its thread counts). The
        # row's CPU time is rank 0's alone, so no CPU ratio is given.
        fastest = min(row["seconds_per_step"] for row in baselines)
        ddp["speedup_vs_baseline"] = fastest / ddp["seconds_per_step"]
    write_report(args.out, args.baseline, shape, rows)
    if profile:
        args.out.with_suffix(".profile.txt").write_text(profile)
    print(f"{'configuration':40s} {'s/step':>8s} {'CPU s':>8s} {'Mpx/s':>8s} {'speedup':>8s} {'CPU':>8s}")
    for key, row in rows.items():
        wall = f"{row['speedup_vs_baseline']:.2f}x" if "speedup_vs_baseline" in row else ""
        cpu = f"{row['cpu_speedup_vs_baseline']:.2f}x" if "cpu_speedup_vs_baseline" in row else ""
        print(
            f"{key:40s} {row['seconds_per_step']:8.3f} {row['cpu_seconds_per_step']:8.3f} "
            f"{row['pixels_per_second'] / 1e6:8.3f} {wall:>8s} {cpu:>8s}"
        )


if __name__ == "__main__":
    main()
