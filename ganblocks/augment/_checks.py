"""Argument checks shared by the augmentation functions (internal)."""

from __future__ import annotations

from typing import Optional

import torch

PADDINGS = ("reflect", "zeros")


def check_image(x: object, name: str = "x") -> torch.Tensor:
    """Raise unless ``x`` is a floating-point ``[B, C, H, W]`` tensor."""
    if not isinstance(x, torch.Tensor):
        raise TypeError(f"{name}: expected a torch.Tensor [B, C, H, W], got {type(x).__name__}")
    if not x.is_floating_point():
        raise TypeError(f"{name}: expected a floating-point tensor, got dtype {x.dtype}")
    if x.ndim != 4:
        raise ValueError(f"{name}: expected shape [B, C, H, W], got {tuple(x.shape)}")
    if x.shape[2] < 1 or x.shape[3] < 1:
        raise ValueError(f"{name}: expected a non-empty image, got shape {tuple(x.shape)}")
    return x


def check_label(label: Optional[torch.Tensor], x: torch.Tensor) -> Optional[torch.Tensor]:
    """Raise unless ``label`` is ``None`` or an integer ``[B, H, W]`` map matching ``x``."""
    if label is None:
        return None
    if not isinstance(label, torch.Tensor):
        raise TypeError(
            f"label: expected an integer torch.Tensor [B, H, W], got {type(label).__name__}"
        )
    if label.is_floating_point() or label.is_complex() or label.dtype == torch.bool:
        raise TypeError(f"label: expected an integer class map [B, H, W], got dtype {label.dtype}")
    b, _, h, w = x.shape
    if tuple(label.shape) != (b, h, w):
        raise ValueError(
            f"label: expected shape {(b, h, w)} to match x {tuple(x.shape)}, "
            f"got {tuple(label.shape)}"
        )
    return label


def check_padding(padding: str) -> str:
    """Raise unless ``padding`` names a supported padding mode."""
    if padding not in PADDINGS:
        raise ValueError(f"padding: expected one of {PADDINGS}, got {padding!r}")
    return padding


def check_label_fill(label_fill: Optional[int], padding: str) -> Optional[int]:
    """Raise unless ``label_fill`` is an int, or ``None`` together with reflect padding."""
    if label_fill is None:
        if padding != "reflect":
            raise ValueError(
                "label_fill: None (reflect the label like the image) needs padding='reflect'; "
                "pass an integer don't-care id"
            )
        return None
    if isinstance(label_fill, bool) or not isinstance(label_fill, int):
        raise TypeError(f"label_fill: expected an int or None, got {type(label_fill).__name__}")
    return label_fill


def check_batch_matrix(matrix: object, name: str, batch: int, size: int) -> torch.Tensor:
    """Raise unless ``matrix`` is a floating ``[batch, size, size]`` tensor."""
    if not isinstance(matrix, torch.Tensor) or not matrix.is_floating_point():
        raise TypeError(f"{name}: expected a floating-point tensor [B, {size}, {size}]")
    if tuple(matrix.shape) != (batch, size, size):
        raise ValueError(f"{name}: expected shape {(batch, size, size)}, got {tuple(matrix.shape)}")
    return matrix
