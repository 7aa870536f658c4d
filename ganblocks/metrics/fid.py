"""Fréchet Inception Distance (FID), accumulated batch by batch and across ranks."""

from __future__ import annotations

import os
from typing import Optional, Union

import torch

from ._extract import FeatureExtractor, check_real, default_extractor, extract_features
from .frechet import FeatureStatistics, frechet_distance

__all__ = ["FrechetInceptionDistance"]

class FrechetInceptionDistance:
    """FID between real and generated images, from streaming float64 feature statistics.

    Feed both sets with :meth:`update` (any batch sizes, on any number of ranks) and call
    :meth:`compute`. Under ``torch.distributed`` each rank feeds its own shard; :meth:`compute` sums
    the statistics over ranks (a collective: call it on every rank) and every rank gets the same
    value. The statistics (:attr:`real`, :attr:`fake`) are public, so the real ones can be cached
    with :meth:`FeatureStatistics.state_dict` and reused (``reset(keep_real=True)``).

    For CFID, feed the samples generated from the validation label maps as the fake set.

    Args:
        feature_extractor: Callable ``images [N, ...] -> features [N, D]``. ``None`` (default) loads
            the TF-Inception pool3 network (:meth:`FIDInceptionV3.from_pretrained`), which raises a
            clear error when no weights file is found.
        weights: Weights file for the default extractor (else searched; ignored otherwise).
        device: Device for the default extractor.

    Example:
        >>> extractor = lambda images: images.mean(dim=(2, 3))  # a stand-in: [N, 3, H, W] -> [N, 3]
        >>> fid = FrechetInceptionDistance(extractor)
        >>> gen = torch.Generator().manual_seed(0)
        >>> real = torch.randn(500, 3, 4, 4, generator=gen)
        >>> fid.update(real, real=True)
        >>> fid.update(real + 1.0, real=False)  # same covariance, mean shifted by 1 per channel
        >>> round(fid.compute(), 6)
        3.0
    """

    def __init__(
        self,
        feature_extractor: Optional[FeatureExtractor] = None,
        *,
        weights: Optional[Union[str, os.PathLike[str]]] = None,
        device: Optional[Union[str, torch.device]] = None,
    ) -> None:
        self.feature_extractor = default_extractor(feature_extractor, weights, device)
        self.real = FeatureStatistics()
        self.fake = FeatureStatistics()

    def update(self, images: torch.Tensor, *, real: bool) -> None:
        """Add a batch ``images: [N, ...]`` (what the extractor takes) to the real or fake set."""
        target = self.real if check_real(real) else self.fake
        target.update(extract_features(self.feature_extractor, images))

    def compute(self) -> float:
        """FID over everything added so far (summed over all ranks), as a Python float."""
        real, fake = self.real.all_reduce(), self.fake.all_reduce()
        for name, stats in (("real", real), ("fake", fake)):
            if stats.count < 2:
                raise ValueError(
                    f"compute: the {name} set has {stats.count} images; FID needs at least 2 "
                    "per set"
                )
        return frechet_distance(real.mean, real.covariance, fake.mean, fake.covariance)

    def reset(self, *, keep_real: bool = False) -> None:
        """Forget the fake statistics, and the real ones too unless ``keep_real``."""
        self.fake = FeatureStatistics()
        if not keep_real:
            self.real = FeatureStatistics()
