"""Thread policy: set by entry points through ``configure_threads``, never by importing a module."""

import os
import subprocess
import sys

import pytest

from mptvc_latents.runtime import configure_threads

_PROBE = """
import os
import generation.cli, generation.demo, generation.grid, heads.cli
import mptvc_latents.cli, mptvc_latents.demo, mptvc_latents.store, mptvc_latents.train
print(os.environ.get("OMP_WAIT_POLICY"))
from mptvc_latents.runtime import configure_threads
configure_threads(2)
import torch
print(os.environ.get("OMP_WAIT_POLICY"), torch.get_num_threads())
"""


def _probe(**env: str) -> list[str]:
    clean = {k: v for k, v in os.environ.items() if k not in ("OMP_WAIT_POLICY", "OMP_NUM_THREADS")}
    result = subprocess.run(
        [sys.executable, "-c", _PROBE], env={**clean, **env}, capture_output=True, text=True, timeout=300, check=True
    )
    return result.stdout.splitlines()


def test_imports_leave_the_policy_and_configure_threads_sets_it_and_the_torch_threads():
    assert _probe() == ["None", "PASSIVE 2"]


def test_a_policy_the_environment_already_sets_is_kept():
    assert _probe(OMP_WAIT_POLICY="ACTIVE") == ["ACTIVE", "ACTIVE 2"]


@pytest.mark.parametrize("threads", [0, -1, 1.5, True])
def test_a_bad_thread_count_is_refused(threads):
    with pytest.raises(ValueError, match="threads must be a positive number"):
        configure_threads(threads)
