"""StyleGAN2DiscriminatorBlock against a reference written here from the formulas.

Plain torch ops on the block's parameters: equalised convs as ``W / sqrt(fan_in)``, the FIR
``[1, 3, 3, 1]`` (unit DC gain) applied by a depthwise ``F.conv2d`` after padding, down-sampling
convs as blur (padding ``((p + 1) // 2, p // 2)`` with ``p = fw - 2 + k - 1``) then a stride-2
correlation, the image down-sampled as blur (padding 1, 1) then every second pixel,
``lrelu(0.2)·√2``, clamps, and the residual sum with ``√0.5`` on both branches.
"""

from __future__ import annotations

import math

import pytest
import torch
import torch.nn.functional as F

from ganblocks.nn import StyleGAN2DiscriminatorBlock

SQRT2 = math.sqrt(2.0)


def blur(x, taps, pad0, pad1):
    f = torch.tensor(taps, dtype=x.dtype)
    k = torch.outer(f, f) / f.sum() ** 2
    c = x.shape[1]
    x = F.pad(x, (pad0, pad1, pad0, pad1))
    return F.conv2d(x, k.expand(c, 1, *k.shape), groups=c)


def weight(layer):
    return layer.weight / math.sqrt(layer.weight[0].numel())


def act(y, layer, gain=1.0, clamp=None):
    y = (F.leaky_relu(y + layer.bias[:, None, None], 0.2) * SQRT2) * gain
    return y if clamp is None else y.clamp(-clamp * gain, clamp * gain)


