"""Affine sampler: equals grid_sample, is twice differentiable, warps labels consistently."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F
from augment.helpers_aug import coordinate_batch, label_from_coordinates
from hypothesis import given
from hypothesis import strategies as st

from ganblocks.augment import (
    bilinear_sample,
    nearest_sample,
    rotate2d,
    rotate90,
    scale2d,
    translate2d,
    warp_affine,
)


def _grid_from_coords(coords, h, w):
    """Pixel positions → grid_sample's normalised grid (align_corners=False)."""
    gx = (coords[..., 0] + 0.5) / w * 2 - 1
    gy = (coords[..., 1] + 0.5) / h * 2 - 1
    return torch.stack([gx, gy], dim=-1)


@given(
    h=st.integers(1, 7),
    w=st.integers(1, 7),
    ho=st.integers(1, 5),
    wo=st.integers(1, 5),
    seed=st.integers(0, 2**31 - 1),
)
def test_bilinear_matches_grid_sample(h, w, ho, wo, seed):
    g = torch.Generator().manual_seed(seed)
    x = torch.randn(2, 3, h, w, generator=g, dtype=torch.float64)
    span = torch.tensor([w, h], dtype=torch.float64)
    coords = torch.rand(2, ho, wo, 2, generator=g, dtype=torch.float64) * 3 * span - span - 0.5
    grid = _grid_from_coords(coords, h, w)
    for mode, ref_mode in (("reflect", "reflection"), ("zeros", "zeros")):
        expected = F.grid_sample(
            x, grid, mode="bilinear", padding_mode=ref_mode, align_corners=False
        )
        assert torch.allclose(bilinear_sample(x, coords, padding=mode), expected, atol=1e-12)


@pytest.mark.parametrize("padding", ["reflect", "zeros"])
def test_bilinear_second_derivatives(padding):
    g = torch.Generator().manual_seed(0)
    x = torch.randn(2, 2, 4, 5, generator=g, dtype=torch.float64, requires_grad=True)
    coords = torch.rand(2, 3, 4, 2, generator=g, dtype=torch.float64) * 8 - 2
    assert torch.autograd.gradgradcheck(lambda t: bilinear_sample(t, coords, padding=padding), (x,))


def test_identity_and_rot90_are_exact():
    g = torch.Generator().manual_seed(0)
    x = torch.randn(3, 2, 6, 6, generator=g)
    label = torch.randint(0, 9, (3, 6, 6), generator=g)
    y, lab = warp_affine(x, torch.eye(3).expand(3, 3, 3), label=label)
    assert torch.equal(y, x) and torch.equal(lab, label)
    # +90° as a sampling matrix (the inverse map) turns the picture counter-clockwise on screen,
    # like torch.rot90 with k=1: y[i, j] = x[j, n-1-i].
    y, lab = warp_affine(x, rotate90(torch.tensor([1, 1, 1])), label=label)
    assert torch.equal(y, torch.rot90(x, k=1, dims=(2, 3)))
    assert torch.equal(lab, torch.rot90(label, k=1, dims=(1, 2)))
    y, lab = warp_affine(x, rotate90(torch.tensor([2, 2, 2])), label=label)
    assert torch.equal(y, x.flip(2, 3)) and torch.equal(lab, label.flip(1, 2))
    flip = scale2d(torch.tensor([-1.0, -1.0, -1.0]), 1.0)
    y, lab = warp_affine(x, flip, label=label)
    assert torch.equal(y, x.flip(3)) and torch.equal(lab, label.flip(2))


def test_integer_translation_fills_labels():
    x = torch.arange(1.0, 6.0).view(1, 1, 1, 5)
    label = torch.tensor([[[1, 2, 3, 4, 5]]])
    shift = translate2d(torch.tensor([-2.0]), 0.0)  # read 2 px to the left: content moves right
    y, lab = warp_affine(x, shift, label=label, padding="zeros", label_fill=-1)
    assert y.flatten().tolist() == [0, 0, 1, 2, 3] and lab.flatten().tolist() == [-1, -1, 1, 2, 3]
    y, lab = warp_affine(x, shift, label=label, padding="reflect", label_fill=None)
    assert y.flatten().tolist() == [2, 1, 1, 2, 3] and lab.flatten().tolist() == [2, 1, 1, 2, 3]
    y, lab = warp_affine(x, shift, label=label, padding="reflect", label_fill=7)
    assert y.flatten().tolist() == [2, 1, 1, 2, 3] and lab.flatten().tolist() == [7, 7, 1, 2, 3]


@given(seed=st.integers(0, 2**31 - 1), reflect=st.booleans())
def test_labels_follow_the_image_under_random_affine(seed, reflect):
    g = torch.Generator().manual_seed(seed)
    b, h, w = 3, 9, 8
    image, label = coordinate_batch(b, h, w)
    theta = (torch.rand(b, generator=g, dtype=torch.float64) * 2 - 1) * 3.2
    s = torch.exp2(torch.randn(b, generator=g, dtype=torch.float64) * 0.3)
    t = torch.randn(b, 2, generator=g, dtype=torch.float64) * 2
    m = rotate2d(theta) @ scale2d(s, 1 / s) @ translate2d(t[:, 0], t[:, 1])
    fill = None if reflect else 0
    y, lab = warp_affine(image, m, label=label, padding="reflect", label_fill=fill)
    implied, clear = label_from_coordinates(y, w)
    check = clear if reflect else clear & (lab != 0)
    assert check.float().mean() > 0.3
    assert torch.equal(implied[check], lab[check])


def test_nearest_rounding_and_errors():
    label = torch.tensor([[[5, 6, 7]]])
    coords = torch.tensor([[[[0.49, 0.0], [0.51, 0.0], [-0.6, 0.0], [2.4, 0.3]]]])
    assert nearest_sample(label, coords, label_fill=-1).tolist() == [[[5, 6, -1, 7]]]
    assert nearest_sample(label, coords, label_fill=None).tolist() == [[[5, 6, 5, 7]]]
    x = torch.zeros(1, 1, 1, 3)
    with pytest.raises(ValueError, match="label_fill"):
        warp_affine(x, torch.eye(3)[None], label=label, padding="zeros", label_fill=None)
    with pytest.raises(ValueError, match="label: expected shape"):
        warp_affine(x, torch.eye(3)[None], label=label[:, :, :2])
    with pytest.raises(ValueError, match="padding"):
        warp_affine(x, torch.eye(3)[None], padding="border")
    with pytest.raises(ValueError, match="matrix"):
        warp_affine(x, torch.eye(3)[None].expand(2, 3, 3))
    with pytest.raises(TypeError, match="label"):
        warp_affine(x, torch.eye(3)[None], label=label.float())
