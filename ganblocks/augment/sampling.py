r"""Affine resampling of images (bilinear) and label maps (nearest) with one shared transform.

Coordinates are in pixels, centred on the image: the pixel in row :math:`i` and column :math:`j`
of an :math:`H \times W` image sits at

.. math:: u = j - \tfrac{W-1}{2}, \qquad v = i - \tfrac{H-1}{2}

(:math:`x` to the right, :math:`y` down), so rotations do not distort non-square images. A
*sampling matrix* :math:`A` (``[B, 3, 3]``, homogeneous) maps an output position to the input
position it reads from, :math:`(u_\text{in}, v_\text{in}, 1)^\top = A\,(u, v, 1)^\top` (the
convention of :func:`torch.nn.functional.affine_grid`); it is the inverse of the transform applied
to the picture.

Images are sampled bilinearly. Label maps are sampled at the same positions with *nearest*
rounding (``floor(t + 0.5)``), so where the four bilinear neighbours share a class the image colour
and the label agree exactly. Outside the image:

* ``padding='reflect'`` (default) mirrors the image about its border (the edge pixel is repeated,
  like ``grid_sample(padding_mode='reflection', align_corners=False)``);
* ``padding='zeros'`` reads zeros;
* labels read ``label_fill`` (an integer don't-care id, default 0), or, with ``label_fill=None`` and
  reflect padding, the mirrored label, so the mirrored picture stays labelled.

The sampler is built from ``gather`` and arithmetic, never ``grid_sample``: its second derivatives
with respect to the image exist on every device and torch version, which R1 through augmentation
needs. (The positions get gradients through the bilinear weights too, but nothing relies on it.)
"""

from __future__ import annotations

from typing import Optional, Tuple, Union

import torch
from einops import rearrange

from ._checks import (
    check_batch_matrix,
    check_image,
    check_label,
    check_label_fill,
    check_padding,
)

__all__ = ["affine_coords", "bilinear_sample", "nearest_sample", "warp_affine"]


def affine_coords(matrix: torch.Tensor, height: int, width: int) -> torch.Tensor:
    """Input pixel positions read by every output pixel of an ``height × width`` image.

    Args:
        matrix: ``[B, 3, 3]`` sampling matrices (output → input, centred pixel coordinates).
        height: Image height ``H``.
        width: Image width ``W``.

    Returns:
        ``[B, H, W, 2]`` positions ``(x, y)`` in input pixel indices (column, row), in
        ``matrix``'s dtype.

    Example:
        >>> shift = torch.tensor([[[1.0, 0, 2], [0, 1, 0], [0, 0, 1]]])  # read 2 px to the right
        >>> affine_coords(shift, 1, 3)[0, 0]
        tensor([[2., 0.],
                [3., 0.],
                [4., 0.]])
    """
    if not isinstance(matrix, torch.Tensor) or matrix.ndim != 3 or matrix.shape[1:] != (3, 3):
        raise ValueError("matrix: expected a floating-point tensor [B, 3, 3]")
    dtype, device = matrix.dtype, matrix.device
    cx, cy = (width - 1) / 2, (height - 1) / 2
    u = torch.arange(width, dtype=dtype, device=device) - cx
    v = torch.arange(height, dtype=dtype, device=device) - cy
    vv, uu = torch.meshgrid(v, u, indexing="ij")
    ones = torch.ones_like(uu)
    points = torch.stack([uu, vv, ones], dim=-1)  # [H, W, 3]
    mapped = torch.einsum("bij,hwj->bhwi", matrix[:, :2, :], points)  # [B, H, W, 2]
    center = torch.tensor([cx, cy], dtype=dtype, device=device)
    return mapped + center


def _reflect_continuous(t: torch.Tensor, size: int) -> torch.Tensor:
    """Mirror positions about -0.5 and size-0.5 (period 2·size), then clamp to [0, size-1]."""
    period = 2 * size
    s = torch.remainder(t + 0.5, period)
    s = torch.where(s > size, period - s, s) - 0.5
    return s.clamp(0, size - 1)


def _reflect_index(i: torch.Tensor, size: int) -> torch.Tensor:
    """Integer version of :func:`_reflect_continuous` (-1 → 0, -2 → 1, size → size-1, ...)."""
    m = torch.remainder(i, 2 * size)
    return torch.where(m >= size, 2 * size - 1 - m, m)


def _check_coords(coords: object, batch: int) -> torch.Tensor:
    if not isinstance(coords, torch.Tensor) or not coords.is_floating_point():
        raise TypeError("coords: expected a floating-point tensor [B, H_out, W_out, 2]")
    if coords.ndim != 4 or coords.shape[-1] != 2 or coords.shape[0] != batch:
        raise ValueError(
            f"coords: expected shape [{batch}, H_out, W_out, 2], got {tuple(coords.shape)}"
        )
    return coords


