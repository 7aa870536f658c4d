"""The native kernels equal the reference path: golden cases, hypothesis-drawn parameters, every
layout, forward, backward and double backward, gradcheck/gradgradcheck (CPU here; the same tests
run on CUDA where a device is present)."""

from __future__ import annotations

import os

import pytest
import torch
from hypothesis import given
from hypothesis import strategies as st
from testutils import load_golden, rel_err, requires_cuda

from ganblocks.ops import (
    ACTIVATIONS,
    _bias_act_native,
    _kernels,
    _selfcheck,
    bias_act,
    downsample2d,
    filter2d,
    native,
    setup_filter,
    upfirdn2d,
    upsample2d,
)
from ganblocks.ops.testing import isolated_state

UPFIRDN = load_golden("upfirdn2d")
BIAS_ACT = load_golden("bias_act")
WRAPPERS = {"upsample2d": upsample2d, "downsample2d": downsample2d, "filter2d": filter2d}
TOL = {torch.float64: 1e-10, torch.float32: 1e-5, torch.bfloat16: 2e-2, torch.float16: 2e-3}
DEVICES = ["cpu"] + (["cuda"] if torch.cuda.is_available() else [])


@pytest.fixture(scope="module", autouse=True)
def built():
    """Build (or load from the cache) once per test process; a broken build fails loudly."""
    if os.environ.get("GANBLOCKS_NATIVE", "auto").strip().lower() in ("0", "off", "no", "false"):
        pytest.skip("native kernels disabled by GANBLOCKS_NATIVE=0")
    return native.build()


def _ids(cases, key):
    return [f"{i}-{c[key]}" for i, c in enumerate(cases)]


def _upfirdn_kw(case):
    return {
        "up": case["up"],
        "down": case["down"],
        "padding": case["padding"],
        "flip_filter": case["flip_filter"],
        "gain": case["gain"],
    }


# ---- golden cases -------------------------------------------------------------------------------


@pytest.mark.parametrize("case", UPFIRDN["cases"], ids=_ids(UPFIRDN["cases"], "filter_kind"))
def test_golden_upfirdn2d(case):
    x = case["x"].clone().requires_grad_(True)
    y = upfirdn2d(x, case["f"], **_upfirdn_kw(case), impl="native")
    assert y.shape == case["y"].shape
    assert rel_err(y, case["y"]) < 1e-10
    dy = case["dy"].clone().requires_grad_(True)
    (dx,) = torch.autograd.grad(y, x, dy, create_graph=True)
    assert rel_err(dx, case["dx"]) < 1e-10
    (ddy,) = torch.autograd.grad((dx * case["v"]).sum(), dy)
    assert rel_err(ddy, case["ddy"]) < 1e-10


@pytest.mark.parametrize("case", UPFIRDN["wrappers"], ids=_ids(UPFIRDN["wrappers"], "fn"))
def test_golden_wrappers(case):
    f = setup_filter(case["taps"])
    fn = WRAPPERS[case["fn"]]
    y = fn(case["x"], f, padding=case["padding"], gain=case["gain"], impl="native")
    assert rel_err(y, case["y"]) < 1e-10


@pytest.mark.parametrize("case", BIAS_ACT["cases"], ids=_ids(BIAS_ACT["cases"], "act"))
def test_golden_bias_act(case):
    x = case["x"].clone().requires_grad_(True)
    b = None if case["b"] is None else case["b"].clone().requires_grad_(True)
    kw = {k: case[k] for k in ("dim", "act", "alpha", "gain", "clamp")}
    y = bias_act(x, b, **kw, impl="native")
    assert rel_err(y, case["y"]) < 1e-10
    dy = case["dy"].clone().requires_grad_(True)
    inputs = [x] if b is None else [x, b]
    grads = torch.autograd.grad(y, inputs, dy, create_graph=True)
    assert rel_err(grads[0], case["dx"]) < 1e-10
    if b is not None:
        assert rel_err(grads[1], case["db"]) < 1e-10
    ddy, ddx = torch.autograd.grad((grads[0] * case["v"]).sum(), [dy, x], allow_unused=True)
    ddx = torch.zeros_like(x) if ddx is None else ddx
    assert rel_err(ddy, case["ddy"]) < 1e-10
    assert rel_err(ddx, case["ddx"]) < 1e-10


