"""Equalised-learning-rate layers (Karras et al., ProGAN / StyleGAN) and pixel normalisation.

Equalised learning rate keeps every weight at unit scale in storage and applies the He
initialisation constant at *run time*:

* the stored weight is drawn from ``N(0, 1) / lr_mul``;
* the forward pass uses ``weight * weight_gain`` with ``weight_gain = lr_mul / sqrt(fan_in)``;
* the stored bias is ``bias_init / lr_mul`` and the forward pass uses ``bias * lr_mul``
  (so ``bias_init`` is given in real units).

With Adam, whose step on the stored weight is about ``lr`` whatever the gradient's scale, the
effective weight moves by about ``lr * weight_gain``: relative to its initial scale
``1 / sqrt(fan_in)`` that is ``lr * lr_mul`` for every layer, regardless of its fan-in (the
mapping networks use ``lr_mul = 0.01`` to learn 100 times slower). With plain SGD of learning rate
``lr`` the effective weight moves by ``-lr * weight_gain**2 * dL/dW_eff``, i.e. ``lr_mul**2`` times
the step the same layer takes with ``lr_mul = 1`` (the same holds for the bias, whose gain is
``lr_mul``). Since the scaling lives in the forward pass, state dicts hold plain tensors.

Bias and activation go through :func:`~ganblocks.ops.bias_act`, so the activation's default gain
applies (``sqrt(2)`` for ``lrelu``), which keeps the signal's second moment roughly constant.
"""

from __future__ import annotations

import math
from typing import Optional, Sequence

import torch
import torch.nn.functional as F
from torch import nn

from ganblocks.ops import (
    ACTIVATIONS,
    Padding,
    bias_act,
    conv2d_resample,
    parse_padding,
    setup_filter,
)

from .checks import check_activation, check_input, check_int, check_positive_float

__all__ = ["EqualConv2d", "EqualLinear", "PixelNorm"]


class _Equalized(nn.Module):
    """Storage and initialisation shared by the equalised layers (see the module docstring)."""

    weight: nn.Parameter
    bias: Optional[nn.Parameter]
    lr_mul: float
    bias_init: float
    weight_gain: float

    def reset_parameters(self) -> None:
        """Redraw the weight from ``N(0, 1) / lr_mul`` and set the bias to ``bias_init``."""
        with torch.no_grad():
            self.weight.normal_().div_(self.lr_mul)
            if self.bias is not None:
                self.bias.fill_(self.bias_init / self.lr_mul)

    def effective_weight(self) -> torch.Tensor:
        """The weight the layer uses, ``weight * weight_gain`` (shaped like ``weight``)."""
        return self.weight * self.weight_gain


class EqualLinear(_Equalized):
    """Fully connected layer with equalised learning rate, fused bias and activation.

    ``y = bias_act(x @ (weight * weight_gain).T, bias * lr_mul, act=activation)``

    Args:
        in_features: Size of the last input dimension.
        out_features: Size of the last output dimension.
        bias: Whether the layer has a bias.
        bias_init: Initial value of the (effective) bias, in real units.
        lr_mul: Learning-rate multiplier (see the module docstring).
        activation: Activation of :func:`~ganblocks.ops.bias_act`, with its default gain.

    Shapes:
        ``x: [*, in_features]`` → ``[*, out_features]``.

    Attributes:
        weight_gain: ``lr_mul / sqrt(in_features)``; the effective weight is
            ``weight * weight_gain``.
        bias_gain: ``lr_mul``; the effective bias is ``bias * bias_gain``.

    Example:
        >>> layer = EqualLinear(64, 32, activation='lrelu', lr_mul=0.01)
        >>> layer(torch.randn(8, 64)).shape
        torch.Size([8, 32])
    """

    def __init__(
        self,
        in_features: int,
        out_features: int,
        *,
        bias: bool = True,
        bias_init: float = 0.0,
        lr_mul: float = 1.0,
        activation: str = "linear",
    ) -> None:
        super().__init__()
        self.in_features = check_int(in_features, "in_features")
        self.out_features = check_int(out_features, "out_features")
        self.lr_mul = check_positive_float(lr_mul, "lr_mul")
        self.activation = check_activation(activation)
        self.bias_init = float(bias_init)
        self.weight_gain = self.lr_mul / math.sqrt(self.in_features)
        self.bias_gain = self.lr_mul
        self.weight = nn.Parameter(torch.empty(self.out_features, self.in_features))
        self.bias = nn.Parameter(torch.empty(self.out_features)) if bias else None
        self.reset_parameters()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """``x: [*, in_features]`` → ``[*, out_features]``."""
        if not isinstance(x, torch.Tensor) or x.ndim < 1 or x.shape[-1] != self.in_features:
            shape = tuple(x.shape) if isinstance(x, torch.Tensor) else type(x).__name__
            raise ValueError(f"x: expected a tensor [*, {self.in_features}], got {shape}")
        w = self.weight.to(x.dtype) * self.weight_gain
        b = None if self.bias is None else self.bias.to(x.dtype) * self.bias_gain
        if self.activation == "linear":
            return F.linear(x, w, b)  # identical to bias_act(..., act='linear'), one fused op
        return bias_act(F.linear(x, w), b, dim=x.ndim - 1, act=self.activation)

    def extra_repr(self) -> str:
        return (
            f"{self.in_features}, {self.out_features}, bias={self.bias is not None}, "
            f"lr_mul={self.lr_mul:g}, activation={self.activation!r}"
        )


