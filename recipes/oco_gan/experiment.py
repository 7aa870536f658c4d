"""``oco-gan experiment ablation``: the paper's Table 4 ablation as one resumable command.

The design (paper §4.3, Table 4): three training modes (``uncond_only``, ``cond_only``,
``hybrid``) × two data regimes (``limited``: a small fully labelled subset; ``semi``: every image,
few of them labelled), ``S`` seeds each. Every *arm* is an ordinary run directory under
``OUT/arms/`` (inspect it, resume it, evaluate it on its own), trained for the same number of
images seen (batch_uncond + batch_cond per iteration, so single-branch arms run more iterations),
then evaluated with its EMA generator on what it trains: FID of unconditional samples for
``uncond_only`` and ``hybrid``, CFID and mIoU (under one proxy segmenter trained once per
experiment) of conditional samples for ``cond_only`` and ``hybrid``. The summary goes to
``OUT/results.json``, ``OUT/results.md`` (mean ± std over seeds, the paper's numbers beside them,
and a verdict on each of the paper's two claims) and ``OUT/results.png`` (bars with error bars).

``--arms stagewise`` adds the two stage-wise variants of the paper's text (train one branch,
freeze it, train the other) in the limited regime; stage 1 is the ``uncond_only`` /
``cond_only`` arm of the same seed, stage 2 starts from its weights (``--init-from``) with that
branch and the shared synthesis frozen (``train.freeze``).

Rerunning the same command continues: finished arms are skipped, an interrupted arm resumes from
its checkpoint exactly, finished evaluations are reused. ``--jobs N`` trains N arms side by side
(subprocesses); ``--launcher "torchrun --nproc_per_node=4"`` runs each arm under a launcher.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import math
import os
import shlex
import shutil
import signal
import statistics
import subprocess
import sys
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Callable, Dict, Iterator, List, Optional, Sequence, Set, Tuple

__all__ = ["SCALES", "Arm", "Scale", "plan_arms", "run_ablation", "summarize"]

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


@dataclass(frozen=True)
class Scale:
    """One size of the experiment: data, batches, images per arm and the evaluation protocol."""

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
    #: Images seen by every arm (per stage for the stage-wise arms).
    images: int
    default_seeds: int
    #: Evaluation: feature network, images per set, sample sets, KID subset size.
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

    def steps(self, mode: str, regime: str) -> int:
        """Iterations of ``mode`` that see :attr:`images` images (rounded up)."""
        bc = self.batch_cond_semi if regime == "semi" else self.batch_cond
        per_step = {"uncond_only": self.batch_uncond, "cond_only": bc,
                    "hybrid": self.batch_uncond + bc}[mode]
        return max(1, math.ceil(self.images / per_step))


SCALES: Dict[str, Scale] = {
    # Checks the machinery (all arms, evaluation, table, chart) in about a minute; not science.
    "smoke": Scale(
        name="smoke", preset="demo",
        overrides=("data.synthetic_size=64", "train.log_every=2", "train.sample_every=1000",
                   "train.checkpoint_every=1000", "train.num_samples=2",
                   "train.ema_rampup_steps=2"),
        limited_subset=24, semi_labelled=6, batch_uncond=4, batch_cond=2, batch_cond_semi=1,
        images=24, default_seeds=1, features="randconv", eval_real=16, eval_fake=16,
        eval_repeats=2, kid_subsets=4, kid_subset_size=8, segmenter_steps=5, segmenter_width=4,
        note="machinery check only: a few iterations, random-convolution features",
    ),
    # Two seeds in about two hours on 2 CPU cores (docs/experiments.rst has the measured wall
    # time): 32x32 synthetic scenes, batches halved from the paper's (32/16, semi 4), limited =
    # 500 images, semi = 4000 images with 5 % labelled, 6000 images seen per arm.
    "cpu": Scale(
        name="cpu", preset="demo",
        overrides=("data.synthetic_size=4000", "train.log_every=50", "train.sample_every=500",
                   "train.checkpoint_every=250", "train.ema_rampup_steps=200"),
        limited_subset=500, semi_labelled=200, batch_uncond=16, batch_cond=8, batch_cond_semi=2,
        images=6000, default_seeds=2, features="inception", eval_real=500, eval_fake=500,
        eval_repeats=2, kid_subsets=50, kid_subset_size=250,
        segmenter_steps=400, segmenter_width=16,
        note="SyntheticScenes 32x32, TF-Inception FID on 500 images per set",
    ),
    # The paper's protocol on Cityscapes (5K limited; 25K semi with 500 labels, conditional
    # batch 4), for a GPU cluster; documented, not run here.
    "paper": Scale(
        name="paper", preset="cityscapes", overrides=(), limited_subset=None,
        semi_labelled=500, batch_uncond=32, batch_cond=16, batch_cond_semi=4,
        images=25_000_000, default_seeds=1, features="inception", eval_real=None, eval_fake=None,
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
    #: Stage-wise arms: the arm whose weights start this one, and the frozen parts.
    init_from: Optional[str] = None
    freeze: Tuple[str, ...] = ()
    train_mode: str = ""

    @property
    def scored(self) -> Tuple[str, ...]:
        return SCORED[self.mode]


def plan_arms(scale: Scale, *, seeds: int, stagewise: bool = False) -> List[Arm]:
    """The arms of the experiment, in an order where every arm comes after its ``init_from``.

    Example:
        >>> [a.name for a in plan_arms(SCALES["smoke"], seeds=1)][:3]
        ['limited-uncond_only-s0', 'limited-cond_only-s0', 'limited-hybrid-s0']
    """
    if seeds < 1:
        raise ValueError(f"seeds must be >= 1, got {seeds}")
    arms: List[Arm] = []
    for regime in REGIMES:
        for seed in range(seeds):
            for mode in MODES:
                arms.append(Arm(f"{regime}-{mode}-s{seed}", regime, mode, seed,
                                scale.steps(mode, "limited" if regime == "limited" else "semi"),
                                train_mode=mode))
    if stagewise:
        for seed in range(seeds):
            # Stage 2 trains the other branch with the first one (and the shared synthesis) fixed.
            arms.append(Arm(f"limited-stage_uncond_then_cond-s{seed}", "limited",
                            "stage_uncond_then_cond", seed, scale.steps("cond_only", "limited"),
                            init_from=f"limited-uncond_only-s{seed}",
                            freeze=("uncond_style", "synthesis"), train_mode="cond_only"))
            arms.append(Arm(f"limited-stage_cond_then_uncond-s{seed}", "limited",
                            "stage_cond_then_uncond", seed, scale.steps("uncond_only", "limited"),
                            init_from=f"limited-cond_only-s{seed}",
                            freeze=("cond_style", "synthesis"), train_mode="uncond_only"))
    return arms


def _train_overrides(scale: Scale, arm: Arm, extra: Sequence[str]) -> List[str]:
    bc = scale.batch_cond_semi if arm.regime == "semi" else scale.batch_cond
    semi = scale.semi_overrides if arm.regime == "semi" else ()
    out = [*scale.overrides, *semi,
           f"train.batch_uncond={scale.batch_uncond}", f"train.batch_cond={bc}",
           f"train.seed={arm.seed}", f"data.split_seed={arm.seed}"]
    if arm.regime == "limited" and scale.limited_subset is not None:
        out.append(f"data.subset={scale.limited_subset}")
    if arm.regime == "semi" and scale.semi_labelled is not None:
        out.append(f"data.labelled={scale.semi_labelled}")
    if arm.freeze:
        out.append("train.freeze=[" + ",".join(arm.freeze) + "]")
    return [*out, *extra]


# -- running commands ----------------------------------------------------------------------------

Runner = Callable[[List[str], Optional[Path]], int]


def _in_process(argv: List[str], log: Optional[Path]) -> int:
    from .cli import main

    return main(argv)


class _Children:
    """The arm subprocesses running now, and whether the experiment is stopping.

    Each child runs in its own session, so a Ctrl-C in the terminal reaches only this process;
    :meth:`stop` then sends every child one SIGTERM (a trainer finishes its step, writes its
    checkpoint and exits) and no further arm is started.
    """

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._procs: Set[subprocess.Popen] = set()
        self.stopping = threading.Event()

    def run(self, cmd: List[str], env: Dict[str, str], stdout: Any = None) -> int:
        with self._lock:
            if self.stopping.is_set():
                return 1
            proc = subprocess.Popen(cmd, env=env, stdout=stdout,
                                    stderr=subprocess.STDOUT if stdout is not None else None,
                                    start_new_session=True)
            self._procs.add(proc)
        try:
            return proc.wait()
        finally:
            with self._lock:
                self._procs.discard(proc)

    def stop(self, signum: int = signal.SIGTERM, frame: Any = None) -> None:
        with self._lock:
            first = not self.stopping.is_set()
            self.stopping.set()
            procs = list(self._procs)
        if not first and frame is not None:  # a second signal: stop waiting, as by default
            signal.signal(signum, signal.SIG_DFL)
            signal.raise_signal(signum)
            return
        for proc in procs:
            with contextlib.suppress(ProcessLookupError):
                proc.send_signal(signal.SIGTERM)


def _subprocess_runner(launcher: Sequence[str], threads: Optional[int],
                       children: _Children) -> Runner:
    def run(argv: List[str], log: Optional[Path]) -> int:
        prefix = list(launcher) if launcher else [sys.executable]
        cmd = [*prefix, "-m", "recipes.oco_gan", *argv]
        env = dict(os.environ)
        if threads is not None:
            env.setdefault("OMP_NUM_THREADS", str(threads))
        if log is None:
            return children.run(cmd, env)
        log.parent.mkdir(parents=True, exist_ok=True)
        with open(log, "a", encoding="utf-8") as fh:
            fh.write(f"$ {shlex.join(cmd)}\n")
            fh.flush()
            return children.run(cmd, env, stdout=fh)

    return run


@contextlib.contextmanager
def _forward_signals(children: _Children) -> Iterator[None]:
    """While active (main thread only), SIGINT/SIGTERM stop the experiment gracefully."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    previous = {s: signal.signal(s, children.stop) for s in (signal.SIGINT, signal.SIGTERM)}
    try:
        yield
    finally:
        for s, h in previous.items():
            signal.signal(s, h)


