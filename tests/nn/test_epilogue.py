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


def _lrelu(t: torch.Tensor) -> torch.Tensor:
    return torch.nn.functional.leaky_relu(t, 0.2) * math.sqrt(2)


def _reference(head, x, cmap, *, group):
    """StyleGAN2's epilogue in plain torch: minibatch std (samples n and n + k·N/G grouped, one
    statistic channel), 3×3 conv + lrelu, fc + lrelu, linear output, projection with the cmap."""
    n, c, r, _ = x.shape
    y = x.reshape(group, n // group, c, r, r)
    std = (y.var(dim=0, unbiased=False) + 1e-8).sqrt().mean(dim=(1, 2, 3))  # [N / G]
    x = torch.cat([x, std.repeat(group).view(n, 1, 1, 1).expand(n, 1, r, r)], dim=1)
    w = head.conv.weight / math.sqrt((c + 1) * 9)
    x = _lrelu(torch.nn.functional.conv2d(x, w, head.conv.bias, padding=1))
    x = _lrelu(x.flatten(1) @ (head.fc.weight / math.sqrt(c * r * r)).T + head.fc.bias)
    x = x @ (head.out.weight / math.sqrt(c)).T + head.out.bias
    if cmap is None:
        return x
    return (x * cmap).sum(dim=1, keepdim=True) / math.sqrt(cmap.shape[1])


@pytest.mark.parametrize("cmap_dim", [0, 3])
def test_matches_an_independent_stylegan2_epilogue(cmap_dim):
    torch.manual_seed(3)
    head = DiscriminatorEpilogue(5, cmap_dim=cmap_dim).double()  # defaults: 4x4, groups of 4
    with torch.no_grad():
        for p in head.parameters():
            if p.ndim == 1:
                p.normal_()  # non-zero biases, so each one is checked
    x = torch.randn(8, 5, 4, 4, dtype=torch.float64)
    cmap = torch.randn(8, cmap_dim, dtype=torch.float64) if cmap_dim else None
    torch.testing.assert_close(head(x, cmap), _reference(head, x, cmap, group=4))
    # A batch smaller than the group size forms one group.
    torch.testing.assert_close(head(x[:2], None if cmap is None else cmap[:2]),
                               _reference(head, x[:2], None if cmap is None else cmap[:2],
                                          group=2))


def test_arguments_are_checked():
    for kwargs, name in (({"in_channels": 0}, "in_channels"), ({"resolution": 0}, "resolution"),
                         ({"cmap_dim": -1}, "cmap_dim"),
                         ({"mbstd_num_channels": -1}, "mbstd_num_channels")):
        args = {"in_channels": 4, **kwargs}
        with pytest.raises(ValueError, match=name):
            DiscriminatorEpilogue(args.pop("in_channels"), **args)
    head = DiscriminatorEpilogue(4, 2, cmap_dim=3)
    with pytest.raises(ValueError, match=r"^x: expected 4 channels"):
        head(torch.randn(4, 5, 2, 2), torch.randn(4, 3))
    with pytest.raises(ValueError, match=r"^cmap: expected 3 channels"):
        head(torch.randn(4, 4, 2, 2), torch.randn(4, 2))
    assert head(torch.randn(4, 4, 2, 2), torch.randn(4, 3)).shape == (4, 1)
