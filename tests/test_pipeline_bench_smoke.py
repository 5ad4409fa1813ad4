"""Smoke test of the pipeline benchmark at one tiny size (benchmarks/pipeline_bench.py)."""

import json
import subprocess
import sys
from pathlib import Path

from benchmarks import pipeline_bench


def test_one_tiny_size_reports_every_stage_and_a_markdown_row(tmp_path):
    out = tmp_path / "bench.json"
    result = subprocess.run(
        [sys.executable, "-m", "benchmarks.pipeline_bench", "--sizes", "64x48", "--repeats", "1", "--out", str(out)],
        capture_output=True,
        text=True,
        timeout=300,
        cwd=Path(__file__).parents[1],
    )
    assert result.returncode == 0, result.stderr[-3000:]
    report = json.loads(out.read_text())
    (row,) = report["rows"]
    assert set(pipeline_bench.STAGES) <= set(row["seconds"])
    assert 0 <= row["rans_share"] <= row["entropy_share"] < 1 and row["peak_rss_mb"] > 0
    assert (row["width"], row["height"], row["frames"]) == (64, 48, 8) and row["omp_wait_policy"] == "PASSIVE"
    assert "| 64x48 |" in result.stdout and "load average" in result.stdout