def _checkpoint_step(run_dir: Path) -> Optional[int]:
    """The step of ``run_dir/checkpoint.pt``: ``None`` when there is none, -1 when unreadable."""
    path = run_dir / "checkpoint.pt"
    if not path.is_file():
        return None
    from ganblocks.train import load_checkpoint

    try:
        return int(load_checkpoint(path)["step"])
    except Exception:  # corrupt or foreign: the trainer's --resume reports it properly
        return -1


class Interrupted(Exception):
    """An arm stopped before its last step (SIGINT/SIGTERM or a failure)."""


class _NotStarted(Interrupted):
    def __init__(self, name: str) -> None:
        super().__init__(f"arm {name} not started: the experiment is stopping; rerun the same "
                         "command to continue")


def _train_arm(arm: Arm, *, scale: Scale, out: Path, runner: Runner, extra: Sequence[str],
               device: str, progress: bool) -> None:
    run_dir = out / "arms" / arm.name
    step = _checkpoint_step(run_dir)
    if step is not None and step >= arm.steps:
        return
    common = ["--out", str(run_dir), "--device", device]
    if not progress:
        common.append("--no-progress")
    if step is None:
        if run_dir.exists():
            # Started but killed before its first checkpoint: nothing to keep.
            shutil.rmtree(run_dir)
        argv = ["train", "--preset", scale.preset, "--regime", arm.regime,
                "--mode", arm.train_mode, "--steps", str(arm.steps), *common]
        if arm.init_from is not None:
            argv += ["--init-from", str(out / "arms" / arm.init_from)]
        argv += _train_overrides(scale, arm, extra)
    else:
        argv = ["train", "--resume", "--steps", str(arm.steps), *common]
    rc = runner(argv, run_dir.parent / f"{arm.name}.log")
    done = _checkpoint_step(run_dir)
    if rc != 0 or done is None or done < arm.steps:
        raise Interrupted(f"arm {arm.name} stopped at step {done} of {arm.steps} (exit code "
                          f"{rc}); rerun the same command to continue it")


