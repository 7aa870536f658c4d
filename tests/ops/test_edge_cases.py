"""Edge cases both paths must agree on: negative gains with separable filters, zero channels, a
filter that requires grad under impl=None, argument checks (strings, NumPy scalars, flags,
NVlabs' impl='cuda'), NaN inputs, the float32 bias gradient of channels-last tensors, and
float16/bfloat16 through the native kernels."""

from __future__ import annotations

import os

import numpy as np
import pytest
import torch
from testutils import rel_err

from ganblocks.ops import (
    ACTIVATIONS,
    bias_act,
    downsample2d,
    native,
    setup_filter,
    upfirdn2d,
    upsample2d,
)

IMPLS = ["ref", "native"]


@pytest.fixture(scope="module", autouse=True)
def built():
    if os.environ.get("GANBLOCKS_NATIVE", "auto").strip().lower() in ("0", "off", "no", "false"):
        pytest.skip("native kernels disabled by GANBLOCKS_NATIVE=0")
    return native.build()


# ---- negative gain ------------------------------------------------------------------------------


@pytest.mark.parametrize("impl", IMPLS)
def test_negative_gain_with_separable_filter(impl):
    """A 1-D filter with gain g < 0 equals its 2-D outer product with the same gain (and the
    negated result of gain |g|), values and gradients; it used to give ~0 (a complex sqrt)."""
    x = torch.randn(2, 3, 9, 8, dtype=torch.float64, requires_grad=True)
    taps = torch.tensor([1.0, 4.0, 6.0, 4.0, 1.0]) / 16
    kw = {"up": 2, "down": 1, "padding": [2, 1, 3, 2]}
    y1 = upfirdn2d(x, taps, gain=-3.0, **kw, impl=impl)
    y2 = upfirdn2d(x, torch.outer(taps, taps), gain=-3.0, **kw, impl="ref")
    assert y1.dtype == x.dtype and not y1.is_complex()
    assert rel_err(y1, y2) < 1e-6  # float32 taps: the product rounds differently
    assert torch.equal(y1, -upfirdn2d(x, taps, gain=3.0, **kw, impl=impl))
    dy = torch.randn_like(y1)
    (g1,) = torch.autograd.grad(y1, x, dy)
    (g2,) = torch.autograd.grad(y2, x, dy)
    assert rel_err(g1, g2) < 1e-6


def test_setup_filter_rejects_negative_gain_for_a_separable_filter():
    with pytest.raises(ValueError, match=r"^gain: .*separable.*negative"):
        setup_filter([1, 2, 1], separable=True, gain=-2)
    f = setup_filter([1, 2, 1], gain=-2)  # the 2-D product carries it
    assert f.dtype == torch.float32 and float(f.sum()) == pytest.approx(-2.0)


# ---- zero channels, empty batches ---------------------------------------------------------------


@pytest.mark.parametrize("shape", [(2, 0, 6, 5), (0, 3, 6, 5)])
def test_empty_tensors_behave_the_same_on_both_paths(shape):
    f = setup_filter([1, 3, 3, 1])
    outs = {}
    for impl in IMPLS:
        x = torch.randn(shape, requires_grad=True)
        b = torch.randn(shape[1], requires_grad=True)
        y = downsample2d(upsample2d(x, f, impl=impl), f, impl=impl)
        z = bias_act(y, b, act="lrelu", impl=impl)
        gx, gb = torch.autograd.grad(z.sum(), [x, b], allow_unused=False)
        outs[impl] = (y.shape, z.shape, gx.shape, gb.shape, gb)
    assert outs["ref"][:4] == outs["native"][:4]
    assert outs["native"][1] == shape
    assert torch.equal(outs["ref"][4], outs["native"][4])


# ---- a filter that requires grad ----------------------------------------------------------------


def test_impl_none_with_a_trainable_filter_takes_the_reference_path():
    x = torch.randn(1, 2, 6, 6)
    f = setup_filter([1, 2, 1]).requires_grad_(True)
    y = upfirdn2d(x, f, up=2, padding=1)  # impl=None: no error, the filter gets its gradient
    (gf,) = torch.autograd.grad(y.sum(), f)
    y_ref = upfirdn2d(x, f, up=2, padding=1, impl="ref")
    (gf_ref,) = torch.autograd.grad(y_ref.sum(), f)
    assert torch.equal(y, y_ref) and torch.equal(gf, gf_ref)
    with pytest.raises(ValueError, match=r"^f: .*requires_grad"):
        upfirdn2d(x, f, impl="native")


