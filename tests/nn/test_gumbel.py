"""Gumbel-Softmax: one-hot samples, determinism, frequencies, straight-through gradient."""

from __future__ import annotations

import math

import pytest
import torch
from hypothesis import given
from hypothesis import strategies as st

from ganblocks.nn import GumbelSoftmax, gumbel_softmax


@given(
    shape=st.sampled_from([(3, 4), (2, 5, 3, 3), (1, 2), (4, 1, 6)]),
    dim=st.integers(0, 1),
    tau=st.floats(0.05, 5.0),
    seed=st.integers(0, 2**16),
)
def test_hard_samples_are_one_hot_argmax_of_soft(shape, dim, tau, seed):
    logits = torch.randn(shape, generator=torch.Generator().manual_seed(seed + 1))
    hard = gumbel_softmax(logits, tau=tau, dim=dim, generator=torch.Generator().manual_seed(seed))
    soft = gumbel_softmax(
        logits, tau=tau, dim=dim, hard=False, generator=torch.Generator().manual_seed(seed)
    )
    assert set(hard.unique().tolist()) <= {0.0, 1.0}
    torch.testing.assert_close(hard.sum(dim), torch.ones_like(hard.sum(dim)))
    torch.testing.assert_close(soft.sum(dim), torch.ones_like(soft.sum(dim)))
    assert torch.equal(hard.argmax(dim), soft.argmax(dim))


def test_deterministic_given_a_generator():
    logits = torch.randn(8, 6, 4, 4)
    a = gumbel_softmax(logits, generator=torch.Generator().manual_seed(3))
    b = gumbel_softmax(logits, generator=torch.Generator().manual_seed(3))
    c = gumbel_softmax(logits, generator=torch.Generator().manual_seed(4))
    assert torch.equal(a, b) and not torch.equal(a, c)
    module = GumbelSoftmax(0.7, dim=1)
    assert torch.equal(
        module(logits, generator=torch.Generator().manual_seed(3)),
        gumbel_softmax(logits, tau=0.7, generator=torch.Generator().manual_seed(3)),
    )


def chi2_critical(df: int, z: float = 3.09) -> float:
    """Upper quantile of χ²(df) by the Wilson–Hilferty approximation (z = 3.09: p ≈ 0.001)."""
    a = 2.0 / (9.0 * df)
    return df * (1.0 - a + z * math.sqrt(a)) ** 3


@pytest.mark.parametrize("seed", range(5))
@pytest.mark.parametrize("tau", [0.3, 1.0, 3.0])
def test_frequencies_match_softmax(seed, tau):
    """The arg-max of a Gumbel-perturbed logit vector is Categorical(softmax(logits)), whatever
    tau: a χ² goodness-of-fit test on 20 000 draws (fixed generator) stays below the 0.1 %
    quantile."""
    gen = torch.Generator().manual_seed(seed)
    k = 6
    logits = 1.5 * torch.randn(k, generator=gen, dtype=torch.float64)
    draws = 20_000
    samples = gumbel_softmax(logits.expand(draws, k), tau=tau, dim=1, generator=gen)
    counts = samples.sum(0)
    expected = torch.softmax(logits, 0) * draws
    chi2 = ((counts - expected) ** 2 / expected).sum().item()
    assert chi2 < chi2_critical(k - 1)


def test_straight_through_gradient_is_the_soft_gradient():
    logits = torch.randn(4, 5, 3, 3, dtype=torch.float64, requires_grad=True)
    weights = torch.randn(4, 5, 3, 3, dtype=torch.float64)
    hard = gumbel_softmax(logits, tau=0.5, generator=torch.Generator().manual_seed(0))
    (g_hard,) = torch.autograd.grad((hard * weights).sum(), logits)
    soft = gumbel_softmax(logits, tau=0.5, hard=False, generator=torch.Generator().manual_seed(0))
    (g_soft,) = torch.autograd.grad((soft * weights).sum(), logits)
    assert g_hard.abs().max() > 0
    torch.testing.assert_close(g_hard, g_soft)


def test_soft_sample_gradcheck():
    logits = torch.randn(2, 4, 3, dtype=torch.float64, requires_grad=True)

    def f(t):
        return gumbel_softmax(t, tau=0.8, hard=False, generator=torch.Generator().manual_seed(1))

    assert torch.autograd.gradcheck(f, (logits,))
    assert torch.autograd.gradgradcheck(f, (logits,))


def test_bad_arguments():
    with pytest.raises(ValueError, match="tau"):
        GumbelSoftmax(0.0)
    with pytest.raises(ValueError, match="dim"):
        gumbel_softmax(torch.randn(2, 3), dim=2)
    with pytest.raises(TypeError, match="logits"):
        gumbel_softmax(torch.ones(2, 3, dtype=torch.long))