def _segmenter(scale: Scale, *, out: Path, runner: Runner, extra: Sequence[str], device: str,
               progress: bool) -> Path:
    path = out / "segmenter.pt"
    if path.is_file():
        return path
    from .config import apply_overrides, get_preset

    # Trained on every labelled training image of the data set (full regime), once per experiment.
    cfg = apply_overrides(get_preset(scale.preset),
                          [o for o in (*scale.overrides, *extra) if o.startswith("data.")])
    cfg_path = out / "segmenter_config.json"
    cfg.save(cfg_path)
    argv = ["train-segmenter", "--config", str(cfg_path), "--out", str(path),
            "--steps", str(scale.segmenter_steps), "--width", str(scale.segmenter_width),
            "--device", device]
    if not progress:
        argv.append("--no-progress")
    rc = runner(argv, out / "arms" / "segmenter.log")
    if rc != 0 or not path.is_file():
        raise Interrupted(f"the proxy segmenter did not finish (exit code {rc}); rerun the same "
                          "command to continue")
    return path


def _evaluate_arm(arm: Arm, *, scale: Scale, out: Path, runner: Runner, segmenter: Path,
                  device: str, progress: bool) -> Dict[str, Any]:
    run_dir = out / "arms" / arm.name
    path = run_dir / "eval" / "results.json"
    if path.is_file():
        cached = json.loads(path.read_text())
        if cached.get("step") == arm.steps and cached.get("repeats") == scale.eval_repeats:
            return cached
    argv = ["evaluate", "--run", str(run_dir), "--segmenter", str(segmenter),
            "--repeats", str(scale.eval_repeats), "--features", scale.features,
            "--kid-subsets", str(scale.kid_subsets),
            "--kid-subset-size", str(scale.kid_subset_size), "--seed", "0", "--device", device]
    if scale.eval_real is not None:
        argv += ["--num-real", str(scale.eval_real)]
    if scale.eval_fake is not None:
        argv += ["--num-fake", str(scale.eval_fake)]
    if not progress:
        argv.append("--no-progress")
    rc = runner(argv, run_dir.parent / f"{arm.name}.log")
    if rc != 0 or not path.is_file():
        raise Interrupted(f"evaluation of arm {arm.name} failed (exit code {rc})")
    return json.loads(path.read_text())


