"""What a StyleMapGAN-family port needs from the blocks: SpatialModulation's ``norm``,
StyledConv2d's ``gain``/``resample_filter``/``flip_weight``, EqualConv2d's ``flip_weight``, the
``style_channels`` → ``style_dim`` rename, StyleMapResizer and StyleMapSynthesisBlock.

References are written here from the formulas, with plain torch ops on the modules' parameters:
normalisations as explicit means and biased variances, up-sampling convolutions in the two ways
StyleGAN-family code runs them (zero insertion + FIR + ``F.conv2d`` for ``flip_weight=True``;
``F.conv_transpose2d`` with the unflipped weight, then the blur with rosinality/StyleMapGAN's
padding, for ``flip_weight=False``); equalised convs as ``W · lr_mul / sqrt(fan_in)`` and
``b · lr_mul``, activations as ``lrelu(0.2)·√2``.
"""

from __future__ import annotations

import math
import warnings

import pytest
import torch
import torch.nn.functional as F

from ganblocks.nn import (
    EqualConv2d,
    SpatialModulation,
    StyledConv2d,
    StyleMapMapping,
    StyleMapResizer,
    StyleMapSynthesisBlock,
)

SQRT2 = math.sqrt(2.0)


def fir2d(taps) -> torch.Tensor:
    f = torch.tensor(taps, dtype=torch.float64)
    return torch.outer(f, f) / f.sum() ** 2


def blur(x, taps, pad0, pad1, gain=1.0):
    """Depthwise FIR (symmetric taps) after padding (negative pads crop)."""
    k = fir2d(taps).to(x.dtype) * gain
    c = x.shape[1]
    x = F.pad(x, (pad0, pad1, pad0, pad1))
    return F.conv2d(x, k.expand(c, 1, *k.shape), groups=c)


def eff(layer) -> torch.Tensor:
    return layer.weight * layer.weight_gain


