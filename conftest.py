"""Hypothesis profile and torch settings for the whole suite (tests and doctests)."""

from __future__ import annotations

import os

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
torch.set_num_threads(1 if os.environ.get("PYTEST_XDIST_WORKER") else 2)
