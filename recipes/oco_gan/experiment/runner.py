"""Training and evaluating the arms, and the whole experiment as one resumable call."""

from __future__ import annotations

import json
import os
import shutil
import time
from dataclasses import asdict
from pathlib import Path
from typing import Any, Callable, Dict, List, Optional, Sequence, Tuple

from .plan import RESULTS_FORMAT, Arm, Scale, plan_arms, train_overrides
from .procs import (
    Children,
    Interrupted,
    Runner,
    forward_signals,
    in_process,
    run_all,
    subprocess_runner,
)
from .report import ArmResult, arm_entry, results_chart, results_markdown, summarize
from .schedule import estimate_seconds, measure_costs, run_until

__all__ = ["COMPACTED_FILE", "compact_arm", "run_ablation"]

#: Written into an arm's run directory by :func:`compact_arm`: the arm is finished (trained to
#: ``step`` and evaluated) and its checkpoints were removed.
COMPACTED_FILE = "compacted.json"


def _compacted_step(run_dir: Path) -> Optional[int]:
    path = run_dir / COMPACTED_FILE
    return int(json.loads(path.read_text())["step"]) if path.is_file() else None


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



def _trained(run_dir: Path, arm: Arm) -> bool:
    """Whether the arm has trained all its iterations (a compacted arm counts)."""
    step = _compacted_step(run_dir)
    if step is None:
        step = _checkpoint_step(run_dir)
    return step is not None and step >= arm.steps


def _train_arm(arm: Arm, *, scale: Scale, out: Path, runner: Runner, extra: Sequence[str],
               segmenter: Path, device: str, progress: bool) -> None:
    run_dir = out / "arms" / arm.name
    if _trained(run_dir, arm):
        return
    step = _checkpoint_step(run_dir)
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
        argv += train_overrides(scale, arm, extra, segmenter=str(segmenter.resolve()))
    else:
        # Where the segmenter is now (the experiment folder may have moved since).
        argv = ["train", "--resume", "--steps", str(arm.steps), *common,
                f"train.eval_segmenter={segmenter.resolve()}"]
    rc = runner(argv, run_dir.parent / f"{arm.name}.log")
    done = _checkpoint_step(run_dir)
    if rc != 0 or done is None or done < arm.steps:
        raise Interrupted(f"arm {arm.name} stopped at step {done} of {arm.steps} (exit code "
                          f"{rc}); rerun the same command to continue it")


def _estimate(arm: Arm, arms: Sequence[Arm], *, scale: Scale, out: Path) -> Optional[float]:
    """Seconds ``arm`` still needs, from this experiment's measured costs (:mod:`.schedule`)."""
    from .grids import ROW_FILE

    run_dir = out / "arms" / arm.name
    compacted = _compacted_step(run_dir)
    results = run_dir / "eval" / "results.json"
    if (compacted is not None and compacted >= arm.steps) or (
            results.is_file() and json.loads(results.read_text()).get("step") == arm.steps and
            (run_dir / ROW_FILE).is_file()):
        return 0.0
    step = _checkpoint_step(run_dir)
    return estimate_seconds(arm, done_step=max(0, step or 0), scale=scale,
                            costs=measure_costs(out, arms, scale))


def _log_remaining(arms: Sequence[Arm], *, scale: Scale, out: Path, jobs: int, end: float,
                   log: Callable[[str], None]) -> None:
    """One line at the start of a sitting: what is left of the whole experiment, estimated."""
    estimates = [_estimate(a, arms, scale=scale, out=out) for a in arms]
    todo = [e for e in estimates if e != 0.0]
    known = sum(e for e in todo if e is not None)
    unknown = sum(1 for e in todo if e is None)
    log(f"oco-gan experiment: {len(todo)} of {len(arms)} arms to finish, about "
        f"{known / 3600:.1f} h of arm time ({known / 3600 / jobs:.1f} h with --jobs {jobs})"
        + (f" and {unknown} not estimated yet" if unknown else "")
        + f"; this sitting ends in {(end - time.time()) / 3600:.2f} h")


def _data_config(scale: Scale, extra: Sequence[str]):
    """The config of the experiment's data and resolution, as every arm has them (the scale's
    and the command line's overrides; the arm-specific ones change neither)."""
    from ..config import apply_overrides, get_preset

    return apply_overrides(get_preset(scale.preset), [*scale.overrides, *extra])


