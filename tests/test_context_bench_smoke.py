"""Smoke tests of the context-model benchmarks: ``benchmarks/context_bench.py`` (dump, ablation) on
two tiny clips with the shipped checkpoint, and ``benchmarks/pipeline_bench.py --ckpt`` with a tiny
codec that has context tables (its entropy stage is timed through each level's compress/decompress)."""

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from benchmarks import context_bench
from mptvc_latents.config import ContextConfig
from mptvc_latents.pretrained import default_checkpoint_dir
from mptvc_latents.train.entropy import with_context_model
from mptvc_latents.video import read_video, write_video
from tests._tiny import SAMPLE, tiny_model

ROOT = Path(__file__).parents[1]


def _run(*argv: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", *argv], capture_output=True, text=True, timeout=600, cwd=ROOT, check=False
    )


@pytest.mark.skipif(not default_checkpoint_dir().is_dir(), reason="needs the shipped checkpoint")
def test_dump_and_ablation_report_every_configuration_with_real_bytes_that_decode(tmp_path):
    sample = read_video(SAMPLE, max_frames=32).frames
    for split, crop in (("train", np.s_[:, :64, :96]), ("val", np.s_[:, 64:128, 96:192])):
        (tmp_path / split / "clips").mkdir(parents=True)
        write_video(tmp_path / split / "clips" / "a.mp4", sample[crop], 25.0)
        result = _run("benchmarks.context_bench", "dump", str(tmp_path / split), "--out", str(tmp_path / f"d_{split}"))
        assert result.returncode == 0, result.stderr[-3000:]
    dumped = np.load(tmp_path / "d_val" / "clips__a.npz")
    assert dumped["s0"].shape[1] == 8 and dumped["ybits"].shape == (3,) and list(dumped["shape"]) == [32, 64, 96]

    out = tmp_path / "ablation.json"
    argv = ["benchmarks.context_bench", "ablation", "--train", str(tmp_path / "d_train"), "--val"]
    result = _run(*argv, str(tmp_path / "d_val"), "--out", str(out))
    assert result.returncode == 0, result.stderr[-3000:]
    report = json.loads(out.read_text())
    (clip,) = report["clips"].values()
    assert list(report["configs"]) == list(context_bench._configs())
    for name in report["configs"]:
        real, ideal = np.array(clip["bits"][name]), np.array(clip["ideal_bits"][name])
        assert (real >= ideal).all() and (real > 0).all(), name  # real streams: ideal bits plus overhead
    assert "| scale hyperprior (step 9400) |" in result.stdout and "(the default config) |" in result.stdout


def test_the_pipeline_bench_times_a_context_checkpoint(tmp_path):
    ckpt = tmp_path / "ctx"
    with_context_model(tiny_model(), ContextConfig()).save_pretrained(ckpt)
    out = tmp_path / "bench.json"
    argv = ["benchmarks.pipeline_bench", "--sizes", "64x48", "--frames", "16", "--repeats", "1"]
    result = _run(*argv, "--ckpt", str(ckpt), "--out", str(out))
    assert result.returncode == 0, result.stderr[-3000:]
    (row,) = json.loads(out.read_text())["rows"]
    assert row["entropy_model"] == "context (intra period 4)"
    seconds = row["seconds"]
    assert 0 < seconds["contexts"] and 0 < seconds["rans_decode"] <= seconds["entropy_decode"]
    assert 0 < row["rans_share"] <= row["entropy_share"] < 1
    assert "| 64x48 | context (intra period 4) |" in result.stdout
