"""The native path of :func:`~ganblocks.ops.bias_act`: the C++/CUDA ops, their autograd and fake
kernels, and their self-check.

The ops (defined by ``csrc/ops.cpp``), with ``act`` the activation's code, ``clamp < 0`` meaning
none, and ``db`` in the compute dtype (empty unless ``want_db``)::

    bias_act(x, b?, dim, act, alpha, gain, clamp) -> y
    bias_act_grad(dy, x, b?, ..., want_db) -> (dx, db)
    bias_act_grad2(g, dy, x, b?, ..., want_db) -> (d, db)   (second derivative contracted)

Backward runs ``bias_act_grad``; its backward runs ``bias_act_grad`` again (``dx`` is linear in
``dy``) and ``bias_act_grad2``, so R1's double backward never falls back to the reference; a third
derivative raises. :func:`register_library` gives the ops their fake kernels (torch.compile /
torch.export / meta tensors) and autograd formulas once the library is loaded.
"""

from __future__ import annotations

from typing import List, Optional, Tuple

import torch

from . import _selfcheck
from ._kernels import CUDA_MAX_BLOCKS_1D, is_channels_last, opmath
from ._params import ACTIVATIONS, BiasActParams
from ._reference import bias_act_ref

__all__ = ["bias_act", "check_shapes", "register_library"]

_ACT_2ND = {spec.code for spec in ACTIVATIONS.values() if spec.has_2nd_grad}
_SPEC_OF_CODE = {spec.code: spec for spec in ACTIVATIONS.values()}


def _clamp_arg(p: BiasActParams) -> float:
    return -1.0 if p.clamp is None else float(p.clamp)


def _act_params(code: int, dim: int, alpha: float, gain: float, clamp: float) -> BiasActParams:
    """The parsed parameters of the ops' own arguments (``act`` code, ``clamp < 0``: none)."""
    return BiasActParams(_SPEC_OF_CODE[code], dim, alpha, gain, None if clamp < 0 else clamp)


def _non_overlapping_and_dense(x: torch.Tensor) -> bool:
    """ATen's ``is_non_overlapping_and_dense``: the elements fill a block of memory exactly,
    in some order of the dimensions."""
    if x.numel() == 0:
        return True
    expected = 1
    for stride, size in sorted((st, sz) for sz, st in zip(x.shape, x.stride()) if sz != 1):
        if stride != expected:
            return False
        expected *= size
    return True


def _dense(x: torch.Tensor) -> torch.Tensor:
    """x itself when non-overlapping and dense, else a contiguous copy (as the kernels do)."""
    return x if _non_overlapping_and_dense(x) else x.contiguous()


def _bias_shape(x: torch.Tensor, dim: int) -> List[int]:
    return [-1 if d == dim else 1 for d in range(x.ndim)]


# ----------------------------------------------------------------------------------------------
# Self-check: small inputs like x, and the reference of each op of the family


def check_shapes(x: torch.Tensor, keep_dim: Optional[int]) -> List[Tuple[int, ...]]:
    """Shapes of small inputs like x (``keep_dim`` keeps its size, the bias's); one more just past
    the CUDA grid's limit when x's launch strides over its grid (so that path is checked too)."""
    shape = list(x.shape)
    for d in range(len(shape)):
        if d != keep_dim and shape[d] > 2 and torch.Size(shape).numel() > 1 << 16:
            shape[d] = 2
    shapes = [tuple(shape)]
    limit = CUDA_MAX_BLOCKS_1D * 256
    if x.numel() > limit:
        d = next((k for k in range(len(shape)) if k != keep_dim), 0)
        big = list(shape)
        big[d] = limit // max(1, torch.Size(shape).numel() // max(shape[d], 1)) + 1
        shapes.append(tuple(big))
    return shapes