# ---- hypothesis: native vs ref -------------------------------------------------------------------


def _layout(x: torch.Tensor, layout: str) -> torch.Tensor:
    """The same values as x in another memory layout."""
    if layout == "channels_last" and x.dim() == 4:
        return x.contiguous(memory_format=torch.channels_last)
    if layout == "strided":  # every other element of a larger buffer
        big = torch.zeros(*x.shape[:-1], 2 * x.shape[-1], dtype=x.dtype, device=x.device)
        big[..., ::2] = x
        return big[..., ::2]
    if layout == "transposed" and x.dim() >= 2:
        return x.transpose(-1, -2).contiguous().transpose(-1, -2)
    return x


def _filter(kind: str, fh: int, fw: int, seed: int):
    g = torch.Generator().manual_seed(seed)
    if kind == "none":
        return None
    if kind == "1d":
        return torch.randn(fw, generator=g)
    if kind == "rank1":  # a 2-D filter that the CPU kernel splits into two 1-D passes
        return setup_filter(torch.rand(fw, generator=g) + 0.5)
    return torch.randn(fh, fw, generator=g)


@st.composite
def upfirdn_params(draw):
    kind = draw(st.sampled_from(["none", "1d", "2d", "rank1"]))
    fw = draw(st.integers(1, 6))
    fh = draw(st.integers(1, 6)) if kind == "2d" else fw
    f = _filter(kind, fh, fw, draw(st.integers(0, 2**16)))
    fw, fh = (1, 1) if f is None else (f.shape[-1], f.shape[0])
    n, c = draw(st.integers(1, 2)), draw(st.integers(1, 3))
    h, w = draw(st.integers(1, 8)), draw(st.integers(1, 8))
    up = [draw(st.integers(1, 4)), draw(st.integers(1, 4))]
    down = [draw(st.integers(1, 4)), draw(st.integers(1, 4))]
    x0, y0 = draw(st.integers(-3, 4)), draw(st.integers(-3, 4))
    x1 = max(draw(st.integers(-3, 4)), fw - w * up[0] - x0)  # keep the output non-empty
    y1 = max(draw(st.integers(-3, 4)), fh - h * up[1] - y0)
    kw = {
        "up": up,
        "down": down,
        "padding": [x0, x1, y0, y1],
        "flip_filter": draw(st.booleans()),
        "gain": draw(st.sampled_from([1.0, 2.0, 0.37])),
    }
    shape = (n, c, h, w)
    layout = draw(st.sampled_from(["contiguous", "channels_last", "strided", "transposed"]))
    return shape, f, kw, layout, draw(st.integers(0, 2**16))


def _compare_upfirdn(shape, f, kw, layout, seed, dtype, device):
    g = torch.Generator().manual_seed(seed)
    x = torch.randn(shape, generator=g, dtype=torch.float64).to(device=device, dtype=dtype)
    f = None if f is None else f.to(device)
    x = _layout(x, layout).requires_grad_(True)
    y_ref = upfirdn2d(x, f, **kw, impl="ref")
    y = upfirdn2d(x, f, **kw, impl="native")
    tol = TOL[dtype]
    assert y.shape == y_ref.shape and y.dtype == y_ref.dtype
    assert rel_err(y, y_ref) < tol
    dy = torch.randn(y.shape, generator=g, dtype=torch.float64).to(device, dtype)
    dy.requires_grad_(True)
    v = torch.randn(shape, generator=g, dtype=torch.float64).to(device, dtype)
    (dx_ref,) = torch.autograd.grad(y_ref, x, dy, create_graph=True)
    (dx,) = torch.autograd.grad(y, x, dy, create_graph=True)
    assert rel_err(dx, dx_ref) < tol
    (ddy_ref,) = torch.autograd.grad((dx_ref * v).sum(), dy)
    (ddy,) = torch.autograd.grad((dx * v).sum(), dy)
    assert rel_err(ddy, ddy_ref) < tol


@given(case=upfirdn_params(), dtype=st.sampled_from([torch.float64, torch.float32]))
def test_upfirdn2d_matches_ref(case, dtype):
    for device in DEVICES:
        _compare_upfirdn(*case, dtype, device)