# ---- argument checks ----------------------------------------------------------------------------

X = torch.randn(1, 2, 8, 8)


@pytest.mark.parametrize(
    "call, error, match",
    [
        (lambda: upfirdn2d(X, None, gain="2"), TypeError, r"^gain: .*real number"),
        (lambda: upsample2d(X, None, gain="2"), TypeError, r"^gain: "),
        (lambda: bias_act(X, gain="2"), TypeError, r"^gain: .*real number"),
        (lambda: bias_act(X, act="lrelu", alpha="0.2"), TypeError, r"^alpha: .*real number"),
        (lambda: bias_act(X, clamp="1"), TypeError, r"^clamp: .*real number"),
        (lambda: bias_act(X, clamp=float("nan")), ValueError, r"^clamp: .*finite"),
        (lambda: upfirdn2d(X, None, flip_filter=1), TypeError, r"^flip_filter: .*True or False"),
        (lambda: setup_filter([1, 2], flip_filter="yes"), TypeError, r"^flip_filter: "),
        (lambda: bias_act(X, dim=1.0), TypeError, r"^dim: .*integer"),
        (lambda: upfirdn2d(X, None, impl="fast"), ValueError, r"^impl: .*'cuda'"),
    ],
)
def test_argument_checks(call, error, match):
    with pytest.raises(error, match=match):
        call()


@pytest.mark.parametrize("impl", IMPLS)
def test_numpy_scalars_are_accepted_everywhere(impl):
    f = setup_filter(np.array([1, 3, 3, 1]), gain=np.float32(2.0), flip_filter=np.bool_(False))
    kw = {"up": np.int64(2), "down": [np.int32(1), np.int64(2)],
          "padding": [np.int64(2), np.int16(1), np.int8(1), np.int64(1)],
          "gain": np.float64(0.5), "flip_filter": np.bool_(True)}
    plain = {"up": 2, "down": [1, 2], "padding": [2, 1, 1, 1], "gain": 0.5, "flip_filter": True}
    assert torch.equal(upfirdn2d(X, f, **kw, impl=impl), upfirdn2d(X, f, **plain, impl=impl))
    b = torch.randn(2)
    y = bias_act(X, b, dim=np.int64(1), act="lrelu", alpha=np.float32(0.1), gain=np.int64(2),
                 clamp=np.float64(0.5), impl=impl)
    assert torch.equal(y, bias_act(X, b, dim=1, act="lrelu", alpha=float(np.float32(0.1)),
                                   gain=2.0, clamp=0.5, impl=impl))


def test_impl_cuda_is_nvlabs_spelling_of_native():
    f = setup_filter([1, 3, 3, 1])
    assert native.resolve_impl("cuda", X) == "native"
    assert torch.equal(upsample2d(X, f, impl="cuda"), upsample2d(X, f, impl="native"))
    assert torch.equal(bias_act(X, act="tanh", impl="cuda"), bias_act(X, act="tanh",
                                                                      impl="native"))


# ---- NaN inputs ---------------------------------------------------------------------------------


