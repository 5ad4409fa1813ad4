"""Smoke test of the memory benchmark on one tiny case with the tiny codec (benchmarks/memory_bench.py)."""

import json

import numpy as np
import pytest

from benchmarks import memory_bench
from mptvc_latents.scenes import detect_scene_cuts


@pytest.fixture(scope="module")
def work(tmp_path_factory):
    return tmp_path_factory.mktemp("memory_bench")


def test_the_synthetic_clip_moves_and_cuts_every_ten_seconds():
    frames = np.concatenate(list(memory_bench.synthetic_frames(2 * memory_bench.SHOT_FRAMES + 5, 24, 32)))
    assert frames.shape == (605, 24, 32, 3) and frames.dtype == np.uint8
    assert np.abs(np.diff(frames[:40].astype(int), axis=0)).mean() > 1  # it moves
    ids = detect_scene_cuts(frames)
    assert np.flatnonzero(np.diff(ids)).tolist() == [299, 599]


def test_every_command_runs_in_its_own_process_and_reports_its_peak(ckpt, tmp_path, capsys):
    out = tmp_path / "memory.json"
    code = memory_bench.main(["--cases", "48x32:20", "--ckpt", str(ckpt), "--out", str(out), "--work", str(tmp_path)])
    assert code == 0
    report = json.loads(out.read_text())
    assert [r["command"] for r in report["runs"]] == ["encode", "decode", "tokenize"]
    for run in report["runs"]:
        assert (run["width"], run["height"], run["frames"]) == (48, 32, 20)
        assert 100 < run["peak_rss_mb"] < 10000 and run["seconds"] > 0
    assert report["checkpoint"]["folder"] == str(ckpt) and len(report["checkpoint"]["weights_digest"]) == 64
    assert "| tokenize | 48x32 | 20 |" in capsys.readouterr().out
