r"""Batched 2-D homogeneous matrices (``[B, 3, 3]``) for geometric augmentation.

Each builder takes per-sample parameters (tensors of shape ``[B]``, or numbers) and returns the
matrices :math:`M` that map a point :math:`p` (centred pixel coordinates, see
:mod:`ganblocks.augment.sampling`) to :math:`M p`. Used as a *sampling* matrix in
:func:`~ganblocks.augment.sampling.warp_affine`, :math:`M` moves the picture by :math:`M^{-1}`;
every distribution in :class:`~ganblocks.augment.AdaptiveAugment` is symmetric, so it draws the
sampling matrices directly.

* :func:`translate2d`: :math:`\begin{psmallmatrix}1&0&t_x\\0&1&t_y\\0&0&1\end{psmallmatrix}`,
* :func:`scale2d`: :math:`\operatorname{diag}(s_x, s_y, 1)`,
* :func:`rotate2d`:
  :math:`\begin{psmallmatrix}\cos\theta&-\sin\theta&0\\\sin\theta&\cos\theta&0\\0&0&1\end{psmallmatrix}`
  (with :math:`y` pointing down, :math:`\theta > 0` turns points clockwise on screen; as a
  sampling matrix it turns the picture counter-clockwise, like ``torch.rot90(k=1)`` at 90°),
* :func:`rotate90`: :func:`rotate2d` at :math:`k\pi/2` with exact entries (no rounding error, so
  integer pixel grids map onto integer grids).
"""

from __future__ import annotations

from typing import Optional, Union

import torch

__all__ = ["identity2d", "rotate2d", "rotate90", "scale2d", "translate2d"]

Param = Union[torch.Tensor, float]


def _params(*values: Param, dtype: Optional[torch.dtype] = None) -> list:
    """Broadcast scalar/``[B]`` parameters to a common ``[B]`` floating tensor shape."""
    tensors = [torch.as_tensor(v) for v in values]
    ref = next((t for t in tensors if t.ndim > 0), tensors[0])
    if dtype is None:
        dtype = ref.dtype if ref.is_floating_point() else torch.get_default_dtype()
    out = []
    for t in tensors:
        if t.ndim > 1:
            raise ValueError(
                f"parameters: expected scalars or [B] tensors, got shape {tuple(t.shape)}"
            )
        out.append(t.to(device=ref.device, dtype=dtype))
    return list(torch.broadcast_tensors(*[o.reshape(-1) for o in out]))


def _assemble(a, b, c, d, e, f) -> torch.Tensor:
    """Stack ``[[a, b, c], [d, e, f], [0, 0, 1]]`` from ``[B]`` tensors into ``[B, 3, 3]``."""
    zero, one = torch.zeros_like(a), torch.ones_like(a)
    rows = [torch.stack(r, dim=-1) for r in ((a, b, c), (d, e, f), (zero, zero, one))]
    return torch.stack(rows, dim=-2)


def identity2d(batch: int, *, dtype: torch.dtype = torch.float32, device=None) -> torch.Tensor:
    """``[batch, 3, 3]`` identity matrices.

    Example:
        >>> identity2d(2).shape
        torch.Size([2, 3, 3])
    """
    return torch.eye(3, dtype=dtype, device=device).expand(batch, 3, 3).clone()


def translate2d(tx: Param, ty: Param) -> torch.Tensor:
    """Translation by ``(tx, ty)`` pixels.

    Args:
        tx: ``[B]`` (or scalar) shift along x.
        ty: ``[B]`` (or scalar) shift along y.

    Returns:
        ``[B, 3, 3]``.

    Example:
        >>> translate2d(torch.tensor([2.0]), 3.0)[0]
        tensor([[1., 0., 2.],
                [0., 1., 3.],
                [0., 0., 1.]])
    """
    tx, ty = _params(tx, ty)
    zero, one = torch.zeros_like(tx), torch.ones_like(tx)
    return _assemble(one, zero, tx, zero, one, ty)


def scale2d(sx: Param, sy: Param) -> torch.Tensor:
    """Scaling by ``(sx, sy)`` about the image centre.

    Args:
        sx: ``[B]`` (or scalar) factor along x.
        sy: ``[B]`` (or scalar) factor along y.

    Returns:
        ``[B, 3, 3]``.

    Example:
        >>> scale2d(torch.tensor([2.0]), 0.5)[0, :2, :2]
        tensor([[2.0000, 0.0000],
                [0.0000, 0.5000]])
    """
    sx, sy = _params(sx, sy)
    zero = torch.zeros_like(sx)
    return _assemble(sx, zero, zero, zero, sy, zero)


def rotate2d(theta: Param) -> torch.Tensor:
    """Rotation by ``theta`` radians about the image centre.

    Args:
        theta: ``[B]`` (or scalar) angles.

    Returns:
        ``[B, 3, 3]``.

    Example:
        >>> rotate2d(torch.tensor([0.0]))[0]
        tensor([[1., -0., 0.],
                [0., 1., 0.],
                [0., 0., 1.]])
    """
    (theta,) = _params(theta)
    c, s, zero = theta.cos(), theta.sin(), torch.zeros_like(theta)
    return _assemble(c, -s, zero, s, c, zero)


def rotate90(k: Param, *, dtype: torch.dtype = torch.float32) -> torch.Tensor:
    """Rotation by ``k · 90°`` with exact entries (``k`` integer valued, any sign).

    Args:
        k: ``[B]`` (or scalar) number of quarter turns.
        dtype: Floating dtype of the result.

    Returns:
        ``[B, 3, 3]``.

    Example:
        >>> rotate90(torch.tensor([1]))[0, :2, :2]
        tensor([[ 0., -1.],
                [ 1.,  0.]])
    """
    (k,) = _params(k, dtype=torch.float64)
    quarter = torch.remainder(k.round(), 4).long()
    cos_table = torch.tensor([1.0, 0.0, -1.0, 0.0], dtype=dtype, device=k.device)
    sin_table = torch.tensor([0.0, 1.0, 0.0, -1.0], dtype=dtype, device=k.device)
    c, s = cos_table[quarter], sin_table[quarter]
    zero = torch.zeros_like(c)
    return _assemble(c, -s, zero, s, c, zero)
