"""StyleGAN2 (NVlabs) rebuilt from :mod:`ganblocks` blocks: loads the original weights and network
pickles, computes the same images, and trains with :mod:`ganblocks.train`."""

from .networks import Discriminator, Generator

__all__ = ["Discriminator", "Generator"]
