"""The experiment's plan: its scales, its arms and each arm's training overrides."""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Dict, List, Optional, Sequence, Tuple

__all__ = ["BUDGETS", "MODES", "PAPER", "REGIMES", "SCALES", "SCORED", "Arm", "Scale", "plan_arms",
           "train_overrides"]

MODES = ("uncond_only", "cond_only", "hybrid")
REGIMES = ("limited", "semi")
#: What each mode is scored on (a branch a run did not train is not scored).
SCORED = {"uncond_only": ("FID",), "cond_only": ("CFID", "mIoU"), "hybrid": ("FID", "CFID", "mIoU"),
          "stage_uncond_then_cond": ("FID", "CFID", "mIoU"),
          "stage_cond_then_uncond": ("FID", "CFID", "mIoU")}
#: Paper Table 4 (Cityscapes5K limited, Cityscapes25K semi) and the stage-wise runs of §4.3's text.
PAPER = {
    "limited": {"uncond_only": {"FID": 82.0}, "cond_only": {"CFID": 43.7, "mIoU": 70.3},
                "hybrid": {"FID": 57.4, "CFID": 41.6, "mIoU": 69.4},
                "stage_uncond_then_cond": {"FID": 73.8, "CFID": 126.4},
                "stage_cond_then_uncond": {"FID": 95.3, "CFID": 50.2}},
    "semi": {"uncond_only": {"FID": 50.5}, "cond_only": {"CFID": 76.8, "mIoU": 57.7},
             "hybrid": {"FID": 49.8, "CFID": 55.8, "mIoU": 65.2}},
}
RESULTS_FORMAT = "oco-gan-ablation"


#: How much every arm trains. ``iterations`` (the paper's protocol, the default): the same number
#: of iterations for every arm, each branch with the same batch in the hybrid arm as in its
#: single-branch arm, so a hybrid step is the sum of the two. ``images`` (not the paper's): every
#: arm sees as many images as the hybrid arm does in that many iterations, so the single-branch
#: arms train for more iterations.
BUDGETS = ("iterations", "images")


@dataclass(frozen=True)
class Scale:
    """One size of the experiment: data, batches, training length and the evaluation protocol."""

    name: str
    preset: str
    #: Config overrides shared by every arm (model and data size).
    overrides: Tuple[str, ...]
    #: Images in the ``limited`` regime (``None``: the preset's paper size).
    limited_subset: Optional[int]
    #: Labelled images in the ``semi`` regime (``None``: the preset's paper size).
    semi_labelled: Optional[int]
    batch_uncond: int
    batch_cond: int
    #: Conditional batch in the ``semi`` regime (the paper's 4, scaled like the other batches).
    batch_cond_semi: int
    #: Training iterations of every arm (per stage for the stage-wise arms) under the paper's
    #: ``iterations`` budget; the ``images`` budget derives from it (see :data:`BUDGETS`).
    iterations: int
    default_seeds: int
    #: Model selection during training: points of every arm's FID / CFID / mIoU curve (evenly
    #: spaced; the last at the last iteration), and validation images (= samples) per point.
    curve_points: int
    curve_num: int
    #: Final evaluation of the last checkpoint: feature network (also the curves'), images per
    #: set, sample sets, KID subset size.
    features: str
    eval_real: Optional[int]
    eval_fake: Optional[int]
    eval_repeats: int
    kid_subsets: int
    kid_subset_size: int
    #: Proxy segmenter training steps and width.
    segmenter_steps: int
    segmenter_width: int
    note: str = ""
    #: Overrides of the ``semi`` regime only (the paper's Cityscapes25K adds ``train_extra``).
    semi_overrides: Tuple[str, ...] = field(default_factory=tuple)

    def __post_init__(self) -> None:
        if self.iterations < 1 or self.curve_points < 1 or self.iterations % self.curve_points:
            raise ValueError(f"Scale {self.name}: iterations ({self.iterations}) must be a "
                             f"positive multiple of curve_points ({self.curve_points})")

    def per_step(self, mode: str, regime: str) -> int:
        """Images one iteration of ``mode`` sees in ``regime``."""
        bc = self.batch_cond_semi if regime == "semi" else self.batch_cond
        return {"uncond_only": self.batch_uncond, "cond_only": bc,
                "hybrid": self.batch_uncond + bc}[mode]

    def steps(self, mode: str, regime: str, budget: str = "iterations") -> int:
        """Iterations of ``mode`` in ``regime`` under ``budget`` (one of :data:`BUDGETS`).

        Example:
            >>> s = SCALES["cpu"]
            >>> s.steps("cond_only", "semi") == s.steps("hybrid", "semi") == s.iterations
            True
            >>> s.steps("cond_only", "semi", "images") * s.per_step("cond_only", "semi") == (
            ...     s.iterations * s.per_step("hybrid", "semi"))
            True
        """
        if budget == "iterations":
            return self.iterations
        if budget != "images":
            raise ValueError(f"budget: expected one of {BUDGETS}, got {budget!r}")
        images = self.iterations * self.per_step("hybrid", regime)
        # A multiple of curve_points, so that every arm's curve has the same number of points.
        k = self.curve_points
        return k * max(1, math.ceil(images / self.per_step(mode, regime) / k))

    def eval_every(self, mode: str, regime: str, budget: str = "iterations") -> int:
        """``train.eval_every`` (in images) that puts :attr:`curve_points` evaluations on the
        arm's curve, the last at its last iteration."""
        steps = self.steps(mode, regime, budget)
        return self.per_step(mode, regime) * steps // self.curve_points


