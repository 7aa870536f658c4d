"""2-D convolution fused with FIR up/down-sampling.

``conv2d_resample(x, w, f, up=u, down=d, padding=p)`` equals, up to rounding,

1. ``upfirdn2d(x, f, up=u, padding=p + centring, gain=u**2)`` (skipped when ``u == 1``),
2. a plain correlation with ``w`` (``groups`` supported),
3. ``upfirdn2d(·, f, down=d)`` (skipped when ``d == 1``),

so it is the standard resampling convolution of StyleGAN2/3 generators and discriminators. It is
computed along cheaper but equivalent routes: upsampling through a transposed convolution of stride
``u`` followed by the FIR filter (no multiplications with the inserted zeros), downsampling through
the FIR filter followed by a strided convolution, and 1x1 kernels resampled on the narrower side.
"""

from __future__ import annotations

from typing import Optional

import torch
import torch.nn.functional as F

from ._params import Padding, check_filter, check_tensor, filter_size, parse_padding
from .upfirdn2d import upfirdn2d

__all__ = ["conv2d_resample"]


def _factor(value: object, name: str) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise ValueError(f"{name}: expected an integer >= 1, got {value!r}")
    return value


def _conv(
    x: torch.Tensor,
    w: torch.Tensor,
    *,
    stride: int = 1,
    padding: tuple = (0, 0),
    groups: int = 1,
    transpose: bool = False,
    flip_weight: bool = True,
) -> torch.Tensor:
    """Plain (transposed) conv; ``flip_weight=True`` means correlation, as ``F.conv2d``."""
    if not flip_weight and (w.shape[2] > 1 or w.shape[3] > 1):
        w = w.flip([2, 3])
    w = w.to(x.dtype)
    if transpose:
        return F.conv_transpose2d(x, w, stride=stride, padding=padding, groups=groups)
    return F.conv2d(x, w, stride=stride, padding=padding, groups=groups)


