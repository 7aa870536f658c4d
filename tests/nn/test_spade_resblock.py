"""SPADEResBlock: against a written-out reference; identity shortcut; spectral norm."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F
from hypothesis import given
from hypothesis import strategies as st
from torch.nn.utils import parametrize

from ganblocks.nn import SPADEResBlock


def conv(c, x):
    return F.conv2d(x, c.weight, c.bias, padding=c.padding)


def ref(block: SPADEResBlock, x, label):
    """main: SPADE → lrelu → conv3×3 (twice); shortcut: SPADE → conv1×1 when widths differ."""
    h = conv(block.conv_0, F.leaky_relu(block.norm_0(x, label), 0.2))
    h = conv(block.conv_1, F.leaky_relu(block.norm_1(h, label), 0.2))
    s = x if block.conv_s is None else conv(block.conv_s, block.norm_s(x, label))
    return s + h


@given(
    cin=st.integers(1, 5),
    cout=st.integers(1, 5),
    labels=st.integers(1, 4),
    norm=st.sampled_from(["batch", "instance", "none"]),
    sn=st.booleans(),
    scale=st.sampled_from([1, 2]),
    seed=st.integers(0, 2**16),
)
def test_matches_reference(cin, cout, labels, norm, sn, scale, seed):
    torch.manual_seed(seed)
    block = SPADEResBlock(cin, cout, labels, hidden_channels=3, norm=norm, spectral_norm=sn)
    block = block.double().eval()
    x = torch.randn(2, cin, 4, 5, dtype=torch.float64)
    label = F.one_hot(torch.randint(0, labels, (2, 4 * scale, 5 * scale)), labels)
    label = label.permute(0, 3, 1, 2).double()
    y = block(x, label)
    assert y.shape == (2, cout, 4, 5)
    torch.testing.assert_close(y, ref(block, x, label))
    assert (block.conv_s is None) == (cin == cout)
    assert block.conv_0.out_channels == min(cin, cout)
    if block.conv_s is not None:
        assert block.conv_s.bias is None


def test_identity_shortcut_when_residual_is_zero():
    block = SPADEResBlock(4, 4, 3, hidden_channels=5, norm="instance")
    with torch.no_grad():
        block.conv_1.weight.zero_()
        block.conv_1.bias.zero_()
    x = torch.randn(2, 4, 6, 6)
    assert torch.equal(block(x, torch.rand(2, 3, 6, 6)), x)


def test_spectral_norm_on_the_three_convs_only():
    block = SPADEResBlock(6, 3, 2, hidden_channels=4, spectral_norm=True).eval()
    for c in (block.conv_0, block.conv_1, block.conv_s):
        assert parametrize.is_parametrized(c, "weight")
        sigma = torch.linalg.matrix_norm(c.weight.flatten(1), ord=2)
        assert abs(sigma.item() - 1) < 1e-2
    for spade in (block.norm_0, block.norm_1, block.norm_s):
        assert not any(parametrize.is_parametrized(m) for m in spade.modules())


def test_gradients_match_finite_differences():
    torch.manual_seed(0)
    block = SPADEResBlock(3, 2, 2, hidden_channels=2, norm="instance").double()
    x = torch.randn(1, 3, 3, 3, dtype=torch.float64, requires_grad=True)
    label = torch.rand(1, 2, 3, 3, dtype=torch.float64, requires_grad=True)
    assert torch.autograd.gradcheck(block, (x, label))


def test_errors():
    block = SPADEResBlock(4, 2, 3, hidden_channels=4)
    with pytest.raises(ValueError, match="x: expected 4 channels"):
        block(torch.randn(2, 5, 4, 4), torch.rand(2, 3, 4, 4))
    with pytest.raises(ValueError, match="label"):
        block(torch.randn(2, 4, 4, 4), torch.rand(2, 2, 4, 4))
    with pytest.raises(ValueError, match="norm"):
        SPADEResBlock(4, 2, 3, norm="layer")
    with pytest.raises(ValueError, match="label_channels"):
        SPADEResBlock(4, 2, 0)


def test_default_hidden_width_is_spades_128():
    """SPADE's paper and code use a 128-channel shared layer in every normalisation."""
    block = SPADEResBlock(4, 4, 3)
    assert {m.shared.out_channels for m in block.modules() if hasattr(m, "gamma_beta")} == {128}


@pytest.mark.parametrize("kwargs, name", [({"out_channels": 0}, "out_channels"),
                                          ({"out_channels": 2.0}, "out_channels"),
                                          ({"in_channels": 0}, "in_channels"),
                                          ({"label_channels": 0}, "label_channels")])
def test_bad_options_name_the_argument(kwargs, name):
    args = {"in_channels": 4, "out_channels": 4, "label_channels": 3, **kwargs}
    with pytest.raises((TypeError, ValueError), match=name):
        SPADEResBlock(args["in_channels"], args["out_channels"], args["label_channels"])


def test_input_channels_are_checked_first():
    with pytest.raises(ValueError, match=r"^x: expected 4 channels"):
        SPADEResBlock(4, 6, 3)(torch.randn(2, 5, 8, 8), torch.rand(2, 3, 8, 8))
