"""Data-parallel training: two torchrun processes (gloo on CPU) against one process on the same global batch."""

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from mptvc_latents.cli import main
from mptvc_latents.codec import MPTVC
from tests._tiny import SAMPLE, tiny_config

pytestmark = pytest.mark.slow


def _weights(run: Path) -> dict[str, torch.Tensor]:
    return MPTVC.from_pretrained(run / "checkpoint").state_dict()


def _records(run: Path) -> list[dict]:
    return [json.loads(line) for line in (run / "log.jsonl").read_text().splitlines()]


def test_two_processes_train_like_one_on_the_same_global_batch_and_a_run_resumes_on_another_count(tmp_path):
    codec = tmp_path / "tiny.json"
    codec.write_text(json.dumps(tiny_config().to_dict()))
    common = [str(SAMPLE), "--preset", str(codec), "--batch", "4", "--frames", "8", "--crop", "32",
              "--time-strides", "1", "2", "--rescale", "0.8", "1.0", "--autocast", "off", "--workers", "0",
              "--log-every", "1", "--threads", "1", "--no-progress"]  # fmt: skip
    # Every phase of the curriculum (each level alone, then jointly): DDP is rebuilt for each.
    phases = ["--phase-steps", "1", "1", "1", "2"]
    two, one = tmp_path / "two", tmp_path / "one"
    done = subprocess.run(
        [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc-per-node", "2",
         "-m", "mptvc_latents.cli", "train", *common, *phases, "--run-dir", str(two)],
        env={**os.environ, "OMP_NUM_THREADS": "1"}, capture_output=True, text=True, timeout=900,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr[-3000:]
    assert "2 process(es)" in done.stderr
    assert main(["train", *common, *phases, "--run", str(one)]) == 0

    def check_same(a: Path, b: Path) -> None:
        ra, rb = _records(a), _records(b)
        assert [r["step"] for r in ra] == [r["step"] for r in rb]
        for x, y in zip(ra, rb, strict=True):
            assert x["loss"] == pytest.approx(y["loss"], rel=1e-5)
            assert x["psnr"] == pytest.approx(y["psnr"], abs=2e-3) and x["bpp"] == pytest.approx(y["bpp"], abs=2e-5)
            assert x["grad_norm"] == pytest.approx(y["grad_norm"], abs=2e-4)
        wa, wb = _weights(a), _weights(b)
        assert wa.keys() == wb.keys()
        assert all(torch.allclose(wa[k].float(), wb[k].float(), rtol=1e-5, atol=1e-6) for k in wa)

    check_same(two, one)
    torch.manual_seed(0)  # the trainer's seed: the weights both runs started from
    start = MPTVC(tiny_config()).state_dict()
    assert sum(not torch.equal(v, start[k]) for k, v in _weights(two).items()) > 10, "training changed no weight"

    # The run of two processes resumes in one (and the one-process run goes on alike): the clips
    # of a step do not depend on the number of processes.
    longer = ["--phase-steps", "1", "1", "1", "4"]
    assert main(["train", *common, *longer, "--run", str(two)]) == 0
    assert main(["train", *common, *longer, "--run", str(one)]) == 0
    assert [r["step"] for r in _records(two)] == [1, 2, 3, 4, 5, 6, 7]
    check_same(two, one)