@pytest.mark.parametrize("clamp", [None, 0.5])
@pytest.mark.parametrize("act", sorted(ACTIVATIONS))
def test_nan_and_inf_inputs_give_the_reference_values_and_gradients(act, clamp):
    """Values, gradients and second derivatives at NaN, ±inf, 0 and ordinary points equal the
    reference's, NaN for NaN (which branch a NaN takes follows torch's own kernels). Except the
    derivatives of elu and selu at NaN: torch's CPU kernels give the z > 0 branch's value (1, 0)
    on some instruction sets and NaN on others; ours give NaN everywhere."""
    special = [float("nan"), float("inf"), -float("inf"), 0.0, -1.0, 2.0, 0.25, -0.25]
    x0 = torch.tensor(special, dtype=torch.float64).reshape(1, 8, 1)
    b0 = torch.tensor([0.0, 0.0, 0.0, 0.0, 0.5, -0.5, 0.0, 0.0], dtype=torch.float64)
    results = {}
    for impl in IMPLS:
        x, b = x0.clone().requires_grad_(True), b0.clone().requires_grad_(True)
        y = bias_act(x, b, act=act, clamp=clamp, impl=impl)
        gx, gb = torch.autograd.grad(y, [x, b], torch.ones_like(y), create_graph=True)
        second = [torch.zeros_like(x0)]
        if gx.requires_grad:
            second = torch.autograd.grad(gx.sum(), [x], allow_unused=True)
            second = [torch.zeros_like(x0) if s is None else s for s in second]
        results[impl] = [y, gx, gb, *second]
    if act in ("elu", "selu"):
        for impl in IMPLS:  # dx, db and ddx at the NaN (the first point)
            if impl != "ref":
                assert all(results[impl][k].reshape(-1)[0].isnan() for k in (1, 2, 3)), impl
            for k in (1, 2, 3):
                results[impl][k] = results[impl][k].detach().clone()
                results[impl][k].view(-1)[0] = 0.0  # compared above
    for name, r, n in zip(["y", "dx", "db", "ddx"], results["ref"], results["native"]):
        torch.testing.assert_close(n.detach(), r.detach(), equal_nan=True, rtol=1e-12, atol=0,
                                   msg=f"{act} clamp={clamp}: {name}")


# ---- bias gradient of float32 channels-last tensors ---------------------------------------------


def test_float32_channels_last_bias_gradient_is_accurate():
    """The per-channel sum over N·H·W elements of a channels-last tensor: within the reference's
    own rounding error (was 10x it), measured against a float64 sum."""
    gen = torch.Generator().manual_seed(0)
    x = torch.randn(8, 64, 32, 32, generator=gen).contiguous(memory_format=torch.channels_last)
    dy = (torch.randn(x.shape, generator=gen) + 10).contiguous(memory_format=torch.channels_last)
    b = torch.zeros(64, requires_grad=True)
    exact = dy.double().sum((0, 2, 3))
    errs = {}
    for impl in IMPLS:
        (db,) = torch.autograd.grad(bias_act(x, b, act="linear", impl=impl), b, dy)
        errs[impl] = (db.double() - exact).abs().max().item()
    assert errs["native"] <= max(2 * errs["ref"], 1e-6 * exact.abs().max().item()), errs


# ---- float16 / bfloat16 -------------------------------------------------------------------------


@pytest.mark.parametrize("layout", ["contiguous", "channels_last"])
@pytest.mark.parametrize("dtype", [torch.float16, torch.bfloat16])
def test_half_precision_native_matches_ref(dtype, layout):
    """Forward, gradient and R1-style double backward in float16/bfloat16 (vectorised
    conversions, long rows, tails) against the reference on the same rounded values in float32."""
    tol = {torch.float16: 4e-3, torch.bfloat16: 3e-2}[dtype]
    fmt = torch.channels_last if layout == "channels_last" else torch.contiguous_format
    gen = torch.Generator().manual_seed(1)
    x32 = torch.randn(2, 24, 13, 35, generator=gen).to(dtype).float()
    b32 = torch.randn(24, generator=gen).to(dtype).float()
    f = setup_filter([1, 3, 3, 1])
    f12 = setup_filter(list(range(1, 13)), separable=True)
    outs = {}
    for impl, dt in (("ref", torch.float32), ("native", dtype)):
        x = x32.to(dt).contiguous(memory_format=fmt).requires_grad_(True)
        b = b32.to(dt).requires_grad_(True)
        y = bias_act(upsample2d(x, f, impl=impl), None, act="swish", impl=impl)
        y = downsample2d(y, f12, impl=impl)
        z = bias_act(y, b, act="lrelu", clamp=4.0, impl=impl)
        assert z.dtype == dt
        gx, gb = torch.autograd.grad(z.square().sum(), [x, b], create_graph=True)
        (ggx,) = torch.autograd.grad(gx.float().square().sum(), x)
        outs[impl] = (z, gx, gb, ggx)
    for name, n, r in zip(["y", "dx", "db", "ddx"], outs["native"], outs["ref"]):
        assert rel_err(n, r) < tol * (3 if name == "ddx" else 1), (name, rel_err(n, r))
