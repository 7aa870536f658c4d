"""Per-pixel noise injection (StyleGAN): add learned-strength Gaussian noise to feature maps."""

from __future__ import annotations

from typing import Optional, Sequence, Union

import torch
from torch import nn

from .checks import check_input, check_pair

__all__ = ["NOISE_MODES", "NoiseInjection"]

NOISE_MODES = ("random", "const", "none")
"""``noise_mode`` values of :class:`NoiseInjection`."""


class NoiseInjection(nn.Module):
    """Add ``strength · noise`` to every channel of a feature map, one noise image per sample.

    ``y = x + strength · n`` with ``n: [N, 1, H, W]`` broadcast over the channels. ``strength`` is a
    learned scalar initialised to 0 (the layer starts as the identity). ``noise_mode`` picks ``n``:

    * ``'random'``: fresh ``N(0, 1)`` noise per call and sample (training);
    * ``'const'``: the stored buffer ``const`` ``[H, W]``, drawn once at construction (the same for
      every sample, so a generator becomes deterministic);
    * ``'none'``: no noise (``y = x``).

    An explicit ``noise`` tensor (``[N or 1, 1, H, W]`` or ``[H, W]``) overrides the mode.

    Args:
        size: Spatial size ``(H, W)`` of the feature map (an int for a square map).

    Shapes:
        ``x: [N, C, H, W]`` → ``[N, C, H, W]``.

    Example:
        >>> layer = NoiseInjection(8)
        >>> x = torch.randn(2, 4, 8, 8)
        >>> bool((layer(x) == x).all())  # strength starts at 0
        True
        >>> _ = layer.strength.data.fill_(0.5)
        >>> y = layer(x, noise_mode='const')
        >>> torch.allclose(y - x, (0.5 * layer.const).expand_as(x), atol=1e-6)
        True
    """

    def __init__(self, size: Union[int, Sequence[int]]) -> None:
        super().__init__()
        self.size = check_pair(size, "size")
        self.strength = nn.Parameter(torch.zeros([]))
        self.register_buffer("const", torch.randn(self.size))

    def forward(
        self,
        x: torch.Tensor,
        *,
        noise_mode: str = "random",
        noise: Optional[torch.Tensor] = None,
    ) -> torch.Tensor:
        """``x: [N, C, H, W]`` → ``x + strength · noise``."""
        check_input(x, "x", ndim=4)
        if tuple(x.shape[2:]) != self.size:
            raise ValueError(
                f"x: expected spatial size {self.size} (the layer's size), got {tuple(x.shape)}"
            )
        if noise is None:
            if noise_mode not in NOISE_MODES:
                raise ValueError(
                    f"noise_mode: expected one of {list(NOISE_MODES)}, got {noise_mode!r}"
                )
            if noise_mode == "none":
                return x
            if noise_mode == "const":
                noise = self.const
            else:
                noise = torch.randn(
                    [x.shape[0], 1, *self.size], device=x.device, dtype=self.strength.dtype
                )
        elif not isinstance(noise, torch.Tensor) or tuple(noise.shape[-2:]) != self.size:
            shape = tuple(noise.shape) if isinstance(noise, torch.Tensor) else type(noise).__name__
            raise ValueError(
                f"noise: expected a tensor [..., {self.size[0]}, {self.size[1]}], got {shape}"
            )
        return x + (noise * self.strength).to(x.dtype)

    def extra_repr(self) -> str:
        return f"size={self.size}"