SCALES: Dict[str, Scale] = {
    # Checks the machinery (all arms, evaluation, table, chart) in about a minute; not science.
    "smoke": Scale(
        name="smoke", preset="demo",
        overrides=("data.synthetic_size=64", "train.log_every=2", "train.sample_every=1000",
                   "train.checkpoint_every=1000", "train.num_samples=2",
                   "train.ema_rampup_steps=2"),
        limited_subset=24, semi_labelled=6, batch_uncond=4, batch_cond=2, batch_cond_semi=1,
        iterations=4, default_seeds=1, curve_points=2, curve_num=16, features="randconv",
        eval_real=16, eval_fake=16,
        eval_repeats=2, kid_subsets=4, kid_subset_size=8, segmenter_steps=5, segmenter_width=4,
        note="machinery check only: a few iterations, random-convolution features",
    ),
    # Chosen from single-arm pilots before any comparison between arms (docs/experiments.rst,
    # "How the cpu scale is chosen"): 16x16 synthetic scenes rendered with 4x4 supersampling,
    # batches halved from the paper's (16/8, semi 2), R1 gamma by StyleGAN2-ADA's heuristic
    # (0.0002 * H * W / batch), limited = 500 images, semi = 4000 images with 5 % labelled,
    # 16 000 iterations, curves of 8 points on 500 images.
    "cpu": Scale(
        name="cpu", preset="demo",
        overrides=("data.synthetic_size=4000", "data.synthetic_supersample=4",
                   "model.resolution=16x16", "model.style_size=4x4", "loss.r1_gamma=0.0032",
                   "train.log_every=250", "train.sample_every=2000",
                   "train.checkpoint_every=500", "train.ema_rampup_steps=200"),
        limited_subset=500, semi_labelled=200, batch_uncond=16, batch_cond=8, batch_cond_semi=2,
        iterations=16000, default_seeds=2, curve_points=8, curve_num=500,
        features="inception", eval_real=500, eval_fake=500,
        eval_repeats=1, kid_subsets=50, kid_subset_size=250,
        segmenter_steps=400, segmenter_width=16,
        note="SyntheticScenes 16x16 (4x4 supersampled), TF-Inception FID on 500 images per set",
    ),
    # The paper's protocol on Cityscapes (5K limited; 25K semi with 500 labels, conditional
    # batch 4), for a GPU cluster; documented, not run here.
    "paper": Scale(
        name="paper", preset="cityscapes", overrides=(), limited_subset=None,
        semi_labelled=500, batch_uncond=32, batch_cond=16, batch_cond_semi=4,
        iterations=500_000, default_seeds=1, curve_points=100, curve_num=2048,
        features="inception", eval_real=None, eval_fake=None,
        eval_repeats=5, kid_subsets=100, kid_subset_size=1000,
        segmenter_steps=20000, segmenter_width=64,
        note="Cityscapes 256x512, the paper's batches; use a DRN-D-105 segmenter for published "
             "mIoU; select the best-FID snapshot (train.eval_every) as the paper does",
        semi_overrides=("data.extra=true",),
    ),
}


