"""Residual down- and up-sampling blocks of OASIS's U-Net discriminator (Schönfeld et al., 2021).

* :class:`OASISResBlockDown`: ``lrelu → conv3×3 → lrelu → conv3×3 → avgpool2``, plus a shortcut
  ``avgpool2 → conv1×1`` (the 1×1 conv only when the channel count changes), summed.
* :class:`OASISResBlockUp`: ``lrelu → nearest up×2 → conv3×3 → lrelu → conv3×3``, plus a shortcut
  ``conv1×1 → nearest up×2`` (the conv only when the channel count changes), summed.

They are plain sums (no ``1/√2``) with average pooling and nearest up-sampling, unlike StyleGAN2's
residual block (:class:`~ganblocks.nn.StyleGAN2DiscriminatorBlock`: FIR down-sampling convs and a
``√0.5``-scaled sum). ``ResBlockD`` and ``ResBlockU`` are their former names, kept as aliases.

Pooling, nearest up-sampling and a 1×1 convolution commute, so each shortcut runs its convolution on
the smaller grid; likewise the first lrelu of :class:`OASISResBlockUp` runs before the up-sampling.
Spectral norm, when asked, wraps every convolution of the block with
:func:`torch.nn.utils.parametrizations.spectral_norm` (check with
``torch.nn.utils.parametrize.is_parametrized(conv, 'weight')``).
"""

from __future__ import annotations

from typing import Optional

import torch
import torch.nn.functional as F
from torch import nn

from ganblocks.ops import bias_act

from ._utils import conv2d
from .checks import check_input, check_int
from .equalized import EqualConv2d

__all__ = ["OASISResBlockDown", "OASISResBlockUp", "ResBlockD", "ResBlockU"]

_SLOPE = 0.2  # negative slope of every leaky ReLU in these blocks


class OASISResBlockDown(nn.Module):
    """OASIS's residual discriminator block that (optionally) halves the resolution.

    Main path ``lrelu → conv3×3 → lrelu → conv3×3 → avgpool2``; shortcut ``avgpool2 → conv1×1``
    (the conv only when ``in_channels != out_channels``); output = main + shortcut.

    With ``equalized=True`` the convolutions are :class:`EqualConv2d` and each lrelu is
    :func:`~ganblocks.ops.bias_act`'s ``lrelu·√2`` (the gain that keeps unit-scale signals at unit
    scale). With ``equalized=False`` they are plain ``nn.Conv2d`` (PyTorch's default init) with a
    plain ``leaky_relu(0.2)``, optionally with spectral norm on every conv. Spectral norm and
    equalised learning rate are exclusive (spectral norm fixes the weight's scale that the
    equalised layer's run-time gain would change again).

    Args:
        in_channels: Input channels.
        out_channels: Output channels.
        downsample: Halve the resolution with 2×2 average pooling.
        spectral_norm: Spectral norm on every convolution (needs ``equalized=False``).
        equalized: Equalised-learning-rate convolutions.
        preactivate: Apply the first lrelu; ``False`` for a first block fed with raw images.
        shortcut_bias: Give the shortcut's 1×1 conv a bias (OASIS's discriminator has one; the
            bias commutes with the pooling, so only the order of the sums changes).

    Shapes:
        ``x: [N, in_channels, H, W]`` → ``[N, out_channels, H // 2, W // 2]`` (or ``H × W``).

    Example:
        >>> OASISResBlockDown(3, 64)(torch.randn(2, 3, 32, 32)).shape
        torch.Size([2, 64, 16, 16])
    """

    def __init__(
        self,
        in_channels: int,
        out_channels: int,
        *,
        downsample: bool = True,
        spectral_norm: bool = False,
        equalized: bool = True,
        preactivate: bool = True,
        shortcut_bias: bool = False,
    ) -> None:
        super().__init__()
        self.in_channels = check_int(in_channels, "in_channels")
        self.out_channels = check_int(out_channels, "out_channels")
        if spectral_norm and equalized:
            raise ValueError(
                "spectral_norm: spectral norm and equalised learning rate are exclusive; pass "
                "equalized=False with spectral_norm=True"
            )
        self.downsample = bool(downsample)
        self.equalized = bool(equalized)
        self.preactivate = bool(preactivate)
        learned_shortcut = self.in_channels != self.out_channels
        self.shortcut: Optional[nn.Module]
        if self.equalized:
            # conv1 fuses its bias with the second lrelu·√2.
            self.conv1 = EqualConv2d(self.in_channels, self.out_channels, 3, activation="lrelu")
            self.conv2 = EqualConv2d(self.out_channels, self.out_channels, 3)
            self.shortcut = (
                EqualConv2d(self.in_channels, self.out_channels, 1, bias=bool(shortcut_bias))
                if learned_shortcut
                else None
            )
        else:
            sn = bool(spectral_norm)
            self.conv1 = conv2d(self.in_channels, self.out_channels, 3, spectral_norm=sn)
            self.conv2 = conv2d(self.out_channels, self.out_channels, 3, spectral_norm=sn)
            self.shortcut = (
                conv2d(
                    self.in_channels, self.out_channels, 1, spectral_norm=sn,
                    bias=bool(shortcut_bias),
                )
                if learned_shortcut
                else None
            )

    def _lrelu(self, x: torch.Tensor) -> torch.Tensor:
        if self.equalized:
            return bias_act(x, act="lrelu")
        return F.leaky_relu(x, _SLOPE)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """``x: [N, in_channels, H, W]`` → ``[N, out_channels, H // 2, W // 2]`` (or ``H × W``)."""
        check_input(x, "x", ndim=4, channels=self.in_channels)
        h = self._lrelu(x) if self.preactivate else x
        h = self.conv1(h)
        if not self.equalized:
            h = F.leaky_relu(h, _SLOPE)
        h = self.conv2(h)
        s = x
        if self.downsample:
            h = F.avg_pool2d(h, 2)
            s = F.avg_pool2d(s, 2)
        if self.shortcut is not None:
            s = self.shortcut(s)
        return h + s

    def extra_repr(self) -> str:
        return (
            f"{self.in_channels}, {self.out_channels}, downsample={self.downsample}, "
            f"equalized={self.equalized}"
        )


