"""Modulated convolution against analytic values that do not reuse the layer's own constants.

* A 1-input-channel 1×1 demodulated conv outputs ``±x`` exactly, whatever its weight and style:
  demodulation divides ``w·s`` by ``|w·s|``.
* Demodulation makes the layer invariant to rescaling its weight or its style.
* A full reference of :class:`ModulatedConv2d` from StyleGAN2's formulas: style affine with bias 1
  and He gain ``1/sqrt(style_dim)``, weight gain ``1/sqrt(I·k²)``, per-sample modulation,
  ``w / sqrt(Σ w² + 1e-8)``, same-padding conv, linear output by default.
"""

from __future__ import annotations

import math

import pytest
import torch
import torch.nn.functional as F

from ganblocks.nn import ModulatedConv2d, SpatialModulation, modulated_conv2d


@pytest.mark.parametrize("fused", [True, False])
def test_one_channel_pointwise_demodulated_conv_is_plus_minus_identity(fused):
    gen = torch.Generator().manual_seed(0)
    layer = ModulatedConv2d(1, 5, 1, 3, fused=fused).double()  # demodulate is the default
    with torch.no_grad():
        layer.weight.copy_(torch.randn(5, 1, 1, 1, generator=gen, dtype=torch.float64) * 4)
    x = torch.randn(4, 1, 6, 7, generator=gen, dtype=torch.float64)
    style = torch.randn(4, 3, generator=gen, dtype=torch.float64) * 10
    y = layer(x, style)
    torch.testing.assert_close(y.abs(), x.abs().expand(-1, 5, -1, -1))


@pytest.mark.parametrize("fused", [True, False])
def test_demodulated_output_ignores_weight_and_style_scale(fused):
    gen = torch.Generator().manual_seed(1)
    x = torch.randn(2, 3, 5, 5, generator=gen, dtype=torch.float64)
    w = torch.randn(4, 3, 3, 3, generator=gen, dtype=torch.float64)
    s = torch.randn(2, 3, generator=gen, dtype=torch.float64)
    y = modulated_conv2d(x, w, s, padding=1, fused=fused)
    torch.testing.assert_close(modulated_conv2d(x, 7.5 * w, s, padding=1, fused=fused), y)
    torch.testing.assert_close(modulated_conv2d(x, w, 0.2 * s, padding=1, fused=fused), y)
    # without demodulation the output is bilinear in (w, s)
    y0 = modulated_conv2d(x, w, s, padding=1, fused=fused, demodulate=False)
    torch.testing.assert_close(
        modulated_conv2d(x, 3.0 * w, 0.5 * s, padding=1, fused=fused, demodulate=False), 1.5 * y0
    )


def test_demodulated_constant_input_gives_normalised_weight_sum():
    """On a constant input of ones (away from the border), output o of sample n is
    Σ_{i,k} w[o,i,k]·s[n,i] / sqrt(Σ_{i,k} (w[o,i,k]·s[n,i])²): computed here by hand."""
    w = torch.tensor([[[[1.0, 2.0], [0.0, -1.0]], [[3.0, 0.0], [1.0, 1.0]]]], dtype=torch.float64)
    s = torch.tensor([[1.0, 2.0], [-1.0, 0.5]], dtype=torch.float64)
    x = torch.ones(2, 2, 4, 4, dtype=torch.float64)
    y = modulated_conv2d(x, w, s)  # 2×2 kernel, no padding → 3×3, all interior
    # sample 0: w·s = [[1,2],[0,-1]] and [[6,0],[2,2]]: sum 12, squares 1+4+1+36+4+4 = 50
    # sample 1: [[-1,-2],[0,1]] and [[1.5,0],[.5,.5]]: sum 0.5, squares 1+4+1+2.25+.25+.25 = 8.75
    expected = torch.tensor([12 / math.sqrt(50), 0.5 / math.sqrt(8.75)], dtype=torch.float64)
    torch.testing.assert_close(y[:, 0], expected[:, None, None].expand(2, 3, 3))


