"""Facts of the original StyleMapGAN code's layout that both the networks and the state-dict
converter need: its normalisation modes and its channel table (a module of its own, so that the
converter does not import the networks)."""

from __future__ import annotations

import numbers
from typing import Dict, Optional

from ganblocks.nn.checks import check_int

__all__ = ["NORMALIZE_MODES", "stylemapgan_channels"]

#: The original's ``normalize_mode`` values → the ``norm`` of :class:`~ganblocks.nn.StyledConv2d`.
#: (Its fourth choice, ``'GroupNorm'``, raises a ``TypeError`` in the original's forward pass, so
#: no checkpoint uses it.)
NORMALIZE_MODES: Dict[Optional[str], str] = {
    "LayerNorm": "layer",
    "InstanceNorm2d": "instance",
    "BatchNorm2d": "batch",
    None: "none",
}


def stylemapgan_channels(
    resolution: int, *, channel_multiplier: float = 2, low_res_channels: int = 512
) -> int:
    """Feature channels at ``resolution``, the original's table.

    ``low_res_channels`` (512) up to ``32 × 32``, then ``int(16384·channel_multiplier) // res``:
    ``256·m`` at 64, ``128·m`` at 128, …, ``16·m`` at 1024.

    Example:
        >>> [stylemapgan_channels(r) for r in (8, 32, 64, 128, 256)]
        [512, 512, 512, 256, 128]
        >>> stylemapgan_channels(256, channel_multiplier=1)
        64
    """
    resolution = check_int(resolution, "resolution")
    if isinstance(channel_multiplier, bool) or not isinstance(channel_multiplier, numbers.Real) \
            or not channel_multiplier > 0:
        raise ValueError(f"channel_multiplier: expected a number > 0, got {channel_multiplier!r}")
    low_res_channels = check_int(low_res_channels, "low_res_channels")
    if resolution <= 32:
        return low_res_channels
    channels = int(16384 * channel_multiplier) // resolution
    if channels < 1:
        raise ValueError(
            f"channel_multiplier: {channel_multiplier!r} leaves no channels at resolution "
            f"{resolution}"
        )
    return channels
