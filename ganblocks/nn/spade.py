"""Spatially-adaptive denormalisation (SPADE, Park et al. 2019).

The activations are normalised without learned affine parameters; a small conv net on the semantic
label map (nearest-resized to the activations' size) predicts a per-pixel scale and shift:
``out = norm(x) · (1 + γ) + β``.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from .checks import check_input, check_int

__all__ = ["SPADE"]

_NORMS = ("instance", "batch", "none")


class SPADE(nn.Module):
    """Spatially-adaptive normalisation conditioned on a label map.

    ``out = norm(x) · (1 + γ) + β`` with ``h = relu(conv3×3(resize(label)))`` and
    ``[γ; β] = conv3×3(h)`` (one convolution producing both, equivalent to two separate ones).

    Args:
        num_features: Channels ``C`` of ``x``.
        label_channels: Channels ``L`` of the label map (e.g. a one-hot segmentation).
        hidden_channels: Channels of the shared hidden layer.
        norm: Parameter-free normalisation of ``x``: ``'instance'`` (per image and channel),
            ``'batch'`` (``nn.BatchNorm2d`` without affine, with running statistics) or ``'none'``.
        kernel_size: Kernel of the label convolutions.

    Shapes:
        ``x: [N, C, H, W]``, ``label: [N, L, h, w]`` (resized to ``H × W`` with nearest) →
        ``[N, C, H, W]``.

    Example:
        >>> spade = SPADE(64, 10, hidden_channels=32)
        >>> label = torch.randint(0, 10, (2, 32, 32))
        >>> onehot = torch.nn.functional.one_hot(label, 10).permute(0, 3, 1, 2).float()
        >>> spade(torch.randn(2, 64, 16, 16), onehot).shape
        torch.Size([2, 64, 16, 16])
    """

    def __init__(
        self,
        num_features: int,
        label_channels: int,
        *,
        hidden_channels: int = 128,
        norm: str = "instance",
        kernel_size: int = 3,
    ) -> None:
        super().__init__()
        self.num_features = check_int(num_features, "num_features")
        self.label_channels = check_int(label_channels, "label_channels")
        self.hidden_channels = check_int(hidden_channels, "hidden_channels")
        k = check_int(kernel_size, "kernel_size")
        if norm not in _NORMS:
            raise ValueError(f"norm: expected one of {_NORMS}, got {norm!r}")
        self.norm_type = norm
        self.norm = (
            nn.BatchNorm2d(self.num_features, affine=False) if norm == "batch" else nn.Identity()
        )
        self.shared = nn.Conv2d(self.label_channels, self.hidden_channels, k, padding=k // 2)
        self.gamma_beta = nn.Conv2d(self.hidden_channels, 2 * self.num_features, k, padding=k // 2)

    def forward(self, x: torch.Tensor, label: torch.Tensor) -> torch.Tensor:
        """``x: [N, C, H, W]``, ``label: [N, L, h, w]`` → ``[N, C, H, W]``."""
        check_input(x, "x", ndim=4, channels=self.num_features)
        check_input(label, "label", ndim=4, channels=self.label_channels)
        if label.shape[0] != x.shape[0]:
            raise ValueError(
                f"label: expected batch size {x.shape[0]} (that of x), got {tuple(label.shape)}"
            )
        if label.shape[2:] != x.shape[2:]:
            label = F.interpolate(label, size=tuple(x.shape[2:]), mode="nearest")
        if self.norm_type == "instance":
            x = F.instance_norm(x)
        else:
            x = self.norm(x)
        gamma, beta = self.gamma_beta(F.relu(self.shared(label))).chunk(2, dim=1)
        return torch.addcmul(beta, x, 1 + gamma)

    def extra_repr(self) -> str:
        return f"{self.num_features}, {self.label_channels}, norm={self.norm_type!r}"