@st.composite
def bias_act_params(draw):
    ndim = draw(st.integers(1, 4))
    shape = tuple(draw(st.integers(1, 5)) for _ in range(ndim))
    dim = draw(st.integers(0, ndim - 1))
    with_b = draw(st.booleans())
    kw = {
        "dim": dim,
        "act": draw(st.sampled_from(sorted(ACTIVATIONS))),
        "alpha": draw(st.sampled_from([None, 0.1, 0.5])),
        "gain": draw(st.sampled_from([None, 1.0, 0.5, 3.0])),
        "clamp": draw(st.sampled_from([None, 0.8, 256.0])),
    }
    layout = draw(st.sampled_from(["contiguous", "channels_last", "strided", "transposed"]))
    return shape, with_b, kw, layout, draw(st.integers(0, 2**16))


def _compare_bias_act(shape, with_b, kw, layout, seed, dtype, device):
    g = torch.Generator().manual_seed(seed)

    def rand(*s):
        return (2 * torch.randn(*s, generator=g, dtype=torch.float64)).to(device, dtype)

    x = _layout(rand(*shape), layout).requires_grad_(True)
    b = rand(shape[kw["dim"]]).requires_grad_(True) if with_b else None
    inputs = [x] if b is None else [x, b]
    y_ref = bias_act(x, b, **kw, impl="ref")
    y = bias_act(x, b, **kw, impl="native")
    tol = TOL[dtype]
    assert y.shape == y_ref.shape and y.dtype == y_ref.dtype
    assert rel_err(y, y_ref) < tol
    dy = rand(*shape).requires_grad_(True)
    v = rand(*shape)
    g_ref = torch.autograd.grad(y_ref, inputs, dy, create_graph=True)
    g_nat = torch.autograd.grad(y, inputs, dy, create_graph=True)
    for a, r in zip(g_nat, g_ref):
        assert a.dtype == r.dtype and rel_err(a, r) < tol
    dd_ref = torch.autograd.grad((g_ref[0] * v).sum(), [dy, *inputs], allow_unused=True)
    dd_nat = torch.autograd.grad((g_nat[0] * v).sum(), [dy, *inputs], allow_unused=True)
    for a, r, t in zip(dd_nat, dd_ref, [dy, *inputs]):
        a = torch.zeros_like(t) if a is None else a
        r = torch.zeros_like(t) if r is None else r
        assert rel_err(a, r) < tol


@given(case=bias_act_params(), dtype=st.sampled_from([torch.float64, torch.float32]))
def test_bias_act_matches_ref(case, dtype):
    for device in DEVICES:
        _compare_bias_act(*case, dtype, device)


@pytest.mark.parametrize("dtype", [torch.float64, torch.float32])
@pytest.mark.parametrize("act", sorted(ACTIVATIONS))
def test_bias_act_long_rows_match_ref(act, dtype):
    """Rows longer than a SIMD vector (vector loop + tail): planar and interleaved layouts."""
    kw = {"dim": 1, "act": act, "alpha": None, "gain": None, "clamp": 0.9}
    for shape, layout in [((2, 37, 5, 7), "channels_last"), ((2, 3, 9, 11), "contiguous")]:
        for device in DEVICES:
            _compare_bias_act(shape, True, kw, layout, 7, dtype, device)
            _compare_bias_act(shape, True, {**kw, "clamp": None}, layout, 8, dtype, device)
    _compare_bias_act((3, 1000), False, kw, "contiguous", 9, dtype, "cpu")


@pytest.mark.parametrize("layout", ["contiguous", "channels_last", "transposed"])
@pytest.mark.parametrize(
    "shape, f, kw",
    [
        # tall planes: the CPU kernel splits them into several strips of output rows
        ((1, 2, 1100, 37), setup_filter([1, 3, 3, 1]), {"up": 2, "padding": [2, 1, 2, 1]}),
        ((1, 2, 1100, 37), setup_filter([1, 3, 3, 1]), {"down": 2, "padding": 1}),
        ((1, 2, 700, 9), _filter("2d", 5, 3, 1), {"up": [1, 3], "down": [2, 1], "padding": 2}),
        # many channels: the channels-last kernel's channel loop
        ((2, 40, 9, 11), setup_filter([1, 2, 1], separable=True), {"up": 2, "padding": 1}),
        ((2, 40, 9, 11), _filter("2d", 4, 4, 2), {"down": 2, "padding": [1, 2, 1, 2]}),
    ],
)
def test_large_inputs_match_ref(shape, f, kw, layout):
    for device in DEVICES:
        _compare_upfirdn(shape, f, kw, layout, 11, torch.float64, device)


