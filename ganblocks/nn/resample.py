"""FIR resampling modules: thin wrappers of :func:`~ganblocks.ops.upsample2d`,
:func:`~ganblocks.ops.downsample2d` and :func:`~ganblocks.ops.filter2d`.

The filter is built once with :func:`~ganblocks.ops.setup_filter` (normalised to unit DC gain) and
kept as a non-persistent buffer: it follows ``.to(device)`` but stays out of the state dict.
"""

from __future__ import annotations

from typing import Sequence

import torch
from torch import nn

from ganblocks.ops import Padding, downsample2d, filter2d, parse_padding, setup_filter, upsample2d

from .checks import check_input, check_int

__all__ = ["Blur", "Downsample2d", "Upsample2d"]


class _FactorResample(nn.Module):
    """A resampling factor and a non-persistent FIR filter buffer (shared by up/down)."""

    def __init__(
        self,
        factor: int = 2,
        *,
        resample_filter: Sequence[float] = (1, 3, 3, 1),
        persistent_filter: bool = False,
    ) -> None:
        super().__init__()
        self.factor = check_int(factor, "factor")
        self.register_buffer(
            "resample_filter", setup_filter(resample_filter), persistent=bool(persistent_filter)
        )

    def extra_repr(self) -> str:
        return f"factor={self.factor}"


class Upsample2d(_FactorResample):
    """Up-sample by an integer factor: zero insertion followed by the FIR filter (gain ``factor²``).

    Args:
        factor: Integer up-sampling factor.
        resample_filter: FIR taps (see :func:`~ganblocks.ops.setup_filter`).
        persistent_filter: Keep the filter in the state dict (StyleGAN2 checkpoints store it).

    Shapes:
        ``x: [N, C, H, W]`` → ``[N, C, H·factor, W·factor]``.

    Example:
        >>> Upsample2d(2)(torch.ones(1, 3, 4, 4)).shape
        torch.Size([1, 3, 8, 8])
    """

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """``x: [N, C, H, W]`` → ``[N, C, H·factor, W·factor]``."""
        check_input(x, "x", ndim=4)
        return upsample2d(x, self.resample_filter, up=self.factor)


class Downsample2d(_FactorResample):
    """Low-pass filter with the FIR filter, then keep every ``factor``-th sample.

    Args:
        factor: Integer down-sampling factor.
        resample_filter: FIR taps (see :func:`~ganblocks.ops.setup_filter`).
        persistent_filter: Keep the filter in the state dict (StyleGAN2 checkpoints store it).

    Shapes:
        ``x: [N, C, H, W]`` → ``[N, C, H // factor, W // factor]``.

    Example:
        >>> Downsample2d(2)(torch.ones(1, 3, 8, 8)).shape
        torch.Size([1, 3, 4, 4])
    """

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """``x: [N, C, H, W]`` → ``[N, C, H // factor, W // factor]``."""
        check_input(x, "x", ndim=4)
        return downsample2d(x, self.resample_filter, down=self.factor)


class Blur(nn.Module):
    """Filter with the FIR filter keeping the size ("same" padding), plus optional extra padding.

    Args:
        resample_filter: FIR taps (see :func:`~ganblocks.ops.setup_filter`).
        padding: Extra padding ``int | [px, py] | [x0, x1, y0, y1]`` (negative values crop).
        gain: Overall gain of the filter.

    Shapes:
        ``x: [N, C, H, W]`` → ``[N, C, H + y0 + y1, W + x0 + x1]``.

    Example:
        >>> y = Blur()(torch.ones(1, 1, 6, 6))
        >>> y.shape, float(y[0, 0, 3, 3])
        (torch.Size([1, 1, 6, 6]), 1.0)
    """

    def __init__(
        self,
        resample_filter: Sequence[float] = (1, 3, 3, 1),
        *,
        padding: Padding = 0,
        gain: float = 1.0,
    ) -> None:
        super().__init__()
        self.padding = parse_padding(padding)
        self.gain = float(gain)
        self.register_buffer("resample_filter", setup_filter(resample_filter), persistent=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """``x: [N, C, H, W]`` → ``[N, C, H + y0 + y1, W + x0 + x1]``."""
        check_input(x, "x", ndim=4)
        return filter2d(x, self.resample_filter, padding=list(self.padding), gain=self.gain)

    def extra_repr(self) -> str:
        return f"filter={list(self.resample_filter.shape)}, padding={list(self.padding)}"
