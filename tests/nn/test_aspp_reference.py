"""ASPP against a reference written from DeepLab v3's description with plain torch ops.

The reference takes each conv's weight and bias but none of its settings: the rate-1 branch is a
1×1 conv, every rate ``r > 1`` a 3×3 conv with dilation ``r`` and padding ``r``; the pooling branch
is global average → 1×1 conv → broadcast; each branch goes through ``leaky_relu(0.2)``; the
branches are concatenated in the order of ``rates`` then pooling, and a 1×1 conv projects them.
"""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F

from ganblocks.nn import ASPP


def aspp_ref(aspp: ASPP, x: torch.Tensor, rates, *, pooling: bool, act: bool = True):
    def a(t):
        return F.leaky_relu(t, 0.2) if act else t

    outs = []
    for conv, r in zip(aspp.branches, rates):
        if r == 1:
            assert conv.weight.shape[-2:] == (1, 1)
            outs.append(a(F.conv2d(x, conv.weight, conv.bias)))
        else:
            assert conv.weight.shape[-2:] == (3, 3)
            outs.append(a(F.conv2d(x, conv.weight, conv.bias, padding=r, dilation=r)))
    if pooling:
        mean = x.mean(dim=(2, 3), keepdim=True)
        pooled = a(F.conv2d(mean, aspp.pool.weight, aspp.pool.bias))
        outs.append(pooled.expand(-1, -1, x.shape[2], x.shape[3]))
    return F.conv2d(torch.cat(outs, dim=1), aspp.project.weight, aspp.project.bias)


def randomise(module, seed):
    gen = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for p in module.parameters():
            p.copy_(torch.randn(p.shape, generator=gen, dtype=p.dtype))


@pytest.mark.parametrize("rates", [(1, 2, 3), (3, 1), (2,)])
@pytest.mark.parametrize("pooling", [True, False])
def test_aspp_matches_reference(rates, pooling):
    aspp = ASPP(3, 4, rates=rates, image_pooling=pooling).double()
    randomise(aspp, 0)
    x = torch.randn(2, 3, 7, 9, generator=torch.Generator().manual_seed(1), dtype=torch.float64)
    y = aspp(x)
    assert y.shape == (2, 4, 7, 9)
    torch.testing.assert_close(y, aspp_ref(aspp, x, rates, pooling=pooling))


def test_aspp_defaults_are_rates_1_2_3_with_pooling_and_activation():
    aspp = ASPP(2, 3).double()
    randomise(aspp, 2)
    x = torch.randn(1, 2, 6, 6, generator=torch.Generator().manual_seed(3), dtype=torch.float64)
    torch.testing.assert_close(aspp(x), aspp_ref(aspp, x, (1, 2, 3), pooling=True))


def test_aspp_without_branch_activation_is_linear():
    aspp = ASPP(2, 3, branch_activation=False).double()
    randomise(aspp, 4)
    x = torch.randn(2, 2, 5, 5, generator=torch.Generator().manual_seed(5), dtype=torch.float64)
    torch.testing.assert_close(aspp(x), aspp_ref(aspp, x, (1, 2, 3), pooling=True, act=False))


def test_pooling_branch_sees_the_whole_image():
    """Only the pooling branch reaches beyond a 3×3 conv of dilation 3: a change at one corner
    moves the output at the opposite corner only through it, and by the same amount everywhere
    outside the branches' reach."""
    aspp = ASPP(2, 2, rates=(1, 2, 3)).double()
    randomise(aspp, 6)
    x = torch.randn(1, 2, 12, 12, generator=torch.Generator().manual_seed(7), dtype=torch.float64)
    x2 = x.clone()
    x2[:, :, 0, 0] += 5.0
    d = aspp(x2) - aspp(x)
    far = d[:, :, 6:, 6:]
    assert far.abs().min() > 1e-6
    torch.testing.assert_close(far, far[:, :, :1, :1].expand_as(far))
    no_pool = ASPP(2, 2, rates=(1, 2, 3), image_pooling=False).double()
    d = no_pool(x2) - no_pool(x)
    assert d[:, :, 6:, 6:].abs().max() == 0


@pytest.mark.parametrize(
    ("make", "exc", "match"),
    [
        (lambda: ASPP(0, 4), ValueError, "in_channels"),
        (lambda: ASPP(4, 0), ValueError, "out_channels"),
        (lambda: ASPP(4, 4, rates={1, 2}), TypeError, "rates"),
        (lambda: ASPP(4, 4, rates="12"), TypeError, "rates"),
        (lambda: ASPP(4, 4, rates=(1, 2.0)), TypeError, "rates"),
    ],
)
def test_aspp_arguments_are_checked_by_name(make, exc, match):
    with pytest.raises(exc, match=match):
        make()


def test_aspp_input_is_checked_by_name():
    with pytest.raises(ValueError, match=r"^x: "):
        ASPP(4, 2)(torch.randn(1, 3, 5, 5))
