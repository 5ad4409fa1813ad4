"""Rate control on the val clips (issue 17): requested against achieved bpp and PSNR, and the RD
gain over the fixed prefixes at equal bpp, with and without token frames left out.

    python -m benchmarks.rate_bench --out benchmarks/results/rate_bench.json [--frames 96] [--max-side 224]
    python -m benchmarks.rate_bench --concat 128 224 --out benchmarks/results/rate_bench_concat.json

Per clip (the first ``--frames`` frames, shrunk by area so the longer side is at most ``--max-side``
to fit the CPU budget): the shipped checkpoint codes it without a target (three fixed prefixes,
decoded), then with rate control, levels per chunk only (one encoder pass, planned for every
target) and with skipped token frames (``RateTarget`` defaults: up to two more passes per target,
sharing the first). Targets:
each fixed prefix's bpp and PSNR (equal-rate and equal-quality comparisons), and a sweep of bpp and
PSNR targets. ``--concat H W`` instead codes one video: the clips one after another, each resized
to H x W (by area; the aspect ratio of 4:3 clips changes), where chunks of different content
compete for one budget. Every rate-controlled file is written, read back and decoded: "psnr" is the decoded
PSNR-RGB, checked equal to the PSNR the encoder predicted in the file. Timings are wall seconds.
"""

from __future__ import annotations

import argparse
import glob
import json
import os
import platform
import time
from pathlib import Path
from typing import Any

import numpy as np


def _shrink(frames: np.ndarray, max_side: int, size: tuple[int, int] | None = None) -> np.ndarray:
    import torch

    t, h, w, _ = frames.shape
    scale = max_side / max(h, w)
    if size is None and scale >= 1:
        return frames
    size = size or (round(h * scale / 2) * 2, round(w * scale / 2) * 2)
    x = torch.from_numpy(frames).permute(0, 3, 1, 2).float()  # (T, H, W, 3) -> (T, 3, H, W)
    x = torch.nn.functional.interpolate(x, size=size, mode="area")
    return x.round().clamp(0, 255).to(torch.uint8).permute(0, 2, 3, 1).contiguous().numpy()


def _psnr(a: np.ndarray, b: np.ndarray) -> float:
    from mptvc_latents.ratecontrol import psnr_from_sse

    return psnr_from_sse(float(((a.astype(np.int64) - b.astype(np.int64)) ** 2).sum()), a.size)


def _interp(x: float, xs: list[float], ys: list[float]) -> float | None:
    """Piecewise-linear y at x over points sorted by x (None outside their range)."""
    order = np.argsort(xs)
    xs_s, ys_s = np.asarray(xs)[order], np.asarray(ys)[order]
    if not xs_s[0] <= x <= xs_s[-1]:
        return None
    return float(np.interp(x, xs_s, ys_s))


def _bd_rate(fixed: list[tuple[float, float]], curve: list[tuple[float, float]]) -> float | None:
    """BD-rate (%) of ``curve`` against ``fixed`` ((bpp, psnr) points) with the library's Bjøntegaard
    (``mptvc_latents.eval.bjontegaard.bd_rate``, PCHIP in log rate), on each curve's efficient points:
    sorted by rate, a point is kept only if its PSNR is above every cheaper one's (rate-controlled
    targets of different kinds can land on the same or a dominated point). ``None`` when a curve keeps
    fewer than two points or the PSNR ranges do not overlap."""
    from mptvc_latents.eval.bjontegaard import bd_rate

    def front(points: list[tuple[float, float]]) -> list[tuple[float, float]]:
        kept: list[tuple[float, float]] = []
        for bpp, psnr in sorted(points, key=lambda p: (p[0], -p[1])):  # the best PSNR at a rate first
            if not kept or (bpp > kept[-1][0] and psnr > kept[-1][1]):
                kept.append((bpp, psnr))
        return kept

    try:
        return bd_rate(front(fixed), front(curve))
    except ValueError:
        return None