# -- summary -------------------------------------------------------------------------------------


def _stats(values: Sequence[float]) -> Dict[str, Any]:
    values = [float(v) for v in values if v is not None and not math.isnan(float(v))]
    if not values:
        return {"mean": None, "std": None, "n": 0, "values": []}
    return {"mean": statistics.fmean(values),
            "std": statistics.stdev(values) if len(values) > 1 else None,
            "n": len(values), "values": values}


def _claim(summary: Dict[str, Any], regime: str, metric: str, baseline: str,
           text: str) -> Dict[str, Any]:
    """Is ``hybrid`` lower than ``baseline`` on ``metric`` (lower is better) beyond the noise?

    Confirmed when the difference of the seed means exceeds twice its standard error (with at
    least two seeds per arm); the opposite direction by the same margin is "contradicted";
    anything else is "inconclusive".
    """
    a = summary.get(regime, {}).get(baseline, {}).get(metric)
    b = summary.get(regime, {}).get("hybrid", {}).get(metric)
    claim: Dict[str, Any] = {"claim": text, "regime": regime, "metric": metric,
                             "baseline": baseline, "paper": [PAPER[regime][baseline][metric],
                                                             PAPER[regime]["hybrid"][metric]]}
    if not a or not b or a["mean"] is None or b["mean"] is None:
        return {**claim, "verdict": "not measured"}
    diff = a["mean"] - b["mean"]
    claim.update(baseline_mean=a["mean"], hybrid_mean=b["mean"], improvement=diff)
    if a["n"] < 2 or b["n"] < 2:
        return {**claim, "verdict": "inconclusive (one seed: no spread to compare with)"}
    se = math.sqrt(a["std"] ** 2 / a["n"] + b["std"] ** 2 / b["n"])
    claim["standard_error"] = se
    if diff > 2 * se:
        verdict = "confirmed"
    elif diff < -2 * se:
        verdict = "contradicted"
    else:
        verdict = "inconclusive (difference within two standard errors)"
    return {**claim, "verdict": verdict}


