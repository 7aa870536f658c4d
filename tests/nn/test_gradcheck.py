"""Gradients of every block match finite differences (float64), with respect to the inputs and
to every parameter; second derivatives too for the discriminator-side blocks (R1 needs them)."""

from __future__ import annotations

import pytest
import torch
from torch.func import functional_call

from ganblocks.nn import (
    ASPP,
    SPADE,
    Blur,
    Downsample2d,
    EqualConv2d,
    EqualLinear,
    MappingNetwork,
    MinibatchStd,
    ModulatedConv2d,
    PixelNorm,
    ResBlockD,
    ResBlockU,
    SpatialModulation,
    StyledConv2d,
    StyleGAN2DiscriminatorBlock,
    StyleMapMapping,
    StyleMapSynthesisBlock,
    Upsample2d,
)


class _Features(torch.nn.Module):
    """The feature output of a StyleGAN2 discriminator block fed features only."""

    def __init__(self, block: StyleGAN2DiscriminatorBlock) -> None:
        super().__init__()
        self.block = block

    def forward(self, x):
        return self.block(x, None)[0]


def rand(*shape):
    return torch.randn(*shape, dtype=torch.float64)


CASES = {
    "EqualLinear": (lambda: EqualLinear(3, 2, activation="lrelu", lr_mul=0.1), [rand(2, 3)]),
    "EqualConv2d-up": (lambda: EqualConv2d(2, 2, 3, up=2, activation="lrelu"), [rand(1, 2, 3, 3)]),
    "EqualConv2d-down-dil": (lambda: EqualConv2d(2, 2, 3, down=2, dilation=2), [rand(1, 2, 6, 6)]),
    "EqualConv2d-1x1-up": (lambda: EqualConv2d(2, 3, 1, up=2), [rand(1, 2, 3, 3)]),
    "PixelNorm": (lambda: PixelNorm(), [rand(2, 4)]),
    "Upsample2d": (lambda: Upsample2d(2), [rand(1, 2, 3, 3)]),
    "Downsample2d": (lambda: Downsample2d(2), [rand(1, 2, 4, 4)]),
    "Blur": (lambda: Blur(), [rand(1, 2, 3, 3)]),
    "SpatialModulation": (lambda: SpatialModulation(2, 3), [rand(2, 2, 3, 3), rand(2, 3, 3, 3)]),
    "StyledConv2d-up": (
        lambda: StyledConv2d(2, 2, 3, 2, up=2),
        [rand(1, 2, 3, 3), rand(1, 2, 3, 3)],
    ),
    "StyledConv2d-layer-convolve": (
        lambda: StyledConv2d(2, 2, 3, 2, up=2, norm="layer", flip_weight=False,
                             resample_filter=(1, 2, 1), gain=0.5),
        [rand(1, 2, 3, 3), rand(1, 2, 3, 3)],
    ),
    "StyleMapSynthesisBlock": (
        lambda: StyleMapSynthesisBlock(2, 2, norm="layer", flip_weight=False),
        [rand(1, 2, 2, 2), rand(1, 2, 2, 2), rand(1, 2, 4, 4)],
    ),
    "StyleGAN2DiscriminatorBlock": (
        lambda: _Features(StyleGAN2DiscriminatorBlock(2, 2, 3)),
        [rand(1, 2, 4, 4)],
    ),
    "ModulatedConv2d-fused-up": (
        lambda: ModulatedConv2d(2, 2, 3, 3, up=2, activation="lrelu"),
        [rand(2, 2, 3, 3), rand(2, 3)],
    ),
    "ModulatedConv2d-unfused-down": (
        lambda: ModulatedConv2d(2, 2, 3, 3, down=2, fused=False),
        [rand(2, 2, 4, 4), rand(2, 3)],
    ),
    "MappingNetwork": (lambda: MappingNetwork(3, 2, num_layers=2), [rand(2, 3)]),
    "StyleMapMapping": (lambda: StyleMapMapping(3, 2, (1, 2), num_layers=2), [rand(2, 3)]),
    "ResBlockD": (lambda: ResBlockD(2, 3), [rand(1, 2, 4, 4)]),
    "ResBlockD-sn": (
        lambda: ResBlockD(2, 3, equalized=False, spectral_norm=True),
        [rand(1, 2, 4, 4)],
    ),
    "ResBlockU-sn": (lambda: ResBlockU(3, 2), [rand(1, 3, 2, 2)]),
    "ASPP-sn": (lambda: ASPP(2, 2, rates=(1, 2), spectral_norm=True), [rand(1, 2, 3, 3)]),
    "MinibatchStd": (lambda: MinibatchStd(2, 2), [rand(4, 4, 2, 2)]),
    "SPADE": (lambda: SPADE(2, 3, hidden_channels=2), [rand(1, 2, 3, 3), rand(1, 3, 6, 6)]),
}
SECOND_ORDER = {
    "EqualConv2d-down-dil",
    "ResBlockD",
    "ResBlockD-sn",
    "MinibatchStd",
    "StyleGAN2DiscriminatorBlock",
}


@pytest.mark.parametrize("name", sorted(CASES))
def test_gradcheck(name):
    make, inputs = CASES[name]
    torch.manual_seed(0)
    module = make().double()
    module.eval()  # spectral norm: no power iteration during the check, so forward is a function
    params = {k: v.detach().clone().requires_grad_(True) for k, v in module.named_parameters()}
    inputs = [t.clone().requires_grad_(True) for t in inputs]
    names = list(params)

    def fn(*args):
        n = len(inputs)
        return functional_call(module, dict(zip(names, args[n:])), tuple(args[:n]))

    args = (*inputs, *params.values())
    assert torch.autograd.gradcheck(fn, args)
    if name in SECOND_ORDER:
        assert torch.autograd.gradgradcheck(fn, args)
