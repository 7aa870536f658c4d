"""StyleGAN2's discriminator block (Karras et al., 2020), in its three architectures.

One resolution of the StyleGAN2 discriminator, as NVlabs' ``DiscriminatorBlock`` computes it:

* ``'resnet'`` (StyleGAN2's default): ``conv0`` (3×3, bias, lrelu·√2) → ``conv1`` (3×3 with FIR
  down-sampling ×2, bias, lrelu·√2), plus a ``skip`` (1×1 with FIR down-sampling ×2, no bias,
  linear), the two summed with both branches scaled by ``√0.5``;
* ``'orig'``: the same without the skip;
* ``'skip'``: ``'orig'``, and every block reads the (down-sampled) image through its own 1×1
  ``fromrgb`` conv, added to the features.

The first block (``in_channels=0``) has no feature input: it reads the image through ``fromrgb``
in every architecture. Down-sampling convolutions filter first (FIR, ``[1, 3, 3, 1]`` by default)
and then convolve with stride 2 (:func:`~ganblocks.ops.conv2d_resample`).
"""

from __future__ import annotations

import math
from typing import Optional, Sequence, Tuple

import torch
from torch import nn

from .checks import check_activation, check_choice, check_input, check_int
from .equalized import EqualConv2d
from .resample import Downsample2d

__all__ = ["DISCRIMINATOR_ARCHITECTURES", "StyleGAN2DiscriminatorBlock"]

#: The ``architecture`` choices of :class:`StyleGAN2DiscriminatorBlock` (NVlabs' names).
DISCRIMINATOR_ARCHITECTURES = ("orig", "skip", "resnet")

_SQRT_HALF = math.sqrt(0.5)