def summarize(arm_results: Sequence[Tuple[Arm, Dict[str, Any]]]) -> Dict[str, Any]:
    """Mean ± std over seeds per regime × mode × metric, and the verdicts on the two claims.

    Each arm's metric is the mean over its evaluation's sample sets; the std here is over seeds.

    Example:
        >>> arm = Arm("limited-hybrid-s0", "limited", "hybrid", 0, 10)
        >>> res = {"metrics": {"FID": {"mean": 50.0}, "CFID": {"mean": 40.0}}}
        >>> summarize([(arm, res)])["summary"]["limited"]["hybrid"]["FID"]["mean"]
        50.0
    """
    per: Dict[str, Dict[str, Dict[str, List[float]]]] = {}
    for arm, res in arm_results:
        for metric in arm.scored:
            entry = (res.get("metrics") or {}).get(metric)
            if entry is None:
                continue
            per.setdefault(arm.regime, {}).setdefault(arm.mode, {}).setdefault(
                metric, []).append(entry["mean"])
    summary = {r: {m: {k: _stats(v) for k, v in metrics.items()} for m, metrics in modes.items()}
               for r, modes in per.items()}
    claims = [
        _claim(summary, "limited", "FID", "uncond_only",
               "limited data: hybrid training improves unconditional FID over uncond_only"),
        _claim(summary, "semi", "CFID", "cond_only",
               "semi-supervised: hybrid training improves conditional CFID over cond_only"),
    ]
    return {"summary": summary, "claims": claims}


def _fmt(stats: Optional[Dict[str, Any]], metric: str) -> str:
    if not stats or stats["mean"] is None:
        return "–"
    scale = 100.0 if metric == "mIoU" else 1.0
    text = f"{scale * stats['mean']:.1f}"
    if stats["std"] is not None:
        text += f" ± {scale * stats['std']:.1f}"
    return text


def results_markdown(results: Dict[str, Any]) -> str:
    """The experiment's table (ours vs the paper's) and the claims' verdicts as Markdown."""
    lines = [f"# OCO-GAN Table 4 ablation, scale `{results['scale']}`", "",
             f"{results['seeds']} seed(s) per arm; {results['images_per_arm']} images seen per "
             f"arm; metrics: {results['features']} features, {results['eval_repeats']} sample "
             "sets per arm; mean ± std over seeds (mIoU in %). Paper: Table 4 (Cityscapes5K / "
             "Cityscapes25K), stage-wise rows from §4.3's text.", "",
             f"Command: `{results['command']}`", ""]
    if results.get("wall_seconds") is not None:
        lines += [f"Wall time: {results['wall_seconds'] / 3600:.2f} h over "
                  f"{results.get('sittings', 1)} sitting(s).", ""]
    metrics = ("FID", "CFID", "mIoU")
    for regime in REGIMES:
        modes = results["summary"].get(regime, {})
        if not modes:
            continue
        lines += [f"## {regime}", "",
                  "| arm | " + " | ".join(f"{m} (ours) | {m} (paper)" for m in metrics) + " |",
                  "|---" * (1 + 2 * len(metrics)) + "|"]
        for mode, stats in modes.items():
            paper = PAPER.get(regime, {}).get(mode, {})
            cells = []
            for m in metrics:
                cells += [_fmt(stats.get(m), m),
                          f"{paper[m]:.1f}" if m in paper else "–"]
            lines.append(f"| {mode} | " + " | ".join(cells) + " |")
        lines.append("")
    lines += ["## The paper's claims at this scale", ""]
    for c in results["claims"]:
        detail = ""
        if "improvement" in c:
            detail = (f" ({c['baseline']} {c['baseline_mean']:.1f} → hybrid "
                      f"{c['hybrid_mean']:.1f}, improvement {c['improvement']:+.1f}")
            if "standard_error" in c:
                detail += f", standard error {c['standard_error']:.1f}"
            detail += f"; paper {c['paper'][0]} → {c['paper'][1]})"
        lines.append(f"- {c['claim']}: **{c['verdict']}**{detail}")
    lines.append("")
    return "\n".join(lines)


