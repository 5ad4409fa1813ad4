"""Measuring this tree against an older revision in the same run.

A benchmark that claims "faster than before" checks the old revision out into a temporary git
worktree (with this tree's compiled coder copied beside it, so nothing is rebuilt) and runs the
same worker script against each tree in its own process, alternating, so that a busy machine
slows both alike.
"""

from __future__ import annotations

import json
import os
import platform
import shutil
import subprocess
import sys
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


@contextmanager
def worktree(rev: str) -> Iterator[Path]:
    """Check ``rev`` out into a temporary worktree, with this tree's compiled coder beside it;
    removed on exit."""
    path = Path(tempfile.mkdtemp(prefix="mptvc-baseline-"))
    subprocess.run(["git", "-C", str(ROOT), "worktree", "add", "--detach", str(path), rev], check=True,
                   capture_output=True)  # fmt: skip
    try:
        for so in (ROOT / "mptvc_latents").glob("_coder*.so"):
            shutil.copy2(so, path / "mptvc_latents" / so.name)
        yield path
    finally:
        subprocess.run(["git", "-C", str(ROOT), "worktree", "remove", "--force", str(path)],
                       check=False, capture_output=True)  # fmt: skip


def run_worker(worker: str, tree: Path, config: dict, *, raw: bool = False) -> dict | str:
    """Run the ``worker`` script with ``config`` (JSON in argv[1]) against ``tree`` in a fresh
    process with ``config["threads"]`` threads (with ``config["processes"]`` > 1, that many such
    processes under ``torchrun --standalone``, the worker's rank 0 reporting); its last stdout line
    is a JSON result (``raw``: return the whole stdout instead). OpenMP threads sleep between
    parallel regions (``OMP_WAIT_POLICY=PASSIVE``, never spinning on a shared core) unless
    ``config["wait_policy"]`` is ``"default"``: then the variable is unset, as in a user's shell."""
    policy = config.get("wait_policy", "passive")
    if policy not in ("passive", "default"):
        raise ValueError(f"The OpenMP wait policy must be 'passive' or 'default', got {policy!r}.")
    env = {**os.environ, "PYTHONPATH": str(tree), "OMP_NUM_THREADS": str(config["threads"])}
    env.pop("OMP_WAIT_POLICY", None)
    if policy == "passive":
        env["OMP_WAIT_POLICY"] = "PASSIVE"
    processes = int(config.get("processes", 1))
    with tempfile.TemporaryDirectory(prefix="mptvc-worker-") as scratch:
        if processes > 1:
            script = Path(scratch) / "worker.py"
            script.write_text(worker)
            launch = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc-per-node",
                      str(processes), str(script)]  # fmt: skip
        else:
            launch = [sys.executable, "-c", worker]
        done = subprocess.run([*launch, json.dumps(config)], cwd=tree, env=env, capture_output=True, text=True)
    if done.returncode != 0:
        last = (done.stderr.strip().splitlines() or ["(no error output)"])[-1]
        raise RuntimeError(f"The benchmark worker failed in {tree}: {last}")
    return done.stdout if raw else json.loads(done.stdout.strip().splitlines()[-1])


def write_report(out: Path, baseline: str | None, shape: dict, rows: dict) -> dict:
    """Write a speed benchmark's JSON to ``out``: date, machine, load at the end, the baseline
    revision, the workload ``shape`` (its ``clip`` path left out) and the measured ``rows``."""
    result = {
        "date": datetime.now(UTC).isoformat(timespec="seconds"),
        "machine": f"{platform.processor() or platform.machine()}, {os.cpu_count()} cores",
        "load_average_at_end": os.getloadavg(),
        "baseline": baseline,
        "shape": {k: v for k, v in shape.items() if k != "clip"},
        "rows": rows,
    }
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(result, indent=1))
    return result
