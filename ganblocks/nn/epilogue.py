"""StyleGAN2 discriminator epilogue: minibatch std → conv → fc → output, with optional projection
conditioning (Miyato & Koyama, 2018) as in StyleGAN2-ADA."""

from __future__ import annotations

import math
from typing import Optional

import torch
from torch import nn

from .checks import check_input, check_int
from .equalized import EqualConv2d, EqualLinear
from .minibatch_std import MinibatchStd

__all__ = ["DiscriminatorEpilogue"]


class DiscriminatorEpilogue(nn.Module):
    """Last discriminator stage: features at ``resolution`` → one logit per sample.

    ``MinibatchStd`` (when ``mbstd_num_channels > 0``) → ``conv3×3 + lrelu`` → flatten → ``fc +
    lrelu`` → ``out`` (linear). Unconditional (``cmap_dim = 0``): ``out`` gives the logit
    ``[N, 1]``. Projection-conditioned (``cmap_dim > 0``): ``out`` gives ``[N, cmap_dim]`` features
    ``φ`` and the logit is ``⟨φ, cmap⟩ / sqrt(cmap_dim)`` with ``cmap`` the embedded label (e.g. a
    :class:`~ganblocks.nn.MappingNetwork` with ``z_dim=0``).

    Args:
        in_channels: Channels ``C`` of the features.
        resolution: Side of the (square) feature map, 4 in StyleGAN2.
        cmap_dim: Size of the label embedding; 0 = unconditional.
        mbstd_group_size: Group size of the minibatch std layer.
        mbstd_num_channels: Channels appended by minibatch std (0 = no such layer).
        conv_clamp: Clamp of the conv output; ``None`` disables it.

    Shapes:
        ``x: [N, C, resolution, resolution]``, ``cmap: [N, cmap_dim]`` (conditional only) →
        ``[N, 1]``.

    Example:
        >>> head = DiscriminatorEpilogue(32, 4, cmap_dim=16, mbstd_group_size=2)
        >>> head(torch.randn(4, 32, 4, 4), torch.randn(4, 16)).shape
        torch.Size([4, 1])
    """

    def __init__(
        self,
        in_channels: int,
        resolution: int = 4,
        *,
        cmap_dim: int = 0,
        mbstd_group_size: int = 4,
        mbstd_num_channels: int = 1,
        conv_clamp: Optional[float] = None,
    ) -> None:
        super().__init__()
        self.in_channels = check_int(in_channels, "in_channels")
        self.resolution = check_int(resolution, "resolution")
        self.cmap_dim = check_int(cmap_dim, "cmap_dim", minimum=0)
        mbstd_num_channels = check_int(mbstd_num_channels, "mbstd_num_channels", minimum=0)
        self.mbstd = (
            MinibatchStd(mbstd_group_size, mbstd_num_channels) if mbstd_num_channels > 0 else None
        )
        c = self.in_channels
        self.conv = EqualConv2d(
            c + mbstd_num_channels, c, 3, activation="lrelu", conv_clamp=conv_clamp
        )
        self.fc = EqualLinear(c * self.resolution**2, c, activation="lrelu")
        self.out = EqualLinear(c, max(self.cmap_dim, 1))

    def forward(self, x: torch.Tensor, cmap: Optional[torch.Tensor] = None) -> torch.Tensor:
        """``x: [N, C, R, R]``, ``cmap: [N, cmap_dim]`` or ``None`` → logits ``[N, 1]``."""
        check_input(x, "x", ndim=4, channels=self.in_channels)
        if tuple(x.shape[2:]) != (self.resolution, self.resolution):
            raise ValueError(
                f"x: expected spatial size {self.resolution}x{self.resolution}, "
                f"got {tuple(x.shape)}"
            )
        if self.mbstd is not None:
            x = self.mbstd(x)
        x = self.out(self.fc(self.conv(x).flatten(1)))
        if self.cmap_dim == 0:
            return x
        if cmap is None:
            raise ValueError(f"cmap: expected the embedded label [N, {self.cmap_dim}], got None")
        check_input(cmap, "cmap", ndim=2, channels=self.cmap_dim)
        return (x * cmap).sum(dim=1, keepdim=True) * (1 / math.sqrt(self.cmap_dim))
