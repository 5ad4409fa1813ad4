"""Test session setup."""

import os

# Idle OpenMP workers must not spin on the shared 2-core machines (CI runs on one): with the
# default policy a busy neighbour process made small torch calls 10-50x slower. Set before
# any test module imports torch.
os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")
