"""``oco-gan experiment ablation --hours H``: measured costs, estimates, and which arm starts."""

from __future__ import annotations

import json
import threading
import time
from pathlib import Path

import pytest

from recipes.oco_gan import experiment as ex
from recipes.oco_gan.cli import main
from recipes.oco_gan.experiment.schedule import (
    MIN_PARTIAL_SECONDS,
    OVERHEAD_SECONDS,
    Costs,
    SittingOver,
    estimate_seconds,
    measure_costs,
    run_until,
)

SMOKE = ex.SCALES["smoke"]
CPU = ex.SCALES["cpu"]


def _arm(name: str, **kw) -> ex.Arm:
    return ex.Arm(name, "limited", "uncond_only", 0, 4, train_mode="uncond_only", **kw)


def _write_metrics(out: Path, name: str, rows) -> None:
    path = out / "arms" / name / "metrics.jsonl"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("".join(json.dumps(r) + "\n" for r in rows) + '{"step": 70, "ti')


def test_costs_are_medians_of_the_logged_intervals(tmp_path: Path):
    # 0.5 s per iteration; one evaluation of 30 s at step 20; a restart gap between 40 and 50
    # (1000 s); a line cut by a kill at the end.
    rows = [{"step": 0, "time": 0.0, "kimg": 0}, {"step": 10, "time": 5.0, "kimg": 1},
            {"step": 20, "time": 10.0, "kimg": 2}, {"step": 20, "time": 40.0, "eval/fid": 9.0},
            {"step": 30, "time": 45.0, "kimg": 3}, {"step": 40, "time": 50.0, "kimg": 4},
            {"step": 50, "time": 1055.0, "kimg": 5}, {"step": 60, "time": 1060.0, "kimg": 6}]
    _write_metrics(tmp_path, "limited-uncond_only-s0", rows)
    arms = ex.plan_arms(SMOKE, seeds=1)
    costs = measure_costs(tmp_path, arms, SMOKE)
    assert costs.iteration == {("uncond_only", "limited"): pytest.approx(0.5)}
    assert costs.point == {"uncond_only": pytest.approx(30.0)}
    assert costs.per_image == pytest.approx(0.5 / SMOKE.batch_uncond)

    # An evaluation logged 4 steps after the last training entry: those iterations do not count.
    rows2 = [{"step": 0, "time": 0.0, "kimg": 0}, {"step": 10, "time": 2.0, "kimg": 1},
             {"step": 20, "time": 4.0, "kimg": 2}, {"step": 24, "time": 20.8, "eval/cfid": 1.0}]
    _write_metrics(tmp_path, "limited-cond_only-s0", rows2)
    costs = measure_costs(tmp_path, arms, SMOKE)
    assert costs.iteration[("cond_only", "limited")] == pytest.approx(0.2)
    assert costs.point["cond_only"] == pytest.approx(20.8 - 4.0 - 4 * 0.2)


def test_estimate_counts_iterations_points_and_the_final_evaluation():
    arms = {a.name: a for a in ex.plan_arms(CPU, seeds=1)}
    costs = Costs(iteration={("uncond_only", "limited"): 0.2, ("cond_only", "limited"): 0.15},
                  point={"uncond_only": 100.0, "cond_only": 120.0}, per_image=0.0125)
    unc = arms["limited-uncond_only-s0"]
    # Points at 2000, 4000, ..., 16000; from step 3000 on, 7 are left, then the final evaluation.
    assert estimate_seconds(unc, done_step=3000, scale=CPU, costs=costs) == pytest.approx(
        13000 * 0.2 + 8 * 100.0 + OVERHEAD_SECONDS)
    # A finished, not yet evaluated arm: the final evaluation only.
    assert estimate_seconds(unc, done_step=16000, scale=CPU, costs=costs) == pytest.approx(
        100.0 + OVERHEAD_SECONDS)
    # The hybrid, not measured: one iteration of each branch, an FID point plus a CFID point.
    hyb = arms["limited-hybrid-s0"]
    assert estimate_seconds(hyb, done_step=0, scale=CPU, costs=costs) == pytest.approx(
        16000 * 0.35 + 9 * 220.0 + OVERHEAD_SECONDS)
    # The semi regime, not measured: the same mode's cost per image in the limited regime.
    semi_cond = arms["semi-cond_only-s0"]
    assert estimate_seconds(semi_cond, done_step=0, scale=CPU, costs=costs) == pytest.approx(
        16000 * 0.15 / CPU.batch_cond * CPU.batch_cond_semi + 9 * 120.0 + OVERHEAD_SECONDS)
    # Only the unconditional mode measured: a CFID point is taken to cost an FID point, and the
    # conditional iteration the pooled cost per image.
    only = Costs(iteration={("uncond_only", "limited"): 0.2}, point={"uncond_only": 100.0},
                 per_image=0.2 / CPU.batch_uncond)
    assert estimate_seconds(arms["limited-cond_only-s0"], done_step=0, scale=CPU,
                            costs=only) == pytest.approx(
        16000 * 0.2 / CPU.batch_uncond * CPU.batch_cond + 9 * 100.0 + OVERHEAD_SECONDS)
    # Only a hybrid measured: half its point for one branch.
    hyb_only = Costs(iteration={("hybrid", "limited"): 0.4}, point={"hybrid": 300.0},
                     per_image=0.4 / 24)
    assert estimate_seconds(unc, done_step=0, scale=CPU, costs=hyb_only) == pytest.approx(
        16000 * 0.4 / 24 * 16 + 9 * 150.0 + OVERHEAD_SECONDS)
    # Nothing measured: no estimate.
    assert estimate_seconds(unc, done_step=0, scale=CPU, costs=Costs()) is None


