"""Sittings with an end (``oco-gan experiment ablation --hours H``): which arm to start next.

A long experiment on a shared or borrowed machine runs in *sittings*. Within a sitting of ``H``
hours the runner starts the arms whose estimated remaining time fits in what is left of the
sitting, the longest such arm first (so the long arms are not left for a sitting's last hour; an
arm begun in an earlier sitting comes before the others), and at the end it stops the running
arms gracefully: each writes its checkpoint at the step it reached and the next sitting resumes
it exactly. When no arm fits, a free slot still starts one (the same order) as long as at least
:data:`MIN_PARTIAL_SECONDS` are left: it runs to the end of the sitting and goes on in the next,
so an arm longer than any sitting is still trained, over several.

The estimates come from this experiment's own arms (:func:`measure_costs`): the seconds per
iteration of each training mode in each regime and the seconds per curve point of each mode,
read from the time stamps of the arms' ``metrics.jsonl``. A kind of arm not measured yet is
estimated from the others: a hybrid iteration as one iteration of each branch in its regime,
else per training image from the same mode in the other regime, else from every measured kind;
a hybrid point costs an FID point plus a CFID point. An arm that nothing can estimate yet (in the
first sitting) is started first, and measures.
"""

from __future__ import annotations

import json
import statistics
import threading
import time
from concurrent.futures import FIRST_COMPLETED, Future, ThreadPoolExecutor, wait
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Dict, List, Optional, Sequence, Tuple

from .plan import Arm, Scale
from .procs import Interrupted

__all__ = ["Costs", "SittingOver", "estimate_seconds", "measure_costs", "run_until"]

#: Seconds an arm's process takes besides its iterations and curve points (start-up, the final
#: evaluation's set-up, the samples row); the final evaluation itself counts as one more point.
OVERHEAD_SECONDS = 60.0

#: Least time left in a sitting for which an arm that cannot finish in it is still started (it is
#: stopped, checkpointed, at the end): less would be spent mostly on its start-up and its stop.
MIN_PARTIAL_SECONDS = 600.0


@dataclass
class Costs:
    """Measured costs of this experiment's arms (medians over the logged intervals)."""

    #: ``(train_mode, regime)`` -> seconds per training iteration.
    iteration: Dict[Tuple[str, str], float] = field(default_factory=dict)
    #: ``train_mode`` -> seconds per curve point (the evaluation of the branches the mode trains).
    point: Dict[str, float] = field(default_factory=dict)
    #: Seconds per training image, pooled over every measured kind (for kinds not measured yet).
    per_image: Optional[float] = None


def _entries(path: Path) -> List[Dict[str, Any]]:
    rows = []
    if path.is_file():
        for line in path.read_text().splitlines():
            try:
                rows.append(json.loads(line))
            except ValueError:  # a line cut by a kill: the rest is still good
                continue
    return rows


def measure_costs(out: Path, arms: Sequence[Arm], scale: Scale) -> Costs:
    """The seconds per iteration and per curve point of the arms of ``out/arms`` so far.

    An iteration's cost is the time between two consecutive training log entries with no
    evaluation between them, per step; a point's cost is the time from the training entry before
    an evaluation entry to it, less the iterations in between. Medians, so the few intervals that
    span a restart do not count.
    """
    per_iter: Dict[Tuple[str, str], List[float]] = {}
    per_point: Dict[str, List[float]] = {}
    for arm in arms:
        rows = _entries(out / "arms" / arm.name / "metrics.jsonl")
        key = (arm.train_mode, arm.regime)
        intervals: List[float] = []
        prev: Optional[Dict[str, Any]] = None
        evaluated = False
        for row in rows:
            if "time" not in row or "step" not in row:
                continue
            if any(k.startswith("eval/") for k in row):
                evaluated = True
                continue
            if prev is not None and not evaluated and row["step"] > prev["step"]:
                intervals.append((row["time"] - prev["time"]) / (row["step"] - prev["step"]))
            prev, evaluated = row, False
        if intervals:
            per_iter.setdefault(key, []).extend(intervals)
    iteration = {k: statistics.median(v) for k, v in per_iter.items()}
    for arm in arms:
        rate = iteration.get((arm.train_mode, arm.regime))
        prev = None
        for row in _entries(out / "arms" / arm.name / "metrics.jsonl"):
            if "time" not in row or "step" not in row:
                continue
            if any(k.startswith("eval/") for k in row):
                steps = None if prev is None else row["step"] - prev["step"]
                # Iterations since the training entry before it count only at a known rate.
                if steps == 0 or (steps is not None and steps > 0 and rate is not None):
                    cost = row["time"] - prev["time"] - (rate or 0.0) * steps
                    per_point.setdefault(arm.train_mode, []).append(max(0.0, cost))
                prev = None
            else:
                prev = row
    per_image = [rate / scale.per_step(mode, regime) for (mode, regime), rate in iteration.items()]
    return Costs(iteration=iteration,
                 point={k: statistics.median(v) for k, v in per_point.items()},
                 per_image=statistics.median(per_image) if per_image else None)