def bilinear_sample(
    x: torch.Tensor, coords: torch.Tensor, *, padding: str = "reflect"
) -> torch.Tensor:
    """Bilinear interpolation of ``x`` at pixel positions ``coords``; twice differentiable in ``x``.

    Args:
        x: ``[B, C, H, W]`` images.
        coords: ``[B, H_out, W_out, 2]`` positions ``(x, y)`` in pixel indices of ``x``.
        padding: ``'reflect'`` or ``'zeros'`` (see the module notes).

    Returns:
        ``[B, C, H_out, W_out]`` in ``x``'s dtype.

    Example:
        >>> x = torch.tensor([[[[0.0, 10.0]]]])
        >>> bilinear_sample(x, torch.tensor([[[[0.25, 0.0], [2.0, 0.0]]]]), padding="zeros")
        tensor([[[[2.5000, 0.0000]]]])
    """
    check_image(x)
    check_padding(padding)
    b, c, h, w = x.shape
    coords = _check_coords(coords, b).to(torch.promote_types(x.dtype, torch.float32))
    px, py = coords[..., 0], coords[..., 1]
    if padding == "reflect":
        px, py = _reflect_continuous(px, w), _reflect_continuous(py, h)
    x0, y0 = px.floor(), py.floor()
    fx, fy = px - x0, py - y0
    x0, y0 = x0.long(), y0.long()
    flat = rearrange(x, "b c h w -> b c (h w)")
    out = None
    for dy, wy in ((0, 1 - fy), (1, fy)):
        for dx, wx in ((0, 1 - fx), (1, fx)):
            xi, yi = x0 + dx, y0 + dy
            weight = wx * wy
            if padding == "zeros":
                inside = (xi >= 0) & (xi < w) & (yi >= 0) & (yi < h)
                weight = weight * inside
            # Out-of-range corners (zero weight, or zeros padding) read a clamped, valid index.
            index = yi.clamp(0, h - 1) * w + xi.clamp(0, w - 1)  # [B, Ho, Wo]
            index = rearrange(index, "b ho wo -> b 1 (ho wo)").expand(b, c, -1)
            values = flat.gather(2, index)
            term = values * rearrange(weight, "b ho wo -> b 1 (ho wo)").to(x.dtype)
            out = term if out is None else out + term
    return rearrange(out, "b c (ho wo) -> b c ho wo", ho=coords.shape[1])


def nearest_sample(
    label: torch.Tensor, coords: torch.Tensor, *, label_fill: Optional[int] = 0
) -> torch.Tensor:
    """Nearest-neighbour lookup of an integer map at pixel positions ``coords``.

    Positions round to ``floor(t + 0.5)``. Outside the map the result is ``label_fill``, or with
    ``label_fill=None`` the mirrored map (same mirror as the image's reflect padding).

    Args:
        label: ``[B, H, W]`` integer class map.
        coords: ``[B, H_out, W_out, 2]`` positions ``(x, y)`` in pixel indices of ``label``.
        label_fill: Value read outside the map, or ``None`` to mirror.

    Returns:
        ``[B, H_out, W_out]`` in ``label``'s dtype.

    Example:
        >>> label = torch.tensor([[[3, 4]]])
        >>> nearest_sample(label, torch.tensor([[[[0.4, 0.0], [0.6, 0.0], [2.0, 0.0]]]]))
        tensor([[[3, 4, 0]]])
    """
    if not isinstance(label, torch.Tensor) or label.ndim != 3 or label.is_floating_point():
        raise TypeError("label: expected an integer class map [B, H, W]")
    b, h, w = label.shape
    coords = _check_coords(coords, b)
    xi = (coords[..., 0] + 0.5).floor().long()
    yi = (coords[..., 1] + 0.5).floor().long()
    if label_fill is None:
        xi, yi = _reflect_index(xi, w), _reflect_index(yi, h)
        inside = None
    else:
        inside = (xi >= 0) & (xi < w) & (yi >= 0) & (yi < h)
    index = yi.clamp(0, h - 1) * w + xi.clamp(0, w - 1)
    flat = rearrange(label, "b h w -> b (h w)")
    out = flat.gather(1, rearrange(index, "b ho wo -> b (ho wo)")).view_as(index)
    if inside is not None:
        out = torch.where(inside, out, torch.full_like(out, label_fill))
    return out


def warp_affine(
    x: torch.Tensor,
    matrix: torch.Tensor,
    *,
    label: Optional[torch.Tensor] = None,
    padding: str = "reflect",
    label_fill: Optional[int] = 0,
) -> Union[torch.Tensor, Tuple[torch.Tensor, torch.Tensor]]:
    """Resample images (bilinear) and optionally their label maps (nearest) with one transform.

    Args:
        x: ``[B, C, H, W]`` images.
        matrix: ``[B, 3, 3]`` sampling matrices (output → input, centred pixel coordinates; see the
            module notes). Build them with :mod:`ganblocks.augment.geometric`.
        label: Optional ``[B, H, W]`` integer class maps aligned with ``x``.
        padding: ``'reflect'`` or ``'zeros'`` for the image.
        label_fill: Label outside the image (don't-care id), or ``None`` to mirror the label (needs
            ``padding='reflect'``).

    Returns:
        The warped ``[B, C, H, W]`` images, or ``(images, labels)`` when ``label`` is given.

    Example:
        >>> from ganblocks.augment.geometric import translate2d
        >>> x = torch.arange(4.0).view(1, 1, 1, 4)
        >>> label = torch.tensor([[[1, 2, 3, 4]]])
        >>> warp_affine(x, translate2d(torch.tensor([1.0]), torch.tensor([0.0])), label=label,
        ...             padding="zeros", label_fill=0)
        (tensor([[[[1., 2., 3., 0.]]]]), tensor([[[2, 3, 4, 0]]]))
    """
    check_image(x)
    check_padding(padding)
    label = check_label(label, x)
    label_fill = check_label_fill(label_fill, padding)
    b, _, h, w = x.shape
    check_batch_matrix(matrix, "matrix", b, 3)
    coords = affine_coords(
        matrix.to(device=x.device, dtype=torch.promote_types(x.dtype, torch.float32)), h, w
    )
    out = bilinear_sample(x, coords, padding=padding)
    if label is None:
        return out
    return out, nearest_sample(label, coords, label_fill=label_fill)
