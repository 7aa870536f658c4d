"""EqualConv2d against plain convolutions with the He gain written here, and its argument names."""

from __future__ import annotations

import math

import pytest
import torch
import torch.nn.functional as F

from ganblocks.nn import EqualConv2d, EqualLinear, PixelNorm


@pytest.mark.parametrize("dilation", [1, 2, 3])
def test_dilated_equal_conv_is_a_plain_dilated_conv(dilation):
    gen = torch.Generator().manual_seed(dilation)
    conv = EqualConv2d(3, 2, 3, dilation=dilation, lr_mul=0.5).double()
    with torch.no_grad():
        conv.bias.copy_(torch.randn(2, generator=gen, dtype=torch.float64))
    x = torch.randn(2, 3, 9, 8, generator=gen, dtype=torch.float64)
    w = conv.weight * (0.5 / math.sqrt(3 * 9))
    expected = F.conv2d(x, w, conv.bias * 0.5, padding=dilation, dilation=dilation)
    torch.testing.assert_close(conv(x), expected)


def test_dilated_equal_conv_with_asymmetric_padding():
    """A padding the plain route cannot take goes through the dense (zero-stuffed) kernel."""
    gen = torch.Generator().manual_seed(7)
    conv = EqualConv2d(2, 2, 3, dilation=2, padding=[2, 1, 3, 0], bias=False).double()
    x = torch.randn(1, 2, 7, 6, generator=gen, dtype=torch.float64)
    w = conv.weight / math.sqrt(2 * 9)
    expected = F.conv2d(F.pad(x, (2, 1, 3, 0)), w, dilation=2)
    torch.testing.assert_close(conv(x), expected)


@pytest.mark.parametrize(
    ("make", "exc", "match"),
    [
        (lambda: EqualConv2d(0, 2, 3), ValueError, "in_channels"),
        (lambda: EqualConv2d(2, 0, 3), ValueError, "out_channels"),
        (lambda: EqualConv2d(2, 2, 3, down=0), ValueError, "down"),
        (lambda: EqualConv2d(2, 2, 3, dilation=0), ValueError, "dilation"),
        (lambda: EqualConv2d(2, 2, 3, lr_mul=-1.0), ValueError, "lr_mul"),
    ],
)
def test_equal_conv_arguments_are_checked_by_name(make, exc, match):
    with pytest.raises(exc, match=match):
        make()


def test_equal_linear_defaults_are_he_gain_linear():
    """lr_mul 1 and a linear output by default: y = x Wᵀ / sqrt(in) + b."""
    gen = torch.Generator().manual_seed(8)
    layer = EqualLinear(4, 3).double()
    with torch.no_grad():
        layer.bias.copy_(torch.randn(3, generator=gen, dtype=torch.float64))
    x = torch.randn(5, 4, generator=gen, dtype=torch.float64) * 3
    torch.testing.assert_close(layer(x), F.linear(x, layer.weight / 2.0, layer.bias))
    conv = EqualConv2d(2, 3, 1).double()
    xi = torch.randn(1, 2, 3, 3, generator=gen, dtype=torch.float64) * 3
    torch.testing.assert_close(conv(xi), F.conv2d(xi, conv.weight / math.sqrt(2), conv.bias))


def test_equal_conv_repr_names_its_dilation_and_resampling():
    assert EqualConv2d(2, 3, 3, dilation=2).extra_repr().endswith(", dilation=2")
    assert "dilation" not in EqualConv2d(2, 3, 3).extra_repr()
    assert EqualConv2d(2, 3, 3, down=2).extra_repr().endswith(", down=2")


def test_pixel_norm_accepts_negative_dims():
    x = torch.randn(2, 3, 4, 5, generator=torch.Generator().manual_seed(9), dtype=torch.float64)
    expected = x / torch.sqrt(x.square().mean(dim=1, keepdim=True) + 1e-8)
    torch.testing.assert_close(PixelNorm(dim=-3)(x), expected)
    torch.testing.assert_close(PixelNorm()(x), expected)