class OASISResBlockUp(nn.Module):
    """OASIS's residual decoder block that doubles the resolution (nearest up-sampling).

    Main path ``lrelu → nearest up×2 → conv3×3 → lrelu → conv3×3``; shortcut
    ``conv1×1 → nearest up×2`` (the conv only when ``in_channels != out_channels``); output = main +
    shortcut. Plain ``nn.Conv2d`` convolutions, ``leaky_relu(0.2)``.

    Args:
        in_channels: Input channels (concatenate skip features before calling, if any).
        out_channels: Output channels.
        spectral_norm: Spectral norm on every convolution.
        shortcut_bias: Give the shortcut's 1×1 conv a bias (as OASIS's discriminator does).

    Shapes:
        ``x: [N, in_channels, H, W]`` → ``[N, out_channels, 2H, 2W]``.

    Example:
        >>> OASISResBlockUp(128, 64)(torch.randn(2, 128, 4, 4)).shape
        torch.Size([2, 64, 8, 8])
    """

    def __init__(
        self,
        in_channels: int,
        out_channels: int,
        *,
        spectral_norm: bool = True,
        shortcut_bias: bool = False,
    ) -> None:
        super().__init__()
        self.in_channels = check_int(in_channels, "in_channels")
        self.out_channels = check_int(out_channels, "out_channels")
        sn = bool(spectral_norm)
        self.conv1 = conv2d(self.in_channels, self.out_channels, 3, spectral_norm=sn)
        self.conv2 = conv2d(self.out_channels, self.out_channels, 3, spectral_norm=sn)
        self.shortcut: Optional[nn.Module] = (
            conv2d(
                self.in_channels, self.out_channels, 1, spectral_norm=sn, bias=bool(shortcut_bias)
            )
            if self.in_channels != self.out_channels
            else None
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """``x: [N, in_channels, H, W]`` → ``[N, out_channels, 2H, 2W]``."""
        check_input(x, "x", ndim=4, channels=self.in_channels)
        # lrelu commutes with nearest up-sampling: activate on the small grid.
        h = F.interpolate(F.leaky_relu(x, _SLOPE), scale_factor=2.0, mode="nearest")
        h = self.conv2(F.leaky_relu(self.conv1(h), _SLOPE))
        s = x if self.shortcut is None else self.shortcut(x)
        return h + F.interpolate(s, scale_factor=2.0, mode="nearest")

    def extra_repr(self) -> str:
        return f"{self.in_channels}, {self.out_channels}"


#: Former name of :class:`OASISResBlockDown` (an alias: the same class).
ResBlockD = OASISResBlockDown
#: Former name of :class:`OASISResBlockUp` (an alias: the same class).
ResBlockU = OASISResBlockUp
