"""Residual block with SPADE normalisation (the generator block of SPADE and OASIS).

Main path ``SPADE → lrelu(0.2) → conv3×3 → SPADE → lrelu(0.2) → conv3×3`` with
``min(in, out)`` channels in the middle; shortcut ``SPADE → conv1×1`` (no bias) when the channel
count changes, else the identity; output = main + shortcut. Every :class:`~ganblocks.nn.SPADE`
reads the same label map, resized to its input's grid with nearest. Spectral norm, when asked,
wraps the three convolutions with :func:`torch.nn.utils.parametrizations.spectral_norm` (the
legacy ``weight_orig/_u/_v`` layout converts with :func:`~ganblocks.nn.spectral_norm_from_legacy`).
"""

from __future__ import annotations

from typing import Optional

import torch
import torch.nn.functional as F
from torch import nn

from ._utils import conv2d
from .checks import check_input, check_int
from .spade import SPADE

__all__ = ["SPADEResBlock"]

_SLOPE = 0.2  # negative slope of the block's leaky ReLUs


class SPADEResBlock(nn.Module):
    """Residual block whose normalisations are SPADE layers conditioned on a label map.

    Sub-modules (their names are those of the SPADE/OASIS implementations, so their state dicts
    map one to one): ``norm_0``, ``conv_0`` (``in → mid``), ``norm_1``, ``conv_1`` (``mid → out``)
    and, when ``in_channels != out_channels``, ``norm_s`` and ``conv_s`` (1×1, no bias), with
    ``mid = min(in_channels, out_channels)``.

    Args:
        in_channels: Channels of ``x``.
        out_channels: Output channels.
        label_channels: Channels ``L`` of the label map (one-hot classes, plus any noise channels).
        hidden_channels: Hidden width of each SPADE's label network.
        norm: Parameter-free normalisation inside each SPADE: ``'batch'``, ``'instance'`` or
            ``'none'``.
        kernel_size: Kernel of each SPADE's label convolutions.
        spectral_norm: Spectral norm on ``conv_0``, ``conv_1`` and ``conv_s``.

    Shapes:
        ``x: [N, in_channels, H, W]``, ``label: [N, L, h, w]`` → ``[N, out_channels, H, W]``.

    Example:
        >>> block = SPADEResBlock(32, 16, 5, hidden_channels=8, norm="instance")
        >>> label = torch.nn.functional.one_hot(torch.randint(0, 5, (2, 32, 32)), 5)
        >>> block(torch.randn(2, 32, 8, 8), label.permute(0, 3, 1, 2).float()).shape
        torch.Size([2, 16, 8, 8])
    """

    def __init__(
        self,
        in_channels: int,
        out_channels: int,
        label_channels: int,
        *,
        hidden_channels: int = 128,
        norm: str = "batch",
        kernel_size: int = 3,
        spectral_norm: bool = False,
    ) -> None:
        super().__init__()
        self.in_channels = check_int(in_channels, "in_channels")
        self.out_channels = check_int(out_channels, "out_channels")
        self.label_channels = check_int(label_channels, "label_channels")
        mid = min(self.in_channels, self.out_channels)
        sn = bool(spectral_norm)
        spade = dict(hidden_channels=hidden_channels, norm=norm, kernel_size=kernel_size)
        self.norm_0 = SPADE(self.in_channels, self.label_channels, **spade)
        self.conv_0 = conv2d(self.in_channels, mid, 3, spectral_norm=sn)
        self.norm_1 = SPADE(mid, self.label_channels, **spade)
        self.conv_1 = conv2d(mid, self.out_channels, 3, spectral_norm=sn)
        self.norm_s: Optional[SPADE] = None
        self.conv_s: Optional[nn.Module] = None
        if self.in_channels != self.out_channels:
            self.norm_s = SPADE(self.in_channels, self.label_channels, **spade)
            self.conv_s = conv2d(
                self.in_channels, self.out_channels, 1, spectral_norm=sn, bias=False
            )

    def forward(self, x: torch.Tensor, label: torch.Tensor) -> torch.Tensor:
        """``x: [N, in_channels, H, W]``, ``label: [N, L, h, w]`` → ``[N, out_channels, H, W]``."""
        check_input(x, "x", ndim=4, channels=self.in_channels)
        if self.norm_s is not None and self.conv_s is not None:
            shortcut = self.conv_s(self.norm_s(x, label))
        else:
            shortcut = x
        h = self.conv_0(F.leaky_relu(self.norm_0(x, label), _SLOPE))
        h = self.conv_1(F.leaky_relu(self.norm_1(h, label), _SLOPE))
        return shortcut + h

    def extra_repr(self) -> str:
        return f"{self.in_channels}, {self.out_channels}, {self.label_channels}"
