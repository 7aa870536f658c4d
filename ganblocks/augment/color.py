r"""Colour transforms as batched ``[B, 4, 4]`` matrices on homogeneous RGB ``(r, g, b, 1)``.

With the luma axis :math:`v = (1, 1, 1)/\sqrt{3}` (images centred on 0, e.g. in ``[-1, 1]``):

* brightness :math:`b`: add :math:`b` to every channel;
* contrast :math:`c`: multiply by :math:`c` (about 0);
* luma flip :math:`i \in \{0, 1\}`: :math:`I - 2 i\, v v^\top` (mirror along the luma axis);
* hue rotation :math:`\theta`: rotate by :math:`\theta` about the luma axis (Rodrigues);
* saturation :math:`s`: :math:`v v^\top + s\,(I - v v^\top)` (``s = 0`` gives grey).

Colour transforms never touch label maps. Compose matrices by multiplying them (the right-most
acts first) and apply the product once with :func:`apply_color_matrix`.
"""

from __future__ import annotations

import math
from typing import Union

import torch

from ._checks import check_batch_matrix, check_image

__all__ = [
    "apply_color_matrix",
    "brightness_matrix",
    "contrast_matrix",
    "hue_rotation_matrix",
    "luma_flip_matrix",
    "saturation_matrix",
]

Param = Union[torch.Tensor, float]


def _vec(p: Param) -> torch.Tensor:
    t = torch.as_tensor(p)
    if t.ndim > 1:
        raise ValueError(
            f"parameter: expected a scalar or a [B] tensor, got shape {tuple(t.shape)}"
        )
    if not t.is_floating_point():
        t = t.to(torch.get_default_dtype())
    return t.reshape(-1)


def _luma_outer(like: torch.Tensor) -> torch.Tensor:
    """``v vᵀ`` embedded in a 4×4 matrix (zeros in the homogeneous row/column)."""
    out = torch.zeros(4, 4, dtype=like.dtype, device=like.device)
    out[:3, :3] = 1.0 / 3.0
    return out


def _eye4(like: torch.Tensor) -> torch.Tensor:
    return torch.eye(4, dtype=like.dtype, device=like.device)


def _rgb_eye(like: torch.Tensor) -> torch.Tensor:
    """The 3×3 identity embedded in a 4×4 matrix (zero homogeneous entry)."""
    out = _eye4(like)
    out[3, 3] = 0.0
    return out


def _homogeneous_one(like: torch.Tensor) -> torch.Tensor:
    """A 4×4 matrix whose only non-zero entry is a 1 at [3, 3]."""
    return _eye4(like) - _rgb_eye(like)


def brightness_matrix(b: Param) -> torch.Tensor:
    """Add ``b`` to every channel. ``b``: ``[B]`` or scalar → ``[B, 4, 4]``.

    Example:
        >>> brightness_matrix(torch.tensor([0.5]))[0, :, 3]
        tensor([0.5000, 0.5000, 0.5000, 1.0000])
    """
    b = _vec(b)
    offset = torch.zeros(4, 4, dtype=b.dtype, device=b.device)
    offset[:3, 3] = 1.0
    return _eye4(b) + b.view(-1, 1, 1) * offset


def contrast_matrix(c: Param) -> torch.Tensor:
    """Multiply every channel by ``c``. ``c``: ``[B]`` or scalar → ``[B, 4, 4]``.

    Example:
        >>> contrast_matrix(torch.tensor([2.0]))[0].diagonal()
        tensor([2., 2., 2., 1.])
    """
    c = _vec(c)
    scale = torch.ones(c.shape[0], 4, dtype=c.dtype, device=c.device)
    scale[:, :3] = c.view(-1, 1)
    return torch.diag_embed(scale)


def luma_flip_matrix(i: Param) -> torch.Tensor:
    """``I − 2 i v vᵀ``: for ``i = 1`` mirror colours along the luma axis (Householder reflection).

    Example:
        >>> m = luma_flip_matrix(torch.tensor([1.0]))[0, :3, :3]
        >>> torch.allclose(m @ m, torch.eye(3), atol=1e-6)
        True
    """
    i = _vec(i)
    return _eye4(i) - 2 * i.view(-1, 1, 1) * _luma_outer(i)


def hue_rotation_matrix(theta: Param) -> torch.Tensor:
    """Rotation of the colour cube by ``theta`` radians about the luma axis.

    Example:
        >>> m = hue_rotation_matrix(torch.tensor([2 * math.pi / 3]))[0, :3, :3]
        >>> m.round(decimals=6).abs()  # a third of a turn permutes r, g, b
        tensor([[0., 0., 1.],
                [1., 0., 0.],
                [0., 1., 0.]])
    """
    theta = _vec(theta)
    b = theta.shape[0]
    vvt = _luma_outer(theta)
    k = torch.zeros(4, 4, dtype=theta.dtype, device=theta.device)  # cross-product matrix of v
    r = 1.0 / math.sqrt(3.0)
    k[0, 1], k[0, 2], k[1, 0], k[1, 2], k[2, 0], k[2, 1] = -r, r, r, -r, -r, r
    cos, sin = theta.cos().view(b, 1, 1), theta.sin().view(b, 1, 1)
    return vvt + cos * (_rgb_eye(theta) - vvt) + sin * k + _homogeneous_one(theta)


def saturation_matrix(s: Param) -> torch.Tensor:
    """``v vᵀ + s (I − v vᵀ)``: scale the chroma by ``s`` keeping the luma.

    Example:
        >>> grey = saturation_matrix(torch.tensor([0.0]))[0]
        >>> grey @ torch.tensor([1.0, 0.0, 0.0, 1.0])
        tensor([0.3333, 0.3333, 0.3333, 1.0000])
    """
    s = _vec(s)
    vvt = _luma_outer(s)
    return vvt + s.view(-1, 1, 1) * (_rgb_eye(s) - vvt) + _homogeneous_one(s)


def apply_color_matrix(x: torch.Tensor, matrix: torch.Tensor) -> torch.Tensor:
    """Apply ``[B, 4, 4]`` colour matrices to RGB (or greyscale) images.

    For ``C = 3`` every pixel's ``(r, g, b, 1)`` is multiplied by the matrix. For ``C = 1`` the grey
    value ``g`` is read as ``(g, g, g)`` and the result averaged back to one channel.

    Args:
        x: ``[B, C, H, W]`` images with ``C`` in ``{1, 3}``.
        matrix: ``[B, 4, 4]`` colour matrices.

    Returns:
        ``[B, C, H, W]``.

    Example:
        >>> x = torch.zeros(1, 3, 1, 1)
        >>> apply_color_matrix(x, brightness_matrix(torch.tensor([0.25]))).flatten()
        tensor([0.2500, 0.2500, 0.2500])
    """
    check_image(x)
    b, c, _, _ = x.shape
    check_batch_matrix(matrix, "matrix", b, 4)
    m = matrix.to(device=x.device, dtype=x.dtype)
    if c == 3:
        return torch.einsum("bij,bjhw->bihw", m[:, :3, :3], x) + m[:, :3, 3].view(b, 3, 1, 1)
    if c == 1:
        gain = m[:, :3, :3].sum(dim=2).mean(dim=1).view(b, 1, 1, 1)
        offset = m[:, :3, 3].mean(dim=1).view(b, 1, 1, 1)
        return x * gain + offset
    raise ValueError(f"x: colour transforms need 1 or 3 channels, got shape {tuple(x.shape)}")
