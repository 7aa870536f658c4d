r"""Path-length regularisation (StyleGAN2, Karras et al. 2020).

For images :math:`g(w)` and a random image-space direction :math:`y \sim \mathcal N(0, I) /
\sqrt{HW}`, the path length of sample :math:`b` is

.. math:: a_b = \sqrt{\operatorname{mean}_{i} \bigl\lVert J_{w_i}^\top y \bigr\rVert^2},
          \qquad J_{w_i}^\top y = \nabla_{w_i} \langle g(w), y \rangle,

averaged over the style vectors :math:`w_i` that the generator consumes. The regulariser keeps it
close to its running mean :math:`\bar a \leftarrow \bar a + \lambda (\operatorname{mean}_b a_b -
\bar a)`: the penalty per sample is :math:`(a_b - \bar a)^2`, so a fixed step in :math:`w` changes
the image by a fixed amount whatever the direction. The trainer multiplies the penalty's mean by its
weight (2 in StyleGAN2) and, when applied lazily, by the interval
(:class:`~ganblocks.losses.LazyRegularizer`).
"""

from __future__ import annotations

import math
from typing import Optional

import torch
from torch import nn

__all__ = ["PathLengthRegularizer"]


class PathLengthRegularizer(nn.Module):
    """Path-length penalty with a running mean of the path length (buffer ``pl_mean``).

    Args:
        decay: Rate :math:`\\lambda` of the running mean (0.01 in StyleGAN2).

    Shapes:
        ``images: [B, C, H, W]`` computed from ``ws: [B, num_ws, w_dim]`` (or ``[B, w_dim]``) with
        ``ws.requires_grad``; returns the penalty ``[B]``.

    Example:
        >>> reg = PathLengthRegularizer()
        >>> ws = torch.randn(4, 3, 8, requires_grad=True)
        >>> images = ws.sum(dim=1).reshape(4, 2, 2, 2)  # a linear "generator"
        >>> penalty = reg(images, ws)
        >>> penalty.shape, float(reg.pl_mean) > 0
        (torch.Size([4]), True)
    """

    pl_mean: torch.Tensor

    def __init__(self, *, decay: float = 0.01) -> None:
        super().__init__()
        if not 0.0 < float(decay) <= 1.0:
            raise ValueError(f"decay: expected a rate in (0, 1], got {decay!r}")
        self.decay = float(decay)
        self.register_buffer("pl_mean", torch.zeros([]))

    def path_lengths(
        self,
        images: torch.Tensor,
        ws: torch.Tensor,
        *,
        noise: Optional[torch.Tensor] = None,
        generator: Optional[torch.Generator] = None,
        create_graph: bool = True,
    ) -> torch.Tensor:
        """Per-sample path lengths :math:`a_b` ``[B]`` (``noise`` is the direction ``y``; drawn
        as ``N(0, 1) / sqrt(H·W)`` when ``None``)."""
        if not isinstance(images, torch.Tensor) or images.ndim != 4:
            raise ValueError("images: expected a tensor [B, C, H, W] computed from ws")
        if not isinstance(ws, torch.Tensor) or ws.ndim not in (2, 3) or not ws.requires_grad:
            raise ValueError("ws: expected [B, num_ws, w_dim] or [B, w_dim] with requires_grad")
        if ws.shape[0] != images.shape[0]:
            raise ValueError(f"ws: batch {ws.shape[0]} differs from images' {images.shape[0]}")
        if noise is None:
            noise = torch.randn(
                images.shape, device=images.device, dtype=images.dtype, generator=generator
            ) / math.sqrt(images.shape[2] * images.shape[3])
        elif noise.shape != images.shape:
            raise ValueError(
                f"noise: expected shape {tuple(images.shape)}, got {tuple(noise.shape)}"
            )
        (grad,) = torch.autograd.grad(
            (images * noise).sum(), ws, create_graph=create_graph, allow_unused=True
        )
        if grad is None:
            raise ValueError("ws: the images do not depend on ws")
        grad = grad if grad.ndim == 3 else grad.unsqueeze(1)
        return grad.square().sum(dim=2).mean(dim=1).sqrt()

    def forward(
        self,
        images: torch.Tensor,
        ws: torch.Tensor,
        *,
        noise: Optional[torch.Tensor] = None,
        generator: Optional[torch.Generator] = None,
    ) -> torch.Tensor:
        """Penalty :math:`(a_b - \\bar a)^2` ``[B]``; updates ``pl_mean`` first (no gradient)."""
        lengths = self.path_lengths(images, ws, noise=noise, generator=generator)
        with torch.no_grad():
            self.pl_mean.lerp_(lengths.mean().to(self.pl_mean.dtype), self.decay)
        return (lengths - self.pl_mean.to(lengths.dtype)).square()

    def extra_repr(self) -> str:
        return f"decay={self.decay:g}"
