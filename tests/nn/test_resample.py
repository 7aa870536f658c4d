"""Upsample2d, Downsample2d, Blur: the module equals its op, shapes, constants are preserved."""

from __future__ import annotations

import torch
from hypothesis import given
from hypothesis import strategies as st

from ganblocks.nn import Blur, Downsample2d, Upsample2d
from ganblocks.ops import downsample2d, filter2d, setup_filter, upsample2d

TAPS = st.sampled_from([(1, 1), (1, 3, 3, 1), (1, 2, 1), (1, 4, 6, 4, 1)])


@given(
    factor=st.integers(1, 3),
    taps=TAPS,
    hw=st.tuples(st.integers(2, 6), st.integers(2, 6)),
    seed=st.integers(0, 2**16),
)
def test_modules_equal_their_ops(factor, taps, hw, seed):
    gen = torch.Generator().manual_seed(seed)
    f = setup_filter(taps)
    x = torch.randn(2, 3, hw[0] * factor, hw[1] * factor, generator=gen)
    up = Upsample2d(factor, resample_filter=taps)(x)
    assert up.shape == (2, 3, hw[0] * factor**2, hw[1] * factor**2)
    torch.testing.assert_close(up, upsample2d(x, f, up=factor))
    down = Downsample2d(factor, resample_filter=taps)(x)
    assert down.shape == (2, 3, *hw)
    torch.testing.assert_close(down, downsample2d(x, f, down=factor))
    blur = Blur(taps, padding=1, gain=2.0)(x)
    assert blur.shape == (2, 3, hw[0] * factor + 2, hw[1] * factor + 2)
    torch.testing.assert_close(blur, filter2d(x, f, padding=1, gain=2.0))


@given(factor=st.integers(2, 4), taps=TAPS, value=st.floats(-3, 3))
def test_constants_are_kept_away_from_borders(factor, taps, value):
    """Down-sampling and blurring keep constants (normalised filters); up-sampling keeps them for
    factor 2, where each of these symmetric filters' two polyphase components sums to one half."""
    x = torch.full((1, 2, 12, 12), value, dtype=torch.float64)
    m = len(taps)  # filter support: border effects reach at most this far
    up = Upsample2d(2, resample_filter=taps).double()(x)
    torch.testing.assert_close(up[..., m:-m, m:-m], torch.full_like(up[..., m:-m, m:-m], value))
    down = Downsample2d(factor, resample_filter=taps).double()(x)
    inner = down[..., 1:-1, 1:-1]
    torch.testing.assert_close(inner, torch.full_like(inner, value))
    blur = Blur(taps).double()(x)[..., m:-m, m:-m]
    torch.testing.assert_close(blur, torch.full_like(blur, value))


def test_filter_buffer_is_not_saved():
    for module in (Upsample2d(), Downsample2d(), Blur()):
        assert module.state_dict() == {}
        assert module.double().resample_filter.dtype == torch.float64
