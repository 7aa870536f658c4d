"""SPADE's generator (NVlabs/SPADE, ``use_vae=False``) built from :mod:`ganblocks` blocks.

:class:`Generator` loads the original's state dicts (:meth:`Generator.from_spade`) and writes them
back (:meth:`Generator.to_spade`); see the "OASIS and SPADE from the blocks" guide.
"""

from .model import Generator, SPADETrunk, parse_norm_G

__all__ = ["Generator", "SPADETrunk", "parse_norm_G"]
