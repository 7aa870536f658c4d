"""The native kernels as torch.library custom ops: schemas, fake (meta) kernels and autograd
formulas checked by ``torch.library.opcheck``; derivatives to second order by gradcheck and
gradgradcheck through the ops themselves; fake kernels that predict the real outputs' shapes,
strides and dtypes."""

from __future__ import annotations

import os

import pytest
import torch
from torch._subclasses.fake_tensor import FakeTensorMode

from ganblocks.ops import ACTIVATIONS, _kernels, native

ops = torch.ops.ganblocks


@pytest.fixture(scope="module", autouse=True)
def built():
    if os.environ.get("GANBLOCKS_NATIVE", "auto").strip().lower() in ("0", "off", "no", "false"):
        pytest.skip("native kernels disabled by GANBLOCKS_NATIVE=0")
    return native.build()


def _taps(shape, dtype=torch.float32):
    g = torch.Generator().manual_seed(1)
    return torch.rand(shape, generator=g, dtype=dtype) + 0.1


# (x shape, channels_last, taps shape, upx, upy, downx, downy, padx0, padx1, pady0, pady1)
UPFIRDN_CASES = [
    ((2, 3, 6, 5), False, (4, 4), 2, 2, 1, 1, 2, 1, 2, 1),
    ((1, 4, 7, 6), True, (3, 5), 1, 2, 2, 1, 1, 1, 2, 0),
    ((2, 2, 9, 8), False, (10,), 1, 1, 2, 2, 4, 4, 4, 4),
    ((1, 5, 5, 7), True, (4,), 2, 1, 1, 2, 1, 2, -1, 3),
]


def _upfirdn_args(case, dtype, requires_grad):
    shape, cl, taps, *ints = case
    x = torch.randn(shape, dtype=dtype)
    if cl:
        x = x.contiguous(memory_format=torch.channels_last)
    w = _taps(taps, _kernels.opmath(dtype))
    return (x.requires_grad_(requires_grad), w, *ints)


@pytest.mark.parametrize("case", range(len(UPFIRDN_CASES)))
def test_opcheck_upfirdn2d(case):
    for dtype, rg in ((torch.float32, False), (torch.float64, True)):
        torch.library.opcheck(ops.upfirdn2d.default,
                              _upfirdn_args(UPFIRDN_CASES[case], dtype, rg))


def _bias_act_args(act, with_b, dim, clamp, channels_last, dtype=torch.float64, rg=True):
    x = torch.randn(2, 5, 3, 4, dtype=dtype)
    if channels_last:
        x = x.contiguous(memory_format=torch.channels_last)
    b = torch.randn(x.shape[dim], dtype=dtype).requires_grad_(rg) if with_b else None
    spec = ACTIVATIONS[act]
    return (x.requires_grad_(rg), b, dim if with_b else 0, spec.code, 0.2, spec.def_gain, clamp)


BIAS_ACT_CASES = [("lrelu", True, 1, -1.0, True), ("tanh", True, 1, 0.7, False),
                  ("swish", False, 0, -1.0, False), ("elu", True, 3, 0.5, True)]


@pytest.mark.parametrize("case", BIAS_ACT_CASES, ids=[c[0] for c in BIAS_ACT_CASES])
def test_opcheck_bias_act_family(case):
    args = _bias_act_args(*case)
    torch.library.opcheck(ops.bias_act.default, args)
    x, b, *rest = args
    dy = torch.randn_like(x).requires_grad_(True)
    for want_db in (False, b is not None):
        torch.library.opcheck(ops.bias_act_grad.default, (dy, x, b, *rest, want_db))
    # The second-derivative op has no derivative itself: check it without grads.
    g = torch.randn_like(x)
    plain = [t.detach() if t is not None else None for t in (g, dy, x, b)]
    torch.library.opcheck(ops.bias_act_grad2.default, (*plain, *rest, b is not None),
                          test_utils=("test_schema", "test_faketensor",
                                      "test_aot_dispatch_static"))


@pytest.mark.parametrize("case", range(len(UPFIRDN_CASES)))
def test_upfirdn2d_op_gradgradcheck(case):
    x, w, *ints = _upfirdn_args(UPFIRDN_CASES[case], torch.float64, True)

    def fn(t):
        return ops.upfirdn2d(t, w, *ints)

    assert torch.autograd.gradcheck(fn, (x,))
    assert torch.autograd.gradgradcheck(fn, (x,))


@pytest.mark.parametrize("case", BIAS_ACT_CASES, ids=[c[0] for c in BIAS_ACT_CASES])
def test_bias_act_op_gradgradcheck(case):
    x, b, *rest = _bias_act_args(*case)
    if case[3] > 0:  # keep the samples off the clamp's kinks (finite differences jump there)
        x = (x.detach() * 0.2).requires_grad_(True)
    inputs = (x,) if b is None else (x, b)

    def fn(*t):
        return ops.bias_act(t[0], t[1] if len(t) > 1 else None, *rest)

    assert torch.autograd.gradcheck(fn, inputs)
    assert torch.autograd.gradgradcheck(fn, inputs)


def test_third_derivative_says_what_to_do():
    x, b, *rest = _bias_act_args("tanh", True, 1, -1.0, False)
    y = ops.bias_act(x, b, *rest)
    (dx,) = torch.autograd.grad(y.sum(), x, create_graph=True)
    (ddx,) = torch.autograd.grad(dx.square().sum(), x, create_graph=True)
    with pytest.raises(NotImplementedError, match="impl='ref'"):
        torch.autograd.grad(ddx.sum(), x)


@pytest.mark.parametrize("channels_last", [False, True])
def test_fake_kernels_predict_real_outputs(channels_last):
    """Shape, strides and dtype of each fake kernel equal the real kernel's, for every dtype the
    CPU kernels take, including non-dense inputs (copied to dense by the kernels)."""
    for dtype in _kernels.CPU_DTYPES:
        case = UPFIRDN_CASES[1] if channels_last else UPFIRDN_CASES[0]
        args = _upfirdn_args(case, dtype, False)
        x, b, *rest = _bias_act_args("lrelu", True, 1, -1.0, channels_last, dtype, False)
        strided = torch.randn(2, 5, 3, 8, dtype=dtype)[..., ::2]  # not dense
        calls = [
            (ops.upfirdn2d, args),
            (ops.bias_act, (x, b, *rest)),
            (ops.bias_act, (strided, None, 0, 3, 0.2, 1.0, -1.0)),
            (ops.bias_act_grad, (x, x, b, *rest, True)),
            (ops.bias_act_grad2, (x, x, x, b, *rest, False)),
        ]
        for op, real_args in calls:
            real = op(*real_args)
            with FakeTensorMode() as mode:
                fake_args = [mode.from_tensor(a) if isinstance(a, torch.Tensor) else a
                             for a in real_args]
                fake = op(*fake_args)
            real = real if isinstance(real, tuple) else (real,)
            fake = fake if isinstance(fake, tuple) else (fake,)
            for r, f in zip(real, fake):
                assert (r.shape, r.stride(), r.dtype) == (f.shape, f.stride(), f.dtype), op
