"""ResBlockD / ResBlockU with ``shortcut_bias=True`` (OASIS's discriminator blocks).

The reference is written in OASIS's order: encoder shortcut ``conv1×1 (bias) → avgpool``
(``avgpool → conv1×1`` for the first, un-preactivated block), decoder shortcut
``up×2 → conv1×1 (bias)``, main decoder path ``lrelu → up×2 → conv → lrelu → conv``; the blocks run
the shortcut conv on the smaller grid, which must not change the result (the bias included).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from hypothesis import given
from hypothesis import strategies as st

from ganblocks.nn import ResBlockD, ResBlockU


def conv(c, x):
    return F.conv2d(x, c.weight, c.bias, padding=c.padding)


def lrelu(x):
    return F.leaky_relu(x, 0.2)


def up(x):
    return F.interpolate(x, scale_factor=2.0, mode="nearest")


def oasis_down(block: ResBlockD, x):
    h = conv(block.conv1, lrelu(x) if block.preactivate else x)
    h = F.avg_pool2d(conv(block.conv2, lrelu(h)), 2)
    if block.shortcut is None:
        return h + F.avg_pool2d(x, 2)
    if not block.preactivate:  # OASIS's first block pools before its shortcut conv
        return h + conv(block.shortcut, F.avg_pool2d(x, 2))
    return h + F.avg_pool2d(conv(block.shortcut, x), 2)


def oasis_up(block: ResBlockU, x):
    h = conv(block.conv2, lrelu(conv(block.conv1, up(lrelu(x)))))
    s = up(x) if block.shortcut is None else conv(block.shortcut, up(x))
    return h + s


@given(
    cin=st.integers(1, 4),
    cout=st.integers(1, 4),
    first=st.booleans(),
    sn=st.booleans(),
    seed=st.integers(0, 2**16),
)
def test_down_block_matches_oasis_order(cin, cout, first, sn, seed):
    torch.manual_seed(seed)
    block = ResBlockD(cin, cout, equalized=False, spectral_norm=sn, preactivate=not first,
                      shortcut_bias=True).double().eval()
    if block.shortcut is not None:
        assert block.shortcut.bias is not None
        with torch.no_grad():
            block.shortcut.bias.normal_()
    x = torch.randn(2, cin, 6, 4, dtype=torch.float64)
    torch.testing.assert_close(block(x), oasis_down(block, x))


@given(cin=st.integers(1, 4), cout=st.integers(1, 4), sn=st.booleans(), seed=st.integers(0, 2**16))
def test_up_block_matches_oasis_order(cin, cout, sn, seed):
    torch.manual_seed(seed)
    block = ResBlockU(cin, cout, spectral_norm=sn, shortcut_bias=True).double().eval()
    if block.shortcut is not None:
        assert block.shortcut.bias is not None
        with torch.no_grad():
            block.shortcut.bias.normal_()
    x = torch.randn(2, cin, 3, 5, dtype=torch.float64)
    torch.testing.assert_close(block(x), oasis_up(block, x))


def test_default_shortcuts_have_no_bias():
    assert ResBlockD(2, 3, equalized=False).shortcut.bias is None
    assert ResBlockD(2, 3).shortcut.bias is None
    assert ResBlockU(2, 3).shortcut.bias is None
    assert ResBlockD(2, 3, shortcut_bias=True).shortcut.bias is not None  # equalised too
