r"""Kernel Inception Distance (KID): unbiased MMD² with a cubic polynomial kernel, over subsets.

With features ``x, y ∈ R^d`` and the kernel ``k(x, y) = (xᵀy / d + 1)³``, the unbiased estimator of
the squared MMD between ``X = {x_i}`` and ``Y = {y_j}`` (``m`` samples each) is

.. math::

    \widehat{\mathrm{MMD}}^2 = \frac{1}{m(m-1)} \sum_{i \ne j} k(x_i, x_j)
        + \frac{1}{m(m-1)} \sum_{i \ne j} k(y_i, y_j) - \frac{2}{m^2} \sum_{i, j} k(x_i, y_j).

Its expectation is exactly the MMD², which is zero for equal distributions, so unlike FID it is
unbiased for small sample sets (it can be negative). KID averages it over ``num_subsets`` random
subsets of ``subset_size`` samples of each set (drawn without replacement, with a seeded generator),
and reports the mean and the standard deviation over subsets.
"""

from __future__ import annotations

import os
from typing import List, NamedTuple, Optional, Union

import torch

from ._distributed import all_gather_rows
from ._extract import FeatureExtractor, check_real, default_extractor, extract_features

__all__ = ["KIDResult", "KernelInceptionDistance", "kernel_inception_distance", "polynomial_mmd2"]


class KIDResult(NamedTuple):
    """KID over subsets: ``mean`` and sample standard deviation ``std`` (0 for a single subset)."""

    mean: float
    std: float


def _check_features(x: object, name: str) -> torch.Tensor:
    if not isinstance(x, torch.Tensor) or x.ndim != 2 or not x.is_floating_point():
        got = f"shape {tuple(x.shape)}, dtype {x.dtype}" if isinstance(x, torch.Tensor) else type(x)
        raise ValueError(f"{name}: expected floating-point features [N, D], got {got}")
    return x


