"""Style modulation: spatial (per-pixel) modulation of normalised activations, and StyleGAN2's
per-sample weight modulation / demodulation.

* :class:`SpatialModulation` normalises each channel of each image (instance norm, no affine) and
  applies a per-pixel affine transform ``x·γ + β`` whose γ and β are equalised convolutions of a
  *style map* of the same spatial size (StyleMapGAN-style generators).
* :class:`StyledConv2d` is a spatially modulated layer: modulation → equalised conv (optionally
  up-sampling) → fused bias + activation.
* :class:`ModulatedConv2d` / :func:`modulated_conv2d` scale the conv weight per sample by a style
  vector and optionally demodulate it to unit norm (StyleGAN2), computed as one grouped convolution.
"""

from __future__ import annotations

import math
from typing import Optional, Sequence

import torch
import torch.nn.functional as F
from einops import rearrange
from torch import nn

from ganblocks.ops import bias_act, conv2d_resample, setup_filter
from ganblocks.ops._params import Padding

from ._utils import check_activation, check_input, check_int, check_positive_float
from .equalized import EqualConv2d, EqualLinear

__all__ = ["ModulatedConv2d", "SpatialModulation", "StyledConv2d", "modulated_conv2d"]


class SpatialModulation(nn.Module):
    """Instance-normalise ``x``, then modulate it per pixel by a style map: ``x̂·γ + β``.

    ``x̂ = (x - mean_{H,W}(x)) / sqrt(var_{H,W}(x) + eps)`` per image and channel;
    ``[γ; β] = EqualConv2d(style)`` (one convolution producing both, equivalent to two separate
    convolutions), with γ's bias initialised to 1 and β's to 0, so that at initialisation the
    layer is close to a plain instance norm.

    Args:
        num_features: Channels ``C`` of ``x``.
        style_channels: Channels ``S`` of the style map.
        kernel_size: Kernel of the style convolution.
        eps: Added to the variance of the instance norm.

    Shapes:
        ``x: [N, C, H, W]``, ``style: [N, S, H, W]`` → ``[N, C, H, W]``.

    Example:
        >>> mod = SpatialModulation(32, 64)
        >>> mod(torch.randn(2, 32, 16, 16), torch.randn(2, 64, 16, 16)).shape
        torch.Size([2, 32, 16, 16])
    """

    def __init__(
        self, num_features: int, style_channels: int, *, kernel_size: int = 3, eps: float = 1e-5
    ) -> None:
        super().__init__()
        self.num_features = check_int(num_features, "num_features")
        self.style_channels = check_int(style_channels, "style_channels")
        self.eps = check_positive_float(eps, "eps")
        self.affine = EqualConv2d(self.style_channels, 2 * self.num_features, kernel_size)
        self.reset_parameters()

    def reset_parameters(self) -> None:
        """Redraw the style convolution; γ's bias is 1 and β's bias 0."""
        self.affine.reset_parameters()
        with torch.no_grad():
            bias = self.affine.bias
            bias.zero_()
            bias[: self.num_features] = 1.0 / self.affine.bias_gain

    def gamma_beta(self, style: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """The modulation maps ``(γ, β)``, each ``[N, C, H, W]``, of a style ``[N, S, H, W]``."""
        check_input(style, "style", ndim=4, channels=self.style_channels)
        gamma, beta = self.affine(style).chunk(2, dim=1)
        return gamma, beta

    def forward(self, x: torch.Tensor, style: torch.Tensor) -> torch.Tensor:
        """``x: [N, C, H, W]``, ``style: [N, S, H, W]`` → ``[N, C, H, W]``."""
        check_input(x, "x", ndim=4, channels=self.num_features)
        check_input(style, "style", ndim=4, channels=self.style_channels)
        if style.shape[0] != x.shape[0] or style.shape[2:] != x.shape[2:]:
            raise ValueError(
                f"style: expected batch size and spatial size of x, [{x.shape[0]}, "
                f"{self.style_channels}, {x.shape[2]}, {x.shape[3]}], got {tuple(style.shape)}"
            )
        gamma, beta = self.gamma_beta(style)
        x = F.instance_norm(x, eps=self.eps)
        return torch.addcmul(beta, x, gamma)

    def extra_repr(self) -> str:
        return f"{self.num_features}, {self.style_channels}, eps={self.eps:g}"


class StyledConv2d(nn.Module):
    """Spatially modulated conv: :class:`SpatialModulation` → :class:`EqualConv2d` → bias + act.

    The style map has the spatial size of the *input* ``x`` (the modulation precedes the optional
    up-sampling). The convolution is equalised (unit-variance storage, run-time He scaling) and
    its bias and activation are fused through :func:`~ganblocks.ops.bias_act` (``lrelu·√2`` by
    default).

    Args:
        in_channels: Input channels.
        out_channels: Output channels.
        kernel_size: Side of the convolution kernel.
        style_channels: Channels of the style map.
        up: Up-sampling factor of the convolution (transposed conv + FIR ``[1, 3, 3, 1]``).
        activation: Activation of :func:`~ganblocks.ops.bias_act`.

    Shapes:
        ``x: [N, in_channels, H, W]``, ``style: [N, style_channels, H, W]`` →
        ``[N, out_channels, H·up, W·up]``.

    Example:
        >>> layer = StyledConv2d(32, 16, 3, 64, up=2)
        >>> layer(torch.randn(2, 32, 8, 8), torch.randn(2, 64, 8, 8)).shape
        torch.Size([2, 16, 16, 16])
    """

    def __init__(
        self,
        in_channels: int,
        out_channels: int,
        kernel_size: int,
        style_channels: int,
        *,
        up: int = 1,
        activation: str = "lrelu",
    ) -> None:
        super().__init__()
        self.modulation = SpatialModulation(in_channels, style_channels)
        # EqualConv2d fuses the bias and the activation into one bias_act after the convolution.
        self.conv = EqualConv2d(
            in_channels, out_channels, kernel_size, up=up, activation=activation
        )

    def forward(self, x: torch.Tensor, style: torch.Tensor) -> torch.Tensor:
        """``x: [N, in, H, W]``, ``style: [N, style_channels, H, W]`` → ``[N, out, H·up, W·up]``."""
        return self.conv(self.modulation(x, style))


def modulated_conv2d(
    x: torch.Tensor,
    weight: torch.Tensor,
    styles: torch.Tensor,
    *,
    demodulate: bool = True,
    up: int = 1,
    down: int = 1,
    f: Optional[torch.Tensor] = None,
    padding: Padding = 0,
    fused: bool = True,
    eps: float = 1e-8,
    flip_weight: bool = True,
) -> torch.Tensor:
    """Convolve each sample with the weight scaled per input channel by its style (StyleGAN2).

    ``w'[n, o, i] = w[o, i] · s[n, i]``; with ``demodulate``,
    ``w''[n, o, i] = w'[n, o, i] / sqrt(Σ_{i,kh,kw} w'[n, o, i]² + eps)``, so that a unit-variance
    input gives a unit-variance output. ``fused=True`` runs one grouped convolution (the batch
    folded into the groups); ``fused=False`` scales the activations instead of the weights (same
    result, often faster for large batches during training).

    Args:
        x: Input ``[N, I, H, W]``.
        weight: Weight ``[O, I, kh, kw]`` (already scaled as it should be used).
        styles: Per-sample, per-input-channel scales ``[N, I]``.
        demodulate: Normalise each output channel's weight to unit L2 norm per sample.
        up, down, f, padding: As in :func:`~ganblocks.ops.conv2d_resample`.
        fused: Grouped-convolution route (``True``) or activation-scaling route (``False``).
        eps: Added to the squared norm before the reciprocal square root (with float16 inputs and
            ``demodulate``, weight and styles are first divided by their maxima, which leaves the
            result unchanged up to ``eps`` and keeps float16 from overflowing).
        flip_weight: ``True`` correlates with the weight (as ``torch.nn.functional.conv2d``),
            ``False`` convolves (see :func:`~ganblocks.ops.conv2d_resample`).

    Returns:
        ``[N, O, H_out, W_out]`` as for :func:`~ganblocks.ops.conv2d_resample`.

    Example:
        >>> x, w = torch.randn(2, 8, 16, 16), torch.randn(4, 8, 3, 3)
        >>> modulated_conv2d(x, w, torch.ones(2, 8), padding=1).shape
        torch.Size([2, 4, 16, 16])
    """
    check_input(x, "x", ndim=4)
    check_input(weight, "weight", ndim=4, channels=x.shape[1])
    n = x.shape[0]
    if not isinstance(styles, torch.Tensor) or tuple(styles.shape) != (n, x.shape[1]):
        shape = tuple(styles.shape) if isinstance(styles, torch.Tensor) else type(styles).__name__
        raise ValueError(f"styles: expected shape [{n}, {x.shape[1]}] ([N, I]), got {shape}")
    if demodulate and x.dtype == torch.float16:
        # Demodulation makes the result invariant to a per-output-channel scale of the weight and
        # a per-sample scale of the styles: divide both by their maxima first so that the float16
        # products and squared norms cannot overflow (as StyleGAN2 does).
        weight = weight / weight.detach().abs().amax(dim=[1, 2, 3], keepdim=True).clamp_min(1e-8)
        styles = styles / styles.detach().abs().amax(dim=1, keepdim=True).clamp_min(1e-8)
        weight = weight / math.sqrt(weight[0].numel())
    weight = weight.to(x.dtype)
    styles = styles.to(x.dtype)
    conv = {"up": up, "down": down, "padding": padding, "flip_weight": flip_weight}

    if not fused:
        x = x * rearrange(styles, "n i -> n i 1 1")
        y = conv2d_resample(x, weight, f, **conv)
        if demodulate:
            # Σ_{i,k} (w[o,i,k] s[n,i])² = Σ_i s[n,i]² · Σ_k w[o,i,k]²
            dcoefs = torch.rsqrt(styles.square() @ weight.square().sum(dim=[2, 3]).T + eps)
            y = y * rearrange(dcoefs, "n o -> n o 1 1")
        return y

    w = weight.unsqueeze(0) * rearrange(styles, "n i -> n 1 i 1 1")  # [N, O, I, kh, kw]
    if demodulate:
        w = w * torch.rsqrt(w.square().sum(dim=[2, 3, 4], keepdim=True) + eps)
    y = conv2d_resample(
        rearrange(x, "n i h w -> 1 (n i) h w"),
        rearrange(w, "n o i kh kw -> (n o) i kh kw"),
        f,
        groups=n,
        **conv,
    )
    return rearrange(y, "1 (n o) h w -> n o h w", n=n)


class ModulatedConv2d(nn.Module):
    """StyleGAN2 modulated convolution with an equalised weight and a learned style affine.

    A style vector ``w: [N, style_dim]`` goes through an :class:`EqualLinear` (bias initialised to
    1) to per-input-channel scales ``s: [N, I]``, which modulate the equalised weight per sample;
    with ``demodulate`` each output channel's weight is renormalised (see
    :func:`modulated_conv2d`). Then bias and activation, fused through
    :func:`~ganblocks.ops.bias_act`. Noise injection, if wanted, goes before the bias: build with
    ``bias=False`` and apply :func:`~ganblocks.ops.bias_act` yourself.

    Args:
        in_channels: Input channels ``I``.
        out_channels: Output channels ``O``.
        kernel_size: Side of the square kernel.
        style_dim: Size of the style vector.
        demodulate: Weight demodulation.
        up: Up-sampling factor (transposed conv + FIR).
        down: Down-sampling factor (FIR + strided conv).
        resample_filter: FIR taps for up/down-sampling.
        bias: Whether the layer has a bias (initialised to 0).
        activation: Activation of :func:`~ganblocks.ops.bias_act`.
        fused: Grouped-convolution route (``True``) or activation-scaling route (``False``).
        flip_weight: Correlate (``True``) or convolve (``False``) with the weight; StyleGAN2's
            up-sampling layers convolve (``flip_weight=False``), which matters when loading them.
        persistent_filter: Keep the FIR filter of a resampling layer in the state dict.

    Shapes:
        ``x: [N, I, H, W]``, ``style: [N, style_dim]`` → ``[N, O, H·up/down, W·up/down]``.

    Example:
        >>> conv = ModulatedConv2d(32, 16, 3, 512, up=2)
        >>> conv(torch.randn(4, 32, 8, 8), torch.randn(4, 512)).shape
        torch.Size([4, 16, 16, 16])
    """

    def __init__(
        self,
        in_channels: int,
        out_channels: int,
        kernel_size: int,
        style_dim: int,
        *,
        demodulate: bool = True,
        up: int = 1,
        down: int = 1,
        resample_filter: Sequence[float] = (1, 3, 3, 1),
        bias: bool = True,
        activation: str = "linear",
        fused: bool = True,
        flip_weight: bool = True,
        persistent_filter: bool = False,
    ) -> None:
        super().__init__()
        self.flip_weight = bool(flip_weight)
        self.in_channels = check_int(in_channels, "in_channels")
        self.out_channels = check_int(out_channels, "out_channels")
        self.kernel_size = check_int(kernel_size, "kernel_size")
        self.style_dim = check_int(style_dim, "style_dim")
        self.up = check_int(up, "up")
        self.down = check_int(down, "down")
        self.activation = check_activation(activation)
        self.demodulate = bool(demodulate)
        self.fused = bool(fused)
        self.padding = self.kernel_size // 2
        self.weight_gain = 1.0 / math.sqrt(self.in_channels * self.kernel_size**2)
        self.affine = EqualLinear(self.style_dim, self.in_channels, bias_init=1.0)
        k = self.kernel_size
        self.weight = nn.Parameter(torch.randn(self.out_channels, self.in_channels, k, k))
        self.bias = nn.Parameter(torch.zeros(self.out_channels)) if bias else None
        resamples = self.up > 1 or self.down > 1
        self.register_buffer(
            "resample_filter",
            setup_filter(resample_filter) if resamples else None,
            persistent=bool(persistent_filter),
        )

    def forward(self, x: torch.Tensor, style: torch.Tensor) -> torch.Tensor:
        """``x: [N, I, H, W]``, ``style: [N, style_dim]`` → ``[N, O, H·up/down, W·up/down]``."""
        check_input(x, "x", ndim=4, channels=self.in_channels)
        check_input(style, "style", ndim=2, channels=self.style_dim)
        if style.shape[0] != x.shape[0]:
            raise ValueError(
                f"style: expected batch size {x.shape[0]} (that of x), got {tuple(style.shape)}"
            )
        y = modulated_conv2d(
            x,
            self.weight * self.weight_gain,
            self.affine(style),
            demodulate=self.demodulate,
            up=self.up,
            down=self.down,
            f=self.resample_filter,
            padding=self.padding,
            fused=self.fused,
            flip_weight=self.flip_weight,
        )
        if self.bias is None and self.activation == "linear":
            return y
        return bias_act(y, self.bias, act=self.activation)

    def extra_repr(self) -> str:
        s = (
            f"{self.in_channels}, {self.out_channels}, kernel_size={self.kernel_size}, "
            f"style_dim={self.style_dim}, demodulate={self.demodulate}"
        )
        if self.up > 1:
            s += f", up={self.up}"
        if self.down > 1:
            s += f", down={self.down}"
        return s
