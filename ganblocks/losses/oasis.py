r"""OASIS's (N+1)-class segmentation-discriminator loss with class-balancing weights.

The discriminator outputs ``N + 1`` logits per pixel: channel 0 means "fake", channel ``c + 1``
means "real pixel of class ``c``" (labels are ``0 … N-1``). For a batch of label maps with
:math:`n_c` pixels of class :math:`c` and :math:`K` classes present (a don't-care class, if any, is
not counted), every pixel of class :math:`c` gets the weight

.. math:: w_c = \frac{B H W}{K\, n_c}, \qquad w_{\text{ignore}} = 0,

so every present class carries the same total weight :math:`BHW/K`. The losses are

.. math::

    \mathcal{L}_\text{real} = \frac{1}{BHW} \sum_{b,i,j} w_{y_{bij}}\,
        \operatorname{CE}(D_{bij}, y_{bij} + 1), \qquad
    \mathcal{L}_\text{fake} = \frac{1}{BHW} \sum_{b,i,j} \operatorname{CE}(D_{bij}, 0),

where :math:`\operatorname{CE}(d, t) = -\log \operatorname{softmax}(d)_t`. The mean runs over
*all* pixels (ignored ones included, with weight 0), exactly as OASIS's ``models/losses.py`` does;
since the weights sum to :math:`BHW` whenever a class is present, this is the weighted average over
the labelled pixels. The fake loss is unweighted: a fake is fake everywhere, don't-care pixels
included.
"""

from __future__ import annotations

from typing import Optional

import torch
import torch.nn.functional as F

from ._checks import check_label_map, check_label_range, check_logits

__all__ = ["class_balance_weights", "n_plus_one_loss"]


def _check_ignore_index(ignore_index: Optional[int], num_classes: int) -> None:
    if ignore_index is None:
        return
    if isinstance(ignore_index, bool) or not isinstance(ignore_index, int):
        raise TypeError(f"ignore_index: expected an int or None, got {type(ignore_index).__name__}")
    if not 0 <= ignore_index < num_classes:
        raise ValueError(
            f"ignore_index: expected a class id in [0, {num_classes}) or None, got {ignore_index}"
        )


def class_balance_weights(
    label: torch.Tensor,
    num_classes: int,
    *,
    ignore_index: Optional[int] = None,
    dtype: torch.dtype = torch.float32,
) -> torch.Tensor:
    """Per-pixel class-balancing weights ``w_c = B·H·W / (K·n_c)`` of a batch of label maps.

    ``n_c`` counts the pixels of class ``c`` in the whole batch and ``K`` the classes present;
    pixels of ``ignore_index`` get weight 0 and that class is not counted in ``K``. If no class is
    present (every pixel ignored) all weights are 0.

    Args:
        label: Integer class map ``[B, H, W]`` with values in ``[0, num_classes)``.
        num_classes: Number of label values ``N`` (a don't-care class included).
        ignore_index: Don't-care class id, or ``None``.
        dtype: Floating dtype of the result (computed in float64, then cast).

    Returns:
        ``[B, H, W]`` weights on ``label``'s device.

    Example:
        >>> label = torch.tensor([[[0, 1, 1, 1]]])
        >>> class_balance_weights(label, 2)  # 4 / (2 * 1) and 4 / (2 * 3)
        tensor([[[2.0000, 0.6667, 0.6667, 0.6667]]])
        >>> class_balance_weights(label, 2, ignore_index=0)
        tensor([[[0.0000, 1.3333, 1.3333, 1.3333]]])
    """
    check_label_map(label)
    if isinstance(num_classes, bool) or not isinstance(num_classes, int) or num_classes < 1:
        raise ValueError(f"num_classes: expected a positive int, got {num_classes!r}")
    _check_ignore_index(ignore_index, num_classes)
    check_label_range(label, num_classes)
    return _balance_weights(label, num_classes, ignore_index, dtype)


def _balance_weights(
    label: torch.Tensor, num_classes: int, ignore_index: Optional[int], dtype: torch.dtype
) -> torch.Tensor:
    """:func:`class_balance_weights` without the argument checks."""
    counts = torch.bincount(label.reshape(-1), minlength=num_classes)
    return class_balance_coefficients(counts, ignore_index=ignore_index)[label].to(dtype)


