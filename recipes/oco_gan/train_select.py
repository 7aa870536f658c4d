"""Model selection during training, as the paper does it ("we end training when the FID stops
improving ... select the best FID").

Every ``train.eval_every`` training images, :class:`ModelSelection` measures the EMA generator on
fixed sample sets against the same real statistics: the first ``train.eval_num`` (labelled)
validation images are the reals; the FID takes as many unconditional samples from fixed latents,
the CFID (``train.eval_cfid``, on by default) one conditional sample on each of those images' label
maps with fixed noise, and with ``train.eval_segmenter`` (a TorchScript segmenter) the mIoU of
those conditional samples against their label maps. The sample sets are the same at every
evaluation, so the curve moves only with the generator. Each branch is measured only when the run
trains it (``train.mode``). The feature network is ``train.eval_features``.

The values go to the run's metrics (``eval/fid``, ``eval/best_fid``, ``eval/cfid``,
``eval/best_cfid``, ``eval/miou``; TensorBoard too) and, with the step and images seen, to the curve
``selection.json`` in the run directory (rewritten atomically after every evaluation). When the
FID improves the checkpoint is also written as ``best.pt``; when the CFID improves, as
``best_cfid.pt``. Every ``train.keep_every`` images a copy of the checkpoint is kept as
``snapshots/checkpoint_step<step>.pt``.

Evaluation draws from its own seeded generators and leaves every training state untouched, so a
run with evaluation trains exactly as one without; the curve and the best values so far are part
of the checkpoint, so a resumed run continues the same curve (an evaluation replayed after a
crash is not recorded twice) and keeps selecting against them.
"""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Any, Dict, List, Optional

import torch

from ganblocks.metrics import FrechetInceptionDistance, MeanIoU

from .trainer_protocol import SelectionTrainer

__all__ = ["CURVE_FILE", "ModelSelection", "crossed", "read_curve"]

#: Seed of the fixed latents of the periodic FID (and, shifted by one, of the CFID's noise).
EVAL_SEED = 20_220_101
#: The curve's file name in the run directory.
CURVE_FILE = "selection.json"
CURVE_FORMAT = "oco-gan-selection"
#: Metric -> (file of its best checkpoint, key in the logged metrics).
BEST_FILES = {"FID": "best.pt", "CFID": "best_cfid.pt"}


def crossed(before: int, after: int, every: int) -> bool:
    """Whether a multiple of ``every`` lies in ``(before, after]`` (``every = 0``: never)."""
    return every > 0 and after // every > before // every


def read_curve(run_dir: Path) -> Optional[Dict[str, Any]]:
    """The curve a run wrote (:data:`CURVE_FILE`), or ``None`` when it has none.

    ``points`` is a list of ``{"step", "images", "FID"?, "CFID"?, "mIoU"?}`` in training order;
    ``best`` maps each measured metric (FID, CFID: lower is better) to ``{"value", "step"}``.
    """
    path = Path(run_dir) / CURVE_FILE
    if not path.is_file():
        return None
    data = json.loads(path.read_text())
    if data.get("format") != CURVE_FORMAT:
        raise ValueError(f"{path}: not a model-selection curve (format {data.get('format')!r})")
    return data


