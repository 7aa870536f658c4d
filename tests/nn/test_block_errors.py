"""Bad arguments fail with ValueError/TypeError naming the argument."""

from __future__ import annotations

import pytest
import torch

from ganblocks.nn import (
    ASPP,
    EqualConv2d,
    EqualLinear,
    MappingNetwork,
    ModulatedConv2d,
    StyledConv2d,
    StyleMapMapping,
)


@pytest.mark.parametrize(
    "make, exc, match",
    [
        (lambda: EqualLinear(0, 3), ValueError, "in_features"),
        (lambda: EqualLinear(2, 3.0), TypeError, "out_features"),
        (lambda: EqualLinear(2, 3, lr_mul=0), ValueError, "lr_mul"),
        (lambda: EqualLinear(2, 3, activation="gelu"), ValueError, "activation"),
        (lambda: EqualConv2d(2, 3, 0), ValueError, "kernel_size"),
        (lambda: EqualConv2d(2, 3, 3, up=0), ValueError, "up"),
        (lambda: EqualConv2d(2, 3, 3, padding=[1, 2, 3]), ValueError, "padding"),
        (lambda: EqualConv2d(2, 3, 3, resample_filter=[[[1.0]]], down=2), ValueError, "f"),
        (lambda: StyleMapMapping(4, 4, (2, 2, 2)), ValueError, "size"),
        (lambda: MappingNetwork(4, 4, num_layers=0), ValueError, "num_layers"),
        (lambda: ASPP(4, 4, rates=(1, 1)), ValueError, "rates"),
        (lambda: ASPP(4, 4, rates=(0, 2)), ValueError, "rates"),
        (lambda: ASPP(4, 4, rates=(), image_pooling=False), ValueError, "rates"),
    ],
)
def test_constructor_errors(make, exc, match):
    with pytest.raises(exc, match=match):
        make()


def test_forward_errors():
    with pytest.raises(ValueError, match=r"x: expected a tensor \[\*, 4\]"):
        EqualLinear(4, 2)(torch.randn(3, 5))
    with pytest.raises(ValueError, match="x: expected 4 channels"):
        EqualConv2d(4, 2, 3)(torch.randn(1, 3, 5, 5))
    with pytest.raises(ValueError, match="x: expected a tensor of rank 4"):
        EqualConv2d(4, 2, 3)(torch.randn(4, 5, 5))
    with pytest.raises(TypeError, match="x: expected a floating-point tensor"):
        EqualConv2d(4, 2, 3)(torch.ones(1, 4, 5, 5, dtype=torch.long))
    with pytest.raises(ValueError, match="style"):
        StyledConv2d(4, 2, 3, 8, up=2)(torch.randn(1, 4, 5, 5), torch.randn(1, 8, 10, 10))
    with pytest.raises(ValueError, match="style"):
        ModulatedConv2d(4, 2, 3, 8)(torch.randn(2, 4, 5, 5), torch.randn(3, 8))
    with pytest.raises(ValueError, match="z"):
        MappingNetwork(4, 4)(torch.randn(2, 5))
