"""Sample grids: label map | real image | conditional samples | unconditional samples."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Sequence, Union

import numpy as np
import torch
from einops import rearrange
from PIL import Image

from ganblocks.data import colorize_labels
from ganblocks.train import atomic_write

__all__ = ["sample_grid", "save_image_grid", "to_uint8"]


def to_uint8(images: torch.Tensor) -> torch.Tensor:
    """``[B, 3, H, W]`` images in ``[-1, 1]`` (clamped) → uint8 ``[B, 3, H, W]``."""
    x = (images.detach().float().clamp(-1, 1) + 1) * 127.5
    return x.round().to(torch.uint8)


def sample_grid(*, label: torch.Tensor, real: torch.Tensor, cond: Sequence[torch.Tensor],
                uncond: Sequence[torch.Tensor], palette: np.ndarray) -> torch.Tensor:
    """One row per label map: ``label | real | cond[0] | … | uncond[0] | …``.

    Args:
        label: ``[n, H, W]`` integer label maps.
        real: ``[n, 3, H, W]`` the real images of those maps, in ``[-1, 1]``.
        cond: Conditional samples, each ``[n, 3, H, W]`` (one per column).
        uncond: Unconditional samples, each ``[n, 3, H, W]`` (one per column).
        palette: ``[N, 3]`` uint8 class colours.

    Returns:
        uint8 ``[3, n·H, columns·W]``.
    """
    colors = colorize_labels(label, palette=torch.as_tensor(palette), channels_first=True)
    columns = [torch.as_tensor(colors).to(torch.uint8), to_uint8(real)]
    columns += [to_uint8(c) for c in cond] + [to_uint8(u) for u in uncond]
    stack = torch.stack(columns)  # [cols, n, 3, H, W]
    return rearrange(stack, "col n c h w -> c (n h) (col w)")


def save_image_grid(grid: torch.Tensor, path: Union[str, os.PathLike], *,
                    scale: int = 1) -> Path:
    """Save a uint8 ``[3, H, W]`` grid as PNG (atomically: temporary file, then rename).

    ``scale > 1`` enlarges it with nearest-neighbour sampling (small images stay readable).
    """
    image = Image.fromarray(grid.permute(1, 2, 0).cpu().numpy())
    if scale > 1:
        image = image.resize((image.width * scale, image.height * scale), Image.NEAREST)
    return atomic_write(path, lambda f: image.save(f, format="PNG"))