def down_conv(layer, x, taps):
    k = layer.weight.shape[-1]
    p = len(taps) - 2 + k - 1
    return F.conv2d(blur(x, taps, (p + 1) // 2, p // 2), weight(layer), stride=2)


def block_ref(block, x, img, taps, clamp):
    if block.fromrgb is not None:
        y = act(F.conv2d(img, weight(block.fromrgb)), block.fromrgb, clamp=clamp)
        x = y if x is None else x + y
        img = blur(img, taps, 1, 1)[:, :, ::2, ::2] if block.architecture == "skip" else None
    h = act(F.conv2d(x, weight(block.conv0), padding=1), block.conv0, clamp=clamp)
    if block.architecture == "resnet":
        g = math.sqrt(0.5)
        skip = down_conv(block.skip, x, taps) * g
        return skip + act(down_conv(block.conv1, h, taps), block.conv1, gain=g, clamp=clamp), img
    return act(down_conv(block.conv1, h, taps), block.conv1, clamp=clamp), img


@pytest.mark.parametrize("architecture", ["resnet", "skip", "orig"])
@pytest.mark.parametrize("first", [True, False])
@pytest.mark.parametrize(("taps", "clamp"), [((1, 3, 3, 1), None), ((1, 2, 1), 0.5)])
def test_block_matches_reference(architecture, first, taps, clamp):
    torch.manual_seed(0)
    cin = 0 if first else 3
    block = StyleGAN2DiscriminatorBlock(cin, 3, 5, img_channels=2, architecture=architecture,
                                        resample_filter=taps, conv_clamp=clamp).double()
    gen = torch.Generator().manual_seed(1)
    with torch.no_grad():
        for name, p in block.named_parameters():
            if name.endswith("bias"):
                p.copy_(torch.randn(p.shape, generator=gen, dtype=p.dtype) * 0.5)
    x = None if first else torch.randn(2, 3, 8, 6, dtype=torch.float64)
    img = torch.randn(2, 2, 8, 6, dtype=torch.float64)
    got, got_img = block(x, img)
    want, want_img = block_ref(block, x, img, taps, clamp)
    assert got.shape == (2, 5, 4, 3)
    torch.testing.assert_close(got, want)
    if want_img is None:
        assert got_img is None
    else:
        torch.testing.assert_close(got_img, want_img)


def test_defaults_are_stylegan2s():
    """Default: 'resnet', FIR [1, 3, 3, 1], lrelu, no clamp, 3 image channels, filters not saved."""
    torch.manual_seed(0)
    block = StyleGAN2DiscriminatorBlock(0, 3, 4).double()
    assert block.architecture == "resnet" and block.img_channels == 3
    assert block.use_fp16 is False  # float16 only when asked (and only on CUDA)
    assert "conv1.resample_filter" not in block.state_dict()
    img = torch.randn(2, 3, 8, 8, dtype=torch.float64)
    got, none = block(None, img)
    torch.testing.assert_close(got, block_ref(block, None, img, (1, 3, 3, 1), None)[0])
    assert none is None


def test_state_dict_layout():
    """The keys NVlabs' checkpoints map onto (filters only when persistent)."""
    first = StyleGAN2DiscriminatorBlock(0, 4, 8, persistent_filter=True)
    assert {k: tuple(v.shape) for k, v in first.state_dict().items()} == {
        "fromrgb.weight": (4, 3, 1, 1),
        "fromrgb.bias": (4,),
        "conv0.weight": (4, 4, 3, 3),
        "conv0.bias": (4,),
        "conv1.weight": (8, 4, 3, 3),
        "conv1.bias": (8,),
        "conv1.resample_filter": (4, 4),
        "skip.weight": (8, 4, 1, 1),
        "skip.resample_filter": (4, 4),
        "downsample.resample_filter": (4, 4),
    }
    plain = StyleGAN2DiscriminatorBlock(4, 4, 8, architecture="orig")
    assert set(plain.state_dict()) == {"conv0.weight", "conv0.bias", "conv1.weight", "conv1.bias"}


def test_arguments_and_inputs_are_checked_by_name():
    with pytest.raises(ValueError, match="architecture"):
        StyleGAN2DiscriminatorBlock(4, 4, 8, architecture="residual")
    with pytest.raises(ValueError, match="activation"):
        StyleGAN2DiscriminatorBlock(4, 4, 8, activation="leaky")
    with pytest.raises(ValueError, match="in_channels"):
        StyleGAN2DiscriminatorBlock(-1, 4, 8)
    with pytest.raises(ValueError, match="tmp_channels"):
        StyleGAN2DiscriminatorBlock(4, 0, 8)
    with pytest.raises(ValueError, match="out_channels"):
        StyleGAN2DiscriminatorBlock(4, 4, 0)
    with pytest.raises(ValueError, match="img_channels"):
        StyleGAN2DiscriminatorBlock(0, 4, 8, img_channels=0)
    with pytest.raises(ValueError, match="img"):
        StyleGAN2DiscriminatorBlock(0, 4, 8)(None, None)
    with pytest.raises(ValueError, match="img: expected 3 channels"):  # named img, not x
        StyleGAN2DiscriminatorBlock(0, 4, 8)(None, torch.randn(1, 4, 8, 8))
    with pytest.raises(ValueError, match="x: this block needs features"):
        StyleGAN2DiscriminatorBlock(4, 4, 8)(None, torch.randn(1, 3, 8, 8))
    with pytest.raises(ValueError, match="x"):
        StyleGAN2DiscriminatorBlock(4, 4, 8)(torch.randn(1, 5, 8, 8), None)


class _OnCuda(torch.Tensor):
    """A CPU tensor that reports ``is_cuda``: the block's precision policy, seen without a GPU
    (CPU float16 convolutions run the float16 path)."""

    @property
    def is_cuda(self):
        return True


def test_float16_only_for_cuda_inputs_of_an_fp16_block_unless_forced_to_float32():
    x = torch.randn(2, 4, 8, 8)
    fp16 = StyleGAN2DiscriminatorBlock(4, 4, 8, use_fp16=True)
    plain = StyleGAN2DiscriminatorBlock(4, 4, 8)
    assert fp16(x.as_subclass(_OnCuda), None)[0].dtype == torch.float16
    assert fp16(x.as_subclass(_OnCuda), None, force_fp32=True)[0].dtype == torch.float32
    assert fp16(x, None)[0].dtype == torch.float32  # a CPU input: never float16
    assert plain(x.as_subclass(_OnCuda), None)[0].dtype == torch.float32
    # Otherwise at least float32: a float16 input is promoted, float64 stays float64.
    assert plain(x.half(), None)[0].dtype == torch.float32
    assert plain.double()(x.double(), None)[0].dtype == torch.float64


@pytest.mark.parametrize("architecture", ["skip", "resnet"])
def test_the_image_is_read_in_the_blocks_dtype(architecture):
    """The image is cast to the block's compute dtype, which the features (or, in the first
    block, the image itself) decide: a float16 first image is read as float32, a float64 image
    beside float32 features as float32."""
    torch.manual_seed(0)
    first = StyleGAN2DiscriminatorBlock(0, 4, 8, architecture=architecture)
    img = torch.randn(2, 3, 8, 8)
    y, _ = first(None, img.half())
    assert y.dtype == torch.float32
    assert torch.equal(y, first(None, img.half().float())[0])
    assert first(None, img.double())[0].dtype == torch.float64
    if architecture == "skip":
        later = StyleGAN2DiscriminatorBlock(4, 4, 8, architecture="skip")
        x = torch.randn(2, 4, 8, 8)
        y, down = later(x, img.double())
        assert y.dtype == down.dtype == torch.float32
        want_y, want_down = later(x, img)
        assert torch.equal(y, want_y) and torch.equal(down, want_down)


def test_bad_arguments_are_reported_in_signature_order_and_inputs_before_any_cast():
    # The first bad argument is the one named (out_channels before architecture).
    with pytest.raises(TypeError, match=r"out_channels: expected an integer, got 0\.5"):
        StyleGAN2DiscriminatorBlock(4, 4, 0.5, architecture="residual")
    with pytest.raises(TypeError, match="img_channels: expected an integer"):
        StyleGAN2DiscriminatorBlock(4, 4, 8, img_channels=3.0, architecture="residual")
    # A block with a single input channel still needs its features.
    with pytest.raises(ValueError, match="x: this block needs features"):
        StyleGAN2DiscriminatorBlock(1, 4, 8)(None, torch.randn(1, 3, 8, 8))
    # Integer inputs are refused, not silently cast to the compute dtype.
    with pytest.raises(TypeError, match="x: expected a floating-point tensor"):
        StyleGAN2DiscriminatorBlock(4, 4, 8)(torch.ones(1, 4, 8, 8, dtype=torch.long), None)
    with pytest.raises(TypeError, match="img: expected a floating-point tensor"):
        StyleGAN2DiscriminatorBlock(0, 4, 8)(None, torch.ones(1, 3, 8, 8, dtype=torch.uint8))