@dataclass(frozen=True)
class Arm:
    """One training run of the experiment."""

    name: str
    regime: str
    mode: str  # a train.mode, or a stage-wise variant's name
    seed: int
    steps: int
    #: ``train.eval_every`` of the arm (images between two points of its curve).
    eval_every: int = 0
    #: Stage-wise arms: the arm whose weights start this one, and the frozen parts.
    init_from: Optional[str] = None
    freeze: Tuple[str, ...] = ()
    train_mode: str = ""

    @property
    def scored(self) -> Tuple[str, ...]:
        return SCORED[self.mode]


def plan_arms(scale: Scale, *, seeds: int, stagewise: bool = False,
              budget: str = "iterations") -> List[Arm]:
    """The arms of the experiment, in an order where every arm comes after its ``init_from``.

    Example:
        >>> arms = plan_arms(SCALES["smoke"], seeds=1)
        >>> [a.name for a in arms][:3]
        ['limited-uncond_only-s0', 'limited-cond_only-s0', 'limited-hybrid-s0']
        >>> [a.steps for a in arms][:3], [a.eval_every for a in arms][:3]
        ([4, 4, 4], [8, 4, 12])
    """
    if seeds < 1:
        raise ValueError(f"seeds must be >= 1, got {seeds}")
    if budget not in BUDGETS:
        raise ValueError(f"budget: expected one of {BUDGETS}, got {budget!r}")

    def arm(name: str, regime: str, mode: str, seed: int, train_mode: str, **kw) -> Arm:
        return Arm(name, regime, mode, seed, scale.steps(train_mode, regime, budget),
                   eval_every=scale.eval_every(train_mode, regime, budget),
                   train_mode=train_mode, **kw)

    arms = [arm(f"{regime}-{mode}-s{seed}", regime, mode, seed, mode)
            for regime in REGIMES for seed in range(seeds) for mode in MODES]
    if stagewise:
        for seed in range(seeds):
            # Stage 2 trains the other branch with the first one (and the shared synthesis) fixed.
            arms.append(arm(f"limited-stage_uncond_then_cond-s{seed}", "limited",
                            "stage_uncond_then_cond", seed, "cond_only",
                            init_from=f"limited-uncond_only-s{seed}",
                            freeze=("uncond_style", "synthesis")))
            arms.append(arm(f"limited-stage_cond_then_uncond-s{seed}", "limited",
                            "stage_cond_then_uncond", seed, "uncond_only",
                            init_from=f"limited-cond_only-s{seed}",
                            freeze=("cond_style", "synthesis")))
    return arms


def train_overrides(scale: Scale, arm: Arm, extra: Sequence[str], *,
                    segmenter: Optional[str] = None) -> List[str]:
    """The ``key=value`` overrides of ``arm``'s training run (``extra`` last, so it wins):
    the scale's data and model, the regime's batches and split, the arm's seed, its curve's
    schedule (with ``segmenter`` for the curve's mIoU) and its frozen parts."""
    bc = scale.batch_cond_semi if arm.regime == "semi" else scale.batch_cond
    semi = scale.semi_overrides if arm.regime == "semi" else ()
    out = [*scale.overrides, *semi,
           f"train.batch_uncond={scale.batch_uncond}", f"train.batch_cond={bc}",
           f"train.seed={arm.seed}", f"data.split_seed={arm.seed}",
           f"train.eval_every={arm.eval_every}", f"train.eval_num={scale.curve_num}",
           f"train.eval_features={scale.features}"]
    if segmenter is not None:
        out.append(f"train.eval_segmenter={segmenter}")
    if arm.regime == "limited" and scale.limited_subset is not None:
        out.append(f"data.subset={scale.limited_subset}")
    if arm.regime == "semi" and scale.semi_labelled is not None:
        out.append(f"data.labelled={scale.semi_labelled}")
    if arm.freeze:
        out.append("train.freeze=[" + ",".join(arm.freeze) + "]")
    return [*out, *extra]

