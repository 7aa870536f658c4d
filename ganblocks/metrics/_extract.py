"""Shared by the image metrics: the feature-extractor protocol and running it on a batch."""

from __future__ import annotations

import os
from typing import Callable, Optional, Union

import torch
from einops import rearrange
from torch import nn

from .inception import FIDInceptionV3

__all__ = ["FeatureExtractor", "check_real", "default_extractor", "extract_features"]

FeatureExtractor = Callable[[torch.Tensor], torch.Tensor]
"""Any callable mapping images ``[N, ...]`` to features ``[N, D]`` (an ``nn.Module`` included)."""


def check_real(real: object) -> bool:
    if not isinstance(real, bool):
        raise TypeError(f"real: expected True (real images) or False (generated), got {real!r}")
    return real


def default_extractor(
    feature_extractor: Optional[FeatureExtractor],
    weights: Optional[Union[str, os.PathLike[str]]],
    device: Optional[Union[str, torch.device]],
) -> FeatureExtractor:
    """``feature_extractor`` itself, or the pretrained :class:`FIDInceptionV3` when ``None``."""
    if feature_extractor is None:
        return FIDInceptionV3.from_pretrained(weights, device=device)
    if not callable(feature_extractor):
        raise TypeError(
            "feature_extractor: expected a callable mapping images to [N, D] features, got "
            f"{type(feature_extractor).__name__}"
        )
    return feature_extractor


def extract_features(extractor: FeatureExtractor, images: torch.Tensor) -> torch.Tensor:
    """Run ``extractor`` on ``images`` without gradients; returns ``[N, D]``.

    Images are moved to the extractor's device when it is an ``nn.Module`` with tensors. Outputs of
    shape ``[N, D, 1, 1]`` (a pooled feature map) are flattened to ``[N, D]``.
    """
    if not isinstance(images, torch.Tensor):
        raise TypeError(f"images: expected a torch.Tensor, got {type(images).__name__}")
    if isinstance(extractor, nn.Module):
        tensor = next(iter(extractor.parameters()), None)
        if tensor is None:
            tensor = next(iter(extractor.buffers()), None)
        if tensor is not None:
            images = images.to(tensor.device)
    with torch.no_grad():
        features = extractor(images)
    if not isinstance(features, torch.Tensor):
        raise TypeError(
            f"feature_extractor: expected it to return a tensor, got {type(features).__name__}"
        )
    if features.ndim == 4 and features.shape[2:] == (1, 1):
        features = rearrange(features, "n d 1 1 -> n d")
    if features.ndim != 2 or features.shape[0] != images.shape[0]:
        raise ValueError(
            f"feature_extractor: expected features [N, D] with N = {images.shape[0]}, got shape "
            f"{tuple(features.shape)}"
        )
    return features
