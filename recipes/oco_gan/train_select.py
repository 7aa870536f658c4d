"""Model selection during training, as the paper does it ("we end training when the FID stops
improving ... select the best FID").

Every ``train.eval_every`` training images, :class:`ModelSelection` measures the FID of the EMA
generator on a fixed subset: the first ``train.eval_num`` validation images against as many
unconditional samples from fixed latents (the same at every evaluation), with the feature network
``train.eval_features``. The value goes to the run's metrics (``eval/fid``, ``eval/best_fid``;
TensorBoard too), and when it improves the checkpoint is also written as ``best.pt``. Every
``train.keep_every`` images a copy of the checkpoint is kept as
``snapshots/checkpoint_step<step>.pt``.

Evaluation draws from its own seeded generator and leaves every training state untouched, so a
run with evaluation trains exactly as one without, and the best value so far is part of the
checkpoint (a resumed run keeps selecting against it).
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any, Dict, Optional

import torch

from ganblocks.metrics import FrechetInceptionDistance

from .trainer_protocol import SelectionTrainer

__all__ = ["ModelSelection", "crossed"]

#: Seed of the fixed latents of the periodic FID.
EVAL_SEED = 20_220_101


def crossed(before: int, after: int, every: int) -> bool:
    """Whether a multiple of ``every`` lies in ``(before, after]`` (``every = 0``: never)."""
    return every > 0 and after // every > before // every


class ModelSelection:
    """Periodic FID of the EMA generator, ``best.pt`` and ``keep_every`` snapshots of a trainer.

    Args:
        trainer: The :class:`~recipes.oco_gan.train.OCOGANTrainer` it watches.
    """

    def __init__(self, trainer: SelectionTrainer) -> None:
        self.trainer = trainer
        t = trainer.cfg.train
        self.every, self.keep_every = t.eval_every, t.keep_every
        self.best: Optional[float] = None
        self.best_step: Optional[int] = None
        self._fid: Optional[FrechetInceptionDistance] = None
        if self.every and trainer.use_uncond:
            # Fail at start, not after hours of training, when the features cannot be loaded.
            from .evaluate import make_feature_extractor

            self._features = make_feature_extractor(t.eval_features, weights=t.eval_fid_weights,
                                                    device=trainer.device)
        elif self.every:
            raise ValueError("train.eval_every: the periodic FID needs unconditional samples; "
                             "train.mode=cond_only has none")

    # -- evaluation ------------------------------------------------------------------------------
    def _real_count(self) -> int:
        return min(self.trainer.cfg.train.eval_num, len(self.trainer.data.val))

    @torch.no_grad()
    def fid(self) -> float:
        """FID of the EMA generator on the fixed subset (every rank computes its shard)."""
        from .evaluate import shard_range

        tr = self.trainer
        ctx, n = tr.ctx, self._real_count()
        batch = max(1, tr.cfg.train.eval_batch)
        mine = shard_range(n, ctx.rank, ctx.world_size)  # this rank's part of the subset
        if self._fid is None:  # the real statistics, once per process
            self._fid = FrechetInceptionDistance(self._features)
            for start in range(mine.start, mine.stop, batch):
                images = torch.stack([tr.data.val.get_item(i, flip=False)["image"]
                                      for i in range(start, min(mine.stop, start + batch))])
                self._fid.update(images.to(tr.device, torch.float32), real=True)
        self._fid.reset(keep_real=True)
        G = tr.ema.shadow
        z = torch.randn(n, tr.cfg.model.z_dim, generator=torch.Generator().manual_seed(EVAL_SEED))
        for start in range(mine.start, mine.stop, batch):
            zz = z[start:min(mine.stop, start + batch)]
            fake = G(z=zz.to(tr.device, tr.dtype)).clamp(-1, 1)
            self._fid.update(fake.to(torch.float32), real=False)
        return self._fid.compute()

    def after_step(self, images_before: int) -> Dict[str, float]:
        """Evaluate / snapshot when the last step crossed ``eval_every`` / ``keep_every`` images.
        Returns the metrics to log (empty when nothing was evaluated)."""
        tr = self.trainer
        after = tr.images_seen
        logs: Dict[str, float] = {}
        if crossed(images_before, after, self.every):
            value = self.fid()
            improved = self.best is None or (math.isfinite(value) and value < self.best)
            if improved:
                self.best, self.best_step = value, tr.step
            logs = {"eval/fid": value, "eval/best_fid": float(self.best)}
            if improved:
                tr.save_checkpoint(tr.run_dir / "best.pt")
        if crossed(images_before, after, self.keep_every):
            tr.save_checkpoint(self.snapshot_path())
        return logs

    def snapshot_path(self) -> Path:
        """Where the snapshot of the current step goes."""
        return self.trainer.run_dir / "snapshots" / f"checkpoint_step{self.trainer.step:07d}.pt"

    # -- state -----------------------------------------------------------------------------------
    def state_dict(self) -> Dict[str, Any]:
        return {"best": self.best, "best_step": self.best_step}

    def load_state_dict(self, state: Optional[Dict[str, Any]]) -> None:
        state = state or {}
        self.best, self.best_step = state.get("best"), state.get("best_step")