def _ref_value(name: str, dy, x, b, p: BiasActParams, g=None) -> torch.Tensor:
    """Reference value of op ``name`` of the family (its first output; for the self-check and
    its fallback)."""
    if name == "bias_act":
        return bias_act_ref(x, b, p)
    if name == "bias_act_grad" and torch.is_grad_enabled() and any(
            t is not None and t.requires_grad for t in (dy, x, b)):
        # The fallback inside a backward with create_graph=True (R1's double backward): keep
        # dx a differentiable function of dy, x and b, as the native op's own formula is.
        xr = x if x.requires_grad else x.detach().requires_grad_(True)
        (dx,) = torch.autograd.grad(bias_act_ref(xr, b, p), xr, dy, create_graph=True)
        return dx
    with torch.enable_grad():
        xr = x.detach().requires_grad_(True)
        yr = bias_act_ref(xr, b, p)
        (dx,) = torch.autograd.grad(yr, xr, dy, create_graph=name == "bias_act_grad2")
        if name == "bias_act_grad":
            return dx.detach()
        if dx.requires_grad:
            return torch.autograd.grad(dx, xr, g)[0].detach()
        return torch.zeros_like(x)


def _ref_outputs(name: str, lead: Tuple, x, b, p: BiasActParams, want_db):
    """The reference in place of op ``name``'s outputs (``(value, db)`` for the gradient ops)."""
    ref = _ref_value(name, lead[-1] if lead else None, x, b, p,
                     lead[0] if len(lead) == 2 else None)
    if want_db is None:
        return ref
    dims = [d for d in range(x.ndim) if d != p.dim]
    db = ref.sum(dims, dtype=opmath(x.dtype)) if want_db else \
        x.new_empty((0,), dtype=opmath(x.dtype))
    return ref, db


def _family(name: str, lead: Tuple, x, b, dim, act, alpha, gain, clamp, want_db=None):
    """Call op ``name`` with ``lead`` tensors (dy, g) before x; self-checked on the first eager
    CUDA call of each configuration, with the reference as the fallback on a mismatch."""
    op = getattr(torch.ops.ganblocks, name)
    tail = (dim, act, alpha, gain, clamp) + (() if want_db is None else (want_db,))
    if _selfcheck.check_due(x):
        key = (name, x.dtype, act, b is not None, dim if b is not None else None, clamp >= 0,
               is_channels_last(x), x.numel() > CUDA_MAX_BLOCKS_1D * 256)
        p = _act_params(act, dim, alpha, gain, clamp)

        def check() -> float:
            gen = _selfcheck.check_generator(x.device)
            worst = 0.0
            cl = is_channels_last(x)
            for shape in check_shapes(x, dim if b is not None else None):
                xs = _selfcheck.randn(shape, x, gen, channels_last=cl)
                bs = None if b is None else _selfcheck.randn((xs.shape[dim],), b, gen)
                lead_s = tuple(_selfcheck.randn(xs.shape, xs, gen) for _ in lead)
                got = op(*lead_s, xs, bs, *tail)
                got = got[0] if isinstance(got, (tuple, list)) else got
                dy_s = lead_s[-1] if lead_s else None
                g_s = lead_s[0] if len(lead_s) == 2 else None
                worst = max(worst, _selfcheck.rel_err(got, _ref_value(name, dy_s, xs, bs, p, g_s)))
            return worst

        if not _selfcheck.verified_ok(key, check):
            return _ref_outputs(name, lead, x, b, p, want_db)
    return op(*lead, x, b, *tail)


# ----------------------------------------------------------------------------------------------
# torch.library: fake kernels and autograd formulas


def _bias_act_fake(x, b, dim, act, alpha, gain, clamp):
    return torch.empty_like(_dense(x))


def _grads_fake(*tensors_then_args):
    x, b = tensors_then_args[-8], tensors_then_args[-7]
    want_db = tensors_then_args[-1]
    n = int(b.shape[0]) if (want_db and b is not None) else 0
    return torch.empty_like(_dense(x)), x.new_empty((n,), dtype=opmath(x.dtype))


def _bias_act_setup(ctx, inputs, output) -> None:
    x, b, *args = inputs
    ctx.args = tuple(args)
    ctx.save_for_backward(x, b)


