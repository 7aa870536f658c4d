r"""Cutout: erase an axis-aligned rectangle of every image (and mark it don't-care in the label).

Pixel :math:`(i, j)` of an :math:`H \times W` image is erased (set to 0) when

.. math:: \Bigl|\tfrac{j + 0.5}{W} - c_x\Bigr| < \tfrac{s_x}{2} \quad\text{and}\quad
          \Bigl|\tfrac{i + 0.5}{H} - c_y\Bigr| < \tfrac{s_y}{2},

with the centre :math:`c` and size :math:`s` given as fractions of the image size (``s = 0`` erases
nothing). The erased pixels of a label map become ``label_fill`` (the erased content carries no
class), or stay as they are with ``label_fill=None``.
"""

from __future__ import annotations

from typing import Optional, Tuple, Union

import torch

from ._checks import check_image, check_label

__all__ = ["cutout"]


def _pairs(value: Union[torch.Tensor, float], name: str, batch: int, like: torch.Tensor):
    t = torch.as_tensor(
        value, dtype=torch.promote_types(like.dtype, torch.float32), device=like.device
    )
    if t.ndim == 0:
        t = t.expand(batch, 2)
    elif t.ndim == 1 and t.shape[0] == batch:
        t = t.view(batch, 1).expand(batch, 2)
    elif tuple(t.shape) != (batch, 2):
        raise ValueError(
            f"{name}: expected a number, [B] or [B, 2] (x, y), got shape {tuple(t.shape)}"
        )
    return t


def cutout(
    x: torch.Tensor,
    center: torch.Tensor,
    size: Union[torch.Tensor, float],
    *,
    label: Optional[torch.Tensor] = None,
    label_fill: Optional[int] = 0,
) -> Union[torch.Tensor, Tuple[torch.Tensor, torch.Tensor]]:
    """Zero a rectangle per image; optionally set the same rectangle of the label to ``label_fill``.

    Args:
        x: ``[B, C, H, W]`` images.
        center: ``[B, 2]`` rectangle centres ``(c_x, c_y)`` as fractions of ``(W, H)``.
        size: Rectangle size ``(s_x, s_y)`` as fractions of ``(W, H)``: a number, ``[B]`` (square
            in relative units) or ``[B, 2]``.
        label: Optional ``[B, H, W]`` integer class maps.
        label_fill: Label of erased pixels, or ``None`` to leave the label alone.

    Returns:
        ``[B, C, H, W]`` images, or ``(images, labels)`` when ``label`` is given.

    Example:
        >>> x = torch.ones(1, 1, 1, 4)
        >>> cutout(x, torch.tensor([[0.25, 0.5]]), 0.5)
        tensor([[[[0., 0., 1., 1.]]]])
    """
    check_image(x)
    label = check_label(label, x)
    if label_fill is not None and (isinstance(label_fill, bool) or not isinstance(label_fill, int)):
        raise TypeError(f"label_fill: expected an int or None, got {type(label_fill).__name__}")
    b, _, h, w = x.shape
    center = _pairs(center, "center", b, x)
    size = _pairs(size, "size", b, x)
    gx = (torch.arange(w, device=x.device, dtype=center.dtype) + 0.5) / w  # [W]
    gy = (torch.arange(h, device=x.device, dtype=center.dtype) + 0.5) / h  # [H]
    inside_x = (gx.view(1, w) - center[:, 0:1]).abs() < size[:, 0:1] / 2  # [B, W]
    inside_y = (gy.view(1, h) - center[:, 1:2]).abs() < size[:, 1:2] / 2  # [B, H]
    erased = inside_y.unsqueeze(2) & inside_x.unsqueeze(1)  # [B, H, W]
    out = x * (~erased).unsqueeze(1).to(x.dtype)
    if label is None:
        return out
    if label_fill is not None:
        label = torch.where(erased, torch.full_like(label, label_fill), label)
    return out, label
