"""Pins of ganblocks.nn behaviour found unchecked by mutation runs (issue 23)."""

from __future__ import annotations

import warnings

import pytest
import torch

import ganblocks.nn as gn


def test_conditional_mapping_checks_its_label_by_name():
    net = gn.MappingNetwork(4, 5, num_layers=1, c_dim=3)
    z = torch.randn(2, 4)
    for bad in (torch.zeros(2, 2), torch.zeros(2, 3, 1)):
        with pytest.raises(ValueError, match=r"^c: "):
            net(z, bad)
    assert net(z, torch.eye(3)[:2]).shape == (2, 5)


def test_to_rgb_checks_the_skip_image_and_casts_it():
    rgb = gn.ToRGB(4, 3, 5)
    x, w = torch.randn(2, 4, 6, 4), torch.randn(2, 5)
    with pytest.raises(ValueError, match=r"^skip: "):
        rgb(x, w, skip=torch.randn(2, 2, 3, 2))  # 2 channels, not 3
    skip = torch.randn(2, 3, 3, 2, dtype=torch.float64)
    y = rgb(x, w, skip=skip)
    assert y.dtype == torch.float32  # the skip image follows the features' dtype
    torch.testing.assert_close(y, rgb(x, w, skip=skip.float()))


def test_spade_default_hidden_width_is_128():
    """SPADE's (Park et al. 2019) shared MLP has 128 hidden channels by default."""
    state = gn.SPADE(3, 4).state_dict()
    assert tuple(state["shared.weight"].shape) == (128, 4, 3, 3)
    assert tuple(state["gamma_beta.weight"].shape) == (6, 128, 3, 3)


def test_noise3d_checks_z_dim_by_name():
    for bad in (0, -1, 2.0, True):
        with pytest.raises((TypeError, ValueError), match="z_dim"):
            gn.Noise3d(bad)
    assert gn.Noise3d(3).z_dim == 3


def test_truncation_names_what_it_got():
    trunc = gn.WAverageTruncation(4)
    with pytest.raises(
        ValueError, match=r"ws: expected \[N, num_ws, 4\] or \[N, 4\], got \(2, 5\)"
    ):
        trunc(torch.zeros(2, 5))
    with pytest.raises(ValueError, match="got list"):
        trunc([[0.0] * 4])


def test_check_pair_checks_both_entries():
    from ganblocks.nn.checks import check_pair

    for bad in ((0, 3), (2.0, 3), (3, 0), (True, 2)):
        with pytest.raises((TypeError, ValueError), match="size"):
            check_pair(bad, "size")
    assert check_pair([2, 3], "size") == (2, 3)


# -- equalized / modulation (run after the blocks' changes of issue 23 landed) -------------------


def test_equal_linear_refuses_a_zero_dim_tensor_by_name():
    with pytest.raises(ValueError, match=r"x: expected a tensor \[\*, 4\], got \(\)"):
        gn.EqualLinear(4, 2)(torch.tensor(1.0))


def test_equal_conv_checks_its_activation_by_name():
    with pytest.raises(ValueError, match="activation"):
        gn.EqualConv2d(2, 2, 3, activation="swishy")


def test_dilated_up_sampling_conv_up_samples():
    conv = gn.EqualConv2d(2, 3, 3, up=2, dilation=2)
    assert conv(torch.randn(1, 2, 5, 4)).shape == (1, 3, 10, 8)


def test_pixel_norm_takes_any_int_dimension_and_checks_it_at_call_time():
    norm = gn.PixelNorm(dim=-(2**31))
    with pytest.raises(ValueError, match="x: expected a tensor with a dimension"):
        norm(torch.randn(2, 3))


