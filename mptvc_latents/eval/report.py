"""Write an evaluation result (``evaluate.evaluate``) as JSON, a markdown table and an RD plot.

The plot needs matplotlib (the optional ``eval`` extra); without it the JSON and the table
are still written and the plot is skipped with a warning.
"""

from __future__ import annotations

import json
import logging
import math
from pathlib import Path

log = logging.getLogger(__name__)

__all__ = ["write_report", "markdown_table", "plot_rd"]


def _finite_or_none(value):
    """JSON has no inf or nan: identical videos (PSNR inf) are written as null."""
    if isinstance(value, float) and not math.isfinite(value):
        return None
    if isinstance(value, dict):
        return {k: _finite_or_none(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_finite_or_none(v) for v in value]
    return value


def _label(codec: str) -> str:
    return codec.removeprefix("lib")


def _f(value, digits: int = 2) -> str:
    if value is None:
        return "—"
    return "inf" if math.isinf(value) else f"{value:.{digits}f}"


def _bpp(value) -> str:
    return "—" if value is None else f"{value:.4f}"


def _matched_cell(point: dict | None) -> str:
    if point is None:
        return "—"
    if point["psnr_y"] is None:
        return "out of range"
    crfs = point["crf_lo"] if point["crf_lo"] == point["crf_hi"] else f"{point['crf_lo']}–{point['crf_hi']}"
    return f"{_f(point['psnr_y'])} (crf {crfs})"


def markdown_table(result: dict) -> str:
    """Markdown for BENCHMARKS.md: our ladder against the published one, against the baselines at
    matched bpp (means over clips), and every clip."""
    model, settings, env, mean = result["model"], result["settings"], result["environment"], result["mean"]
    baselines = settings["baselines"]
    bytes_note = {
        "mptvc": "the `.mptvc` file truncated after the prefix (header included)",
        "estimate": "level payloads plus a header estimate",
    }.get(settings["bytes_source"], "a custom container size")
    frames = "all frames" if settings["max_frames"] is None else f"first {settings['max_frames']} frames"
    baselines_note = (
        f"Baselines: {'/'.join(_label(c) for c in baselines)} `-preset medium -tune psnr` yuv420p, CRF bracketed "
        "and PSNR interpolated in log(bpp), elementary stream without SEI."
        if baselines
        else "No baselines."
    )
    lines = [
        f"Model `{model['name']}` ({model['parameters']['total']:,} parameters, "
        f"tables `{model['tables_digest'][:12]}`), "
        f"{mean['clips']} clips, {frames} of each; bytes: {bytes_note}. {baselines_note} "
        f"PSNR-Y: BT.709 luma, MSE pooled over each clip. {env['machine']}, {env['cpus']} CPUs, "
        f"torch {env['torch']} with {env['torch_threads']} threads, {env['date']}.",
        "",
        "| prefix | bpp | PSNR-Y (dB) | PSNR-RGB (dB) | published bpp | published PSNR-Y (dB) |",
        "|---|---|---|---|---|---|",
    ]
    published = {p["k"]: p for p in result["published"]}
    for p in mean["prefixes"]:
        ref = published.get(p["k"])
        lines.append(
            f"| {p['k']} {p['name']} | {_bpp(p['bpp'])} | {_f(p['psnr_y'])} | {_f(p['psnr_rgb'])} | "
            f"{_bpp(ref and ref['bpp'])} | {_f(ref and ref['psnr_y'])} |"
        )

    if baselines:
        head = " | ".join(f"{_label(c)} PSNR-Y | ours − {_label(c)}" for c in baselines)
        lines += [
            "",
            "At matched bpp (means over the clips where the baseline reaches our rate; n = such clips):",
            "",
            f"| prefix | bpp | ours PSNR-Y | {head} |",
            "|---|---|---|" + "---|---|" * len(baselines),
        ]
        for i, k in enumerate(settings["matched_prefixes"]):
            cells = []
            for c in baselines:
                point = mean["baselines"][c][i]
                delta = point["delta_psnr_y"]
                cells.append(
                    f"{_f(point['psnr_y'])} (n={point['clips']}) | {'—' if delta is None else f'{delta:+.2f}'}"
                )
            ours = mean["prefixes"][k]
            lines.append(f"| {k} {ours['name']} | {_bpp(ours['bpp'])} | {_f(ours['psnr_y'])} | {' | '.join(cells)} |")

    if "anchor" in result:
        bd = result["anchor"]
        lines += [
            "",
            f"Against `{bd['path']}` (model `{bd['anchor_model'].get('name', '?')}`, tables "
            f"`{str(bd['anchor_model'].get('tables_digest', '?'))[:12]}`), Bjøntegaard deltas over the prefixes "
            f"(PCHIP in log bpp, {bd['metric']}): mean BD-PSNR {bd['mean_bd_psnr_db']:+.2f} dB, "
            f"BD-rate {bd['mean_bd_rate_percent']:+.1f}%.",
            "",
            "| clip | BD-PSNR (dB) | BD-rate (%) |",
            "|---|---|---|",
            *(f"| {c['name']} | {c['bd_psnr_db']:+.2f} | {c['bd_rate_percent']:+.1f} |" for c in bd["clips"]),
        ]

    head = "".join(f" {_label(c)} PSNR-Y at our bpp |" for c in baselines)
    lines += [
        "",
        f"| clip | frames | WxH | prefix | bytes (payload) | bpp | PSNR-Y | PSNR-RGB |{head} encode s | decode s |",
        "|---|---|---|---|---|---|---|---|" + "---|" * len(baselines) + "---|---|",
    ]
    for clip in result["clips"]:
        for p in clip["prefixes"]:
            points = (next((m for m in clip["baselines"][c]["matched"] if m["k"] == p["k"]), None) for c in baselines)
            matched_cells = "".join(f" {_matched_cell(point)} |" for point in points)
            encode = _f(clip["encode_seconds"], 1) if p["k"] == 0 else ""
            lines.append(
                f"| {clip['name']} | {clip['frames']} | {clip['width']}x{clip['height']} | {p['k']} {p['name']} | "
                f"{p['bytes']:,} ({p['payload_bytes']:,}) | {_bpp(p['bpp'])} | {_f(p['psnr_y'])} | "
                f"{_f(p['psnr_rgb'])} |{matched_cells} {encode} | {_f(p['decode_seconds'], 1)} |"
            )
    return "\n".join(lines) + "\n"


def plot_rd(result: dict, path: str | Path) -> bool:
    """PSNR-Y against bpp (log x): one panel per clip and one for the means; False without matplotlib."""
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        log.warning("matplotlib is not installed (pip install 'mptvc-latents[eval]'); skipping the RD plot.")
        return False

    clips, mean = result["clips"], result["mean"]
    panels = len(clips) + 1
    cols = min(panels, 2)
    rows = math.ceil(panels / cols)
    fig, axes = plt.subplots(rows, cols, figsize=(6 * cols, 4.5 * rows), squeeze=False)
    published = sorted(result["published"], key=lambda p: p["bpp"])
    styles = {"libx264": ("tab:orange", "s--"), "libx265": ("tab:green", "^--")}

    def reference(ax):
        ax.plot([p["bpp"] for p in published], [p["psnr_y"] for p in published], "k*:", ms=10, label="published MPT-VC")

    def ours(ax, prefixes, label):
        ax.plot(
            [p["bpp"] for p in prefixes], [p["psnr_y"] for p in prefixes], "o-", color="tab:blue", lw=2, label=label
        )
        for p in prefixes:
            ax.annotate(f"k={p['k']}", (p["bpp"], p["psnr_y"]), textcoords="offset points", xytext=(4, -10), fontsize=8)

    for ax, clip in zip(axes.flat, clips, strict=False):  # one more panel (the means) and maybe an empty one
        for codec, entry in clip["baselines"].items():
            color, style = styles.get(codec, ("tab:gray", "x--"))
            curve = sorted(entry["curve"], key=lambda p: p["bpp"])
            ax.plot(
                [p["bpp"] for p in curve], [p["psnr_y"] for p in curve], style, color=color, ms=4, label=_label(codec)
            )
            matched = [m for m in entry["matched"] if m["psnr_y"] is not None]
            ax.plot([m["bpp"] for m in matched], [m["psnr_y"] for m in matched], "D", mfc="none", color=color, ms=9)
        ours(ax, clip["prefixes"], "MPT-VC (ours)")
        reference(ax)
        ax.set_title(f"{clip['name']} ({clip['width']}x{clip['height']}, {clip['frames']} frames)", fontsize=10)

    ax = axes.flat[len(clips)]
    for codec, points in mean["baselines"].items():
        color, _ = styles.get(codec, ("tab:gray", "x--"))
        points = [p for p in points if p["psnr_y"] is not None]
        ax.plot(
            [p["bpp"] for p in points],
            [p["psnr_y"] for p in points],
            "D",
            mfc="none",
            color=color,
            ms=9,
            label=f"{_label(codec)} at our bpp",
        )
    ours(ax, mean["prefixes"], "MPT-VC (ours), mean")
    reference(ax)
    ax.set_title(f"mean over {mean['clips']} clips", fontsize=10)

    for ax in axes.flat[:panels]:
        ax.set_xscale("log")
        ax.set_xlabel("bits per pixel")
        ax.set_ylabel("PSNR-Y (dB, BT.709)")
        ax.grid(True, which="both", alpha=0.3)
        ax.legend(fontsize=8)
    for ax in axes.flat[panels:]:
        ax.axis("off")
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)
    return True


def write_report(result: dict, out_dir: str | Path) -> dict[str, Path]:
    """Write ``eval.json``, ``eval.md`` and (with matplotlib) ``rd.png`` into ``out_dir``;
    returns the paths written by kind (``json``, ``markdown``, ``plot``)."""
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    paths = {"json": out / "eval.json", "markdown": out / "eval.md"}
    paths["json"].write_text(json.dumps(_finite_or_none(result), indent=1, allow_nan=False) + "\n")
    paths["markdown"].write_text(markdown_table(result))
    if plot_rd(result, out / "rd.png"):
        paths["plot"] = out / "rd.png"
    return paths
