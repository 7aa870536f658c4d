"""Pins of metric semantics that mutation runs found unchecked (issue 23): edge cases of KID's
subset size and of mIoU's ignore index and argument checks."""

from __future__ import annotations

import pytest
import torch

from ganblocks.metrics import MeanIoU, kernel_inception_distance, polynomial_mmd2
from ganblocks.metrics.miou import confusion_matrix


def _replayed_kid(real, fake, *, num_subsets, size, seed):
    """The documented sampling, written out: one randperm of each set per subset, ``size`` rows."""
    gen = torch.Generator().manual_seed(seed)
    values = []
    for _ in range(num_subsets):
        pick_real = torch.randperm(real.shape[0], generator=gen)[:size]
        pick_fake = torch.randperm(fake.shape[0], generator=gen)[:size]
        values.append(float(polynomial_mmd2(real[pick_real], fake[pick_fake])))
    return torch.tensor(values, dtype=torch.float64)


@pytest.mark.parametrize(("n_real", "n_fake"), [(30, 12), (12, 30)])
def test_kid_subset_size_is_capped_by_the_smaller_set(n_real, n_fake):
    """With fewer fakes than reals (or the other way), every subset takes ``min(subset_size,
    N_r, N_f)`` rows of *each* set: equal-sized subsets, as the estimator assumes."""
    gen = torch.Generator().manual_seed(5)
    real = torch.randn(n_real, 4, generator=gen, dtype=torch.float64)
    fake = torch.randn(n_fake, 4, generator=gen, dtype=torch.float64) * 1.2 + 0.4
    result = kernel_inception_distance(real, fake, num_subsets=4, subset_size=1000, seed=9)
    expected = _replayed_kid(real, fake, num_subsets=4, size=min(n_real, n_fake), seed=9)
    assert result.mean == pytest.approx(float(expected.mean()), rel=1e-12)
    assert result.std == pytest.approx(float(expected.std()), rel=1e-12)
    # a subset size below both set sizes is used as given
    small = kernel_inception_distance(real, fake, num_subsets=3, subset_size=5, seed=2)
    expected = _replayed_kid(real, fake, num_subsets=3, size=5, seed=2)
    assert small.mean == pytest.approx(float(expected.mean()), rel=1e-12)


def test_kid_subsets_are_equal_sized_even_when_all_rows_are_taken():
    """All rows of the smaller set, ``size`` of the larger: the KID of a set against a copy of
    its own first rows is then exactly what the definition gives on those rows."""
    x = torch.tensor([[1.0], [-1.0], [0.5], [2.0]], dtype=torch.float64)
    result = kernel_inception_distance(x, x[:2], num_subsets=1, subset_size=1000, seed=0)
    pick = torch.randperm(4, generator=torch.Generator().manual_seed(0))[:2]
    assert result.mean == pytest.approx(float(polynomial_mmd2(x[pick], x[:2])), rel=1e-12)
    assert result.std == 0.0


def test_miou_ignore_index_equal_to_the_class_count():
    """``ignore_index == num_classes`` lies just outside ``[0, C)``: its pixels are skipped, every
    one of the ``C`` classes keeps its IoU (none is dropped as the ignored class)."""
    pred = torch.tensor([[0, 1, 2, 2, 1, 0]])
    target = torch.tensor([[0, 1, 3, 2, 3, 1]])  # the two 3s are don't-care
    metric = MeanIoU(3, ignore_index=3)
    metric.update(pred, target)
    result = metric.compute()
    # kept pixels: (t, p) = (0, 0), (1, 1), (2, 2), (1, 0)
    # class 0: 1 / (1 + 2 - 1) = 0.5; class 1: 1 / (2 + 1 - 1) = 0.5; class 2: 1 / 1
    torch.testing.assert_close(result.iou, torch.tensor([0.5, 0.5, 1.0], dtype=torch.float64))
    assert result.miou == pytest.approx(2.0 / 3.0)
    torch.testing.assert_close(
        confusion_matrix(pred, target, 3, ignore_index=3),
        torch.tensor([[1, 0, 0], [1, 1, 0], [0, 0, 1]]),
    )