def modulated_conv_ref(layer: ModulatedConv2d, x, style, *, demodulate=True):
    i, k = layer.in_channels, layer.kernel_size
    a = layer.affine
    s = F.linear(style, a.weight / math.sqrt(a.weight.shape[1]), a.bias)  # lr_mul 1
    w = layer.weight / math.sqrt(i * k * k)
    out = []
    for n in range(x.shape[0]):
        wn = w * s[n].view(1, -1, 1, 1)
        if demodulate:
            wn = wn / torch.sqrt(wn.square().sum(dim=(1, 2, 3), keepdim=True) + 1e-8)
        out.append(F.conv2d(x[n : n + 1], wn, padding=k // 2))
    return torch.cat(out) + layer.bias.view(1, -1, 1, 1)


@pytest.mark.parametrize("fused", [True, False])
def test_modulated_conv_defaults_match_stylegan2_reference(fused):
    gen = torch.Generator().manual_seed(2)
    torch.manual_seed(2)
    layer = ModulatedConv2d(3, 4, 3, 6, fused=fused).double()
    # the style affine starts with bias 1 (styles ≈ 1 + small), in real units
    torch.testing.assert_close(
        layer.affine(torch.zeros(1, 6, dtype=torch.float64)), torch.ones(1, 3, dtype=torch.float64)
    )
    with torch.no_grad():
        layer.bias.copy_(torch.randn(4, generator=gen, dtype=torch.float64))
        layer.affine.bias.copy_(torch.randn(3, generator=gen, dtype=torch.float64))
    x = torch.randn(2, 3, 6, 5, generator=gen, dtype=torch.float64)
    style = torch.randn(2, 6, generator=gen, dtype=torch.float64)
    torch.testing.assert_close(layer(x, style), modulated_conv_ref(layer, x, style))


def test_spatial_modulation_gamma_beta_order_and_init():
    """γ is the first half of the style conv's channels (bias 1), β the second (bias 0): with a
    zero style the layer is exactly an instance norm; with a constant style of ones and weights
    set by hand, γ and β are the hand-computed sums."""
    mod = SpatialModulation(2, 1, kernel_size=1).double()
    x = torch.randn(3, 2, 4, 4, generator=torch.Generator().manual_seed(3), dtype=torch.float64)
    zero = torch.zeros(3, 1, 4, 4, dtype=torch.float64)
    mean = x.mean(dim=(2, 3), keepdim=True)
    xhat = (x - mean) / torch.sqrt((x - mean).square().mean(dim=(2, 3), keepdim=True) + 1e-5)
    torch.testing.assert_close(mod(x, zero), xhat)
    with torch.no_grad():  # 1×1 conv from 1 style channel: He gain 1; weights in real units
        mod.affine.weight.copy_(torch.tensor([2.0, 3.0, 5.0, 7.0]).view(4, 1, 1, 1))
    ones = torch.ones(3, 1, 4, 4, dtype=torch.float64)
    gamma = torch.tensor([1 + 2.0, 1 + 3.0], dtype=torch.float64).view(1, 2, 1, 1)
    beta = torch.tensor([5.0, 7.0], dtype=torch.float64).view(1, 2, 1, 1)
    torch.testing.assert_close(mod(x, ones), xhat * gamma + beta)


def test_spatial_modulation_reset_parameters_redraws_the_style_conv():
    mod = SpatialModulation(3, 4)
    with torch.no_grad():
        mod.affine.weight.zero_()
        mod.affine.bias.fill_(5.0)
    mod.reset_parameters()
    assert mod.affine.weight.std().item() == pytest.approx(1.0, rel=0.2)  # N(0, 1) storage
    zero_style = torch.zeros(1, 4, 2, 2)
    gamma, beta = mod.gamma_beta(zero_style)
    torch.testing.assert_close(gamma, torch.ones_like(gamma))
    torch.testing.assert_close(beta, torch.zeros_like(beta))


@pytest.mark.parametrize(
    ("make", "exc", "match"),
    [
        (lambda: SpatialModulation(0, 4), ValueError, "num_features"),
        (lambda: SpatialModulation(4, 0), ValueError, "style_dim"),
        (lambda: SpatialModulation(4, 4, eps=0.0), ValueError, "eps"),
        (lambda: ModulatedConv2d(0, 4, 3, 8), ValueError, "in_channels"),
        (lambda: ModulatedConv2d(4, 0, 3, 8), ValueError, "out_channels"),
        (lambda: ModulatedConv2d(4, 4, 0, 8), ValueError, "kernel_size"),
        (lambda: ModulatedConv2d(4, 4, 3, 0), ValueError, "style_dim"),
        (lambda: ModulatedConv2d(4, 4, 3, 8, up=0), ValueError, "up"),
        (lambda: ModulatedConv2d(4, 4, 3, 8, down=0), ValueError, "down"),
        (lambda: ModulatedConv2d(4, 4, 3, 8, activation="gelu"), ValueError, "activation"),
    ],
)
def test_modulation_arguments_are_checked_by_name(make, exc, match):
    with pytest.raises(exc, match=match):
        make()


def test_modulation_inputs_are_checked_by_name():
    x, w = torch.randn(2, 4, 5, 5), torch.randn(3, 4, 3, 3)
    with pytest.raises(ValueError, match="styles"):
        modulated_conv2d(x, w, torch.ones(2, 3))
    with pytest.raises(ValueError, match="styles"):
        modulated_conv2d(x, w, [1.0] * 4)
    with pytest.raises(ValueError, match="weight"):
        modulated_conv2d(x, torch.randn(3, 5, 3, 3), torch.ones(2, 4))
    with pytest.raises(ValueError, match=r"^x: "):
        modulated_conv2d(x[0], w, torch.ones(2, 4))
    layer = ModulatedConv2d(4, 3, 3, 6)
    with pytest.raises(ValueError, match=r"^x: "):
        layer(torch.randn(2, 5, 5, 5), torch.randn(2, 6))
    with pytest.raises(ValueError, match=r"^style: "):
        layer(x, torch.randn(2, 7))
    mod = SpatialModulation(4, 2)
    with pytest.raises(ValueError, match=r"^x: "):
        mod(torch.randn(2, 3, 5, 5), torch.randn(2, 2, 5, 5))
    with pytest.raises(ValueError, match=r"^style: "):
        mod(x, torch.randn(2, 3, 5, 5))
    with pytest.raises(ValueError, match=r"^style: "):
        mod.gamma_beta(torch.randn(2, 3, 5, 5))


@pytest.mark.parametrize("fused", [True, False])
def test_modulated_conv_without_demodulation_uses_the_he_gain(fused):
    """Without demodulation the weight's scale shows: He gain 1/sqrt(I·k²), written here."""
    gen = torch.Generator().manual_seed(4)
    layer = ModulatedConv2d(3, 2, 3, 5, demodulate=False, fused=fused).double()
    with torch.no_grad():
        layer.bias.copy_(torch.randn(2, generator=gen, dtype=torch.float64))
    x = torch.randn(2, 3, 5, 6, generator=gen, dtype=torch.float64)
    style = torch.randn(2, 5, generator=gen, dtype=torch.float64)
    expected = modulated_conv_ref(layer, x, style, demodulate=False)
    torch.testing.assert_close(layer(x, style), expected)


@pytest.mark.parametrize("fused", [True, False])
def test_zero_style_gives_zeros_not_nan(fused):
    """Demodulating an all-zero modulated weight divides 0 by sqrt(0 + eps): the output is 0."""
    x = torch.randn(2, 3, 4, 4, dtype=torch.float64)
    w = torch.randn(2, 3, 3, 3, dtype=torch.float64)
    y = modulated_conv2d(x, w, torch.zeros(2, 3, dtype=torch.float64), padding=1, fused=fused)
    assert torch.equal(y, torch.zeros_like(y))


def test_modulated_conv_without_bias_still_applies_its_activation():
    gen = torch.Generator().manual_seed(5)
    layer = ModulatedConv2d(3, 2, 3, 5, bias=False, activation="lrelu").double()
    x = torch.randn(2, 3, 5, 5, generator=gen, dtype=torch.float64)
    style = torch.randn(2, 5, generator=gen, dtype=torch.float64)
    bare = ModulatedConv2d(3, 2, 3, 5, bias=False).double()
    bare.load_state_dict(layer.state_dict())
    torch.testing.assert_close(layer(x, style), F.leaky_relu(bare(x, style), 0.2) * math.sqrt(2))


def test_modulated_conv_repr_names_its_resampling():
    up = ModulatedConv2d(3, 4, 3, 6, up=2).extra_repr()
    down = ModulatedConv2d(3, 4, 3, 6, down=2).extra_repr()
    plain = ModulatedConv2d(3, 4, 3, 6).extra_repr()
    assert plain == "3, 4, kernel_size=3, style_dim=6, demodulate=True"
    assert up == plain + ", up=2" and down == plain + ", down=2"
