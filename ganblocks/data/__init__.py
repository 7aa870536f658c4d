"""Data-set agnostic data utilities for semantic image synthesis.

- :class:`PairedImageLabelDataset`: image files + label maps → aligned, resized tensors with a joint
  horizontal flip, label remapping and range checks that name the offending file.
- :class:`InfiniteSampler`: an endless seeded stream of keys, sharded over ranks, resumable.
- Pair transforms (:func:`resize_image`, :func:`resize_label`, :func:`hflip_pair`, ...).
- Palettes for looking at label maps (:func:`make_palette`, :func:`colorize_labels`).

Every data set here yields dicts ``{"image": float32 [3, H, W] in [-1, 1], "label": int64 [H, W],
"has_label": bool, "index": int}``.
"""

from .paired import FlipRNG, PairedImageLabelDataset, fingerprint, split_key
from .palette import colorize_labels, make_palette
from .sampler import InfiniteSampler
from .transforms import (
    hflip_pair,
    image_to_tensor,
    load_label_map,
    load_rgb,
    parse_resolution,
    resize_image,
    resize_label,
)

__all__ = [
    "FlipRNG",
    "InfiniteSampler",
    "PairedImageLabelDataset",
    "colorize_labels",
    "fingerprint",
    "hflip_pair",
    "image_to_tensor",
    "load_label_map",
    "load_rgb",
    "make_palette",
    "parse_resolution",
    "resize_image",
    "resize_label",
    "split_key",
]
