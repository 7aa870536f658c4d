"""SpatialModulation, StyledConv2d, ModulatedConv2d / modulated_conv2d."""

from __future__ import annotations

import math

import pytest
import torch
import torch.nn.functional as F
from hypothesis import given
from hypothesis import strategies as st

from ganblocks.nn import ModulatedConv2d, SpatialModulation, StyledConv2d, modulated_conv2d
from ganblocks.ops import conv2d_resample, setup_filter, upfirdn2d


def gamma_beta_ref(mod: SpatialModulation, style: torch.Tensor):
    w = mod.affine.weight * mod.affine.weight_gain
    gb = F.conv2d(style, w, mod.affine.bias * mod.affine.bias_gain, padding=w.shape[-1] // 2)
    return gb[:, : mod.num_features], gb[:, mod.num_features :]


def spatial_modulation_ref(mod: SpatialModulation, x, style):
    """Instance norm written out (biased variance over H×W), then x̂·γ + β."""
    mean = x.mean(dim=(2, 3), keepdim=True)
    var = (x - mean).square().mean(dim=(2, 3), keepdim=True)
    gamma, beta = gamma_beta_ref(mod, style)
    return (x - mean) / torch.sqrt(var + mod.eps) * gamma + beta


@given(
    c=st.integers(1, 4),
    s=st.integers(1, 4),
    hw=st.tuples(st.integers(2, 7), st.integers(2, 7)),
    k=st.sampled_from([1, 3]),
    seed=st.integers(0, 2**16),
)
def test_spatial_modulation_matches_reference(c, s, hw, k, seed):
    torch.manual_seed(seed)
    mod = SpatialModulation(c, s, kernel_size=k).double()
    with torch.no_grad():
        mod.affine.bias.normal_()
    x = torch.randn(2, c, *hw, dtype=torch.float64) * 3 + 1
    style = torch.randn(2, s, *hw, dtype=torch.float64)
    y = mod(x, style)
    assert y.shape == x.shape
    torch.testing.assert_close(y, spatial_modulation_ref(mod, x, style))


def test_spatial_modulation_init_is_instance_norm_when_style_weights_vanish():
    """γ's bias starts at 1 and β's at 0: with zero style weights the layer is an instance norm."""
    mod = SpatialModulation(3, 5).double()
    with torch.no_grad():
        mod.affine.weight.zero_()
    x = torch.randn(2, 3, 6, 6, dtype=torch.float64)
    y = mod(x, torch.randn(2, 5, 6, 6, dtype=torch.float64))
    torch.testing.assert_close(y, F.instance_norm(x, eps=mod.eps))


@given(
    c=st.integers(1, 4),
    hw=st.tuples(st.integers(2, 6), st.integers(2, 6)),
    log_scale=st.floats(-3, 3),
    shift=st.floats(-10, 10),
    seed=st.integers(0, 2**16),
)
def test_spatial_modulation_invariant_to_per_channel_affine(c, hw, log_scale, shift, seed):
    """x ↦ a·x + b with a > 0 and b per image and channel leaves the output unchanged (up to the
    eps of the instance norm, taken tiny here so that the invariance is exact to rounding)."""
    gen = torch.Generator().manual_seed(seed)
    torch.manual_seed(seed)
    mod = SpatialModulation(c, 3, eps=1e-12).double()
    x = torch.randn(2, c, *hw, dtype=torch.float64, generator=gen)
    style = torch.randn(2, 3, *hw, dtype=torch.float64, generator=gen)
    a = math.exp(log_scale) * (0.5 + torch.rand(2, c, 1, 1, dtype=torch.float64, generator=gen))
    b = shift * torch.randn(2, c, 1, 1, dtype=torch.float64, generator=gen)
    torch.testing.assert_close(mod(a * x + b, style), mod(x, style), rtol=1e-6, atol=1e-6)


def styled_conv_ref(layer: StyledConv2d, x, style):
    h = spatial_modulation_ref(layer.modulation, x, style)
    conv = layer.conv
    w = conv.weight * conv.weight_gain
    pad = conv.kernel_size // 2
    if conv.up > 1:
        u, f = conv.up, setup_filter([1, 3, 3, 1]).double()
        p0, p1 = pad + (4 + u - 1) // 2, pad + (4 - u) // 2
        h = upfirdn2d(h, f, up=u, padding=[p0, p1, p0, p1], gain=u * u)
        pad = 0
    y = F.conv2d(h, w, conv.bias * conv.bias_gain, padding=pad)
    return F.leaky_relu(y, 0.2) * math.sqrt(2)


@given(
    cin=st.integers(1, 4),
    cout=st.integers(1, 4),
    k=st.sampled_from([1, 3]),
    up=st.sampled_from([1, 2]),
    hw=st.tuples(st.integers(2, 6), st.integers(2, 6)),
    seed=st.integers(0, 2**16),
)
def test_styled_conv_is_modulation_then_conv_then_bias_lrelu(cin, cout, k, up, hw, seed):
    torch.manual_seed(seed)
    layer = StyledConv2d(cin, cout, k, 3, up=up).double()
    with torch.no_grad():
        layer.conv.bias.normal_()
    x = torch.randn(2, cin, *hw, dtype=torch.float64)
    style = torch.randn(2, 3, *hw, dtype=torch.float64)
    y = layer(x, style)
    assert y.shape == (2, cout, hw[0] * up, hw[1] * up)
    torch.testing.assert_close(y, styled_conv_ref(layer, x, style))


def test_spatial_modulation_rejects_style_of_other_size():
    mod = SpatialModulation(4, 8)
    with pytest.raises(ValueError, match="style"):
        mod(torch.randn(2, 4, 8, 8), torch.randn(2, 8, 4, 4))
    with pytest.raises(ValueError, match="style"):
        mod(torch.randn(2, 4, 8, 8), torch.randn(1, 8, 8, 8))
    with pytest.raises(ValueError, match="style"):
        mod(torch.randn(2, 4, 8, 8), torch.randn(2, 7, 8, 8))


def per_sample_ref(x, w, s, *, demodulate, up, down, eps=1e-8):
    """Reference with an explicit loop over samples (fine in a test): modulate, demodulate,
    then a plain conv2d_resample per sample."""
    f = setup_filter([1, 3, 3, 1]).to(x.dtype)
    outs = []
    for n in range(x.shape[0]):
        wn = w * s[n].reshape(1, -1, 1, 1)
        if demodulate:
            wn = wn / torch.sqrt(wn.square().sum(dim=(1, 2, 3), keepdim=True) + eps)
        outs.append(
            conv2d_resample(x[n : n + 1], wn, f, up=up, down=down, padding=w.shape[-1] // 2)
        )
    return torch.cat(outs)


@given(
    n=st.integers(1, 3),
    cin=st.integers(1, 4),
    cout=st.integers(1, 4),
    k=st.sampled_from([1, 3]),
    updown=st.sampled_from([(1, 1), (2, 1), (1, 2)]),
    demodulate=st.booleans(),
    fused=st.booleans(),
    seed=st.integers(0, 2**16),
)
def test_modulated_conv_matches_per_sample_reference(
    n, cin, cout, k, updown, demodulate, fused, seed
):
    up, down = updown
    torch.manual_seed(seed)
    layer = ModulatedConv2d(
        cin, cout, k, 5, up=up, down=down, demodulate=demodulate, fused=fused, bias=False
    ).double()
    x = torch.randn(n, cin, 8, 8, dtype=torch.float64)
    style = torch.randn(n, 5, dtype=torch.float64)
    y = layer(x, style)
    assert y.shape == (n, cout, 8 * up // down, 8 * up // down)
    s = layer.affine(style)
    expected = per_sample_ref(
        x, layer.weight * layer.weight_gain, s, demodulate=demodulate, up=up, down=down
    )
    torch.testing.assert_close(y, expected)


@given(
    updown=st.sampled_from([(1, 1), (2, 1), (1, 2)]),
    demodulate=st.booleans(),
    seed=st.integers(0, 2**16),
)
def test_fused_and_unfused_routes_agree(updown, demodulate, seed):
    up, down = updown
    gen = torch.Generator().manual_seed(seed)
    x = torch.randn(3, 4, 8, 8, dtype=torch.float64, generator=gen)
    w = torch.randn(5, 4, 3, 3, dtype=torch.float64, generator=gen)
    s = torch.randn(3, 4, dtype=torch.float64, generator=gen)
    f = setup_filter([1, 3, 3, 1]).double()
    kw = dict(demodulate=demodulate, up=up, down=down, f=f, padding=1)
    torch.testing.assert_close(
        modulated_conv2d(x, w, s, fused=True, **kw), modulated_conv2d(x, w, s, fused=False, **kw)
    )


@given(
    cin=st.integers(1, 6),
    cout=st.integers(1, 6),
    k=st.sampled_from([1, 3, 5]),
    seed=st.integers(0, 2**16),
)
def test_all_ones_style_without_demod_is_a_plain_conv(cin, cout, k, seed):
    torch.manual_seed(seed)
    x = torch.randn(2, cin, 7, 7, dtype=torch.float64)
    layer = ModulatedConv2d(cin, cout, k, 3, demodulate=False).double()
    with torch.no_grad():
        layer.affine.weight.zero_()  # styles = affine bias = 1 for every sample and channel
        layer.bias.normal_()
    w = layer.weight * layer.weight_gain
    expected = F.conv2d(x, w, layer.bias, padding=k // 2)
    torch.testing.assert_close(layer(x, torch.randn(2, 3, dtype=torch.float64)), expected)
    torch.testing.assert_close(
        modulated_conv2d(x, w, torch.ones(2, cin, dtype=torch.float64), demodulate=False,
                         padding=k // 2),
        F.conv2d(x, w, padding=k // 2),
    )


@given(
    cin=st.integers(2, 32),
    cout=st.integers(4, 16),
    k=st.sampled_from([1, 3]),
    style_scale=st.floats(0.1, 10.0),
    fused=st.booleans(),
    seed=st.integers(0, 2**16),
)
def test_demodulation_gives_unit_variance(cin, cout, k, style_scale, fused, seed):
    """For i.i.d. unit-variance input, each output pixel (away from the zero padding) has variance
    Σ w''² = 1, whatever the style. Estimated over ~5·10^4 outputs: tolerance 10 %."""
    torch.manual_seed(seed)
    layer = ModulatedConv2d(cin, cout, k, 8, fused=fused)
    x = torch.randn(4, cin, 32, 32)
    style = style_scale * torch.randn(4, 8)
    y = layer(x, style)[:, :, k // 2 : 32 - k // 2, k // 2 : 32 - k // 2]
    assert y.var().item() == pytest.approx(1.0, rel=0.1)
    per_channel = y.var(dim=(2, 3))
    assert per_channel.max().item() < 1.5 and per_channel.min().item() > 0.6


def test_modulated_conv_bias_and_activation():
    torch.manual_seed(0)
    layer = ModulatedConv2d(3, 4, 3, 6, activation="lrelu").double()
    with torch.no_grad():
        layer.bias.normal_()
    x, style = torch.randn(2, 3, 5, 5).double(), torch.randn(2, 6).double()
    bare = modulated_conv2d(x, layer.weight * layer.weight_gain, layer.affine(style), padding=1)
    expected = F.leaky_relu(bare + layer.bias.reshape(1, -1, 1, 1), 0.2) * math.sqrt(2)
    torch.testing.assert_close(layer(x, style), expected)


def test_modulated_conv_state_dict_is_plain():
    layer = ModulatedConv2d(3, 4, 3, 6, up=2)
    assert set(layer.state_dict()) == {"weight", "bias", "affine.weight", "affine.bias"}
    torch.testing.assert_close(layer.affine.bias * layer.affine.bias_gain, torch.ones(3))


def test_float16_demodulated_conv_does_not_overflow():
    torch.manual_seed(0)
    x = torch.randn(2, 8, 8, 8)
    w, s = torch.randn(4, 8, 3, 3) * 300, torch.randn(2, 8) * 300  # products overflow float16
    y32 = modulated_conv2d(x, w, s, padding=1)
    y16 = modulated_conv2d(x.half(), w, s, padding=1)
    assert y16.dtype == torch.float16 and torch.isfinite(y16).all()
    assert (y16.float() - y32).abs().max() <= 2e-2 * y32.abs().max()