def polynomial_mmd2(x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    """Unbiased MMD² of ``x: [m, D]`` and ``y: [n, D]`` with ``k(a, b) = (aᵀb / D + 1)³`` (float64).

    Args:
        x: First sample, at least 2 rows.
        y: Second sample, at least 2 rows, same ``D``.

    Returns:
        A float64 scalar tensor.

    Example:
        >>> x = torch.tensor([[1.0], [-1.0]])
        >>> # k(1, 1) = k(-1, -1) = 8, k(1, -1) = 0: off-diagonal terms 0 + 0, cross term 16 / 4
        >>> polynomial_mmd2(x, x)  # unbiased, so it can be negative
        tensor(-8., dtype=torch.float64)
    """
    x = _check_features(x, "x").to(torch.float64)
    y = _check_features(y, "y").to(torch.float64)
    if x.shape[1] != y.shape[1]:
        raise ValueError(f"y: expected D = {x.shape[1]} features per row, got {y.shape[1]}")
    m, n = x.shape[0], y.shape[0]
    if m < 2 or n < 2:
        raise ValueError(f"x, y: need at least 2 rows each for the unbiased MMD², got {m} and {n}")
    dim = x.shape[1]
    k_xx = (x @ x.T / dim + 1.0) ** 3
    k_yy = (y @ y.T / dim + 1.0) ** 3
    k_xy = (x @ y.T / dim + 1.0) ** 3
    within_x = (k_xx.sum() - k_xx.diagonal().sum()) / (m * (m - 1))
    within_y = (k_yy.sum() - k_yy.diagonal().sum()) / (n * (n - 1))
    return within_x + within_y - 2.0 * k_xy.mean()


def kernel_inception_distance(
    real: torch.Tensor,
    fake: torch.Tensor,
    *,
    num_subsets: int = 100,
    subset_size: int = 1000,
    seed: int = 0,
) -> KIDResult:
    """KID of two feature sets: :func:`polynomial_mmd2` averaged over random subsets.

    Each subset takes ``min(subset_size, len(real), len(fake))`` rows of each set without
    replacement, drawn by a CPU generator seeded with ``seed`` (same seed, same subsets).

    Args:
        real: Features of the real images ``[N_r, D]``.
        fake: Features of the generated images ``[N_f, D]``.
        num_subsets: Number of subsets.
        subset_size: Rows per subset (capped by the set sizes).
        seed: Seed of the subset sampling.

    Returns:
        :class:`KIDResult` ``(mean, std)`` over subsets.

    Example:
        >>> gen = torch.Generator().manual_seed(0)
        >>> real = torch.randn(200, 8, generator=gen)
        >>> fake = torch.randn(200, 8, generator=gen) + 1.0
        >>> result = kernel_inception_distance(real, fake, num_subsets=10, subset_size=100)
        >>> result.mean > 5 * result.std
        True
    """
    real = _check_features(real, "real")
    fake = _check_features(fake, "fake")
    for name, value in (("num_subsets", num_subsets), ("subset_size", subset_size)):
        if isinstance(value, bool) or not isinstance(value, int) or value < 1:
            raise ValueError(f"{name}: expected a positive integer, got {value!r}")
    size = min(subset_size, real.shape[0], fake.shape[0])
    if size < 2:
        raise ValueError(
            f"real, fake: KID needs at least 2 samples per set, got {real.shape[0]} and "
            f"{fake.shape[0]}"
        )
    gen = torch.Generator().manual_seed(int(seed))
    values = []
    for _ in range(num_subsets):  # one subset at a time bounds memory at 3 [m, m] kernel matrices
        pick_real = torch.randperm(real.shape[0], generator=gen)[:size].to(real.device)
        pick_fake = torch.randperm(fake.shape[0], generator=gen)[:size].to(fake.device)
        values.append(polynomial_mmd2(real[pick_real], fake[pick_fake].to(real.device)))
    stacked = torch.stack(values)
    std = float(stacked.std(correction=1)) if num_subsets > 1 else 0.0
    return KIDResult(float(stacked.mean()), std)


class KernelInceptionDistance:
    """KID between real and generated images (mean and std over subsets).

    Unlike FID, KID needs every feature vector (not just sums); they are kept on the extractor's
    device. Under ``torch.distributed`` :meth:`compute` gathers the features of all ranks (a
    collective: call it on every rank; ranks may hold different numbers of images) and every rank
    gets the same result.

    Args:
        feature_extractor: Callable ``images [N, ...] -> features [N, D]``; ``None`` loads the
            TF-Inception pool3 network (see :class:`FrechetInceptionDistance`).
        weights: Weights file for the default extractor.
        num_subsets: Number of subsets (100 in the KID paper's and StyleGAN's protocol).
        subset_size: Samples per subset (1000 there); capped by the set sizes.
        seed: Seed of the subset sampling.
        device: Device for the default extractor.

    Example:
        >>> extractor = lambda images: images.flatten(1)  # a stand-in: [N, 1, 2, 2] -> [N, 4]
        >>> kid = KernelInceptionDistance(extractor, num_subsets=20, subset_size=50)
        >>> gen = torch.Generator().manual_seed(0)
        >>> kid.update(torch.randn(100, 1, 2, 2, generator=gen), real=True)
        >>> kid.update(torch.randn(100, 1, 2, 2, generator=gen) + 2.0, real=False)
        >>> mean, std = kid.compute()
        >>> mean > 0.5
        True
    """

    def __init__(
        self,
        feature_extractor: Optional[FeatureExtractor] = None,
        *,
        weights: Optional[Union[str, os.PathLike[str]]] = None,
        num_subsets: int = 100,
        subset_size: int = 1000,
        seed: int = 0,
        device: Optional[Union[str, torch.device]] = None,
    ) -> None:
        for name, value in (("num_subsets", num_subsets), ("subset_size", subset_size)):
            if isinstance(value, bool) or not isinstance(value, int) or value < 1:
                raise ValueError(f"{name}: expected a positive integer, got {value!r}")
        self.feature_extractor = default_extractor(feature_extractor, weights, device)
        self.num_subsets = num_subsets
        self.subset_size = subset_size
        self.seed = int(seed)
        self.real_features: List[torch.Tensor] = []
        self.fake_features: List[torch.Tensor] = []

    def update(self, images: torch.Tensor, *, real: bool) -> None:
        """Add a batch ``images: [N, ...]`` to the real or fake set."""
        target = self.real_features if check_real(real) else self.fake_features
        target.append(extract_features(self.feature_extractor, images).detach())

    def _gathered(self, parts: List[torch.Tensor], name: str) -> torch.Tensor:
        if not parts:
            raise ValueError(f"compute: no {name} images were added")
        return all_gather_rows(torch.cat(parts, dim=0))

    def compute(self) -> KIDResult:
        """KID over everything added so far (gathered over all ranks): ``(mean, std)``."""
        real = self._gathered(self.real_features, "real")
        fake = self._gathered(self.fake_features, "fake")
        return kernel_inception_distance(
            real, fake, num_subsets=self.num_subsets, subset_size=self.subset_size, seed=self.seed
        )

    def reset(self, *, keep_real: bool = False) -> None:
        """Forget the fake features, and the real ones too unless ``keep_real``."""
        self.fake_features = []
        if not keep_real:
            self.real_features = []
