"""Evaluation of a trained OCO-GAN run: FID, CFID, KID and mIoU, as in the paper's appendix C.5.

:func:`evaluate_run` (what ``oco-gan evaluate`` runs) measures, with the EMA generator of a
checkpoint:

* **FID**: unconditional samples against the real validation images;
* **CFID**: conditional samples, one per validation label map, against the same images;
* **KID** / **CKID**: the kernel inception distance of the same two sample sets;
* **mIoU**: a segmentation network run on the conditional samples, scored against the label maps
  they were generated from (one dataset-level confusion matrix over the data set's evaluated
  classes: the 19 ``trainIds`` for Cityscapes, ADE20K's 150 classes without "other", COCO-Stuff's
  182 without "unlabeled", any other data set every class but don't-care; see
  :func:`~recipes.oco_gan.data.evaluated_classes`), and the same network's mIoU on the real
  validation images (the reference a generator's mIoU is read against; not a bound: images
  easier to segment than real ones can score above it).

A run trained with ``train.mode=uncond_only`` has an untrained conditional branch, and one trained
with ``cond_only`` an untrained unconditional branch: the metrics of that branch (CFID, CKID and
mIoU; or FID and KID) are skipped, and the results say so, unless ``all_branches=True`` asks for
them (they are then flagged as measuring an untrained branch). A stage-wise run (one started from
another run's weights, ``train.init_from``, or with frozen parts, ``train.freeze``) trained its
other branch in an earlier stage: nothing is skipped.

With ``repeats=K`` (5 by default, the paper's five sample sets) every number is measured on ``K``
sample sets drawn with seeds
``seed, seed + 1, …`` and reported as mean and standard deviation, like the paper's appendix
tables. The real statistics are computed once.

Under ``torchrun`` every rank takes a contiguous part of the validation images and of the samples;
the latents of the whole set are drawn identically on every rank, feature statistics and confusion
matrices are summed over ranks, so the numbers equal a single-process run up to float rounding.

Features: ``"inception"`` (default) is the TF-Inception-v3 pool3 network of FID with its offline
weights (:class:`ganblocks.metrics.FIDInceptionV3`); ``"randconv"`` is :class:`RandomConvFeatures`,
a tiny seeded random network for smoke tests and machines without the weights, whose numbers are
**not** comparable with any published FID/KID.
"""

from __future__ import annotations

import json
import math
import os
import statistics
import time
import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Dict, List, Optional, Sequence, Tuple, Union

import torch
import torch.nn.functional as F
from torch import nn

from ganblocks.train import DistributedContext, atomic_write

__all__ = [
    "FEATURES",
    "RandomConvFeatures",
    "evaluate_run",
    "make_feature_extractor",
    "results_markdown",
    "shard_range",
]

PathLike = Union[str, "os.PathLike[str]"]

#: Feature extractors accepted by ``features=`` / ``--features``.
FEATURES = ("inception", "randconv")

#: Metric keys of the results, in table order: (key, label in the Markdown table, scale, better).
_TABLE = (
    ("FID", "FID", 1.0, "↓"),
    ("CFID", "CFID", 1.0, "↓"),
    ("KID", "KID ×10³", 1e3, "↓"),
    ("CKID", "CKID ×10³", 1e3, "↓"),
    ("mIoU", "mIoU (%)", 100.0, "↑"),
)


