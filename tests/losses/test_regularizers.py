"""R1 penalty (analytic values, finite differences, through ganblocks.ops) and lazy schedule."""

from __future__ import annotations

import pytest
import torch

from ganblocks.losses import LazyRegularizer, lazy_adam_params, r1_penalty
from ganblocks.ops import bias_act, conv2d_resample, setup_filter


def test_r1_analytic_quadratic():
    # D(x) = sum(a * x^2) per sample: gradient 2 a x, so the penalty is 4 * sum(a^2 x^2).
    g = torch.Generator().manual_seed(0)
    a = torch.rand(3, 5, generator=g, dtype=torch.float64)
    x = torch.randn(4, 3, 5, generator=g, dtype=torch.float64, requires_grad=True)
    logits = (a * x**2).sum(dim=(1, 2))
    expected = 4 * (a**2 * x.detach() ** 2).sum(dim=(1, 2))
    assert torch.allclose(r1_penalty(logits, x), expected, rtol=1e-13)


def test_r1_is_per_sample():
    g = torch.Generator().manual_seed(1)
    w = torch.randn(3, 3, 3, 3, generator=g, dtype=torch.float64)
    x = torch.randn(2, 3, 6, 6, generator=g, dtype=torch.float64)

    def penalty(inp):
        inp = inp.clone().requires_grad_(True)
        logits = torch.nn.functional.conv2d(inp, w).tanh().mean(dim=(1, 2, 3))
        return r1_penalty(logits, inp).detach()

    x2 = x.clone()
    x2[1] = x2[1] * 3 + 1
    p1, p2 = penalty(x), penalty(x2)
    assert p1[0].item() == pytest.approx(p2[0].item(), rel=1e-14) and p1[1] != p2[1]


def _small_d(x, w, b):
    """A discriminator built from the project's ops: FIR-downsampling conv + lrelu, then a cubic."""
    f = setup_filter([1, 3, 3, 1], device=x.device).to(x.dtype)
    y = conv2d_resample(x, w, f, down=2, padding=1)
    y = bias_act(y, b, act="lrelu")
    return (y**3).mean(dim=(1, 2, 3)) + y.mean(dim=(1, 2, 3))


def test_r1_matches_finite_differences_through_ops():
    """gradcheck of R1 w.r.t. the weights and the input = second derivatives of D are right."""
    g = torch.Generator().manual_seed(2)
    x = torch.randn(2, 2, 4, 4, generator=g, dtype=torch.float64, requires_grad=True)
    w = torch.randn(2, 2, 3, 3, generator=g, dtype=torch.float64, requires_grad=True)
    b = torch.randn(2, generator=g, dtype=torch.float64, requires_grad=True)

    def r1(x, w, b):
        return r1_penalty(_small_d(x, w, b), x)

    assert torch.autograd.gradcheck(r1, (x, w, b))


def test_r1_create_graph_flag_and_errors():
    x = torch.randn(2, 3, requires_grad=True)
    logits = (x**2).sum(dim=1)
    assert r1_penalty(logits, x, create_graph=False).grad_fn is None
    with pytest.raises(ValueError, match="inputs: expected requires_grad"):
        r1_penalty(logits, torch.randn(2, 3))
    with pytest.raises(ValueError, match="inputs: logits do not depend"):
        r1_penalty((x**2).sum(dim=1), torch.randn(2, 3, requires_grad=True))
    with pytest.raises(ValueError, match="logits"):
        r1_penalty(torch.zeros(2), x)


def test_lazy_schedule_and_adam_correction():
    lazy = LazyRegularizer(interval=16)
    assert [s for s in range(50) if lazy.is_due(s)] == [0, 16, 32, 48]
    assert lazy.weight == 16.0
    lr, (b1, b2) = lazy_adam_params(0.002, (0.0, 0.99), 16)
    c = 16 / 17
    assert lr == pytest.approx(0.002 * c, rel=1e-15)
    assert b1 == 0.0 and b2 == pytest.approx(0.99**c, rel=1e-15)
    assert lazy.adam_params(0.002, (0.0, 0.99)) == (lr, (b1, b2))
    # Over k+1 optimiser steps the corrected betas forget as much as k plain steps did.
    assert b2 ** (16 + 1) == pytest.approx(0.99**16, rel=1e-12)
    every = LazyRegularizer(interval=1)
    assert all(every.is_due(s) for s in range(5)) and every.adam_params(1.0, (0.5, 0.5))[0] == 0.5


def test_lazy_bad_input():
    with pytest.raises(ValueError, match="interval"):
        LazyRegularizer(interval=0)
    with pytest.raises(ValueError, match="step"):
        LazyRegularizer().is_due(-1)
    with pytest.raises(ValueError, match="betas"):
        lazy_adam_params(0.01, (0.0, 1.5), 4)
    with pytest.raises(ValueError, match="lr"):
        lazy_adam_params(0.0, (0.0, 0.9), 4)
