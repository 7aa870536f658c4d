"""EqualLinear, EqualConv2d, PixelNorm: against independent references, init statistics, lr_mul."""

from __future__ import annotations

import math

import pytest
import torch
import torch.nn.functional as F
from hypothesis import given
from hypothesis import strategies as st

from ganblocks.nn import EqualConv2d, EqualLinear, PixelNorm
from ganblocks.ops import setup_filter, upfirdn2d, upsample2d

ALPHA = 0.2  # lrelu's default negative slope


def act_ref(y: torch.Tensor, act: str) -> torch.Tensor:
    """Activations with their default gains, written with plain torch ops."""
    if act == "linear":
        return y
    if act == "relu":
        return F.relu(y) * math.sqrt(2)
    if act == "lrelu":
        return F.leaky_relu(y, ALPHA) * math.sqrt(2)
    raise AssertionError(act)


def second_moment_factor(act: str) -> float:
    """E[(gain·act(z))²] / E[z²] for z ~ N(0, σ²): linear 1, relu 2·½ = 1, lrelu 2·(1+α²)/2."""
    return {"linear": 1.0, "relu": 1.0, "lrelu": 1.0 + ALPHA**2}[act]


@given(
    lead=st.lists(st.integers(1, 3), min_size=1, max_size=3),
    fin=st.integers(1, 9),
    fout=st.integers(1, 9),
    act=st.sampled_from(["linear", "relu", "lrelu"]),
    lr_mul=st.sampled_from([0.01, 0.5, 1.0, 3.0]),
    bias=st.booleans(),
    seed=st.integers(0, 2**16),
)
def test_equal_linear_matches_reference(lead, fin, fout, act, lr_mul, bias, seed):
    torch.manual_seed(seed)
    layer = EqualLinear(fin, fout, bias=bias, bias_init=0.3, lr_mul=lr_mul, activation=act).double()
    with torch.no_grad():
        if bias:
            layer.bias.normal_()
    x = torch.randn(*lead, fin, dtype=torch.float64)
    w = layer.weight * lr_mul / math.sqrt(fin)
    b = layer.bias * lr_mul if bias else None
    expected = act_ref(F.linear(x, w, b), act)
    y = layer(x)
    assert y.shape == (*lead, fout)
    torch.testing.assert_close(y, expected)


def test_bias_init_is_in_real_units():
    layer = EqualLinear(4, 3, bias_init=1.5, lr_mul=0.01)
    torch.testing.assert_close(layer.bias * layer.bias_gain, torch.full((3,), 1.5))
    with torch.no_grad():
        layer.weight.zero_()
    torch.testing.assert_close(layer(torch.randn(2, 4)), torch.full((2, 3), 1.5))
    conv = EqualConv2d(2, 3, 3, bias_init=-0.5, lr_mul=0.1)
    torch.testing.assert_close(conv.bias * conv.bias_gain, torch.full((3,), -0.5))


