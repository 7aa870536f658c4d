"""conv2d_resample equals the plain composition FIR-upsample → conv → FIR-downsample."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F
from hypothesis import assume, given
from hypothesis import strategies as st

from ganblocks.ops import conv2d_resample, setup_filter, upfirdn2d


def composition(x, w, f, *, up, down, padding, groups, flip_weight, flip_filter):
    """The definition: zero-insert + FIR (centred), plain correlation, FIR + subsample."""
    fw, fh = (1, 1) if f is None else (f.shape[-1], f.shape[0])
    x0, x1, y0, y1 = padding
    if up > 1:
        x0, x1, y0, y1 = (x0 + (fw + up - 1) // 2, x1 + (fw - up) // 2,
                          y0 + (fh + up - 1) // 2, y1 + (fh - up) // 2)
    if down > 1:
        x0, x1, y0, y1 = (x0 + (fw - down + 1) // 2, x1 + (fw - down) // 2,
                          y0 + (fh - down + 1) // 2, y1 + (fh - down) // 2)
    x = upfirdn2d(x, f if up > 1 else None, up=up, padding=[x0, x1, y0, y1], gain=up**2,
                  flip_filter=flip_filter, impl="ref")
    x = F.conv2d(x, w if flip_weight else w.flip([2, 3]), groups=groups)
    if down > 1:
        x = upfirdn2d(x, f, down=down, flip_filter=flip_filter, impl="ref")
    return x


@st.composite
def conv_args(draw):
    groups = draw(st.sampled_from([1, 2, 3]))
    cin, cout = groups * draw(st.integers(1, 3)), groups * draw(st.integers(1, 3))
    k = draw(st.sampled_from([(1, 1), (3, 3), (1, 3), (2, 2), (4, 3)]))
    up, down = draw(st.sampled_from([(1, 1), (2, 1), (1, 2), (2, 2), (4, 1), (1, 4), (3, 2)]))
    taps = draw(st.sampled_from([None, [1, 1], [1, 3, 3, 1], [1, 2, 1], [1, 4, 6, 4, 1]]))
    f = None if taps is None else setup_filter(taps)
    h, w = draw(st.integers(3, 9)), draw(st.integers(3, 9))
    pad = draw(st.one_of(st.integers(0, 2), st.lists(st.integers(-1, 2), min_size=4, max_size=4)))
    pad = [pad] * 4 if isinstance(pad, int) else pad
    seed = draw(st.integers(0, 2**16))
    gen = torch.Generator().manual_seed(seed)
    x = torch.randn(2, cin, h, w, dtype=torch.float64, generator=gen)
    wt = torch.randn(cout, cin // groups, *k, dtype=torch.float64, generator=gen)
    return x, wt, f, dict(up=up, down=down, padding=pad, groups=groups,
                          flip_weight=draw(st.booleans()), flip_filter=draw(st.booleans()))


@given(conv_args())
def test_every_route_equals_the_composition(args):
    x, w, f, kw = args
    try:
        expected = composition(x, w, f, **kw)
    except (ValueError, RuntimeError):
        assume(False)  # too small for this filter/kernel: not a valid configuration
    assume(min(expected.shape[2:]) >= 1)
    y = conv2d_resample(x, w, f, **kw)
    assert y.shape == expected.shape
    torch.testing.assert_close(y, expected, rtol=1e-9, atol=1e-9)


@pytest.mark.parametrize("k", [1, 3])
@pytest.mark.parametrize("up, down", [(1, 1), (2, 1), (1, 2)])
def test_same_padding_scales_size_exactly(k, up, down):
    x, w = torch.randn(2, 4, 16, 16), torch.randn(5, 4, k, k)
    y = conv2d_resample(x, w, setup_filter([1, 3, 3, 1]), up=up, down=down, padding=k // 2)
    assert y.shape == (2, 5, 16 * up // down, 16 * up // down)


def test_plain_conv_and_groups():
    x, w = torch.randn(2, 6, 9, 9, dtype=torch.float64), torch.randn(4, 3, 3, 3,
                                                                      dtype=torch.float64)
    torch.testing.assert_close(conv2d_resample(x, w, padding=1, groups=2),
                               F.conv2d(x, w, padding=1, groups=2))
    # groups=2 is two independent convolutions over channel halves.
    f = setup_filter([1, 3, 3, 1])
    y = conv2d_resample(x, w, f, up=2, padding=1, groups=2)
    halves = [conv2d_resample(x[:, 3 * i:3 * i + 3], w[2 * i:2 * i + 2], f, up=2, padding=1)
              for i in range(2)]
    torch.testing.assert_close(y, torch.cat(halves, 1))


@pytest.mark.parametrize("up, down", [(2, 1), (1, 2), (1, 1)])
def test_gradcheck(up, down):
    x = torch.randn(1, 2, 5, 5, dtype=torch.float64, requires_grad=True)
    w = torch.randn(2, 2, 3, 3, dtype=torch.float64, requires_grad=True)
    f = setup_filter([1, 3, 3, 1])
    fn = lambda a, b: conv2d_resample(a, b, f, up=up, down=down, padding=1)  # noqa: E731
    assert torch.autograd.gradcheck(fn, (x, w))
    assert torch.autograd.gradgradcheck(fn, (x, w))


def test_bad_arguments():
    x = torch.randn(1, 4, 8, 8)
    with pytest.raises(ValueError, match="w: shape"):
        conv2d_resample(x, torch.randn(2, 3, 3, 3))
    with pytest.raises(ValueError, match="up"):
        conv2d_resample(x, torch.randn(2, 4, 3, 3), up=0)
    with pytest.raises(ValueError, match="groups"):
        conv2d_resample(x, torch.randn(2, 4, 3, 3), groups=0)
