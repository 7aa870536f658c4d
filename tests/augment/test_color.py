"""Colour matrices: algebraic properties, application to RGB and greyscale images."""

from __future__ import annotations

import math

import pytest
import torch
from hypothesis import given
from hypothesis import strategies as st

from ganblocks.augment import (
    apply_color_matrix,
    brightness_matrix,
    contrast_matrix,
    hue_rotation_matrix,
    luma_flip_matrix,
    saturation_matrix,
)

V = torch.ones(3, dtype=torch.float64) / math.sqrt(3)


@given(theta=st.floats(-7, 7), s=st.floats(0, 4))
def test_hue_and_saturation_keep_luma(theta, s):
    rgb = torch.tensor([0.3, -0.7, 0.2], dtype=torch.float64)
    hue = hue_rotation_matrix(torch.tensor([theta], dtype=torch.float64))[0]
    sat = saturation_matrix(torch.tensor([s], dtype=torch.float64))[0]
    for m in (hue, sat):
        out = m[:3, :3] @ rgb + m[:3, 3]
        assert (V @ out).item() == pytest.approx((V @ rgb).item(), abs=1e-12)
        assert m[3].tolist() == [0, 0, 0, 1]
    r = hue[:3, :3]
    assert torch.allclose(r @ r.T, torch.eye(3, dtype=torch.float64), atol=1e-12)
    assert torch.linalg.det(r).item() == pytest.approx(1.0, abs=1e-12)
    # Saturation scales the chroma (the part orthogonal to the luma axis) by s.
    chroma = rgb - (V @ rgb) * V
    out = sat[:3, :3] @ rgb
    assert torch.allclose(out - (V @ out) * V, s * chroma, atol=1e-12)


def test_hue_third_turn_permutes_channels_and_lumaflip_negates_luma():
    m = hue_rotation_matrix(torch.tensor([2 * math.pi / 3], dtype=torch.float64))[0, :3, :3]
    rgb = torch.tensor([1.0, 0.0, 0.0], dtype=torch.float64)
    assert torch.allclose(
        (m @ rgb).abs(), torch.tensor([0.0, 1.0, 0.0], dtype=torch.float64), atol=1e-12
    )
    f = luma_flip_matrix(torch.tensor([1.0, 0.0], dtype=torch.float64))
    x = torch.tensor([0.5, 0.1, -0.3], dtype=torch.float64)
    assert (V @ (f[0, :3, :3] @ x)).item() == pytest.approx(-(V @ x).item())
    assert torch.allclose(f[1], torch.eye(4, dtype=torch.float64))


def test_apply_color_matrix_against_pixelwise_reference():
    g = torch.Generator().manual_seed(0)
    x = torch.randn(2, 3, 4, 5, generator=g, dtype=torch.float64)
    params = torch.rand(2, 4, generator=g, dtype=torch.float64)
    m = (
        saturation_matrix(params[:, 0] * 2)
        @ hue_rotation_matrix(params[:, 1] * 6)
        @ contrast_matrix(params[:, 2] + 0.5)
        @ brightness_matrix(params[:, 3] - 0.5)
    )
    out = apply_color_matrix(x, m)
    for b in range(2):  # reference: one homogeneous pixel at a time
        for i in range(4):
            for j in range(5):
                pixel = torch.cat([x[b, :, i, j], torch.ones(1, dtype=torch.float64)])
                assert torch.allclose(out[b, :, i, j], (m[b] @ pixel)[:3], atol=1e-12)
    # brightness adds, contrast multiplies
    assert torch.allclose(apply_color_matrix(x, brightness_matrix(torch.tensor([0.5, -1.0]))),
                          x + torch.tensor([0.5, -1.0]).view(2, 1, 1, 1).double())  # fmt: skip
    assert torch.allclose(apply_color_matrix(x, contrast_matrix(torch.tensor([2.0, 0.0]))),
                          x * torch.tensor([2.0, 0.0]).view(2, 1, 1, 1).double())  # fmt: skip


def test_greyscale_matches_rgb_on_grey_images():
    g = torch.Generator().manual_seed(1)
    grey = torch.randn(2, 1, 3, 3, generator=g, dtype=torch.float64)
    m = contrast_matrix(torch.tensor([1.5, 0.7])) @ brightness_matrix(torch.tensor([0.2, -0.1]))
    m = (
        hue_rotation_matrix(torch.tensor([1.0, 2.0]))
        @ saturation_matrix(torch.tensor([0.3, 2.0]))
        @ m
    )
    rgb = apply_color_matrix(grey.expand(2, 3, 3, 3), m.double())
    assert torch.allclose(apply_color_matrix(grey, m.double()), rgb[:, :1], atol=1e-12)
    assert torch.allclose(rgb[:, 0], rgb[:, 2], atol=1e-12)


def test_color_bad_input():
    with pytest.raises(ValueError, match="1 or 3 channels"):
        apply_color_matrix(torch.zeros(1, 2, 2, 2), torch.eye(4)[None])
    with pytest.raises(ValueError, match="matrix"):
        apply_color_matrix(torch.zeros(2, 3, 2, 2), torch.eye(4)[None])
    with pytest.raises(ValueError, match="parameter"):
        brightness_matrix(torch.zeros(2, 2))
