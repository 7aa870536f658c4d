"""FIR resampling: upsample by zero insertion, pad, filter with a FIR kernel, downsample.

``upfirdn2d`` is the primitive every alias-aware GAN layer is built on. Its semantics follow the
de-facto standard of StyleGAN2/3, so code and checkpoints move between the two without surprises:

1. **up**: insert ``up - 1`` zeros after every input sample (per axis), giving ``W * up`` samples;
2. **pad**: pad with zeros (or crop, for negative values) by ``[x0, x1, y0, y1]``;
3. **FIR**: convolve with ``f`` (true convolution; ``flip_filter=True`` gives correlation),
   scaled by ``gain``; a 1-D ``f`` is separable (applied along x, then y), a 2-D ``f`` is
   ``[fh, fw]``;
4. **down**: keep every ``down``-th sample, starting at the first.

So the output width is ``(W * up_x + x0 + x1 - fw) // down_x + 1`` (likewise for the height).
"""

from __future__ import annotations

from typing import Optional, Sequence, Union

import torch

from . import _dispatch, _upfirdn2d_native
from ._params import (
    IntPair,
    Padding,
    UpFirDn2dParams,
    check_bool,
    check_filter,
    check_gain,
    check_tensor,
    filter_size,
    parse_padding,
    parse_scaling,
)
from ._reference import upfirdn2d_correlate, upfirdn2d_ref  # noqa: F401 (correlate: re-exported)

__all__ = [
    "UpFirDn2dParams",
    "downsample2d",
    "filter2d",
    "setup_filter",
    "upfirdn2d",
    "upfirdn2d_transpose",
    "upfirdn2d_transpose_params",
    "upsample2d",
]

FilterLike = Union[None, float, Sequence[float], Sequence[Sequence[float]], torch.Tensor]


def setup_filter(
    f: FilterLike,
    *,
    device: Union[str, torch.device] = "cpu",
    normalize: bool = True,
    flip_filter: bool = False,
    gain: float = 1.0,
    separable: Optional[bool] = None,
) -> torch.Tensor:
    """Turn filter taps into the float32 tensor that :func:`upfirdn2d` expects.

    Args:
        f: Taps: ``None`` (identity), a scalar, a 1-D sequence ``[n]`` or a 2-D ``[fh, fw]`` array.
        device: Device of the returned filter.
        normalize: Divide by the sum of the taps (after forming the outer product), so that a
            constant image keeps its value.
        flip_filter: Flip the filter along every axis.
        gain: Overall gain; a separable filter carries ``sqrt(gain)`` per axis.
        separable: Keep a 1-D filter separable. ``None`` keeps it separable when it has at least
            8 taps and otherwise forms the 2-D outer product ``f ⊗ f``.

    Returns:
        float32 tensor: ``[n]`` if separable, else ``[fh, fw]``.

    Example:
        >>> setup_filter([1, 3, 3, 1]).shape
        torch.Size([4, 4])
        >>> float(setup_filter([1, 3, 3, 1]).sum())
        1.0
        >>> setup_filter([1, 2, 1], separable=True)
        tensor([0.2500, 0.5000, 0.2500])
    """
    if f is None:
        f = 1.0
    ft = torch.as_tensor(f, dtype=torch.float32).clone()
    if ft.ndim > 2:
        raise ValueError(
            f"f: expected a scalar, a 1-D or a 2-D array of taps, got shape {tuple(ft.shape)}"
        )
    if ft.numel() == 0:
        raise ValueError("f: expected at least one tap, got an empty array")
    if ft.ndim == 0:
        ft = ft.reshape(1)
    if separable is None:
        separable = ft.ndim == 1 and ft.numel() >= 8
    if ft.ndim == 1 and not separable:
        ft = torch.outer(ft, ft)
    if separable and ft.ndim != 1:
        raise ValueError("separable: a 2-D filter cannot be separable; pass 1-D taps instead")
    if normalize:
        total = ft.sum()
        if total == 0:
            raise ValueError("f: taps sum to zero and cannot be normalised; pass normalize=False")
        ft = ft / total
    if check_bool(flip_filter, "flip_filter"):
        ft = ft.flip(list(range(ft.ndim)))
    gain = check_gain(gain)
    if ft.ndim == 1 and gain < 0:
        raise ValueError(
            f"gain: a separable filter carries sqrt(gain) per axis, so it cannot hold a negative "
            f"gain ({gain}); pass the gain to upfirdn2d (gain={gain}) instead, or "
            "separable=False"
        )
    ft = ft * (gain ** (ft.ndim / 2))
    return ft.to(device=device)


