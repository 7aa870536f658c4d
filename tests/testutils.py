"""Helpers importable from any test module (``tests/`` is on pytest's ``pythonpath``)."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

GOLDEN = Path(__file__).parent / "golden"


def load_golden(name: str) -> dict:
    """Load ``tests/golden/<name>.pt``: a dict with ``source`` and a list of ``cases``."""
    return torch.load(GOLDEN / f"{name}.pt", weights_only=True)


def rel_err(actual: torch.Tensor, expected: torch.Tensor) -> float:
    """Max absolute error divided by the max magnitude of ``expected`` (0 for two zero tensors)."""
    scale = expected.abs().max().item()
    err = (actual.double() - expected.double()).abs().max().item()
    return err / scale if scale > 0 else err


requires_cuda = pytest.mark.skipif(
    not torch.cuda.is_available(), reason="needs a CUDA device (none on this machine)"
)
