"""ganblocks: GAN building blocks for PyTorch.

Subpackages: :mod:`ganblocks.ops` (functional primitives), :mod:`ganblocks.nn` (layers),
:mod:`ganblocks.losses`, :mod:`ganblocks.augment`, :mod:`ganblocks.metrics` and
:mod:`ganblocks.train` (generic trainer parts).
"""

__version__ = "0.1.0"