def _point_cost(mode: str, costs: Costs) -> Optional[float]:
    p = costs.point
    if mode in p:
        return p[mode]
    # A hybrid point is an FID point and a CFID point; a kind not measured is taken from another.
    half = p["hybrid"] / 2 if "hybrid" in p else None
    fid = p.get("uncond_only", half if half is not None else p.get("cond_only"))
    cfid = p.get("cond_only", half if half is not None else p.get("uncond_only"))
    if fid is None or cfid is None:
        return None
    return fid + cfid if mode == "hybrid" else fid if mode == "uncond_only" else cfid


def _iteration_cost(arm: Arm, scale: Scale, costs: Costs) -> Optional[float]:
    mode, regime = arm.train_mode, arm.regime
    if (mode, regime) in costs.iteration:
        return costs.iteration[(mode, regime)]
    branches = [costs.iteration.get((m, regime)) for m in ("uncond_only", "cond_only")]
    if mode == "hybrid" and None not in branches:  # a hybrid step is one step of each branch
        return sum(branches)  # type: ignore[arg-type]
    images = scale.per_step(mode, regime)
    # The same mode in another regime, per image (the same batches cost the same), else all.
    same = [rate / scale.per_step(m, r) for (m, r), rate in costs.iteration.items() if m == mode]
    per_image = same[0] if same else costs.per_image
    return None if per_image is None else per_image * images


def estimate_seconds(arm: Arm, *, done_step: int, scale: Scale, costs: Costs) -> Optional[float]:
    """Seconds ``arm`` still needs from ``done_step`` on: its remaining iterations, the curve
    points after ``done_step``, the final evaluation (one more point) and
    :data:`OVERHEAD_SECONDS`. ``None`` when ``costs`` cannot estimate it.

    Example:
        >>> from recipes.oco_gan.experiment.plan import SCALES, plan_arms
        >>> cpu = SCALES["cpu"]
        >>> arm = plan_arms(cpu, seeds=1)[0]  # limited uncond_only, 16 000 iterations, 8 points
        >>> costs = Costs(iteration={("uncond_only", "limited"): 0.2}, point={"uncond_only": 100.0})
        >>> estimate_seconds(arm, done_step=12_000, scale=cpu, costs=costs)  # 4000 its, 2+1 points
        1160.0
    """
    remaining = max(0, arm.steps - done_step)
    rate = _iteration_cost(arm, scale, costs)
    point = _point_cost(arm.train_mode, costs)
    if rate is None or point is None:
        return None
    every = arm.steps / scale.curve_points
    points_left = sum(1 for k in range(1, scale.curve_points + 1) if k * every > done_step)
    return remaining * rate + (points_left + 1) * point + OVERHEAD_SECONDS


class SittingOver(Interrupted):
    """Raised by :func:`run_until` when arms are left for the next sitting."""

    def __init__(self, *, finished: Sequence[str], stopped: Sequence[str],
                 not_started: Sequence[str]) -> None:
        self.finished, self.stopped, self.not_started = (list(finished), list(stopped),
                                                         list(not_started))
        parts = [f"finished {len(self.finished)} arm(s)"]
        if self.stopped:
            parts.append(f"stopped {', '.join(self.stopped)} at the end (checkpointed)")
        if self.not_started:
            parts.append(f"left {', '.join(self.not_started)} for the next sitting")
        super().__init__("the sitting is over: " + "; ".join(parts) +
                         "; rerun the same command to continue")