def _segmenter(scale: Scale, *, out: Path, runner: Runner, extra: Sequence[str], device: str,
               progress: bool) -> Path:
    path = out / "segmenter.pt"
    if path.is_file():
        return path
    # Trained on every labelled training image of the data set (full regime), once per
    # experiment, at the arms' resolution (the model overrides count too).
    cfg = _data_config(scale, extra)
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


def real_floor(scale: Scale, *, out: Path, extra: Sequence[str], device: str) -> Dict[str, Any]:
    """FID between two sets of *real* images of the curves' size (:attr:`Scale.curve_num`): the
    first validation images (the curves' reals) and as many training images. No generator gets
    below this at that sample size (FID is biased upwards at small sizes), so it is the scale's
    floor, reported beside the curves. Cached in ``out/real_floor.json``."""
    path = out / "real_floor.json"
    if path.is_file():
        return json.loads(path.read_text())
    import torch

    from ganblocks.metrics import FrechetInceptionDistance

    from ..evaluate import make_feature_extractor
    from ..segmenter import real_dataset

    cfg = _data_config(scale, extra)
    dev = torch.device("cuda" if device == "auto" and torch.cuda.is_available() else
                       ("cpu" if device == "auto" else device))
    fid = FrechetInceptionDistance(make_feature_extractor(scale.features, device=dev))
    counts = {}
    for split, real in (("val", True), ("train", False)):
        ds = real_dataset(cfg, split)
        n = min(scale.curve_num, len(ds))
        counts[split] = n
        for s in range(0, n, 32):
            images = torch.stack([ds.get_item(i, flip=False)["image"]
                                  for i in range(s, min(n, s + 32))])
            with torch.no_grad():
                fid.update(images.to(dev), real=real)
    floor = {"FID": fid.compute(), "num_val": counts["val"], "num_train": counts["train"],
             "features": scale.features, "resolution": list(cfg.model.resolution)}
    _write_text(path, json.dumps(floor, indent=2) + "\n")
    return floor


def _evaluation(run_dir: Path, arm: Arm, scale: Scale) -> Optional[Dict[str, Any]]:
    """The arm's final evaluation when it has been made at its last step with this scale's
    repeats, else None."""
    path = run_dir / "eval" / "results.json"
    if path.is_file():
        cached = json.loads(path.read_text())
        if cached.get("step") == arm.steps and cached.get("repeats") == scale.eval_repeats:
            return cached
    return None


def _evaluate_arm(arm: Arm, *, scale: Scale, out: Path, runner: Runner, segmenter: Path,
                  device: str, progress: bool) -> Dict[str, Any]:
    run_dir = out / "arms" / arm.name
    cached = _evaluation(run_dir, arm, scale)
    if cached is not None:
        return cached
    path = run_dir / "eval" / "results.json"
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



def compact_arm(run_dir: Path, arm: Arm) -> List[str]:
    """Remove a finished arm's checkpoints (``*.pt``), keeping what the summary needs.

    What stays is small and text or PNG: the curve (``selection.json``), the evaluation
    (``eval/results.json``), the samples row of the grid (``samples_row.png``), the config, the
    metrics and the log. An experiment kept this way (``--compact``) fits in a few megabytes, so
    it can be carried between machines or sittings (or committed) and resumed: a compacted arm
    counts as finished and is neither retrained nor re-evaluated. ``COMPACTED_FILE`` records the
    step and the removed files. Returns the removed names.

    Raises:
        ValueError: the arm has not finished (no evaluation at its last step, or no samples row).
    """
    from .grids import ROW_FILE

    results = run_dir / "eval" / "results.json"
    if not results.is_file() or json.loads(results.read_text()).get("step") != arm.steps:
        raise ValueError(f"arm {arm.name}: not evaluated at its last step ({arm.steps}); "
                         "only a finished arm can be compacted")
    if not (run_dir / ROW_FILE).is_file():
        raise ValueError(f"arm {arm.name}: {ROW_FILE} is missing; only a finished arm can be "
                         "compacted")
    removed = sorted(p.name for p in run_dir.glob("*.pt"))
    # The marker first: an arm killed half-way through this is still finished, not retrained.
    _write_text(run_dir / COMPACTED_FILE,
                json.dumps({"step": arm.steps, "removed": removed}, indent=2) + "\n")
    for name in removed:
        (run_dir / name).unlink()
    return removed


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

