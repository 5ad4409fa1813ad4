"""Peak memory and time of ``mptvc encode``, ``decode`` and ``tokenize`` against video length.

Run from the repository root::

    python -m benchmarks.memory_bench [--quick] [--cases 320x240:300,320x240:2400,...]
        [--commands encode,decode,tokenize] [--threads 1] [--out benchmarks/results/memory_bench.json]

For each case (frame size and length) a synthetic clip with motion and a hard cut every 10 s is
written once to a temp folder (H.264, made a chunk at a time). Each command then runs as the
user would run it, ``python -m mptvc_latents.cli ...`` in a process of its own, and its peak
resident memory comes from ``os.wait4`` (the kernel's ``ru_maxrss`` of that process alone)::

    encode    clip.mp4 -> clip.mptvc
    decode    clip.mptvc -> decoded.mp4
    tokenize  clip.mp4 -> store.zarr

The default cases are the issue's: 300, 2,400 and 18,000 frames of 320x240 and 1,000 frames of
1280x720 (the long ones take hours on a busy 2-core machine: pass ``--cases`` to choose);
``--quick`` runs 96 and 384 frames of 320x240 and 48 of 1280x720. The load average before each run
goes into the results, since other jobs slow the runs down (time, not memory).
"""

from __future__ import annotations

import argparse
import contextlib
import datetime
import json
import os
import platform
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

DEFAULT_OUT = Path(__file__).parent / "results" / "memory_bench.json"
FULL_CASES = "320x240:300,320x240:2400,320x240:18000,1280x720:1000"
QUICK_CASES = "320x240:96,320x240:384,1280x720:48"
COMMANDS = ("encode", "decode", "tokenize")
FPS = 30.0
SHOT_FRAMES = 300  # a hard cut every 10 s at 30 fps