# ---- bfloat16 (loosely) ---------------------------------------------------------------------


@pytest.mark.parametrize("device", DEVICES)
@pytest.mark.parametrize(
    "fn, kw",
    [
        (upsample2d, {}),
        (downsample2d, {}),
        (filter2d, {"padding": [1, 0, 2, -1]}),
        (upfirdn2d, {"up": [2, 1], "down": [1, 3], "padding": [3, 1, 0, 2]}),
    ],
)
def test_bfloat16_upfirdn2d(device, fn, kw):
    f = setup_filter([1, 3, 3, 1], device=device)
    # The reference runs in float32 on the same (bfloat16-representable) values.
    x32 = torch.randn(2, 3, 12, 10, device=device).bfloat16().float().requires_grad_(True)
    x16 = x32.detach().bfloat16().requires_grad_(True)
    y_ref = fn(x32, f, **kw, impl="ref")
    y = fn(x16, f, **kw, impl="native")
    assert y.dtype == torch.bfloat16
    assert rel_err(y, y_ref) < 2e-2
    dy = torch.randn_like(y_ref)
    (dx_ref,) = torch.autograd.grad(y_ref, x32, dy)
    (dx,) = torch.autograd.grad(y, x16, dy.bfloat16())
    assert rel_err(dx, dx_ref) < 2e-2


@pytest.mark.parametrize("device", DEVICES)
@pytest.mark.parametrize("act", ["lrelu", "tanh", "swish"])
def test_bfloat16_bias_act(device, act):
    x32 = torch.randn(2, 5, 6, 7, device=device).bfloat16().float().requires_grad_(True)
    b32 = torch.randn(5, device=device).bfloat16().float().requires_grad_(True)
    x16 = x32.detach().bfloat16().requires_grad_(True)
    b16 = b32.detach().bfloat16().requires_grad_(True)
    y_ref = bias_act(x32, b32, act=act, clamp=1.5, impl="ref")
    y = bias_act(x16, b16, act=act, clamp=1.5, impl="native")
    assert y.dtype == torch.bfloat16 and rel_err(y, y_ref) < 2e-2
    dy = torch.randn_like(y_ref)
    g_ref = torch.autograd.grad(y_ref, [x32, b32], dy)
    g = torch.autograd.grad(y, [x16, b16], dy.bfloat16())
    for a, r in zip(g, g_ref):
        assert a.dtype == torch.bfloat16 and rel_err(a, r) < 2e-2


# ---- gradcheck / gradgradcheck through the native kernels ------------------------------------


@pytest.mark.parametrize(
    "f, kw",
    [
        (setup_filter([1, 3, 3, 1]), {"up": 2, "padding": [2, 1]}),
        (setup_filter([1, 2, 1], separable=True), {"down": [2, 3], "padding": [1, 0, 2, 1]}),
        (torch.arange(6.0).reshape(2, 3) - 2, {"up": [1, 3], "down": [2, 1], "padding": -1}),
    ],
)
def test_gradcheck_upfirdn2d(f, kw):
    x = torch.randn(1, 2, 5, 6, dtype=torch.float64, requires_grad=True)

    def fn(t):
        return upfirdn2d(t, f, **kw, impl="native")

    assert torch.autograd.gradcheck(fn, (x,))
    assert torch.autograd.gradgradcheck(fn, (x,))


@pytest.mark.parametrize("act", sorted(ACTIVATIONS))
def test_gradcheck_bias_act(act):
    g = torch.Generator().manual_seed(3)
    x = torch.randn(2, 3, 4, generator=g, dtype=torch.float64).requires_grad_(True)
    b = torch.randn(3, generator=g, dtype=torch.float64).requires_grad_(True)

    def fn(t, bias):
        return bias_act(t, bias, act=act, impl="native")

    assert torch.autograd.gradcheck(fn, (x, b))
    assert torch.autograd.gradgradcheck(fn, (x, b))


