"""3-D noise: z broadcast over the grid, in front of the label channels; OASIS's draw."""

from __future__ import annotations

import pytest
import torch
from hypothesis import given
from hypothesis import strategies as st

from ganblocks.nn import Noise3d, concat_noise_3d


@given(
    n=st.integers(1, 3),
    z_dim=st.integers(1, 6),
    labels=st.integers(1, 5),
    hw=st.tuples(st.integers(1, 7), st.integers(1, 7)),
)
def test_concat_puts_z_everywhere_in_front(n, z_dim, labels, hw):
    label = torch.rand(n, labels, *hw)
    z = torch.randn(n, z_dim)
    out = concat_noise_3d(label, z)
    assert out.shape == (n, z_dim + labels, *hw)
    assert torch.equal(out[:, z_dim:], label)
    assert torch.equal(out[:, :z_dim], z[:, :, None, None].expand(-1, -1, *hw))


def test_per_pixel_z_is_used_as_given():
    label = torch.rand(2, 3, 4, 5)
    z = torch.randn(2, 6, 4, 5)
    assert torch.equal(concat_noise_3d(label, z)[:, :6], z)


def test_draw_is_a_standard_normal_vector_per_image_as_oasis_draws_it():
    label = torch.rand(4, 3, 8, 8)
    torch.manual_seed(7)
    out = Noise3d(5)(label)
    torch.manual_seed(7)
    z = torch.randn(4, 5)  # OASIS: torch.randn(B, z_dim) from the global generator
    assert torch.equal(out[:, :5], z[:, :, None, None].expand(-1, -1, 8, 8))
    big = Noise3d(64)(torch.zeros(512, 1, 1, 1))[:, :64]
    assert abs(big.mean().item()) < 0.02 and abs(big.std().item() - 1) < 0.02


def test_explicit_generator_is_reproducible_and_z_overrides():
    noise = Noise3d(3)
    label = torch.rand(2, 4, 5, 5, dtype=torch.float64)
    a = noise(label, generator=torch.Generator().manual_seed(1))
    b = noise(label, generator=torch.Generator().manual_seed(1))
    assert torch.equal(a, b) and a.dtype == torch.float64
    z = torch.randn(2, 3, dtype=torch.float64)
    assert torch.equal(noise(label, z)[:, :3, 2, 2], z)


def test_errors():
    label = torch.rand(2, 3, 4, 4)
    with pytest.raises(ValueError, match="z: expected batch size 2"):
        concat_noise_3d(label, torch.randn(3, 5))
    with pytest.raises(ValueError, match="z: a per-pixel z"):
        concat_noise_3d(label, torch.randn(2, 5, 2, 2))
    with pytest.raises(ValueError, match="z: expected a floating-point"):
        concat_noise_3d(label, torch.ones(2, 5, dtype=torch.long))
    with pytest.raises(ValueError, match="z: expected 5 channels"):
        Noise3d(5)(label, torch.randn(2, 4))
    with pytest.raises(ValueError, match="label"):
        Noise3d(5)(torch.rand(3, 4, 4))


def test_label_must_be_4d_and_batch_size_an_integer():
    with pytest.raises(ValueError, match=r"label: .*rank 4"):
        concat_noise_3d(torch.zeros(5, 4, 4), torch.ones(1, 3))
    with pytest.raises(ValueError, match=r"label: .*rank 4"):
        Noise3d(3)(torch.zeros(5, 4, 4))
    with pytest.raises((TypeError, ValueError), match="batch_size"):
        Noise3d(3).sample(2.5, like=torch.zeros(1))
    with pytest.raises((TypeError, ValueError), match="batch_size"):
        Noise3d(3).sample(0, like=torch.zeros(1))
