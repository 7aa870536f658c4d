"""OASIS's generator and discriminator (boschresearch/OASIS) built from :mod:`ganblocks` blocks.

:meth:`Generator.from_oasis` / :meth:`Discriminator.from_oasis` load the original's state dicts,
``to_oasis()`` writes them back; see the "OASIS and SPADE from the blocks" guide.
"""

from .model import Discriminator, Generator

__all__ = ["Discriminator", "Generator"]
