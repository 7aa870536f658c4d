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


def test_defaults_and_two_dimensional_styles():
    t = WAverageTruncation(4)
    t.update(torch.ones(3, 4))  # StyleGAN2's decay 0.998: 0 → 0.002
    torch.testing.assert_close(t.w_avg, torch.full((4,), 0.002))
    t.w_avg.copy_(torch.arange(4.0))
    ws = torch.randn(5, 4)
    assert t(ws) is ws  # the default psi = 1 is the identity, returned as is
    # Extrapolation away from the average (psi > 1) is the same formula.
    torch.testing.assert_close(t(ws, 2.0), t.w_avg + 2.0 * (ws - t.w_avg))
    # [N, w_dim] has no style index: every row is truncated, whatever the cutoff.
    for cutoff in (None, 0, 3):
        torch.testing.assert_close(t(ws, 0.25, cutoff), t.w_avg + 0.25 * (ws - t.w_avg))
    # Half-precision styles stay half; the average is kept in float32.
    half = t(ws.half().unsqueeze(1).repeat(1, 3, 1), 0.5, 2)
    assert half.dtype == torch.float16 and t.w_avg.dtype == torch.float32
    torch.testing.assert_close(half[:, 2].float(), ws.half().float())
    t.update(torch.ones(2, 4, dtype=torch.float16))
    assert t.w_avg.dtype == torch.float32


def test_argument_checks_name_the_argument():
    for beta in (0.0, 1.0):
        assert WAverageTruncation(2, beta=beta).beta == beta
    with pytest.raises(ValueError, match="beta"):
        WAverageTruncation(2, beta=-0.1)
    with pytest.raises(ValueError, match="w_dim"):
        WAverageTruncation(0)
    t = WAverageTruncation(3)
    with pytest.raises(ValueError, match=r"^w: expected 3 channels"):
        t.update(torch.ones(2, 4))
    with pytest.raises(ValueError, match="truncation_cutoff"):
        t(torch.zeros(2, 4, 3), 0.5, -1)
    with pytest.raises(ValueError, match=r"ws: expected \[N, num_ws, 3\]"):
        t(torch.zeros(2, 4, 5, 3), 0.5)
