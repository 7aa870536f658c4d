"""Minibatch standard deviation (ProGAN / StyleGAN2): let the discriminator see batch diversity."""

from __future__ import annotations

import torch
from einops import rearrange, repeat
from torch import nn

from .checks import check_input, check_int

__all__ = ["MinibatchStd"]


class MinibatchStd(nn.Module):
    """Append the average standard deviation over sample groups as extra feature channels.

    The batch is split into ``M = N / G`` groups of ``G = min(group_size, N)`` samples, sample ``n``
    belonging to group ``n mod M``. The channels are split into ``num_channels`` slices; for every
    group and slice the standard deviation over the group's ``G`` samples is taken per channel and
    pixel (biased, ``sqrt(var + eps)``) and averaged over the slice's channels and all pixels. The
    result, one number per group and slice, is broadcast to every sample of the group and pixel and
    concatenated to ``x``.

    Args:
        group_size: Samples per group (capped at the batch size).
        num_channels: Number of channel slices, i.e. of appended feature maps.
        eps: Added to the variance before the square root.

    Shapes:
        ``x: [N, C, H, W]`` → ``[N, C + num_channels, H, W]``; ``N`` must be divisible by
        ``min(group_size, N)`` and ``C`` by ``num_channels``.

    Example:
        >>> MinibatchStd(4, 1)(torch.randn(8, 16, 4, 4)).shape
        torch.Size([8, 17, 4, 4])
    """

    def __init__(self, group_size: int = 4, num_channels: int = 1, *, eps: float = 1e-8) -> None:
        super().__init__()
        self.group_size = check_int(group_size, "group_size")
        self.num_channels = check_int(num_channels, "num_channels")
        self.eps = float(eps)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """``x: [N, C, H, W]`` → ``[N, C + num_channels, H, W]``."""
        check_input(x, "x", ndim=4)
        n, c, h, w = x.shape
        g = min(self.group_size, n)
        if n % g != 0:
            raise ValueError(
                f"x: batch size {n} must be divisible by the group size "
                f"min(group_size={self.group_size}, N={n}) = {g}"
            )
        if c % self.num_channels != 0:
            raise ValueError(
                f"x: channel count {c} must be divisible by num_channels={self.num_channels}"
            )
        y = rearrange(x, "(g m) (f c) h w -> g m f c h w", g=g, f=self.num_channels)
        std = (y.var(dim=0, correction=0) + self.eps).sqrt()  # [M, F, c, H, W]
        std = std.mean(dim=(2, 3, 4))  # [M, F]
        std = repeat(std, "m f -> (g m) f h w", g=g, h=h, w=w)
        return torch.cat([x, std.to(x.dtype)], dim=1)

    def extra_repr(self) -> str:
        return f"group_size={self.group_size}, num_channels={self.num_channels}"