def results_chart(results: Dict[str, Any], path: Path) -> Optional[Path]:
    """A bar chart (regime × metric panels, one bar per arm, error bars = std over seeds)."""
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:  # pragma: no cover - matplotlib is in the test extra
        return None
    metrics = ("FID", "CFID", "mIoU")
    fig, axes = plt.subplots(len(REGIMES), len(metrics), figsize=(11, 6), squeeze=False)
    for i, regime in enumerate(REGIMES):
        modes = results["summary"].get(regime, {})
        for j, metric in enumerate(metrics):
            ax = axes[i][j]
            names, means, errs = [], [], []
            for mode, stats in modes.items():
                s = stats.get(metric)
                if s and s["mean"] is not None:
                    k = 100.0 if metric == "mIoU" else 1.0
                    names.append(mode.replace("_", "\n"))
                    means.append(k * s["mean"])
                    errs.append(k * (s["std"] or 0.0))
            ax.bar(range(len(names)), means, yerr=errs, capsize=4,
                   color=["#4c72b0", "#dd8452", "#55a868", "#8172b3", "#937860"][:len(names)])
            ax.set_xticks(range(len(names)), names, fontsize=7)
            better = "higher" if metric == "mIoU" else "lower"
            ax.set_title(f"{regime}: {metric} ({better} is better)", fontsize=9)
    fig.suptitle(f"OCO-GAN ablation (scale {results['scale']}, {results['seeds']} seed(s), "
                 "mean ± std over seeds)", fontsize=10)
    fig.tight_layout()
    from ganblocks.train.checkpoint import atomic_write

    atomic_write(path, lambda f: fig.savefig(f, format="png", dpi=110))
    plt.close(fig)
    return path


# -- the command ---------------------------------------------------------------------------------


def _write_text(path: Path, text: str) -> None:
    from ganblocks.train.checkpoint import atomic_write

    atomic_write(path, lambda f: f.write(text.encode("utf-8")))


def _sittings(out: Path) -> List[Dict[str, float]]:
    path = out / "sittings.jsonl"
    if not path.is_file():
        return []
    return [json.loads(line) for line in path.read_text().splitlines() if line.strip()]


def _record_sitting(out: Path, start: float, end: float) -> float:
    """Append this sitting's wall time to ``out/sittings.jsonl``; the total over all sittings."""
    rows = [*_sittings(out), {"start": start, "end": end}]
    _write_text(out / "sittings.jsonl", "".join(json.dumps(r) + "\n" for r in rows))
    return sum(r["end"] - r["start"] for r in rows)


def _run_all(fn: Callable[[Arm], Any], arms: Sequence[Arm], *, jobs: int,
             halt: threading.Event) -> List[Any]:
    """``[fn(a) for a in arms]``, ``jobs`` at a time; after a failure or a stop signal
    (``halt`` set) no further arm starts, the running ones finish, the first failure is raised."""

    def guarded(arm: Arm) -> Any:
        if halt.is_set():
            raise _NotStarted(arm.name)
        try:
            return fn(arm)
        except BaseException:
            halt.set()
            raise

    if jobs <= 1:
        return [guarded(a) for a in arms]
    with ThreadPoolExecutor(max_workers=jobs) as pool:
        futures = [pool.submit(guarded, a) for a in arms]
        results: List[Any] = []
        errors: List[BaseException] = []
        for f in futures:
            try:
                results.append(f.result())
            except BaseException as exc:  # collected, the real failure is raised below
                errors.append(exc)
    if errors:
        raise next((e for e in errors if not isinstance(e, _NotStarted)), errors[0])
    return results


def _what_counts(value: Any) -> Any:
    """A plan entry without what does not change the arms (a scale's default seed count, used
    only when ``--seeds`` is not given, and its note), so that editing those resumes fine."""
    if isinstance(value, dict):
        return {k: v for k, v in value.items() if k not in ("default_seeds", "note")}
    return value


