"""The causal variant against the non-causal codec: rate-distortion, first-token latency, and the
stream encoder's throughput and peak memory against video length (issue 16).

Run from the repository root (one torch thread, as the tests)::

    python -m benchmarks.causal_bench rd [--frames 64] [--model NAME=CKPT ...]
    python -m benchmarks.causal_bench latency [--size 240x320] [--repeats 3]
    python -m benchmarks.causal_bench scaling [--size 240x320] [--lengths 64,256,1024] [--modes 1:1,1:8,32:1]

- ``rd``: the first ``--frames`` frames of each ``../shared/data/val`` clip at native size, coded by
  each model (default: the shipped ``mptvc-cpu`` and ``mptvc-cpu-causal``); real ``.mptvc`` bytes of
  every prefix (``write_mptvc`` then ``truncate_mptvc``), PSNR-Y and PSNR-RGB of its decoding.
- ``latency``: seconds from the moment the frame that completes the first token frame (frame 3) is
  pushed until its tokens come out (:class:`CausalEncoder`), against what the non-causal codec needs:
  a whole chunk of 32 frames, then ``encode`` of it. In frames of waiting and in compute seconds.
- ``scaling``: for each length and mode ``PUSH:N`` (frames per push, ``tokens_per_pass``), a child
  process streams a synthetic clip (``memory_bench.synthetic_frames``) through :class:`CausalEncoder`
  with entropy coding (packets counted, not kept) and reports its wall time, frames per second and
  peak RSS (``os.wait4``).

Results go to ``benchmarks/results/causal/{rd,latency,scaling}.json`` with the load average, since
other jobs on the machine slow the timings down (not the bytes, PSNR or memory).
"""

from __future__ import annotations

import argparse
import datetime
import json
import os
import subprocess
import sys
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
OUT = ROOT / "benchmarks" / "results" / "causal"
VAL = ROOT.parent / "shared" / "data" / "val"


def _meta() -> dict:
    return {"date": datetime.datetime.now().isoformat(timespec="seconds"), "load_average": os.getloadavg()}


def _models(specs: list[str]) -> dict[str, str]:
    from mptvc_latents.pretrained import causal_checkpoint_dir, default_checkpoint_dir

    if not specs:
        return {"mptvc-cpu": str(default_checkpoint_dir()), "mptvc-cpu-causal": str(causal_checkpoint_dir())}
    pairs = [s.split("=", 1) for s in specs]
    if any(len(p) != 2 for p in pairs):
        raise ValueError(f"--model takes NAME=CHECKPOINT_FOLDER, got {specs}.")
    return dict(pairs)  # type: ignore[arg-type]


def rd(args: argparse.Namespace) -> dict:
    import torch

    from mptvc_latents.codec import MPTVC
    from mptvc_latents.eval.metrics import bpp, psnr_rgb, psnr_y
    from mptvc_latents.formats.container import truncate_mptvc, write_mptvc
    from mptvc_latents.video import read_video

    torch.set_num_threads(1)
    clips = sorted(p for p in VAL.rglob("*") if p.suffix in (".mp4", ".mkv", ".avi", ".webm"))
    if args.clips:
        clips = [p for p in clips if p.name in args.clips]
    rows = []
    for name, ckpt in _models(args.model).items():
        model = MPTVC.from_pretrained(ckpt).eval()
        for clip in clips:
            video = read_video(clip, max_frames=args.frames)
            frames = video.frames
            start = time.perf_counter()
            compressed = model.compress(frames, video.fps)
            data = write_mptvc(compressed, model.config.to_dict(), model.tables_digest())
            encode_s = time.perf_counter() - start
            t, h, w = frames.shape[:3]
            for k in range(model.num_levels):
                decoded = model.decompress(compressed, k_max=k)
                size = len(truncate_mptvc(data, k))
                rows.append(
                    {
                        "model": name,
                        "clip": clip.name,
                        "frames": t,
                        "size": [w, h],
                        "k_max": k,
                        "bytes": size,
                        "bpp": bpp(size, t, h, w),
                        "psnr_y": psnr_y(frames, decoded),
                        "psnr_rgb": psnr_rgb(frames, decoded),
                        "encode_seconds": round(encode_s, 2),
                    }
                )
                print(json.dumps(rows[-1]), flush=True)
    summary = []
    for name in _models(args.model):
        for k in range(3):
            sel = [r for r in rows if r["model"] == name and r["k_max"] == k]
            summary.append(
                {
                    "model": name,
                    "k_max": k,
                    "bpp": float(np.mean([r["bpp"] for r in sel])),
                    "psnr_y": float(np.mean([r["psnr_y"] for r in sel])),
                    "psnr_rgb": float(np.mean([r["psnr_rgb"] for r in sel])),
                }
            )
    return {"meta": _meta(), "frames": args.frames, "rows": rows, "mean_over_clips": summary}


