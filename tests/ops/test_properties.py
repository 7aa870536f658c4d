"""Properties that define the FIR-resampling and bias-activation ops (reference path)."""

from __future__ import annotations

import math

import pytest
import torch
import torch.nn.functional as F
from hypothesis import assume, given
from hypothesis import strategies as st

from ganblocks.ops import (
    bias_act,
    downsample2d,
    filter2d,
    setup_filter,
    upfirdn2d,
    upfirdn2d_transpose,
    upfirdn2d_transpose_params,
    upsample2d,
)

IMPL = "ref"


@st.composite
def upfirdn_args(draw, *, max_size: int = 9):
    """Random valid upfirdn2d arguments: input, filter (1-D, 2-D or None), up, down, padding."""
    n, c = draw(st.integers(1, 2)), draw(st.integers(1, 3))
    h, w = draw(st.integers(1, max_size)), draw(st.integers(1, max_size))
    kind = draw(st.sampled_from(["none", "1d", "2d"]))
    if kind == "none":
        f = None
    elif kind == "1d":
        f = torch.tensor(draw(st.lists(st.floats(-2, 2), min_size=1, max_size=6)))
    else:
        fh, fw = draw(st.integers(1, 5)), draw(st.integers(1, 5))
        seed = draw(st.integers(0, 2**16))
        f = torch.randn(fh, fw, generator=torch.Generator().manual_seed(seed))
    up = [draw(st.integers(1, 4)), draw(st.integers(1, 4))]
    down = [draw(st.integers(1, 3)), draw(st.integers(1, 3))]
    pad = [draw(st.integers(-2, 4)) for _ in range(4)]
    fw, fh = (1, 1) if f is None else (f.shape[-1], f.shape[0])
    assume(w * up[0] + pad[0] + pad[1] >= fw and h * up[1] + pad[2] + pad[3] >= fh)
    seed = draw(st.integers(0, 2**16))
    x = torch.randn(n, c, h, w, dtype=torch.float64, generator=torch.Generator().manual_seed(seed))
    return x, f, {"up": up, "down": down, "padding": pad}