def _step_gains(fixed: list[tuple[float, float]], curve: list[tuple[float, float]]) -> dict[str, float]:
    """What a user gets: at 32 budgets B (geometric, over the fixed prefixes' bpp range), the best
    PSNR within B of ``curve`` minus that of the fixed prefixes; at 32 PSNR floors P (over their PSNR
    range), the saving of the least bpp meeting P. Both step functions, as coding is (a prefix or
    a plan either fits or not); ``curve`` points are coded files, so the gains are lower bounds."""

    def best_psnr(points: list[tuple[float, float]], budget: float) -> float | None:
        fits = [p for b, p in points if b <= budget * (1 + 1e-12)]
        return max(fits) if fits else None

    def least_bpp(points: list[tuple[float, float]], floor: float) -> float | None:
        fits = [b for b, p in points if p >= floor - 1e-9]
        return min(fits) if fits else None

    budgets = np.geomspace(min(b for b, _ in fixed), max(b for b, _ in fixed), 32)
    gains = [
        g - f
        for g, f in ((best_psnr(curve, b), best_psnr(fixed, b)) for b in budgets)
        if g is not None and f is not None
    ]
    floors = np.linspace(min(p for _, p in fixed), max(p for _, p in fixed), 32)
    savings = [
        1 - r / f for r, f in ((least_bpp(curve, q), least_bpp(fixed, q)) for q in floors) if r is not None and f
    ]
    return {
        "psnr_gain_within_budget_db": float(np.mean(gains)),
        "bpp_saving_at_floor": float(np.mean(savings)),
        "budgets_compared": len(gains),
        "floors_compared": len(savings),
    }


def summarize(result: dict[str, Any]) -> dict[str, Any]:
    """The derived numbers of every clip and their means (``--summarize`` recomputes them)."""
    for clip in result["clips"].values():
        fixed = [(f["bpp"], f["psnr"]) for f in clip["fixed"]]
        levels = [(p["bpp"], p["psnr"]) for p in clip["levels_curve"]]
        levels += [(r["levels"]["bpp"], r["levels"]["psnr"]) for r in clip["targets"]]
        skip = levels + [(r["skip"]["bpp"], r["skip"]["psnr"]) for r in clip["targets"]]
        clip["step_gains_levels"], clip["step_gains_skip"] = _step_gains(fixed, levels), _step_gains(fixed, skip)
        rows = clip["targets"]
        clip["targets_met"] = all(
            (r[m]["bpp"] <= r["target"] * (1 + 1e-12) if r["kind"] == "bpp" else r[m]["psnr"] >= r["target"] - 1e-9)
            for r in rows
            if "unreachable" not in r
            for m in ("levels", "skip")
        )
    for mode in ("levels", "skip"):
        for name in ("psnr_gain_within_budget_db", "bpp_saving_at_floor"):
            values = [c[f"step_gains_{mode}"][name] for c in result["clips"].values()]
            result[f"mean_{name}_{mode}"] = float(np.mean(values))
    result["all_targets_met"] = all(c["targets_met"] for c in result["clips"].values())
    return result


def _coded(model: Any, clip: np.ndarray, compressed: Any, pixels: int) -> dict[str, Any]:
    from mptvc_latents.formats.container import inspect_mptvc, read_mptvc, write_mptvc

    data = write_mptvc(compressed, model.config.to_dict(), model.tables_digest())
    decoded = model.decompress(read_mptvc(data)[0])
    rate = inspect_mptvc(data).to_dict()["rate_control"]
    psnr = _psnr(decoded, clip)
    if abs(psnr - rate["predicted_psnr"]) > 1e-9:
        raise AssertionError(f"decoded PSNR {psnr} differs from the predicted {rate['predicted_psnr']}")
    return {
        "bytes": len(data),
        "bpp": 8 * len(data) / pixels,
        "psnr": psnr,
        "levels_per_chunk": rate["levels_per_chunk"],
        "skipped_token_frames": rate["skipped_token_frames"],
        "sent_token_frames": rate["sent_token_frames"],
    }


