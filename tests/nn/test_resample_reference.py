"""Upsample2d, Downsample2d, Blur defaults (factor 2, FIR [1, 3, 3, 1]) against plain torch."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F

from ganblocks.nn import Blur, Downsample2d, Upsample2d

TAPS = torch.tensor([1.0, 3.0, 3.0, 1.0], dtype=torch.float64)
F2D = torch.outer(TAPS, TAPS) / 64.0  # unit DC gain


def fir(x: torch.Tensor, pad: tuple) -> torch.Tensor:
    c = x.shape[1]
    return F.conv2d(F.pad(x, pad), F2D.expand(c, 1, 4, 4), groups=c)


def test_upsample_default_is_zero_insertion_then_fir_gain_4():
    x = torch.randn(2, 3, 5, 6, generator=torch.Generator().manual_seed(0), dtype=torch.float64)
    z = x.new_zeros(2, 3, 10, 12)
    z[:, :, ::2, ::2] = x
    torch.testing.assert_close(Upsample2d()(x), 4 * fir(z, (2, 1, 2, 1)))


def test_downsample_default_is_fir_then_every_second_sample():
    x = torch.randn(2, 3, 8, 6, generator=torch.Generator().manual_seed(1), dtype=torch.float64)
    torch.testing.assert_close(Downsample2d()(x), fir(x, (1, 1, 1, 1))[:, :, ::2, ::2])


def test_blur_default_spreads_an_impulse_into_the_filter():
    x = torch.zeros(1, 1, 9, 9, dtype=torch.float64)
    x[0, 0, 4, 4] = 1.0
    y = Blur()(x)
    assert y.shape == x.shape
    nonzero = y[y != 0].sort().values
    torch.testing.assert_close(nonzero, F2D.flatten().sort().values)


@pytest.mark.parametrize("make", [Upsample2d, Downsample2d, Blur])
def test_resamplers_name_a_bad_input(make):
    with pytest.raises(ValueError, match=r"^x: "):
        make()(torch.zeros(3, 8, 8))
    with pytest.raises(TypeError, match=r"^x: "):
        make()(torch.zeros(1, 3, 8, 8, dtype=torch.long))