def latency(args: argparse.Namespace) -> dict:
    import torch

    from benchmarks.memory_bench import synthetic_frames
    from mptvc_latents.causal import CausalEncoder
    from mptvc_latents.codec import MPTVC
    from mptvc_latents.pretrained import causal_checkpoint_dir, default_checkpoint_dir

    torch.set_num_threads(1)
    h, w = args.size
    video = np.concatenate(list(synthetic_frames(32, h, w)))
    causal = MPTVC.from_pretrained(args.ckpt or causal_checkpoint_dir()).eval()
    base = MPTVC.from_pretrained(default_checkpoint_dir()).eval()
    fps = 30.0
    first, whole_chunk, per_frame = [], [], []
    for _ in range(args.repeats):
        encoder = CausalEncoder(causal, fps)
        for i in range(3):
            encoder.push(video[i])
        start = time.perf_counter()
        step = encoder.push(video[3])
        first.append(time.perf_counter() - start)
        assert [t.index for t in step.tokens] == [0]
        times = []
        for i in range(4, 32):
            start = time.perf_counter()
            encoder.push(video[i])
            times.append(time.perf_counter() - start)
        per_frame.append(times)
        start = time.perf_counter()
        base.encode(video, fps)
        whole_chunk.append(time.perf_counter() - start)
    return {
        "meta": _meta(),
        "size": [w, h],
        "fps": fps,
        "causal": {
            "frames_waited": 4,
            "first_token_compute_s": float(np.median(first)),
            "first_token_latency_s_at_fps": 3 / fps + float(np.median(first)),
            "push_seconds_per_frame_in_chunk": [float(x) for x in np.median(np.array(per_frame), axis=0)],
        },
        "noncausal": {
            "frames_waited": 32,
            "chunk_encode_s": float(np.median(whole_chunk)),
            "first_token_latency_s_at_fps": 31 / fps + float(np.median(whole_chunk)),
        },
    }


def _child(args: argparse.Namespace) -> None:
    """One streaming run in this process: prints frames, packets, bytes and seconds as JSON."""
    import torch

    from benchmarks.memory_bench import synthetic_frames
    from mptvc_latents.causal import CausalEncoder
    from mptvc_latents.codec import MPTVC
    from mptvc_latents.pretrained import causal_checkpoint_dir

    torch.set_num_threads(1)
    h, w = args.size
    model = MPTVC.from_pretrained(args.ckpt or causal_checkpoint_dir()).eval()
    encoder = CausalEncoder(model, 30.0, tokens_per_pass=args.tokens_per_pass)
    packets = tokens = size = 0
    start = time.perf_counter()
    for batch in synthetic_frames(args.length, h, w, batch=args.push):
        step = encoder.push(batch)
        tokens += len(step.tokens)
        packets += len(step.packets)
        size += sum(len(z) + len(y) for p in step.packets for z, y in p.segments)
    step = encoder.finish()
    seconds = time.perf_counter() - start
    tokens += len(step.tokens)
    packets += len(step.packets)
    size += sum(len(z) + len(y) for p in step.packets for z, y in p.segments)
    print(json.dumps({"tokens": tokens, "packets": packets, "payload_bytes": size, "seconds": seconds}))