class ModelSelection:
    """Periodic FID / CFID / mIoU of the EMA generator, the best checkpoints and ``keep_every``
    snapshots of a trainer.

    Args:
        trainer: The :class:`~recipes.oco_gan.train.OCOGANTrainer` it watches.
    """

    def __init__(self, trainer: SelectionTrainer) -> None:
        self.trainer = trainer
        t = trainer.cfg.train
        self.every, self.keep_every = t.eval_every, t.keep_every
        self.do_fid = bool(self.every) and trainer.use_uncond
        self.do_cfid = bool(self.every) and trainer.use_cond and t.eval_cfid
        self.do_miou = self.do_cfid and t.eval_segmenter is not None
        self.best: Optional[float] = None  # the FID's (kept under this name: older checkpoints)
        self.best_step: Optional[int] = None
        self.best_cfid: Optional[float] = None
        self.best_cfid_step: Optional[int] = None
        self.points: List[Dict[str, Any]] = []
        self._fid: Optional[FrechetInceptionDistance] = None
        self._cfid: Optional[FrechetInceptionDistance] = None
        self._labels: Optional[torch.Tensor] = None
        if self.every and not (self.do_fid or self.do_cfid):
            raise ValueError("train.eval_every: nothing to measure: train.mode="
                             f"{t.mode} trains no unconditional branch and train.eval_cfid is off")
        if self.every and trainer.ctx.is_main:
            have = len(self._real_indices())
            if have < t.eval_num:
                print(f"oco-gan: note: train.eval_num={t.eval_num} but the validation split has "
                      f"{have} labelled images: the curves use {have} (FID is biased upwards at "
                      "small sizes, so compare curves of the same size only)", flush=True)
        if self.every:
            # Fail at start, not after hours of training, when the features cannot be loaded.
            from .evaluate import make_feature_extractor

            self._features = make_feature_extractor(t.eval_features, weights=t.eval_fid_weights,
                                                    device=trainer.device)
        if self.do_miou:
            from .segmenter import load_segmenter

            self._segmenter, meta = load_segmenter(t.eval_segmenter, device=trainer.device)
            from .data.datasets import evaluated_classes

            cfg = trainer.cfg
            n = cfg.model.num_classes
            if meta.get("num_classes") not in (None, n):
                raise ValueError(f"train.eval_segmenter: {t.eval_segmenter} was trained for "
                                 f"{meta['num_classes']} classes, the model has {n}")
            # The data set's standard classes, as ``oco-gan evaluate`` averages over.
            self._classes = evaluated_classes(
                cfg.data.name, n, cfg.model.dontcare_index,
                class_names=getattr(trainer.data.val, "class_names", None)).label_ids

    # -- evaluation ------------------------------------------------------------------------------
    def _real_indices(self) -> List[int]:
        val = self.trainer.data.val
        mask = getattr(val, "labelled_mask", None)
        labelled = [i for i in range(len(val)) if mask is None or bool(mask[i])]
        return labelled[:self.trainer.cfg.train.eval_num]

    def _my_part(self) -> range:
        from .evaluate import shard_range

        ctx = self.trainer.ctx
        return shard_range(len(self._real_indices()), ctx.rank, ctx.world_size)

    def _batches(self, part: range) -> List[range]:
        batch = max(1, self.trainer.cfg.train.eval_batch)
        return [range(s, min(part.stop, s + batch)) for s in range(part.start, part.stop, batch)]

    def _feats(self, images: torch.Tensor) -> torch.Tensor:
        out = self._features(images.to(torch.float32))
        return out.reshape(out.shape[0], -1)

    def _reals(self) -> None:
        """Real statistics (shared by the FID and the CFID) and the label maps of the
        conditional samples, once per process."""
        tr = self.trainer
        indices, part = self._real_indices(), self._my_part()
        self._fid = FrechetInceptionDistance(_identity)
        self._cfid = FrechetInceptionDistance(_identity)
        labels = []
        for rows in self._batches(part):
            items = [tr.data.val.get_item(indices[i], flip=False) for i in rows]
            feats = self._feats(torch.stack([it["image"] for it in items]).to(tr.device))
            self._fid.update(feats, real=True)
            self._cfid.update(feats, real=True)
            labels.append(torch.stack([it["label"] for it in items]))
        self._labels = torch.cat(labels) if labels else torch.zeros(0, dtype=torch.long)

    @torch.no_grad()
    def fid(self) -> float:
        """FID of the EMA generator's unconditional samples on the fixed set (every rank
        computes its shard)."""
        tr = self.trainer
        if self._fid is None:
            self._reals()
        assert self._fid is not None
        self._fid.reset(keep_real=True)
        n, part = len(self._real_indices()), self._my_part()
        z = torch.randn(n, tr.cfg.model.z_dim, generator=torch.Generator().manual_seed(EVAL_SEED))
        for rows in self._batches(part):
            fake = tr.ema.shadow(z=z[rows.start:rows.stop].to(tr.device, tr.dtype)).clamp(-1, 1)
            self._fid.update(self._feats(fake), real=False)
        return self._fid.compute()

    @torch.no_grad()
    def cfid(self) -> Dict[str, float]:
        """CFID of the EMA generator's conditional samples on the fixed label maps (and their
        mIoU under ``train.eval_segmenter``)."""
        tr = self.trainer
        if self._fid is None:
            self._reals()
        assert self._cfid is not None and self._labels is not None
        self._cfid.reset(keep_real=True)
        m = tr.cfg.model
        n, part = len(self._real_indices()), self._my_part()
        z = torch.randn(n, m.z_dim, generator=torch.Generator().manual_seed(EVAL_SEED + 1))
        miou = MeanIoU(m.num_classes, ignore_index=m.dontcare_index, classes=self._classes,
                       device=tr.device) if self.do_miou else None
        for rows in self._batches(part):
            label = self._labels[rows.start - part.start:rows.stop - part.start].to(tr.device)
            fake = tr.ema.shadow(label=label, z=z[rows.start:rows.stop].to(tr.device, tr.dtype))
            fake = fake.clamp(-1, 1).to(torch.float32)
            self._cfid.update(self._feats(fake), real=False)
            if miou is not None:
                from .segmenter import segment

                logits = segment(self._segmenter, fake, tuple(label.shape[1:]), m.num_classes)
                miou.update(logits.argmax(dim=1), label)
        out = {"CFID": self._cfid.compute()}
        if miou is not None:
            out["mIoU"] = miou.compute().miou
        return out

    def evaluate(self) -> Dict[str, float]:
        """One point of the curve: the metrics of the branches the run trains."""
        values: Dict[str, float] = {}
        if self.do_fid:
            values["FID"] = self.fid()
        if self.do_cfid:
            values.update(self.cfid())
        return values

    def after_step(self, images_before: int) -> Dict[str, float]:
        """Evaluate / snapshot when the last step crossed ``eval_every`` / ``keep_every`` images.
        Returns the metrics to log (empty when nothing was evaluated)."""
        tr = self.trainer
        logs: Dict[str, float] = {}
        if crossed(images_before, tr.images_seen, self.every):
            values = self.evaluate()
            self.points.append({"step": tr.step, "images": tr.images_seen, **values})
            improved = []
            if "FID" in values and _better(values["FID"], self.best):
                self.best, self.best_step = values["FID"], tr.step
                improved.append("FID")
            if "CFID" in values and _better(values["CFID"], self.best_cfid):
                self.best_cfid, self.best_cfid_step = values["CFID"], tr.step
                improved.append("CFID")
            for key, value in values.items():
                logs[f"eval/{key.lower()}"] = value
            if self.best is not None:
                logs["eval/best_fid"] = float(self.best)
            if self.best_cfid is not None:
                logs["eval/best_cfid"] = float(self.best_cfid)
            for metric in improved:
                tr.save_checkpoint(tr.run_dir / BEST_FILES[metric])
            self._write_curve()
        if crossed(images_before, tr.images_seen, self.keep_every):
            tr.save_checkpoint(self.snapshot_path())
        return logs

    def curve(self) -> Dict[str, Any]:
        """The curve so far (what :data:`CURVE_FILE` holds)."""
        t = self.trainer.cfg.train
        best = {}
        if self.best is not None:
            best["FID"] = {"value": self.best, "step": self.best_step}
        if self.best_cfid is not None:
            best["CFID"] = {"value": self.best_cfid, "step": self.best_cfid_step}
        return {"format": CURVE_FORMAT, "every_images": self.every,
                "num_real": len(self._real_indices()), "features": t.eval_features,
                "segmenter": t.eval_segmenter, "points": list(self.points), "best": best}

    def _write_curve(self) -> None:
        if not self.trainer.ctx.is_main:
            return
        from ganblocks.train.checkpoint import atomic_write

        text = json.dumps(self.curve(), indent=1) + "\n"
        atomic_write(self.trainer.run_dir / CURVE_FILE, lambda f: f.write(text.encode("utf-8")))

    def snapshot_path(self) -> Path:
        """Where the snapshot of the current step goes."""
        return self.trainer.run_dir / "snapshots" / f"checkpoint_step{self.trainer.step:07d}.pt"

    # -- state -----------------------------------------------------------------------------------
    def state_dict(self) -> Dict[str, Any]:
        return {"best": self.best, "best_step": self.best_step, "best_cfid": self.best_cfid,
                "best_cfid_step": self.best_cfid_step, "points": list(self.points)}

    def load_state_dict(self, state: Optional[Dict[str, Any]]) -> None:
        state = state or {}
        self.best, self.best_step = state.get("best"), state.get("best_step")
        self.best_cfid, self.best_cfid_step = state.get("best_cfid"), state.get("best_cfid_step")
        self.points = list(state.get("points", []))
        if self.points:  # the curve file as of the checkpoint (drops points replayed after it)
            self._write_curve()


def _identity(features: torch.Tensor) -> torch.Tensor:
    return features


def _better(value: float, best: Optional[float]) -> bool:
    return math.isfinite(value) and (best is None or value < best)
