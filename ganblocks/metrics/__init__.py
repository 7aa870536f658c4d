"""Evaluation metrics: FID / CFID and KID with the TF-Inception network, and mean IoU.

* :func:`frechet_distance` and :class:`FeatureStatistics`: the Fréchet distance in float64 (robust
  to singular covariances) and streaming, mergeable feature statistics.
* :class:`FIDInceptionV3`: the TF-Inception-v3 pool3 network of FID, with a fixed input protocol
  (:func:`preprocess_images`) and weights read from a local file (:func:`find_fid_weights`).
* :class:`FrechetInceptionDistance`, :class:`KernelInceptionDistance`: ``update(images, real=...)``
  then ``compute()``, on one or several ``torch.distributed`` ranks.
* :class:`MeanIoU`: mean IoU from a dataset-level confusion matrix.
"""

from .fid import FrechetInceptionDistance
from .frechet import FeatureStatistics, frechet_distance
from .inception import (
    FEATURE_DIM,
    FID_WEIGHTS_ENV,
    INPUT_SIZE,
    PROTOCOLS,
    FIDInceptionV3,
    find_fid_weights,
    load_fid_weights,
    preprocess_images,
    tf_bilinear_resize,
)
from .kid import KernelInceptionDistance, KIDResult, kernel_inception_distance, polynomial_mmd2
from .miou import MeanIoU, MeanIoUResult, confusion_matrix

__all__ = [
    "FEATURE_DIM",
    "FID_WEIGHTS_ENV",
    "INPUT_SIZE",
    "PROTOCOLS",
    "FIDInceptionV3",
    "FeatureStatistics",
    "FrechetInceptionDistance",
    "KIDResult",
    "KernelInceptionDistance",
    "MeanIoU",
    "MeanIoUResult",
    "confusion_matrix",
    "find_fid_weights",
    "frechet_distance",
    "kernel_inception_distance",
    "load_fid_weights",
    "polynomial_mmd2",
    "preprocess_images",
    "tf_bilinear_resize",
]