def _what_counts(value: Any) -> Any:
    """A plan entry without what does not change the arms (a scale's default seed count, used
    only when ``--seeds`` is not given, and its note), so that editing those resumes fine."""
    if isinstance(value, dict):
        return {k: v for k, v in value.items() if k not in ("default_seeds", "note")}
    return value


def run_ablation(out: Path, *, scale: Scale, seeds: int, stagewise: bool = False,
                 budget: str = "iterations", extra: Sequence[str] = (), jobs: int = 1,
                 launcher: Sequence[str] = (), compact: bool = False,
                 device: str = "auto", progress: bool = True, hours: Optional[float] = None,
                 command: str = "", log: Callable[[str], None] = print) -> Dict[str, Any]:
    """Train (or resume) and evaluate every arm, then write the summary files into ``out``.

    ``budget`` is ``"iterations"`` (the paper's protocol) or ``"images"`` (see
    :data:`~recipes.oco_gan.experiment.plan.BUDGETS`). Every arm keeps its model-selection curve
    (``arms/NAME/selection.json``); the summary reports the best and the last point of each.

    Each arm is evaluated as soon as it has trained, and its row of ``samples.png`` (its samples
    at its best snapshots, :mod:`.grids`) is drawn then. With ``compact`` a finished arm's
    checkpoints are removed (:func:`compact_arm`; a stage-1 arm's once the stage-2 arms that
    start from it are finished too), so the folder stays small enough to keep between sittings.

    Every sitting's wall time (also an interrupted one's) is kept in ``out/sittings.jsonl``;
    ``results.json`` reports their sum as ``wall_seconds``. A rerun of a finished experiment
    that has nothing left to train or evaluate only rewrites the summary files: it adds no
    sitting and keeps the ``command`` and ``seconds_this_sitting`` of the sitting that finished
    the run (so ``results.json`` is unchanged).

    With ``hours`` this sitting ends that many hours after it started: the arms whose estimated
    remaining time fits in what is left start first, the longest first (when none fits, one that
    goes on in the next sitting), and the arms still running at the end are stopped gracefully
    (checkpointed); see :mod:`.schedule`. The arms then
    run as subprocesses, also with ``jobs=1``.

    Raises:
        Interrupted: an arm or an evaluation did not finish; rerunning continues from there.
        SittingOver: (an :class:`Interrupted`) with ``hours``: arms are left for another sitting.
        ValueError: ``out`` holds an experiment with different settings.
    """
    if hours is not None and not hours > 0:
        raise ValueError(f"hours: expected a positive number of hours, got {hours!r}")
    out.mkdir(parents=True, exist_ok=True)
    plan = {"format": RESULTS_FORMAT, "scale": asdict(scale), "seeds": seeds,
            "stagewise": stagewise, "budget": budget, "extra": list(extra)}
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
    summary = out / "results.json"  # a finished experiment's, if any
    previous = json.loads(summary.read_text()) if summary.is_file() else None
    try:
        results, worked = _run_ablation(out, scale=scale, seeds=seeds, stagewise=stagewise,
                                        budget=budget, extra=extra, jobs=jobs, launcher=launcher,
                                        compact=compact, device=device, progress=progress,
                                        end=None if hours is None else start + hours * 3600.0,
                                        command=command, log=log)
    except BaseException:
        _record_sitting(out, start, time.time())
        raise
    if worked or previous is None:
        results["wall_seconds"] = _record_sitting(out, start, time.time())
    else:  # nothing trained or evaluated: not a sitting of the run
        results["wall_seconds"] = sum(r["end"] - r["start"] for r in _sittings(out))
        for key in ("command", "seconds_this_sitting"):  # those of the sitting that finished it
            results[key] = previous.get(key, results[key])
    results["sittings"] = len(_sittings(out))
    _write_text(out / "results.json", json.dumps(results, indent=2) + "\n")
    _write_text(out / "results.md", results_markdown(results))
    results_chart(results, out / "results.png")
    from .grids import samples_grid  # imports torch: not at import (oco-gan --help)

    samples_grid(out, plan_arms(scale, seeds=seeds, stagewise=stagewise, budget=budget))
    return results


