"""Training of OCO-GAN (``OCO_GAN_SPEC.md`` §4–5) on one process or many under ``torchrun``.

One iteration = one G step, then one D step, on mixed batches of ``train.batch_uncond``
unconditional and ``train.batch_cond`` conditional samples (global sizes, split evenly across
processes). Each iteration draws one batch of labelled reals (their label maps condition the G
step's fakes, their images are the D step's conditional reals) and one batch of reals for the
unconditional branch:

* **G step**: ``softplus(-D_u(G(z_u)))`` on unconditional fakes, plus the class-balanced N+1 loss
  of ``D_c(G(s, z_c))`` with target ``s + 1`` on conditional fakes (optionally the Gumbel-Softmax
  segmentation loss on unconditional fakes); then the EMA generator is updated.
* **D step**: one encoder pass over ``[real_u, real_c, fake_u, fake_c, labelmix(real_c, fake_c)]``;
  the image head scores the unconditional reals (``loss.image_head_reals``) against the
  unconditional fakes (logistic loss), the segmentation head classifies real pixels into their
  class + 1 (class-balanced) and fake pixels into class 0, and LabelMix ties ``D_c`` of the mixed
  image to the mix of ``D_c(real)`` and ``D_c(fake)``.
* **R1 step**: every ``loss.r1_interval`` iterations a separate D step on the lazy R1 penalty of
  the image head on its reals (×interval); D's Adam is corrected for these extra steps.

The steps live in :mod:`recipes.oco_gan.train_steps`.

Every random draw (sample order and flips from seeded global sample streams, latents and LabelMix
bits from one seeded generator) is identical on every process and saved in checkpoints, and the
class-balance weights count pixels over the global batch: a run on W processes computes what a
single process computes with the same global batch, and a resumed run continues exactly where it
stopped. (Augmentation draws, when ADA is on, are seeded per step and rank instead, so that
different images get different transforms.)
"""

from __future__ import annotations

import contextlib
import errno
import time
from pathlib import Path
from typing import Any, Dict, Optional, Tuple

import torch

from ganblocks.losses import lazy_adam_params
from ganblocks.train import (
    DistributedContext,
    ExponentialMovingAverage,
    GracefulInterrupt,
    MetricsLogger,
    atomic_save,
    capture_rng_state,
    load_checkpoint,
    restore_rng_state,
)

from . import train_steps
from .config import OCOGANConfig
from .model import Discriminator, Generator
from .rundir import dedupe_metrics, record_history, resume_changes
from .train_parts import freeze_parts, load_init_weights, trainable_parameters
from .train_select import ModelSelection
from .train_steps import class_weights
from .trainer_data import SampleStream, open_training_data
from .visualize import sample_grid, save_image_grid

__all__ = ["OCOGANTrainer", "class_weights"]

CHECKPOINT = "checkpoint.pt"


