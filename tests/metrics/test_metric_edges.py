"""Metric edge cases by hand: the smallest valid sample sizes, statistics that survive a
(single-process) all-reduce unchanged, and errors that name the argument."""

from __future__ import annotations

import inspect

import numpy as np
import pytest
import torch

from ganblocks.metrics import (
    FeatureStatistics,
    FrechetInceptionDistance,
    KernelInceptionDistance,
    MeanIoU,
    confusion_matrix,
    frechet_distance,
    kernel_inception_distance,
    polynomial_mmd2,
)


def identity(images: torch.Tensor) -> torch.Tensor:
    return images.flatten(1)


def test_fid_works_from_two_images_per_set_and_refuses_one():
    x = torch.tensor([[0.0, 1.0], [2.0, -1.0]])
    fid = FrechetInceptionDistance(identity)
    fid.update(x, real=True)
    fid.update(x + torch.tensor([3.0, 4.0]), real=False)
    assert fid.compute() == pytest.approx(25.0)  # equal covariances: |Δμ|² = 9 + 16
    fid.reset(keep_real=True)
    fid.update(x[:1], real=False)
    with pytest.raises(ValueError, match="fake set has 1 images"):
        fid.compute()


def test_fid_hands_its_weights_path_to_the_default_extractor(tmp_path):
    missing = tmp_path / "no_such_weights.pth"
    with pytest.raises(FileNotFoundError, match="no_such_weights"):
        FrechetInceptionDistance(weights=missing, device="cpu")


def test_statistics_survive_all_reduce_and_match_numpy():
    gen = torch.Generator().manual_seed(0)
    x = torch.randn(50, 4, generator=gen, dtype=torch.float64)
    stats = FeatureStatistics(dim=4, device="cpu")
    stats.update(x[:20])
    stats.update(x[20:])
    out = stats.all_reduce()
    assert out.count == 50
    torch.testing.assert_close(out.mean, x.mean(dim=0))
    torch.testing.assert_close(out.covariance, torch.from_numpy(np.cov(x.numpy(), rowvar=False)))


def test_empty_statistics_refuse_a_mean():
    with pytest.raises(ValueError, match="no features"):
        _ = FeatureStatistics(dim=3, device="cpu").mean
    with pytest.raises(ValueError, match="no features"):
        _ = FeatureStatistics().mean


def test_frechet_distance_is_computed_in_float64():
    """float32 inputs are promoted first: the result matches the float64 one to ~1e-12."""
    gen = torch.Generator().manual_seed(1)
    a = torch.randn(200, 3, generator=gen)
    b = torch.randn(200, 3, generator=gen) * 1.3 + 0.2
    args32 = (a.mean(0), a.T.cov(), b.mean(0), b.T.cov())
    args64 = tuple(t.double() for t in args32)
    assert frechet_distance(*args32) == pytest.approx(frechet_distance(*args64), rel=1e-12)


def test_polynomial_mmd_smallest_samples_and_errors():
    x = torch.tensor([[1.0], [-1.0]])
    assert polynomial_mmd2(x, x).item() == pytest.approx(-8.0)  # see its docstring
    with pytest.raises(ValueError, match="2 rows"):
        polynomial_mmd2(x, x[:1])
    with pytest.raises(ValueError, match="2 rows"):
        polynomial_mmd2(x[:1], x)
    with pytest.raises(ValueError, match="x: expected floating-point features"):
        polynomial_mmd2([[1.0], [2.0]], x)
    with pytest.raises(ValueError, match="y: expected floating-point features"):
        polynomial_mmd2(x, torch.ones(2, 1, dtype=torch.long))


def test_kid_defaults_and_smallest_settings(tmp_path):
    kid = KernelInceptionDistance(identity)
    assert (kid.num_subsets, kid.subset_size) == (100, 1000)  # Bińkowski et al.'s protocol
    one = KernelInceptionDistance(identity, num_subsets=1, subset_size=1)
    assert (one.num_subsets, one.subset_size) == (1, 1)
    with pytest.raises(FileNotFoundError, match="no_such_weights"):
        KernelInceptionDistance(weights=tmp_path / "no_such_weights.pth", device="cpu")
    x = torch.tensor([[1.0], [-1.0], [0.5]])
    assert kernel_inception_distance(x[:2], x[:2], num_subsets=1).mean == pytest.approx(-8.0)
    with pytest.raises(ValueError, match="KID needs at least 2 samples"):
        kernel_inception_distance(x[:1], x, num_subsets=1)


def test_confusion_matrix_errors_name_the_tensor_and_what_is_allowed():
    pred = torch.tensor([0, 1, 1])
    with pytest.raises(TypeError, match="target"):
        confusion_matrix(pred, torch.tensor([0.0, 1.0, 1.0]), 2)
    with pytest.raises(ValueError, match=r"target: class indices must be in \[0, 1\], got"):
        confusion_matrix(pred, torch.tensor([0, 1, 2]), 2)
    with pytest.raises(ValueError, match=r"in \[0, 1\] or ignore_index=255, got"):
        confusion_matrix(pred, torch.tensor([0, 3, 255]), 2, ignore_index=255)
    with pytest.raises(ValueError, match=r"pred: class indices must be in \[0, 1\], got"):
        confusion_matrix(torch.tensor([0, 2, 1]), torch.tensor([0, 1, 255]), 2, ignore_index=255)
    torch.testing.assert_close(
        confusion_matrix(pred, torch.tensor([0, 255, 1], dtype=torch.int32), 2, ignore_index=255),
        torch.tensor([[1, 0], [0, 1]]),
    )


def test_mean_iou_of_a_single_class():
    metric = MeanIoU(1)
    metric.update(torch.zeros(2, 3, dtype=torch.long), torch.zeros(2, 3, dtype=torch.long))
    assert metric.compute().miou == 1.0


def test_kid_function_defaults_and_argument_names():
    params = inspect.signature(kernel_inception_distance).parameters
    assert (params["num_subsets"].default, params["subset_size"].default) == (100, 1000)
    x = torch.tensor([[1.0], [-1.0], [0.5]])
    for name in ("num_subsets", "subset_size"):
        with pytest.raises(ValueError, match=name):
            kernel_inception_distance(x, x, **{name: 0})
        with pytest.raises(ValueError, match=name):
            kernel_inception_distance(x, x, **{name: 2.0})


def test_kid_reset_forgets_the_real_features_unless_asked():
    kid = KernelInceptionDistance(identity, num_subsets=1)
    x = torch.tensor([[1.0], [-1.0]])
    kid.update(x, real=True)
    kid.update(x, real=False)
    kid.reset(keep_real=True)
    kid.update(x, real=False)
    assert kid.compute().mean == pytest.approx(-8.0)
    kid.reset()
    kid.update(x, real=False)
    with pytest.raises(ValueError, match="no real images"):
        kid.compute()


def test_mean_iou_update_names_a_bad_target():
    metric = MeanIoU(2)
    with pytest.raises(TypeError, match="target"):
        metric.update(torch.zeros(1, 2, dtype=torch.long), [[0, 1]])
    with pytest.raises(TypeError, match="target"):
        metric.update(torch.zeros(1, 2, 2), [[0, 1]])
