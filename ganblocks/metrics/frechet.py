r"""Fréchet distance between Gaussians, and streaming feature statistics to feed it.

The Fréchet (2-Wasserstein) distance between ``N(μ1, Σ1)`` and ``N(μ2, Σ2)`` is

.. math::

    d^2 = \lVert \mu_1 - \mu_2 \rVert^2 + \operatorname{tr}(\Sigma_1) + \operatorname{tr}(\Sigma_2)
          - 2 \operatorname{tr}\big((\Sigma_1 \Sigma_2)^{1/2}\big).

``Σ1 Σ2`` is not symmetric, and a general matrix square root (as in the usual ``scipy.linalg.sqrtm``
route) is unstable when a covariance is singular, which it always is when there are fewer samples
than feature dimensions. Here the trace term is computed from the similar symmetric matrix
``Σ1^{1/2} Σ2 Σ1^{1/2}``, which has the same eigenvalues as ``Σ1 Σ2``: two symmetric
eigendecompositions in float64, tiny negative eigenvalues (rounding) clamped to zero.
"""

from __future__ import annotations

from typing import Any, Dict, Optional, Union

import numpy as np
import torch

from ._distributed import all_reduce_sum, is_distributed

__all__ = ["FeatureStatistics", "frechet_distance"]

ArrayLike = Union[torch.Tensor, np.ndarray]


def _as_float64(x: object, name: str, ndim: int) -> torch.Tensor:
    if isinstance(x, np.ndarray):
        x = torch.from_numpy(x)
    if not isinstance(x, torch.Tensor):
        raise TypeError(f"{name}: expected a torch.Tensor or numpy array, got {type(x).__name__}")
    if x.ndim != ndim:
        raise ValueError(f"{name}: expected an array of rank {ndim}, got shape {tuple(x.shape)}")
    x = x.detach().to(device="cpu", dtype=torch.float64)
    if not bool(torch.isfinite(x).all()):
        raise ValueError(f"{name}: contains NaN or infinite values")
    return x


def _psd_sqrt(sigma: torch.Tensor) -> torch.Tensor:
    """Symmetric square root of a symmetric positive semi-definite matrix (float64)."""
    eigval, eigvec = torch.linalg.eigh(sigma)
    root = eigval.clamp_min(0.0).sqrt()
    return (eigvec * root) @ eigvec.T


def frechet_distance(
    mu1: ArrayLike, sigma1: ArrayLike, mu2: ArrayLike, sigma2: ArrayLike
) -> float:
    """Squared Fréchet distance between two Gaussians (the quantity FID reports), in float64.

    Robust to singular (rank-deficient) covariances: the trace of ``(Σ1 Σ2)^{1/2}`` is taken as the
    sum of the square roots of the eigenvalues of the symmetric matrix ``Σ1^{1/2} Σ2 Σ1^{1/2}``.

    Args:
        mu1: Mean of the first Gaussian, ``[D]`` (tensor or numpy array).
        sigma1: Covariance of the first Gaussian, ``[D, D]``, symmetric positive semi-definite.
        mu2: Mean of the second Gaussian, ``[D]``.
        sigma2: Covariance of the second Gaussian, ``[D, D]``.

    Returns:
        The distance ``d²`` as a Python float (non-negative up to rounding).

    Example:
        >>> mu, sigma = torch.zeros(3), torch.eye(3)
        >>> frechet_distance(mu, sigma, mu + 2.0, sigma)  # ‖Δμ‖² = 3 · 2²
        12.0
        >>> frechet_distance(mu, sigma, mu, 4 * sigma)  # 3 · (1 + 4 - 2·2)
        3.0
    """
    m1 = _as_float64(mu1, "mu1", 1)
    m2 = _as_float64(mu2, "mu2", 1)
    s1 = _as_float64(sigma1, "sigma1", 2)
    s2 = _as_float64(sigma2, "sigma2", 2)
    dim = m1.shape[0]
    for name, value, shape in (
        ("mu2", m2, (dim,)),
        ("sigma1", s1, (dim, dim)),
        ("sigma2", s2, (dim, dim)),
    ):
        if tuple(value.shape) != shape:
            raise ValueError(
                f"{name}: expected shape {shape} to match mu1 of shape {(dim,)}, "
                f"got {tuple(value.shape)}"
            )
    # Symmetrise: covariances estimated in floating point are symmetric only up to rounding.
    s1 = 0.5 * (s1 + s1.T)
    s2 = 0.5 * (s2 + s2.T)
    root1 = _psd_sqrt(s1)
    middle = root1 @ s2 @ root1
    middle = 0.5 * (middle + middle.T)
    trace_sqrt = torch.linalg.eigvalsh(middle).clamp_min(0.0).sqrt().sum()
    dist2 = (m1 - m2).square().sum() + s1.trace() + s2.trace() - 2.0 * trace_sqrt
    return float(dist2)