class OCOGANTrainer:
    """Builds data, models and optimisers from a config and runs (or resumes) training.

    Args:
        config: The run's configuration (validated). On resume ``None`` means the checkpoint's;
            otherwise it may differ from the checkpoint's only in
            :data:`~recipes.oco_gan.rundir.SAFE_ON_RESUME` fields (e.g. more ``train.steps``).
        run_dir: Output folder: ``config.json``, ``split.json``, ``metrics.jsonl``,
            ``history.jsonl``, ``samples/``, ``checkpoint.pt`` (and ``checkpoint.prev.pt``).
            Nothing is written there before the config, checkpoint and data have been checked.
        ctx: Distributed context (:func:`ganblocks.train.init_distributed`).
        resume: Continue from ``run_dir/checkpoint.pt``; metrics logged after its step are
            dropped and the changed settings are recorded in ``history.jsonl``.
        progress: Show a tqdm progress bar on rank 0.

    Raises:
        ConfigError: on resume, ``config`` changes a field that must stay (named).
        CheckpointError: the checkpoint is corrupt or incomplete.
    """

    def __init__(self, config: Optional[OCOGANConfig], run_dir: str | Path, *,
                 ctx: Optional[DistributedContext] = None, resume: bool = False,
                 progress: bool = True) -> None:
        self.ctx = ctx or DistributedContext()
        self.run_dir = Path(run_dir)
        self.resume_changes: Dict[str, Tuple[Any, Any]] = {}
        state = None
        if resume:
            config, state = self._resumed_config(config)
        elif config is None:
            raise ValueError("config: required unless resume=True")
        self.cfg = config.validate()
        self.progress = progress and self.ctx.is_main
        self.device = self.ctx.device
        self._plan_batches()
        if self.ctx.is_main:
            self.run_dir.mkdir(parents=True, exist_ok=True)
        self.ctx.barrier()

        self._open_data()
        self._build_models(init_from=state is None)  # a resumed run has its own weights
        self._build_optimizers()
        self._build_augment()
        self.gen = torch.Generator().manual_seed(self.cfg.train.seed)  # every shared draw
        #: Set to a dict to accumulate the wall time of each phase of the step (benchmarks).
        self.timings: Optional[Dict[str, float]] = None
        self.step = 0
        self.images_seen = 0
        self._fixed = self._fixed_samples()
        self.selection = ModelSelection(self)
        if state is not None:
            self._load_state(state)
        if self.ctx.is_main:  # every check passed: record the run
            if state is not None:
                dedupe_metrics(self.run_dir, self.step)
            self.cfg.save(self.run_dir / "config.json")
            record_history(self.run_dir, "resume" if state is not None else "start",
                           step=self.step, changes=self.resume_changes)

    # -- construction ----------------------------------------------------------------------------
    def _resumed_config(self, config: Optional[OCOGANConfig]
                        ) -> Tuple[OCOGANConfig, Dict[str, Any]]:
        """The config to resume with (``config``, checked against the checkpoint's and its
        changes kept in :attr:`resume_changes`, else the checkpoint's) and the checkpoint."""
        ckpt_path = self.run_dir / CHECKPOINT
        if not ckpt_path.is_file():
            raise FileNotFoundError(f"--resume: no checkpoint at {ckpt_path}")
        state = load_checkpoint(ckpt_path, map_location="cpu")
        saved = OCOGANConfig.from_dict(state["config"])
        if config is not None:
            self.resume_changes = resume_changes(saved, config.validate())
        return config or saved, state

    def _plan_batches(self) -> None:
        """The branches that train, their global batch sizes and this rank's rows of them."""
        t = self.cfg.train
        self.use_uncond = t.mode != "cond_only"
        self.use_cond = t.mode != "uncond_only"
        self.bu = t.batch_uncond if self.use_uncond else 0
        self.bc = t.batch_cond if self.use_cond else 0
        self.shard_u = self.ctx.shard(self.bu, "train.batch_uncond")
        self.shard_c = self.ctx.shard(self.bc, "train.batch_cond")

    def _open_data(self) -> None:
        """All training images (the unconditional reals), the labelled ones (the conditional
        reals) and the two sample streams over them."""
        t = self.cfg.train
        self.data = open_training_data(self.cfg, self.run_dir, is_main=self.ctx.is_main,
                                       barrier=self.ctx.barrier)
        if self.use_cond and not self.data.labelled_indices:
            raise ValueError("data: the conditional branch needs labelled images, found none")
        self.stream_u = SampleStream(self.data.all_indices, seed=t.seed)
        self.stream_c = SampleStream(self.data.labelled_indices or [0], seed=t.seed + 1)

    def _build_models(self, *, init_from: bool) -> None:
        """G, D and the EMA of G, initialised identically on every rank (and broadcast to be
        safe); ``train.init_from`` weights when ``init_from``; ``train.freeze`` applied."""
        m, t = self.cfg.model, self.cfg.train
        torch.manual_seed(t.seed)
        self.dtype = torch.float64 if t.dtype == "float64" else torch.float32
        self.G = Generator(m).to(self.device, self.dtype)
        self.D = Discriminator(m).to(self.device, self.dtype)
        if t.channels_last:
            self.G = self.G.to(memory_format=torch.channels_last)
            self.D = self.D.to(memory_format=torch.channels_last)
        self.ctx.broadcast_module(self.G)
        self.ctx.broadcast_module(self.D)
        self.ema = ExponentialMovingAverage(self.G, decay=t.ema_decay,
                                            rampup_steps=t.ema_rampup_steps)
        if t.init_from is not None and init_from:
            load_init_weights(t.init_from, self.G, self.D, self.ema)
        freeze_parts(self.G, self.D, t.freeze)

    def _build_optimizers(self) -> None:
        """Adam for the trainable parameters of G and of D (D's corrected for the lazy R1
        steps), and the loss scaler of fp16 mixed precision."""
        t = self.cfg.train
        self.opt_g = torch.optim.Adam(trainable_parameters(self.G), lr=t.lr_g, betas=t.betas)
        lr_d, betas_d = (lazy_adam_params(t.lr_d, t.betas, self.cfg.loss.r1_interval)
                         if self._r1_enabled else (t.lr_d, t.betas))
        self.opt_d = torch.optim.Adam(trainable_parameters(self.D), lr=lr_d, betas=betas_d)
        self.scaler = torch.amp.GradScaler(self.device.type, enabled=t.mixed_precision == "fp16")

    def _build_augment(self) -> None:
        """ADA (``train.ada``) applied to images and label maps together, else ``None``."""
        m, t = self.cfg.model, self.cfg.train
        self.augment = None
        if t.ada:
            from ganblocks.augment import AdaptiveAugment

            self.augment = AdaptiveAugment(
                target=t.ada_target, kimg=t.ada_kimg, interval=t.ada_interval,
                label_fill=m.dontcare_index if m.dontcare_index is not None else 0,
            ).to(self.device)

    # -- helpers ---------------------------------------------------------------------------------
    @property
    def _r1_enabled(self) -> bool:
        return self.use_uncond and self.cfg.loss.r1_gamma > 0

    def _autocast(self):
        mp = self.cfg.train.mixed_precision
        if mp == "none":
            return contextlib.nullcontext()
        dtype = torch.bfloat16 if mp == "bf16" else torch.float16
        return torch.autocast(device_type=self.device.type, dtype=dtype)

    @contextlib.contextmanager
    def _phase(self, name: str):
        """Accumulate wall time per phase in :attr:`timings` when it is a dict (benchmarks)."""
        if self.timings is None:
            yield
            return
        start = time.perf_counter()
        try:
            yield
        finally:
            self.timings[name] = self.timings.get(name, 0.0) + time.perf_counter() - start

    def _to_device(self, x: torch.Tensor) -> torch.Tensor:
        x = x.to(self.device, self.dtype if x.is_floating_point() else None, non_blocking=True)
        if self.cfg.train.channels_last and x.ndim == 4:
            x = x.contiguous(memory_format=torch.channels_last)
        return x

    def _randn(self, *shape: int) -> torch.Tensor:
        return torch.randn(*shape, generator=self.gen)

    def _fetch(self, stream: SampleStream, global_batch: int, shard: slice, *,
               with_label: bool) -> Tuple[torch.Tensor, torch.Tensor]:
        """This rank's shard of the next global batch: images ``[b, 3, H, W]``, labels
        ``[b, H, W]``, each pair flipped horizontally when its stream says so."""
        keys = stream.next(global_batch)[shard]
        flip = self.cfg.data.flip
        items = [self.data.get(i, flip=f and flip, with_label=with_label) for i, f in keys]
        images = torch.stack([it["image"] for it in items])
        labels = torch.stack([it["label"] for it in items])
        return self._to_device(images), labels.to(self.device)

    def _fixed_samples(self) -> Dict[str, torch.Tensor]:
        """Fixed validation label maps and latents, so sample grids show progress."""
        n, z = self.cfg.train.num_samples, self.cfg.model.z_dim
        gen = torch.Generator().manual_seed(12345)
        labels, images = self.data.fixed_val_batch(n)
        return {"label": labels, "image": images, "z_c": torch.randn(3, n, z, generator=gen),
                "z_u": torch.randn(3 * n, z, generator=gen)}

    # -- the two steps (recipes/oco_gan/train_steps.py) ---------------------------------------
    def generator_step(self, label_c: Optional[torch.Tensor]) -> Dict[str, float]:
        """G step on this rank's conditional label maps ``label_c [b_c, H, W]`` (or ``None``);
        see :func:`~recipes.oco_gan.train_steps.generator_step`."""
        return train_steps.generator_step(self, label_c)

    def discriminator_step(self, real_c: Optional[torch.Tensor],
                           label_c: Optional[torch.Tensor], *,
                           fakes: Optional[torch.Tensor] = None) -> Dict[str, float]:
        """D step on this rank's labelled reals ``real_c``/``label_c`` (the maps of the G step)
        and a fresh batch of unconditional reals, on fresh fakes or the G step's ``fakes``; see
        :func:`~recipes.oco_gan.train_steps.discriminator_step`."""
        return train_steps.discriminator_step(self, real_c, label_c, fakes=fakes)

    def train_step(self) -> Dict[str, float]:
        """One iteration: a G step then a D step. Returns the logged loss terms."""
        self.G.train()
        self.D.train()
        # Augmentation draws differ per rank and step, and are reproducible without saved state.
        t = self.cfg.train
        self._aug_gen = torch.Generator().manual_seed(
            (t.seed * 1_000_003 + self.step * 1_009 + self.ctx.rank) % 2**63)
        # One conditional batch per iteration: G renders on its label maps, D sees its images.
        real_c = label_c = None
        if self.bc:
            with self._phase("data"):
                real_c, label_c = self._fetch(self.stream_c, self.bc, self.shard_c,
                                              with_label=True)
        if t.d_fakes == "reuse":
            logs, fakes = train_steps.generator_step_fakes(self, label_c)
            logs.update(self.discriminator_step(real_c, label_c, fakes=fakes))
        else:
            logs = self.generator_step(label_c)
            logs.update(self.discriminator_step(real_c, label_c))
        self.step += 1
        self.images_seen += self.bu + self.bc
        if self.augment is not None:
            logs["ada/p"] = float(self.augment.p)
        return logs

    # -- state ----------------------------------------------------------------------------------
    def state_dict(self) -> Dict[str, Any]:
        return {
            "config": self.cfg.to_dict(),
            "step": self.step,
            "images_seen": self.images_seen,
            "G": self.G.state_dict(),
            "D": self.D.state_dict(),
            "G_ema": self.ema.state_dict(),
            "opt_g": self.opt_g.state_dict(),
            "opt_d": self.opt_d.state_dict(),
            "scaler": self.scaler.state_dict(),
            "augment": None if self.augment is None else self.augment.state_dict(),
            "stream_u": self.stream_u.state_dict(),
            "stream_c": self.stream_c.state_dict(),
            "rng": capture_rng_state(self.gen),
            "split": self.data.split,
            "selection": self.selection.state_dict(),
        }

    def _load_state(self, state: Dict[str, Any]) -> None:
        self.G.load_state_dict(state["G"])
        self.D.load_state_dict(state["D"])
        self.ema.load_state_dict(state["G_ema"])
        self.opt_g.load_state_dict(state["opt_g"])
        self.opt_d.load_state_dict(state["opt_d"])
        self.scaler.load_state_dict(state["scaler"])
        if self.augment is not None and state.get("augment") is not None:
            self.augment.load_state_dict(state["augment"])
        self.stream_u.load_state_dict(state["stream_u"])
        self.stream_c.load_state_dict(state["stream_c"])
        restore_rng_state(state["rng"], self.gen)
        self.step = int(state["step"])
        self.images_seen = int(state["images_seen"])
        self.selection.load_state_dict(state.get("selection"))

    def save_checkpoint(self, path: Optional[Path] = None) -> Optional[Path]:
        """Write ``run_dir/checkpoint.pt`` atomically (rank 0 only), keeping the one before as
        ``checkpoint.prev.pt``; or a copy of the state at ``path`` (``best.pt``, snapshots)."""
        target, path = Path(path) if path is not None else self.run_dir / CHECKPOINT, None
        if self.ctx.is_main:
            target.parent.mkdir(parents=True, exist_ok=True)
            path = atomic_save(self.state_dict(), target,
                               keep_previous=target == self.run_dir / CHECKPOINT)
        self.ctx.barrier()
        return path

    @torch.no_grad()
    def write_samples(self, name: Optional[str] = None, *,
                      generator: Optional[torch.nn.Module] = None) -> Optional[Path]:
        """Sample grid with the EMA generator (or ``generator``, e.g. a shipped one, on the same
        fixed maps and latents): label | real | 3 conditional | 3 unconditional. The EMA
        generator's grids are also copied to ``samples/latest.png``."""
        if not self.ctx.is_main:
            return None
        G = self.ema.shadow if generator is None else generator
        fx = self._fixed
        n = fx["label"].shape[0]
        label = fx["label"].to(self.device)
        cond = [G(label=label, z=fx["z_c"][k].to(self.device)) for k in range(3)]
        uncond = G(z=fx["z_u"].to(self.device)).reshape(3, n, *cond[0].shape[1:])
        grid = sample_grid(label=fx["label"], real=fx["image"], cond=[c.cpu() for c in cond],
                           uncond=[u.cpu() for u in uncond], palette=self.data.palette)
        path = self.run_dir / "samples" / (name or f"step_{self.step:07d}.png")
        scale = max(1, 128 // self.cfg.model.resolution[0])
        save_image_grid(grid, path, scale=scale)
        if generator is None:
            save_image_grid(grid, self.run_dir / "samples" / "latest.png", scale=scale)
        return path

    def _mean_over_ranks(self, logs: Dict[str, float]) -> Dict[str, float]:
        """Average logged values over processes (each computed them on its shard)."""
        if not self.ctx.distributed:
            return logs
        keys = sorted(logs)
        values = torch.tensor([logs[k] for k in keys], dtype=torch.float64, device=self.device)
        self.ctx.all_reduce_mean_(values)
        return dict(zip(keys, values.tolist()))

    # -- the loop --------------------------------------------------------------------------------
    def fit(self, *, steps: Optional[int] = None, max_seconds: Optional[float] = None) -> Dict:
        """Train until ``steps`` iterations in total (default ``train.steps``) or ``max_seconds``.

        SIGINT/SIGTERM stop after the current step with a checkpoint. Returns a summary dict.

        Raises:
            OSError: ``ENOSPC`` when the disk fills up while writing metrics, samples or a
                checkpoint; the message names the last complete checkpoint, which stays intact.
        """
        t = self.cfg.train
        total = t.steps if steps is None else steps
        start_time = time.time()
        start_step = self.step
        bar = None
        if self.progress:
            from tqdm import tqdm

            # A time-limited run shows its count and rate, not an ETA for a step count it will
            # not reach.
            limited = max_seconds is not None and steps is None
            desc = f"oco-gan train ({max_seconds / 60:g} min)" if limited else "oco-gan train"
            bar = tqdm(total=None if limited else total, initial=self.step, unit="it",
                       dynamic_ncols=True, desc=desc)
        logger = MetricsLogger(self.run_dir, enabled=self.ctx.is_main)
        interrupted = False
        last: Dict[str, float] = {}
        try:
            with GracefulInterrupt() as stop:
                while self.step < total:
                    images_before = self.images_seen
                    logs = self.train_step()
                    last = logs
                    if self.step % t.log_every == 0 or self.step == total:
                        logs = self._mean_over_ranks(logs)
                        logger.log(self.step, {**logs, "kimg": self.images_seen / 1000})
                    selected = self.selection.after_step(images_before)  # eval, best.pt
                    if selected:
                        logger.log(self.step, selected)
                    if bar is not None:
                        elapsed = max(time.time() - start_time, 1e-9)
                        ips = (self.step - start_step) * (self.bu + self.bc) / elapsed
                        bar.update(1)
                        bar.set_postfix(img_s=f"{ips:.1f}", d=f"{logs['d/total']:.3f}",
                                        g=f"{logs['g/total']:.3f}")
                    if self.step % t.sample_every == 0:
                        self.write_samples()
                    if self.step % t.checkpoint_every == 0:
                        self.save_checkpoint()
                    out_of_time = (max_seconds is not None
                                   and time.time() - start_time > max_seconds)
                    # Every rank must stop at the same step: agree on both flags.
                    interrupted = self.ctx.any(stop.requested)
                    if interrupted or self.ctx.any(out_of_time):
                        break
        except OSError as err:
            if err.errno not in (errno.ENOSPC, errno.EDQUOT):
                raise
            ckpt = self.run_dir / CHECKPOINT
            kept = f"the last checkpoint {ckpt} is intact" if ckpt.is_file() else \
                "no checkpoint was written yet"
            raise OSError(err.errno, f"no space left on device at step {self.step} "
                          f"({err.strerror or err}); {kept}: free some space and --resume") \
                from err
        finally:
            if bar is not None:
                bar.close()
            logger.close()
        self.save_checkpoint()
        samples = self.write_samples()
        elapsed = time.time() - start_time
        return {"step": self.step, "images_seen": self.images_seen, "seconds": elapsed,
                "interrupted": interrupted, "samples": samples, "last": last,
                "checkpoint": self.run_dir / CHECKPOINT}

