"""Argument checks shared by the loss functions (internal)."""

from __future__ import annotations

import torch


def check_logits(x: object, name: str) -> torch.Tensor:
    """Raise unless ``x`` is a floating-point tensor."""
    if not isinstance(x, torch.Tensor):
        raise TypeError(f"{name}: expected a torch.Tensor, got {type(x).__name__}")
    if not x.is_floating_point():
        raise TypeError(f"{name}: expected a floating-point tensor, got dtype {x.dtype}")
    if x.numel() == 0:
        raise ValueError(f"{name}: expected a non-empty tensor, got shape {tuple(x.shape)}")
    return x


def check_label_map(label: object, name: str = "label") -> torch.Tensor:
    """Raise unless ``label`` is an integer tensor of shape ``[B, H, W]``."""
    if not isinstance(label, torch.Tensor):
        raise TypeError(
            f"{name}: expected an integer torch.Tensor [B, H, W], got {type(label).__name__}"
        )
    if label.is_floating_point() or label.is_complex() or label.dtype == torch.bool:
        raise TypeError(f"{name}: expected an integer class map [B, H, W], got dtype {label.dtype}")
    if label.ndim != 3:
        raise ValueError(
            f"{name}: expected an integer class map [B, H, W], got shape {tuple(label.shape)}"
        )
    return label


def check_label_range(label: torch.Tensor, num_classes: int, name: str = "label") -> None:
    """Raise unless every entry of ``label`` lies in ``[0, num_classes)`` (one host sync)."""
    if label.numel() == 0:
        return
    lo, hi = int(label.min()), int(label.max())
    if lo < 0 or hi >= num_classes:
        raise ValueError(
            f"{name}: expected class ids in [0, {num_classes}), got values in [{lo}, {hi}]"
        )