class RandomConvFeatures(nn.Module):
    """A stand-in feature extractor: a seeded random conv net, ``[N, 3, H, W] → [N, dim]``.

    Images in ``[-1, 1]`` are resized to 32 × 32 (bilinear, antialiased), passed through three
    stride-2 3×3 convolutions with fixed Gaussian weights (He scaling, drawn from ``seed``) and
    leaky ReLUs, and averaged over space. Cheap and deterministic, for tests and for trying the
    pipeline without the Inception weights. **FID/KID computed with it are not comparable with
    published numbers**, nor with numbers from the Inception network.

    Args:
        dim: Output features.
        seed: Seed of the weights.

    Example:
        >>> net = RandomConvFeatures()
        >>> net(torch.zeros(2, 3, 16, 16)).shape
        torch.Size([2, 64])
        >>> torch.equal(net.weight_0, RandomConvFeatures().weight_0)  # same seed, same weights
        True
    """

    def __init__(self, *, dim: int = 64, seed: int = 0) -> None:
        super().__init__()
        gen = torch.Generator().manual_seed(seed)
        channels = [3, 16, 32, dim]
        for k, (cin, cout) in enumerate(zip(channels[:-1], channels[1:])):
            w = torch.randn(cout, cin, 3, 3, generator=gen) * math.sqrt(2.0 / (cin * 9))
            self.register_buffer(f"weight_{k}", w)
        self.depth = len(channels) - 1

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        if not isinstance(images, torch.Tensor) or images.ndim != 4 or images.shape[1] != 3:
            raise ValueError("images: expected [N, 3, H, W] in [-1, 1]")
        x = images.to(self.weight_0.dtype).clamp(-1.0, 1.0)
        x = F.interpolate(x, size=(32, 32), mode="bilinear", align_corners=False, antialias=True)
        for k in range(self.depth):
            x = F.leaky_relu(F.conv2d(x, getattr(self, f"weight_{k}"), stride=2, padding=1), 0.2)
        return x.mean(dim=(2, 3))


def make_feature_extractor(
    name: str,
    *,
    weights: Optional[PathLike] = None,
    protocol: str = "pytorch-fid",
    device: Optional[Union[str, torch.device]] = None,
) -> nn.Module:
    """The feature network ``name``: ``"inception"`` (FID's network) or ``"randconv"``.

    ``"inception"`` loads the weights from ``weights``, ``$GANBLOCKS_FID_WEIGHTS`` or an installed
    package (see :func:`ganblocks.metrics.find_fid_weights`) and raises ``FileNotFoundError``
    listing the options when there are none.

    Example:
        >>> make_feature_extractor("randconv")(torch.zeros(1, 3, 8, 8)).shape
        torch.Size([1, 64])
    """
    if name == "inception":
        from ganblocks.metrics import FIDInceptionV3

        return FIDInceptionV3.from_pretrained(weights, protocol=protocol, device=device)
    if name == "randconv":
        net = RandomConvFeatures()
        return net.to(device) if device is not None else net
    raise ValueError(f"features: expected one of {FEATURES}, got {name!r}")