def class_balance_coefficients(
    counts: torch.Tensor, *, ignore_index: Optional[int] = None
) -> torch.Tensor:
    """Per-class weights ``w_c = P / (K·n_c)`` from pixel counts ``n_c`` (``counts: [N]``).

    ``P`` is the total pixel count (ignored pixels included, as in OASIS), ``K`` the number of
    classes present other than ``ignore_index``; absent and ignored classes weigh 0. Counting
    over several batches or processes (sum their counts first) gives the weights of their union.

    Returns:
        float64 ``[N]``.

    Example:
        >>> class_balance_coefficients(torch.tensor([1, 3]))  # 4 / (2 * 1), 4 / (2 * 3)
        tensor([2.0000, 0.6667], dtype=torch.float64)
    """
    counts = counts.to(torch.float64).clone()
    total = counts.sum()
    if ignore_index is not None:
        counts[ignore_index] = 0
    present = counts > 0
    num_present = present.sum().clamp(min=1)
    return torch.where(present, total / (num_present * counts.clamp(min=1)),
                       torch.zeros_like(counts))


def n_plus_one_loss(
    logits: torch.Tensor,
    label: torch.Tensor,
    *,
    real: bool,
    ignore_index: Optional[int] = None,
    class_balance: bool = True,
    class_weights: Optional[torch.Tensor] = None,
) -> torch.Tensor:
    """OASIS's (N+1)-class cross-entropy of a segmentation discriminator.

    ``real=True`` (real images for D; conditional fakes for G) targets channel ``label + 1`` with
    the class-balance weights of :func:`class_balance_weights` and averages over all ``B·H·W``
    pixels. With ``class_balance=False`` it is the plain mean over the non-ignored pixels.
    ``real=False`` (fakes for D) targets channel 0 at every pixel, unweighted, mean over all pixels;
    ``ignore_index`` and ``class_balance`` play no role there.

    Args:
        logits: ``[B, N+1, H, W]`` discriminator logits (channel 0 = fake).
        label: Integer class map ``[B, H, W]`` with values in ``[0, N)``.
        real: Whether the pixels should be classified as real (their class) or as fake.
        ignore_index: Don't-care class id (weight 0 for ``real=True``), or ``None``.
        class_balance: Weight real pixels by :func:`class_balance_weights`.
        class_weights: Optional per-class weights ``[N]`` used instead of this batch's
            class-balance weights (e.g. weights counted over the global batch of all processes
            of a distributed run); pixel weight = ``class_weights[label]``.

    Returns:
        Scalar tensor.

    Example:
        >>> logits = torch.zeros(1, 3, 2, 2)  # uniform over 3 channels
        >>> label = torch.tensor([[[0, 1], [1, 1]]])
        >>> n_plus_one_loss(logits, label, real=True)  # log 3, whatever the weights
        tensor(1.0986)
        >>> n_plus_one_loss(logits, label, real=False)
        tensor(1.0986)
    """
    check_logits(logits, "logits")
    check_label_map(label)
    if not isinstance(real, bool):
        raise TypeError(f"real: expected a bool, got {type(real).__name__}")
    if logits.ndim != 4 or logits.shape[1] < 2:
        raise ValueError(
            f"logits: expected [B, N+1, H, W] with N >= 1, got shape {tuple(logits.shape)}"
        )
    b, n1, h, w = logits.shape
    if tuple(label.shape) != (b, h, w):
        raise ValueError(
            f"label: expected shape {(b, h, w)} to match logits {tuple(logits.shape)}, "
            f"got {tuple(label.shape)}"
        )
    num_classes = n1 - 1
    _check_ignore_index(ignore_index, num_classes)
    log_p = F.log_softmax(logits, dim=1)
    if not real:
        return -log_p[:, 0].mean()
    check_label_range(label, num_classes)
    ce = -log_p.gather(1, (label + 1).unsqueeze(1)).squeeze(1)  # [B, H, W]
    if class_weights is not None:
        if class_weights.ndim != 1 or class_weights.shape[0] != num_classes:
            raise ValueError(
                f"class_weights: expected a vector of {num_classes} weights, got shape "
                f"{tuple(class_weights.shape)}"
            )
        return (ce * class_weights.to(ce.dtype)[label]).mean()
    if class_balance:
        weights = _balance_weights(label, num_classes, ignore_index, logits.dtype)
        return (ce * weights).mean()
    if ignore_index is None:
        return ce.mean()
    valid = (label != ignore_index).to(logits.dtype)
    return (ce * valid).sum() / valid.sum().clamp(min=1)
