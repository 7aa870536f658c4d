"""The reference path of the ops (``impl='ref'``): pure PyTorch on parsed arguments.

These functions are the specification: differentiable to any order, on every device and dtype.
The public ops (:mod:`ganblocks.ops.upfirdn2d`, :mod:`ganblocks.ops.bias_act`) call them when
the reference path is chosen, and the native paths (``_upfirdn2d_native``, ``_bias_act_native``)
compare their kernels with them in the self-check and fall back to them on a mismatch.
"""

from __future__ import annotations

from typing import Optional

import torch
import torch.nn.functional as F

from ._params import BiasActParams, UpFirDn2dParams

__all__ = ["bias_act_ref", "upfirdn2d_correlate", "upfirdn2d_ref"]


def upfirdn2d_correlate(
    x: torch.Tensor,
    taps: torch.Tensor,
    upx: int,
    upy: int,
    downx: int,
    downy: int,
    padx0: int,
    padx1: int,
    pady0: int,
    pady1: int,
) -> torch.Tensor:
    """Pure-PyTorch upfirdn2d on final taps: ``taps`` (x's dtype) in correlation order with the
    gain applied, 2-D ``[fh, fw]`` or 1-D (the same taps along x, then y). Any order of autograd.

    ``x: [N, C, H, W]`` → ``[N, C, (H*upy + pady0 + pady1 - fh) // downy + 1,
    (W*upx + padx0 + padx1 - fw) // downx + 1]``.

    Example:
        >>> x = torch.arange(3.0).reshape(1, 1, 1, 3)
        >>> upfirdn2d_correlate(x, torch.ones(1, 2), 2, 1, 1, 1, 1, 0, 0, 0)
        tensor([[[[0., 0., 1., 1., 2., 2.]]]])
    """
    n, c, in_h, in_w = x.shape
    fw = int(taps.shape[-1])
    fh = int(taps.shape[0]) if taps.ndim == 2 else fw
    if c == 0:  # a depthwise conv needs at least one group; the result is empty anyway
        out_h = (in_h * upy + pady0 + pady1 - fh) // downy + 1
        out_w = (in_w * upx + padx0 + padx1 - fw) // downx + 1
        return x.new_zeros((n, 0, out_h, out_w)) + x.sum() * 0  # stays in x's graph

    # 1. Up: zero insertion, written as padding a trailing axis of size 1 up to `up`.
    if upx > 1 or upy > 1:
        x = x.reshape(n, c, in_h, 1, in_w, 1)
        x = F.pad(x, [0, upx - 1, 0, 0, 0, upy - 1])
        x = x.reshape(n, c, in_h * upy, in_w * upx)

    # 2. Pad (positive values) and crop (negative values).
    x = F.pad(x, [max(padx0, 0), max(padx1, 0), max(pady0, 0), max(pady1, 0)])
    x = x[
        :,
        :,
        max(-pady0, 0) : x.shape[2] - max(-pady1, 0),
        max(-padx0, 0) : x.shape[3] - max(-padx1, 0),
    ]

    # 3+4. FIR filter as a depthwise conv (conv2d correlates), with the down-sampling as the
    # stride: identical to filtering everywhere and then subsampling.
    if taps.ndim == 2:
        weight = taps[None, None].expand(c, 1, *taps.shape)
        return F.conv2d(x, weight, stride=(downy, downx), groups=c)
    weight = taps[None, None].expand(c, 1, taps.shape[0])
    x = F.conv2d(x, weight.unsqueeze(2), stride=(1, downx), groups=c)
    return F.conv2d(x, weight.unsqueeze(3), stride=(downy, 1), groups=c)


def upfirdn2d_ref(x: torch.Tensor, f: Optional[torch.Tensor], p: UpFirDn2dParams) -> torch.Tensor:
    """Pure-PyTorch reference of :func:`~ganblocks.ops.upfirdn2d` on parsed parameters (any
    order of autograd): ``x: [N, C, H, W]`` → ``[N, C, *p.output_size(H, W, f)]``.

    The gain is applied to the float32 filter before the cast to x's dtype, as in the standard
    ops; a separable filter carries ``sqrt(|gain|)`` per axis and a negative gain negates the
    result (exact, as rounding is symmetric in sign).

    Example:
        >>> p = UpFirDn2dParams.parse(down=2)
        >>> upfirdn2d_ref(torch.arange(4.0).reshape(1, 1, 1, 4), torch.ones(1, 2) / 2, p)
        tensor([[[[0.5000, 2.5000]]]])
    """
    if f is None:
        f = torch.ones([1, 1], dtype=torch.float32, device=x.device)
    negate = f.ndim == 1 and p.gain < 0
    gain = abs(p.gain) if f.ndim == 1 else p.gain
    taps = (f * (gain ** (f.ndim / 2))).to(x.dtype)
    if not p.flip_filter:  # upfirdn2d convolves: flip for the correlation
        taps = taps.flip(list(range(taps.ndim)))
    y = upfirdn2d_correlate(
        x, taps, p.upx, p.upy, p.downx, p.downy, p.padx0, p.padx1, p.pady0, p.pady1
    )
    return y.neg() if negate else y


def bias_act_ref(x: torch.Tensor, b: Optional[torch.Tensor], p: BiasActParams) -> torch.Tensor:
    """Pure-PyTorch reference of :func:`~ganblocks.ops.bias_act` on parsed parameters: ``x`` of
    any shape, ``b: [x.shape[p.dim]]`` or ``None``; returns ``x``'s shape and dtype.

    Example:
        >>> from ganblocks.ops._params import ACTIVATIONS
        >>> p = BiasActParams(ACTIVATIONS["relu"], dim=1, alpha=0.0, gain=2.0, clamp=3.0)
        >>> bias_act_ref(torch.tensor([[-1.0, 1.0]]), torch.tensor([0.0, 1.0]), p)
        tensor([[0., 3.]])
    """
    if b is not None:
        shape = [-1 if i == p.dim else 1 for i in range(x.ndim)]
        x = x + b.to(x.dtype).reshape(shape)
    x = p.spec.func(x, p.alpha)
    if p.gain != 1:
        x = x * p.gain
    if p.clamp is not None:
        x = x.clamp(-p.clamp, p.clamp)
    return x