def _run_ablation(out: Path, *, scale: Scale, seeds: int, stagewise: bool, budget: str,
                  extra: Sequence[str], jobs: int, launcher: Sequence[str], compact: bool,
                  device: str, progress: bool, end: Optional[float], command: str,
                  log: Callable[[str], None]) -> Tuple[Dict[str, Any], bool]:
    """The summary, and whether this sitting did any work (trained or evaluated anything, the
    segmenter or the floor included)."""
    arms = plan_arms(scale, seeds=seeds, stagewise=stagewise, budget=budget)
    # Subprocesses also for one job with an end: at the end they are stopped with a signal.
    parallel = jobs > 1 or bool(launcher) or end is not None
    threads = max(1, (os.cpu_count() or 1) // jobs) if jobs > 1 else None
    children = Children()
    work = subprocess_runner(launcher, threads, children) if parallel else in_process
    calls: List[List[str]] = []

    def runner(argv: List[str], log_path: Optional[Path]) -> int:
        calls.append(argv)
        return work(argv, log_path)

    floor_cached = (out / "real_floor.json").is_file()
    show = progress and not parallel
    start = time.time()
    halt = children.stopping
    with forward_signals(children):
        # The proxy segmenter first: every arm's curve measures the mIoU with it.
        segmenter = _segmenter(scale, out=out, runner=runner, extra=extra, device=device,
                               progress=show)

        from .grids import ROW_FILE, save_arm_row  # imports torch: not at import

        starts = {a.init_from for a in arms if a.init_from is not None}

        def finish(arm: Arm) -> Dict[str, Any]:
            """Train, evaluate and draw one arm (each step skipped when already done)."""
            run_dir = out / "arms" / arm.name
            if not _trained(run_dir, arm):  # what is already done is not announced again
                log(f"oco-gan experiment: arm {arm.name} ({arm.steps} iterations)")
            _train_arm(arm, scale=scale, out=out, runner=runner, extra=extra,
                       segmenter=segmenter, device=device, progress=show)
            if _evaluation(run_dir, arm, scale) is None:
                log(f"oco-gan experiment: evaluating {arm.name}")
            result = _evaluate_arm(arm, scale=scale, out=out, runner=runner,
                                   segmenter=segmenter, device=device, progress=show)
            if not (run_dir / ROW_FILE).is_file():
                save_arm_row(run_dir, arm)
            if compact and arm.name not in starts and _compacted_step(run_dir) is None:
                compact_arm(run_dir, arm)
            return result

        evaluated: Dict[str, Dict[str, Any]] = {}
        if end is not None:
            _log_remaining(arms, scale=scale, out=out, jobs=jobs, end=end, log=log)
            evaluated = run_until(finish, arms, jobs=jobs, end=end, halt=halt,
                                  estimate=lambda arm: _estimate(arm, arms, scale=scale, out=out),
                                  on_end=children.stop, log=log,
                                  resumes=lambda arm: _checkpoint_step(out / "arms" / arm.name)
                                  is not None)
        else:
            for stage in ([a for a in arms if a.init_from is None],
                          [a for a in arms if a.init_from is not None]):
                evaluated.update(zip([a.name for a in stage], run_all(finish, stage, jobs=jobs,
                                                                      halt=halt)))
            if halt.is_set():
                raise Interrupted("stopped by a signal; rerun the same command to continue")
        if compact:  # the stage-1 arms that stage 2 started from
            for arm in arms:
                if arm.name in starts and _compacted_step(out / "arms" / arm.name) is None:
                    compact_arm(out / "arms" / arm.name, arm)
    from ..train_select import read_curve  # imports torch: not at import (oco-gan --help)

    floor = real_floor(scale, out=out, extra=extra, device=device)
    arm_results = [ArmResult(a, read_curve(out / "arms" / a.name), evaluated[a.name])
                   for a in arms]
    return ({
        "format": RESULTS_FORMAT, "version": 2, "scale": scale.name, "note": scale.note,
        "command": command, "seeds": seeds, "budget": budget,
        "iterations": {a.name: a.steps for a in arms},
        "images_per_arm": {a.name: a.steps * scale.per_step(a.train_mode, a.regime)
                           for a in arms},
        "curve_points": scale.curve_points, "curve_num": scale.curve_num,
        "features": scale.features, "eval_repeats": scale.eval_repeats,
        "real_floor": floor,
        "segmenter_miou_real": next((evaluated[a.name]["segmenter"]["miou_real"] for a in arms
                                     if evaluated[a.name].get("segmenter")), None),
        "arms": [arm_entry(r) for r in arm_results],
        **summarize(arm_results),
        "seconds_this_sitting": time.time() - start,
    }, bool(calls) or not floor_cached)
