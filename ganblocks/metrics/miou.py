r"""Mean intersection over union from a dataset-level confusion matrix.

The confusion matrix ``M[t, p]`` counts the pixels of true class ``t`` predicted as ``p`` over the
whole data set (int64, never per image), and per class

.. math:: \mathrm{IoU}_c = \frac{M_{cc}}{\sum_p M_{cp} + \sum_t M_{tc} - M_{cc}}
    = \frac{TP}{TP + FP + FN}.

Convention for the mean: a class that occurs neither in the targets nor in the predictions (its
union is empty) has no IoU (``NaN``) and is left out of the mean; a class that is predicted but
never occurs in the targets has IoU 0 and counts. The ``ignore_index`` class, when it is one of
the ``num_classes`` (e.g. a "don't care" label 0), is always left out; its target pixels are
skipped, while predicting it elsewhere is still a miss for the true class.

**Evaluated classes.** ``classes=[c_1, …, c_K]`` scores only those classes, the protocol of
benchmarks whose label maps hold more ids than they evaluate (Cityscapes: 34 ``labelIds``, 19
scored as ``trainIds``). With ``E`` the evaluated set, per class ``c`` of ``E``

.. math:: \mathrm{IoU}_c = \frac{M_{cc}}{\sum_{p} M_{cp} + \sum_{t \in E} M_{tc} - M_{cc}},

so target pixels of a class outside ``E`` are skipped (they are never anyone's false positive),
while predicting a class outside ``E`` on a pixel of an evaluated class is a miss (a false
negative) of that class. This is what cityscapesScripts computes from ``labelIds`` predictions.
Without ``classes`` the evaluated set is every class except ``ignore_index``.
"""

from __future__ import annotations

import operator
from typing import List, NamedTuple, Optional, Sequence, Union

import torch

from ._distributed import all_reduce_sum

__all__ = ["MeanIoU", "MeanIoUResult", "confusion_matrix"]


class MeanIoUResult(NamedTuple):
    """``miou``: mean over the counted classes; ``iou: [C]`` float64 (``NaN``: not counted).

    With evaluated ``classes``, ``iou`` is ``[K]``, in the order of ``classes``.
    """

    miou: float
    iou: torch.Tensor


def _check_int_labels(x: object, name: str) -> torch.Tensor:
    if not isinstance(x, torch.Tensor):
        raise TypeError(f"{name}: expected a torch.Tensor, got {type(x).__name__}")
    if x.is_floating_point() or x.is_complex() or x.dtype == torch.bool:
        raise TypeError(f"{name}: expected integer class indices, got dtype {x.dtype}")
    return x


def _class_ids(classes: Sequence[int], num_classes: int) -> List[int]:
    """``classes`` as a list of distinct ints in ``[0, num_classes)``, or a ValueError."""
    ids: List[int] = []
    try:
        if isinstance(classes, (str, bytes)):
            raise TypeError
        for c in classes:
            if isinstance(c, bool):
                raise TypeError
            ids.append(operator.index(c))
    except TypeError:
        ids = []
    if not ids or len(set(ids)) != len(ids) or not all(0 <= c < num_classes for c in ids):
        raise ValueError(f"classes: expected distinct integer class ids in [0, {num_classes}), "
                         f"got {classes!r}")
    return ids


def confusion_matrix(
    pred: torch.Tensor,
    target: torch.Tensor,
    num_classes: int,
    *,
    ignore_index: Optional[int] = None,
) -> torch.Tensor:
    """Confusion matrix ``[C, C]`` (int64; rows: target class, columns: predicted class).

    Args:
        pred: Predicted class indices, any shape (e.g. ``[N, H, W]``), values in ``[0, C)``.
        target: True class indices, same shape; values in ``[0, C)`` or ``ignore_index``.
        num_classes: ``C``.
        ignore_index: Target value whose pixels are skipped (may lie inside or outside ``[0, C)``).

    Example:
        >>> confusion_matrix(torch.tensor([0, 1, 1, 2]), torch.tensor([0, 1, 2, 2]), 3)
        tensor([[1, 0, 0],
                [0, 1, 0],
                [0, 1, 1]])
    """
    pred = _check_int_labels(pred, "pred")
    target = _check_int_labels(target, "target")
    if pred.shape != target.shape:
        raise ValueError(
            f"pred: expected the shape of target {tuple(target.shape)}, got {tuple(pred.shape)}"
        )
    pred, target = pred.reshape(-1).long(), target.reshape(-1).long()
    if ignore_index is not None:
        keep = target != ignore_index
        pred, target = pred[keep], target[keep]
    for name, labels in (("target", target), ("pred", pred)):
        if labels.numel() and (int(labels.min()) < 0 or int(labels.max()) >= num_classes):
            allowed = f"[0, {num_classes - 1}]"
            if name == "target" and ignore_index is not None:
                allowed += f" or ignore_index={ignore_index}"
            raise ValueError(
                f"{name}: class indices must be in {allowed}, got values in "
                f"[{int(labels.min())}, {int(labels.max())}]"
            )
    counts = torch.bincount(target * num_classes + pred, minlength=num_classes * num_classes)
    return counts.view(num_classes, num_classes)


