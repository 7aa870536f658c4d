"""The native path of :func:`~ganblocks.ops.upfirdn2d`: the C++/CUDA op, its autograd and fake
kernel, and its self-check.

The op ``torch.ops.ganblocks.upfirdn2d(x, w, upx, upy, downx, downy, padx0, padx1, pady0, pady1)``
(defined by ``csrc/ops.cpp``) takes the taps ``w`` in correlation order with the gain applied, in
the compute dtype (float64 for float64 x, else float32). Its gradient is the transposed
upfirdn2d, native again, so derivatives of any order never fall back to the reference.
:func:`register_library` gives the op its fake kernel (torch.compile / torch.export / meta
tensors) and autograd formula once the library is loaded.
"""

from __future__ import annotations

import weakref
from typing import Any, Dict, List, Optional, Tuple

import torch

from . import _selfcheck
from ._kernels import (
    CUDA_MAX_BLOCKS_1D,
    CUDA_MAX_GRID_Y,
    CUDA_MAX_GRID_Z,
    is_channels_last,
    opmath,
)
from ._params import UpFirDn2dParams
from ._reference import upfirdn2d_correlate

__all__ = ["register_library", "upfirdn2d"]

Args = Tuple[int, ...]  # (upx, upy, downx, downy, padx0, padx1, pady0, pady1)

_taps_cache: Dict[Tuple, Tuple[Any, torch.Tensor]] = {}


def _filter_weights(
    f: Optional[torch.Tensor], p: UpFirDn2dParams, x: torch.Tensor
) -> Tuple[torch.Tensor, bool]:
    """The taps as the op takes them, and whether the output must be negated.

    The gain is applied to the float32 filter and rounded to x's dtype, as the reference does. A
    separable (1-D) filter carries ``sqrt(|gain|)`` per axis; a negative gain then negates the
    result (exact: rounding is symmetric in sign). Eager calls reuse the taps of the same filter
    tensor (unchanged since) with the same arguments, which saves several small ops per call.
    """
    negate = f is not None and f.ndim == 1 and p.gain < 0
    eager = not _selfcheck.tracing(x)
    key = None
    if eager and f is not None:
        key = (id(f), f._version, x.dtype, x.device, p.gain, p.flip_filter)
        hit = _taps_cache.get(key)
        if hit is not None and hit[0]() is f:
            return hit[1], negate
    if f is None:
        f = torch.ones([1, 1], dtype=torch.float32, device=x.device)
    gain = abs(p.gain) if f.ndim == 1 else p.gain
    w = (f.detach() * (gain ** (f.ndim / 2))).to(x.dtype)
    if not p.flip_filter:
        w = w.flip(list(range(w.ndim)))
    w = w.to(device=x.device, dtype=opmath(x.dtype)).contiguous()
    if key is not None:
        if len(_taps_cache) >= 256:
            _taps_cache.clear()
        _taps_cache[key] = (weakref.ref(f), w)
    return w, negate


def _taps_size(w: torch.Tensor) -> Tuple[int, int]:
    fw = int(w.shape[-1])
    return fw, (int(w.shape[0]) if w.ndim == 2 else fw)


def _out_hw(h: int, wd: int, w: torch.Tensor, args: Args) -> Tuple[int, int]:
    upx, upy, downx, downy, px0, px1, py0, py1 = args
    fw, fh = _taps_size(w)
    return (h * upy + py0 + py1 - fh) // downy + 1, (wd * upx + px0 + px1 - fw) // downx + 1


def taps_ref(x: torch.Tensor, w: torch.Tensor, args: Args) -> torch.Tensor:
    """The reference path on the op's own arguments (for self-checks and their fallback)."""
    return upfirdn2d_correlate(x, w.to(x.dtype), *args)


# ----------------------------------------------------------------------------------------------
# Self-check: the configuration key and small inputs that take x's CUDA launch path


