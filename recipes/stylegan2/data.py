"""Training images for the StyleGAN2 recipe: an image folder, or a procedural synthetic set."""

from __future__ import annotations

import os
from pathlib import Path
from typing import List

import torch
import torch.nn.functional as F
from torch.utils.data import Dataset

from ganblocks.data.transforms import image_to_tensor, load_rgb, resize_image

__all__ = ["ImageFolder", "SyntheticImages", "make_dataset"]

_EXTENSIONS = (".png", ".jpg", ".jpeg", ".bmp", ".webp")


class ImageFolder(Dataset):
    """Every image under ``root`` (recursively, sorted), RGB, resized to ``resolution²``, in
    ``[-1, 1]``: item ``i`` is ``[3, R, R]``."""

    def __init__(self, root: str, resolution: int) -> None:
        self.root = Path(root)
        if not self.root.is_dir():
            raise FileNotFoundError(f"data: no such folder {root!r} (or pass 'synthetic')")
        self.files: List[Path] = sorted(
            p for p in self.root.rglob("*") if p.suffix.lower() in _EXTENSIONS
        )
        if not self.files:
            raise ValueError(f"data: no images ({', '.join(_EXTENSIONS)}) under {root!r}")
        self.resolution = resolution

    def __len__(self) -> int:
        return len(self.files)

    def __getitem__(self, i: int) -> torch.Tensor:
        image = resize_image(load_rgb(self.files[i]), (self.resolution, self.resolution))
        return image_to_tensor(image)


class SyntheticImages(Dataset):
    """Deterministic smooth random images (bilinearly up-sampled 4×4 noise through tanh): item
    ``i`` depends only on ``(seed, i)``; useful for smoke tests and benchmarks."""

    def __init__(self, resolution: int, *, size: int = 1024, channels: int = 3, seed: int = 0):
        self.resolution, self.size, self.channels, self.seed = resolution, size, channels, seed

    def __len__(self) -> int:
        return self.size

    def __getitem__(self, i: int) -> torch.Tensor:
        g = torch.Generator().manual_seed(self.seed * 1_000_003 + int(i))
        coarse = torch.randn(1, self.channels, 4, 4, generator=g) * 1.5
        fine = F.interpolate(coarse, size=self.resolution, mode="bilinear", align_corners=False)
        return torch.tanh(fine[0])


def make_dataset(data: str, resolution: int, *, channels: int = 3, seed: int = 0) -> Dataset:
    """``'synthetic'`` or an image folder path."""
    if data == "synthetic":
        return SyntheticImages(resolution, channels=channels, seed=seed)
    if channels != 3:
        raise ValueError(f"channels: image folders are read as RGB (3 channels), got {channels}")
    return ImageFolder(os.fspath(data), resolution)
