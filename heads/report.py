"""The results table of a bench run: one row per head input and prefix, as JSON and Markdown."""

from __future__ import annotations

import json
import platform
import time
from pathlib import Path

__all__ = ["results_table", "write_report"]

_LABELS = {"tokens": "tokens (frozen)", "decoded": "decode-then-detect", "source": "source pixels (no codec)"}


def results_table(results: list[dict], tracker: str = "bytetrack+emb") -> str:
    """A Markdown table: input, prefix, head parameters, bpp, COCO mAP / AP50 (pooled over the
    evaluation scenes when there are several, then AP50 per scene), HOTA / MOTA / IDF1 (in %)."""
    scenes = list(results[0].get("scenes", {}))
    per_scene = scenes if len(scenes) > 1 else []
    head = ["input", "prefix", "params", "bpp", "mAP", "AP50", *(f"AP50 {k}" for k in per_scene)]
    head += ["HOTA", "MOTA", "IDF1", "IDSW", "train s"]
    lines = ["| " + " | ".join(head) + " |", "|---|---|" + "---:|" * (len(head) - 2)]
    for r in results:
        d, t = r["detection"], r["tracking"][tracker]
        bpp = "-" if r["bpp"] is None else f"{r['bpp']:.4f}"
        params = f"{r['params'] / 1000:.0f}k" if "params" in r else "-"
        cells = [_LABELS.get(r["input"], r["input"]), r["prefix"], params, bpp, f"{100 * d['mAP']:.1f}"]
        cells += [f"{100 * d['AP50']:.1f}", *(f"{100 * r['scenes'][k]['detection']['AP50']:.1f}" for k in per_scene)]
        cells += [f"{100 * t[m]:.1f}" for m in ("HOTA", "MOTA", "IDF1")]
        cells += [str(t["IDSW"]), f"{r['train_s']:.0f}"]
        lines.append(f"| {' | '.join(cells)} |")
    return "\n".join(lines)


def write_report(results: list[dict], path: str | Path) -> None:
    """Write ``results`` with the machine and date to ``path`` (JSON) and ``path.md`` (tables)."""
    if not results:
        raise ValueError("There are no results to report.")
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    meta = {
        "date": time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime()),
        "machine": f"{platform.machine()} {platform.processor() or ''} "
        f"{platform.system()} {platform.release()}, python {platform.python_version()}",
    }
    path.write_text(json.dumps({**meta, "results": results}, indent=2))
    md = [f"{meta['date']}, {meta['machine']}", ""]
    for tracker in results[0]["tracking"]:
        md += [f"tracker: {tracker}", "", results_table(results, tracker), ""]
    path.with_suffix(".md").write_text("\n".join(md))