def run_clip(model: Any, clip: np.ndarray, fps: float, sweep_bpp: list[float], sweep_psnr: list[float]) -> dict:
    from mptvc_latents import ratecontrol as rc
    from mptvc_latents.formats.container import read_mptvc, truncate_mptvc, write_mptvc

    pixels = clip.shape[0] * clip.shape[1] * clip.shape[2]
    t0 = time.time()
    plain = write_mptvc(model.compress(clip, fps), model.config.to_dict(), model.tables_digest())
    stream = read_mptvc(plain)[0]
    fixed = []
    for k in range(model.num_levels):
        size = len(truncate_mptvc(plain, k))
        fixed.append(
            {"level": k, "bytes": size, "bpp": 8 * size / pixels, "psnr": _psnr(model.decompress(stream, k), clip)}
        )
    out: dict[str, Any] = {"fixed": fixed, "fixed_seconds": time.time() - t0}

    t0 = time.time()
    measures, info = rc.measure(model, lambda: [clip], fps)
    header = rc.header_bits(model, info, len(measures))
    out["measure_seconds"] = time.time() - t0
    targets = [("bpp", f["bpp"], "fixed") for f in fixed] + [("psnr", f["psnr"], "fixed") for f in fixed]
    targets += [("bpp", b, "sweep") for b in sweep_bpp] + [("psnr", p, "sweep") for p in sweep_psnr]
    rows = []
    for kind, value, why in targets:
        target = rc.RateTarget(**{kind: value}, skip_frames=False)
        row: dict[str, Any] = {"kind": kind, "target": value, "set": why}
        try:
            s = rc.plan_chunks(measures, model.num_levels, header, pixels, target)
        except rc.UnreachableTargetError as e:
            row["unreachable"] = list(e.reachable)
            target = rc.RateTarget(**{kind: value}, skip_frames=False, best_effort=True)
            s = rc.plan_chunks(measures, model.num_levels, header, pixels, target)
        row["levels"] = _coded(model, clip, rc.assemble(model, measures, info, s.levels, target), pixels)
        t1 = time.time()
        skip_target = rc.RateTarget(**{kind: value}, best_effort="unreachable" in row)
        row["skip"] = _coded(
            model,
            clip,
            rc.compress_to_target(model, lambda: [clip], fps, skip_target, measured=(measures, info)),
            pixels,
        )
        row["skip"]["seconds"] = time.time() - t1
        rows.append(row)
        print(
            f"  {kind} {value:.4f} ({why}): levels {row['levels']['bpp']:.4f} bpp {row['levels']['psnr']:.2f} dB"
            f" | skip {row['skip']['bpp']:.4f} bpp {row['skip']['psnr']:.2f} dB"
            + (" (unreachable: best effort)" if "unreachable" in row else ""),
            flush=True,
        )
    out["targets"] = rows
    # The operating points levels per chunk reach: plans for 16 budgets across the reachable range
    # (predicted PSNR: the encoder's, equal to the decoder's on every file decoded above).
    low = rc.plan_chunks(measures, model.num_levels, header, pixels, rc.RateTarget(bpp=1e-9, best_effort=True))
    high = rc.plan_chunks(measures, model.num_levels, header, pixels, rc.RateTarget(bpp=1e9, best_effort=True))
    dense = []
    for bpp in np.geomspace(low.bits / pixels, high.bits / pixels, 16):
        s = rc.plan_chunks(measures, model.num_levels, header, pixels, rc.RateTarget(bpp=float(bpp), best_effort=True))
        dense.append({"target": float(bpp), "bpp": s.bits / pixels, "psnr": rc.psnr_from_sse(s.sse, 3 * pixels)})
    out["levels_curve"] = dense
    fixed_pts = [(f["bpp"], f["psnr"]) for f in fixed]
    out["bd_rate_levels_curve_percent"] = _bd_rate(fixed_pts, [(p["bpp"], p["psnr"]) for p in dense])
    for mode in ("levels", "skip"):
        curve = [(r[mode]["bpp"], r[mode]["psnr"]) for r in rows]
        out[f"bd_rate_{mode}_percent"] = _bd_rate(fixed_pts, curve)
        # PSNR at each fixed prefix's bpp: the rate-controlled file with that budget.
        out[f"psnr_gain_at_equal_bpp_{mode}"] = [
            r[mode]["psnr"] - f["psnr"]
            for r, f in zip([r for r in rows if r["set"] == "fixed" and r["kind"] == "bpp"], fixed, strict=True)
        ]
        out[f"bpp_saving_at_equal_psnr_{mode}"] = [
            1 - r[mode]["bpp"] / f["bpp"]
            for r, f in zip([r for r in rows if r["set"] == "fixed" and r["kind"] == "psnr"], fixed, strict=True)
        ]
    return out


