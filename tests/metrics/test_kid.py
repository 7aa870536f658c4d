"""Kernel Inception Distance: the unbiased polynomial MMD² and its subset average."""

from __future__ import annotations

import itertools

import pytest
import torch

from ganblocks.metrics import (
    KernelInceptionDistance,
    kernel_inception_distance,
    polynomial_mmd2,
)


def _mmd2_by_definition(x: torch.Tensor, y: torch.Tensor) -> float:
    """Pairwise loops over k(a, b) = (a·b / d + 1)³, straight from the estimator's formula."""
    d = x.shape[1]

    def k(a: torch.Tensor, b: torch.Tensor) -> float:
        return (float(a.double() @ b.double()) / d + 1.0) ** 3

    m, n = len(x), len(y)
    xx = sum(k(x[i], x[j]) for i, j in itertools.permutations(range(m), 2)) / (m * (m - 1))
    yy = sum(k(y[i], y[j]) for i, j in itertools.permutations(range(n), 2)) / (n * (n - 1))
    xy = sum(k(x[i], y[j]) for i in range(m) for j in range(n)) / (m * n)
    return xx + yy - 2 * xy


def test_mmd2_matches_definition() -> None:
    gen = torch.Generator().manual_seed(0)
    x = torch.randn(7, 5, generator=gen)
    y = torch.randn(9, 5, generator=gen) * 1.5 + 0.3
    assert float(polynomial_mmd2(x, y)) == pytest.approx(_mmd2_by_definition(x, y), rel=1e-10)


def test_unbiased_on_equal_distributions() -> None:
    """Mean over independent draws ≈ 0 within 4 standard errors; the biased V-statistic is not."""
    gen = torch.Generator().manual_seed(1)
    trials, m, d = 300, 20, 4
    x = torch.randn(trials, m, d, generator=gen, dtype=torch.float64)
    y = torch.randn(trials, m, d, generator=gen, dtype=torch.float64)
    values = torch.stack([polynomial_mmd2(a, b) for a, b in zip(x, y)])
    stderr = float(values.std()) / trials**0.5
    assert abs(float(values.mean())) < 4 * stderr

    def biased(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
        kern = lambda u, v: (u @ v.T / d + 1) ** 3  # noqa: E731
        return kern(a, a).mean() + kern(b, b).mean() - 2 * kern(a, b).mean()

    biased_mean = float(torch.stack([biased(a, b) for a, b in zip(x, y)]).mean())
    assert biased_mean > 10 * stderr  # the test has the power to see a bias of this size


def test_kid_subsets_mean_and_std() -> None:
    gen = torch.Generator().manual_seed(2)
    real = torch.randn(120, 6, generator=gen)
    fake = torch.randn(100, 6, generator=gen) + 0.7
    result = kernel_inception_distance(real, fake, num_subsets=8, subset_size=50, seed=3)
    # Independent route: replay the documented sampling and average the definition.
    rng = torch.Generator().manual_seed(3)
    values = []
    for _ in range(8):
        pick_real = torch.randperm(120, generator=rng)[:50]
        pick_fake = torch.randperm(100, generator=rng)[:50]
        values.append(float(polynomial_mmd2(real[pick_real], fake[pick_fake])))
    expected = torch.tensor(values, dtype=torch.float64)
    assert result.mean == pytest.approx(float(expected.mean()), rel=1e-12)
    assert result.std == pytest.approx(float(expected.std()), rel=1e-12)
    assert result.mean > 5 * result.std > 0
    # Same seed, same result; subset size capped by the smaller set.
    again = kernel_inception_distance(real, fake, num_subsets=8, subset_size=50, seed=3)
    assert again == result
    capped = kernel_inception_distance(real, fake, num_subsets=1, subset_size=10_000)
    assert capped.std == 0.0


def test_metric_class_and_batching() -> None:
    gen = torch.Generator().manual_seed(4)
    real = torch.randn(60, 2, 3, 3, generator=gen)
    fake = torch.randn(60, 2, 3, 3, generator=gen) * 1.3
    whole = KernelInceptionDistance(lambda x: x.flatten(1), num_subsets=5, subset_size=40)
    batched = KernelInceptionDistance(lambda x: x.flatten(1), num_subsets=5, subset_size=40)
    whole.update(real, real=True)
    whole.update(fake, real=False)
    for lo in range(0, 60, 25):
        batched.update(real[lo : lo + 25], real=True)
        batched.update(fake[lo : lo + 25], real=False)
    assert batched.compute() == whole.compute()
    direct = kernel_inception_distance(
        real.flatten(1), fake.flatten(1), num_subsets=5, subset_size=40
    )
    assert whole.compute() == direct
    whole.reset(keep_real=True)
    with pytest.raises(ValueError, match="no fake images"):
        whole.compute()


def test_errors() -> None:
    with pytest.raises(ValueError, match="num_subsets"):
        KernelInceptionDistance(lambda x: x, num_subsets=0)
    with pytest.raises(ValueError, match="at least 2"):
        kernel_inception_distance(torch.randn(1, 3), torch.randn(5, 3))
    with pytest.raises(ValueError, match="D = 3"):
        polynomial_mmd2(torch.randn(4, 3), torch.randn(4, 2))
    with pytest.raises(ValueError, match=r"real: expected floating-point features \[N, D\]"):
        kernel_inception_distance(torch.randn(4), torch.randn(4, 2))