class EqualConv2d(_Equalized):
    """2-D convolution with equalised learning rate, optional FIR up/down-sampling, fused bias+act.

    ``y = bias_act(conv2d_resample(x, weight * weight_gain, f, up, down, padding), bias * lr_mul)``

    Up-sampling is a transposed convolution of stride ``up`` followed by the FIR filter;
    down-sampling is the FIR filter followed by a strided convolution (see
    :func:`~ganblocks.ops.conv2d_resample`).
    With the default padding an odd ``kernel_size`` maps ``H × W`` to ``H·up/down × W·up/down``.

    Args:
        in_channels: Input channels.
        out_channels: Output channels.
        kernel_size: Side of the square kernel.
        bias: Whether the layer has a bias.
        lr_mul: Learning-rate multiplier (see the module docstring).
        activation: Activation of :func:`~ganblocks.ops.bias_act`, with its default gain.
        up: Integer up-sampling factor (applied before the convolution).
        down: Integer down-sampling factor (applied after the convolution).
        resample_filter: FIR taps for up/down-sampling (see :func:`~ganblocks.ops.setup_filter`).
        dilation: Kernel dilation.
        padding: ``int | [px, py] | [x0, x1, y0, y1]`` measured on the up-sampled grid; ``None`` is
            ``dilation * (kernel_size // 2)``.
        bias_init: Initial value of the (effective) bias, in real units.
        conv_clamp: Clamp the output (after bias, activation and gain) to ``±conv_clamp``; ``None``
            disables it (StyleGAN2 uses 256 to keep float16 activations finite).
        persistent_filter: Keep the FIR filter of a resampling layer in the state dict (as
            StyleGAN2's checkpoints do, so a stored, possibly non-default filter is loaded too).
        flip_weight: ``True`` (default) correlates with the weight, as
            ``torch.nn.functional.conv2d`` does; ``False`` convolves (the kernel flipped). It
            matters only for kernels wider than 1 and decides what a stored weight means:
            StyleGAN2 (NVlabs) and rosinality-lineage code (StyleGAN2-pytorch, StyleMapGAN) run
            their up-sampling convolutions as ``conv_transpose2d`` with the *unflipped* weight,
            which is ``flip_weight=False`` here (see :func:`~ganblocks.ops.conv2d_resample`).

    Shapes:
        ``x: [N, in_channels, H, W]`` → ``[N, out_channels, H·up/down, W·up/down]``.

    Attributes:
        weight_gain: ``lr_mul / sqrt(in_channels · kernel_size²)``.
        bias_gain: ``lr_mul``.

    Example:
        >>> conv = EqualConv2d(16, 32, 3, activation='lrelu', up=2)
        >>> conv(torch.randn(2, 16, 8, 8)).shape
        torch.Size([2, 32, 16, 16])
        >>> EqualConv2d(16, 8, 3, down=2)(torch.randn(2, 16, 8, 8)).shape
        torch.Size([2, 8, 4, 4])
    """

    def __init__(
        self,
        in_channels: int,
        out_channels: int,
        kernel_size: int,
        *,
        bias: bool = True,
        lr_mul: float = 1.0,
        activation: str = "linear",
        up: int = 1,
        down: int = 1,
        resample_filter: Sequence[float] = (1, 3, 3, 1),
        dilation: int = 1,
        padding: Optional[Padding] = None,
        bias_init: float = 0.0,
        conv_clamp: Optional[float] = None,
        persistent_filter: bool = False,
        flip_weight: bool = True,
    ) -> None:
        super().__init__()
        if not isinstance(flip_weight, bool):
            raise TypeError(f"flip_weight: expected a bool, got {flip_weight!r}")
        self.flip_weight = flip_weight
        self.conv_clamp = (
            None if conv_clamp is None else check_positive_float(conv_clamp, "conv_clamp")
        )
        self.in_channels = check_int(in_channels, "in_channels")
        self.out_channels = check_int(out_channels, "out_channels")
        self.kernel_size = check_int(kernel_size, "kernel_size")
        self.lr_mul = check_positive_float(lr_mul, "lr_mul")
        self.activation = check_activation(activation)
        self.up = check_int(up, "up")
        self.down = check_int(down, "down")
        self.dilation = check_int(dilation, "dilation")
        if padding is None:
            padding = self.dilation * (self.kernel_size // 2)
        self.padding = parse_padding(padding)
        self.bias_init = float(bias_init)
        self.weight_gain = self.lr_mul / math.sqrt(self.in_channels * self.kernel_size**2)
        self.bias_gain = self.lr_mul
        k = self.kernel_size
        self.weight = nn.Parameter(torch.empty(self.out_channels, self.in_channels, k, k))
        self.bias = nn.Parameter(torch.empty(self.out_channels)) if bias else None
        # The FIR filter is a constant derived from the constructor arguments: kept out of the
        # state dict unless asked, so checkpoints hold only weights and biases.
        resamples = self.up > 1 or self.down > 1
        self.register_buffer(
            "resample_filter",
            setup_filter(resample_filter) if resamples else None,
            persistent=bool(persistent_filter),
        )
        self.reset_parameters()

    def _conv(self, x: torch.Tensor) -> torch.Tensor:
        w = self.weight.to(x.dtype) * self.weight_gain
        px0, px1, py0, py1 = self.padding
        if self.dilation > 1:
            if self.up == 1 and self.down == 1 and px0 == px1 >= 0 and py0 == py1 >= 0:
                if not self.flip_weight:
                    w = w.flip([2, 3])  # convolution = correlation with the flipped kernel
                return F.conv2d(x, w, padding=(py0, px0), dilation=self.dilation)
            # Dilated kernel written as a sparse dense kernel, so any resampling route applies.
            d, k = self.dilation, self.kernel_size
            dense = w.new_zeros(*w.shape[:2], (k - 1) * d + 1, (k - 1) * d + 1)
            dense[:, :, ::d, ::d] = w
            w = dense
        return conv2d_resample(
            x,
            w,
            self.resample_filter,
            up=self.up,
            down=self.down,
            padding=list(self.padding),
            flip_weight=self.flip_weight,
        )

    def forward(self, x: torch.Tensor, *, gain: float = 1.0) -> torch.Tensor:
        """``x: [N, in_channels, H, W]`` → ``[N, out_channels, H·up/down, W·up/down]``.

        ``gain`` multiplies the output (and the clamp), e.g. ``sqrt(0.5)`` on both branches of a
        residual sum.
        """
        check_input(x, "x", ndim=4, channels=self.in_channels)
        y = self._conv(x)
        b = None if self.bias is None else self.bias.to(x.dtype) * self.bias_gain
        if b is None and self.activation == "linear" and gain == 1 and self.conv_clamp is None:
            return y
        act_gain = ACTIVATIONS[self.activation].def_gain * gain
        clamp = None if self.conv_clamp is None else self.conv_clamp * gain
        return bias_act(y, b, act=self.activation, gain=act_gain, clamp=clamp)

    def extra_repr(self) -> str:
        s = (
            f"{self.in_channels}, {self.out_channels}, kernel_size={self.kernel_size}, "
            f"bias={self.bias is not None}, lr_mul={self.lr_mul:g}, "
            f"activation={self.activation!r}"
        )
        if self.up > 1:
            s += f", up={self.up}"
        if self.down > 1:
            s += f", down={self.down}"
        if self.dilation > 1:
            s += f", dilation={self.dilation}"
        if self.conv_clamp is not None:
            s += f", conv_clamp={self.conv_clamp:g}"
        if not self.flip_weight:
            s += ", flip_weight=False"
        return s


class PixelNorm(nn.Module):
    """Normalise each feature vector to unit root-mean-square (ProGAN's pixelwise normalisation).

    ``y = x / sqrt(mean(x², dim) + eps)``

    Args:
        dim: Dimension holding the features (1 for ``[N, C]`` latents and ``[N, C, H, W]`` maps).
        eps: Added to the mean square.

    Shapes:
        ``x: [N, C, *]`` → same shape.

    Example:
        >>> y = PixelNorm()(torch.randn(4, 64))
        >>> torch.allclose(y.square().mean(1), torch.ones(4), atol=1e-5)
        True
    """

    def __init__(self, *, dim: int = 1, eps: float = 1e-8) -> None:
        super().__init__()
        self.dim = check_int(dim, "dim", minimum=-(2**31))
        self.eps = float(eps)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """``x: [N, C, *]`` → same shape, unit root-mean-square along ``dim``."""
        if not isinstance(x, torch.Tensor) or not x.is_floating_point():
            raise TypeError(f"x: expected a floating-point tensor, got {type(x).__name__}")
        if not -x.ndim <= self.dim < x.ndim:
            raise ValueError(
                f"x: expected a tensor with a dimension {self.dim}, got shape {tuple(x.shape)}"
            )
        return x * torch.rsqrt(x.square().mean(dim=self.dim, keepdim=True) + self.eps)

    def extra_repr(self) -> str:
        return f"dim={self.dim}, eps={self.eps:g}"
