"""Hypothesis profile and torch settings for the whole suite (tests and doctests)."""

from __future__ import annotations

import os
import random
import zlib

import numpy as np
import pytest
import torch
from hypothesis import HealthCheck, settings

settings.register_profile(
    "ci",
    max_examples=int(os.environ.get("GANBLOCKS_HYPOTHESIS_EXAMPLES", "40")),
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
    derandomize=True,
)
settings.load_profile("ci")
THREADS = 1 if os.environ.get("PYTEST_XDIST_WORKER") else 2
torch.set_num_threads(THREADS)
if os.environ.get("PYTEST_XDIST_WORKER"):
    # The CLI sizes torch's threads to the machine unless OMP_NUM_THREADS is set; in a worker
    # that shares the cores with another, in-process runs keep to one thread.
    os.environ.setdefault("OMP_NUM_THREADS", "1")


@pytest.fixture(autouse=True)
def _restore_torch_threads():
    """Put torch's thread count back after each test: an in-process ``oco-gan train`` or
    ``evaluate`` sets it to the machine's cores, and two xdist workers each running two threads
    on two cores make every later test in them many times slower (a smoke experiment: 24 s
    alone, 327 s after that)."""
    yield
    if torch.get_num_threads() != THREADS:
        torch.set_num_threads(THREADS)


@pytest.fixture(autouse=True)
def _seed_global_rngs(request):
    """Seed torch's, numpy's and Python's global generators from the test's id.

    Each test (doctests included) then draws the same numbers whichever xdist worker runs it and
    whatever ran before it, so a failure reproduces alone. ``GANBLOCKS_TEST_SEED=<int>`` shifts
    every seed, to check that no test depends on its particular draw.
    """
    shift = int(os.environ.get("GANBLOCKS_TEST_SEED", "0"))
    seed = (zlib.crc32(request.node.nodeid.encode()) ^ shift) & 0xFFFFFFFF
    torch.manual_seed(seed)
    np.random.seed(seed)
    random.seed(seed)
