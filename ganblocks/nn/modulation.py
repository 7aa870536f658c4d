"""Style modulation: spatial (per-pixel) modulation of normalised activations, and StyleGAN2's
per-sample weight modulation / demodulation.

* :class:`SpatialModulation` normalises ``x`` (instance norm by default; layer norm, batch norm or
  none on request, the normalisation modes of StyleMapGAN) and applies a per-pixel affine transform
  ``x̂·γ + β`` whose γ and β are equalised convolutions of a *style map* of the same spatial size
  (StyleMapGAN-style generators).
* :class:`StyledConv2d` is a spatially modulated layer: modulation → equalised conv (optionally
  up-sampling) → fused bias + activation (· gain).
* :class:`ModulatedConv2d` / :func:`modulated_conv2d` scale the conv weight per sample by a style
  vector and optionally demodulate it to unit norm (StyleGAN2), computed as one grouped convolution.

Every block names the size of its style ``style_dim`` (channels of a style map, or length of a
style vector); the older ``style_channels`` keyword of :class:`SpatialModulation` and
:class:`StyledConv2d` still works and warns (``DeprecationWarning``).
"""

from __future__ import annotations

import math
from typing import Optional, Sequence

import torch
import torch.nn.functional as F
from einops import rearrange
from torch import nn

from ganblocks.ops import Padding, bias_act, conv2d_resample, setup_filter

from ._utils import renamed_keyword
from .checks import check_activation, check_choice, check_input, check_int, check_positive_float
from .equalized import EqualConv2d, EqualLinear

__all__ = [
    "NORMALIZATIONS",
    "ModulatedConv2d",
    "SpatialModulation",
    "StyledConv2d",
    "modulated_conv2d",
]

#: The ``norm`` choices of :class:`SpatialModulation` (StyleMapGAN's ``normalize_mode``
#: ``'InstanceNorm2d'``, ``'LayerNorm'``, ``'BatchNorm2d'`` and ``None``).
NORMALIZATIONS = ("instance", "layer", "batch", "none")