def _validate(x: torch.Tensor, f: Optional[torch.Tensor], p: UpFirDn2dParams) -> None:
    check_tensor(x, "x", ndim=4)
    check_filter(f)
    out_h, out_w = p.output_size(x.shape[2], x.shape[3], f)
    if out_h < 1 or out_w < 1:
        fw, fh = filter_size(f)
        raise ValueError(
            f"padding: the output would be {out_h}x{out_w}, smaller than 1x1 (input "
            f"{x.shape[2]}x{x.shape[3]}, up {p.upy}x{p.upx}, padding [x0, x1, y0, y1] = "
            f"{list(p.padding)}, filter {fh}x{fw}, down {p.downy}x{p.downx}); the up-sampled, "
            "padded input must be at least as large as the filter"
        )


def upfirdn2d(
    x: torch.Tensor,
    f: Optional[torch.Tensor],
    *,
    up: IntPair = 1,
    down: IntPair = 1,
    padding: Padding = 0,
    flip_filter: bool = False,
    gain: float = 1.0,
    impl: Optional[str] = None,
) -> torch.Tensor:
    """Upsample, pad, FIR-filter and downsample a batch of 2-D images.

    Args:
        x: Input ``[N, C, H, W]`` (float16, bfloat16, float32 or float64).
        f: Filter from :func:`setup_filter`: float32 ``[fh, fw]``, 1-D ``[n]`` (separable) or
            ``None`` (identity).
        up: Upsampling factor, ``int`` or ``[ux, uy]``.
        down: Downsampling factor, ``int`` or ``[dx, dy]``.
        padding: ``int``, ``[px, py]`` or ``[x0, x1, y0, y1]``, applied after upsampling;
            negative values crop.
        flip_filter: ``False`` = convolution, ``True`` = correlation.
        gain: Overall scaling of the signal magnitude.
        impl: ``'ref'`` (pure PyTorch), ``'native'`` (compiled kernels; ``'cuda'`` is accepted
            as NVlabs' spelling of it) or ``None`` (native when built, else ref; a filter that
            requires grad takes the reference path, which differentiates it).

    Returns:
        ``[N, C, (H*uy + y0 + y1 - fh) // dy + 1, (W*ux + x0 + x1 - fw) // dx + 1]``, with the
        dtype of ``x``.

    Example:
        >>> x = torch.arange(4.0).reshape(1, 1, 1, 4)
        >>> upfirdn2d(x, torch.ones(1, 2), up=[2, 1], padding=[1, 0, 0, 0])
        tensor([[[[0., 0., 1., 1., 2., 2., 3., 3.]]]])
    """
    p = UpFirDn2dParams.parse(up, down, padding, flip_filter, gain)
    _validate(x, f, p)
    if impl is None and f is not None and f.requires_grad and torch.is_grad_enabled():
        return upfirdn2d_ref(x, f, p)  # the native kernels do not differentiate the filter
    if _dispatch.resolve_impl(impl, x) == "native":
        return _upfirdn2d_native.upfirdn2d(x, f, p)
    return upfirdn2d_ref(x, f, p)