def synthetic_frames(frames: int, height: int, width: int, batch: int = 32, seed: int = 0):
    """Batches ``(n, H, W, 3)`` uint8 of moving content: a drifting colour gradient, a moving square,
    mild noise, and a new palette and direction every ``SHOT_FRAMES`` frames (a hard cut)."""
    rng = np.random.default_rng(seed)
    y = np.linspace(0.0, 1.0, height, dtype=np.float32)[:, None, None]  # (H, 1, 1)
    x = np.linspace(0.0, 1.0, width, dtype=np.float32)[None, :, None]  # (1, W, 1)
    side = max(8, min(height, width) // 5)
    for start in range(0, frames, batch):
        out = np.empty((min(batch, frames - start), height, width, 3), np.uint8)
        for i in range(out.shape[0]):
            t = start + i
            shot = t // SHOT_FRAMES
            shot_rng = np.random.default_rng(seed + shot)
            base = shot_rng.uniform(40, 200, 3).astype(np.float32)  # (3,): the shot's palette
            direction = shot_rng.uniform(-1, 1, 2).astype(np.float32)
            phase = 2 * np.pi * (direction[0] * x + direction[1] * y + 0.01 * t)  # (H, W, 1)
            frame = base + 50 * np.sin(phase) * np.array([1.0, 0.6, -0.8], np.float32)  # (H, W, 3)
            top = int((0.5 + 0.4 * np.sin(0.03 * t + shot)) * (height - side))
            left = int((0.5 + 0.4 * np.cos(0.02 * t + shot)) * (width - side))
            frame[top : top + side, left : left + side] = 255 - base
            frame += rng.normal(0, 2, frame.shape).astype(np.float32)
            out[i] = np.clip(frame, 0, 255).astype(np.uint8)
        yield out


def write_clip(path: Path, frames: int, height: int, width: int) -> None:
    from mptvc_latents.video import FrameWriter

    with FrameWriter(path, FPS) as writer:
        for batch in synthetic_frames(frames, height, width):
            writer.write(batch)


def _command_line(command: str, work: Path, ckpt: str | None) -> list[str]:
    args = {
        "encode": ["encode", str(work / "clip.mp4"), str(work / "clip.mptvc")],
        "decode": ["decode", str(work / "clip.mptvc"), str(work / "decoded.mp4")],
        "tokenize": ["tokenize", str(work / "clip.mp4"), "--out", str(work / "store.zarr")],
    }[command]
    return [sys.executable, "-m", "mptvc_latents.cli", *args, *(["--ckpt", ckpt] if ckpt else [])]


def run_measured(argv: list[str], env: dict[str, str]) -> tuple[float, float, int]:
    """Run ``argv`` in a process of its own: ``(peak RSS in MiB, wall seconds, exit code)``."""
    start = time.perf_counter()
    proc = subprocess.Popen(argv, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    _, status, usage = os.wait4(proc.pid, 0)
    seconds = time.perf_counter() - start
    proc.returncode = os.waitstatus_to_exitcode(status)
    if proc.returncode:
        sys.stderr.write(proc.stderr.read().decode(errors="replace") if proc.stderr else "")
    if proc.stderr:
        proc.stderr.close()
    return usage.ru_maxrss / 1024, seconds, proc.returncode  # ru_maxrss is in KiB on Linux


def _machine() -> dict:
    cpu = platform.processor() or platform.machine()
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    memory = None
    try:
        memory = int(Path("/proc/meminfo").read_text().split()[1]) // 1024  # MemTotal, MiB
    except (OSError, ValueError, IndexError):
        pass
    return {"cpu": cpu, "cpus": os.cpu_count(), "memory_mb": memory, "python": platform.python_version()}


def _checkpoint(ckpt: str | None) -> dict:
    """Which codec ran: its folder and digests (the shipped checkpoint changes between releases)."""
    from mptvc_latents.codec import MPTVC

    model = MPTVC.from_pretrained(ckpt)
    folder = ckpt or str(MPTVC.default_checkpoint_dir())
    return {"folder": folder, "weights_digest": model.weights_digest(), "tables_digest": model.tables_digest()}


def _cases(text: str) -> list[tuple[int, int, int]]:
    cases = []
    for item in text.split(","):
        size, frames = item.split(":")
        width, height = (int(v) for v in size.split("x"))
        cases.append((width, height, int(frames)))
    return cases


def _table(runs: list[dict]) -> str:
    rows = ["| command | size | frames | peak RSS MiB | seconds | frames/s | load |", "|---|---|---|---|---|---|---|"]
    for r in runs:
        rows.append(
            f"| {r['command']} | {r['width']}x{r['height']} | {r['frames']} | {r['peak_rss_mb']:.0f} | "
            f"{r['seconds']:.1f} | {r['frames'] / r['seconds']:.2f} | {r['load_before']:.2f} |"
        )
    return "\n".join(rows)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--cases", help=f"WxH:FRAMES,... (default {FULL_CASES})")
    parser.add_argument("--quick", action="store_true", help=f"the cases {QUICK_CASES}")
    parser.add_argument("--commands", default=",".join(COMMANDS), help="which of encode,decode,tokenize")
    parser.add_argument("--threads", type=int, default=1, help="torch threads of each run (OMP_NUM_THREADS)")
    parser.add_argument("--ckpt", help="checkpoint folder (default: the shipped one)")
    parser.add_argument("--out", type=Path, default=DEFAULT_OUT, help="results JSON (runs are appended by case)")
    parser.add_argument("--work", type=Path, help="folder keeping each case's clip for reruns (default: temp)")
    args = parser.parse_args(argv)
    cases = _cases(args.cases or (QUICK_CASES if args.quick else FULL_CASES))
    commands = [c for c in args.commands.split(",") if c]
    unknown = set(commands) - set(COMMANDS)
    if unknown:
        parser.error(f"unknown commands {sorted(unknown)}; choose from {', '.join(COMMANDS)}")
    env = {**os.environ, "OMP_NUM_THREADS": str(args.threads), "OMP_WAIT_POLICY": "PASSIVE"}
    results = {
        "benchmark": "memory_bench",
        "date": datetime.datetime.now().astimezone().isoformat(timespec="seconds"),
        "machine": _machine(),
        "threads": args.threads,
        "checkpoint": _checkpoint(args.ckpt),
        "runs": [],
    }
    if args.out.exists():  # keep the runs not repeated now (long cases run a command at a time)
        previous = json.loads(args.out.read_text())
        rerun = {(w, h, n, c) for w, h, n in cases for c in commands}
        results["runs"] = [
            r for r in previous.get("runs", []) if (r["width"], r["height"], r["frames"], r["command"]) not in rerun
        ]
    with contextlib.ExitStack() as stack:
        # --work keeps each case's clip (its marker records the case) so a long case can be rerun
        # without writing the clip again; otherwise everything lives in a temp folder.
        root = Path(args.work) if args.work else Path(stack.enter_context(tempfile.TemporaryDirectory()))
        for width, height, frames in cases:
            work = root / f"{width}x{height}_{frames}"
            work.mkdir(parents=True, exist_ok=True)
            marker = work / "clip.json"
            case = {"width": width, "height": height, "frames": frames, "fps": FPS, "shot_frames": SHOT_FRAMES}
            if (work / "clip.mp4").exists() and marker.exists() and json.loads(marker.read_text()) == case:
                print(f"{width}x{height}, {frames} frames: reusing the clip in {work}", flush=True)
            else:
                marker.unlink(missing_ok=True)
                start = time.perf_counter()
                write_clip(work / "clip.mp4", frames, height, width)
                marker.write_text(json.dumps(case) + "\n")
                seconds = time.perf_counter() - start
                print(f"{width}x{height}, {frames} frames: clip written in {seconds:.0f} s", flush=True)
            shutil.rmtree(work / "store.zarr", ignore_errors=True)  # tokenize would resume a store left over
            for command in commands:
                load = os.getloadavg()[0]
                peak, seconds, code = run_measured(_command_line(command, work, args.ckpt), env)
                if code:
                    print(f"  {command} failed with exit code {code}", flush=True)
                    return code
                run = {
                    "command": command,
                    "width": width,
                    "height": height,
                    "frames": frames,
                    "peak_rss_mb": round(peak, 1),
                    "seconds": round(seconds, 2),
                    "load_before": round(load, 2),
                    "weights_digest": results["checkpoint"]["weights_digest"],
                    "date": datetime.datetime.now().astimezone().isoformat(timespec="seconds"),
                }
                results["runs"].append(run)
                print(f"  {command}: peak RSS {peak:.0f} MiB, {seconds:.1f} s (load {load:.2f})", flush=True)
                args.out.parent.mkdir(parents=True, exist_ok=True)
                args.out.write_text(json.dumps(results, indent=2) + "\n")
            for name in ("clip.mptvc", "decoded.mp4") if args.work else ("clip.mp4", "clip.mptvc", "decoded.mp4"):
                (work / name).unlink(missing_ok=True)
    results["runs"].sort(key=lambda r: (r["width"] * r["height"], r["frames"], COMMANDS.index(r["command"])))
    args.out.write_text(json.dumps(results, indent=2) + "\n")
    print(_table(results["runs"]))
    return 0


if __name__ == "__main__":
    sys.exit(main())