def test_miou_ignore_index_equal_to_the_last_class_is_dropped_from_the_mean():
    """The neighbouring case, ``ignore_index == num_classes - 1``: that class is not counted."""
    pred = torch.tensor([[0, 1, 2, 2]])
    target = torch.tensor([[0, 1, 2, 1]])
    metric = MeanIoU(3, ignore_index=2)
    metric.update(pred, target)
    result = metric.compute()
    # kept: (0, 0), (1, 1), (1, 2); class 1: 1 / (2 + 1 - 1) = 0.5
    assert result.iou[2].isnan()
    torch.testing.assert_close(result.iou[:2], torch.tensor([1.0, 0.5], dtype=torch.float64))
    assert result.miou == pytest.approx(0.75)


def test_miou_evaluated_classes_without_an_ignore_index():
    metric = MeanIoU(3, classes=[0, 2])
    metric.update(torch.tensor([[0, 2, 1]]), torch.tensor([[0, 2, 2]]))
    # class 2: one hit, one pixel predicted as 1 (a miss) -> 1 / 2
    torch.testing.assert_close(metric.compute().iou, torch.tensor([1.0, 0.5], dtype=torch.float64))
    MeanIoU(3, ignore_index=1, classes=[0, 2])  # an ignore index outside the classes is fine


def test_confusion_matrix_checks_pred_by_name():
    with pytest.raises(TypeError, match="pred: expected integer class indices"):
        confusion_matrix(torch.tensor([0.0, 1.0]), torch.tensor([0, 1]), 2)
    with pytest.raises(TypeError, match=r"pred: expected a torch\.Tensor"):
        confusion_matrix([0, 1], torch.tensor([0, 1]), 2)


def test_empty_feature_statistics_all_reduce_in_one_process_is_empty():
    """Without a process group, an empty object reduces to an empty copy: no error for an unknown
    dimension, no zero sums that would turn "nothing added" into "0 features added"."""
    from ganblocks.metrics import FeatureStatistics

    for stats in (FeatureStatistics(), FeatureStatistics(3)):
        out = stats.all_reduce()
        assert out is not stats
        assert out.sum is None and out.count == 0
        assert out.state_dict() == {"count": 0, "sum": None, "sum_outer": None}
    full = FeatureStatistics()
    full.update(torch.tensor([[1.0, 2.0], [3.0, 6.0]]))
    out = full.all_reduce()
    assert out is not full and out.count == 2
    torch.testing.assert_close(out.mean, torch.tensor([2.0, 4.0], dtype=torch.float64))


# -- the shared feature-extraction helpers ----------------------------------------------------


def test_default_extractor_builds_the_pretrained_inception_only_when_none(monkeypatch):
    from ganblocks.metrics import _extract
    from ganblocks.metrics.inception import FIDInceptionV3

    calls = []

    def fake(cls, weights=None, *, device=None):
        calls.append((cls, weights, device))
        return "inception"

    monkeypatch.setattr(FIDInceptionV3, "from_pretrained", classmethod(fake))
    assert _extract.default_extractor(None, "w.pth", "cpu") == "inception"
    assert calls == [(FIDInceptionV3, "w.pth", "cpu")]
    own = lambda x: x  # noqa: E731
    assert _extract.default_extractor(own, "w.pth", "cpu") is own
    assert len(calls) == 1
    with pytest.raises(TypeError, match="feature_extractor: expected a callable"):
        _extract.default_extractor(3, None, None)


class _DeviceProbe(torch.nn.Module):
    """Records the device of its input; its only tensor lives on the meta device."""

    def __init__(self, kind: str) -> None:
        super().__init__()
        if kind == "parameter":
            self.w = torch.nn.Parameter(torch.empty(1, device="meta"))
        elif kind == "buffer":
            self.register_buffer("b", torch.empty(1, device="meta"))
        self.seen = None

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        self.seen = x.device
        return torch.zeros(x.shape[0], 2)