def upfirdn2d_transpose_params(
    input_size: Sequence[int],
    f: Optional[torch.Tensor],
    *,
    up: IntPair = 1,
    down: IntPair = 1,
    padding: Padding = 0,
) -> dict:
    """Keyword arguments of the adjoint of an :func:`upfirdn2d` call.

    For ``A = upfirdn2d(·, f, up=up, down=down, padding=padding, flip_filter=flip)`` on inputs of
    spatial size ``input_size = (H, W)``, returns ``dict(up=..., down=..., padding=...)`` such that
    ``upfirdn2d(y, f, **kw, flip_filter=not flip)`` computes ``Aᵀ y`` with output
    ``[N, C, H, W]``: up and down swap, the filter flips. See :func:`upfirdn2d_transpose`.

    Example:
        >>> f = setup_filter([1, 3, 3, 1])
        >>> upfirdn2d_transpose_params((8, 8), f, up=2, padding=[2, 1, 2, 1])
        {'up': [1, 1], 'down': [2, 2], 'padding': [1, 1, 1, 1]}
    """
    p = UpFirDn2dParams.parse(up, down, padding)
    in_h, in_w = (int(s) for s in input_size)
    t = p.transpose(in_h, in_w, f)
    return {"up": [t.upx, t.upy], "down": [t.downx, t.downy], "padding": list(t.padding)}


def upfirdn2d_transpose(
    y: torch.Tensor,
    f: Optional[torch.Tensor],
    *,
    input_size: Sequence[int],
    up: IntPair = 1,
    down: IntPair = 1,
    padding: Padding = 0,
    flip_filter: bool = False,
    gain: float = 1.0,
    impl: Optional[str] = None,
) -> torch.Tensor:
    """Apply the adjoint (transpose) of an :func:`upfirdn2d` call.

    ``⟨upfirdn2d(x, f, **kw), y⟩ = ⟨x, upfirdn2d_transpose(y, f, input_size=x.shape[-2:], **kw)⟩``
    for every ``x`` and ``y``: this is also the gradient of ``upfirdn2d`` with respect to ``x``.

    Args:
        y: ``[N, C, H_out, W_out]``, shaped like the output of the forward call.
        f: The forward call's filter.
        input_size: ``(H, W)`` of the forward call's input.
        up, down, padding, flip_filter, gain: The forward call's arguments.
        impl: As in :func:`upfirdn2d`.

    Returns:
        ``[N, C, H, W]``.

    Example:
        >>> f = setup_filter([1, 3, 3, 1])
        >>> x, y = torch.randn(1, 1, 5, 6), torch.randn(1, 1, 10, 12)
        >>> ax = upfirdn2d(x, f, up=2, padding=[2, 1, 2, 1])
        >>> aty = upfirdn2d_transpose(y, f, input_size=(5, 6), up=2, padding=[2, 1, 2, 1])
        >>> bool(torch.isclose((ax * y).sum(), (x * aty).sum(), atol=1e-5))
        True
    """
    p = UpFirDn2dParams.parse(up, down, padding, flip_filter, gain)
    in_h, in_w = (int(s) for s in input_size)
    check_tensor(y, "y", ndim=4)
    expected = p.output_size(in_h, in_w, f)
    if tuple(y.shape[2:]) != expected:
        raise ValueError(
            f"y: expected spatial size {expected} (the forward output for input_size "
            f"{(in_h, in_w)}), got {tuple(y.shape[2:])}"
        )
    t = p.transpose(in_h, in_w, f)
    return upfirdn2d(
        y, f, up=[t.upx, t.upy], down=[t.downx, t.downy], padding=list(t.padding),
        flip_filter=t.flip_filter, gain=t.gain, impl=impl,
    )


