"""Adversarial losses: known values, definitions on random logits, stability at huge logits."""

from __future__ import annotations

import math

import pytest
import torch
from hypothesis import given
from hypothesis import strategies as st

from ganblocks.losses import d_hinge_loss, d_logistic_loss, g_hinge_loss, g_nonsaturating_loss

LOG2 = math.log(2.0)


def test_logistic_at_zero_is_log2():
    z = torch.zeros(5, dtype=torch.float64)
    assert d_logistic_loss(z, z[:3]).item() == pytest.approx(2 * LOG2, abs=1e-15)
    assert g_nonsaturating_loss(z).item() == pytest.approx(LOG2, abs=1e-15)


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
def test_logistic_stable_at_huge_logits(dtype):
    big = torch.tensor([1e4, 1e4], dtype=dtype, requires_grad=True)
    small = torch.tensor([-1e4], dtype=dtype, requires_grad=True)
    # Confident and right: zero loss, zero gradient.
    loss = d_logistic_loss(big, small)
    loss.backward()
    assert loss.item() == 0.0
    assert big.grad.abs().max().item() == 0.0 and small.grad.abs().max().item() == 0.0
    # Confident and wrong: loss equals the logits' magnitude, gradient ±1/N (finite).
    big.grad = small.grad = None
    loss = d_logistic_loss(small, big)
    loss.backward()
    assert loss.item() == pytest.approx(2e4, rel=1e-6)
    assert small.grad.item() == pytest.approx(-1.0) and big.grad.tolist() == pytest.approx(
        [0.5, 0.5]
    )
    g = g_nonsaturating_loss(-big)
    assert torch.isfinite(g) and g.item() == pytest.approx(1e4, rel=1e-6)


@given(
    real=st.lists(st.floats(-30, 30), min_size=1, max_size=7),
    fake=st.lists(st.floats(-30, 30), min_size=1, max_size=7),
)
def test_logistic_matches_definition(real, fake):
    r = torch.tensor(real, dtype=torch.float64)
    f = torch.tensor(fake, dtype=torch.float64)
    # -log sigmoid(r) and -log(1 - sigmoid(f)), written out independently.
    expected = sum(math.log1p(math.exp(-v)) for v in real) / len(real) + sum(
        math.log1p(math.exp(v)) for v in fake
    ) / len(fake)
    assert d_logistic_loss(r, f).item() == pytest.approx(expected, rel=1e-12)
    expected_g = sum(-math.log(1 / (1 + math.exp(-v))) for v in fake) / len(fake)
    assert g_nonsaturating_loss(f).item() == pytest.approx(expected_g, rel=1e-9)


@given(
    real=st.lists(st.floats(-5, 5), min_size=1, max_size=7),
    fake=st.lists(st.floats(-5, 5), min_size=1, max_size=7),
)
def test_hinge_matches_definition(real, fake):
    r = torch.tensor(real, dtype=torch.float64)
    f = torch.tensor(fake, dtype=torch.float64)
    expected = sum(max(0.0, 1 - v) for v in real) / len(real) + sum(
        max(0.0, 1 + v) for v in fake
    ) / len(fake)
    assert d_hinge_loss(r, f).item() == pytest.approx(expected, rel=1e-12, abs=1e-15)
    assert g_hinge_loss(f).item() == pytest.approx(-sum(fake) / len(fake), rel=1e-12, abs=1e-15)


def test_hinge_known_points():
    real = torch.tensor([2.0, 0.5])
    fake = torch.tensor([-2.0, 0.5])
    assert d_hinge_loss(real, fake).item() == pytest.approx(0.25 + 0.75)
    assert g_hinge_loss(torch.tensor([[1.0], [-3.0]])).item() == pytest.approx(1.0)


def test_losses_reject_bad_input():
    with pytest.raises(TypeError, match="real_logits"):
        d_logistic_loss(torch.zeros(2, dtype=torch.long), torch.zeros(2))
    with pytest.raises(ValueError, match="fake_logits"):
        d_hinge_loss(torch.zeros(2), torch.zeros(0))
    with pytest.raises(TypeError, match="fake_logits"):
        g_nonsaturating_loss([0.0])
