"""PathLengthRegularizer against the analytic Jacobian of linear generators."""

from __future__ import annotations

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from ganblocks.losses import PathLengthRegularizer


@settings(max_examples=15)
@given(
    b=st.integers(1, 4), num_ws=st.integers(1, 3), w_dim=st.integers(1, 5), seed=st.integers(0, 999)
)
def test_lengths_equal_jacobian_transpose_products(b, num_ws, w_dim, seed):
    g = torch.Generator().manual_seed(seed)
    A = torch.randn(num_ws, 3 * 2 * 2, w_dim, generator=g, dtype=torch.float64)
    ws = torch.randn(b, num_ws, w_dim, generator=g, dtype=torch.float64, requires_grad=True)
    images = torch.einsum("ipw,biw->bp", A, ws).reshape(b, 3, 2, 2)
    y = torch.randn(b, 3, 2, 2, generator=g, dtype=torch.float64)
    reg = PathLengthRegularizer(decay=0.25).double()
    # J_{w_i}^T y = A_i^T y for the linear map images = Σ_i A_i w_i
    jt_y = torch.einsum("ipw,bp->biw", A, y.reshape(b, -1))
    expected = jt_y.square().sum(2).mean(1).sqrt()
    torch.testing.assert_close(reg.path_lengths(images, ws, noise=y), expected)
    penalty = reg(images, ws, noise=y)
    torch.testing.assert_close(reg.pl_mean, 0.25 * expected.mean())
    torch.testing.assert_close(penalty, (expected - 0.25 * expected.mean()).square())


def test_penalty_is_differentiable_and_zero_for_isometries():
    reg = PathLengthRegularizer(decay=1.0)
    ws = torch.randn(6, 4, requires_grad=True)
    images = ws.reshape(6, 1, 2, 2) * 3.0  # every direction stretched by 3: constant length
    penalty = reg(images, ws, noise=torch.ones(6, 1, 2, 2))
    torch.testing.assert_close(penalty, torch.zeros(6))
    nonlinear = (ws**2).reshape(6, 1, 2, 2)
    reg(nonlinear, ws).sum().backward()
    assert ws.grad is not None and torch.isfinite(ws.grad).all()


def test_default_noise_scale_and_errors():
    reg = PathLengthRegularizer(decay=1.0)
    ws = torch.randn(2000, 1, 1, requires_grad=True)
    images = ws.reshape(2000, 1, 1, 1).expand(2000, 1, 8, 8)  # J^T y = Σ_pixels y
    lengths = reg.path_lengths(images, ws, generator=torch.Generator().manual_seed(0))
    # Σ over 64 pixels of N(0, 1/64): standard normal, so E[a²] = 1
    assert abs(lengths.square().mean().item() - 1.0) < 0.1
    with pytest.raises(ValueError, match="requires_grad"):
        reg(images, ws.detach())
    with pytest.raises(ValueError, match="decay"):
        PathLengthRegularizer(decay=0.0)


def test_default_decay_two_dimensional_ws_and_non_square_images():
    reg = PathLengthRegularizer()  # StyleGAN2's decay 0.01
    assert reg.decay == 0.01
    g = torch.Generator().manual_seed(1)
    # A linear "generator" with weights A: its path lengths depend on A, not on ws.
    A = torch.randn(3 * 4 * 6, 5, generator=g, dtype=torch.float64, requires_grad=True)
    ws = torch.randn(2, 5, generator=g, dtype=torch.float64, requires_grad=True)  # [B, w_dim]
    images = (ws @ A.T).reshape(2, 3, 4, 6)
    y = torch.randn(2, 3, 4, 6, generator=g, dtype=torch.float64)
    expected = (y.reshape(2, -1) @ A).square().sum(1).sqrt().detach()  # one style vector
    penalty = reg(images, ws, noise=y)
    torch.testing.assert_close(reg.pl_mean, 0.01 * expected.mean().float())
    torch.testing.assert_close(penalty, (expected - reg.pl_mean.double()).square())
    # The penalty keeps the graph through the gradient, so it trains the generator's weights:
    # d/dA Σ_b (a_b - ā)² = Σ_b 2 (a_b - ā) y_b (y_bᵀ A) / a_b.
    (grad,) = torch.autograd.grad(penalty.sum(), A)
    yb = y.reshape(2, -1)
    coef = 2 * (expected - reg.pl_mean.double()) / expected
    torch.testing.assert_close(grad, torch.einsum("b,bp,bw->pw", coef, yb, yb @ A.detach()))
    # Default direction on a non-square image: N(0, 1) / sqrt(H·W), so |Σ_pixels y|² has mean 1.
    many = torch.randn(3000, 1, generator=g, requires_grad=True)
    flat = many.view(3000, 1, 1, 1).expand(3000, 1, 4, 16)
    lengths = reg.path_lengths(flat, many, generator=torch.Generator().manual_seed(0))
    assert abs(lengths.square().mean().item() - 1.0) < 0.1


def test_argument_checks_name_the_argument():
    reg = PathLengthRegularizer(decay=1.0)
    ws = torch.randn(2, 3, requires_grad=True)
    images = ws.sum(1).view(2, 1, 1, 1).expand(2, 1, 2, 2)
    with pytest.raises(ValueError, match=r"^images: expected a tensor"):
        reg(images[0], ws)
    with pytest.raises(ValueError, match=r"^ws: expected \[B, num_ws, w_dim\]"):
        reg(images, ws.view(2, 3, 1, 1))
    with pytest.raises(ValueError, match=r"^ws: batch 2 differs from images' 1"):
        reg(images[:1], ws)
    with pytest.raises(ValueError, match=r"^noise: expected shape \(2, 1, 2, 2\)"):
        reg(images, ws, noise=torch.ones(2, 1, 2, 3))
    with pytest.raises(ValueError, match=r"^ws: the images do not depend on ws"):
        reg(torch.randn(2, 1, 2, 2, requires_grad=True) * 2, ws)
    for decay in (0.0, 1.5, -0.1):
        with pytest.raises(ValueError, match=r"^decay: expected a rate"):
            PathLengthRegularizer(decay=decay)