def shard_range(n: int, rank: int, world: int) -> range:
    """Rank ``rank``'s contiguous part of ``range(n)`` (sizes differ by at most one).

    Example:
        >>> [list(shard_range(5, r, 2)) for r in range(2)]
        [[0, 1], [2, 3, 4]]
    """
    return range(n * rank // world, n * (rank + 1) // world)


def _identity(features: torch.Tensor) -> torch.Tensor:
    """Features pass through: the metrics are fed features extracted once per image."""
    return features


def _summary(values: Sequence[float]) -> Dict[str, Any]:
    values = [float(v) for v in values]
    return {
        "mean": statistics.fmean(values),
        "std": statistics.stdev(values) if len(values) > 1 else None,
        "values": values,
    }


def _label_dtype(num_classes: int) -> torch.dtype:
    return torch.uint8 if num_classes <= 256 else torch.int16


def _write_atomic(path: Path, text: str) -> None:
    atomic_write(path, lambda f: f.write(text.encode("utf-8")))


def evaluate_run(
    run_dir: PathLike,
    *,
    ckpt: Optional[PathLike] = None,
    segmenter: Optional[PathLike] = None,
    repeats: int = 5,
    num_fake: Optional[int] = None,
    num_real: Optional[int] = None,
    batch: int = 32,
    features: str = "inception",
    fid_weights: Optional[PathLike] = None,
    fid_protocol: str = "pytorch-fid",
    kid_subsets: int = 100,
    kid_subset_size: int = 1000,
    seed: int = 0,
    ema: bool = True,
    data_root: Optional[str] = None,
    miou_classes: str = "standard",
    all_branches: bool = False,
    ctx: Optional[DistributedContext] = None,
    progress: bool = False,
    write: bool = True,
) -> Dict[str, Any]:
    """FID, CFID, KID, CKID and mIoU of a run's generator (see the module docstring).

    Args:
        run_dir: The run directory (results go to ``run_dir/eval/``).
        ckpt: Checkpoint to evaluate (default ``run_dir/checkpoint.pt``).
        segmenter: TorchScript segmenter for mIoU (:mod:`recipes.oco_gan.segmenter`); no mIoU
            without it.
        repeats: Number of sample sets (``K``, default 5 as in the paper); mean and std are
            over them.
        num_fake: Unconditional samples per set (default: as many as real images).
        num_real: Use only the first this many validation images (default: all; fewer are for
            quick checks and are not comparable with the paper).
        batch: Images per forward pass on each rank.
        features: ``"inception"`` or ``"randconv"`` (:data:`FEATURES`).
        fid_weights: Weights file of the Inception network.
        fid_protocol: Input protocol of the Inception network (``"pytorch-fid"`` or ``"tf"``).
        kid_subsets: Subsets of the KID estimate.
        kid_subset_size: Samples per KID subset (capped by the set sizes).
        seed: Seed of sample set 0 (set ``k`` uses ``seed + k``).
        ema: Use the EMA generator (``False``: the raw trained weights).
        data_root: Data set root overriding the run's ``data.root``.
        miou_classes: ``"standard"`` (the data set's evaluated classes, e.g. Cityscapes' 19
            ``trainIds``) or ``"all"`` (every class but don't-care).
        all_branches: Also measure the branch that the run's ``train.mode`` did not train
            (flagged in the results); by default its metrics are skipped.
        ctx: Distributed context (default: a single process on CPU).
        progress: Progress bars (rank 0).
        write: Write ``results.json`` and ``results.md`` (rank 0).

    Returns:
        The results dict (identical on every rank), also written as ``eval/results.json``.
    """
    start_time = time.time()
    ctx = ctx or DistributedContext()
    for name, value, low in (("repeats", repeats, 1), ("batch", batch, 1),
                             ("kid_subsets", kid_subsets, 1),
                             ("kid_subset_size", kid_subset_size, 2)):
        if isinstance(value, bool) or not isinstance(value, int) or value < low:
            raise ValueError(f"{name}: expected an integer >= {low}, got {value!r}")
    if features not in FEATURES:
        raise ValueError(f"features: expected one of {FEATURES}, got {features!r}")
    if miou_classes not in ("standard", "all"):
        raise ValueError(f"miou_classes: expected 'standard' or 'all', got {miou_classes!r}")
    run_dir = Path(run_dir).expanduser()
    if not run_dir.is_dir():
        raise FileNotFoundError(f"run: no run directory at {run_dir}")
    ckpt_path = Path(ckpt).expanduser() if ckpt is not None else run_dir / "checkpoint.pt"

    plan = _plan(ckpt_path, ema=ema, data_root=data_root, miou_classes=miou_classes,
                 all_branches=all_branches, num_real=num_real, num_fake=num_fake, ctx=ctx)
    extractor = make_feature_extractor(features, weights=fid_weights, protocol=fid_protocol,
                                       device=ctx.device)
    seg_module, seg_meta = (_open_segmenter(segmenter, plan, ctx=ctx)
                            if segmenter is not None and plan.do_cond else (None, {}))
    meters = _Meters(extractor, kid_subsets=kid_subsets, kid_subset_size=kid_subset_size,
                     seed=seed)
    if progress and ctx.is_main:
        from tqdm import tqdm

        total = math.ceil(plan.n_real / ctx.world_size) + repeats * math.ceil(
            (plan.n_fake * plan.do_uncond + plan.n_real * plan.do_cond) / ctx.world_size)
        meters.bar = tqdm(total=total, unit="img", dynamic_ncols=True, desc="oco-gan evaluate")

    my_labels, miou_real = _real_pass(plan, meters, seg_module, batch=batch, ctx=ctx)
    seeds = [seed + k for k in range(repeats)]
    per_set, ious = _sample_sets(plan, meters, seg_module, my_labels, seeds=seeds, batch=batch,
                                 ctx=ctx)
    if meters.bar is not None:
        meters.bar.close()

    metrics = {key: _summary(values) for key, values in per_set.items() if values}
    results = _results(plan, metrics, run_dir=run_dir, ckpt_path=ckpt_path, ema=ema,
                       repeats=repeats, seeds=seeds, features=features,
                       fid_protocol=fid_protocol, num_real=num_real,
                       kid=(kid_subsets, kid_subset_size), world_size=ctx.world_size)
    if seg_module is not None:
        real_result = miou_real.compute()
        mean_iou = torch.stack(ious).nanmean(dim=0).tolist()  # a class may be absent in a set
        results["segmenter"] = {
            "path": str(segmenter),
            "miou_real": real_result.miou,
            "metadata": seg_meta or None,
        }
        results["iou_per_class"] = {n: (None if math.isnan(v) else v)
                                    for n, v in zip(plan.ev.names, mean_iou)}
    results["seconds"] = time.time() - start_time
    if write and ctx.is_main:
        out = run_dir / "eval"
        _write_atomic(out / "results.json", json.dumps(results, indent=2) + "\n")
        _write_atomic(out / "results.md", results_markdown(results))
    ctx.barrier()
    return results


@dataclass
class _Plan:
    """What one evaluation measures: the generator, the validation images it is compared with,
    the branches it measures and the classes the mIoU averages over."""

    G: nn.Module
    cfg: Any
    step: int
    val: Any
    #: ``(metric, branch)`` pairs of the branch the run's ``train.mode`` left untrained.
    untrained: Tuple[Tuple[str, str], ...]
    #: Metric → why it is skipped.
    skipped: Dict[str, str]
    ev: Any
    val_indices: List[int]
    n_fake: int

    @property
    def n_real(self) -> int:
        return len(self.val_indices)

    @property
    def do_uncond(self) -> bool:
        return "FID" not in self.skipped

    @property
    def do_cond(self) -> bool:
        return "CFID" not in self.skipped


def _plan(ckpt_path: Path, *, ema: bool, data_root: Optional[str], miou_classes: str,
          all_branches: bool, num_real: Optional[int], num_fake: Optional[int],
          ctx: DistributedContext) -> _Plan:
    """Load the generator and the validation set; decide the branches and the set sizes."""
    from .data.datasets import evaluated_classes
    from .generate import load_generator
    from .segmenter import real_dataset

    loaded = load_generator(ckpt_path, device=ctx.device, ema=ema)
    cfg = loaded.config
    m = cfg.model
    val = real_dataset(cfg, "val", root=data_root)
    untrained = () if _stagewise(cfg) else _UNTRAINED.get(cfg.train.mode, ())
    skipped = {} if all_branches else {
        key: f"train.mode={cfg.train.mode}: the {branch} branch was not trained"
        for key, branch in untrained}
    ev = evaluated_classes(cfg.data.name, m.num_classes, m.dontcare_index, protocol=miou_classes,
                           class_names=getattr(val, "class_names", None))
    mask = getattr(val, "labelled_mask", None)
    val_indices = [i for i in range(len(val)) if mask is None or bool(mask[i])]
    if num_real is not None:
        if isinstance(num_real, bool) or not isinstance(num_real, int) or num_real < 2:
            raise ValueError(f"num_real: expected an integer >= 2, got {num_real!r}")
        val_indices = val_indices[:num_real]
    n_real = len(val_indices)
    n_fake = n_real if num_fake is None else num_fake
    if isinstance(n_fake, bool) or not isinstance(n_fake, int) or n_fake < 2:
        raise ValueError(f"num_fake: expected an integer >= 2, got {num_fake!r}")
    for name, n in (("validation images (num_real)", n_real), ("num_fake", n_fake)):
        if n < max(2, ctx.world_size):
            raise ValueError(f"{name}: {n} is too few; need at least 2 and at least one per "
                             f"process ({ctx.world_size})")
    return _Plan(G=loaded.G, cfg=cfg, step=loaded.step, val=val, untrained=untrained,
                 skipped=skipped, ev=ev, val_indices=val_indices, n_fake=n_fake)


def _open_segmenter(segmenter: PathLike, plan: _Plan, *,
                    ctx: DistributedContext) -> Tuple[Any, Dict[str, Any]]:
    """The TorchScript segmenter and its metadata, checked against the run's model."""
    from .segmenter import load_segmenter

    m = plan.cfg.model
    seg_module, seg_meta = load_segmenter(segmenter, device=ctx.device)
    if seg_meta and seg_meta.get("num_classes") not in (None, m.num_classes):
        raise ValueError(f"segmenter: {segmenter} was trained for {seg_meta['num_classes']} "
                         f"classes, the run's model has {m.num_classes}")
    seg_res = seg_meta.get("resolution")
    if seg_res is not None and list(seg_res) != list(m.resolution) and ctx.is_main:
        warnings.warn(f"segmenter: {segmenter} was trained at {seg_res[0]}x{seg_res[1]}, the run "
                      f"generates {m.resolution[0]}x{m.resolution[1]}: its mIoU will be lower "
                      "than with a segmenter trained at the run's resolution", stacklevel=3)
    return seg_module, seg_meta


class _Meters:
    """FID and KID of one feature network: real statistics kept, fakes measured set by set
    (features are extracted once per image and fed to both); the progress bar, if any."""

    def __init__(self, extractor: nn.Module, *, kid_subsets: int, kid_subset_size: int,
                 seed: int) -> None:
        from ganblocks.metrics import FrechetInceptionDistance, KernelInceptionDistance

        self.extractor = extractor
        self.fid = FrechetInceptionDistance(_identity)
        self.kid = KernelInceptionDistance(_identity, num_subsets=kid_subsets,
                                           subset_size=kid_subset_size, seed=seed)
        self.bar: Optional[Any] = None

    def add(self, images: torch.Tensor, *, real: bool) -> None:
        with torch.no_grad():
            out = self.extractor(images)
        f = out.reshape(out.shape[0], -1)
        self.fid.update(f, real=real)
        self.kid.update(f, real=real)

    def new_set(self) -> None:
        """Forget the fakes (the real statistics stay)."""
        self.fid.reset(keep_real=True)
        self.kid.reset(keep_real=True)

    def advance(self, k: int) -> None:
        if self.bar is not None:
            self.bar.update(k)


def _real_pass(plan: _Plan, meters: _Meters, seg_module: Any, *, batch: int,
               ctx: DistributedContext) -> Tuple[torch.Tensor, Any]:
    """Features of this rank's real images, once; returns their label maps (which condition
    the conditional samples) and the segmenter's mIoU meter on the real images."""
    from ganblocks.metrics import MeanIoU

    from .segmenter import pair_batches, segment

    m, device = plan.cfg.model, ctx.device
    my_real = [plan.val_indices[i] for i in shard_range(plan.n_real, ctx.rank, ctx.world_size)]
    labels_kept: List[torch.Tensor] = []
    miou_real = MeanIoU(m.num_classes, ignore_index=m.dontcare_index, classes=plan.ev.label_ids,
                        device=device)
    for images, labels in pair_batches(plan.val, my_real, batch,
                                       num_workers=plan.cfg.data.num_workers):
        images = images.to(device)
        meters.add(images, real=True)
        labels_kept.append(labels.to(_label_dtype(m.num_classes)))
        if seg_module is not None:
            logits = segment(seg_module, images, tuple(labels.shape[1:]), m.num_classes)
            miou_real.update(logits.argmax(dim=1), labels.to(device))
        meters.advance(len(labels))
    return torch.cat(labels_kept), miou_real


def _sample_sets(plan: _Plan, meters: _Meters, seg_module: Any, my_labels: torch.Tensor, *,
                 seeds: Sequence[int], batch: int,
                 ctx: DistributedContext) -> Tuple[Dict[str, List[float]], List[torch.Tensor]]:
    """Every metric on every sample set: ``(metric → value per set, per-class IoU per set)``.

    Set ``k`` draws all ``n_fake`` unconditional and ``n_real`` conditional latents from
    ``seeds[k]`` (identically on every rank) and this rank generates its part of each."""
    from ganblocks.metrics import MeanIoU

    from .segmenter import segment

    m, device, G = plan.cfg.model, ctx.device, plan.G
    dtype = G.synthesis.const.dtype
    per_set: Dict[str, List[float]] = {key: [] for key, *_ in _TABLE}
    ious: List[torch.Tensor] = []
    fake_part = shard_range(plan.n_fake, ctx.rank, ctx.world_size)
    real_part = shard_range(plan.n_real, ctx.rank, ctx.world_size)
    for set_seed in seeds:
        gen = torch.Generator().manual_seed(set_seed)
        z_u = torch.randn(plan.n_fake, m.z_dim, generator=gen)[fake_part.start:fake_part.stop]
        z_c = torch.randn(plan.n_real, m.z_dim, generator=gen)[real_part.start:real_part.stop]
        if plan.do_uncond:
            meters.new_set()
            for zb in z_u.split(batch):
                with torch.no_grad():
                    images = G(z=zb.to(device, dtype)).clamp(-1.0, 1.0)
                meters.add(images, real=False)
                meters.advance(len(zb))
            per_set["FID"].append(meters.fid.compute())
            per_set["KID"].append(meters.kid.compute().mean)
        if not plan.do_cond:
            continue
        meters.new_set()
        miou = MeanIoU(m.num_classes, ignore_index=m.dontcare_index, classes=plan.ev.label_ids,
                       device=device)
        for zb, lb in zip(z_c.split(batch), my_labels.split(batch)):
            lb = lb.long().to(device)
            with torch.no_grad():
                images = G(label=lb, z=zb.to(device, dtype)).clamp(-1.0, 1.0)
            meters.add(images, real=False)
            if seg_module is not None:
                logits = segment(seg_module, images, tuple(lb.shape[1:]), m.num_classes)
                miou.update(logits.argmax(dim=1), lb)
            meters.advance(len(zb))
        per_set["CFID"].append(meters.fid.compute())
        per_set["CKID"].append(meters.kid.compute().mean)
        if seg_module is not None:
            result = miou.compute()
            per_set["mIoU"].append(result.miou)
            ious.append(result.iou)
    return per_set, ious


def _results(plan: _Plan, metrics: Dict[str, Any], *, run_dir: Path, ckpt_path: Path,
             ema: bool, repeats: int, seeds: List[int], features: str, fid_protocol: str,
             num_real: Optional[int], kid: Tuple[int, int], world_size: int) -> Dict[str, Any]:
    """The results dict, without the segmenter's entries and the time."""
    cfg, ev = plan.cfg, plan.ev
    kid_subsets, kid_subset_size = kid
    return {
        "format": "oco-gan-eval",
        "version": 1,
        "run": str(run_dir),
        "checkpoint": str(ckpt_path),
        "step": plan.step,
        "generator": "ema" if ema else "raw",
        "preset": cfg.preset,
        "dataset": cfg.data.name,
        "split": "val",
        "resolution": list(cfg.model.resolution),
        "num_real": plan.n_real,
        "num_fake": plan.n_fake,
        "num_cond": plan.n_real,
        "repeats": repeats,
        "seeds": seeds,
        "features": features,
        "fid_protocol": fid_protocol if features == "inception" else None,
        "comparable_to_published": (features == "inception" and num_real is None
                                    and plan.n_fake == plan.n_real),
        "kid": {"num_subsets": kid_subsets,
                "subset_size": min(kid_subset_size, plan.n_real, plan.n_fake)},
        "world_size": world_size,
        "train_mode": cfg.train.mode,
        "metrics": metrics,
        "skipped": plan.skipped,
        "untrained_branch": [key for key, _ in plan.untrained if key in metrics],
        "miou_classes": {"protocol": ev.protocol, "num_classes": len(ev.label_ids),
                         "label_ids": list(ev.label_ids), "names": list(ev.names)},
        "segmenter": None,
        "seconds": None,
    }


#: Metrics of the branch a training mode leaves untrained: mode → ((metric, branch), ...).
_UNTRAINED = {
    "uncond_only": (("CFID", "conditional"), ("CKID", "conditional"), ("mIoU", "conditional")),
    "cond_only": (("FID", "unconditional"), ("KID", "unconditional")),
}


def _stagewise(cfg: Any) -> bool:
    """Whether a run continued from another run's weights (``train.init_from``) or froze parts
    (``train.freeze``): a stage-wise run, whose other branch was trained in an earlier stage."""
    t = cfg.train
    return bool(getattr(t, "init_from", None)) or bool(getattr(t, "freeze", None))


def _fmt(value: Optional[float], scale: float) -> str:
    if value is None:
        return "–"
    return f"{value * scale:.2f}" if abs(value * scale) < 1000 else f"{value * scale:.1f}"


def results_markdown(results: Dict[str, Any]) -> str:
    """The results of :func:`evaluate_run` as a Markdown report with one table.

    Example:
        >>> text = results_markdown({"metrics": {"FID": {"mean": 12.345, "std": 0.5,
        ...                                              "values": [12.0, 12.69]}},
        ...                          "features": "inception", "repeats": 2})
        >>> print(text.splitlines()[-1])
        | FID ↓ | 12.35 | 0.50 | 12.00, 12.69 |
    """
    lines = ["# OCO-GAN evaluation", ""]
    meta = [
        ("run", results.get("run")),
        ("checkpoint", results.get("checkpoint")),
        ("step", results.get("step")),
        ("generator", results.get("generator")),
        ("data", f"{results.get('dataset')} {results.get('split')} split, "
                 f"{results.get('num_real')} real images" if "dataset" in results else None),
        ("samples", f"{results.get('num_fake')} unconditional + {results.get('num_cond')} "
                    "conditional (one per validation label map) per set"
         if "num_fake" in results else None),
        ("sets", f"{results.get('repeats')} (seeds {results.get('seeds')})"
         if "seeds" in results else None),
    ]
    features = results.get("features")
    if features == "inception":
        meta.append(("features", f"TF-Inception-v3 pool3, protocol "
                                 f"{results.get('fid_protocol', 'pytorch-fid')}"))
    else:
        meta.append(("features", f"{features} — a stand-in: FID/KID NOT comparable with "
                                 "published numbers"))
    seg = results.get("segmenter")
    if seg:
        meta.append(("segmenter", f"{seg['path']} (mIoU on real validation images: "
                                  f"{100 * seg['miou_real']:.2f} %, the reference)"))
        classes = results.get("miou_classes")
        if classes:
            meta.append(("mIoU classes", f"{classes['num_classes']} ({classes['protocol']})"))
    for key, why in (results.get("skipped") or {}).items():
        meta.append((f"{key} skipped", why))
    for key, value in meta:
        if value is not None:
            lines.append(f"- {key}: {value}")
    if results.get("comparable_to_published") is False:
        lines.append("- **not comparable with the paper's tables** (stand-in features or a "
                     "reduced reference set)")
    untrained = results.get("untrained_branch") or []
    if untrained:
        lines.append(f"- **{', '.join(untrained)} measure a branch that train.mode="
                     f"{results.get('train_mode')} did not train** (marked †)")
    lines += ["", "| metric | mean | std | per set |", "|---|---:|---:|---|"]
    for key, label, scale, better in _TABLE:
        entry = results.get("metrics", {}).get(key)
        if entry is None:
            continue
        per = ", ".join(_fmt(v, scale) for v in entry["values"])
        mark = " †" if key in untrained else ""
        lines.append(f"| {label} {better}{mark} | {_fmt(entry['mean'], scale)} | "
                     f"{_fmt(entry['std'], scale)} | {per} |")
    return "\n".join(lines) + "\n"

