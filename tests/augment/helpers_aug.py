"""Shared builders for the augmentation tests: images that encode their own coordinates/labels."""

from __future__ import annotations

import torch


def coordinate_batch(b: int, h: int, w: int, *, offset: float = 0.0):
    """Image whose channels hold ``(x + offset, y + offset, 0)`` and a label unique per pixel.

    Bilinear interpolation of a linear ramp is exact, so after any warp the image tells, per output
    pixel, which input position was read; the label must then be the label at that position
    rounded to the nearest pixel.
    """
    yy, xx = torch.meshgrid(
        torch.arange(h, dtype=torch.float64), torch.arange(w, dtype=torch.float64), indexing="ij"
    )
    image = torch.stack([xx + offset, yy + offset, torch.zeros_like(xx)]).expand(b, 3, h, w).clone()
    label = (yy * w + xx).long().expand(b, h, w).clone() + 1  # 1 … h*w, 0 stays free as fill
    return image, label


def label_from_coordinates(image: torch.Tensor, w: int, *, offset: float = 0.0):
    """Label implied by a warped coordinate image, and where that is unambiguous (no .5 ties)."""
    cx, cy = image[:, 0] - offset, image[:, 1] - offset
    clear = ((cx - cx.floor() - 0.5).abs() > 1e-4) & ((cy - cy.floor() - 0.5).abs() > 1e-4)
    implied = (cy + 0.5).floor().long() * w + (cx + 0.5).floor().long() + 1
    return implied, clear
