"""Colour palettes for semantic label maps, for sample grids and visual checks.

:func:`make_palette` gives any number of classes well separated colours with the bit-interleaving
rule of the PASCAL VOC colour map (class 0 is black, so a don't-care class stays dark), and
:func:`colorize_labels` turns integer label maps into RGB images with it or with any palette.
"""

from __future__ import annotations

from typing import Optional, Union

import einops
import numpy as np
import torch

__all__ = ["colorize_labels", "make_palette"]

ArrayLike = Union[np.ndarray, torch.Tensor]


def make_palette(num_classes: int) -> np.ndarray:
    """Distinct RGB colours for ``num_classes`` classes.

    Bit ``3k + j`` of the class index sets bit ``7 - k`` of channel ``j`` (R, G, B), so classes
    that differ in their low bits differ strongly in colour. Class 0 is black.

    Args:
        num_classes: Number of colours, at least 1 (at most 2**24 distinct ones).

    Returns:
        uint8 array ``[num_classes, 3]``.

    Example:
        >>> make_palette(4).tolist()
        [[0, 0, 0], [128, 0, 0], [0, 128, 0], [128, 128, 0]]
    """
    if isinstance(num_classes, bool) or not isinstance(num_classes, (int, np.integer)):
        raise TypeError(f"num_classes must be an int, got {type(num_classes).__name__}")
    if not 1 <= num_classes <= 2**24:
        raise ValueError(f"num_classes must be in [1, 2**24], got {num_classes}")
    ids = np.arange(num_classes, dtype=np.int64)
    out = np.zeros((num_classes, 3), dtype=np.int64)
    for k in range(8):  # 8 groups of 3 bits; each group fills one bit plane of R, G and B
        for j in range(3):
            out[:, j] |= ((ids >> (3 * k + j)) & 1) << (7 - k)
    return out.astype(np.uint8)


def colorize_labels(
    label: ArrayLike,
    num_classes: Optional[int] = None,
    *,
    palette: Optional[ArrayLike] = None,
    channels_first: bool = False,
) -> ArrayLike:
    """Colour an integer label map.

    Args:
        label: Class ids, ``[..., H, W]`` (numpy array or torch tensor of an integer dtype).
        num_classes: Number of classes; values must lie in ``[0, num_classes)``. Needed unless
            ``palette`` is given (then it defaults to the palette's length).
        palette: Optional colours ``[N, 3]`` (uint8, or floats in [0, 255]); defaults to
            :func:`make_palette`.
        channels_first: Return ``[..., 3, H, W]`` instead of ``[..., H, W, 3]``.

    Returns:
        uint8 RGB of the same kind as ``label`` (numpy or torch, on the same device):
        ``[..., H, W, 3]`` (or ``[..., 3, H, W]``).

    Example:
        >>> lab = torch.tensor([[0, 1], [2, 3]])
        >>> colorize_labels(lab, 4)[1, 1].tolist()
        [128, 128, 0]
        >>> colorize_labels(lab.numpy(), 4, channels_first=True).shape
        (3, 2, 2)
    """
    is_torch = isinstance(label, torch.Tensor)
    if not is_torch and not isinstance(label, np.ndarray):
        raise TypeError(f"label must be a numpy array or torch tensor, got {type(label).__name__}")
    if is_torch:
        integer = not (label.dtype.is_floating_point or label.dtype.is_complex)
        integer = integer and label.dtype != torch.bool
    else:
        integer = np.issubdtype(label.dtype, np.integer)
    if not integer:
        raise TypeError(f"label must have an integer dtype, got {label.dtype}")
    if label.ndim < 2:
        raise ValueError(f"label must be [..., H, W], got shape {tuple(label.shape)}")
    if palette is None:
        if num_classes is None:
            raise ValueError("colorize_labels needs num_classes or palette")
        pal = make_palette(num_classes)
    else:
        pal = np.asarray(palette.cpu() if isinstance(palette, torch.Tensor) else palette)
        if pal.ndim != 2 or pal.shape[1] != 3:
            raise ValueError(f"palette must be [N, 3], got shape {pal.shape}")
        pal = np.clip(np.round(pal), 0, 255).astype(np.uint8)
        if num_classes is None:
            num_classes = pal.shape[0]
        elif pal.shape[0] < num_classes:
            raise ValueError(f"palette has {pal.shape[0]} colours, num_classes is {num_classes}")
    if label.numel() if is_torch else label.size:
        lo, hi = int(label.min()), int(label.max())
        if lo < 0 or hi >= num_classes:
            raise ValueError(f"label values must lie in [0, {num_classes}), got [{lo}, {hi}]")
    pattern = "... h w c -> ... c h w" if channels_first else "... h w c -> ... h w c"
    if is_torch:
        table = torch.from_numpy(pal).to(label.device)
        return einops.rearrange(table[label.long()], pattern)
    return np.ascontiguousarray(einops.rearrange(pal[label], pattern))