class FeatureStatistics:
    """Streaming first and second moments of feature vectors, in float64.

    Holds the count ``n``, the sum ``Σx`` and the sum of outer products ``Σxxᵀ``. Sums are exactly
    mergeable, so statistics gathered in any batch sizes, in any order, or on several ranks give the
    same mean and covariance (up to float64 rounding) as one pass over the whole set.

    Args:
        dim: Feature dimension ``D``; ``None`` takes it from the first :meth:`update`.
        device: Where the sums live; ``None`` uses the device of the first features. On several
            ranks with NCCL the sums must be on the GPU for :meth:`all_reduce`.

    Example:
        >>> stats = FeatureStatistics()
        >>> stats.update(torch.tensor([[0.0, 0.0], [2.0, 4.0]]))
        >>> stats.update(torch.tensor([[1.0, 2.0]]))
        >>> stats.count, stats.mean
        (3, tensor([1., 2.], dtype=torch.float64))
        >>> stats.covariance
        tensor([[1., 2.],
                [2., 4.]], dtype=torch.float64)
    """

    def __init__(
        self, dim: Optional[int] = None, *, device: Optional[Union[str, torch.device]] = None
    ) -> None:
        if dim is not None and (isinstance(dim, bool) or not isinstance(dim, int) or dim < 1):
            raise ValueError(f"dim: expected None or a positive integer, got {dim!r}")
        self.count = 0
        self.sum: Optional[torch.Tensor] = None
        self.sum_outer: Optional[torch.Tensor] = None
        self._dim = dim
        self._device = torch.device(device) if device is not None else None
        if dim is not None and device is not None:
            self._allocate(dim, self._device)

    def _allocate(self, dim: int, device: Optional[torch.device]) -> None:
        self._dim = dim
        self._device = device
        self.sum = torch.zeros(dim, dtype=torch.float64, device=device)
        self.sum_outer = torch.zeros(dim, dim, dtype=torch.float64, device=device)

    @property
    def dim(self) -> Optional[int]:
        """Feature dimension ``D`` (``None`` until known)."""
        return self._dim

    def update(self, features: torch.Tensor) -> None:
        """Add a batch of feature vectors ``features: [N, D]`` (any floating dtype)."""
        if not isinstance(features, torch.Tensor):
            raise TypeError(f"features: expected a torch.Tensor, got {type(features).__name__}")
        if features.ndim != 2:
            raise ValueError(f"features: expected shape [N, D], got {tuple(features.shape)}")
        if not features.is_floating_point():
            raise TypeError(f"features: expected a floating-point tensor, got {features.dtype}")
        if self._dim is not None and features.shape[1] != self._dim:
            raise ValueError(
                f"features: expected D = {self._dim} features per row, got {features.shape[1]}"
            )
        if self.sum is None:
            self._allocate(features.shape[1], self._device or features.device)
        x = features.detach().to(device=self._device, dtype=torch.float64)
        self.count += x.shape[0]
        self.sum += x.sum(dim=0)
        self.sum_outer += x.T @ x

    def merge(self, other: FeatureStatistics) -> FeatureStatistics:
        """Add the sums of ``other`` into ``self`` (in place) and return ``self``."""
        if not isinstance(other, FeatureStatistics):
            raise TypeError(f"other: expected FeatureStatistics, got {type(other).__name__}")
        if other.sum is None:
            return self
        if self._dim is not None and other.dim != self._dim:
            raise ValueError(f"other: feature dimension {other.dim} does not match {self._dim}")
        if self.sum is None:
            self._allocate(other.sum.shape[0], self._device or other.sum.device)
        self.count += other.count
        self.sum += other.sum.to(self.sum.device)
        self.sum_outer += other.sum_outer.to(self.sum_outer.device)
        return self

    def all_reduce(self) -> FeatureStatistics:
        """Statistics summed over all ``torch.distributed`` ranks, as a new object.

        ``self`` is left unchanged (so calling it twice does not double-count). Without an
        initialised process group this returns a copy of ``self``. A collective: every rank must
        call it, and every rank must know the feature dimension (pass ``dim`` if a rank may see no
        data).
        """
        out = FeatureStatistics(self._dim, device=self._device)
        if self.sum is None and not is_distributed():
            return out
        if self._dim is None:
            raise ValueError(
                "all_reduce: feature dimension unknown on this rank; pass dim= to FeatureStatistics"
            )
        dim = self._dim
        if self.sum is None or self.sum_outer is None:  # a rank that saw no data adds zeros
            total = torch.zeros(dim, dtype=torch.float64, device=self._device)
            outer = torch.zeros(dim * dim, dtype=torch.float64, device=self._device)
        else:
            total, outer = self.sum, self.sum_outer.flatten()
        # One flat buffer, one collective: [count, Σx, Σxxᵀ] (the count is exact up to 2^53).
        packed = all_reduce_sum(torch.cat([total.new_tensor([float(self.count)]), total, outer]))
        out._allocate(dim, total.device)
        out.count = round(float(packed[0]))
        out.sum.copy_(packed[1 : 1 + dim])
        out.sum_outer.copy_(packed[1 + dim :].view(dim, dim))
        return out

    @property
    def mean(self) -> torch.Tensor:
        """Mean ``μ: [D]`` (float64)."""
        if self.sum is None or self.count < 1:
            raise ValueError("FeatureStatistics: no features have been added yet")
        return self.sum / self.count

    @property
    def covariance(self) -> torch.Tensor:
        """Unbiased covariance ``Σ: [D, D]`` (float64, divides by ``n - 1`` like ``numpy.cov``)."""
        if self.sum is None or self.count < 2:
            raise ValueError(
                "FeatureStatistics: a covariance needs at least 2 feature vectors, got "
                f"{self.count}"
            )
        centred = self.sum_outer - torch.outer(self.sum, self.sum) / self.count
        cov = centred / (self.count - 1)
        return 0.5 * (cov + cov.T)

    def state_dict(self) -> Dict[str, Any]:
        """The sums as a plain dict (``count``, ``sum``, ``sum_outer``), e.g. to cache them."""
        return {"count": self.count, "sum": self.sum, "sum_outer": self.sum_outer}

    def load_state_dict(self, state: Dict[str, Any]) -> None:
        """Restore the sums saved by :meth:`state_dict`."""
        missing = {"count", "sum", "sum_outer"} - set(state)
        if missing:
            raise ValueError(f"state: missing keys {sorted(missing)}")
        if state["sum"] is None:
            self.count, self.sum, self.sum_outer = 0, None, None
            return
        total, outer = state["sum"], state["sum_outer"]
        if total.ndim != 1 or tuple(outer.shape) != (total.shape[0], total.shape[0]):
            raise ValueError(
                f"state: expected sum [D] and sum_outer [D, D], got {tuple(total.shape)} and "
                f"{tuple(outer.shape)}"
            )
        self._allocate(total.shape[0], self._device or total.device)
        self.count = int(state["count"])
        self.sum.copy_(total)
        self.sum_outer.copy_(outer)

    def __repr__(self) -> str:
        return f"FeatureStatistics(dim={self._dim}, count={self.count})"
