"""Test session setup."""

import os

# Idle OpenMP workers must not spin on the shared 2-core machines (CI runs on one): with the
# default policy a busy neighbour process made small torch calls 10-50x slower. Set before
# any test module imports torch.
os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")


import pytest  # noqa: E402


@pytest.fixture(scope="module")
def one_torch_thread():
    """One torch thread for a module (as in the tokenize workers: runs compared with each
    other must compute the same floats), restored afterwards."""
    import torch

    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


@pytest.fixture(scope="module")
def model():
    """The tiny random-weight codec of tests/_tiny.py (tests must not modify it)."""
    from tests._tiny import tiny_model

    return tiny_model()


@pytest.fixture(scope="module")
def ckpt(model, work):
    """``model`` saved as a hub-style checkpoint folder in the module's ``work`` folder."""
    model.save_pretrained(work / "ckpt")
    return work / "ckpt"
