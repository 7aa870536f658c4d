"""StyleMapGAN (naver-ai, CVPR 2021) rebuilt from :mod:`ganblocks` blocks.

:class:`Generator`, :class:`Encoder` and :class:`Discriminator` load the original code's state
dicts (``from_stylemapgan``) and write them back (``to_stylemapgan``), computing the same outputs;
see the "StyleMapGAN from the blocks" guide.
"""

from .networks import (
    NORMALIZE_MODES,
    Discriminator,
    Encoder,
    Generator,
    stylemapgan_channels,
)

__all__ = ["NORMALIZE_MODES", "Discriminator", "Encoder", "Generator", "stylemapgan_channels"]
