"""StyleMapGAN's synthesis blocks: the style-map resizer and the residual up-sampling block.

StyleMapGAN (Kim et al., 2021) and OCO-GAN generate from a *style map* ``[N, S, h, w]`` rather
than a style vector. Its generator has two stacks:

* :class:`StyleMapResizer` turns the base style map into one style map per styled layer of the
  synthesis: two convolutions at the base size, then, per doubling, an up-sampling convolution and
  a convolution (``2 + 2·doublings`` maps, map ``k`` at ``2^⌊k/2⌋`` times the base size).
* :class:`StyleMapSynthesisBlock` doubles the resolution of the synthesis features: a styled
  up-convolution and a styled convolution (:class:`~ganblocks.nn.StyledConv2d`, modulated by the
  style maps at the input and at the output resolution), plus a 1×1 up-sampling skip without bias,
  summed and scaled by ``1/√2``.

A full synthesis network is a learned constant, a styled 3×3 conv, one block per doubling and a
styled 1×1 to-RGB conv (linear in OCO-GAN; ``lrelu`` and normalised in StyleMapGAN), all built
from these blocks and :class:`~ganblocks.nn.StyledConv2d`.

Options that a StyleMapGAN port sets (``norm='layer'``, ``flip_weight=False``, the blur kernel as
``resample_filter``): the original runs its up-sampling convolutions as ``conv_transpose2d`` with
the unflipped weight (``flip_weight=False``), normalises with layer norm by default, and applies
the activation's bias without a learning-rate multiplier (the resizer's ``lr_mul`` scales the
weights *and* the biases here; a converter divides the stored biases by ``lr_mul``).
"""

from __future__ import annotations

import math
from typing import List, Optional, Sequence, Tuple, Union

import torch
from torch import nn

from .checks import check_activation, check_input, check_int
from .equalized import EqualConv2d
from .modulation import StyledConv2d

__all__ = ["StyleMapResizer", "StyleMapSynthesisBlock"]

_SQRT_HALF = 1 / math.sqrt(2)  # the residual sum's scale


class StyleMapResizer(nn.ModuleList):
    """Base style map → the list of style maps of a StyleMapGAN synthesis network.

    Layer ``k`` (an :class:`~ganblocks.nn.EqualConv2d`, ``kernel_size``, with ``activation``) maps
    ``channels[k - 1]`` (``in_channels`` for ``k = 0``) to ``channels[k]`` channels; the even
    layers from ``k = 2`` on up-sample ×2, so maps ``0, 1`` have the base size and maps
    ``2i, 2i + 1`` have ``2^i`` times the base size. Every layer's output is one style map: map
    ``0`` modulates the synthesis' first conv, maps ``2i - 1`` and ``2i`` the two styled convs of
    its ``i``-th :class:`StyleMapSynthesisBlock`, the last map the to-RGB layer.

    The module is an ``nn.ModuleList`` of the layers (state-dict keys ``0.weight``, ``0.bias``,
    ``1.weight``, ...).

    Args:
        in_channels: Channels of the base style map.
        channels: Channels of each output map (an even number of entries, at least 2).
        kernel_size: Kernel of every layer.
        activation: Activation of every layer (:func:`~ganblocks.ops.bias_act`, with its gain).
        lr_mul: Learning-rate multiplier of every layer (weights and biases).
        resample_filter: FIR taps of the up-sampling layers.
        flip_weight: ``False`` convolves in the *up-sampling* layers (the others always
            correlate), for weights of code that runs its up-sampling convolutions as
            ``conv_transpose2d`` with the unflipped kernel (StyleMapGAN); see
            :class:`~ganblocks.nn.EqualConv2d`.

    Shapes:
        ``base: [N, in_channels, h, w]`` → a list of ``[N, channels[k], h·2^(k//2), w·2^(k//2)]``
        for ``k = 0 … len(channels) - 1``.

    Example:
        >>> resizer = StyleMapResizer(8, [16, 16, 8, 8, 4, 4])
        >>> [tuple(m.shape[1:]) for m in resizer(torch.randn(2, 8, 4, 4))]
        [(16, 4, 4), (16, 4, 4), (8, 8, 8), (8, 8, 8), (4, 16, 16), (4, 16, 16)]
    """

    def __init__(
        self,
        in_channels: int,
        channels: Sequence[int],
        *,
        kernel_size: int = 3,
        activation: str = "lrelu",
        lr_mul: float = 1.0,
        resample_filter: Sequence[float] = (1, 3, 3, 1),
        flip_weight: bool = True,
    ) -> None:
        in_ch = check_int(in_channels, "in_channels")
        if isinstance(channels, (str, bytes)) or not isinstance(channels, Sequence):
            raise TypeError(f"channels: expected a sequence of integers, got {channels!r}")
        if len(channels) < 2 or len(channels) % 2:
            raise ValueError(
                f"channels: expected an even number (>= 2) of map channels (two per resolution), "
                f"got {len(channels)}: {list(channels)}"
            )
        outs = [check_int(c, "channels") for c in channels]
        check_activation(activation)
        layers = []
        for k, out_ch in enumerate(outs):
            up = 2 if k >= 2 and k % 2 == 0 else 1  # first map of each doubling
            layers.append(
                EqualConv2d(
                    in_ch,
                    out_ch,
                    kernel_size,
                    up=up,
                    activation=activation,
                    lr_mul=lr_mul,
                    resample_filter=resample_filter,
                    flip_weight=flip_weight or up == 1,
                )
            )
            in_ch = out_ch
        super().__init__(layers)
        self.in_channels = check_int(in_channels, "in_channels")
        self.channels: Tuple[int, ...] = tuple(outs)

    @property
    def num_doublings(self) -> int:
        """How many times the maps double in size (``len(channels) // 2 - 1``)."""
        return len(self.channels) // 2 - 1

    def forward(self, base: torch.Tensor) -> List[torch.Tensor]:  # type: ignore[override]
        """``base: [N, in_channels, h, w]`` → the ``len(channels)`` style maps."""
        check_input(base, "base", ndim=4, channels=self.in_channels)
        maps = []
        x = base
        for layer in self:
            x = layer(x)
            maps.append(x)
        return maps

    def extra_repr(self) -> str:
        return f"{self.in_channels}, channels={list(self.channels)}"


