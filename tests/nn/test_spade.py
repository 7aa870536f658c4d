"""SPADE against a written-out reference for each normalisation."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F
from hypothesis import given
from hypothesis import strategies as st

from ganblocks.nn import SPADE


def spade_ref(spade: SPADE, x, label):
    if spade.norm_type == "none":
        xn = x
    else:
        dims = (2, 3) if spade.norm_type == "instance" else (0, 2, 3)
        mean = x.mean(dim=dims, keepdim=True)
        var = (x - mean).square().mean(dim=dims, keepdim=True)
        xn = (x - mean) / torch.sqrt(var + 1e-5)
    # nearest resize written as index selection: output pixel i takes input pixel floor(i·h/H)
    rows = (torch.arange(x.shape[2]) * label.shape[2]) // x.shape[2]
    cols = (torch.arange(x.shape[3]) * label.shape[3]) // x.shape[3]
    label = label[:, :, rows][:, :, :, cols]
    hidden = F.relu(F.conv2d(label, spade.shared.weight, spade.shared.bias, padding=1))
    gb = F.conv2d(hidden, spade.gamma_beta.weight, spade.gamma_beta.bias, padding=1)
    gamma, beta = gb.chunk(2, dim=1)
    return xn * (1 + gamma) + beta


@given(
    norm=st.sampled_from(["instance", "batch", "none"]),
    c=st.integers(1, 4),
    labels=st.integers(1, 5),
    hw=st.tuples(st.integers(2, 6), st.integers(2, 6)),
    label_scale=st.sampled_from([1, 2, 4]),
    seed=st.integers(0, 2**16),
)
def test_spade_matches_reference(norm, c, labels, hw, label_scale, seed):
    torch.manual_seed(seed)
    spade = SPADE(c, labels, hidden_channels=3, norm=norm).double()
    x = torch.randn(2, c, *hw, dtype=torch.float64) * 2 + 1
    idx = torch.randint(0, labels, (2, hw[0] * label_scale, hw[1] * label_scale))
    onehot = F.one_hot(idx, labels).permute(0, 3, 1, 2).double()
    y = spade(x, onehot)
    assert y.shape == x.shape
    torch.testing.assert_close(y, spade_ref(spade, x, onehot))


def test_spade_errors():
    with pytest.raises(ValueError, match="norm"):
        SPADE(4, 3, norm="layer")
    spade = SPADE(4, 3, hidden_channels=8)
    with pytest.raises(ValueError, match="label"):
        spade(torch.randn(2, 4, 8, 8), torch.randn(2, 5, 8, 8))
    with pytest.raises(ValueError, match="label"):
        spade(torch.randn(2, 4, 8, 8), torch.randn(3, 3, 8, 8))


@pytest.mark.parametrize("kwargs, name", [
    ({"label_channels": 0}, "label_channels"), ({"label_channels": 2.0}, "label_channels"),
    ({"hidden_channels": 0}, "hidden_channels"), ({"hidden_channels": "8"}, "hidden_channels"),
    ({"num_features": 0}, "num_features"), ({"kernel_size": 0}, "kernel_size"),
])
def test_bad_options_name_the_argument(kwargs, name):
    args = {"num_features": 4, "label_channels": 3, **kwargs}
    with pytest.raises((TypeError, ValueError), match=name):
        SPADE(args.pop("num_features"), args.pop("label_channels"), **args)


@pytest.mark.parametrize("c, labels, hidden, k", [(4, 3, 8, 3), (1, 5, 2, 1), (6, 2, 4, 5)])
def test_parameters_are_one_shared_conv_and_a_gamma_beta_pair_per_channel(c, labels, hidden, k):
    """SPADE's parameters: conv_k(L -> hidden) and conv_k(hidden -> 2C) (γ and β per channel),
    and γ/β differ channel by channel (each channel has its own modulation)."""
    spade = SPADE(c, labels, hidden_channels=hidden, kernel_size=k)
    expected = labels * hidden * k * k + hidden + hidden * 2 * c * k * k + 2 * c
    assert sum(p.numel() for p in spade.parameters()) == expected
    if c > 1:
        torch.manual_seed(0)
        x = torch.zeros(1, c, 4, 4)  # normalised to 0: the output is β alone
        label = torch.rand(1, labels, 4, 4)
        beta = spade(x, label)
        assert not torch.allclose(beta[:, 0], beta[:, 1])