def _transpose_weight(w: torch.Tensor, groups: int) -> torch.Tensor:
    """``[O, I/g, kh, kw]`` conv weight -> ``[I, O/g, kh, kw]`` layout of ``conv_transpose2d``."""
    out_ch, in_per_group, kh, kw = w.shape
    w = w.reshape(groups, out_ch // groups, in_per_group, kh, kw).transpose(1, 2)
    return w.reshape(groups * in_per_group, out_ch // groups, kh, kw)


def _check_args(
    x: torch.Tensor, w: torch.Tensor, f: Optional[torch.Tensor], up: int, down: int, groups: int
) -> tuple:
    """Validate the arguments of :func:`conv2d_resample`; return ``(up, down)``."""
    check_tensor(x, "x", ndim=4)
    check_tensor(w, "w", ndim=4)
    check_filter(f)
    up, down = _factor(up, "up"), _factor(down, "down")
    if isinstance(groups, bool) or not isinstance(groups, int) or groups < 1:
        raise ValueError(f"groups: expected an integer >= 1, got {groups!r}")
    out_ch, in_per_group = w.shape[0], w.shape[1]
    if x.shape[1] != in_per_group * groups or out_ch % groups != 0:
        raise ValueError(
            f"w: shape {tuple(w.shape)} does not fit x with {x.shape[1]} channels and "
            f"groups={groups} (expected [C_out, {x.shape[1] // groups}, kh, kw] with C_out a "
            "multiple of groups)"
        )
    return up, down


def _centred_padding(
    padding: Padding, f: Optional[torch.Tensor], up: int, down: int
) -> tuple:
    """``padding`` as ``(x0, x1, y0, y1)`` plus what centres the FIR filter on the resampled grid
    (as upsample2d/downsample2d do)."""
    fw, fh = filter_size(f)
    px0, px1, py0, py1 = parse_padding(padding)
    if up > 1:
        px0, px1 = px0 + (fw + up - 1) // 2, px1 + (fw - up) // 2
        py0, py1 = py0 + (fh + up - 1) // 2, py1 + (fh - up) // 2
    if down > 1:
        px0, px1 = px0 + (fw - down + 1) // 2, px1 + (fw - down) // 2
        py0, py1 = py0 + (fh - down + 1) // 2, py1 + (fh - down) // 2
    return px0, px1, py0, py1


def conv2d_resample(
    x: torch.Tensor,
    w: torch.Tensor,
    f: Optional[torch.Tensor] = None,
    *,
    up: int = 1,
    down: int = 1,
    padding: Padding = 0,
    groups: int = 1,
    flip_weight: bool = True,
    flip_filter: bool = False,
    impl: Optional[str] = None,
) -> torch.Tensor:
    """Convolve ``x`` with ``w``, optionally upsampling before and/or downsampling after.

    Args:
        x: Input ``[N, C_in, H, W]``.
        w: Weight ``[C_out, C_in / groups, kh, kw]``.
        f: FIR filter for the resampling (from :func:`~ganblocks.ops.setup_filter`); ``None`` is
            the box filter of size 1 (nearest for up, strided sampling for down).
        up: Integer upsampling factor.
        down: Integer downsampling factor.
        padding: Padding ``int | [px, py] | [x0, x1, y0, y1]`` of the convolution, measured on the
            upsampled grid (as for a plain conv with that padding on the upsampled image).
        groups: Convolution groups; ``C_in`` and ``C_out`` must be multiples of it.
        flip_weight: ``True`` correlates with ``w`` (as ``torch.nn.functional.conv2d``);
            ``False`` convolves.
        flip_filter: ``False`` = convolution with ``f``, ``True`` = correlation.
        impl: Backend of the FIR steps, as in :func:`~ganblocks.ops.upfirdn2d`.

    Returns:
        ``[N, C_out, H_out, W_out]``; with ``padding = kw // 2`` and an odd ``kw``, the output is
        ``H * up // down`` by ``W * up // down``.

    Example:
        >>> from ganblocks.ops import setup_filter
        >>> x, w = torch.randn(2, 8, 16, 16), torch.randn(4, 8, 3, 3)
        >>> f = setup_filter([1, 3, 3, 1])
        >>> conv2d_resample(x, w, f, up=2, padding=1).shape
        torch.Size([2, 4, 32, 32])
        >>> conv2d_resample(x, w, f, down=2, padding=1).shape
        torch.Size([2, 4, 8, 8])
    """
    up, down = _check_args(x, w, f, up, down, groups)
    kh, kw = w.shape[2], w.shape[3]
    px0, px1, py0, py1 = _centred_padding(padding, f, up, down)
    conv = {"groups": groups, "flip_weight": flip_weight}
    fir = {"flip_filter": flip_filter, "impl": impl}

    if kw == 1 and kh == 1 and up == 1 and down > 1:
        # 1x1 conv commutes with the FIR: downsample first, on the input's channels.
        x = upfirdn2d(x, f, down=down, padding=[px0, px1, py0, py1], **fir)
        return _conv(x, w, **conv)

    if kw == 1 and kh == 1 and up > 1 and down == 1:
        # 1x1 conv commutes with the FIR: convolve first, then upsample the output channels.
        x = _conv(x, w, **conv)
        return upfirdn2d(x, f, up=up, padding=[px0, px1, py0, py1], gain=up**2, **fir)

    if up == 1 and down > 1:
        # FIR on the full-resolution grid, then a strided conv keeps every down-th output.
        x = upfirdn2d(x, f, padding=[px0, px1, py0, py1], **fir)
        return _conv(x, w, stride=down, **conv)

    if up > 1:
        # A transposed conv of stride `up` is the conv on the zero-inserted grid without the
        # zero products; it leaves (kw - 1) extra samples before and (kw - up) after, which the
        # FIR step's padding removes again. Whatever both sides would crop is cropped by the
        # transposed conv's own padding instead.
        px0, px1 = px0 - (kw - 1), px1 - (kw - up)
        py0, py1 = py0 - (kh - 1), py1 - (kh - up)
        pxt = max(min(-px0, -px1), 0)
        pyt = max(min(-py0, -py1), 0)
        wt = _transpose_weight(w, groups)
        x = _conv(
            x, wt, stride=up, padding=(pyt, pxt), groups=groups, transpose=True,
            flip_weight=not flip_weight,
        )
        x = upfirdn2d(
            x, f, padding=[px0 + pxt, px1 + pxt, py0 + pyt, py1 + pyt], gain=up**2, **fir
        )
        if down > 1:
            x = upfirdn2d(x, f, down=down, **fir)
        return x

    # up == down == 1: a plain conv, using conv2d's own padding when it is symmetric.
    if px0 == px1 and py0 == py1 and px0 >= 0 and py0 >= 0:
        return _conv(x, w, padding=(py0, px0), **conv)
    x = upfirdn2d(x, None, padding=[px0, px1, py0, py1], **fir)
    return _conv(x, w, **conv)