def test_upfirdn2d_third_order_matches_ref():
    """The backward of the native op is the native op again, so any order works."""
    f = setup_filter([1, 3, 3, 1])
    outs = []
    for impl in ("ref", "native"):
        x = torch.linspace(-1, 1, 2 * 7 * 6, dtype=torch.float64).reshape(1, 2, 7, 6)
        x.requires_grad_(True)
        dy = torch.ones(1, 2, 14, 12, dtype=torch.float64, requires_grad=True)
        y = upfirdn2d(x, f, up=2, padding=[2, 1, 2, 1], impl=impl)
        (dx,) = torch.autograd.grad((y**2 * dy).sum(), x, create_graph=True)
        (ddy,) = torch.autograd.grad((dx**2).sum(), dy, create_graph=True)
        (dddx,) = torch.autograd.grad(ddy.sum(), x)
        outs.append(dddx)
    assert rel_err(outs[1], outs[0]) < 1e-10


def test_bias_act_third_order_raises_clearly():
    x = torch.randn(3, 4, dtype=torch.float64, requires_grad=True)
    y = bias_act(x, act="tanh", impl="native")
    (dx,) = torch.autograd.grad(y.sum(), x, create_graph=True)
    (ddx,) = torch.autograd.grad(dx.sum(), x, create_graph=True)
    with pytest.raises(NotImplementedError, match=r"third derivatives .* impl='ref'"):
        torch.autograd.grad(ddx.sum(), x)


# ---- layouts, dtypes, dispatch -------------------------------------------------------------------


@pytest.mark.parametrize("device", DEVICES)
def test_channels_last_is_preserved(device):
    f = setup_filter([1, 3, 3, 1], device=device)
    x = torch.randn(2, 5, 8, 8, device=device).contiguous(memory_format=torch.channels_last)
    for fn in (upsample2d, downsample2d, filter2d):
        y = fn(x, f, impl="native")
        assert y.is_contiguous(memory_format=torch.channels_last)
        assert rel_err(y, fn(x.contiguous(), f, impl="ref")) < 1e-5
    y = bias_act(x, torch.randn(5, device=device), act="lrelu", impl="native")
    assert y.is_contiguous(memory_format=torch.channels_last)


@pytest.mark.parametrize(
    "shape, kw",
    [
        # Wide channels-last rows: many strips of output rows, each re-filtering its halo.
        ((2, 48, 150, 40), {"down": 2}),
        ((1, 33, 97, 21), {"up": 2}),
        ((2, 24, 131, 17), {"up": [1, 2], "down": [2, 1], "padding": [3, 4, 7, 2]}),
        ((1, 64, 60, 64), {"down": 3, "padding": 5}),
        # Channels that fill whole register blocks of the tap loops (64 floats) and a remainder.
        ((1, 80, 30, 26), {"down": 2}),
        # Planar (NCHW) rows this wide also split into strips.
        ((1, 2, 120, 1100), {"down": 2, "padding": [5, 6, 5, 6]}),
    ],
)
@pytest.mark.parametrize("dtype", [torch.float64, torch.float32, torch.bfloat16])
def test_channels_last_separable_strips(shape, kw, dtype):
    """Channels-last with a 12-tap separable filter runs the two-pass kernel strip by strip
    (strips of several filter heights, halos re-filtered): equal to the reference everywhere,
    including the first and last rows of each strip."""
    torch.manual_seed(0)
    taps = [1, 4, 9, 15, 20, 22, 22, 20, 15, 9, 4, 1]
    f = setup_filter(taps, separable=True)
    layout = torch.channels_last if shape[1] > 2 else torch.contiguous_format
    x = torch.randn(shape, dtype=dtype).contiguous(memory_format=layout)
    y = upfirdn2d(x, f.to(torch.float64 if dtype == torch.float64 else torch.float32), **kw,
                  impl="native")
    assert y.is_contiguous(memory_format=layout)
    ref = upfirdn2d(x.double().contiguous(), f.double(), **kw, impl="ref")
    assert rel_err(y.double(), ref) < TOL[dtype]


@pytest.mark.parametrize("channels", [3, 16, 37, 64, 80, 150])
@pytest.mark.parametrize("dtype", [torch.float64, torch.float32, torch.bfloat16])
@pytest.mark.parametrize("kw", [{"down": 2, "padding": 1}, {"up": 2, "padding": [2, 1, 2, 1]},
                                {"padding": [3, 2, 1, 3]},
                                {"down": [3, 2], "padding": [-1, 2, 2, 0]}])