def test_spatial_modulation_with_batch_norm_uses_batch_statistics():
    """norm='batch' (training mode): x̂ from the batch's per-channel mean and biased variance,
    then γ·x̂ + β from the style convolution."""
    torch.manual_seed(0)
    mod = gn.SpatialModulation(3, 2, norm="batch").double()
    x = torch.randn(4, 3, 5, 6, dtype=torch.float64) * 2 + 1
    style = torch.randn(4, 2, 5, 6, dtype=torch.float64)
    gamma, beta = mod.gamma_beta(style)
    mean = x.mean(dim=(0, 2, 3), keepdim=True)
    var = x.var(dim=(0, 2, 3), unbiased=False, keepdim=True)
    expected = gamma * (x - mean) / torch.sqrt(var + mod.eps) + beta
    torch.testing.assert_close(mod(x, style), expected)
    assert mod.extra_repr() == "3, 2, eps=1e-05, norm='batch'"
    assert gn.SpatialModulation(3, 2).extra_repr() == "3, 2, eps=1e-05"


def test_modulated_conv2d_casts_styles_to_the_input_dtype():
    x, w = torch.randn(2, 3, 5, 5), torch.randn(4, 3, 3, 3)
    s = torch.randn(2, 3, dtype=torch.float64)
    for fused in (True, False):
        y = gn.modulated_conv2d(x, w, s, padding=1, fused=fused)
        assert y.dtype == torch.float32
        torch.testing.assert_close(y, gn.modulated_conv2d(x, w, s.float(), padding=1, fused=fused))


def test_renamed_keyword_forwards_the_old_keyword_with_a_warning():
    from ganblocks.nn._utils import renamed_keyword

    @renamed_keyword("size", "width")
    def make(*, width: int = 1) -> int:
        return width

    with pytest.warns(DeprecationWarning, match="size: deprecated keyword, use width"):
        assert make(size=5) == 5
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        assert make(width=3) == 3 and make() == 1
    with pytest.raises(TypeError, match="size: deprecated alias of width"):
        make(size=5, width=3)


@pytest.mark.parametrize("kernel_size, dilation", [(1, 1), (3, 1), (5, 1), (7, 2), (3, 3)])
def test_plain_conv_factory_pads_to_the_same_size(kernel_size, dilation):
    from ganblocks.nn._utils import conv2d

    torch.manual_seed(0)
    conv = conv2d(3, 4, kernel_size, dilation=dilation).double()
    x = torch.randn(2, 3, 9, 11, dtype=torch.float64)
    # Independent reference: a dilated k x k kernel spans dilation * (k - 1) + 1 pixels; "same"
    # output needs half of the extra span on each side.
    pad = dilation * (kernel_size - 1) // 2
    ref = torch.nn.functional.conv2d(x, conv.weight, conv.bias, padding=pad, dilation=dilation)
    y = conv(x)
    assert y.shape == (2, 4, 9, 11)
    torch.testing.assert_close(y, ref)


def test_plain_conv_factory_adds_spectral_norm_only_when_asked():
    from torch.nn.utils.parametrize import is_parametrized

    from ganblocks.nn._utils import conv2d

    assert not is_parametrized(conv2d(3, 4, 3), "weight")
    assert is_parametrized(conv2d(3, 4, 3, spectral_norm=True), "weight")
    assert conv2d(3, 4, 3).bias is not None and conv2d(3, 4, 3, bias=False).bias is None


def test_renamed_keyword_is_typed_as_keeping_the_decorated_type():
    # The decorator returns the function's own type (a TypeVar bound to callables), so type
    # checkers and typing.get_type_hints see the decorated constructors' real signatures.
    import typing

    from ganblocks.nn import _utils

    hints = typing.get_type_hints(_utils.renamed_keyword)
    args = typing.get_args(hints["return"])
    tv = args[-1]
    assert isinstance(tv, typing.TypeVar) and args[0] == [tv]
    assert tv.__bound__ is not None


@pytest.mark.parametrize("norm", ["group", "Instance", ""])
def test_spatial_modulation_refuses_an_unknown_norm_by_name(norm):
    with pytest.raises(ValueError, match="norm"):
        gn.SpatialModulation(3, 2, norm=norm)
    for ok in ("instance", "layer", "batch"):
        assert gn.SpatialModulation(3, 2, norm=ok).norm == ok