@pytest.mark.parametrize(
    ("kind", "device"), [("parameter", "meta"), ("buffer", "meta"), ("", "cpu")]
)
def test_images_go_to_the_device_of_the_extractor(kind, device):
    from ganblocks.metrics._extract import extract_features

    probe = _DeviceProbe(kind)
    features = extract_features(probe, torch.ones(3, 1, 2, 2))
    assert probe.seen == torch.device(device)
    assert features.shape == (3, 2)


def test_pooled_feature_maps_are_flattened_and_other_shapes_refused():
    from ganblocks.metrics._extract import extract_features

    x = torch.arange(24.0).reshape(2, 3, 2, 2)
    pooled = extract_features(lambda t: t.mean(dim=(2, 3), keepdim=True), x)  # [N, D, 1, 1]
    torch.testing.assert_close(pooled, x.mean(dim=(2, 3)))
    for bad in (lambda t: t[:, :, :1, :], lambda t: t[:, :1, :1, :1].flatten(2), lambda t: t):
        with pytest.raises(ValueError, match=r"expected features \[N, D\] with N = 2"):
            extract_features(bad, x)
    with pytest.raises(ValueError, match="N = 2"):
        extract_features(lambda t: t.flatten(1)[:1], x)
    with pytest.raises(TypeError, match="feature_extractor: expected it to return a tensor"):
        extract_features(lambda t: t.tolist(), x)
    with pytest.raises(TypeError, match=r"images: expected a torch\.Tensor"):
        extract_features(lambda t: t, [1.0])


# -- collective helpers -------------------------------------------------------------------------


def test_a_one_rank_process_group_is_not_distributed(tmp_path):
    """``is_distributed`` means *more than one* rank: with an initialised group of one, the
    helpers behave as without a group (a copy from all_reduce_sum, the input from all_gather)."""
    import torch.distributed as dist

    from ganblocks.metrics import _distributed

    assert not dist.is_initialized()
    dist.init_process_group("gloo", init_method=f"file://{tmp_path / 'pg'}", rank=0, world_size=1)
    try:
        assert not _distributed.is_distributed()
        x = torch.tensor([[1.0, 2.0]])
        assert _distributed.all_gather_rows(x) is x
        y = _distributed.all_reduce_sum(x)
        assert y is not x and torch.equal(y, x)
    finally:
        dist.destroy_process_group()


def test_without_torch_distributed_nothing_else_is_asked(monkeypatch):
    import torch.distributed as dist

    from ganblocks.metrics import _distributed

    def boom():
        raise AssertionError("asked although torch.distributed is not available")

    monkeypatch.setattr(dist, "is_available", lambda: False)
    monkeypatch.setattr(dist, "is_initialized", boom)
    assert _distributed.is_distributed() is False


# -- Inception helpers --------------------------------------------------------------------------


def test_tf_bilinear_resize_describes_what_it_got():
    from ganblocks.metrics.inception import tf_bilinear_resize

    with pytest.raises(ValueError, match=r"got tensor of shape \(2, 3\) and dtype torch\.float32"):
        tf_bilinear_resize(torch.zeros(2, 3), (4, 4))
    with pytest.raises(ValueError, match=r"dtype torch\.int64"):
        tf_bilinear_resize(torch.zeros(1, 1, 2, 2, dtype=torch.long), (4, 4))
    with pytest.raises(ValueError, match="got list"):
        tf_bilinear_resize([[0.0]], (4, 4))


def test_fid_helper_weights_are_found_only_where_the_file_is(tmp_path, monkeypatch):
    """The distribution's file list is only a place to look: a listed but absent file is no
    weights file (None), a present one is returned."""
    import importlib.metadata
    import importlib.util

    from ganblocks.metrics import inception

    class FakeDist:
        def locate_file(self, name):
            return tmp_path / name

    monkeypatch.setattr(importlib.util, "find_spec", lambda name: None)
    monkeypatch.setattr(importlib.metadata, "distribution", lambda name: FakeDist())
    assert inception._fid_helper_weights() is None
    target = tmp_path / inception._FID_HELPER_PACKAGE / inception._FID_HELPER_FILE
    target.parent.mkdir()
    target.write_bytes(b"weights")
    assert inception._fid_helper_weights() == target