class StyleGAN2DiscriminatorBlock(nn.Module):
    """One resolution of a StyleGAN2 discriminator: [fromRGB] → conv → conv ↓2 (+ skip ↓2).

    ``'resnet'``: ``y = √0.5·skip(x) + √0.5·conv1(conv0(x))`` (the gain ``√0.5`` is applied inside
    each branch, before the clamp, as the original does).

    Args:
        in_channels: Channels of the feature input; ``0`` for the first block, which reads only
            the image.
        tmp_channels: Channels of ``fromrgb``'s output and of ``conv0``.
        out_channels: Channels of the output (``conv1`` and ``skip``).
        img_channels: Channels of the image read by ``fromrgb``.
        architecture: ``'resnet'``, ``'skip'`` or ``'orig'`` (see the module docstring).
        activation: Activation of ``fromrgb``, ``conv0`` and ``conv1`` (with its default gain).
        resample_filter: FIR taps of the down-sampling (``conv1``, ``skip`` and the image).
        conv_clamp: Clamp the convolutions' outputs to ``±conv_clamp`` (``None``: no clamp).
        use_fp16: Compute in float16 on CUDA (unless ``forward(..., force_fp32=True)``);
            otherwise the block computes in the input's dtype promoted to at least float32.
        persistent_filter: Keep the FIR filters in the state dict (as NVlabs' checkpoints do).

    Shapes:
        ``x: [N, in_channels, H, W]`` (``None`` for the first block),
        ``img: [N, img_channels, H, W]`` (``None`` unless read: first block or ``'skip'``) →
        ``(y, img_down)`` with ``y: [N, out_channels, H/2, W/2]`` and, for ``'skip'``,
        ``img_down: [N, img_channels, H/2, W/2]`` for the next block (else ``None``).

    Example:
        >>> first = StyleGAN2DiscriminatorBlock(0, 16, 32)
        >>> x, _ = first(None, torch.randn(2, 3, 32, 32))
        >>> x.shape
        torch.Size([2, 32, 16, 16])
        >>> StyleGAN2DiscriminatorBlock(32, 32, 64)(x, None)[0].shape
        torch.Size([2, 64, 8, 8])
    """

    def __init__(
        self,
        in_channels: int,
        tmp_channels: int,
        out_channels: int,
        *,
        img_channels: int = 3,
        architecture: str = "resnet",
        activation: str = "lrelu",
        resample_filter: Sequence[float] = (1, 3, 3, 1),
        conv_clamp: Optional[float] = None,
        use_fp16: bool = False,
        persistent_filter: bool = False,
    ) -> None:
        super().__init__()
        self.in_channels = check_int(in_channels, "in_channels", minimum=0)
        self.tmp_channels = check_int(tmp_channels, "tmp_channels")
        self.out_channels = check_int(out_channels, "out_channels")
        self.img_channels = check_int(img_channels, "img_channels")
        self.architecture = check_choice(architecture, "architecture", DISCRIMINATOR_ARCHITECTURES)
        check_activation(activation)
        self.use_fp16 = bool(use_fp16)
        keep = bool(persistent_filter)
        conv = {"activation": activation, "conv_clamp": conv_clamp}
        self.fromrgb: Optional[EqualConv2d] = None
        if self.in_channels == 0 or self.architecture == "skip":
            self.fromrgb = EqualConv2d(self.img_channels, self.tmp_channels, 1, **conv)
        self.conv0 = EqualConv2d(self.tmp_channels, self.tmp_channels, 3, **conv)
        self.conv1 = EqualConv2d(
            self.tmp_channels,
            self.out_channels,
            3,
            down=2,
            resample_filter=resample_filter,
            persistent_filter=keep,
            **conv,
        )
        self.skip: Optional[EqualConv2d] = None
        if self.architecture == "resnet":
            self.skip = EqualConv2d(
                self.tmp_channels,
                self.out_channels,
                1,
                bias=False,
                down=2,
                resample_filter=resample_filter,
                persistent_filter=keep,
            )
        # Down-samples the image fed to the next block's fromrgb ('skip' architecture).
        self.downsample = Downsample2d(2, resample_filter=resample_filter, persistent_filter=keep)

    def forward(
        self,
        x: Optional[torch.Tensor],
        img: Optional[torch.Tensor],
        *,
        force_fp32: bool = False,
    ) -> Tuple[torch.Tensor, Optional[torch.Tensor]]:
        """``(x, img)`` → ``(y, img_down)`` (see the class docstring for the shapes)."""
        if x is None and self.in_channels > 0:
            raise ValueError(
                f"x: this block needs features [N, {self.in_channels}, H, W], got None"
            )
        if img is None and self.fromrgb is not None:
            raise ValueError(
                f"img: this block reads the image ({self.architecture!r}, in_channels="
                f"{self.in_channels}): expected [N, {self.img_channels}, H, W], got None"
            )
        like = img if x is None else x
        assert like is not None
        # float16 only on CUDA when asked; otherwise at least float32 (a float16 input from a
        # previous float16 block is promoted, float64 stays float64).
        if self.use_fp16 and like.is_cuda and not force_fp32:
            dtype = torch.float16
        else:
            dtype = torch.promote_types(like.dtype, torch.float32)
        if x is not None:
            x = check_input(x, "x", ndim=4, channels=self.in_channels).to(dtype)
        if self.fromrgb is not None:
            assert img is not None
            img = check_input(img, "img", ndim=4, channels=self.img_channels).to(dtype)
            y = self.fromrgb(img)
            x = y if x is None else x + y
            img = self.downsample(img) if self.architecture == "skip" else None
        assert x is not None
        if self.skip is not None:
            y = self.skip(x, gain=_SQRT_HALF)
            x = y + self.conv1(self.conv0(x), gain=_SQRT_HALF)
        else:
            x = self.conv1(self.conv0(x))
        return x, img

    def extra_repr(self) -> str:
        return (
            f"{self.in_channels}, {self.tmp_channels}, {self.out_channels}, "
            f"architecture={self.architecture!r}"
        )