def test_longest_fitting_arm_first_unknown_first_and_a_too_long_one_left():
    arms = [_arm("a"), _arm("b"), _arm("c"), _arm("d"), _arm("e", init_from="a")]
    estimates = {"a": 1.0, "b": 3.0, "c": 1000.0, "d": None, "e": 5.0}
    started = []

    def fn(arm):
        started.append(arm.name)
        time.sleep(0.02)
        return arm.name.upper()

    ended = []
    with pytest.raises(SittingOver) as info:
        run_until(fn, arms, jobs=1, end=time.time() + 60, halt=threading.Event(),
                  estimate=lambda a: estimates[a.name], on_end=lambda: ended.append(1),
                  log=lambda m: None)
    # d cannot be estimated: first. Then the longest that fits (e only once a has finished); c
    # does not fit and less than MIN_PARTIAL_SECONDS are left: it is not started at all.
    assert started == ["d", "b", "a", "e"]
    assert info.value.not_started == ["c"] and info.value.stopped == []
    assert info.value.finished == ["a", "b", "d", "e"]
    assert "c for the next sitting" in str(info.value) and isinstance(info.value, ex.Interrupted)
    assert ended == []  # the end was not reached

    # An arm begun in an earlier sitting comes first, even before one not estimated yet.
    started.clear()
    with pytest.raises(SittingOver):
        run_until(fn, arms, jobs=1, end=time.time() + 60, halt=threading.Event(),
                  estimate=lambda a: estimates[a.name], on_end=lambda: None,
                  resumes=lambda a: a.name in ("a", "c"), log=lambda m: None)
    assert started == ["a", "d", "e", "b"]  # c, begun, still does not fit

    # Everything fits: the results of every arm, no exception.
    fits = {k: 1.0 for k in estimates}
    out = run_until(fn, arms, jobs=2, end=time.time() + 60, halt=threading.Event(),
                    estimate=lambda a: fits[a.name], on_end=lambda: None, log=lambda m: None)
    assert out == {a.name: a.name.upper() for a in arms}


def _until_stopped(stop: threading.Event, started: list, quick=()):
    """An arm function that records each start, returns at once for the arms named in ``quick``
    and otherwise trains until ``stop`` is set, then reports itself interrupted."""
    def fn(arm):
        started.append(arm.name)
        if arm.name in quick:
            return arm.name
        if not stop.wait(30):
            return "never stopped"
        raise ex.Interrupted(f"arm {arm.name} stopped")
    return fn


def test_at_the_end_running_arms_are_stopped_and_none_starts():
    arms = [_arm("a"), _arm("b")]
    stop = threading.Event()
    started = []
    fn = _until_stopped(stop, started)
    t0 = time.time()
    with pytest.raises(SittingOver) as info:
        run_until(fn, arms, jobs=1, end=t0 + 0.3, halt=threading.Event(),
                  estimate=lambda a: 0.1, on_end=stop.set, log=lambda m: None)
    assert started == ["a"] and time.time() - t0 < 10
    assert info.value.stopped == ["a"] and info.value.not_started == ["b"]
    assert info.value.finished == []


def test_arms_longer_than_the_sitting_still_start_when_nothing_fits():
    # Sittings shorter than an arm must not leave it unstarted for ever: once nothing fits, a free
    # slot starts the arm ranked first (begun ones first, then the longest), which runs until the
    # end and is stopped there; with less than min_partial seconds left the slot stays free.
    assert MIN_PARTIAL_SECONDS == 600.0
    arms = [_arm("a"), _arm("long"), _arm("longest"), _arm("begun")]
    estimates = {"a": 0.01, "long": 500.0, "longest": 900.0, "begun": 700.0}
    stop = threading.Event()
    started, messages = [], []
    fn = _until_stopped(stop, started, quick=("a",))
    t0 = time.time()
    with pytest.raises(SittingOver) as info:
        run_until(fn, arms, jobs=2, end=t0 + 0.5, halt=threading.Event(),
                  estimate=lambda a: estimates[a.name], on_end=stop.set, min_partial=0.1,
                  resumes=lambda a: a.name == "begun", log=messages.append)
    # a fits and starts first; the other slot then takes the begun arm, and when a finishes the
    # longest of the rest: both go on until the end. "long" is left for the next sitting.
    assert started == ["a", "begun", "longest"] and time.time() - t0 < 10
    assert sorted(info.value.stopped) == ["begun", "longest"]
    assert info.value.not_started == ["long"] and info.value.finished == ["a"]
    assert any("starting begun (estimated 0.19 h, more than the" in m and "goes on in the next"
               in m for m in messages)

    # The same with min_partial above what is left: only the arm that fits runs.
    started.clear()
    stop.clear()
    with pytest.raises(SittingOver) as info:
        run_until(fn, arms, jobs=2, end=time.time() + 0.5, halt=threading.Event(),
                  estimate=lambda a: estimates[a.name], on_end=stop.set, min_partial=60.0,
                  log=lambda m: None)
    assert started == ["a"] and info.value.stopped == []
    assert info.value.not_started == ["long", "longest", "begun"]