class StyleMapSynthesisBlock(nn.Module):
    """Residual ×2 up-sampling block of a StyleMapGAN synthesis network.

    ``y = (conv2(conv1(x, style_in), style_out) + skip(x)) · (1/√2)`` with

    * ``conv1``: :class:`~ganblocks.nn.StyledConv2d` ``in → out``, 3×3, ``up=2``, modulated by
      ``style_in`` at the *input* resolution;
    * ``conv2``: :class:`~ganblocks.nn.StyledConv2d` ``out → out``, 3×3, modulated by
      ``style_out`` at the output resolution;
    * ``skip``: :class:`~ganblocks.nn.EqualConv2d` ``in → out``, 1×1, ``up=2``, no bias, linear.

    Both up-samplings use ``resample_filter``.

    Args:
        in_channels: Channels of ``x``.
        out_channels: Channels of the output.
        style_dim: Channels of the two style maps: an int for both, a pair
            ``(style_in, style_out)``, or ``None`` for ``(in_channels, out_channels)``
            (StyleMapGAN's and OCO-GAN's layout; StyleMapGAN's ``small_generator`` uses one
            ``style_dim``).
        norm: Normalisation of the modulations (``'instance'``, ``'layer'``, ``'batch'``,
            ``'none'``; see :class:`~ganblocks.nn.SpatialModulation`).
        activation: Activation of the two styled convolutions.
        resample_filter: FIR taps of both up-samplings.
        flip_weight: ``False`` convolves instead of correlating in ``conv1`` and ``skip`` (needed
            for StyleMapGAN's weights; the 1×1 skip is the same either way).

    Shapes:
        ``x: [N, in_channels, H, W]``, ``style_in: [N, S_in, H, W]``,
        ``style_out: [N, S_out, 2H, 2W]`` → ``[N, out_channels, 2H, 2W]``.

    Example:
        >>> block = StyleMapSynthesisBlock(16, 8, norm='layer')
        >>> x = torch.randn(2, 16, 4, 4)
        >>> block(x, torch.randn(2, 16, 4, 4), torch.randn(2, 8, 8, 8)).shape
        torch.Size([2, 8, 8, 8])
    """

    def __init__(
        self,
        in_channels: int,
        out_channels: int,
        style_dim: Optional[Union[int, Tuple[int, int]]] = None,
        *,
        norm: str = "instance",
        activation: str = "lrelu",
        resample_filter: Sequence[float] = (1, 3, 3, 1),
        flip_weight: bool = True,
    ) -> None:
        super().__init__()
        self.in_channels = check_int(in_channels, "in_channels")
        self.out_channels = check_int(out_channels, "out_channels")
        if style_dim is None:
            s_in, s_out = self.in_channels, self.out_channels
        elif isinstance(style_dim, (tuple, list)):
            if len(style_dim) != 2:
                raise ValueError(
                    f"style_dim: expected an int or a pair (style_in, style_out), got {style_dim!r}"
                )
            s_in, s_out = (check_int(s, "style_dim") for s in style_dim)
        else:
            s_in = s_out = check_int(style_dim, "style_dim")
        styled = {"norm": norm, "activation": activation}
        self.conv1 = StyledConv2d(
            self.in_channels,
            self.out_channels,
            3,
            s_in,
            up=2,
            resample_filter=resample_filter,
            flip_weight=flip_weight,
            **styled,
        )
        self.conv2 = StyledConv2d(self.out_channels, self.out_channels, 3, s_out, **styled)
        self.skip = EqualConv2d(
            self.in_channels,
            self.out_channels,
            1,
            up=2,
            bias=False,
            resample_filter=resample_filter,
            flip_weight=flip_weight,
        )

    def forward(
        self, x: torch.Tensor, style_in: torch.Tensor, style_out: torch.Tensor
    ) -> torch.Tensor:
        """``x: [N, in, H, W]``, ``style_in`` at ``H × W``, ``style_out`` at ``2H × 2W`` →
        ``[N, out, 2H, 2W]``."""
        main = self.conv2(self.conv1(x, style_in), style_out)
        return (main + self.skip(x)) * _SQRT_HALF

    def extra_repr(self) -> str:
        return f"{self.in_channels}, {self.out_channels}"
