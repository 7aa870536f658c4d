"""ResBlockD, ResBlockU, ASPP: against written-out references; spectral norm placement."""

from __future__ import annotations

import math

import pytest
import torch
import torch.nn.functional as F
from hypothesis import given
from hypothesis import strategies as st
from torch.nn.utils import parametrize

from ganblocks.nn import ASPP, EqualConv2d, ResBlockD, ResBlockU


def convs(module):
    return [m for m in module.modules() if isinstance(m, (torch.nn.Conv2d, EqualConv2d))]


def plain(conv, x):
    """A conv applied through F.conv2d with the weight it really uses."""
    if isinstance(conv, EqualConv2d):
        b = None if conv.bias is None else conv.bias * conv.bias_gain
        return F.conv2d(x, conv.effective_weight(), b, padding=conv.kernel_size // 2)
    return F.conv2d(x, conv.weight, conv.bias, padding=conv.padding, dilation=conv.dilation)


def resblock_d_ref(block: ResBlockD, x):
    """Written in the order of the spec (shortcut: conv1×1 *then* avgpool)."""
    if block.equalized:
        def act(t):
            return F.leaky_relu(t, 0.2) * math.sqrt(2)
    else:
        def act(t):
            return F.leaky_relu(t, 0.2)
    h = act(x) if block.preactivate else x
    h = plain(block.conv2, act(plain(block.conv1, h)))
    s = x if block.shortcut is None else plain(block.shortcut, x)
    if block.downsample:
        h, s = F.avg_pool2d(h, 2), F.avg_pool2d(s, 2)
    return h + s


@given(
    cin=st.integers(1, 4),
    cout=st.integers(1, 4),
    downsample=st.booleans(),
    equalized=st.booleans(),
    preactivate=st.booleans(),
    hw=st.tuples(st.integers(1, 4), st.integers(1, 4)),
    seed=st.integers(0, 2**16),
)
def test_resblock_d_matches_reference(cin, cout, downsample, equalized, preactivate, hw, seed):
    torch.manual_seed(seed)
    block = ResBlockD(
        cin, cout, downsample=downsample, equalized=equalized, preactivate=preactivate
    ).double()
    x = torch.randn(2, cin, 2 * hw[0], 2 * hw[1], dtype=torch.float64)
    y = block(x)
    f = 2 if downsample else 1
    assert y.shape == (2, cout, 2 * hw[0] // f, 2 * hw[1] // f)
    assert (block.shortcut is None) == (cin == cout)
    torch.testing.assert_close(y, resblock_d_ref(block, x))


def resblock_u_ref(block: ResBlockU, x):
    """In the order of the spec: lrelu → up → conv → lrelu → conv; shortcut up → conv1×1."""
    up = F.interpolate(x, scale_factor=2.0, mode="nearest")
    h = plain(block.conv2, F.leaky_relu(plain(block.conv1, F.leaky_relu(up, 0.2)), 0.2))
    return h + (up if block.shortcut is None else plain(block.shortcut, up))


@given(
    cin=st.integers(1, 4),
    cout=st.integers(1, 4),
    hw=st.tuples(st.integers(1, 5), st.integers(1, 5)),
    seed=st.integers(0, 2**16),
)
def test_resblock_u_matches_reference(cin, cout, hw, seed):
    torch.manual_seed(seed)
    block = ResBlockU(cin, cout, spectral_norm=False).double()
    x = torch.randn(2, cin, *hw, dtype=torch.float64)
    y = block(x)
    assert y.shape == (2, cout, 2 * hw[0], 2 * hw[1])
    torch.testing.assert_close(y, resblock_u_ref(block, x))


def aspp_ref(aspp: ASPP, x):
    def act(t):
        return F.leaky_relu(t, 0.2) if aspp.branch_activation else t

    outs = [act(plain(conv, x)) for conv in aspp.branches]
    if aspp.pool is not None:
        pooled = x.mean(dim=(2, 3), keepdim=True)
        outs.append(act(plain(aspp.pool, pooled)).repeat(1, 1, *x.shape[2:]))
    return plain(aspp.project, torch.cat(outs, 1))


@given(
    rates=st.lists(st.integers(1, 4), min_size=0, max_size=3, unique=True),
    image_pooling=st.booleans(),
    branch_activation=st.booleans(),
    hw=st.tuples(st.integers(1, 6), st.integers(1, 6)),
    seed=st.integers(0, 2**16),
)
def test_aspp_matches_reference(rates, image_pooling, branch_activation, hw, seed):
    if not rates and not image_pooling:
        image_pooling = True
    torch.manual_seed(seed)
    aspp = ASPP(
        3, 2, rates=tuple(rates), image_pooling=image_pooling, branch_activation=branch_activation
    ).double()
    convs3 = [c for c in aspp.branches if c.kernel_size == (3, 3)]
    assert [c.dilation[0] for c in convs3] == [r for r in rates if r > 1]
    x = torch.randn(2, 3, *hw, dtype=torch.float64)
    y = aspp(x)
    assert y.shape == (2, 2, *hw)
    torch.testing.assert_close(y, aspp_ref(aspp, x))


@pytest.mark.parametrize("spectral_norm", [False, True])
def test_spectral_norm_on_every_conv_when_asked(spectral_norm):
    blocks = [
        ResBlockD(4, 8, spectral_norm=spectral_norm, equalized=False),
        ResBlockU(8, 4, spectral_norm=spectral_norm),
        ASPP(4, 4, rates=(1, 2, 3), image_pooling=True, spectral_norm=spectral_norm),
    ]
    counts = [3, 3, 5]  # conv1, conv2, shortcut | branches ×3, pooling, projection
    for block, count in zip(blocks, counts):
        cs = convs(block)
        assert len(cs) == count
        assert all(parametrize.is_parametrized(c, "weight") == spectral_norm for c in cs)
    assert ResBlockU(4, 4).shortcut is None
    assert all(parametrize.is_parametrized(c, "weight") for c in convs(ResBlockU(4, 4)))


def test_spectral_norm_makes_largest_singular_value_one():
    torch.manual_seed(0)
    block = ResBlockU(6, 5, spectral_norm=True)
    x = torch.randn(2, 6, 4, 4)
    for _ in range(30):  # each training-mode forward runs one power iteration
        block(x)
    block.eval()
    for conv in convs(block):
        sigma = torch.linalg.matrix_norm(conv.weight.detach().flatten(1), ord=2)
        assert sigma.item() == pytest.approx(1.0, abs=1e-3)


def test_equalized_and_spectral_norm_are_exclusive():
    with pytest.raises(ValueError, match="spectral_norm"):
        ResBlockD(4, 4, spectral_norm=True)
    assert not any(
        parametrize.is_parametrized(c, "weight") for c in convs(ResBlockD(4, 8, equalized=True))
    )
