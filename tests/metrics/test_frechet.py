"""frechet_distance and FeatureStatistics: golden values, analytic cases, properties."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from hypothesis import given
from hypothesis import strategies as st
from testutils import load_golden

from ganblocks.metrics import FeatureStatistics, frechet_distance

GOLDEN = load_golden("frechet")["cases"]


def _random_psd(gen: torch.Generator, dim: int, rank: int) -> torch.Tensor:
    """A random symmetric PSD matrix of the given rank (float64)."""
    factor = torch.randn(dim, rank, generator=gen, dtype=torch.float64)
    return factor @ factor.T / rank


@pytest.mark.parametrize("index", range(len(GOLDEN)))
def test_golden_pytorch_fid(index: int) -> None:
    case = GOLDEN[index]
    got = frechet_distance(case["mu1"], case["sigma1"], case["mu2"], case["sigma2"])
    expected = float(case["fid"])
    assert abs(got - expected) <= 1e-6 * abs(expected)


def test_golden_has_singular_cases() -> None:
    """The golden set exercises the rank-deficient path (else the test above proves less)."""
    ranks = [int(torch.linalg.matrix_rank(c["sigma1"])) for c in GOLDEN]
    dims = [c["sigma1"].shape[0] for c in GOLDEN]
    assert sum(r < d for r, d in zip(ranks, dims)) >= 5


def test_accepts_numpy_and_float32() -> None:
    case = GOLDEN[0]
    as_numpy = frechet_distance(*(case[k].numpy() for k in ("mu1", "sigma1", "mu2", "sigma2")))
    assert as_numpy == pytest.approx(float(case["fid"]), rel=1e-6)
    as_f32 = frechet_distance(*(case[k].float() for k in ("mu1", "sigma1", "mu2", "sigma2")))
    assert as_f32 == pytest.approx(float(case["fid"]), rel=1e-4)


@given(
    dim=st.integers(1, 12),
    rank_frac=st.floats(0.1, 1.0),
    seed=st.integers(0, 2**31 - 1),
    scale=st.floats(1e-3, 1e3),
)
def test_equal_covariances_give_mean_distance(
    dim: int, rank_frac: float, seed: int, scale: float
) -> None:
    gen = torch.Generator().manual_seed(seed)
    sigma = scale * _random_psd(gen, dim, max(1, round(rank_frac * dim)))
    mu1 = torch.randn(dim, generator=gen, dtype=torch.float64)
    mu2 = torch.randn(dim, generator=gen, dtype=torch.float64)
    expected = float((mu1 - mu2).square().sum())
    got = frechet_distance(mu1, sigma, mu2, sigma)
    # Rounding in the trace terms is relative to tr(Σ); sqrt of clamped eigenvalues ~ sqrt(eps).
    tol = 1e-9 * (expected + 1.0) + 1e-6 * float(sigma.trace())
    assert abs(got - expected) <= tol


@given(
    dim=st.integers(1, 10),
    seed=st.integers(0, 2**31 - 1),
    rank1=st.floats(0.1, 1.0),
    rank2=st.floats(0.1, 1.0),
)
def test_symmetric(dim: int, seed: int, rank1: float, rank2: float) -> None:
    gen = torch.Generator().manual_seed(seed)
    s1 = _random_psd(gen, dim, max(1, round(rank1 * dim)))
    s2 = _random_psd(gen, dim, max(1, round(rank2 * dim)))
    m1, m2 = torch.randn(2, dim, generator=gen, dtype=torch.float64)
    forward = frechet_distance(m1, s1, m2, s2)
    backward = frechet_distance(m2, s2, m1, s1)
    assert forward == pytest.approx(backward, rel=1e-9, abs=1e-7)
    assert forward >= -1e-7


@given(dim=st.integers(1, 10), seed=st.integers(0, 2**31 - 1))
def test_commuting_covariances_closed_form(dim: int, seed: int) -> None:
    """Diagonal covariances: d² = ‖Δμ‖² + Σ_i (√a_i − √b_i)² (independent of the sqrtm route)."""
    gen = torch.Generator().manual_seed(seed)
    a = torch.rand(dim, generator=gen, dtype=torch.float64) * 4
    b = torch.rand(dim, generator=gen, dtype=torch.float64) * 4
    a[0] = 0.0  # one singular direction
    m1, m2 = torch.randn(2, dim, generator=gen, dtype=torch.float64)
    expected = float((m1 - m2).square().sum() + (a.sqrt() - b.sqrt()).square().sum())
    got = frechet_distance(m1, torch.diag(a), m2, torch.diag(b))
    assert got == pytest.approx(expected, rel=1e-9, abs=1e-9)


def test_set_against_itself_is_zero_even_when_singular() -> None:
    gen = torch.Generator().manual_seed(0)
    features = torch.randn(20, 64, generator=gen, dtype=torch.float64)  # n < D: singular
    stats = FeatureStatistics()
    stats.update(features)
    sigma = stats.covariance
    d = frechet_distance(stats.mean, sigma, stats.mean, sigma)
    # Null directions carry eigenvalues of ~eps·‖Σ‖², whose square roots (~1e-8 ‖Σ‖) add up.
    assert abs(d) < 1e-7 * float(sigma.trace())
    assert frechet_distance(stats.mean, sigma, stats.mean + 0.5, sigma) == pytest.approx(
        64 * 0.25, abs=1e-7 * float(sigma.trace())
    )


def test_bad_input_messages() -> None:
    mu, sigma = torch.zeros(3), torch.eye(3)
    with pytest.raises(ValueError, match="sigma2"):
        frechet_distance(mu, sigma, mu, torch.eye(4))
    with pytest.raises(ValueError, match="mu1"):
        frechet_distance(sigma, sigma, mu, sigma)
    with pytest.raises(TypeError, match="mu2"):
        frechet_distance(mu, sigma, [0.0, 0.0, 0.0], sigma)
    with pytest.raises(ValueError, match="NaN"):
        frechet_distance(mu, sigma * float("nan"), mu, sigma)


# --------------------------------------------------------------------------------------------------
# FeatureStatistics
# --------------------------------------------------------------------------------------------------


def test_statistics_match_torch_cov() -> None:
    gen = torch.Generator().manual_seed(1)
    x = torch.randn(50, 6, generator=gen) * 3 + 5
    stats = FeatureStatistics()
    stats.update(x)
    assert stats.count == 50
    torch.testing.assert_close(stats.mean, x.double().mean(dim=0))
    torch.testing.assert_close(stats.covariance, torch.cov(x.double().T))
    np.testing.assert_allclose(stats.covariance.numpy(), np.cov(x.double().numpy(), rowvar=False))


@given(
    n=st.integers(2, 40),
    cuts=st.lists(st.integers(0, 40), max_size=5),
    seed=st.integers(0, 2**31 - 1),
)
def test_statistics_invariant_to_batching_and_rank_split(n: int, cuts: list, seed: int) -> None:
    """One pass, any batching, and per-"rank" accumulations merged all give the same moments."""
    gen = torch.Generator().manual_seed(seed)
    x = torch.randn(n, 5, generator=gen)
    whole = FeatureStatistics()
    whole.update(x)
    bounds = sorted({0, n, *(min(c, n) for c in cuts)})
    batched = FeatureStatistics()
    ranks = []
    for lo, hi in zip(bounds[:-1], bounds[1:]):
        batched.update(x[lo:hi])
        part = FeatureStatistics()
        part.update(x[lo:hi])
        ranks.append(part)
    merged = FeatureStatistics()
    for part in reversed(ranks):  # order does not matter either
        merged.merge(part)
    for other in (batched, merged):
        assert other.count == whole.count
        torch.testing.assert_close(other.mean, whole.mean, rtol=1e-12, atol=1e-12)
        torch.testing.assert_close(other.covariance, whole.covariance, rtol=1e-10, atol=1e-12)


def test_statistics_all_reduce_without_process_group_is_a_copy() -> None:
    stats = FeatureStatistics()
    stats.update(torch.randn(4, 3))
    reduced = stats.all_reduce()
    assert reduced is not stats and reduced.count == 4
    torch.testing.assert_close(reduced.sum_outer, stats.sum_outer)
    reduced.update(torch.randn(2, 3))
    assert stats.count == 4  # the original is untouched


def test_statistics_state_dict_roundtrip_and_errors() -> None:
    stats = FeatureStatistics()
    stats.update(torch.randn(7, 4))
    copy = FeatureStatistics()
    copy.load_state_dict(stats.state_dict())
    assert copy.count == 7
    torch.testing.assert_close(copy.covariance, stats.covariance)
    with pytest.raises(ValueError, match="D = 4"):
        stats.update(torch.randn(2, 5))
    with pytest.raises(ValueError, match=r"\[N, D\]"):
        stats.update(torch.randn(2, 4, 1))
    with pytest.raises(ValueError, match="at least 2"):
        one = FeatureStatistics()
        one.update(torch.randn(1, 4))
        _ = one.covariance
    with pytest.raises(ValueError, match="dim"):
        FeatureStatistics(0)
    with pytest.raises(ValueError, match="missing"):
        copy.load_state_dict({"count": 1})