def upsample2d(
    x: torch.Tensor,
    f: Optional[torch.Tensor],
    *,
    up: IntPair = 2,
    padding: Padding = 0,
    flip_filter: bool = False,
    gain: float = 1.0,
    impl: Optional[str] = None,
) -> torch.Tensor:
    """Upsample by ``up`` with FIR filter ``f``, output exactly ``up`` times larger.

    The padding is chosen to centre the filter, then ``padding`` is added; the gain is multiplied
    by ``ux * uy`` to make up for the inserted zeros, so a normalised filter keeps constants.

    Args:
        x: ``[N, C, H, W]``.
        f: Filter from :func:`setup_filter`, or ``None``.
        up: ``int`` or ``[ux, uy]``.
        padding: Extra padding ``int | [px, py] | [x0, x1, y0, y1]``.
        flip_filter, gain, impl: As in :func:`upfirdn2d`.

    Returns:
        ``[N, C, H*uy + y0 + y1, W*ux + x0 + x1]``.

    Example:
        >>> upsample2d(torch.ones(1, 2, 4, 4), setup_filter([1, 3, 3, 1])).shape
        torch.Size([1, 2, 8, 8])
    """
    upx, upy = parse_scaling(up, "up")
    x0, x1, y0, y1 = parse_padding(padding)
    fw, fh = filter_size(check_filter(f))
    pad = [
        x0 + (fw + upx - 1) // 2,
        x1 + (fw - upx) // 2,
        y0 + (fh + upy - 1) // 2,
        y1 + (fh - upy) // 2,
    ]
    return upfirdn2d(
        x, f, up=[upx, upy], padding=pad, flip_filter=flip_filter,
        gain=check_gain(gain) * upx * upy, impl=impl,
    )


def downsample2d(
    x: torch.Tensor,
    f: Optional[torch.Tensor],
    *,
    down: IntPair = 2,
    padding: Padding = 0,
    flip_filter: bool = False,
    gain: float = 1.0,
    impl: Optional[str] = None,
) -> torch.Tensor:
    """Low-pass filter with ``f`` and downsample by ``down``, output ``down`` times smaller.

    Args:
        x: ``[N, C, H, W]``.
        f: Filter from :func:`setup_filter`, or ``None``.
        down: ``int`` or ``[dx, dy]``.
        padding: Extra padding ``int | [px, py] | [x0, x1, y0, y1]``.
        flip_filter, gain, impl: As in :func:`upfirdn2d`.

    Returns:
        ``[N, C, (H + y0 + y1) // dy, (W + x0 + x1) // dx]``.

    Example:
        >>> downsample2d(torch.ones(1, 2, 8, 8), setup_filter([1, 3, 3, 1])).shape
        torch.Size([1, 2, 4, 4])
    """
    downx, downy = parse_scaling(down, "down")
    x0, x1, y0, y1 = parse_padding(padding)
    fw, fh = filter_size(check_filter(f))
    pad = [
        x0 + (fw - downx + 1) // 2,
        x1 + (fw - downx) // 2,
        y0 + (fh - downy + 1) // 2,
        y1 + (fh - downy) // 2,
    ]
    return upfirdn2d(
        x, f, down=[downx, downy], padding=pad, flip_filter=flip_filter, gain=gain, impl=impl
    )


def filter2d(
    x: torch.Tensor,
    f: Optional[torch.Tensor],
    *,
    padding: Padding = 0,
    flip_filter: bool = False,
    gain: float = 1.0,
    impl: Optional[str] = None,
) -> torch.Tensor:
    """Filter with ``f`` keeping the size ("same" padding), plus optional extra ``padding``.

    Args:
        x: ``[N, C, H, W]``.
        f: Filter from :func:`setup_filter`, or ``None``.
        padding: Extra padding ``int | [px, py] | [x0, x1, y0, y1]``.
        flip_filter, gain, impl: As in :func:`upfirdn2d`.

    Returns:
        ``[N, C, H + y0 + y1, W + x0 + x1]``.

    Example:
        >>> y = filter2d(torch.ones(1, 1, 6, 6), setup_filter([1, 2, 1]))
        >>> y.shape, float(y[0, 0, 3, 3])
        (torch.Size([1, 1, 6, 6]), 1.0)
    """
    x0, x1, y0, y1 = parse_padding(padding)
    fw, fh = filter_size(check_filter(f))
    pad = [x0 + fw // 2, x1 + (fw - 1) // 2, y0 + fh // 2, y1 + (fh - 1) // 2]
    return upfirdn2d(x, f, padding=pad, flip_filter=flip_filter, gain=gain, impl=impl)