def scaling(args: argparse.Namespace) -> dict:
    rows = []
    h, w = args.size
    for length in args.lengths:
        for push, per_pass in args.modes:
            argv = [sys.executable, "-m", "benchmarks.causal_bench", "_child", "--size", f"{h}x{w}"]
            argv += ["--length", str(length), "--push", str(push), "--tokens-per-pass", str(per_pass)]
            argv += ["--ckpt", str(args.ckpt)] if args.ckpt else []
            env = dict(os.environ, OMP_NUM_THREADS="1")
            load = os.getloadavg()
            proc = subprocess.Popen(argv, cwd=ROOT, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
            assert proc.stdout is not None and proc.stderr is not None
            out, err = proc.stdout.read(), proc.stderr.read()
            _, status, usage = os.wait4(proc.pid, 0)
            if status != 0:
                raise RuntimeError(f"The streaming run of {length} frames failed: {err.decode()[-2000:]}")
            result = json.loads(out.decode().strip().splitlines()[-1])
            rows.append(
                {
                    "size": [w, h],
                    "frames": length,
                    "push_frames": push,
                    "tokens_per_pass": per_pass,
                    **result,
                    "frames_per_second": length / result["seconds"],
                    "peak_rss_mb": usage.ru_maxrss / 1024,
                    "load_average_before": load,
                }
            )
            print(json.dumps(rows[-1]), flush=True)
    return {"meta": _meta(), "rows": rows}


def _size(text: str) -> tuple[int, int]:
    """``HxW`` -> (height, width)."""
    h, w = (int(v) for v in text.lower().split("x"))
    return h, w


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    sub = parser.add_subparsers(dest="command", required=True)
    p = sub.add_parser("rd")
    p.add_argument("--frames", type=int, default=64)
    p.add_argument("--model", action="append", default=[], metavar="NAME=CKPT")
    p.add_argument("--clips", nargs="+", metavar="NAME", help="only these val clips (file names)")
    p = sub.add_parser("latency")
    p.add_argument("--size", type=_size, default=(240, 320), metavar="HxW")
    p.add_argument("--repeats", type=int, default=3)
    p = sub.add_parser("scaling")
    p.add_argument("--size", type=_size, default=(240, 320), metavar="HxW")
    p.add_argument("--lengths", type=lambda s: [int(v) for v in s.split(",")], default=[64, 256, 1024])
    p.add_argument(
        "--modes",
        type=lambda s: [tuple(int(v) for v in m.split(":")) for m in s.split(",")],
        default=[(1, 1), (1, 8), (32, 1)],
        metavar="PUSH:N,...",
    )
    p = sub.add_parser("_child")
    p.add_argument("--size", type=_size, required=True, metavar="HxW")
    p.add_argument("--length", type=int, required=True)
    p.add_argument("--push", type=int, required=True)
    p.add_argument("--tokens-per-pass", type=int, default=1)
    for q in sub.choices.values():
        if q.prog.split()[-1] != "_child":
            q.add_argument("--out", type=Path, help="the JSON to write (default: results/causal/COMMAND.json)")
        if q.prog.split()[-1] != "rd":
            q.add_argument("--ckpt", help="the causal checkpoint (default: the shipped mptvc-cpu-causal)")
    args = parser.parse_args(argv)
    if args.command == "_child":
        return _child(args)
    result = {"rd": rd, "latency": latency, "scaling": scaling}[args.command](args)
    path = args.out or OUT / f"{args.command}.json"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(result, indent=1) + "\n")
    print(path)


if __name__ == "__main__":
    main()