@given(upfirdn_args())
def test_output_size_formula(args):
    x, f, kw = args
    fw, fh = (1, 1) if f is None else (f.shape[-1], f.shape[0])
    (ux, uy), (dx, dy), (x0, x1, y0, y1) = kw["up"], kw["down"], kw["padding"]
    y = upfirdn2d(x, f, **kw, impl=IMPL)
    h, w = x.shape[2:]
    assert y.shape == (x.shape[0], x.shape[1], (h * uy + y0 + y1 - fh) // dy + 1,
                       (w * ux + x0 + x1 - fw) // dx + 1)


@given(upfirdn_args(), st.floats(-3, 3), st.floats(-3, 3))
def test_linear_in_x(args, a, b):
    x, f, kw = args
    x2 = torch.randn_like(x)
    lhs = upfirdn2d(a * x + b * x2, f, **kw, impl=IMPL)
    rhs = a * upfirdn2d(x, f, **kw, impl=IMPL) + b * upfirdn2d(x2, f, **kw, impl=IMPL)
    torch.testing.assert_close(lhs, rhs, rtol=1e-10, atol=1e-10)


@given(upfirdn_args(), st.booleans(), st.floats(0.25, 4))
def test_adjoint(args, flip_filter, gain):
    """⟨A x, y⟩ = ⟨x, Aᵀ y⟩, with Aᵀ = upfirdn2d with up/down swapped and the filter flipped."""
    x, f, kw = args
    ax = upfirdn2d(x, f, **kw, flip_filter=flip_filter, gain=gain, impl=IMPL)
    y = torch.randn_like(ax)
    aty = upfirdn2d_transpose(
        y, f, input_size=x.shape[2:], **kw, flip_filter=flip_filter, gain=gain, impl=IMPL
    )
    assert aty.shape == x.shape
    lhs, rhs = (ax * y).sum(), (x * aty).sum()
    assert math.isclose(lhs.item(), rhs.item(), rel_tol=1e-9, abs_tol=1e-9)

    # The helper's arguments describe the same op: swapped factors, flipped filter.
    t = upfirdn2d_transpose_params(x.shape[2:], f, **kw)
    assert t["up"] == kw["down"] and t["down"] == kw["up"]
    via_kwargs = upfirdn2d(y, f, **t, flip_filter=not flip_filter, gain=gain, impl=IMPL)
    torch.testing.assert_close(via_kwargs, aty, rtol=0, atol=0)


@given(upfirdn_args())
def test_transpose_is_the_gradient(args):
    x, f, kw = args
    x = x.clone().requires_grad_(True)
    y = upfirdn2d(x, f, **kw, impl=IMPL)
    dy = torch.randn_like(y)
    (dx,) = torch.autograd.grad(y, x, dy)
    torch.testing.assert_close(
        upfirdn2d_transpose(dy, f, input_size=x.shape[2:], **kw, impl=IMPL), dx,
        rtol=1e-10, atol=1e-10,
    )


@given(upfirdn_args(), st.integers(1, 7), st.floats(0.25, 4), st.booleans())
def test_separable_equals_outer_product(args, taps, gain, flip):
    x, _, kw = args
    f1 = torch.rand(taps) + 0.1
    assume(x.shape[3] * kw["up"][0] + sum(kw["padding"][:2]) >= taps)
    assume(x.shape[2] * kw["up"][1] + sum(kw["padding"][2:]) >= taps)
    sep = upfirdn2d(x, f1, **kw, gain=gain, flip_filter=flip, impl=IMPL)
    full = upfirdn2d(x, torch.outer(f1, f1), **kw, gain=gain, flip_filter=flip, impl=IMPL)
    torch.testing.assert_close(sep, full, rtol=1e-6, atol=1e-6)


def _binomial(n: int) -> list[float]:
    return [float(math.comb(n - 1, k)) for k in range(n)]


@given(st.integers(2, 4), st.integers(1, 5), st.integers(6, 12), st.floats(-3, 3))
def test_upsample_then_downsample_keeps_constants(factor, binomial_taps, size, value):
    """A filter whose polyphase components all sum alike (box(factor) * binomial) is normalised,
    so up- then down-sampling a constant image keeps it, away from the zero-padded border."""
    taps = torch.nn.functional.conv1d(
        torch.ones(1, 1, factor), torch.tensor(_binomial(binomial_taps)).view(1, 1, -1),
        padding=binomial_taps - 1,
    ).flatten()
    f = setup_filter(taps.tolist(), separable=False)
    x = torch.full((1, 2, size, size), value, dtype=torch.float64)
    up = upsample2d(x, f, up=factor, impl=IMPL)
    assert up.shape[2:] == (size * factor, size * factor)
    border = len(taps)
    torch.testing.assert_close(
        up[..., border:-border, border:-border],
        torch.full_like(up[..., border:-border, border:-border], value),
    )
    down = downsample2d(up, f, down=factor, impl=IMPL)
    assert down.shape == x.shape
    b = 2 * border // factor + 1
    assume(size > 2 * b)
    torch.testing.assert_close(down[..., b:-b, b:-b], x[..., b:-b, b:-b])


@given(st.integers(1, 6), st.integers(1, 10), st.integers(1, 10))
def test_filter2d_keeps_size_and_constants(taps, h, w):
    f = setup_filter(_binomial(taps))
    x = torch.full((1, 1, h, w), 2.5, dtype=torch.float64)
    y = filter2d(x, f, impl=IMPL)
    assert y.shape == x.shape
    r = taps // 2 + 1
    if h > 2 * r and w > 2 * r:
        torch.testing.assert_close(y[..., r:-r, r:-r], x[..., r:-r, r:-r])


def _plain_activation(name: str, x: torch.Tensor, alpha: float) -> torch.Tensor:
    """Each activation written out from its textbook formula."""
    sig = 1 / (1 + torch.exp(-x))
    selu_alpha, selu_scale = 1.6732632423543772, 1.0507009873554805
    return {
        "linear": x,
        "relu": torch.where(x > 0, x, torch.zeros_like(x)),
        "lrelu": torch.where(x > 0, x, alpha * x),
        "tanh": (torch.exp(x) - torch.exp(-x)) / (torch.exp(x) + torch.exp(-x)),
        "sigmoid": sig,
        "elu": torch.where(x > 0, x, torch.exp(x) - 1),
        "selu": selu_scale * torch.where(x > 0, x, selu_alpha * (torch.exp(x) - 1)),
        "softplus": torch.log1p(torch.exp(x)),
        "swish": x * sig,
    }[name]


DEFAULT_GAIN = {"relu": math.sqrt(2), "lrelu": math.sqrt(2), "swish": math.sqrt(2)}
ACTS = ["linear", "relu", "lrelu", "tanh", "sigmoid", "elu", "selu", "softplus", "swish"]


@given(
    st.sampled_from(ACTS),
    st.lists(st.integers(1, 4), min_size=1, max_size=4),
    st.data(),
    st.one_of(st.none(), st.floats(0.0, 0.5)),
    st.one_of(st.none(), st.floats(0.1, 3)),
    st.one_of(st.none(), st.floats(0.0, 2)),
)
def test_bias_act_is_the_plain_composition(act, shape, data, alpha, gain, clamp):
    dim = data.draw(st.integers(0, len(shape) - 1))
    x = torch.randn(shape, dtype=torch.float64) * 3
    b = torch.randn(shape[dim], dtype=torch.float64)
    y = bias_act(x, b, dim=dim, act=act, alpha=alpha, gain=gain, clamp=clamp, impl=IMPL)
    view = [-1 if i == dim else 1 for i in range(len(shape))]
    expected = _plain_activation(act, x + b.view(view), 0.2 if alpha is None else alpha)
    expected = expected * (DEFAULT_GAIN.get(act, 1.0) if gain is None else gain)
    if clamp is not None:
        expected = expected.clamp(-clamp, clamp)
    torch.testing.assert_close(y, expected, rtol=1e-12, atol=1e-12)


# --- gradcheck / gradgradcheck in float64 -------------------------------------------------


@given(upfirdn_args(max_size=5), st.booleans())
def test_upfirdn2d_gradcheck(args, flip):
    x, f, kw = args
    x = x[:1, :2].clone().requires_grad_(True)
    fn = lambda t: upfirdn2d(t, f, **kw, flip_filter=flip, gain=1.5, impl=IMPL)  # noqa: E731
    assert torch.autograd.gradcheck(fn, (x,))
    assert torch.autograd.gradgradcheck(fn, (x,))


@pytest.mark.parametrize(
    "op, kw",
    [(upsample2d, {"up": 2}), (downsample2d, {"down": 2}), (filter2d, {}),
     (upsample2d, {"up": [3, 2], "padding": [1, 0, 0, 1]}), (downsample2d, {"down": [1, 3]})],
)
def test_wrappers_gradcheck(op, kw):
    x = torch.randn(1, 2, 7, 6, dtype=torch.float64, requires_grad=True)
    f = setup_filter([1, 3, 3, 1])
    fn = lambda t: op(t, f, **kw, impl=IMPL)  # noqa: E731
    assert torch.autograd.gradcheck(fn, (x,))
    assert torch.autograd.gradgradcheck(fn, (x,))


@pytest.mark.parametrize("act", ACTS)
def test_bias_act_gradcheck(act):
    gen = torch.Generator().manual_seed(0)
    x = torch.randn(2, 3, 4, dtype=torch.float64, generator=gen)
    x = (x + 0.05 * x.sign()).requires_grad_(True)  # keep away from the kinks at 0
    b = torch.zeros(3, dtype=torch.float64, requires_grad=True)
    fn = lambda t, bb: bias_act(t, bb, act=act, clamp=5.0, impl=IMPL)  # noqa: E731
    assert torch.autograd.gradcheck(fn, (x, b))
    assert torch.autograd.gradgradcheck(fn, (x, b))


@pytest.mark.parametrize("dtype", [torch.float32, torch.bfloat16, torch.float16])
def test_low_precision_inputs_follow_float64(dtype):
    f = setup_filter([1, 3, 3, 1])
    x = torch.randn(2, 3, 8, 8, dtype=torch.float64)
    tol = {torch.float32: 1e-5, torch.bfloat16: 3e-2, torch.float16: 3e-3}[dtype]
    for op in (lambda t: upsample2d(t, f, impl=IMPL), lambda t: downsample2d(t, f, impl=IMPL),
               lambda t: bias_act(t, torch.ones(3), act="lrelu", impl=IMPL)):
        y = op(x.to(dtype))
        assert y.dtype == dtype
        torch.testing.assert_close(y.double(), op(x), rtol=tol, atol=tol)
    assert f.dtype == torch.float32


def test_documented_example_values():
    # Zero insertion then a [1, 1] box: nearest-neighbour upsampling along x.
    x = torch.arange(4.0).reshape(1, 1, 1, 4)
    y = upfirdn2d(x, torch.ones(1, 2), up=[2, 1], padding=[1, 0, 0, 0])
    assert y.flatten().tolist() == [0, 0, 1, 1, 2, 2, 3, 3]
    # Downsampling keeps the first sample of every pair.
    assert upfirdn2d(torch.arange(6.0).view(1, 1, 1, 6), None, down=[2, 1]).flatten().tolist() \
        == [0, 2, 4]
    # A delta through a flipped / unflipped asymmetric filter lands where convolution says.
    delta = F.pad(torch.ones(1, 1, 1, 1), [2, 2, 0, 0])
    f = torch.tensor([[1.0, 2.0, 3.0]])
    conv = upfirdn2d(delta, f, padding=[2, 0, 0, 0]).flatten().tolist()
    corr = upfirdn2d(delta, f, padding=[2, 0, 0, 0], flip_filter=True).flatten().tolist()
    assert conv == [0, 0, 1, 2, 3]
    assert corr == [0, 0, 3, 2, 1]