def run_until(fn: Callable[[Arm], Any], arms: Sequence[Arm], *, jobs: int, end: float,
              halt: threading.Event, estimate: Callable[[Arm], Optional[float]],
              on_end: Callable[[], None], resumes: Callable[[Arm], bool] = lambda arm: False,
              min_partial: float = MIN_PARTIAL_SECONDS, clock: Callable[[], float] = time.time,
              log: Callable[[str], None] = print) -> Dict[str, Any]:
    """``{a.name: fn(a)}`` for every arm that finishes before ``end`` (a ``clock()`` time),
    ``jobs`` at a time.

    Whenever a slot is free, the arm started is, of the arms whose ``init_from`` has finished
    and whose ``estimate`` still fits before ``end``: an arm that ``resumes`` (it was started in
    an earlier sitting: finishing it first leaves the fewest arms half-done), then one that
    cannot be estimated (``None``; it measures), each the longest first, then the other arms,
    the longest first. When no arm fits, the slot still starts one, in the same order, if at least
    ``min_partial`` seconds are left (it runs until ``end`` and resumes in the next sitting);
    otherwise it stays free. At ``end``,
    ``on_end()`` is called (it should stop the running arms gracefully) and no arm starts after
    it. After a failure or a stop (``halt`` set) no further arm starts and the first failure is
    raised, as :func:`~recipes.oco_gan.experiment.procs.run_all` does.

    Raises:
        SittingOver: some arms did not finish in this sitting (none failed).
    """
    results: Dict[str, Any] = {}
    pending = list(arms)
    running: Dict[Future, Arm] = {}
    errors: List[BaseException] = []
    stopped: List[str] = []
    over = threading.Event()

    def at_end() -> None:
        over.set()
        on_end()

    timer = threading.Timer(max(0.0, end - clock()), at_end)
    timer.daemon = True
    timer.start()
    try:
        with ThreadPoolExecutor(max_workers=jobs) as pool:
            while True:
                while len(running) < jobs and not halt.is_set() and not over.is_set():
                    left = end - clock()
                    if left <= 0:
                        break
                    ready = [a for a in pending if a.init_from is None or a.init_from in results]
                    scored = [(estimate(a), i, a) for i, a in enumerate(ready)]
                    fits = [(s, i, a) for s, i, a in scored if s is None or s <= left]
                    if not fits and left >= min_partial:
                        fits = scored  # none can finish: one goes on until the end
                    if not fits:
                        break
                    s, _, arm = min(fits, key=lambda t: (not resumes(t[2]), t[0] is not None,
                                                         -(t[0] or 0.0), t[1]))
                    when = "unknown" if s is None else f"{s / 3600:.2f} h"
                    if s is not None and s > left:
                        log(f"oco-gan experiment: starting {arm.name} (estimated {when}, more "
                            f"than the {left / 3600:.2f} h left in this sitting: it goes on in "
                            f"the next)")
                    elif s != 0.0:  # a finished arm is only collected: nothing to say
                        log(f"oco-gan experiment: starting {arm.name} (estimated {when}; "
                            f"{left / 3600:.2f} h left in this sitting)")
                    pending.remove(arm)
                    running[pool.submit(fn, arm)] = arm
                if not running:
                    break
                done, _ = wait(list(running), return_when=FIRST_COMPLETED)
                for future in done:
                    arm = running.pop(future)
                    try:
                        results[arm.name] = future.result()
                    except BaseException as exc:
                        if over.is_set():
                            stopped.append(arm.name)
                        else:
                            halt.set()
                            errors.append(exc)
    finally:
        timer.cancel()
    if errors:
        raise errors[0]
    if pending or stopped:
        raise SittingOver(finished=[a.name for a in arms if a.name in results], stopped=stopped,
                          not_started=[a.name for a in pending])
    return results
