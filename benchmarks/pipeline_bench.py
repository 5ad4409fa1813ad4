"""Where the time goes in ``mptvc encode`` + ``mptvc decode``, and peak memory, against resolution.

Run from the repository root::

    python -m benchmarks.pipeline_bench [--out benchmarks/results/pipeline_bench.json] \
        [--sizes 176x144,352x288,640x360,1280x720,1920x1080] [--frames 8] [--ckpt DIR]

Each resolution runs in a fresh process (so its peak RSS, ``ru_maxrss``, is its own), on a
clip tiled from the sample (``mptvc_latents/assets/bikes_sample.mp4``) and written as H.264.
The process runs the CLI's pipeline ``--repeats`` times after a small warm-up, keeps the run
with the median total, and splits its wall time:

    encode: read video | model (compress less entropy) | entropy | container write
    decode: container read | model (decompress less entropy) | entropy | write video

"entropy" is everything between FSQ symbols and bytes (each level's ``compress`` /
``decompress``: ``h_a``, ``h_s``, table indexes and the rANS coder, and with a context entropy
model its contexts, computed a token frame at a time); of it, "f64 hyper nets" is ``h_a`` and
``h_s`` run in float64 plus the table indexes, "contexts" the context model's context indexes
(``ContextModel.frame_contexts``, numpy), and "rANS" the coder calls alone
(``RangeCoder.encode`` / ``decode``, ``StreamDecoder.decode_many`` / ``finish``). The codec is
the shipped checkpoint when there is one, else the ``mptvc-cpu`` preset with random weights;
``--ckpt`` takes another, e.g. one with context tables from ``mptvc train-entropy`` (the output
says which, and which entropy model codes the y streams).
"""

from __future__ import annotations

import argparse
import datetime
import json
import logging
import os
import platform
import resource
import subprocess
import sys
import tempfile
import time
from contextlib import contextmanager
from pathlib import Path

import numpy as np

from mptvc_latents.runtime import configure_threads

log = logging.getLogger("pipeline_bench")

DEFAULT_OUT = Path(__file__).parent / "results" / "pipeline_bench.json"
DEFAULT_SIZES = "176x144,352x288,640x360,1280x720,1920x1080"
STAGES = (
    "read_video",
    "model_encode",
    "entropy_encode",
    "container_write",
    "container_read",
    "entropy_decode",
    "model_decode",
    "write_video",
)


# ---------------------------------------------------------------------------- one resolution (child)


class _Clock:
    """Seconds spent inside wrapped callables, per label."""

    def __init__(self) -> None:
        self.seconds: dict[str, float] = {}

    def wrap(self, label: str, fn):
        def timed(*args, **kwargs):
            start = time.perf_counter()
            try:
                return fn(*args, **kwargs)
            finally:
                self.seconds[label] = self.seconds.get(label, 0.0) + time.perf_counter() - start

        return timed

    @contextmanager
    def stage(self, label: str):
        start = time.perf_counter()
        yield
        self.seconds[label] = self.seconds.get(label, 0.0) + time.perf_counter() - start


def _load_model(ckpt: str | None):
    from mptvc_latents.codec import MPTVC
    from mptvc_latents.presets import preset
    from mptvc_latents.pretrained import default_checkpoint_dir

    folder = Path(ckpt) if ckpt else default_checkpoint_dir()
    if folder.is_dir():
        return MPTVC.from_pretrained(folder), f"checkpoint {folder}"
    import torch

    torch.manual_seed(0)
    return MPTVC(preset("mptvc-cpu")).eval(), "mptvc-cpu preset, random weights (no checkpoint shipped)"