def launch_path(x: torch.Tensor, w: torch.Tensor, args: Args) -> Tuple:
    """What decides the CUDA kernel and its launch (mirrors csrc/upfirdn2d_cuda.cu): the tiled
    kernel's factors, whether its grid strides over planes (z) and whether it hands tall outputs
    to the generic kernel (y), or the generic kernel and whether it strides over its grid."""
    upx, upy, downx, downy = args[:4]
    fw, fh = _taps_size(w)
    n, c = int(x.shape[0]), int(x.shape[1])
    oh, ow = _out_hw(x.shape[2], x.shape[3], w, args)
    cl = is_channels_last(x) and c > 1
    sep = w.ndim == 1 and fw > 8  # two passes: horizontal, then vertical
    tiled = (upx == upy and downx == downy and (upx, downx) in ((1, 1), (2, 1), (4, 1), (1, 2),
             (1, 4)) and fw <= 8 and fh <= 8 and not sep)
    if tiled:
        if cl:
            th = 8 if downx == 1 else 4
            cc = 8 if x.dtype == torch.float64 else 16
            planes = n * -(-c // cc)
        else:
            th = 32 // downx
            planes = n * c
        if -(-oh // th) <= CUDA_MAX_GRID_Y:
            return ("tiled", cl, planes > CUDA_MAX_GRID_Z)
    total = n * c * oh * ow
    return ("generic" if not sep else "separable", cl,
            total > CUDA_MAX_BLOCKS_1D * 256)


def _min_extent(size: int, up: int, pad0: int, pad1: int, taps: int) -> int:
    """The smallest input extent (at most ``size``) that still gives an output."""
    return max(1, min(size, -(-(taps - pad0 - pad1) // up)))


def check_shapes(x: torch.Tensor, w: torch.Tensor, args: Args) -> List[Tuple[int, ...]]:
    """Shapes of small inputs with x's configuration, each taking the CUDA launch path that x
    takes: one image with a few channels, plus, where x's launch strides over its grid or hands a
    tall output to the generic kernel, one just past that limit."""
    upx, upy, _, _, px0, px1, py0, py1 = args
    fw, fh = _taps_size(w)
    kind, cl, strided = launch_path(x, w, args)
    c, h, wd = (int(s) for s in x.shape[1:])
    shapes = [(1, min(c, 32 if cl else 4), h, wd)]
    h_min = _min_extent(h, upy, py0, py1, fh)
    w_min = _min_extent(wd, upx, px0, px1, fw)
    if kind == "generic" and launch_path(x[:1, :1, :, :w_min], w, args)[0] == "generic":
        shapes = [(1, 1, h, w_min)]  # x's own height, all that matters to this path
    if kind == "tiled" and strided:  # the grid's z strides over planes: one more than fits
        per = (8 if x.dtype == torch.float64 else 16) if cl else 1
        shapes.append((1, (CUDA_MAX_GRID_Z + 1) * per, h_min, w_min))
    elif strided:  # the 1-D grid strides: more outputs than it has threads
        _, c0, h0, w0 = shapes[0]
        oh, ow = _out_hw(h0, w0, w, args)
        if c0 * oh * ow <= CUDA_MAX_BLOCKS_1D * 256:
            shapes.append((1, CUDA_MAX_BLOCKS_1D * 256 // (oh * ow) + 1, h0, w0))
    return shapes


def _op(x: torch.Tensor, w: torch.Tensor, args: Args) -> torch.Tensor:
    """The native op, self-checked on the first eager CUDA call of each configuration (with the
    reference as the fallback on a mismatch)."""
    if _selfcheck.check_due(x):
        key = ("upfirdn2d", x.dtype, tuple(w.shape), *args, launch_path(x, w, args))

        def check() -> float:
            gen = _selfcheck.check_generator(x.device)
            worst = 0.0
            cl = is_channels_last(x)
            for shape in check_shapes(x, w, args):
                xs = _selfcheck.randn(shape, x, gen, channels_last=cl)
                got = torch.ops.ganblocks.upfirdn2d(xs, w, *args)
                worst = max(worst, _selfcheck.rel_err(got, taps_ref(xs, w, args)))
            return worst

        if not _selfcheck.verified_ok(key, check):
            return taps_ref(x, w, args)
    return torch.ops.ganblocks.upfirdn2d(x, w, *args)


# ----------------------------------------------------------------------------------------------
# torch.library: fake kernel and autograd formula


def fake(x, w, upx, upy, downx, downy, padx0, padx1, pady0, pady1) -> torch.Tensor:
    """The op's output as an empty tensor of the right shape, dtype and layout."""
    oh, ow = _out_hw(x.shape[2], x.shape[3], w,
                     (upx, upy, downx, downy, padx0, padx1, pady0, pady1))
    cl = is_channels_last(x) and x.shape[1] > 1
    fmt = torch.channels_last if cl else torch.contiguous_format
    return torch.empty((x.shape[0], x.shape[1], oh, ow), dtype=x.dtype, device=x.device,
                       memory_format=fmt)


def _setup_context(ctx, inputs, output) -> None:
    x, w, *args = inputs
    ctx.args = tuple(args)
    ctx.in_size = (x.shape[2], x.shape[3])
    ctx.save_for_backward(w)


def _backward(ctx, dy):
    """The gradient is the transposed upfirdn2d: up and down swap, the taps flip, and the padding
    makes tap t meet the same input/output pair (see ``UpFirDn2dParams.transpose``)."""
    (w,) = ctx.saved_tensors
    upx, upy, downx, downy, px0, _, py0, _ = ctx.args
    in_h, in_w = ctx.in_size
    fw, fh = _taps_size(w)
    out_h, out_w = dy.shape[2], dy.shape[3]
    targs = (downx, downy, upx, upy,
             fw - 1 - px0, in_w * upx - out_w * downx + px0 - upx + 1,
             fh - 1 - py0, in_h * upy - out_h * downy + py0 - upy + 1)
    dx = _op(dy, w.flip(list(range(w.ndim))), targs) if ctx.needs_input_grad[0] else None
    return (dx,) + (None,) * 9


def register_library() -> None:
    """Give ``ganblocks::upfirdn2d`` its fake kernel and autograd formula (once per process,
    after the library is loaded)."""
    torch.library.register_fake("ganblocks::upfirdn2d")(fake)
    torch.library.register_autograd("ganblocks::upfirdn2d", _backward,
                                    setup_context=_setup_context)


# ----------------------------------------------------------------------------------------------
# The native upfirdn2d


def upfirdn2d(x: torch.Tensor, f: Optional[torch.Tensor], p: UpFirDn2dParams) -> torch.Tensor:
    """Native :func:`~ganblocks.ops.upfirdn2d` on parsed parameters ``p`` (``UpFirDn2dParams``).

    ``x: [N, C, H, W]`` → ``[N, C, *p.output_size(H, W, f)]``. Runs the custom op
    ``torch.ops.ganblocks.upfirdn2d`` (differentiable to any order, traceable by
    ``torch.compile``); the filter gets no gradient. The ops call this when
    :func:`~ganblocks.ops.native.resolve_impl` picks ``'native'``.

    Example:
        >>> from ganblocks.ops.native import is_available
        >>> from ganblocks.ops.upfirdn2d import UpFirDn2dParams, setup_filter
        >>> f = setup_filter([1, 3, 3, 1])
        >>> p = UpFirDn2dParams.parse(up=2, padding=[2, 1, 2, 1], gain=4.0)
        >>> p.output_size(4, 4, f)
        (8, 8)
        >>> y = upfirdn2d(torch.ones(1, 1, 4, 4), f, p) if is_available() else torch.ones(8, 8)
        >>> float(y[..., 3, 3])  # a constant image stays constant away from the borders
        1.0
    """
    if f is not None and f.requires_grad and torch.is_grad_enabled():
        raise ValueError(
            "f: the native upfirdn2d does not differentiate the filter, but f.requires_grad is "
            "True; pass f.detach() (FIR filters are fixed buffers), use impl=None (which then "
            "takes the reference path) or impl='ref'"
        )
    w, negate = _filter_weights(f, p, x)
    args = (p.upx, p.upy, p.downx, p.downy, p.padx0, p.padx1, p.pady0, p.pady1)
    y = _op(x, w, args)
    return y.neg() if negate else y
