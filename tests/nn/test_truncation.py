"""WAverageTruncation: exact lerp towards w_avg on the first ``cutoff`` styles, EMA update."""

from __future__ import annotations

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from ganblocks.nn import WAverageTruncation


@settings(max_examples=20)
@given(
    psi=st.floats(-1, 2),
    num_ws=st.integers(1, 6),
    cutoff=st.one_of(st.none(), st.integers(0, 7)),
    seed=st.integers(0, 999),
)
def test_truncation_formula(psi, num_ws, cutoff, seed):
    torch.manual_seed(seed)
    t = WAverageTruncation(5)
    t.w_avg.normal_()
    ws = torch.randn(3, num_ws, 5)
    out = t(ws, psi, cutoff)
    k = num_ws if cutoff is None else min(cutoff, num_ws)
    torch.testing.assert_close(out[:, :k], t.w_avg + psi * (ws[:, :k] - t.w_avg))
    assert torch.equal(out[:, k:], ws[:, k:])
    assert torch.equal(t(ws, 1.0, cutoff), ws)


def test_update_is_an_ema_of_batch_means():
    t = WAverageTruncation(3, beta=0.5)
    t.update(torch.ones(4, 3))
    t.update(torch.full((2, 3), 3.0))
    torch.testing.assert_close(t.w_avg, torch.full((3,), 0.5 * 0.5 + 0.5 * 3.0))
    with pytest.raises(ValueError, match="beta"):
        WAverageTruncation(3, beta=1.5)
    with pytest.raises(ValueError, match="ws"):
        t(torch.zeros(2, 4), 0.5)