def up_conv_correlate(layer, x, taps):
    """flip_weight=True: zero insertion, FIR (gain 4) with StyleGAN2's padding, correlation."""
    n, c, h, w = x.shape
    k, fw = layer.weight.shape[-1], len(taps)
    z = x.new_zeros(n, c, 2 * h, 2 * w)
    z[:, :, ::2, ::2] = x
    z = blur(z, taps, k // 2 + (fw + 1) // 2, k // 2 + (fw - 2) // 2, gain=4.0)
    return F.conv2d(z, eff(layer))


def up_conv_transposed(layer, x, taps):
    """flip_weight=False, as rosinality-lineage code runs it: ``conv_transpose2d`` (stride 2, no
    padding) with the unflipped weight, then the blur padded by ``p = (fw - 2) - (k - 1)``,
    ``((p + 1) // 2 + 1, p // 2 + 1)``, gain 4."""
    k, fw = layer.weight.shape[-1], len(taps)
    y = F.conv_transpose2d(x, eff(layer).transpose(0, 1), stride=2)
    p = (fw - 2) - (k - 1)
    return blur(y, taps, (p + 1) // 2 + 1, p // 2 + 1, gain=4.0)


def normalize_ref(x, norm, eps=1e-5):
    if norm == "none":
        return x
    dims = {"instance": (2, 3), "layer": (1, 2, 3), "batch": (0, 2, 3)}[norm]
    mean = x.mean(dim=dims, keepdim=True)
    var = (x - mean).square().mean(dim=dims, keepdim=True)
    return (x - mean) / torch.sqrt(var + eps)


def modulation_ref(mod: SpatialModulation, x, style, norm):
    a = mod.affine
    gb = F.conv2d(style, eff(a), a.bias * a.bias_gain, padding=a.weight.shape[-1] // 2)
    c = x.shape[1]
    return normalize_ref(x, norm) * gb[:, :c] + gb[:, c:]


def randomize_biases(module, seed=3):
    gen = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for name, p in module.named_parameters():
            if name.endswith("bias"):
                p.copy_(torch.randn(p.shape, generator=gen, dtype=p.dtype) * 0.5)


@pytest.mark.parametrize("norm", ["instance", "layer", "batch", "none"])
def test_spatial_modulation_norms_match_the_formulas(norm):
    mod = SpatialModulation(3, 5, norm=norm).double().train()
    randomize_biases(mod)
    x = torch.randn(4, 3, 6, 5, dtype=torch.float64) * 2 + 1
    style = torch.randn(4, 5, 6, 5, dtype=torch.float64)
    torch.testing.assert_close(mod(x, style), modulation_ref(mod, x, style, norm))


def test_layer_norm_is_per_sample_over_channels_and_pixels():
    """Layer norm keeps the ratio of channel scales that instance norm removes."""
    mod = SpatialModulation(2, 1, norm="layer", kernel_size=1).double()
    with torch.no_grad():
        mod.affine.weight.zero_()  # γ = 1, β = 0
    x = torch.randn(3, 2, 8, 8, dtype=torch.float64)
    x[:, 1] *= 10
    y = mod(x, torch.zeros(3, 1, 8, 8, dtype=torch.float64))
    torch.testing.assert_close(y.mean(dim=(1, 2, 3)), torch.zeros(3, dtype=torch.float64))
    torch.testing.assert_close(y.var(dim=(1, 2, 3), unbiased=False),
                               torch.ones(3, dtype=torch.float64), rtol=1e-4, atol=1e-4)
    ratio = y[:, 1].std(dim=(1, 2)) / y[:, 0].std(dim=(1, 2))
    assert (ratio > 5).all()  # instance norm would make it 1


def test_batch_norm_keeps_running_statistics_and_uses_them_in_eval():
    mod = SpatialModulation(3, 2, norm="batch").double()
    x = torch.randn(5, 3, 4, 4, dtype=torch.float64) * 3 + 2
    style = torch.randn(5, 2, 4, 4, dtype=torch.float64)
    mod.train()(x, style)
    bn = mod.batch_norm
    # PyTorch's momentum 0.1 update from (0, 1), with the unbiased batch variance
    torch.testing.assert_close(bn.running_mean, 0.1 * x.mean(dim=(0, 2, 3)))
    torch.testing.assert_close(bn.running_var, 0.9 + 0.1 * x.var(dim=(0, 2, 3), unbiased=True))
    mod.eval()
    a = mod.affine
    gb = F.conv2d(style, eff(a), a.bias * a.bias_gain, padding=1)
    xh = (x - bn.running_mean[:, None, None]) / torch.sqrt(bn.running_var[:, None, None] + 1e-5)
    torch.testing.assert_close(mod(x, style), xh * gb[:, :3] + gb[:, 3:])
    assert set(SpatialModulation(3, 2).state_dict()) == {"affine.weight", "affine.bias"}


def test_norm_is_validated_by_name():
    with pytest.raises(ValueError, match=r"norm: expected one of \['instance', 'layer'"):
        SpatialModulation(3, 2, norm="group")
    with pytest.raises(ValueError, match="norm"):
        StyledConv2d(3, 2, 3, 4, norm="LayerNorm")
    with pytest.raises(TypeError, match="flip_weight"):
        EqualConv2d(3, 2, 3, flip_weight="no")
    with pytest.raises(ValueError, match="gain"):
        StyledConv2d(3, 2, 3, 4, gain=0.0)


@pytest.mark.parametrize("taps", [(1, 3, 3, 1), (1, 2, 1), (1, 1)])
@pytest.mark.parametrize("flip_weight", [True, False])
@pytest.mark.parametrize("norm", ["instance", "layer"])
def test_styled_up_conv_matches_both_conventions(taps, flip_weight, norm):
    torch.manual_seed(0)
    layer = StyledConv2d(3, 4, 3, 5, up=2, norm=norm, resample_filter=taps,
                         flip_weight=flip_weight, gain=0.5).double()
    randomize_biases(layer)
    x = torch.randn(2, 3, 5, 6, dtype=torch.float64)
    style = torch.randn(2, 5, 5, 6, dtype=torch.float64)
    h = modulation_ref(layer.modulation, x, style, norm)
    up = up_conv_correlate if flip_weight else up_conv_transposed
    y = up(layer.conv, h, taps) + layer.conv.bias[:, None, None]
    want = F.leaky_relu(y, 0.2) * SQRT2 * 0.5
    torch.testing.assert_close(layer(x, style), want)
    torch.testing.assert_close(layer(x, style, gain=3.0), want * 3.0)


def test_flip_weight_changes_what_an_asymmetric_kernel_means():
    """The two conventions differ for a kernel that is not point-symmetric (so a loader must
    pick the right one) and agree for a 1×1 kernel."""
    torch.manual_seed(1)
    a = StyledConv2d(2, 2, 3, 2, up=2).double()
    b = StyledConv2d(2, 2, 3, 2, up=2, flip_weight=False).double()
    b.load_state_dict(a.state_dict())
    x = torch.randn(1, 2, 4, 4, dtype=torch.float64)
    s = torch.randn(1, 2, 4, 4, dtype=torch.float64)
    assert not torch.allclose(a(x, s), b(x, s), atol=1e-3)
    with torch.no_grad():
        b.conv.weight.copy_(a.conv.weight.flip([2, 3]))
    torch.testing.assert_close(a(x, s), b(x, s))


@pytest.mark.parametrize("dilation", [1, 2])
def test_equal_conv_flip_weight_is_convolution(dilation):
    torch.manual_seed(2)
    conv = EqualConv2d(3, 4, 3, flip_weight=False, dilation=dilation).double()
    x = torch.randn(2, 3, 9, 9, dtype=torch.float64)
    want = F.conv2d(x, eff(conv).flip([2, 3]), conv.bias, padding=dilation, dilation=dilation)
    torch.testing.assert_close(conv(x), want)
    one = EqualConv2d(3, 4, 1, flip_weight=False, up=2, bias=False).double()
    ref = EqualConv2d(3, 4, 1, up=2, bias=False).double()
    ref.load_state_dict(one.state_dict())
    torch.testing.assert_close(one(x), ref(x))


def test_equal_conv_flip_weight_down_and_up():
    torch.manual_seed(3)
    x = torch.randn(2, 3, 8, 8, dtype=torch.float64)
    down = EqualConv2d(3, 4, 3, down=2, flip_weight=False, bias=False).double()
    # FIR (padding (fw - 2 + k - 1) split as ((p + 1) // 2, p // 2)), then a strided convolution
    want = F.conv2d(blur(x, (1, 3, 3, 1), 2, 2), eff(down).flip([2, 3]), stride=2)
    torch.testing.assert_close(down(x), want)
    up = EqualConv2d(3, 4, 3, up=2, flip_weight=False, bias=False).double()
    torch.testing.assert_close(up(x), up_conv_transposed(up, x, (1, 3, 3, 1)))
    assert "flip_weight=False" in repr(up) and "flip_weight" not in repr(EqualConv2d(3, 4, 3))


@pytest.mark.parametrize(
    "make",
    [
        lambda **kw: SpatialModulation(3, **kw),
        lambda **kw: StyledConv2d(3, 2, 3, **kw),
        lambda **kw: StyleMapMapping(4, size=2, num_layers=1, **kw),
    ],
    ids=["SpatialModulation", "StyledConv2d", "StyleMapMapping"],
)
def test_style_channels_is_a_deprecated_alias_of_style_dim(make):
    torch.manual_seed(0)
    with pytest.warns(DeprecationWarning, match="style_channels.*style_dim"):
        old = make(style_channels=6)
    torch.manual_seed(0)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        new = make(style_dim=6)
    assert old.style_dim == new.style_dim == old.style_channels == 6
    assert {k: v.shape for k, v in old.state_dict().items()} == {
        k: v.shape for k, v in new.state_dict().items()
    }
    for a, b in zip(old.state_dict().values(), new.state_dict().values()):
        torch.testing.assert_close(a, b)
    with pytest.raises(TypeError, match="style_channels"):
        make(style_channels=6, style_dim=6)


def lrelu(x):
    return F.leaky_relu(x, 0.2) * SQRT2


def conv_ref(layer: EqualConv2d, x):
    w = layer.weight * layer.weight_gain
    return F.conv2d(x, w, layer.bias * layer.bias_gain, padding=w.shape[-1] // 2)


def up_ref(layer, x, taps, flip_weight):
    up = up_conv_correlate if flip_weight else up_conv_transposed
    y = up(layer, x, taps)
    return y if layer.bias is None else y + (layer.bias * layer.bias_gain)[:, None, None]


def styled_ref(layer: StyledConv2d, x, style, norm, *, up=False, taps=(1, 3, 3, 1),
               flip_weight=True):
    h = modulation_ref(layer.modulation, x, style, norm)
    y = up_ref(layer.conv, h, taps, flip_weight) if up else conv_ref(layer.conv, h)
    return lrelu(y)


@pytest.mark.parametrize(
    ("taps", "flip_weight", "lr_mul"),
    [((1, 3, 3, 1), True, 1.0), ((1, 3, 3, 1), False, 0.01), ((1, 2, 1), False, 1.0)],
)
def test_resizer_matches_reference(taps, flip_weight, lr_mul):
    torch.manual_seed(0)
    channels = [6, 5, 4, 4, 3, 2]
    resizer = StyleMapResizer(7, channels, lr_mul=lr_mul, resample_filter=taps,
                              flip_weight=flip_weight).double()
    randomize_biases(resizer)
    base = torch.randn(2, 7, 3, 4, dtype=torch.float64)
    maps = resizer(base)
    x = base
    for k, (layer, got) in enumerate(zip(resizer, maps)):
        # maps 0 and 1 at the base size, then per doubling an up-conv and a conv
        x = lrelu(up_ref(layer, x, taps, flip_weight) if k >= 2 and k % 2 == 0
                  else conv_ref(layer, x))
        assert got.shape == (2, channels[k], 3 * 2 ** (k // 2), 4 * 2 ** (k // 2))
        torch.testing.assert_close(got, x)
    assert resizer.num_doublings == 2
    assert list(resizer.state_dict()) == [f"{k}.{p}" for k in range(6) for p in ("weight", "bias")]
    assert all(layer.lr_mul == lr_mul for layer in resizer)
    # only the up-sampling layers convolve; the others correlate, as F.conv2d
    assert [layer.flip_weight for layer in resizer] == [True, True, flip_weight, True,
                                                        flip_weight, True]


def test_resizer_and_block_defaults():
    """Defaults: 3×3 lrelu layers, lr_mul 1, FIR [1, 3, 3, 1], correlation; a block's style maps
    have its input's and output's channels, instance norm."""
    torch.manual_seed(0)
    resizer = StyleMapResizer(3, [4, 4, 2, 2]).double()
    base = torch.randn(1, 3, 2, 2, dtype=torch.float64)
    x = lrelu(conv_ref(resizer[1], lrelu(conv_ref(resizer[0], base))))
    x = lrelu(up_ref(resizer[2], x, (1, 3, 3, 1), True))
    torch.testing.assert_close(resizer(base)[2], x)
    assert resizer[0].kernel_size == 3 and resizer[0].lr_mul == 1.0
    block = StyleMapSynthesisBlock(4, 3).double()
    assert block.conv1.style_dim == 4 and block.conv2.style_dim == 3
    assert block.conv1.modulation.norm == block.conv2.modulation.norm == "instance"
    x = torch.randn(1, 4, 2, 2, dtype=torch.float64)
    torch.testing.assert_close(block.skip(x), up_ref(block.skip, x, (1, 3, 3, 1), True))


def test_resizer_arguments_are_checked_by_name():
    with pytest.raises(ValueError, match="channels: expected an even number"):
        StyleMapResizer(4, [4, 4, 4])
    with pytest.raises(TypeError, match="channels"):
        StyleMapResizer(4, 8)
    with pytest.raises(ValueError, match="channels"):
        StyleMapResizer(4, [4, 0])
    with pytest.raises(ValueError, match="activation"):
        StyleMapResizer(4, [4, 4], activation="leaky")
    with pytest.raises(ValueError, match="base"):
        StyleMapResizer(4, [4, 4])(torch.randn(1, 3, 2, 2))


@pytest.mark.parametrize(
    ("norm", "taps", "flip_weight", "style_dim"),
    [
        ("instance", (1, 3, 3, 1), True, None),  # OCO-GAN
        ("layer", (1, 3, 3, 1), False, None),  # StyleMapGAN
        ("layer", (1, 2, 1), False, 5),  # StyleMapGAN's small generator, another blur kernel
        ("none", (1, 1), True, (5, 3)),
    ],
)
def test_synthesis_block_matches_reference(norm, taps, flip_weight, style_dim):
    torch.manual_seed(1)
    block = StyleMapSynthesisBlock(4, 3, style_dim, norm=norm, resample_filter=taps,
                                   flip_weight=flip_weight).double()
    randomize_biases(block)
    s_in, s_out = {None: (4, 3), 5: (5, 5), (5, 3): (5, 3)}[style_dim]
    x = torch.randn(2, 4, 4, 5, dtype=torch.float64)
    style_in = torch.randn(2, s_in, 4, 5, dtype=torch.float64)
    style_out = torch.randn(2, s_out, 8, 10, dtype=torch.float64)
    main = styled_ref(block.conv1, x, style_in, norm, up=True, taps=taps, flip_weight=flip_weight)
    main = styled_ref(block.conv2, main, style_out, norm)
    skip = up_ref(block.skip, x, taps, flip_weight)
    torch.testing.assert_close(block(x, style_in, style_out), (main + skip) / SQRT2)
    assert block.skip.bias is None


def test_synthesis_block_state_dict_layout():
    """The keys a checkpoint depends on (OCO-GAN's synthesis blocks have always had them)."""
    block = StyleMapSynthesisBlock(4, 3)
    assert {k: tuple(v.shape) for k, v in block.state_dict().items()} == {
        "conv1.modulation.affine.weight": (8, 4, 3, 3),
        "conv1.modulation.affine.bias": (8,),
        "conv1.conv.weight": (3, 4, 3, 3),
        "conv1.conv.bias": (3,),
        "conv2.modulation.affine.weight": (6, 3, 3, 3),
        "conv2.modulation.affine.bias": (6,),
        "conv2.conv.weight": (3, 3, 3, 3),
        "conv2.conv.bias": (3,),
        "skip.weight": (3, 4, 1, 1),
    }


def test_synthesis_block_arguments_are_checked_by_name():
    with pytest.raises(ValueError, match="style_dim"):
        StyleMapSynthesisBlock(4, 3, (4, 3, 2))
    with pytest.raises(ValueError, match="style_dim"):
        StyleMapSynthesisBlock(4, 3, 0)
    with pytest.raises(ValueError, match="norm"):
        StyleMapSynthesisBlock(4, 3, norm="group")
    block = StyleMapSynthesisBlock(4, 3)
    with pytest.raises(ValueError, match="style"):
        block(torch.randn(1, 4, 4, 4), torch.randn(1, 4, 8, 8), torch.randn(1, 3, 8, 8))
