"""Convolutional blocks commute with translations away from the borders.

Cropping ``s`` pixels off the top-left of the input (``s`` a multiple of the down-sampling factor)
crops ``s·up/down`` pixels off the top-left of the output; away from the borders the two outputs
agree. Blocks with global statistics (instance norm, image pooling) are checked without them.
"""

from __future__ import annotations

import pytest
import torch
from hypothesis import given
from hypothesis import strategies as st

from ganblocks.nn import (
    ASPP,
    SPADE,
    Blur,
    Downsample2d,
    EqualConv2d,
    ModulatedConv2d,
    ResBlockD,
    ResBlockU,
    SpatialModulation,
    Upsample2d,
)


def check_equivariant(fn, x, *, up: int, down: int, shift: int, margin: int = 6):
    assert shift % down == 0
    full = fn(x)
    cropped = fn(x[..., shift:, shift:])
    off = shift * up // down
    m = margin * up // down + 2  # output pixels that may see the border of either input
    a = full[..., off + m : full.shape[-2] - m, off + m : full.shape[-1] - m]
    b = cropped[..., m : cropped.shape[-2] - m, m : cropped.shape[-1] - m]
    assert a.shape == b.shape and a.numel() > 0
    torch.testing.assert_close(a, b)


@given(
    k=st.sampled_from([1, 3, 5]),
    updown=st.sampled_from([(1, 1), (2, 1), (1, 2), (2, 2), (4, 1), (1, 4)]),
    dilation=st.sampled_from([1, 2]),
    shift=st.integers(1, 3),
    seed=st.integers(0, 2**16),
)
def test_equal_conv_is_translation_equivariant(k, updown, dilation, shift, seed):
    up, down = updown
    torch.manual_seed(seed)
    layer = EqualConv2d(2, 3, k, up=up, down=down, dilation=dilation, activation="lrelu").double()
    size = 20 * down + 20
    x = torch.randn(1, 2, size, size, dtype=torch.float64)
    check_equivariant(layer, x, up=up, down=down, shift=shift * down, margin=k * dilation + 4)


@given(
    updown=st.sampled_from([(1, 1), (2, 1), (1, 2)]),
    fused=st.booleans(),
    shift=st.integers(1, 3),
    seed=st.integers(0, 2**16),
)
def test_modulated_conv_is_translation_equivariant(updown, fused, shift, seed):
    up, down = updown
    torch.manual_seed(seed)
    layer = ModulatedConv2d(2, 3, 3, 4, up=up, down=down, fused=fused).double()
    x = torch.randn(2, 2, 32, 32, dtype=torch.float64)
    style = torch.randn(2, 4, dtype=torch.float64)
    check_equivariant(lambda t: layer(t, style), x, up=up, down=down, shift=shift * down)


@pytest.mark.parametrize(
    "make, up, down",
    [
        (lambda: ResBlockD(2, 3), 1, 2),
        (lambda: ResBlockD(3, 3, downsample=False, equalized=False), 1, 1),
        (lambda: ResBlockU(3, 2, spectral_norm=False), 2, 1),
        (lambda: ASPP(2, 3, rates=(1, 2, 3), image_pooling=False), 1, 1),
        (lambda: Upsample2d(2), 2, 1),
        (lambda: Downsample2d(2), 1, 2),
        (lambda: Blur(), 1, 1),
    ],
)
@pytest.mark.parametrize("shift", [1, 2])
def test_blocks_are_translation_equivariant(make, up, down, shift):
    torch.manual_seed(shift)
    block = make().double()
    channels = next((p.shape[1] for p in block.parameters() if p.ndim == 4), 2)
    x = torch.randn(2, channels, 32, 32, dtype=torch.float64)
    check_equivariant(block, x, up=up, down=down, shift=shift * down)


def test_style_paths_are_translation_equivariant():
    torch.manual_seed(0)
    mod = SpatialModulation(3, 4).double()
    style = torch.randn(2, 4, 24, 24, dtype=torch.float64)
    check_equivariant(lambda s: torch.cat(mod.gamma_beta(s), 1), style, up=1, down=1, shift=2)
    spade = SPADE(3, 4, hidden_channels=5, norm="none").double()
    x, label = torch.randn(2, 3, 24, 24).double(), torch.randn(2, 4, 24, 24).double()
    both = torch.cat([x, label], 1)
    check_equivariant(lambda t: spade(t[:, :3], t[:, 3:]), both, up=1, down=1, shift=2)
