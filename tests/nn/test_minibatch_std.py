"""MinibatchStd against a reference with explicit loops over the groups."""

from __future__ import annotations

import pytest
import torch
from hypothesis import given
from hypothesis import strategies as st

from ganblocks.nn import MinibatchStd


def minibatch_std_ref(x, group_size, num_channels, eps=1e-8):
    n, c, h, w = x.shape
    g = min(group_size, n)
    m = n // g
    extra = torch.empty(n, num_channels, h, w, dtype=x.dtype)
    cs = c // num_channels
    for group in range(m):
        members = list(range(group, n, m))  # sample n belongs to group n mod m
        for f in range(num_channels):
            block = x[members, f * cs : (f + 1) * cs]  # [g, cs, h, w]
            std = torch.sqrt(block.var(dim=0, unbiased=False) + eps).mean()
            extra[members, f] = std
    return torch.cat([x, extra], dim=1)


@given(
    g=st.integers(1, 4),
    m=st.integers(1, 3),
    num_channels=st.integers(1, 3),
    cs=st.integers(1, 3),
    hw=st.tuples(st.integers(1, 4), st.integers(1, 4)),
    group_size=st.integers(1, 8),
    seed=st.integers(0, 2**16),
)
def test_minibatch_std_matches_reference(g, m, num_channels, cs, hw, group_size, seed):
    n = g * m
    if n % min(group_size, n) != 0:
        group_size = g
    x = torch.randn(n, num_channels * cs, *hw, dtype=torch.float64,
                    generator=torch.Generator().manual_seed(seed))
    y = MinibatchStd(group_size, num_channels)(x)
    assert y.shape == (n, num_channels * (cs + 1), *hw)
    torch.testing.assert_close(y, minibatch_std_ref(x, group_size, num_channels))


def test_identical_samples_give_zero_std_and_clear_error_on_bad_batch():
    x = torch.randn(1, 6, 3, 3).expand(4, -1, -1, -1)
    y = MinibatchStd(4, 2, eps=0.0)(x)
    assert torch.equal(y[:, 6:], torch.zeros(4, 2, 3, 3))
    with pytest.raises(ValueError, match="batch size 6"):
        MinibatchStd(4)(torch.randn(6, 2, 3, 3))
    with pytest.raises(ValueError, match="num_channels"):
        MinibatchStd(2, 3)(torch.randn(2, 4, 3, 3))
    assert MinibatchStd(4)(torch.randn(3, 2, 2, 2)).shape == (3, 3, 2, 2)  # group = min(4, N)


def test_defaults_are_stylegan2s_group_of_4_and_one_channel():
    """StyleGAN2's discriminator epilogue: mbstd_group_size=4, mbstd_num_channels=1."""
    x = torch.randn(8, 6, 3, 3, dtype=torch.float64)
    torch.testing.assert_close(MinibatchStd()(x), minibatch_std_ref(x, 4, 1))
    assert not torch.allclose(MinibatchStd()(x), minibatch_std_ref(x, 2, 1))


@pytest.mark.parametrize("kwargs, name", [
    ({"num_channels": 0}, "num_channels"), ({"num_channels": 1.5}, "num_channels"),
    ({"group_size": 0}, "group_size"), ({"group_size": "4"}, "group_size"),
])
def test_bad_options_name_the_argument(kwargs, name):
    with pytest.raises((TypeError, ValueError), match=name):
        MinibatchStd(**kwargs)


def test_input_must_be_4d():
    with pytest.raises(ValueError, match=r"x: .*4"):
        MinibatchStd()(torch.randn(4, 6, 3))
