"""NoiseInjection: identity at init, exact const/none modes, random noise shared over channels."""

from __future__ import annotations

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from ganblocks.nn import NoiseInjection


@settings(max_examples=15)
@given(
    n=st.integers(1, 3),
    c=st.integers(1, 4),
    h=st.integers(1, 6),
    w=st.integers(1, 6),
    strength=st.floats(-2, 2),
    seed=st.integers(0, 2**16),
)
def test_modes(n, c, h, w, strength, seed):
    torch.manual_seed(seed)
    layer = NoiseInjection((h, w))
    x = torch.randn(n, c, h, w)
    assert torch.equal(layer(x, noise_mode="random"), x)  # strength starts at 0
    with torch.no_grad():
        layer.strength.fill_(strength)
    assert torch.equal(layer(x, noise_mode="none"), x)
    torch.testing.assert_close(layer(x, noise_mode="const"), x + strength * layer.const)
    y = layer(x, noise_mode="random") - x
    # one noise image per sample, the same for every channel
    torch.testing.assert_close(y, y[:, :1].expand_as(y))
    explicit = torch.randn(n, 1, h, w)
    torch.testing.assert_close(layer(x, noise=explicit), x + strength * explicit)


def test_random_noise_is_standard_normal_and_const_is_a_buffer():
    layer = NoiseInjection(64)
    with torch.no_grad():
        layer.strength.fill_(1.0)
    torch.manual_seed(0)
    y = layer(torch.zeros(16, 1, 64, 64))
    assert abs(y.mean().item()) < 0.02 and abs(y.std().item() - 1) < 0.02
    assert set(layer.state_dict()) == {"strength", "const"}
    assert dict(layer.named_parameters()).keys() == {"strength"}


def test_gradient_reaches_strength():
    layer = NoiseInjection(4)
    layer(torch.ones(2, 3, 4, 4), noise_mode="const").sum().backward()
    torch.testing.assert_close(layer.strength.grad, 6 * layer.const.sum())


def test_errors():
    layer = NoiseInjection((4, 5))
    with pytest.raises(ValueError, match="noise_mode"):
        layer(torch.zeros(1, 1, 4, 5), noise_mode="fixed")
    with pytest.raises(ValueError, match="spatial size"):
        layer(torch.zeros(1, 1, 5, 4))
    with pytest.raises(ValueError, match="noise"):
        layer(torch.zeros(1, 1, 4, 5), noise=torch.zeros(3, 3))


@pytest.mark.parametrize("dtype", [torch.bfloat16, torch.float16, torch.float64])
def test_output_keeps_the_input_dtype(dtype):
    """The float32 strength must not promote a half-precision (or float64) feature map."""
    layer = NoiseInjection(4)
    layer.strength.data.fill_(0.5)
    x = torch.randn(2, 3, 4, 4).to(dtype)
    for mode in ("random", "const"):
        assert layer(x, noise_mode=mode).dtype == dtype


def test_input_must_be_4d():
    with pytest.raises(ValueError, match=r"x: .*rank 4"):
        NoiseInjection(4)(torch.randn(3, 4, 4))
