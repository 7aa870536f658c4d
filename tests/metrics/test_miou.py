"""MeanIoU from a dataset-level confusion matrix."""

from __future__ import annotations

import math

import pytest
import torch
from hypothesis import given
from hypothesis import strategies as st

from ganblocks.metrics import MeanIoU, confusion_matrix

# Two 2×3 images, 4 classes; the confusion matrix below is counted by hand (rows: target).
TARGET = torch.tensor([[[0, 0, 1], [1, 2, 2]], [[0, 1, 1], [2, 2, 2]]])
PRED = torch.tensor([[[0, 1, 1], [1, 2, 0]], [[0, 1, 3], [2, 2, 1]]])
HAND = torch.tensor(
    [
        [2, 1, 0, 0],  # target 0: two right, one predicted 1
        [0, 3, 0, 1],  # target 1: three right, one predicted 3
        [1, 1, 3, 0],  # target 2: three right, one predicted 0, one predicted 1
        [0, 0, 0, 0],  # class 3 never occurs in the targets
    ]
)


def test_confusion_matrix_by_hand() -> None:
    assert torch.equal(confusion_matrix(PRED, TARGET, 4), HAND)


def test_iou_by_hand() -> None:
    metric = MeanIoU(4)
    metric.update(PRED, TARGET)
    result = metric.compute()
    # IoU = TP / (row + column − TP)
    expected = [2 / (3 + 3 - 2), 3 / (4 + 5 - 3), 3 / (5 + 3 - 3), 0 / (0 + 1 - 0)]
    torch.testing.assert_close(result.iou, torch.tensor(expected, dtype=torch.float64))
    assert result.miou == pytest.approx(sum(expected) / 4)


def test_class_absent_everywhere_is_excluded() -> None:
    metric = MeanIoU(6)  # classes 4 and 5 neither occur nor are predicted
    metric.update(PRED, TARGET)
    result = metric.compute()
    assert math.isnan(result.iou[4]) and math.isnan(result.iou[5])
    assert result.miou == pytest.approx(float(result.iou[:4].mean()))


def test_ignore_index_outside_range() -> None:
    target = TARGET.clone()
    target[0, 0, 0] = 255  # was class 0, predicted 0
    target[1, 1, 2] = 255  # was class 2, predicted 1
    metric = MeanIoU(4, ignore_index=255)
    metric.update(PRED, target)
    expected = HAND.clone()
    expected[0, 0] -= 1
    expected[2, 1] -= 1
    assert torch.equal(metric.confusion, expected)
    with pytest.raises(ValueError, match=r"target: class indices must be in \[0, 3\]"):
        MeanIoU(4).update(PRED, target)  # without ignore_index, 255 is an error


def test_ignore_index_inside_range_is_excluded_from_the_mean() -> None:
    """A don't-care label 0: its pixels are skipped and class 0 gets no IoU."""
    metric = MeanIoU(4, ignore_index=0)
    metric.update(PRED, TARGET)
    result = metric.compute()
    conf = HAND.clone()
    conf[0] = 0  # target-0 pixels skipped; predicting 0 elsewhere still misses the true class
    tp = conf.diagonal().double()
    iou = tp / (conf.sum(0) + conf.sum(1) - conf.diagonal()).double()
    assert math.isnan(result.iou[0])
    torch.testing.assert_close(result.iou[1:], iou[1:])
    assert result.miou == pytest.approx(float(iou[1:].mean()))


def test_logits_are_argmaxed() -> None:
    logits = torch.nn.functional.one_hot(PRED, 4).permute(0, 3, 1, 2).float() * 5
    logits = logits + 0.1 * torch.rand(logits.shape, generator=torch.Generator().manual_seed(0))
    metric = MeanIoU(4)
    metric.update(logits, TARGET)
    assert torch.equal(metric.confusion, HAND)


@given(cut=st.integers(0, 2), seed=st.integers(0, 2**31 - 1))
def test_dataset_level_not_per_image(cut: int, seed: int) -> None:
    """Any batching gives the same matrix; the mean is not an average of per-image mIoUs."""
    gen = torch.Generator().manual_seed(seed)
    target = torch.randint(0, 5, (2, 6, 6), generator=gen)
    pred = torch.randint(0, 5, (2, 6, 6), generator=gen)
    whole, split = MeanIoU(5), MeanIoU(5)
    whole.update(pred, target)
    split.update(pred[:cut], target[:cut])
    split.update(pred[cut:], target[cut:])
    assert torch.equal(whole.confusion, split.confusion)
    assert whole.compute().miou == split.compute().miou


def test_errors_and_reset() -> None:
    with pytest.raises(ValueError, match="num_classes"):
        MeanIoU(0)
    metric = MeanIoU(4)
    with pytest.raises(ValueError, match=r"pred: class indices must be in \[0, 3\]"):
        metric.update(PRED + 1, TARGET)
    with pytest.raises(ValueError, match=r"floating-point scores must be \[N, 4, \.\.\.\]"):
        metric.update(torch.rand(2, 3, 2, 3), TARGET)
    with pytest.raises(TypeError, match="target: expected integer"):
        metric.update(PRED, TARGET.float())
    with pytest.raises(ValueError, match="pred: expected the shape of target"):
        metric.update(PRED[:1], TARGET)
    with pytest.raises(ValueError, match="no labelled pixels"):
        metric.compute()
    metric.update(PRED, TARGET)
    metric.reset()
    assert metric.confusion is None
