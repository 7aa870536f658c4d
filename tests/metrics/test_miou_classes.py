"""MeanIoU over a set of evaluated classes (the Cityscapes labelIds → trainIds protocol)."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from ganblocks.metrics import MeanIoU

# One 3×4 image, 6 label ids; id 0 is don't-care, ids 1, 3, 4 are evaluated (as Cityscapes scores
# 19 of its 34 labelIds), ids 2 and 5 are not.
TARGET = torch.tensor([[[1, 1, 1, 2],
                        [3, 3, 4, 2],
                        [4, 4, 5, 0]]])
PRED = torch.tensor([[[1, 1, 2, 1],
                      [3, 4, 4, 2],
                      [4, 5, 4, 3]]])
# Confusion counted by hand (rows: target, columns: prediction), every pixel:
#   target 1 (3 pixels): two right, one predicted 2        → row 1 = [0, 2, 1, 0, 0, 0]
#   target 2 (2 pixels): one predicted 1, one right        → row 2 = [0, 1, 1, 0, 0, 0]
#   target 3 (2 pixels): one right, one predicted 4        → row 3 = [0, 0, 0, 1, 1, 0]
#   target 4 (3 pixels): two right, one predicted 5        → row 4 = [0, 0, 0, 0, 2, 1]
#   target 5 (1 pixel): predicted 4                        → row 5 = [0, 0, 0, 0, 1, 0]
#   target 0 (1 pixel): predicted 3, don't-care, skipped   → row 0 = 0
HAND = torch.tensor(
    [
        [0, 0, 0, 0, 0, 0],
        [0, 2, 1, 0, 0, 0],
        [0, 1, 1, 0, 0, 0],
        [0, 0, 0, 1, 1, 0],
        [0, 0, 0, 0, 2, 1],
        [0, 0, 0, 0, 1, 0],
    ]
)
EVALUATED = [1, 3, 4]
# IoU over the evaluated classes: TP / (every prediction on the class's pixels + predictions of
# the class on pixels of *evaluated* classes − TP):
#   class 1: TP 2; row 3; column from rows {1,3,4}: 2          → 2 / (3 + 2 − 2) = 2/3
#            (the class-2 pixel predicted 1 is not a false positive: class 2 is not evaluated)
#   class 3: TP 1; row 2; column: 1                            → 1 / (2 + 1 − 1) = 1/2
#            (the don't-care pixel predicted 3 does not count)
#   class 4: TP 2; row 3 (one pixel predicted 5, a miss); column from rows {1,3,4}: 1 + 2 = 3
#            (the class-5 pixel predicted 4 is not a false positive)  → 2 / (3 + 3 − 2) = 1/2
EXPECTED = [2 / 3, 1 / 2, 1 / 2]


def test_evaluated_classes_by_hand() -> None:
    metric = MeanIoU(6, ignore_index=0, classes=EVALUATED)
    metric.update(PRED, TARGET)
    assert torch.equal(metric.confusion, HAND)
    result = metric.compute()
    torch.testing.assert_close(result.iou, torch.tensor(EXPECTED, dtype=torch.float64))
    assert result.miou == pytest.approx(sum(EXPECTED) / 3)


def test_order_of_classes_is_the_order_of_the_result() -> None:
    metric = MeanIoU(6, ignore_index=0, classes=[4, 1, 3])
    metric.update(PRED, TARGET)
    torch.testing.assert_close(metric.compute().iou,
                               torch.tensor([EXPECTED[2], EXPECTED[0], EXPECTED[1]],
                                            dtype=torch.float64))


def test_default_is_every_class_but_dont_care() -> None:
    a = MeanIoU(6, ignore_index=0)
    b = MeanIoU(6, ignore_index=0, classes=[1, 2, 3, 4, 5])
    for m in (a, b):
        m.update(PRED, TARGET)
    ra, rb = a.compute(), b.compute()
    assert math.isnan(ra.iou[0])
    torch.testing.assert_close(ra.iou[1:], rb.iou)
    assert ra.miou == pytest.approx(rb.miou)


def test_absent_evaluated_class_is_left_out() -> None:
    metric = MeanIoU(8, ignore_index=0, classes=[1, 3, 4, 7])  # 7: never present or predicted
    metric.update(PRED, TARGET)
    result = metric.compute()
    assert math.isnan(result.iou[3])
    assert result.miou == pytest.approx(sum(EXPECTED) / 3)


def test_bad_classes_are_named() -> None:
    for bad in ([], [1, 1], [6], [-1], ["a"], "13", [True], [1.5]):
        with pytest.raises(ValueError, match="classes: expected distinct integer class ids"):
            MeanIoU(6, classes=bad)
    with pytest.raises(ValueError, match="ignore_index=0 cannot be evaluated"):
        MeanIoU(6, ignore_index=0, classes=[0, 1])
    assert MeanIoU(6, classes=np.array([1, 2])).classes.tolist() == [1, 2]  # numpy ints are fine


def _reference(pred: np.ndarray, target: np.ndarray, evaluated: list, ignore: int) -> list:
    """Map to 'trainIds' (evaluated classes 0..K-1; target others ignored, predicted others an
    extra column K), then the textbook IoU of a K×(K+1) confusion matrix."""
    k = len(evaluated)
    lut_t = np.full(64, -1)
    lut_p = np.full(64, k)
    for j, c in enumerate(evaluated):
        lut_t[c] = j
        lut_p[c] = j
    t, p = lut_t[target.ravel()], lut_p[pred.ravel()]
    keep = (t >= 0) & (target.ravel() != ignore)
    conf = np.zeros((k, k + 1), dtype=np.int64)
    np.add.at(conf, (t[keep], p[keep]), 1)
    out = []
    for j in range(k):
        tp = conf[j, j]
        union = conf[j].sum() + conf[:, j].sum() - tp
        out.append(tp / union if union else float("nan"))
    return out


@settings(max_examples=30, deadline=None)
@given(st.integers(3, 9), st.data())
def test_matches_the_trainid_mapping_reference(num_classes, data) -> None:
    evaluated = data.draw(st.lists(st.integers(1, num_classes - 1), min_size=1, unique=True))
    seed = data.draw(st.integers(0, 2**31 - 1))
    gen = torch.Generator().manual_seed(seed)
    target = torch.randint(0, num_classes, (2, 5, 7), generator=gen)
    pred = torch.randint(0, num_classes, (2, 5, 7), generator=gen)
    metric = MeanIoU(num_classes, ignore_index=0, classes=evaluated)
    metric.update(pred[:1], target[:1])
    metric.update(pred[1:], target[1:])  # accumulated over batches
    got = metric.compute().iou.numpy()
    np.testing.assert_allclose(got, _reference(pred.numpy(), target.numpy(), evaluated, 0))
