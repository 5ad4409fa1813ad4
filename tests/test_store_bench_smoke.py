"""Smoke test of the token store benchmark (benchmarks/store_bench.py) on two tiny clips."""

import json
import subprocess
import sys
from pathlib import Path

import pytest


@pytest.mark.slow
def test_two_tiny_clips_with_one_and_two_workers(tmp_path):
    out = tmp_path / "bench.json"
    argv = ["--clips", "2", "--frames", "8", "--size", "64x48", "--workers", "1,2", "--out", str(out)]
    result = subprocess.run(
        [sys.executable, "-m", "benchmarks.store_bench", *argv],
        capture_output=True, text=True, timeout=300, cwd=Path(__file__).parents[1],
    )  # fmt: skip
    assert result.returncode == 0, result.stderr[-3000:]
    report = json.loads(out.read_text())
    assert [row["workers"] for row in report["rows"]] == [1, 2]
    assert all(row["clips_per_s"] > 0 and row["frames_per_s"] > 0 for row in report["rows"])
    assert (report["clips"], report["frames"], report["size"]) == (2, 8, "64x48")
    assert "| workers | seconds | clips/s | frames/s |" in result.stdout
