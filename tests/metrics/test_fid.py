"""FrechetInceptionDistance with a small stand-in feature extractor."""

from __future__ import annotations

import pytest
import torch
from hypothesis import given
from hypothesis import strategies as st
from torch import nn

from ganblocks.metrics import FeatureStatistics, FrechetInceptionDistance, frechet_distance


def _extractor() -> nn.Module:
    """A small fixed random network: images [N, 3, 8, 8] -> features [N, 6]."""
    torch.manual_seed(0)
    return nn.Sequential(nn.Conv2d(3, 6, 3), nn.Tanh(), nn.AdaptiveAvgPool2d(1), nn.Flatten())


NET = _extractor()


def _images(n: int, seed: int, shift: float = 0.0) -> torch.Tensor:
    gen = torch.Generator().manual_seed(seed)
    return torch.randn(n, 3, 8, 8, generator=gen) + shift


def test_matches_frechet_of_extracted_features() -> None:
    """Independent route: features → torch.mean / torch.cov → frechet_distance."""
    real, fake = _images(64, 1), _images(48, 2, shift=0.3)
    fid = FrechetInceptionDistance(NET)
    fid.update(real, real=True)
    fid.update(fake, real=False)
    with torch.no_grad():
        fr, ff = NET(real).double(), NET(fake).double()
    expected = frechet_distance(fr.mean(0), torch.cov(fr.T), ff.mean(0), torch.cov(ff.T))
    assert fid.compute() == pytest.approx(expected, rel=1e-9)
    assert expected > 0.01


def test_set_against_itself_is_zero() -> None:
    images = _images(40, 3)
    fid = FrechetInceptionDistance(NET)
    fid.update(images, real=True)
    fid.update(images, real=False)
    assert abs(fid.compute()) < 1e-9


def test_shift_with_equal_covariance_gives_squared_mean_difference() -> None:
    fid = FrechetInceptionDistance(lambda x: x.flatten(1))  # features = pixels
    images = _images(30, 4)[:, :, :2, :2].double()  # float64, so x + Δ keeps the covariance exactly
    delta = torch.tensor([0.5, -1.0, 2.0], dtype=torch.float64).view(1, 3, 1, 1)
    fid.update(images, real=True)
    fid.update(images + delta, real=False)
    assert fid.compute() == pytest.approx(4 * float(delta.square().sum()), rel=1e-9)


def test_symmetric_in_real_and_fake() -> None:
    a, b = _images(50, 5), _images(40, 6, shift=0.5)
    forward, backward = FrechetInceptionDistance(NET), FrechetInceptionDistance(NET)
    forward.update(a, real=True)
    forward.update(b, real=False)
    backward.update(b, real=True)
    backward.update(a, real=False)
    assert forward.compute() == pytest.approx(backward.compute(), rel=1e-9)


@given(
    cuts=st.lists(st.integers(1, 59), max_size=4),
    ranks=st.integers(1, 4),
)
def test_invariant_to_batch_size_and_rank_split(cuts: list, ranks: int) -> None:
    real, fake = _images(60, 7), _images(60, 8, shift=0.2)
    reference = FrechetInceptionDistance(NET)
    reference.update(real, real=True)
    reference.update(fake, real=False)
    expected = reference.compute()

    bounds = sorted({0, 60, *cuts})
    batches = list(zip(bounds[:-1], bounds[1:]))
    # Every "rank" gets every `ranks`-th batch; their statistics are merged afterwards, which is
    # what the all-reduce in compute() does across processes.
    per_rank = [FrechetInceptionDistance(NET) for _ in range(ranks)]
    for index, (lo, hi) in enumerate(batches):
        metric = per_rank[index % ranks]
        metric.update(real[lo:hi], real=True)
        metric.update(fake[lo:hi], real=False)
    merged = FrechetInceptionDistance(NET)
    for metric in per_rank:
        merged.real.merge(metric.real)
        merged.fake.merge(metric.fake)
    assert merged.compute() == pytest.approx(expected, rel=1e-8, abs=1e-12)


def test_reset_keeps_cached_real_statistics() -> None:
    fid = FrechetInceptionDistance(NET)
    fid.update(_images(30, 9), real=True)
    fid.update(_images(30, 10), real=False)
    first = fid.compute()
    cached = fid.real.state_dict()
    fid.reset(keep_real=True)
    assert fid.fake.count == 0 and fid.real.count == 30
    fid.update(_images(30, 10), real=False)
    assert fid.compute() == pytest.approx(first, rel=1e-12)

    restored = FrechetInceptionDistance(NET)
    restored.real = FeatureStatistics()
    restored.real.load_state_dict(cached)
    restored.update(_images(30, 10), real=False)
    assert restored.compute() == pytest.approx(first, rel=1e-12)
    fid.reset()
    assert fid.real.count == 0


def test_errors() -> None:
    fid = FrechetInceptionDistance(NET)
    with pytest.raises(TypeError, match="real: expected True"):
        fid.update(_images(2, 0), real=1)
    with pytest.raises(TypeError):
        fid.update(_images(2, 0))  # real is keyword-only and required
    fid.update(_images(5, 0), real=True)
    fid.update(_images(1, 0), real=False)
    with pytest.raises(ValueError, match="fake set has 1 images"):
        fid.compute()
    bad = FrechetInceptionDistance(lambda x: x)  # returns images, not [N, D]
    with pytest.raises(ValueError, match=r"feature_extractor: expected features \[N, D\]"):
        bad.update(_images(2, 0), real=True)
    with pytest.raises(TypeError, match="feature_extractor"):
        FrechetInceptionDistance("inception")
