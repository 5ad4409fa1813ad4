"""Smoke tests of the speed benchmarks against a revision (benchmarks/infer_bench.py, train_bench.py)."""

import json
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).parents[1]


def _run(module: str, *args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", module, *args], capture_output=True, text=True, timeout=600, cwd=ROOT)


def test_infer_bench_measures_this_tree_against_a_worktree_of_a_revision(tmp_path):
    out = tmp_path / "infer.json"
    args = ["--baseline", "HEAD", "--threads", "1", "--frames", "5", "--size", "64", "--repeats", "1"]
    policies = ["--wait-policy", "passive", "default"]
    done = _run("benchmarks.infer_bench", *args, "--rounds", "1", "--weights", "preset", *policies, "--out", str(out))
    assert done.returncode == 0, done.stderr[-3000:]
    rows = json.loads(out.read_text())["rows"]
    passive, default = "preset 1 thread(s)", "preset 1 thread(s) default wait"
    assert set(rows) == {f"{tree} {key}" for tree in ("baseline", "current") for key in (passive, default)}
    for key in (passive, default):
        current = rows[f"current {key}"]
        assert current["speedup_vs_baseline"] > 0 and current["frames_per_second"] > 0 and current["bytes"] > 0
    # The workers saw the policy asked for: PASSIVE, or the variable unset as in a user's shell.
    assert rows[f"current {passive}"]["omp_wait_policy"] == "PASSIVE"
    assert rows[f"current {default}"]["omp_wait_policy"] is None
    worktrees = subprocess.run(["git", "worktree", "list"], capture_output=True, text=True, cwd=ROOT).stdout
    assert "mptvc-baseline-" not in worktrees  # the temporary worktree is removed


def test_train_bench_reports_pixels_per_second(tmp_path):
    out = tmp_path / "train.json"
    args = ["--batch", "2", "--frames", "8", "--crop", "32", "--threads", "1", "--steps", "1", "--rounds", "1"]
    done = _run("benchmarks.train_bench", *args, "--processes", "2", "--out", str(out))
    assert done.returncode == 0, done.stderr[-3000:]
    rows = json.loads(out.read_text())["rows"]
    # The two-process row is the step under torchrun (DistributedDataParallel over gloo), one crop each.
    assert set(rows) == {"current fp32 1 thread(s)", "current bf16 1 thread(s)", "current bf16 2 processes x 1 thread"}
    assert all(row["pixels_per_second"] > 0 and row["seconds_per_step"] > 0 for row in rows.values())
    uneven = _run("benchmarks.train_bench", *args, "--batch", "3", "--processes", "2", "--out", str(out))
    assert uneven.returncode != 0 and "must split evenly" in uneven.stderr
