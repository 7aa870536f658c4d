"""StyleGAN2 output layer: a modulated 1×1 convolution to image channels, summed with the
up-sampled image of the previous resolution (the "skip" generator)."""

from __future__ import annotations

from typing import Optional, Sequence

import torch
from torch import nn

from ganblocks.ops import bias_act

from .checks import check_input, check_int, check_positive_float
from .modulation import ModulatedConv2d
from .resample import Upsample2d

__all__ = ["ToRGB"]


class ToRGB(nn.Module):
    """Features → image: style-modulated conv without demodulation, bias, clamp; plus a skip image.

    ``rgb = clamp(modconv(x, style) + bias, ±conv_clamp)``; given ``skip`` (the image of the
    previous, half resolution), returns ``upsample2d(skip) + rgb`` where the up-sampling is FIR
    (zero insertion + ``resample_filter``, gain 4), so the image is refined resolution by
    resolution.

    Args:
        in_channels: Feature channels ``C``.
        out_channels: Image channels (3 for RGB).
        style_dim: Size of the style vector ``w``.
        kernel_size: Side of the (usually 1×1) kernel.
        conv_clamp: Clamp of the output before the skip sum; ``None`` disables it.
        resample_filter: FIR taps of the skip up-sampling.
        persistent_filter: Keep the skip filter in the state dict.

    Shapes:
        ``x: [N, C, H, W]``, ``style: [N, style_dim]``, ``skip: [N, out_channels, H/2, W/2]`` or
        ``None`` → ``[N, out_channels, H, W]``.

    Example:
        >>> to_rgb = ToRGB(32, 3, 64)
        >>> x, w = torch.randn(2, 32, 16, 16), torch.randn(2, 64)
        >>> to_rgb(x, w).shape, to_rgb(x, w, skip=torch.randn(2, 3, 8, 8)).shape
        (torch.Size([2, 3, 16, 16]), torch.Size([2, 3, 16, 16]))
    """

    def __init__(
        self,
        in_channels: int,
        out_channels: int,
        style_dim: int,
        *,
        kernel_size: int = 1,
        conv_clamp: Optional[float] = None,
        resample_filter: Sequence[float] = (1, 3, 3, 1),
        persistent_filter: bool = False,
    ) -> None:
        super().__init__()
        self.out_channels = check_int(out_channels, "out_channels")
        self.conv_clamp = (
            None if conv_clamp is None else check_positive_float(conv_clamp, "conv_clamp")
        )
        self.conv = ModulatedConv2d(
            in_channels, out_channels, kernel_size, style_dim, demodulate=False, bias=False
        )
        self.bias = nn.Parameter(torch.zeros(self.out_channels))
        self.upsample = Upsample2d(
            2, resample_filter=resample_filter, persistent_filter=persistent_filter
        )

    def forward(
        self, x: torch.Tensor, style: torch.Tensor, skip: Optional[torch.Tensor] = None
    ) -> torch.Tensor:
        """``x: [N, C, H, W]``, ``style: [N, style_dim]``, ``skip`` → ``[N, out, H, W]``."""
        y = bias_act(self.conv(x, style), self.bias.to(x.dtype), clamp=self.conv_clamp)
        if skip is None:
            return y
        check_input(skip, "skip", ndim=4, channels=self.out_channels)
        if (
            skip.shape[0] != x.shape[0]
            or 2 * skip.shape[2] != x.shape[2]
            or 2 * skip.shape[3] != x.shape[3]
        ):
            raise ValueError(
                f"skip: expected [{x.shape[0]}, {self.out_channels}, {x.shape[2] // 2}, "
                f"{x.shape[3] // 2}] (half the resolution of x), got {tuple(skip.shape)}"
            )
        return self.upsample(skip.to(y.dtype)) + y