def test_channels_last_general_filter(channels, dtype, kw):
    """Channels-last with a filter that is not an outer product runs the direct kernel: the
    interior columns four output pixels at a time when not upsampled horizontally and the
    channels fill whole vectors, the others pixel by pixel, all taps summed over the channels in
    register blocks (whole blocks and remainders); equal to the reference, border columns
    included."""
    gen = torch.Generator().manual_seed(channels)
    f = torch.rand(5, 4, generator=gen, dtype=torch.float64) + 0.1  # rank 5 almost surely
    x = torch.randn(2, channels, 11, 23, generator=gen, dtype=torch.float64)
    x = x.to(dtype).contiguous(memory_format=torch.channels_last)
    y = upfirdn2d(x, f.to(torch.float64 if dtype == torch.float64 else torch.float32), **kw,
                  impl="native")
    assert y.is_contiguous(memory_format=torch.channels_last)
    ref = upfirdn2d(x.double().contiguous(), f, **kw, impl="ref")
    assert rel_err(y.double(), ref) < TOL[dtype]


def test_rank1_and_general_filters_agree():
    """A rank-1 2-D filter (split into two passes) equals the same taps as a 1-D separable filter
    and as a slightly perturbed, non-separable 2-D filter (the general kernel) within its size."""
    x = torch.randn(2, 3, 9, 11, dtype=torch.float64)
    taps = torch.tensor([1.0, 3.0, 3.0, 1.0])
    f2 = setup_filter(taps)
    f1 = setup_filter(taps, separable=True)
    kw = {"up": 2, "down": [1, 2], "padding": [2, 1, 0, 3]}
    y2 = upfirdn2d(x, f2, **kw, impl="native")
    assert rel_err(y2, upfirdn2d(x, f1, **kw, impl="native")) < 1e-12
    bump = torch.zeros(4, 4)
    bump[1, 2] = 1e-3
    y_bumped = upfirdn2d(x, f2 + bump, **kw, impl="native")
    assert rel_err(y_bumped, upfirdn2d(x, f2 + bump, **kw, impl="ref")) < 1e-10
    assert 1e-5 < rel_err(y_bumped, y2) < 1e-2


def test_bias_dtype_differs_from_x():
    x = torch.randn(2, 3, 4, dtype=torch.float64, requires_grad=True)
    b = torch.randn(3, dtype=torch.float32, requires_grad=True)
    outs = []
    for impl in ("ref", "native"):
        y = bias_act(x, b, act="swish", clamp=1.0, impl=impl)
        outs.append((y, *torch.autograd.grad(y.sum(), [x, b])))
    for a, r in zip(outs[1], outs[0]):
        assert a.dtype == r.dtype and rel_err(a, r) < 1e-6


def test_impl_none_uses_native_and_unsupported_dtypes_fall_back():
    x = torch.randn(1, 2, 4, 4)
    for dtype in _kernels.CPU_DTYPES:
        assert native.resolve_impl(None, x.to(dtype)) == "native"
        assert native.resolve_impl("native", x.to(dtype)) == "native"
    meta = x.to("meta")  # a device without native kernels
    assert native.resolve_impl(None, meta) == "ref"
    with pytest.raises(TypeError, match=r"impl='native'.*on meta"):
        native.resolve_impl("native", meta)
    assert upsample2d(meta, setup_filter([1, 1])).shape == (1, 2, 8, 8)  # quietly the reference
    with pytest.raises(ValueError, match=r"^impl: .*'fast'"):
        native.resolve_impl("fast", x)


def test_filter_with_requires_grad_raises():
    x = torch.randn(1, 1, 4, 4)
    f = setup_filter([1, 2, 1]).requires_grad_(True)
    with pytest.raises(ValueError, match=r"^f: .*requires_grad.*detach"):
        upfirdn2d(x, f, impl="native")
    with torch.no_grad():  # no graph is recorded: nothing to refuse
        upfirdn2d(x, f, impl="native")
    assert upfirdn2d(x, f.detach(), impl="native").shape == (1, 1, 2, 2)