def conv_reference(layer: EqualConv2d, x: torch.Tensor) -> torch.Tensor:
    """The definition of conv2d_resample written out: zero insertion + FIR with the conv padding
    applied on the up-sampled grid (before the FIR), dilated conv with the effective weight, FIR +
    subsampling (its centring padding applied before the conv), then bias and activation."""
    w = layer.weight * layer.weight_gain
    f = setup_filter([1, 3, 3, 1]).double()
    pad = layer.dilation * (layer.kernel_size // 2)
    if layer.up > 1:
        u = layer.up
        p0, p1 = pad + (4 + u - 1) // 2, pad + (4 - u) // 2
        x = upfirdn2d(x, f, up=u, padding=[p0, p1, p0, p1], gain=u * u)
        pad = 0
    if layer.down > 1:
        d = layer.down
        p0, p1 = pad + (4 - d + 1) // 2, pad + (4 - d) // 2
        y = F.conv2d(F.pad(x, [p0, p1, p0, p1]), w, dilation=layer.dilation)
        y = upfirdn2d(y, f, down=d)
    else:
        y = F.conv2d(x, w, padding=pad, dilation=layer.dilation)
    if layer.bias is not None:
        y = y + (layer.bias * layer.bias_gain).reshape(1, -1, 1, 1)
    return act_ref(y, layer.activation)


@given(
    cin=st.integers(1, 4),
    cout=st.integers(1, 4),
    k=st.sampled_from([1, 3, 5]),
    updown=st.sampled_from([(1, 1), (2, 1), (1, 2), (4, 1), (1, 4)]),
    dilation=st.sampled_from([1, 2]),
    hw=st.tuples(st.integers(2, 4), st.integers(2, 4)),
    act=st.sampled_from(["linear", "lrelu"]),
    bias=st.booleans(),
    seed=st.integers(0, 2**16),
)
def test_equal_conv_matches_definition(cin, cout, k, updown, dilation, hw, act, bias, seed):
    up, down = updown
    torch.manual_seed(seed)
    layer = EqualConv2d(
        cin, cout, k, up=up, down=down, dilation=dilation, activation=act, bias=bias, lr_mul=0.5
    ).double()
    with torch.no_grad():
        if bias:
            layer.bias.normal_()
    h, w = hw[0] * down * 2, hw[1] * down * 2  # sizes divisible by the down factor
    x = torch.randn(2, cin, h, w, dtype=torch.float64)
    y = layer(x)
    assert y.shape == (2, cout, h * up // down, w * up // down)
    torch.testing.assert_close(y, conv_reference(layer, x))


def test_one_by_one_conv_with_up_is_conv_then_upsample():
    layer = EqualConv2d(3, 5, 1, up=2).double()
    x = torch.randn(2, 3, 6, 7, dtype=torch.float64)
    f = setup_filter([1, 3, 3, 1]).double()
    expected = upsample2d(F.conv2d(x, layer.effective_weight()), f)
    y = layer(x)
    assert y.shape == (2, 5, 12, 14)
    torch.testing.assert_close(y, expected)


@given(
    kind=st.sampled_from(["linear", "conv1", "conv3"]),
    fan=st.integers(16, 96),
    act=st.sampled_from(["linear", "relu", "lrelu"]),
    lr_mul=st.sampled_from([0.01, 0.1, 1.0, 4.0]),
    sigma=st.sampled_from([0.5, 1.0, 2.0]),
    seed=st.integers(0, 2**16),
)
def test_init_keeps_activation_scale(kind, fan, act, lr_mul, sigma, seed):
    """At init, rms(out) = rms(in) · sqrt(E[(gain·act(z))²]/E[z²]) (pre-activation rms = rms(in)).

    That is rms(out) ≈ rms(in) for linear and relu·√2, and ≈ rms(in)·sqrt(1 + 0.2²) for lrelu·√2,
    whatever ``lr_mul`` is. Tolerance 6 %: the estimate averages ~10^5 outputs of one random layer.
    """
    # The inputs' random stream must differ from the weights'.
    gen = torch.Generator().manual_seed(seed + 2**20)
    torch.manual_seed(seed)
    if kind == "linear":
        layer = EqualLinear(fan, 256, lr_mul=lr_mul, activation=act)
        x = sigma * torch.randn(512, fan, generator=gen)
        y = layer(x)
    else:
        k = int(kind[-1])
        cin = max(fan // (k * k), 4)
        layer = EqualConv2d(cin, 64, k, lr_mul=lr_mul, activation=act)
        x = sigma * torch.randn(16, cin, 16, 16, generator=gen)
        y = layer(x)[:, :, k // 2 : 16 - k // 2, k // 2 : 16 - k // 2]  # no zero padding inside
    rms_in = x.square().mean().sqrt().item()
    rms_out = y.square().mean().sqrt().item()
    assert rms_out == pytest.approx(rms_in * math.sqrt(second_moment_factor(act)), rel=0.06)


def _effective(layer):
    bias = layer.bias * layer.bias_gain
    return layer.effective_weight().detach().clone(), bias.detach().clone()


@given(
    kind=st.sampled_from(["linear", "conv"]),
    lr_mul=st.floats(0.01, 10.0),
    act=st.sampled_from(["linear", "lrelu"]),
    seed=st.integers(0, 2**16),
)
def test_lr_mul_scales_sgd_step_by_its_square(kind, lr_mul, act, seed):
    """Two layers computing the same function, one with lr_mul=1 and one with lr_mul=m: one plain
    SGD step (same lr, same loss) moves the effective weight and bias of the second by exactly m²
    times the first's move (gradient w.r.t. the stored weight carries weight_gain, and so does the
    map from stored to effective weight)."""
    torch.manual_seed(seed)
    if kind == "linear":
        a = EqualLinear(5, 4, lr_mul=1.0, activation=act).double()
        b = EqualLinear(5, 4, lr_mul=lr_mul, activation=act).double()
        x = torch.randn(6, 5, dtype=torch.float64)
    else:
        a = EqualConv2d(3, 4, 3, lr_mul=1.0, activation=act).double()
        b = EqualConv2d(3, 4, 3, lr_mul=lr_mul, activation=act).double()
        x = torch.randn(2, 3, 5, 5, dtype=torch.float64)
    with torch.no_grad():
        a.bias.normal_()
        b.weight.copy_(a.weight / lr_mul)  # same effective weight: W·1/√fan = W'·m/√fan
        b.bias.copy_(a.bias / lr_mul)  # same effective bias
    target = torch.randn_like(a(x))
    torch.testing.assert_close(a(x), b(x))
    deltas = []
    for layer in (a, b):
        w0, b0 = _effective(layer)
        opt = torch.optim.SGD(layer.parameters(), lr=0.1)
        ((layer(x) - target) ** 2).sum().backward()
        opt.step()
        w1, b1 = _effective(layer)
        deltas.append((w1 - w0, b1 - b0))
    (dwa, dba), (dwb, dbb) = deltas
    assert dwa.abs().max() > 0
    torch.testing.assert_close(dwb, lr_mul**2 * dwa)
    torch.testing.assert_close(dbb, lr_mul**2 * dba)


@given(
    lr_mul=st.sampled_from([0.01, 1.0]),
    seed=st.integers(0, 2**16),
)
def test_stored_weights_are_standard_normal_over_lr_mul(lr_mul, seed):
    torch.manual_seed(seed)
    layer = EqualLinear(256, 256, lr_mul=lr_mul)
    stored = layer.weight.detach() * lr_mul
    assert stored.mean().item() == pytest.approx(0.0, abs=0.02)
    assert stored.std().item() == pytest.approx(1.0, rel=0.02)


def test_state_dict_is_plain_and_portable():
    torch.manual_seed(0)
    conv = EqualConv2d(3, 4, 3, up=2, lr_mul=0.1, activation="lrelu")
    assert set(conv.state_dict()) == {"weight", "bias"}  # the FIR filter is not saved
    fresh = EqualConv2d(3, 4, 3, up=2, lr_mul=0.1, activation="lrelu")
    fresh.load_state_dict(conv.state_dict())
    x = torch.randn(2, 3, 5, 5)
    torch.testing.assert_close(fresh(x), conv(x))
    # The filter follows dtype/device moves.
    conv64 = conv.double()
    assert conv64.resample_filter.dtype == torch.float64
    assert conv64(x.double()).dtype == torch.float64


def test_reset_parameters_redraws_weights():
    torch.manual_seed(0)
    layer = EqualLinear(8, 8, bias_init=0.25, lr_mul=0.5)
    before = layer.weight.detach().clone()
    with torch.no_grad():
        layer.bias.zero_()
    layer.reset_parameters()
    assert not torch.equal(before, layer.weight)
    torch.testing.assert_close(layer.bias * 0.5, torch.full((8,), 0.25))


@given(
    shape=st.sampled_from([(3, 8), (2, 5, 4, 3), (1, 1)]),
    scale=st.floats(0.01, 100.0),
    seed=st.integers(0, 2**16),
)
def test_pixel_norm_unit_rms_and_scale_invariant(shape, scale, seed):
    x = torch.randn(*shape, dtype=torch.float64, generator=torch.Generator().manual_seed(seed))
    norm = PixelNorm(eps=0.0)
    y = norm(x)
    torch.testing.assert_close(y.square().mean(1), torch.ones_like(y.square().mean(1)))
    torch.testing.assert_close(norm(scale * x), y)
    torch.testing.assert_close(y, x / x.square().mean(1, keepdim=True).sqrt())


def test_conv_gain_and_clamp_scale_together():
    torch.manual_seed(0)
    conv = EqualConv2d(3, 4, 3, activation="lrelu", conv_clamp=1.0)
    with torch.no_grad():
        conv.bias.normal_()
    x = torch.randn(2, 3, 6, 6) * 5
    y = conv(x)
    assert y.abs().max() <= 1.0 and (y.abs() == 1.0).any()
    # lrelu is positively homogeneous, so gain g scales output and clamp alike
    torch.testing.assert_close(conv(x, gain=0.5), 0.5 * y)
    unclamped = EqualConv2d(3, 4, 3, activation="lrelu")
    unclamped.load_state_dict(conv.state_dict())
    assert unclamped(x).abs().max() > 1.0
    down = EqualConv2d(3, 4, 3, down=2, persistent_filter=True)
    assert "resample_filter" in down.state_dict()
    assert "resample_filter" not in EqualConv2d(3, 4, 3, down=2).state_dict()
