"""Generic trainer parts: distributed setup, EMA, checkpoints, logging, interrupts.

Nothing here knows about a particular GAN; a recipe's trainer composes these pieces.
"""

from .checkpoint import (
    CheckpointError,
    atomic_save,
    atomic_write,
    capture_rng_state,
    load_checkpoint,
    payload_digest,
    previous_snapshot,
    restore_rng_state,
)
from .distributed import DistributedContext, init_distributed
from .ema import ExponentialMovingAverage
from .logging import MetricsLogger
from .signals import GracefulInterrupt

__all__ = [
    "CheckpointError",
    "DistributedContext",
    "ExponentialMovingAverage",
    "GracefulInterrupt",
    "MetricsLogger",
    "atomic_save",
    "atomic_write",
    "capture_rng_state",
    "init_distributed",
    "load_checkpoint",
    "payload_digest",
    "previous_snapshot",
    "restore_rng_state",
]
