"""DiscriminatorEpilogue: composition of its layers, projection conditioning, batch coupling."""

from __future__ import annotations

import math

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from ganblocks.nn import DiscriminatorEpilogue


@settings(max_examples=8)
@given(c=st.integers(1, 8), res=st.integers(1, 4), cmap=st.integers(0, 5), seed=st.integers(0, 99))
def test_projection_is_inner_product_with_cmap(c, res, cmap, seed):
    torch.manual_seed(seed)
    head = DiscriminatorEpilogue(c, res, cmap_dim=cmap, mbstd_group_size=2).double()
    x = torch.randn(4, c, res, res, dtype=torch.float64)
    feats = head.out(head.fc(head.conv(head.mbstd(x)).flatten(1)))
    if cmap == 0:
        torch.testing.assert_close(head(x), feats)
        return
    e = torch.randn(4, cmap, dtype=torch.float64)
    logits = head(x, e)
    assert logits.shape == (4, 1)
    torch.testing.assert_close(logits, (feats * e).sum(1, keepdim=True) / math.sqrt(cmap))
    torch.testing.assert_close(head(x, 2 * e), 2 * logits)  # linear in the embedding


def test_minibatch_std_couples_samples_only_within_groups():
    torch.manual_seed(0)
    head = DiscriminatorEpilogue(4, 4, mbstd_group_size=2)
    x = torch.randn(4, 4, 4, 4)
    y = head(x)
    x2 = x.clone()
    x2[1] += 1.0  # sample 1 is grouped with sample 3 (n mod 2)
    y2 = head(x2)
    assert torch.equal(y[[0, 2]], y2[[0, 2]]) and not torch.equal(y[3], y2[3])
    free = DiscriminatorEpilogue(4, 4, mbstd_num_channels=0)
    assert free.mbstd is None and free.conv.in_channels == 4


def test_errors():
    head = DiscriminatorEpilogue(4, 4, cmap_dim=3)
    with pytest.raises(ValueError, match="cmap"):
        head(torch.randn(4, 4, 4, 4))
    with pytest.raises(ValueError, match="spatial size"):
        head(torch.randn(4, 4, 8, 8), torch.randn(4, 3))