class MeanIoU:
    """Dataset-level mean IoU of semantic segmentations, mergeable across ranks.

    :meth:`update` adds a batch to an int64 confusion matrix; :meth:`compute` sums the matrix over
    ``torch.distributed`` ranks (a collective; a copy, so it can be called repeatedly) and derives
    per-class IoU and their mean (see the module docstring for which classes count).

    Args:
        num_classes: ``C``, the number of classes the predictions range over.
        ignore_index: Target label whose pixels are skipped; when inside ``[0, C)`` that class is
            also excluded from the mean.
        classes: Evaluated classes (distinct ids in ``[0, C)``, not ``ignore_index``): only their
            IoU is computed and averaged (see the module docstring). Default: every class but
            ``ignore_index``.
        device: Device of the confusion matrix (default: that of the first batch).

    Example:
        >>> metric = MeanIoU(3, ignore_index=255)
        >>> target = torch.tensor([[0, 0, 1, 255]])
        >>> metric.update(torch.tensor([[0, 1, 1, 2]]), target)  # the 255 pixel is skipped
        >>> result = metric.compute()
        >>> result.iou  # class 0: 1/2, class 1: 1/2, class 2: neither predicted nor present
        tensor([0.5000, 0.5000,    nan], dtype=torch.float64)
        >>> result.miou
        0.5

        Only classes 1 and 2 evaluated: the class-0 pixel is skipped, and predicting 0 on a
        class-1 pixel is a miss of class 1 but no false positive of anything:

        >>> metric = MeanIoU(3, classes=[1, 2])
        >>> metric.update(torch.tensor([[0, 1, 0, 2]]), torch.tensor([[0, 1, 1, 2]]))
        >>> metric.compute().iou  # class 1: 1 / (2 + 1 - 1); class 2: 1 / 1
        tensor([0.5000, 1.0000], dtype=torch.float64)
    """

    def __init__(
        self,
        num_classes: int,
        *,
        ignore_index: Optional[int] = None,
        classes: Optional[Sequence[int]] = None,
        device: Optional[Union[str, torch.device]] = None,
    ) -> None:
        if isinstance(num_classes, bool) or not isinstance(num_classes, int) or num_classes < 1:
            raise ValueError(f"num_classes: expected a positive integer, got {num_classes!r}")
        if ignore_index is not None and (
            isinstance(ignore_index, bool) or not isinstance(ignore_index, int)
        ):
            raise TypeError(f"ignore_index: expected None or an integer, got {ignore_index!r}")
        self.num_classes = num_classes
        self.ignore_index = ignore_index
        self.classes: Optional[torch.Tensor] = None
        if classes is not None:
            ids = _class_ids(classes, num_classes)
            if ignore_index is not None and ignore_index in ids:
                raise ValueError(f"classes: ignore_index={ignore_index} cannot be evaluated")
            self.classes = torch.tensor(ids, dtype=torch.long)
        self._device = torch.device(device) if device is not None else None
        self.confusion: Optional[torch.Tensor] = None

    def update(self, pred_or_logits: torch.Tensor, target: torch.Tensor) -> None:
        """Add a batch.

        Args:
            pred_or_logits: Integer predictions ``[N, H, W]`` or floating-point class scores
                ``[N, C, H, W]`` (argmax over dim 1).
            target: Integer labels ``[N, H, W]``.
        """
        if not isinstance(pred_or_logits, torch.Tensor):
            raise TypeError(
                f"pred_or_logits: expected a torch.Tensor, got {type(pred_or_logits).__name__}"
            )
        target = _check_int_labels(target, "target")
        if pred_or_logits.is_floating_point():
            scores = pred_or_logits
            if scores.ndim != target.ndim + 1 or scores.shape[1] != self.num_classes:
                raise ValueError(
                    f"pred_or_logits: floating-point scores must be [N, {self.num_classes}, ...] "
                    f"for target {tuple(target.shape)}, got {tuple(pred_or_logits.shape)}"
                )
            pred = pred_or_logits.argmax(dim=1)
        else:
            pred = pred_or_logits
        counts = confusion_matrix(
            pred, target.to(pred.device), self.num_classes, ignore_index=self.ignore_index
        )
        if self.confusion is None:
            device = self._device or counts.device
            self.confusion = torch.zeros_like(counts, device=device)
        self.confusion += counts.to(self.confusion.device)

    def compute(self) -> MeanIoUResult:
        """Per-class IoU and their mean over all batches of all ranks."""
        local = self.confusion
        if local is None:
            local = torch.zeros(
                self.num_classes, self.num_classes, dtype=torch.int64, device=self._device
            )
        conf = all_reduce_sum(local).to(torch.float64)
        if self.classes is not None:
            ids = self.classes.to(conf.device)
            rows = conf[ids]  # targets of the evaluated classes, every prediction
            tp = rows[:, ids].diagonal()
            union = rows.sum(dim=1) + rows[:, ids].sum(dim=0) - tp
        else:
            tp = conf.diagonal()
            union = conf.sum(dim=0) + conf.sum(dim=1) - tp
        iou = torch.where(union > 0, tp / union.clamp_min(1.0), torch.full_like(tp, float("nan")))
        if (self.classes is None and self.ignore_index is not None
                and 0 <= self.ignore_index < self.num_classes):
            iou[self.ignore_index] = float("nan")
        counted = iou[~iou.isnan()]
        if counted.numel() == 0:
            raise ValueError("compute: no labelled pixels were added; there is no IoU to average")
        return MeanIoUResult(float(counted.mean()), iou.cpu())

    def reset(self) -> None:
        """Clear the confusion matrix."""
        self.confusion = None
