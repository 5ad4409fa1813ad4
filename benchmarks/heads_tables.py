"""Collect the heads benchmark of docs/heads.md into one results file and table.

Reads what `mptvc heads bench` and `mptvc heads eval --on decoded` wrote (the recipe in
docs/heads.md) and writes ``--out`` (JSON, every metric per scene) and its ``.md`` table::

    python -m benchmarks.heads_tables --bench runs/heads/bench --extra runs/heads/bench-large \
        runs/heads/bench-long --out benchmarks/results/heads/scenes_500steps.json
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from heads.report import write_report


def collect(bench: Path, extra: list[Path]) -> list[dict]:
    """Token heads per prefix, the source-pixel head on each decoded prefix and on the source, then the
    full-prefix token heads of ``extra`` runs (a larger head, a longer training)."""
    tokens = [bench / f"tokens-k{k}" / "result.json" for k in (0, 1, 2)]
    rows = [json.loads(path.read_text()) for path in tokens if path.is_file()]  # the prefixes that were run
    source = bench / "source-k0"
    if not rows or not (source / "result.json").is_file():
        raise ValueError(f"{str(bench)!r} needs token heads and a source-pixel head (source-k0/result.json).")
    for k in (0, 1, 2):
        found = sorted(source.glob(f"eval-*-on-decoded-k{k}.json"))
        if not found:
            raise ValueError(f"{str(source)!r} has no decode-then-detect result for k={k}: run `heads eval --on`.")
        rows.append(json.loads(found[0].read_text()))
    rows.append(json.loads((source / "result.json").read_text()))
    for run in extra:
        row = json.loads((run / "tokens-k2" / "result.json").read_text())
        row["prefix"] = f"full, {row['head']['dim']} wide, {row['train']['steps']} steps"
        rows.append(row)
    return rows


def main(argv: list[str] | None = None) -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--bench", type=Path, required=True)
    p.add_argument("--extra", type=Path, nargs="*", default=[], help="bench folders of more full-prefix token heads")
    p.add_argument("--out", type=Path, required=True)
    args = p.parse_args(argv)
    write_report(collect(args.bench, args.extra), args.out)
    print(args.out.with_suffix(".md").read_text())


if __name__ == "__main__":
    main()