def test_empty_batch():
    x = torch.randn(0, 3, 4, 4)
    assert upsample2d(x, setup_filter([1, 3, 3, 1]), impl="native").shape == (0, 3, 8, 8)
    assert bias_act(x, torch.zeros(3), act="relu", impl="native").shape == (0, 3, 4, 4)


def test_self_check_mismatch_warns_once_and_is_remembered():
    """The per-configuration self-check (run for CUDA calls): a mismatch warns loudly once."""
    key = ("upfirdn2d", torch.float32, "test-config")
    with isolated_state():
        with pytest.warns(native.NativeKernelWarning, match="DISAGREES"):
            assert not _selfcheck.verified_ok(key, lambda: 0.5)
        calls = []
        assert not _selfcheck.verified_ok(key, lambda: calls.append(1) or 0.0)
        assert calls == []
        assert _selfcheck.verified_ok((*key, "ok"), lambda: 1e-7)


@requires_cuda
def test_cuda_tiled_paths_match_ref():
    """Every tiled fast path (up or down 1/2/4, both layouts) and the generic kernel on CUDA."""
    for dtype in (torch.float32, torch.float64, torch.float16, torch.bfloat16):
        for layout in ("contiguous", "channels_last"):
            for up, down in [(1, 1), (2, 1), (4, 1), (1, 2), (1, 4), (3, 2)]:
                for taps in ([1, 3, 3, 1], [1, 2, 1], list(range(1, 11))):
                    f = setup_filter(taps, device="cuda")
                    x = torch.randn(2, 20, 37, 29, device="cuda", dtype=dtype)
                    x = _layout(x, layout)
                    kw = {"up": up, "down": down, "padding": [2, 1, 3, 0]}
                    y = upfirdn2d(x, f, **kw, impl="native")
                    y_ref = upfirdn2d(x.double(), f, **kw, impl="ref")
                    assert rel_err(y, y_ref) < TOL[dtype] * 10, (dtype, layout, up, down, taps)


@pytest.mark.parametrize("grad", [False, True])
def test_default_impl_takes_the_faster_path_by_size_on_cpu(grad, monkeypatch):
    """impl=None sends small CPU tensors to the reference (the custom op's per-call cost loses
    there, see benchmarks/ops.py) and large ones to the kernels; the values agree either way."""
    import importlib

    mod = importlib.import_module("ganblocks.ops.bias_act")  # the module, not the function
    calls = []
    real = _bias_act_native.bias_act
    monkeypatch.setattr(_bias_act_native, "bias_act",
                        lambda *a: calls.append(a[0].numel()) or real(*a))
    limit = mod.SMALL_WITH_GRAD if grad else mod.SMALL_FORWARD
    for numel, expect_native in ((limit // 2, False), (limit - 1, False), (limit, True),
                                 (2 * limit, True)):
        calls.clear()
        x = torch.randn(numel, 1, dtype=torch.float64, requires_grad=grad)
        b = torch.randn(1, dtype=torch.float64, requires_grad=grad)
        y = bias_act(x, b, act="lrelu")
        assert (calls == [numel]) == expect_native, (numel, calls)
        ref = bias_act(x, b, act="lrelu", impl="ref")
        torch.testing.assert_close(y, ref, rtol=1e-12, atol=1e-12)
        if grad:
            torch.testing.assert_close(torch.autograd.grad(y.sum(), x)[0],
                                       torch.autograd.grad(ref.sum(), x)[0])
    # An explicit impl='native' always runs the kernels.
    calls.clear()
    bias_act(torch.randn(8, 4, dtype=torch.float64), None, impl="native")
    assert calls == [32]
    # Without a recorded gradient (no_grad), the forward threshold applies.
    calls.clear()
    with torch.no_grad():
        bias_act(torch.randn(mod.SMALL_FORWARD, 1, dtype=torch.float64, requires_grad=True))
    assert calls == [mod.SMALL_FORWARD]
    # A bias that records a gradient counts too (x without one), between the two thresholds.
    calls.clear()
    b = torch.randn(1, dtype=torch.float64, requires_grad=True)
    bias_act(torch.randn(mod.SMALL_FORWARD, 1, dtype=torch.float64), b)
    assert calls == []
    bias_act(torch.randn(mod.SMALL_FORWARD, 1, dtype=torch.float64), b.detach())
    assert calls == [mod.SMALL_FORWARD]