def main(argv: list[str] | None = None) -> None:
    import torch

    from mptvc_latents.codec import MPTVC
    from mptvc_latents.video import read_video

    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--out", default="benchmarks/results/rate_bench.json")
    parser.add_argument("--frames", type=int, default=96)
    parser.add_argument("--max-side", type=int, default=224)
    parser.add_argument("--clips", default="../shared/data/val/*/*.mp4")
    parser.add_argument("--ckpt", default=None)
    parser.add_argument("--concat", type=int, nargs=2, metavar=("H", "W"), help="one video of all clips at H x W")
    parser.add_argument("--sweep-bpp", type=float, nargs="*", default=[0.05])
    parser.add_argument("--sweep-psnr", type=float, nargs="*", default=[28.0])
    parser.add_argument("--summarize", metavar="JSON", help="recompute the derived numbers of a results file")
    args = parser.parse_args(argv)
    if args.summarize:
        with open(args.summarize) as f:
            result = summarize(json.load(f))
        with open(args.summarize, "w") as f:
            json.dump(result, f, indent=1)
        print(json.dumps({k: v for k, v in result.items() if k != "clips"}, indent=1))
        return
    torch.set_num_threads(1)
    model = MPTVC.from_pretrained(args.ckpt)
    result: dict[str, Any] = {
        "date": time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime()),
        "machine": f"{platform.processor() or platform.machine()}, {os.cpu_count()} cores, torch {torch.__version__}",
        "load_at_start": os.getloadavg()[0],
        "frames": args.frames,
        "max_side": args.max_side,
        "clips": {},
    }
    videos = []
    for path in sorted(glob.glob(args.clips)):
        clip = read_video(path, max_frames=args.frames)
        size = None if args.concat is None else (args.concat[0], args.concat[1])
        videos.append((Path(path).stem, _shrink(clip.frames, args.max_side, size), clip.fps))
    if args.concat:
        names = "+".join(name for name, _, _ in videos)
        videos = [(names, np.concatenate([v for _, v, _ in videos]), float(np.mean([f for _, _, f in videos])))]
    for name, frames, fps in videos:
        print(f"{name}: {frames.shape}", flush=True)
        t0 = time.time()
        result["clips"][name] = {
            "shape": list(frames.shape),
            **run_clip(model, frames, fps, args.sweep_bpp, args.sweep_psnr),
        }
        result["clips"][name]["seconds"] = time.time() - t0
        print(f"  {time.time() - t0:.0f} s, load {os.getloadavg()[0]:.1f}", flush=True)
    curves = [c["bd_rate_levels_curve_percent"] for c in result["clips"].values()]
    result["mean_bd_rate_levels_curve_percent"] = float(np.mean([c for c in curves if c is not None]))
    for mode in ("levels", "skip"):
        gains = [g for c in result["clips"].values() for g in c[f"psnr_gain_at_equal_bpp_{mode}"]]
        savings = [s for c in result["clips"].values() for s in c[f"bpp_saving_at_equal_psnr_{mode}"]]
        bds = [
            c[f"bd_rate_{mode}_percent"] for c in result["clips"].values() if c[f"bd_rate_{mode}_percent"] is not None
        ]
        result[f"mean_psnr_gain_at_equal_bpp_{mode}"] = float(np.mean(gains))
        result[f"mean_bpp_saving_at_equal_psnr_{mode}"] = float(np.mean(savings))
        result[f"mean_bd_rate_{mode}_percent"] = float(np.mean(bds)) if bds else None
    result["load_at_end"] = os.getloadavg()[0]
    summarize(result)
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    with open(args.out, "w") as f:
        json.dump(result, f, indent=1)
    print(json.dumps({k: v for k, v in result.items() if k != "clips"}, indent=1))


if __name__ == "__main__":
    main()
