"""StyleGAN2(-ADA) training loop from :mod:`ganblocks` parts.

Per step (global batch ``batch``, split evenly over ``torchrun`` ranks):

* **G main**: non-saturating loss on ``D(aug(G(z, c)))`` with style mixing; updates ``w_avg``;
* **G reg** every ``pl_interval`` steps: :class:`~ganblocks.losses.PathLengthRegularizer` on a
  ``batch / pl_batch_shrink`` batch, weighted ``pl_weight · pl_interval`` (lazy regularisation);
* **D main**: logistic loss on ``D(aug(real))`` and ``D(aug(G(z, c)))``; ADA's ``p`` is tuned from
  the sign of the real logits when ``ada`` is on;
* **D reg** every ``r1_interval`` steps: R1 ``γ/2 · ‖∇D(aug(real))‖²``, weighted ``r1_interval``;
* EMA of G (half-life ``ema_kimg`` thousand images).

Adam's hyper-parameters are corrected for the lazy regularisers
(:meth:`~ganblocks.losses.LazyRegularizer.adam_params`). Gradients are averaged over ranks with
:meth:`~ganblocks.train.DistributedContext.sync_gradients`. Checkpoints (atomic) hold G, D, G_ema,
optimisers, ADA and path-length state and the step; the data position and the random draws are
functions of (seed, rank, step), so a resumed run continues exactly as an uninterrupted one.
SIGINT/SIGTERM finish the step and checkpoint.
"""

from __future__ import annotations

import hashlib
import json
import time
from dataclasses import asdict, dataclass, fields
from pathlib import Path
from typing import Any, Dict, Iterator, Optional

import torch
from torch import nn

from ganblocks.augment import AdaptiveAugment
from ganblocks.data.sampler import InfiniteSampler
from ganblocks.losses import (
    LazyRegularizer,
    PathLengthRegularizer,
    d_logistic_loss,
    g_nonsaturating_loss,
    r1_penalty,
)
from ganblocks.train import (
    DistributedContext,
    ExponentialMovingAverage,
    GracefulInterrupt,
    MetricsLogger,
    atomic_save,
    atomic_write,
    init_distributed,
    load_checkpoint,
)

from .data import make_dataset
from .networks import Discriminator, Generator

__all__ = ["TrainConfig", "Trainer", "train"]


@dataclass
class TrainConfig:
    """Options of a run (the command line's ``--name value`` flags; saved with every checkpoint)."""

    data: str = "synthetic"
    out: str = "runs/stylegan2"
    resolution: int = 32
    batch: int = 16
    steps: int = 10000
    z_dim: int = 128
    w_dim: int = 128
    mapping_layers: int = 4
    channel_base: int = 4096
    channel_max: int = 256
    g_architecture: str = "skip"
    d_architecture: str = "resnet"
    num_fp16_res: int = 0
    conv_clamp: float = 256.0
    mbstd_group: int = 4
    lr: float = 0.0025
    beta1: float = 0.0
    beta2: float = 0.99
    r1_gamma: float = 1.0
    r1_interval: int = 16
    pl_weight: float = 2.0
    pl_interval: int = 4
    pl_batch_shrink: int = 2
    pl_decay: float = 0.01
    style_mixing: float = 0.9
    ema_kimg: float = 10.0
    ema_rampup_steps: int = 0
    ada: bool = False
    ada_target: float = 0.6
    ada_kimg: float = 500.0
    seed: int = 0
    log_every: int = 50
    checkpoint_every: int = 500
    device: Optional[str] = None

    def __post_init__(self) -> None:
        for name in (
            "resolution",
            "batch",
            "steps",
            "r1_interval",
            "pl_interval",
            "log_every",
            "checkpoint_every",
            "pl_batch_shrink",
            "mbstd_group",
        ):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int) or value < 1:
                raise ValueError(f"{name}: expected a positive integer, got {value!r}")
        if self.resolution < 4 or self.resolution & (self.resolution - 1):
            raise ValueError(f"resolution: expected a power of two >= 4, got {self.resolution}")
        if not 0.0 <= self.style_mixing <= 1.0:
            raise ValueError(f"style_mixing: expected a probability, got {self.style_mixing}")

    def generator_kwargs(self) -> Dict[str, Any]:
        return dict(
            z_dim=self.z_dim,
            c_dim=0,
            w_dim=self.w_dim,
            img_resolution=self.resolution,
            img_channels=3,
            mapping_kwargs={"num_layers": self.mapping_layers},
            channel_base=self.channel_base,
            channel_max=self.channel_max,
            num_fp16_res=self.num_fp16_res,
            conv_clamp=self.conv_clamp,
            architecture=self.g_architecture,
        )

    def discriminator_kwargs(self) -> Dict[str, Any]:
        return dict(
            c_dim=0,
            img_resolution=self.resolution,
            img_channels=3,
            architecture=self.d_architecture,
            channel_base=self.channel_base,
            channel_max=self.channel_max,
            num_fp16_res=self.num_fp16_res,
            conv_clamp=self.conv_clamp,
            epilogue_kwargs={"mbstd_group_size": self.mbstd_group},
        )


