"""Mapping networks: latent ``z`` → style vector ``w`` (StyleGAN) or style map (StyleMapGAN).

Both normalise ``z`` with :class:`~ganblocks.nn.PixelNorm` and then apply a stack of equalised
linear layers with ``lrelu·√2`` and a small learning-rate multiplier (0.01 by default), so the
mapping learns two orders of magnitude slower than the rest of the generator.
"""

from __future__ import annotations

from typing import Optional, Sequence, Union

import torch
from einops import rearrange
from torch import nn

from ._utils import renamed_keyword
from .checks import check_input, check_int, check_pair
from .equalized import EqualLinear, PixelNorm

__all__ = ["MappingNetwork", "StyleMapMapping"]


def _mlp(dims: Sequence[int], lr_mul: float) -> nn.Sequential:
    return nn.Sequential(
        *[
            EqualLinear(d_in, d_out, lr_mul=lr_mul, activation="lrelu")
            for d_in, d_out in zip(dims[:-1], dims[1:])
        ]
    )


class MappingNetwork(nn.Module):
    """StyleGAN mapping network: PixelNorm, then ``num_layers`` equalised linear layers + lrelu.

    With ``c_dim > 0`` the network is conditional (StyleGAN2-ADA): a label ``c`` goes through a
    linear embedding (``embed``, ``c_dim → embed_features``), is normalised with PixelNorm like
    ``z`` and concatenated after it. ``z_dim = 0`` gives a label-only network (the projection
    discriminator's label mapping).

    Args:
        z_dim: Size of the latent ``z`` (0 = no latent; then ``c_dim`` must be positive).
        w_dim: Size of the style vector ``w`` (also the hidden width unless ``hidden_dim``).
        num_layers: Number of linear layers (at least 1).
        lr_mul: Learning-rate multiplier of every layer (not of the label embedding).
        hidden_dim: Width of the hidden layers; ``None`` is ``w_dim``.
        c_dim: Size of the conditioning label ``c`` (0 = unconditional).
        embed_features: Width of the label embedding; ``None`` is ``w_dim``.

    Shapes:
        ``z: [N, z_dim]``, ``c: [N, c_dim]`` (only when ``c_dim > 0``) → ``[N, w_dim]``.

    Example:
        >>> MappingNetwork(64, 128, num_layers=4)(torch.randn(8, 64)).shape
        torch.Size([8, 128])
        >>> net = MappingNetwork(64, 128, num_layers=2, c_dim=10)
        >>> net(torch.randn(8, 64), torch.eye(10)[:8]).shape
        torch.Size([8, 128])
    """

    def __init__(
        self,
        z_dim: int,
        w_dim: int,
        *,
        num_layers: int = 8,
        lr_mul: float = 0.01,
        hidden_dim: Optional[int] = None,
        c_dim: int = 0,
        embed_features: Optional[int] = None,
    ) -> None:
        super().__init__()
        self.z_dim = check_int(z_dim, "z_dim", minimum=0)
        self.c_dim = check_int(c_dim, "c_dim", minimum=0)
        if self.z_dim == 0 and self.c_dim == 0:
            raise ValueError("z_dim: expected z_dim > 0 or c_dim > 0, got both 0")
        self.w_dim = check_int(w_dim, "w_dim")
        self.num_layers = check_int(num_layers, "num_layers")
        hidden = self.w_dim if hidden_dim is None else check_int(hidden_dim, "hidden_dim")
        embed = 0
        self.embed: Optional[EqualLinear] = None
        if self.c_dim > 0:
            embed = self.w_dim if embed_features is None else check_int(
                embed_features, "embed_features"
            )
            self.embed = EqualLinear(self.c_dim, embed)
        dims = [self.z_dim + embed] + [hidden] * (self.num_layers - 1) + [self.w_dim]
        self.norm = PixelNorm()
        self.layers = _mlp(dims, lr_mul)

    def forward(self, z: Optional[torch.Tensor], c: Optional[torch.Tensor] = None) -> torch.Tensor:
        """``z: [N, z_dim]`` (``None`` if ``z_dim = 0``), ``c: [N, c_dim]`` → ``w: [N, w_dim]``."""
        parts = []
        if self.z_dim > 0:
            check_input(z, "z", ndim=2, channels=self.z_dim)
            parts.append(self.norm(z))
        if self.embed is not None:
            if c is None:
                raise ValueError(f"c: expected a label tensor [N, {self.c_dim}], got None")
            check_input(c, "c", ndim=2, channels=self.c_dim)
            if parts and c.shape[0] != parts[0].shape[0]:
                raise ValueError(
                    f"c: expected batch size {parts[0].shape[0]} (that of z), got {tuple(c.shape)}"
                )
            parts.append(self.norm(self.embed(c)))
        x = parts[0] if len(parts) == 1 else torch.cat(parts, dim=1)
        return self.layers(x)


class StyleMapMapping(nn.Module):
    """StyleMapGAN mapping: ``z`` → a spatial style map ``[N, style_dim, h, w]``.

    PixelNorm, then ``num_layers`` equalised linear layers with lrelu; all but the last keep width
    ``z_dim``, the last maps ``z_dim → style_dim·h·w``, reshaped channel-major to the map.

    Args:
        z_dim: Size of the latent ``z``.
        style_dim: Channels of the style map (formerly ``style_channels``, still accepted with a
            ``DeprecationWarning``).
        size: Spatial size ``(h, w)`` of the style map, or an int for a square map.
        num_layers: Number of linear layers (at least 1).
        lr_mul: Learning-rate multiplier of every layer.

    Shapes:
        ``z: [N, z_dim]`` → ``[N, style_dim, h, w]``.

    Example:
        >>> StyleMapMapping(64, 64, (8, 16), num_layers=2)(torch.randn(4, 64)).shape
        torch.Size([4, 64, 8, 16])
    """

    @renamed_keyword("style_channels", "style_dim")
    def __init__(
        self,
        z_dim: int = 64,
        style_dim: int = 64,
        size: Union[int, Sequence[int]] = (8, 8),
        *,
        num_layers: int = 8,
        lr_mul: float = 0.01,
    ) -> None:
        super().__init__()
        self.z_dim = check_int(z_dim, "z_dim")
        self.style_dim = check_int(style_dim, "style_dim")
        self.size = check_pair(size, "size")
        self.num_layers = check_int(num_layers, "num_layers")
        h, w = self.size
        dims = [self.z_dim] * self.num_layers + [self.style_dim * h * w]
        self.norm = PixelNorm()
        self.layers = _mlp(dims, lr_mul)

    @property
    def style_channels(self) -> int:
        """Deprecated name of :attr:`style_dim`."""
        return self.style_dim

    def forward(self, z: torch.Tensor) -> torch.Tensor:
        """``z: [N, z_dim]`` → style map ``[N, style_dim, h, w]``."""
        check_input(z, "z", ndim=2, channels=self.z_dim)
        h, w = self.size
        return rearrange(self.layers(self.norm(z)), "n (c h w) -> n c h w", h=h, w=w)
