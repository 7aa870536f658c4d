"""What the parts of training need from their trainer, as typing protocols.

The G, D and R1 steps (:mod:`recipes.oco_gan.train_steps`) and model selection
(:mod:`recipes.oco_gan.train_select`) work on an :class:`~recipes.oco_gan.train.OCOGANTrainer`,
which imports them. They name the trainer through these protocols instead of importing its class,
so the imports point one way (``train`` → ``train_steps`` / ``train_select`` → this module). The
trainer satisfies both structurally; ``tests/recipe/test_train_parts.py`` checks it.

The step functions are the trainer's own iteration split out for length, so
:class:`StepTrainer` lists some of its private helpers too (``_autocast``, ``_phase``, ...).
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, ContextManager, Optional, Protocol, Tuple, runtime_checkable

import torch

from ganblocks.train import DistributedContext, ExponentialMovingAverage

from .config import OCOGANConfig
from .model import Discriminator, Generator
from .trainer_data import SampleStream, TrainingData

if TYPE_CHECKING:  # the trainer imports it only when ADA is on (train.ada)
    from ganblocks.augment import AdaptiveAugment

__all__ = ["SelectionTrainer", "StepTrainer", "TrainerCore"]


@runtime_checkable
class TrainerCore(Protocol):
    """The attributes every part reads: config, processes, precision, EMA generator, step."""

    cfg: OCOGANConfig
    ctx: DistributedContext
    #: Floating-point type of the models and their inputs.
    dtype: torch.dtype
    ema: ExponentialMovingAverage
    #: Iterations done.
    step: int


@runtime_checkable
class StepTrainer(TrainerCore, Protocol):
    """What :mod:`~recipes.oco_gan.train_steps` uses: models, optimisers, the random
    streams, this rank's shards of the two global batches and the trainer's helpers."""

    G: Generator
    D: Discriminator
    opt_g: torch.optim.Optimizer
    opt_d: torch.optim.Optimizer
    scaler: torch.amp.GradScaler
    augment: Optional[AdaptiveAugment]
    #: The shared stream of latents and LabelMix bits (identical on every rank).
    gen: torch.Generator
    #: Augmentation draws of the current step and rank.
    _aug_gen: torch.Generator
    #: Global unconditional / conditional batch sizes (0 for a branch that is off).
    bu: int
    bc: int
    #: This rank's rows of the two global batches.
    shard_u: slice
    shard_c: slice
    stream_u: SampleStream

    @property
    def _r1_enabled(self) -> bool: ...

    def _autocast(self) -> ContextManager[None]: ...

    def _phase(self, name: str) -> ContextManager[None]: ...

    def _to_device(self, x: torch.Tensor) -> torch.Tensor: ...

    def _randn(self, *shape: int) -> torch.Tensor: ...

    def _fetch(self, stream: SampleStream, global_batch: int, shard: slice, *,
               with_label: bool) -> Tuple[torch.Tensor, torch.Tensor]: ...


@runtime_checkable
class SelectionTrainer(TrainerCore, Protocol):
    """What :class:`~recipes.oco_gan.train_select.ModelSelection` uses: the data, where the
    models run, how far training got, and checkpoint writing."""

    data: TrainingData
    device: torch.device
    #: Whether the unconditional branch trains (``train.mode`` is not ``cond_only``).
    use_uncond: bool
    #: Whether the conditional branch trains (``train.mode`` is not ``uncond_only``).
    use_cond: bool
    images_seen: int
    run_dir: Path

    def save_checkpoint(self, path: Optional[Path] = None) -> Optional[Path]: ...
