"""StyleGAN2 (NVlabs) rebuilt from :mod:`ganblocks` blocks: loads the original weights and network
pickles, computes the same images, and trains with :mod:`ganblocks.train`."""

from .networks import Discriminator, Generator
from .nvlabs_pickle import UnsupportedPickleError, load_nvlabs_pickle
from .train import TrainConfig, Trainer, train

__all__ = [
    "Discriminator",
    "Generator",
    "TrainConfig",
    "Trainer",
    "UnsupportedPickleError",
    "load_nvlabs_pickle",
    "train",
]