def run_ablation(out: Path, *, scale: Scale, seeds: int, stagewise: bool = False,
                 extra: Sequence[str] = (), jobs: int = 1, launcher: Sequence[str] = (),
                 device: str = "auto", progress: bool = True,
                 command: str = "", log: Callable[[str], None] = print) -> Dict[str, Any]:
    """Train (or resume) and evaluate every arm, then write the summary files into ``out``.

    Every sitting's wall time (also an interrupted one's) is kept in ``out/sittings.jsonl``;
    ``results.json`` reports their sum as ``wall_seconds``.

    Raises:
        Interrupted: an arm or an evaluation did not finish; rerunning continues from there.
        ValueError: ``out`` holds an experiment with different settings.
    """
    out.mkdir(parents=True, exist_ok=True)
    plan = {"format": RESULTS_FORMAT, "scale": asdict(scale), "seeds": seeds,
            "stagewise": stagewise, "extra": list(extra)}
    plan_path = out / "experiment.json"
    if plan_path.is_file():
        old = json.loads(plan_path.read_text())
        differ = sorted(k for k in plan if json.dumps(_what_counts(old.get(k))) !=
                        json.dumps(_what_counts(plan[k])))
        if differ:
            raise ValueError(f"--out {out} holds an experiment with other settings "
                             f"({', '.join(differ)}); use another --out, or rerun it with its "
                             "own settings")
    else:
        _write_text(plan_path, json.dumps(plan, indent=2) + "\n")
    start = time.time()
    try:
        results = _run_ablation(out, scale=scale, seeds=seeds, stagewise=stagewise, extra=extra,
                                jobs=jobs, launcher=launcher, device=device, progress=progress,
                                command=command, log=log)
    except BaseException:
        _record_sitting(out, start, time.time())
        raise
    results["wall_seconds"] = _record_sitting(out, start, time.time())
    results["sittings"] = len(_sittings(out))
    _write_text(out / "results.json", json.dumps(results, indent=2) + "\n")
    _write_text(out / "results.md", results_markdown(results))
    results_chart(results, out / "results.png")
    return results