def test_a_failure_is_raised_and_stops_the_sitting():
    arms = [_arm("a"), _arm("b"), _arm("c")]
    halt = threading.Event()
    started = []

    def fn(arm):
        started.append(arm.name)
        if arm.name == "a":
            raise RuntimeError("broken arm")
        return arm.name

    with pytest.raises(RuntimeError, match="broken arm"):
        run_until(fn, arms, jobs=1, end=time.time() + 60, halt=halt, estimate=lambda a: None,
                  on_end=lambda: None, log=lambda m: None)
    assert started == ["a"] and halt.is_set()


def test_hours_must_be_positive(tmp_path: Path, capsys):
    assert main(["experiment", "ablation", "--scale", "smoke", "--out", str(tmp_path / "x"),
                 "--hours", "0"]) != 0
    assert "--hours must be a positive number of hours, got 0.0" in capsys.readouterr().err
    assert not (tmp_path / "x").exists()
    with pytest.raises(ValueError, match="hours"):
        ex.run_ablation(tmp_path / "y", scale=SMOKE, seeds=1, hours=-1.0)
    assert not (tmp_path / "y").exists()


@pytest.mark.slow
def test_a_sitting_with_hours_ends_and_the_next_one_finishes(tmp_path: Path, capsys):
    out = tmp_path / "smoke"
    # A log entry every step, so that there are intervals without an evaluation to measure.
    args = ["experiment", "ablation", "--scale", "smoke", "--out", str(out), "--no-progress",
            "train.log_every=1"]
    # A sitting already over once the proxy segmenter has trained: no arm starts.
    assert main([*args, "--hours", "1e-9"]) == 1
    outerr = capsys.readouterr()
    assert "the sitting is over: finished 0 arm(s)" in outerr.err
    assert "for the next sitting" in outerr.err
    assert "6 of 6 arms to finish, about 0.0 h of arm time (0.0 h with --jobs 1) and 6 not " \
           "estimated yet" in outerr.out
    assert (out / "segmenter.pt").is_file()
    assert not (out / "arms" / "limited-uncond_only-s0").exists()
    # A long sitting: nothing measured yet, so every arm starts (in plan order) and finishes.
    assert main([*args, "--hours", "1"]) == 0
    res = json.loads((out / "results.json").read_text())
    assert len(res["arms"]) == 6 and res["sittings"] == 2
    assert all(len(a["curve"]) == SMOKE.curve_points for a in res["arms"])
    assert "starting limited-uncond_only-s0 (estimated unknown" in capsys.readouterr().out
    # A further sitting: nothing left, nothing runs, the same results.
    assert main([*args, "--hours", "1"]) == 0
    third = capsys.readouterr().out
    assert "0 of 6 arms to finish" in third and "starting" not in third
    assert "experiment: arm " not in third and "evaluating" not in third
    assert json.loads((out / "results.json").read_text())["summary"] == res["summary"]
    # Now every kind of arm is measured, in both regimes.
    arms = ex.plan_arms(SMOKE, seeds=1)
    costs = measure_costs(out, arms, SMOKE)
    assert set(costs.point) == set(ex.MODES)
    assert set(costs.iteration) == {(m, r) for m in ex.MODES for r in ex.REGIMES}
    assert all(v > 0 for v in [*costs.point.values(), *costs.iteration.values()])


def test_the_first_signal_stops_the_children_even_after_a_failure():
    """After a failed arm (or at the end of a sitting) the experiment is already stopping; a
    Ctrl-C then must still stop the arms that are running, not kill the runner and leave them."""
    import subprocess
    import sys

    children = ex.procs.Children()
    children.stopping.set()  # as after a failure: no new child starts ...
    code = ("import signal, sys, time\n"
            "signal.signal(signal.SIGTERM, lambda *a: sys.exit(7))\n"
            "print('ready', flush=True)\n"
            "time.sleep(60)\n")
    proc = subprocess.Popen([sys.executable, "-c", code], stdout=subprocess.PIPE)
    children._procs.add(proc)  # ... but one started before is still running
    try:
        assert proc.stdout.readline() == b"ready\n"
        t0 = time.time()
        children.stop(15, frame=object())  # the handler's call for a first SIGTERM
        assert proc.wait(30) == 7 and time.time() - t0 < 10
    finally:
        if proc.poll() is None:
            proc.kill()
