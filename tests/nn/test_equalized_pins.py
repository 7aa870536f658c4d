"""Pins of EqualConv2d's dilated path: per-axis padding, and its defaults (issue 23).

The references are plain ``torch.nn.functional`` calls with the He gain written out here:
``F.pad`` takes ``(left, right, top, bottom)``, i.e. ``[x0, x1, y0, y1]`` as the layer documents.
"""

from __future__ import annotations

import math

import pytest
import torch
import torch.nn.functional as F

from ganblocks.nn import EqualConv2d


def _reference(conv: EqualConv2d, x: torch.Tensor, pad: tuple[int, int, int, int]):
    w = conv.weight * (conv.lr_mul / math.sqrt(conv.in_channels * conv.kernel_size**2))
    b = None if conv.bias is None else conv.bias * conv.lr_mul
    return F.conv2d(F.pad(x, pad), w, b, dilation=conv.dilation)


@pytest.mark.parametrize(
    ("padding", "pad"),
    [
        ([3, 1], (3, 3, 1, 1)),  # [px, py]: symmetric per axis but not square (the fast route)
        ([1, 4], (1, 1, 4, 4)),
        ([0, 2, 2, 2], (0, 2, 2, 2)),  # only x asymmetric
        ([2, 2, 1, 3], (2, 2, 1, 3)),  # only y asymmetric
    ],
)
@pytest.mark.parametrize("dilation", [2, 3])
def test_dilated_conv_pads_each_axis_by_its_own_amount(padding, pad, dilation):
    gen = torch.Generator().manual_seed(10 * dilation + sum(pad))
    conv = EqualConv2d(3, 2, 3, dilation=dilation, padding=padding, lr_mul=0.5).double()
    with torch.no_grad():
        conv.weight.copy_(torch.randn(conv.weight.shape, generator=gen, dtype=torch.float64))
        conv.bias.copy_(torch.randn(2, generator=gen, dtype=torch.float64))
    # H != W, so a swapped (height, width) padding changes the output's shape or values
    x = torch.randn(2, 3, 11, 8, generator=gen, dtype=torch.float64)
    y = conv(x)
    expected = _reference(conv, x, pad)
    assert y.shape == expected.shape
    torch.testing.assert_close(y, expected)


def test_dilated_conv_default_padding_keeps_the_size():
    """``padding=None`` is ``dilation * (kernel_size // 2)`` on every side: size kept."""
    for k, d in [(3, 2), (5, 2), (3, 4)]:
        conv = EqualConv2d(2, 2, k, dilation=d, bias=False).double()
        assert tuple(conv.padding) == (d * (k // 2),) * 4
        x = torch.randn(1, 2, 13, 10, dtype=torch.float64)
        p = d * (k // 2)
        torch.testing.assert_close(conv(x), _reference(conv, x, (p, p, p, p)))


def test_equal_conv_constructor_defaults():
    conv = EqualConv2d(4, 6, 3)
    assert conv.bias is not None and conv.lr_mul == 1.0 and conv.activation == "linear"
    assert (conv.up, conv.down, conv.dilation) == (1, 1, 1)
    assert tuple(conv.padding) == (1, 1, 1, 1)
    assert conv.weight_gain == pytest.approx(1 / math.sqrt(4 * 9))
    assert conv.bias_gain == 1.0
    assert conv.conv_clamp is None
    assert "resample_filter" not in conv.state_dict()
    # initialisation: N(0, 1) / lr_mul weights, bias_init (0) biases
    torch.testing.assert_close(conv.bias, torch.zeros(6))
    big = EqualConv2d(64, 64, 3)
    assert float(big.weight.detach().std()) == pytest.approx(1.0, rel=0.05)


@pytest.mark.parametrize("bad", [0.0, -1.0, float("nan"), "4"])
def test_equal_conv_checks_conv_clamp_by_name(bad):
    import ganblocks.nn as gn

    with pytest.raises((TypeError, ValueError), match="conv_clamp"):
        gn.EqualConv2d(3, 4, 3, conv_clamp=bad)
    assert gn.EqualConv2d(3, 4, 3, conv_clamp=2).conv_clamp == 2.0
    assert gn.EqualConv2d(3, 4, 3).conv_clamp is None


def test_dilated_conv_without_weight_flip_is_a_true_convolution():
    # flip_weight=False: a convolution, i.e. a correlation with the kernel flipped in both
    # spatial axes; so it must equal the flip_weight=True layer holding the flipped kernel.
    import ganblocks.nn as gn

    torch.manual_seed(0)
    conv = gn.EqualConv2d(2, 3, 3, dilation=2, flip_weight=False).double()
    corr = gn.EqualConv2d(2, 3, 3, dilation=2, flip_weight=True).double()
    with torch.no_grad():
        corr.weight.copy_(conv.weight.flip([2, 3]))
        corr.bias.copy_(conv.bias)
    x = torch.randn(2, 2, 9, 11, dtype=torch.float64)
    torch.testing.assert_close(conv(x), corr(x))
    with torch.no_grad():  # the unflipped kernel gives another result: the test has teeth
        corr.weight.copy_(conv.weight)
    assert not torch.allclose(conv(x), corr(x))


def test_equal_conv_repr_lists_every_non_default_option():
    conv = EqualConv2d(2, 3, 3, bias=False, lr_mul=0.5, activation="lrelu", up=2,
                       conv_clamp=256, flip_weight=False)  # fmt: skip
    assert conv.extra_repr() == (
        "2, 3, kernel_size=3, bias=False, lr_mul=0.5, activation='lrelu', up=2, "
        "conv_clamp=256, flip_weight=False"
    )
    assert "flip_weight=False" in repr(EqualConv2d(2, 3, 3, flip_weight=False))
    assert EqualConv2d(2, 3, 3).extra_repr() == (
        "2, 3, kernel_size=3, bias=True, lr_mul=1, activation='linear'"
    )