def step_seed(seed: int, rank: int, step: int) -> int:
    """Seed of the global RNGs for one rank's step: resuming at any step is exact on every rank
    without saving per-rank RNG states."""
    digest = hashlib.blake2b(f"{seed}:{rank}:{step}".encode(), digest_size=8).digest()
    return int.from_bytes(digest, "little") & (2**63 - 1)


def _nan_to_num_grads(module: nn.Module) -> None:
    # As in the original trainer: float16 blocks can overflow; a bad step must not poison Adam.
    for p in module.parameters():
        if p.grad is not None:
            torch.nan_to_num_(p.grad, nan=0.0, posinf=1e5, neginf=-1e5)


class Trainer:
    """Holds the networks, optimisers and state of one run; :meth:`run` trains to ``cfg.steps``."""

    def __init__(self, cfg: TrainConfig, ctx: Optional[DistributedContext] = None) -> None:
        self.cfg = cfg
        self.ctx = ctx or init_distributed(device=cfg.device)
        dev = self.ctx.device
        self.local_batch = cfg.batch // self.ctx.world_size
        self.ctx.shard(cfg.batch)  # validates divisibility
        torch.manual_seed(cfg.seed)  # same initial weights on every rank
        self.G = Generator(**cfg.generator_kwargs()).to(dev).train()
        self.D = Discriminator(**cfg.discriminator_kwargs()).to(dev).train()
        self.ctx.broadcast_module(self.G)
        self.ctx.broadcast_module(self.D)
        decay = 0.5 ** (cfg.batch / (cfg.ema_kimg * 1000.0))
        self.G_ema = ExponentialMovingAverage(
            self.G, decay=decay, rampup_steps=cfg.ema_rampup_steps
        )
        self.g_lazy = LazyRegularizer(cfg.pl_interval)
        self.d_lazy = LazyRegularizer(cfg.r1_interval)
        betas = (cfg.beta1, cfg.beta2)
        lr_g, betas_g = self.g_lazy.adam_params(cfg.lr, betas)
        lr_d, betas_d = self.d_lazy.adam_params(cfg.lr, betas)
        self.opt_G = torch.optim.Adam(self.G.parameters(), lr=lr_g, betas=betas_g, eps=1e-8)
        self.opt_D = torch.optim.Adam(self.D.parameters(), lr=lr_d, betas=betas_d, eps=1e-8)
        self.pl = PathLengthRegularizer(decay=cfg.pl_decay).to(dev)
        self.augment: Optional[AdaptiveAugment] = None
        if cfg.ada:
            self.augment = AdaptiveAugment(p=0.0, target=cfg.ada_target, kimg=cfg.ada_kimg).to(dev)
        self.dataset = make_dataset(cfg.data, cfg.resolution, seed=cfg.seed)
        self.step = 0
        self.out = Path(cfg.out)
        self.checkpoint_path = self.out / "checkpoint.pt"

    # -- data ------------------------------------------------------------------------------------
    def _batches(self) -> Iterator[torch.Tensor]:
        sampler = InfiniteSampler(
            len(self.dataset),
            rank=self.ctx.rank,
            world_size=self.ctx.world_size,
            seed=self.cfg.seed,
            start=self.step * self.local_batch,
        )
        it = iter(sampler)
        while True:
            keys = [next(it) for _ in range(self.local_batch)]
            yield torch.stack([self.dataset[k] for k in keys]).to(self.ctx.device)

    # -- pieces of a step ------------------------------------------------------------------------
    def _aug(self, x: torch.Tensor) -> torch.Tensor:
        return x if self.augment is None else self.augment(x)

    def _mapping(self, n: int, *, update_emas: bool) -> torch.Tensor:
        dev = self.ctx.device
        ws = self.G.mapping(
            torch.randn(n, self.cfg.z_dim, device=dev), None, update_emas=update_emas
        )
        if self.cfg.style_mixing > 0:
            num_ws = ws.shape[1]
            cutoff = int(torch.randint(1, num_ws, ()).item()) if num_ws > 1 else num_ws
            if float(torch.rand(())) >= self.cfg.style_mixing:
                cutoff = num_ws
            if cutoff < num_ws:
                ws2 = self.G.mapping(torch.randn(n, self.cfg.z_dim, device=dev), None)
                ws = torch.cat([ws[:, :cutoff], ws2[:, cutoff:]], dim=1)
        return ws

    def _opt_step(self, opt: torch.optim.Optimizer, module: nn.Module, loss: torch.Tensor) -> None:
        opt.zero_grad(set_to_none=True)
        loss.backward()
        self.ctx.sync_gradients(module.parameters())
        _nan_to_num_grads(module)
        opt.step()

    def train_step(self, real: torch.Tensor) -> Dict[str, float]:
        cfg, stats = self.cfg, {}
        n = real.shape[0]
        torch.manual_seed(step_seed(cfg.seed, self.ctx.rank, self.step))  # latents, noise, ADA
        # G main
        self.D.requires_grad_(False)
        fake = self.G.synthesis(self._mapping(n, update_emas=True))
        loss_g = g_nonsaturating_loss(self.D(self._aug(fake)))
        self._opt_step(self.opt_G, self.G, loss_g)
        stats["loss/G"] = float(loss_g.detach())
        # G reg: path length
        if cfg.pl_weight > 0 and self.g_lazy.is_due(self.step):
            ws = self._mapping(max(n // cfg.pl_batch_shrink, 1), update_emas=False)
            penalty = self.pl(self.G.synthesis(ws), ws)
            self._opt_step(self.opt_G, self.G, penalty.mean() * cfg.pl_weight * self.g_lazy.weight)
            stats["reg/pl_penalty"] = float(penalty.detach().mean())
            stats["reg/pl_mean"] = float(self.pl.pl_mean)
        self.D.requires_grad_(True)
        # D main
        with torch.no_grad():
            fake = self.G.synthesis(self._mapping(n, update_emas=False))
        real_logits = self.D(self._aug(real))
        loss_d = d_logistic_loss(real_logits, self.D(self._aug(fake)))
        self._opt_step(self.opt_D, self.D, loss_d)
        stats["loss/D"] = float(loss_d.detach())
        if self.augment is not None:
            self.augment.update(real_logits.detach())
            stats["ada/p"] = self.augment.probability
        # D reg: R1
        if cfg.r1_gamma > 0 and self.d_lazy.is_due(self.step):
            x = real.detach().requires_grad_(True)
            r1 = r1_penalty(self.D(self._aug(x)), x)
            self._opt_step(self.opt_D, self.D, r1.mean() * (cfg.r1_gamma / 2) * self.d_lazy.weight)
            stats["reg/r1"] = float(r1.detach().mean())
        self.G_ema.update(self.G)
        self.step += 1
        return stats

    # -- state -----------------------------------------------------------------------------------
    def state_dict(self) -> Dict[str, Any]:
        return {
            "config": asdict(self.cfg),
            "step": self.step,
            "generator_kwargs": self.cfg.generator_kwargs(),
            "discriminator_kwargs": self.cfg.discriminator_kwargs(),
            "G": self.G.state_dict(),
            "D": self.D.state_dict(),
            "G_ema": self.G_ema.state_dict(),
            "opt_G": self.opt_G.state_dict(),
            "opt_D": self.opt_D.state_dict(),
            "pl": self.pl.state_dict(),
            "augment": None if self.augment is None else self.augment.state_dict(),
            "world_size": self.ctx.world_size,
        }

    def load_state_dict(self, state: Dict[str, Any]) -> None:
        if state.get("world_size", 1) != self.ctx.world_size:
            raise ValueError(
                f"checkpoint: written by {state['world_size']} processes, resumed with "
                f"{self.ctx.world_size}; resume with the same number for an exact continuation"
            )
        self.G.load_state_dict(state["G"])
        self.D.load_state_dict(state["D"])
        self.G_ema.load_state_dict(state["G_ema"])
        self.opt_G.load_state_dict(state["opt_G"])
        self.opt_D.load_state_dict(state["opt_D"])
        self.pl.load_state_dict(state["pl"])
        if self.augment is not None and state["augment"] is not None:
            self.augment.load_state_dict(state["augment"])
        self.step = int(state["step"])

    def save(self) -> None:
        if self.ctx.is_main:
            atomic_save(self.state_dict(), self.checkpoint_path)
        self.ctx.barrier()

    # -- loop ------------------------------------------------------------------------------------
    def run(self, *, resume: bool = True) -> Dict[str, float]:
        cfg = self.cfg
        if resume and self.checkpoint_path.is_file():
            self.load_state_dict(
                load_checkpoint(self.checkpoint_path, map_location=self.ctx.device)
            )
        if self.ctx.is_main:
            atomic_write(
                self.out / "config.json",
                lambda f: f.write(json.dumps(asdict(cfg), indent=2).encode()),
            )
        stats: Dict[str, float] = {}
        batches = self._batches()
        t0 = time.perf_counter()
        with MetricsLogger(self.out, enabled=self.ctx.is_main) as log, GracefulInterrupt() as stop:
            while self.step < cfg.steps:
                stats = self.train_step(next(batches))
                if self.step % cfg.log_every == 0 or self.step == cfg.steps:
                    dt = time.perf_counter() - t0
                    log.log(
                        self.step,
                        {**stats, "speed/img_per_s": cfg.batch * cfg.log_every / max(dt, 1e-9)},
                    )
                    t0 = time.perf_counter()
                interrupted = self.ctx.any(stop.requested)
                if self.step % cfg.checkpoint_every == 0 or self.step == cfg.steps or interrupted:
                    self.save()
                if interrupted:
                    break
        return stats


def train(cfg: TrainConfig) -> Trainer:
    """Train (resuming from ``<out>/checkpoint.pt`` when present) and return the trainer."""
    trainer = Trainer(cfg)
    trainer.run()
    return trainer


def config_from_args(values: Dict[str, Any]) -> TrainConfig:
    """A :class:`TrainConfig` from ``{name: value}`` (unknown names are a clear error)."""
    names = {f.name for f in fields(TrainConfig)}
    unknown = sorted(set(values) - names)
    if unknown:
        raise ValueError(f"unknown training options {unknown}; expected some of {sorted(names)}")
    return TrainConfig(**values)