def _tiled_clip(width: int, height: int, frames: int) -> np.ndarray:
    """``frames`` frames of the sample clip, tiled (mirrored, so no hard seams) to ``height x width``."""
    from mptvc_latents.video import read_video

    sample = read_video(
        Path(__file__).parents[1] / "mptvc_latents" / "assets" / "bikes_sample.mp4", max_frames=frames
    ).frames
    reps = (1, -(-height // sample.shape[1]), -(-width // sample.shape[2]), 1)
    mirrored = np.concatenate([sample, sample[:, :, ::-1]], axis=2)
    mirrored = np.concatenate([mirrored, mirrored[:, ::-1]], axis=1)
    return np.ascontiguousarray(np.tile(mirrored, reps)[:, :height, :width])


def run_one(width: int, height: int, frames: int, ckpt: str | None, repeats: int = 3) -> dict:
    """Encode and decode one clip through the CLI's pipeline ``repeats`` times; the stage seconds
    of the run with the median total, bytes, and the process's peak RSS."""
    import torch

    from mptvc_latents import cli
    from mptvc_latents.coder import RangeCoder, StreamDecoder
    from mptvc_latents.entropy.context import ContextModel
    from mptvc_latents.formats.container import read_mptvc, write_mptvc
    from mptvc_latents.video import read_video, write_video

    model, source = _load_model(ckpt)
    clock = _Clock()
    with tempfile.TemporaryDirectory() as tmp:
        src, coded, out = Path(tmp, "in.mp4"), Path(tmp, "clip.mptvc"), Path(tmp, "out.mp4")
        write_video(src, _tiled_clip(width, height, frames), 25.0, crf=16)
        warm = _tiled_clip(64, 64, 8)  # first calls pay for lazy initialisation; not measured
        model.decompress(model.compress(warm), 0)
        rss_before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024

        # instance attributes shadow the methods for this process only; a level's compress and
        # decompress hold its whole entropy stage, with the hyperprior alone or the context model
        for level in model.pyramid_levels():
            level.compress = clock.wrap("entropy_encode", level.compress)
            level.decompress = clock.wrap("entropy_decode", level.decompress)
            hp = level.hyperprior
            hp._exact_z_symbols = clock.wrap("hyper_nets", hp._exact_z_symbols)  # h_a in float64
            hp._y_index = clock.wrap("hyper_nets", hp._y_index)  # h_s in float64, then table indexes
        # the classes' methods, in this child process only (mypy: assigning to a method is the point)
        RangeCoder.encode = clock.wrap("rans_encode", RangeCoder.encode)  # type: ignore[method-assign]
        RangeCoder.decode = clock.wrap("rans_decode", RangeCoder.decode)  # type: ignore[method-assign]
        StreamDecoder.decode_many = clock.wrap("rans_decode", StreamDecoder.decode_many)  # type: ignore[method-assign]
        StreamDecoder.finish = clock.wrap("rans_decode", StreamDecoder.finish)  # type: ignore[method-assign]
        ContextModel.frame_contexts = clock.wrap("contexts", ContextModel.frame_contexts)  # type: ignore[method-assign]

        runs = []
        for _ in range(repeats):
            clock.seconds = {}
            start = time.perf_counter()
            with clock.stage("read_video"):
                clip = read_video(src)
            with clock.stage("compress"):
                compressed = cli.compress_video(model, clip.frames, clip.fps)
            with clock.stage("container_write"):
                coded.write_bytes(write_mptvc(compressed, model.config.to_dict(), model.tables_digest()))
            with clock.stage("container_read"):
                stream, _, _ = read_mptvc(coded)
            with clock.stage("decompress"):
                video = cli.decompress_video(model, stream)
            with clock.stage("write_video"):
                write_video(out, video, stream.info.fps)
            runs.append((time.perf_counter() - start, clock.seconds))

    totals = sorted(total for total, _ in runs)
    total, s = next(run for run in runs if run[0] == totals[len(totals) // 2])
    s["model_encode"] = s.pop("compress") - s.get("entropy_encode", 0.0)
    s["model_decode"] = s.pop("decompress") - s.get("entropy_decode", 0.0)
    entropy = s.get("entropy_encode", 0.0) + s.get("entropy_decode", 0.0)
    rans = s.get("rans_encode", 0.0) + s.get("rans_decode", 0.0)
    s.setdefault("hyper_nets", 0.0)
    s.setdefault("contexts", 0.0)
    size = sum(compressed.level_bytes())
    context = model.config.context
    return {
        "width": width,
        "height": height,
        "frames": frames,
        "codec": source,
        "entropy_model": "hyperprior" if context is None else f"context (intra period {context.intra_period})",
        "tables_digest": model.tables_digest(),
        "torch_threads": torch.get_num_threads(),
        "omp_wait_policy": os.environ.get("OMP_WAIT_POLICY"),
        "repeats": repeats,
        "all_totals": [round(t, 4) for t, _ in runs],
        "seconds": {k: round(v, 4) for k, v in s.items()},
        "total_seconds": round(total, 4),
        "entropy_share": entropy / total,
        "rans_share": rans / total,
        "hyper_nets_share": s["hyper_nets"] / total,
        "payload_bytes": size,
        "level_bytes": compressed.level_bytes(),
        "bpp": 8 * size / (frames * width * height),
        "peak_rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
        "rss_before_pipeline_mb": rss_before,
    }


# ---------------------------------------------------------------------------- driver (parent)


def _load_average() -> list[float]:
    return [round(x, 2) for x in os.getloadavg()]


def markdown(rows: list[dict]) -> str:
    head = (
        "| resolution | entropy model | total s | read video | model | entropy | of which f64 hyper nets "
        "| of which contexts | of which rANS | container w+r | write video | entropy share | rANS share "
        "| bpp | peak RSS MB (before the pipeline) | load avg |"
    )
    lines = [head, "|" + "---|" * (head.count("|") - 1)]
    for r in rows:
        s = r["seconds"]
        model = s["model_encode"] + s["model_decode"]
        entropy = s["entropy_encode"] + s["entropy_decode"]
        rans = s.get("rans_encode", 0.0) + s.get("rans_decode", 0.0)
        lines.append(
            f"| {r['width']}x{r['height']} | {r.get('entropy_model', 'hyperprior')} | {r['total_seconds']:.2f} | "
            f"{s['read_video']:.3f} | {model:.2f} | {entropy:.3f} | {s['hyper_nets']:.3f} | "
            f"{s.get('contexts', 0.0):.3f} | {rans:.4f} | {s['container_write'] + s['container_read']:.4f} | "
            f"{s['write_video']:.3f} | "
            f"{100 * r['entropy_share']:.2f}% | {100 * r['rans_share']:.2f}% | {r['bpp']:.4f} | "
            f"{r['peak_rss_mb']:.0f} ({r['rss_before_pipeline_mb']:.0f}) | "
            f"{r['load_average_start'][0]:.1f} |"
        )
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> None:
    # Idle OpenMP workers must not spin: on this 2-core machine shared with a training job, spinning
    # made the 176x144 pipeline take 12.7 s instead of 0.27 s. The --one children inherit it.
    configure_threads()
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=DEFAULT_OUT)
    parser.add_argument("--sizes", default=DEFAULT_SIZES, help="comma-separated WxH list")
    parser.add_argument("--frames", type=int, default=8)
    parser.add_argument("--repeats", type=int, default=3, help="pipeline runs per size; the median run is kept")
    parser.add_argument("--ckpt", help="checkpoint folder (default: the shipped one, else random mptvc-cpu)")
    parser.add_argument("--one", help=argparse.SUPPRESS)  # child mode: one WxH, JSON on stdout
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    if args.one:
        width, height = map(int, args.one.split("x"))
        print(json.dumps(run_one(width, height, args.frames, args.ckpt, args.repeats)))
        return

    import torch

    report = {
        "date": datetime.datetime.now(datetime.UTC).isoformat(timespec="seconds"),
        "machine": {
            "platform": platform.platform(),
            "python": platform.python_version(),
            "cpus": os.cpu_count(),
            "torch": torch.__version__,
            "load_average_start": _load_average(),
        },
        "frames": args.frames,
        "rows": [],
    }
    for size in args.sizes.split(","):
        cmd = [
            sys.executable,
            "-m",
            "benchmarks.pipeline_bench",
            "--one",
            size,
            "--frames",
            str(args.frames),
            "--repeats",
            str(args.repeats),
        ]
        if args.ckpt:
            cmd += ["--ckpt", args.ckpt]
        load = _load_average()
        log.info("%s: running (load average %s)", size, load)
        result = subprocess.run(cmd, capture_output=True, text=True, cwd=Path(__file__).parents[1])
        if result.returncode:
            raise SystemExit(f"{size} failed:\n{result.stderr[-3000:]}")
        row = json.loads(result.stdout.strip().splitlines()[-1])
        row["load_average_start"], row["load_average_end"] = load, _load_average()
        report["rows"].append(row)
        log.info(
            "%s: %.1f s, entropy %.2f%%, peak RSS %.0f MB",
            size,
            row["total_seconds"],
            100 * row["entropy_share"],
            row["peak_rss_mb"],
        )
    report["machine"]["load_average_end"] = _load_average()
    report["codec"] = report["rows"][0]["codec"] if report["rows"] else None
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(report, indent=2) + "\n")
    print(
        f"\ncodec: {report['codec']}; {args.frames} frames per clip; torch threads "
        f"{report['rows'][0]['torch_threads'] if report['rows'] else '?'}; {os.cpu_count()} CPUs; "
        f"load average {report['machine']['load_average_start']} -> {report['machine']['load_average_end']}\n"
    )
    print(markdown(report["rows"]))
    print(f"\nwritten to {args.out}")


if __name__ == "__main__":
    main()
