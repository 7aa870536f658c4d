"""Atrous spatial pyramid pooling (DeepLab v3), without batch norm.

Parallel branches look at the same feature map with different receptive fields: a 1×1 conv (rate
1), a 3×3 conv with dilation ``r`` for every rate ``r > 1``, and optionally an image-pooling branch
(global average → 1×1 conv → broadcast back to every pixel). Each branch is followed by a
``leaky_relu(0.2)`` (DeepLab's per-branch non-linearity; no batch norm, which GAN discriminators
avoid), the branches are concatenated, and a 1×1 conv projects back to ``out_channels``.
"""

from __future__ import annotations

from typing import Optional, Sequence

import torch
import torch.nn.functional as F
from torch import nn

from ._utils import conv2d
from .checks import check_input, check_int

__all__ = ["ASPP"]


class ASPP(nn.Module):
    """Atrous spatial pyramid pooling.

    Args:
        in_channels: Input channels.
        out_channels: Channels of every branch and of the output.
        rates: Dilation rates; rate 1 is the 1×1 branch, each rate ``r > 1`` a 3×3 conv with
            dilation ``r`` (and padding ``r``, so the size is kept). Distinct positive integers.
        image_pooling: Add the global-average-pooling branch.
        spectral_norm: Spectral norm on every convolution (branches, pooling and projection).
        branch_activation: ``leaky_relu(0.2)`` after each branch; ``False`` makes ASPP linear.

    Shapes:
        ``x: [N, in_channels, H, W]`` → ``[N, out_channels, H, W]``.

    Example:
        >>> aspp = ASPP(64, 32, rates=(1, 2, 3))
        >>> aspp(torch.randn(2, 64, 8, 8)).shape
        torch.Size([2, 32, 8, 8])
    """

    def __init__(
        self,
        in_channels: int,
        out_channels: int,
        *,
        rates: Sequence[int] = (1, 2, 3),
        image_pooling: bool = True,
        spectral_norm: bool = False,
        branch_activation: bool = True,
    ) -> None:
        super().__init__()
        self.in_channels = check_int(in_channels, "in_channels")
        self.out_channels = check_int(out_channels, "out_channels")
        if isinstance(rates, (str, bytes)) or not isinstance(rates, Sequence):
            raise TypeError(f"rates: expected a sequence of positive integers, got {rates!r}")
        self.rates = tuple(check_int(r, "rates") for r in rates)
        if len(set(self.rates)) != len(self.rates):
            raise ValueError(f"rates: expected distinct rates, got {tuple(rates)!r}")
        if not self.rates and not image_pooling:
            raise ValueError("rates: expected at least one rate when image_pooling=False")
        self.branch_activation = bool(branch_activation)
        sn = bool(spectral_norm)
        self.branches = nn.ModuleList(
            [
                conv2d(self.in_channels, self.out_channels, 1, spectral_norm=sn)
                if r == 1
                else conv2d(self.in_channels, self.out_channels, 3, spectral_norm=sn, dilation=r)
                for r in self.rates
            ]
        )
        self.pool: Optional[nn.Module] = (
            conv2d(self.in_channels, self.out_channels, 1, spectral_norm=sn)
            if image_pooling
            else None
        )
        num_branches = len(self.rates) + (1 if image_pooling else 0)
        self.project = conv2d(
            num_branches * self.out_channels, self.out_channels, 1, spectral_norm=sn
        )

    def _act(self, x: torch.Tensor) -> torch.Tensor:
        return F.leaky_relu(x, 0.2) if self.branch_activation else x

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """``x: [N, in_channels, H, W]`` → ``[N, out_channels, H, W]``."""
        check_input(x, "x", ndim=4, channels=self.in_channels)
        outs = [self._act(branch(x)) for branch in self.branches]
        if self.pool is not None:
            pooled = self._act(self.pool(x.mean(dim=(2, 3), keepdim=True)))  # [N, C, 1, 1]
            outs.append(pooled.expand(-1, -1, *x.shape[2:]))
        return self.project(torch.cat(outs, dim=1))

    def extra_repr(self) -> str:
        return (
            f"{self.in_channels}, {self.out_channels}, rates={self.rates}, "
            f"image_pooling={self.pool is not None}"
        )