def _run_ablation(out: Path, *, scale: Scale, seeds: int, stagewise: bool,
                  extra: Sequence[str], jobs: int, launcher: Sequence[str], device: str,
                  progress: bool, command: str, log: Callable[[str], None]) -> Dict[str, Any]:
    arms = plan_arms(scale, seeds=seeds, stagewise=stagewise)
    parallel = jobs > 1 or bool(launcher)
    threads = max(1, (os.cpu_count() or 1) // jobs) if jobs > 1 else None
    children = _Children()
    runner = _subprocess_runner(launcher, threads, children) if parallel else _in_process
    kw = dict(scale=scale, out=out, runner=runner, extra=extra, device=device,
              progress=progress and not parallel)
    start = time.time()

    def train(arm: Arm) -> None:
        log(f"oco-gan experiment: arm {arm.name} ({arm.steps} iterations)")
        _train_arm(arm, **kw)

    halt = children.stopping
    with _forward_signals(children):
        for stage in ([a for a in arms if a.init_from is None],
                      [a for a in arms if a.init_from is not None]):
            _run_all(train, stage, jobs=jobs, halt=halt)
        if halt.is_set():
            raise Interrupted("stopped by a signal; rerun the same command to continue")
        segmenter = _segmenter(scale, out=out, runner=runner, extra=extra, device=device,
                               progress=kw["progress"])

        def evaluate(arm: Arm) -> Dict[str, Any]:
            log(f"oco-gan experiment: evaluating {arm.name}")
            return _evaluate_arm(arm, scale=scale, out=out, runner=runner, segmenter=segmenter,
                                 device=device, progress=kw["progress"])

        # Evaluations are independent too: side by side like the training runs (same order).
        evaluated = _run_all(evaluate, arms, jobs=jobs, halt=halt)
        if halt.is_set():
            raise Interrupted("stopped by a signal; rerun the same command to continue")
    arm_results: List[Tuple[Arm, Dict[str, Any]]] = list(zip(arms, evaluated))
    results: Dict[str, Any] = {
        "format": RESULTS_FORMAT, "version": 1, "scale": scale.name, "note": scale.note,
        "command": command, "seeds": seeds, "images_per_arm": scale.images,
        "features": scale.features, "eval_repeats": scale.eval_repeats,
        "segmenter_miou_real": next((r["segmenter"]["miou_real"] for _, r in arm_results
                                     if r.get("segmenter")), None),
        "arms": [{"name": a.name, "regime": a.regime, "mode": a.mode, "seed": a.seed,
                  "steps": a.steps, "run_dir": str(Path("arms") / a.name),
                  "init_from": a.init_from, "freeze": list(a.freeze),
                  "metrics": {m: (r.get("metrics") or {}).get(m) for m in a.scored}}
                 for a, r in arm_results],
        **summarize(arm_results),
        "seconds_this_sitting": time.time() - start,
    }
    return results


def register_experiment(sub: Any) -> None:
    p = sub.add_parser(
        "experiment", help="run the paper's ablations (Table 4) end to end, resumably",
        description=__doc__.split("\n\n")[0] + " Rerun the same command to continue.")
    what = p.add_subparsers(dest="experiment", metavar="NAME", required=True)
    a = what.add_parser("ablation", help="modes uncond_only / cond_only / hybrid × regimes "
                        "limited / semi, S seeds each (paper Table 4)")
    a.add_argument("--scale", choices=sorted(SCALES), required=True,
                   help="smoke (machinery check, ~1 min), cpu (2 seeds, ~2 h on 2 CPU "
                        "cores), paper (Cityscapes protocol, for a GPU cluster)")
    a.add_argument("--out", required=True, metavar="DIR", help="experiment folder")
    a.add_argument("--seeds", type=int, default=None, metavar="S",
                   help="seeds per arm (default: the scale's)")
    a.add_argument("--data", default=None, metavar="PATH", help="data set root (data.root)")
    a.add_argument("--arms", choices=["table4", "stagewise"], default="table4",
                   help="table4 (default), or stagewise: also the two stage-wise variants")
    a.add_argument("--jobs", type=int, default=1, metavar="N", help="arms trained side by side")
    a.add_argument("--launcher", default="", metavar="CMD",
                   help='run each arm under CMD, e.g. "torchrun --nproc_per_node=4"')
    a.add_argument("--device", choices=["auto", "cpu", "cuda"], default="auto")
    a.add_argument("--no-progress", action="store_true", help="no progress bars")
    a.add_argument("overrides", nargs="*", metavar="key=value",
                   help="extra config overrides for every arm (e.g. model.channel_multiplier=0.25)")


def run_experiment(args: argparse.Namespace) -> int:
    scale = SCALES[args.scale]
    seeds = args.seeds if args.seeds is not None else scale.default_seeds
    if seeds < 1:
        raise ValueError(f"--seeds must be >= 1, got {seeds}")
    if args.jobs < 1:
        raise ValueError(f"--jobs must be >= 1, got {args.jobs}")
    extra = list(args.overrides)
    if args.data is not None:
        extra.insert(0, f"data.root={args.data}")
    command = "oco-gan " + shlex.join(sys.argv[1:]) if sys.argv[1:2] == ["experiment"] else ""
    try:
        results = run_ablation(Path(args.out), scale=scale, seeds=seeds,
                               stagewise=args.arms == "stagewise", extra=extra, jobs=args.jobs,
                               launcher=shlex.split(args.launcher), device=args.device,
                               progress=not args.no_progress, command=command or
                               f"oco-gan experiment ablation --scale {scale.name} --out "
                               f"{args.out} --seeds {seeds}")
    except Interrupted as exc:
        print(f"oco-gan experiment: {exc}", file=sys.stderr)
        return 1
    print(results_markdown(results))
    print(f"oco-gan experiment: wrote {Path(args.out) / 'results.json'}, results.md, results.png")
    return 0


COMMANDS = {"experiment": (register_experiment, run_experiment)}
