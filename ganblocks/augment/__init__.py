"""Differentiable augmentations of discriminator inputs that keep label maps aligned.

* :class:`AdaptiveAugment` (ADA) and :func:`diff_augment` (DiffAugment): the pipelines;
* :mod:`~ganblocks.augment.sampling`: affine resampling (bilinear images, nearest labels), twice
  differentiable in the image;
* :mod:`~ganblocks.augment.geometric` and :mod:`~ganblocks.augment.color`: batched transform
  matrices; :func:`cutout`; :func:`random_hflip` for data loading.

Every function that takes ``label`` returns ``(image, label)`` when a label map is given and the
image alone otherwise.
"""

from .ada import AdaptiveAugment, AugmentDraw
from .color import (
    apply_color_matrix,
    brightness_matrix,
    contrast_matrix,
    hue_rotation_matrix,
    luma_flip_matrix,
    saturation_matrix,
)
from .cutout import cutout
from .diffaugment import POLICIES, diff_augment
from .flip import random_hflip
from .geometric import identity2d, rotate2d, rotate90, scale2d, translate2d
from .sampling import affine_coords, bilinear_sample, nearest_sample, warp_affine

__all__ = [
    "POLICIES",
    "AdaptiveAugment",
    "AugmentDraw",
    "affine_coords",
    "apply_color_matrix",
    "bilinear_sample",
    "brightness_matrix",
    "contrast_matrix",
    "cutout",
    "diff_augment",
    "hue_rotation_matrix",
    "identity2d",
    "luma_flip_matrix",
    "nearest_sample",
    "random_hflip",
    "rotate2d",
    "rotate90",
    "saturation_matrix",
    "scale2d",
    "translate2d",
    "warp_affine",
]