def _bias_act_backward(ctx, dy):
    x, b = ctx.saved_tensors
    need_x, need_b = ctx.needs_input_grad[:2]
    want_db = bool(b is not None and need_b)
    if not (need_x or want_db):
        return (None,) * 7
    dx, db = _family("bias_act_grad", (dy,), x, b, *ctx.args, want_db)
    return (dx if need_x else None), (db.to(b.dtype) if want_db else None), *(None,) * 5


def _bias_act_grad_setup(ctx, inputs, output) -> None:
    dy, x, b, *args = inputs
    ctx.args = tuple(args[:-1])
    ctx.want_db = bool(args[-1])
    ctx.save_for_backward(dy, x, b)


def _bias_act_grad_backward(ctx, gdx, gdb):
    """Gradient of (dx, db): the same kernel for dy (dx is linear in dy), the second-derivative
    kernel for x and b (z = x + b, so both get the same contraction)."""
    dy, x, b = ctx.saved_tensors
    dim, act = ctx.args[0], ctx.args[1]
    g = gdx
    if ctx.want_db and b is not None and gdb is not None and gdb.numel():
        spread = gdb.to(x.dtype).reshape(_bias_shape(x, dim)).expand_as(x)
        g = spread if g is None else g + spread
    need_dy, need_x, need_b = ctx.needs_input_grad[:3]
    none = (None,) * 6
    if g is None:
        return (None, None, None, *none)
    g_dy = g_x = g_b = None
    if need_dy:
        g_dy = _family("bias_act_grad", (g,), x, b, *ctx.args, False)[0]
    want_db = bool(need_b and b is not None)
    if act in _ACT_2ND and (need_x or want_db):
        d, db = _family("bias_act_grad2", (g, dy), x, b, *ctx.args, want_db)
        g_x = d if need_x else None
        g_b = db.to(b.dtype) if want_db else None
    return (g_dy, g_x, g_b, *none)


def _bias_act_grad2_backward(ctx, *grads):
    raise NotImplementedError(
        "third derivatives of bias_act are not implemented in the native kernels; use "
        "impl='ref' for them"
    )


def register_library() -> None:
    """Give ``ganblocks::bias_act``, ``bias_act_grad`` and ``bias_act_grad2`` their fake kernels
    and autograd formulas (once per process, after the library is loaded)."""
    lib = torch.library
    lib.register_fake("ganblocks::bias_act")(_bias_act_fake)
    lib.register_fake("ganblocks::bias_act_grad")(_grads_fake)
    lib.register_fake("ganblocks::bias_act_grad2")(_grads_fake)
    lib.register_autograd("ganblocks::bias_act", _bias_act_backward,
                          setup_context=_bias_act_setup)
    lib.register_autograd("ganblocks::bias_act_grad", _bias_act_grad_backward,
                          setup_context=_bias_act_grad_setup)
    lib.register_autograd("ganblocks::bias_act_grad2", _bias_act_grad2_backward,
                          setup_context=lambda ctx, inputs, output: None)


# ----------------------------------------------------------------------------------------------
# The native bias_act


def bias_act(x: torch.Tensor, b: Optional[torch.Tensor], p: BiasActParams) -> torch.Tensor:
    """Native :func:`~ganblocks.ops.bias_act` on parsed parameters ``p`` (``BiasActParams``).

    ``x`` of any shape, ``b: [x.shape[p.dim]]`` or ``None``; returns ``x``'s shape and dtype. Runs
    the custom op ``torch.ops.ganblocks.bias_act`` (differentiable twice, traceable by
    ``torch.compile``).

    Example:
        >>> from ganblocks.ops.bias_act import ACTIVATIONS, BiasActParams
        >>> from ganblocks.ops.native import is_available
        >>> p = BiasActParams(ACTIVATIONS["lrelu"], dim=1, alpha=0.2, gain=1.0, clamp=None)
        >>> x, b = torch.tensor([[-1.0, 2.0]]), torch.tensor([0.5, 0.5])
        >>> bias_act(x, b, p) if is_available() else torch.tensor([[-0.1, 2.5]])
        tensor([[-0.1000,  2.5000]])
    """
    dim = p.dim if b is not None else 0
    return _family("bias_act", (), x, b, dim, p.spec.code, p.alpha, p.gain, _clamp_arg(p))