class SpatialModulation(nn.Module):
    """Normalise ``x``, then modulate it per pixel by a style map: ``x̂·γ + β``.

    ``x̂`` depends on ``norm`` (no learned affine in any of them; biased variances, ``eps`` added):

    * ``'instance'`` (default): ``(x - mean_{H,W}(x)) / sqrt(var_{H,W}(x) + eps)`` per image and
      channel (``InstanceNorm2d`` in StyleMapGAN, and OCO-GAN);
    * ``'layer'``: the same over ``C, H, W`` per image (``LayerNorm``, StyleMapGAN's default);
    * ``'batch'``: the same over ``N, H, W`` per channel in training, running statistics in
      ``eval()`` mode (``BatchNorm2d``; the statistics live in the submodule ``batch_norm``);
    * ``'none'``: ``x̂ = x``.

    ``[γ; β] = EqualConv2d(style)`` (one convolution producing both, equivalent to two separate
    convolutions: γ's are the first ``C`` output channels), with γ's bias initialised to 1 and β's
    to 0, so that at initialisation the layer is close to the plain normalisation.

    Args:
        num_features: Channels ``C`` of ``x``.
        style_dim: Channels ``S`` of the style map (formerly ``style_channels``, still accepted
            with a ``DeprecationWarning``).
        kernel_size: Kernel of the style convolution.
        eps: Added to the variance of the normalisation.
        norm: One of :data:`NORMALIZATIONS`.

    Shapes:
        ``x: [N, C, H, W]``, ``style: [N, S, H, W]`` → ``[N, C, H, W]``.

    Example:
        >>> mod = SpatialModulation(32, 64)
        >>> mod(torch.randn(2, 32, 16, 16), torch.randn(2, 64, 16, 16)).shape
        torch.Size([2, 32, 16, 16])
        >>> layer_norm = SpatialModulation(32, 64, norm='layer')
        >>> y = layer_norm(torch.randn(2, 32, 8, 8), torch.zeros(2, 64, 8, 8))  # γ = 1, β = 0
        >>> torch.allclose(y.mean(dim=(1, 2, 3)), torch.zeros(2), atol=1e-5)
        True
    """

    @renamed_keyword("style_channels", "style_dim")
    def __init__(
        self,
        num_features: int,
        style_dim: int,
        *,
        kernel_size: int = 3,
        eps: float = 1e-5,
        norm: str = "instance",
    ) -> None:
        super().__init__()
        self.num_features = check_int(num_features, "num_features")
        self.style_dim = check_int(style_dim, "style_dim")
        self.eps = check_positive_float(eps, "eps")
        self.norm = check_choice(norm, "norm", NORMALIZATIONS)
        self.affine = EqualConv2d(self.style_dim, 2 * self.num_features, kernel_size)
        if self.norm == "batch":
            self.batch_norm = nn.BatchNorm2d(self.num_features, eps=self.eps, affine=False)
        self.reset_parameters()

    @property
    def style_channels(self) -> int:
        """Deprecated name of :attr:`style_dim`."""
        return self.style_dim

    def reset_parameters(self) -> None:
        """Redraw the style convolution; γ's bias is 1 and β's bias 0."""
        self.affine.reset_parameters()
        with torch.no_grad():
            bias = self.affine.bias
            bias.zero_()
            bias[: self.num_features] = 1.0 / self.affine.bias_gain

    def gamma_beta(self, style: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """The modulation maps ``(γ, β)``, each ``[N, C, H, W]``, of a style ``[N, S, H, W]``."""
        check_input(style, "style", ndim=4, channels=self.style_dim)
        gamma, beta = self.affine(style).chunk(2, dim=1)
        return gamma, beta

    def normalize(self, x: torch.Tensor) -> torch.Tensor:
        """``x̂``, the normalised ``x: [N, C, H, W]`` (see the class docstring)."""
        if self.norm == "instance":
            return F.instance_norm(x, eps=self.eps)
        if self.norm == "layer":
            return F.layer_norm(x, x.shape[1:], eps=self.eps)
        if self.norm == "batch":
            return self.batch_norm(x)
        return x

    def forward(self, x: torch.Tensor, style: torch.Tensor) -> torch.Tensor:
        """``x: [N, C, H, W]``, ``style: [N, S, H, W]`` → ``[N, C, H, W]``."""
        check_input(x, "x", ndim=4, channels=self.num_features)
        check_input(style, "style", ndim=4, channels=self.style_dim)
        if style.shape[0] != x.shape[0] or style.shape[2:] != x.shape[2:]:
            raise ValueError(
                f"style: expected batch size and spatial size of x, [{x.shape[0]}, "
                f"{self.style_dim}, {x.shape[2]}, {x.shape[3]}], got {tuple(style.shape)}"
            )
        gamma, beta = self.gamma_beta(style)
        return torch.addcmul(beta, self.normalize(x), gamma)

    def extra_repr(self) -> str:
        s = f"{self.num_features}, {self.style_dim}, eps={self.eps:g}"
        return s if self.norm == "instance" else s + f", norm={self.norm!r}"


class StyledConv2d(nn.Module):
    """Spatially modulated conv: :class:`SpatialModulation` → :class:`EqualConv2d` → bias + act.

    ``y = bias_act(conv(x̂·γ + β), bias, act=activation, gain=def_gain · gain)``.

    The style map has the spatial size of the *input* ``x`` (the modulation precedes the optional
    up-sampling). The convolution is equalised (unit-variance storage, run-time He scaling) and
    its bias and activation are fused through :func:`~ganblocks.ops.bias_act` (``lrelu·√2`` by
    default), then multiplied by ``gain``.

    Args:
        in_channels: Input channels.
        out_channels: Output channels.
        kernel_size: Side of the convolution kernel.
        style_dim: Channels of the style map (formerly ``style_channels``, still accepted with a
            ``DeprecationWarning``).
        up: Up-sampling factor of the convolution (transposed conv + FIR ``resample_filter``).
        activation: Activation of :func:`~ganblocks.ops.bias_act`.
        norm: Normalisation of the modulation (see :class:`SpatialModulation`).
        gain: Multiplies the output (after the activation and its own gain), e.g. ``sqrt(0.5)``
            on a branch of a residual sum; :meth:`forward`'s ``gain`` multiplies it again.
        resample_filter: FIR taps of the up-sampling (see :func:`~ganblocks.ops.setup_filter`).
        flip_weight: ``False`` convolves instead of correlating (see :class:`EqualConv2d`);
            StyleMapGAN's up-sampling convolutions need ``False`` to load their weights.
        style_kernel_size: Kernel of the style convolution producing γ and β.
        eps: Added to the variance of the normalisation.

    Shapes:
        ``x: [N, in_channels, H, W]``, ``style: [N, style_dim, H, W]`` →
        ``[N, out_channels, H·up, W·up]``.

    Example:
        >>> layer = StyledConv2d(32, 16, 3, 64, up=2)
        >>> layer(torch.randn(2, 32, 8, 8), torch.randn(2, 64, 8, 8)).shape
        torch.Size([2, 16, 16, 16])
        >>> stylemapgan = StyledConv2d(32, 16, 3, 64, up=2, norm='layer', flip_weight=False)
        >>> stylemapgan(torch.randn(2, 32, 8, 8), torch.randn(2, 64, 8, 8)).shape
        torch.Size([2, 16, 16, 16])
    """

    @renamed_keyword("style_channels", "style_dim")
    def __init__(
        self,
        in_channels: int,
        out_channels: int,
        kernel_size: int,
        style_dim: int,
        *,
        up: int = 1,
        activation: str = "lrelu",
        norm: str = "instance",
        gain: float = 1.0,
        resample_filter: Sequence[float] = (1, 3, 3, 1),
        flip_weight: bool = True,
        style_kernel_size: int = 3,
        eps: float = 1e-5,
    ) -> None:
        super().__init__()
        self.gain = check_positive_float(gain, "gain")
        self.modulation = SpatialModulation(
            in_channels, style_dim, kernel_size=style_kernel_size, eps=eps, norm=norm
        )
        # EqualConv2d fuses the bias and the activation into one bias_act after the convolution.
        self.conv = EqualConv2d(
            in_channels,
            out_channels,
            kernel_size,
            up=up,
            activation=activation,
            resample_filter=resample_filter,
            flip_weight=flip_weight,
        )

    @property
    def style_dim(self) -> int:
        """Channels of the style map."""
        return self.modulation.style_dim

    @property
    def style_channels(self) -> int:
        """Deprecated name of :attr:`style_dim`."""
        return self.modulation.style_dim

    def forward(self, x: torch.Tensor, style: torch.Tensor, *, gain: float = 1.0) -> torch.Tensor:
        """``x: [N, in, H, W]``, ``style: [N, style_dim, H, W]`` → ``[N, out, H·up, W·up]``.

        ``gain`` multiplies the output on top of the constructor's ``gain``.
        """
        return self.conv(self.modulation(x, style), gain=self.gain * gain)

    def extra_repr(self) -> str:
        return "" if self.gain == 1 else f"gain={self.gain:g}"


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
