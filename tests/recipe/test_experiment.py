"""``oco-gan experiment ablation``: the smoke scale end to end, and resuming a half-finished one."""

from __future__ import annotations

import dataclasses
import json
import math
from pathlib import Path

import pytest
import torch

from recipes.oco_gan import experiment as ex
from recipes.oco_gan.cli import main

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def finished(tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("ablation") / "smoke"
    rc = main(["experiment", "ablation", "--scale", "smoke", "--out", str(out), "--no-progress"])
    assert rc == 0
    return out


def test_smoke_writes_every_arm_table_and_chart(finished: Path):
    res = json.loads((finished / "results.json").read_text())
    arms = {a["name"]: a for a in res["arms"]}
    assert sorted(arms) == sorted(f"{r}-{m}-s0" for r in ex.REGIMES for m in ex.MODES)
    scale = ex.SCALES["smoke"]
    assert res["budget"] == "iterations" and res["version"] == 2
    for name, arm in arms.items():
        run = finished / arm["run_dir"]
        # Every arm is a normal run directory, trained for the same number of iterations (the
        # paper's protocol), each branch with the same batch as in its single-branch arm.
        assert (run / "config.json").is_file() and (run / "checkpoint.pt").is_file()
        cfg = json.loads((run / "config.json").read_text())
        assert cfg["train"]["mode"] == arm["mode"] and cfg["data"]["regime"] == arm["regime"]
        assert arm["steps"] == scale.iterations
        assert cfg["train"]["batch_uncond"] == scale.batch_uncond
        assert cfg["train"]["batch_cond"] == (scale.batch_cond_semi if arm["regime"] == "semi"
                                              else scale.batch_cond)
        bc = cfg["train"]["batch_cond"] if arm["mode"] != "uncond_only" else 0
        bu = cfg["train"]["batch_uncond"] if arm["mode"] != "cond_only" else 0
        assert res["images_per_arm"][name] == scale.iterations * (bu + bc)
        # The curve: evenly spaced points, the last at the last iteration, on what it trains
        # (the mIoU under the experiment's segmenter).
        curve = json.loads((run / "selection.json").read_text())
        steps = [p["step"] for p in curve["points"]]
        assert steps == [scale.iterations * (k + 1) // scale.curve_points
                         for k in range(scale.curve_points)]
        assert curve["points"] == arm["curve"] and curve["num_real"] == scale.curve_num
        for point in curve["points"]:
            assert set(point) - {"step", "images"} == set(ex.SCORED[arm["mode"]]), name
        # The best snapshot is the curve's minimum (mIoU: at the CFID's best), last its end.
        for metric in ex.SCORED[arm["mode"]]:
            v = arm["values"][metric]
            key = "CFID" if metric == "mIoU" else metric
            best = min(curve["points"], key=lambda p: p[key])
            assert (v["best"], v["best_step"]) == (best[metric], best["step"]), (name, metric)
            assert v["last"] == curve["points"][-1][metric]
            assert v["final"] == arm["metrics"][metric]["mean"]
            assert math.isfinite(v["final"])
        # The scale's criteria, recomputed from the curve by their definitions on the page.
        for metric in [m for m in ("FID", "CFID") if m in ex.SCORED[arm["mode"]]]:
            c, vals = arm["criteria"][metric], [(p["step"], p[metric]) for p in curve["points"]]
            best = min(v for _, v in vals)
            before = min([v for s, v in vals if 3 * s <= 2 * vals[-1][0]] or [vals[0][1]])
            assert (c["best"], c["last"]) == (best, vals[-1][1]), (name, metric)
            assert c["improved_percent"] == pytest.approx(100 * (before - best) / before, abs=0.01)
            assert c["turned_up"] == (vals[-1][1] >= 1.1 * best)
            assert c["flattened"] == (c["improved_percent"] <= 5 or c["turned_up"])
            assert c["learned"] == (best < 100)
        if "CFID" in ex.SCORED[arm["mode"]]:
            assert (run / "best_cfid.pt").is_file()
    # The summary is the mean over seeds of each arm's values (one seed here).
    for arm in arms.values():
        for metric, v in arm["values"].items():
            stats = res["summary"][arm["regime"]][arm["mode"]][metric]
            for which in ("best", "last", "final"):
                assert stats[which]["n"] == 1
                assert stats[which]["mean"] == pytest.approx(v[which])
    verdicts = [c["verdict"] for c in res["claims"]]
    assert all(v.startswith("inconclusive (fewer than two seeds") for v in verdicts)
    assert res["real_floor"]["num_val"] == scale.curve_num and res["real_floor"]["FID"] >= 0
    md = (finished / "results.md").read_text()
    assert "| hybrid |" in md and "57.4" in md and "55.8" in md  # the paper's numbers beside
    assert "Real-vs-real FID" in md
    assert "## The scale's criteria on each arm's own curve" in md
    for name, arm in arms.items():
        c = arm["criteria"].get("FID") or arm["criteria"]["CFID"]
        assert f"- `{name}`: " in md and f"best {c['best']:.1f} at {c['best_step']}" in md
    png = (finished / "results.png").read_bytes()
    assert png[:8] == b"\x89PNG\r\n\x1a\n" and len(png) > 10_000


def test_samples_grid_shows_every_arm_at_its_best_snapshots(finished: Path):
    import numpy as np
    from PIL import Image

    from recipes.oco_gan.experiment.grids import GRID_SEED, best_snapshot
    from recipes.oco_gan.generate import (
        generate_conditional,
        generate_unconditional,
        load_generator,
    )
    from recipes.oco_gan.visualize import to_uint8

    arms = ex.plan_arms(ex.SCALES["smoke"], seeds=1)
    grid = np.asarray(Image.open(finished / "samples.png"))
    num, size = 8, 32 * 2  # 8 samples per branch, 32x32 images shown 2x
    assert grid.shape == ((1 + len(arms)) * size, 2 * num * size, 3)
    labels = None
    for r, arm in enumerate(arms, start=1):
        row = grid[r * size:(r + 1) * size:2, ::2]  # back to 1x
        run = finished / "arms" / arm.name
        for half, metric in enumerate(("FID", "CFID")):
            cells = row[:, half * num * 32:(half + 1) * num * 32]
            if metric not in arm.scored:
                assert (cells == 255).all(), (arm.name, metric)
                continue
            snap = best_snapshot(run, metric)
            assert snap.name == ("best.pt" if metric == "FID" else "best_cfid.pt")
            G = load_generator(snap).G
            if metric == "FID":
                want = generate_unconditional(G, num=num, seed=GRID_SEED)
            else:
                if labels is None:
                    from recipes.oco_gan.segmenter import real_dataset

                    val = real_dataset(load_generator(snap).config, "val")
                    labels = torch.stack([val.get_item(i, flip=False)["label"]
                                          for i in range(num)])
                want = generate_conditional(G, labels, seed=GRID_SEED)[:, 0]
            want = to_uint8(want).permute(0, 2, 3, 1).numpy()  # [n, H, W, 3]
            got = cells.reshape(32, num, 32, 3).transpose(1, 0, 2, 3)
            assert np.array_equal(got, want), (arm.name, metric)


def test_images_budget_gives_every_arm_the_hybrids_images(tmp_path: Path):
    scale = ex.SCALES["cpu"]
    for budget in ex.BUDGETS:
        for a in ex.plan_arms(scale, seeds=2, stagewise=True, budget=budget):
            per = scale.per_step(a.train_mode, a.regime)
            hybrid = scale.iterations * scale.per_step("hybrid", a.regime)
            if budget == "iterations":
                assert a.steps == scale.iterations
            else:  # within one curve interval of the hybrid's images
                assert hybrid <= a.steps * per < hybrid + per * scale.curve_points
            assert a.steps % scale.curve_points == 0
            assert a.eval_every * scale.curve_points == a.steps * per
    with pytest.raises(ValueError, match="budget"):
        ex.plan_arms(scale, seeds=1, budget="epochs")
    # The budget is part of an experiment's settings.
    out = tmp_path / "x"
    out.mkdir()
    (out / "experiment.json").write_text(json.dumps({
        "format": "oco-gan-ablation", "scale": dataclasses.asdict(ex.SCALES["smoke"]),
        "seeds": 1, "stagewise": False, "budget": "images", "extra": []}))
    with pytest.raises(ValueError, match="budget"):
        ex.run_ablation(out, scale=ex.SCALES["smoke"], seeds=1)


def test_rerun_of_a_finished_experiment_trains_nothing(finished: Path, monkeypatch):
    calls = []
    monkeypatch.setattr(ex.runner, "in_process", lambda argv, log: calls.append(argv) or 0)
    before = json.loads((finished / "results.json").read_text())
    sittings = (finished / "sittings.jsonl").read_text()
    argv = ["experiment", "ablation", "--scale", "smoke", "--out", str(finished),
            "--no-progress", "--jobs", "1"]
    monkeypatch.setattr("sys.argv", ["oco-gan", *argv])  # what the command records
    assert main(argv) == 0
    assert calls == []
    after = json.loads((finished / "results.json").read_text())
    assert after["summary"] == before["summary"]
    # Not a sitting of the run: no wall time added, the finishing sitting's command kept.
    assert (finished / "sittings.jsonl").read_text() == sittings
    assert (after["sittings"], after["wall_seconds"]) == (before["sittings"],
                                                          before["wall_seconds"])
    assert after["command"] == before["command"] and "--jobs" not in after["command"]
    assert after == before


def test_resume_of_a_half_finished_experiment_matches_an_uninterrupted_one(
        finished: Path, tmp_path, monkeypatch):
    out = tmp_path / "resumed"
    real = ex.runner.in_process
    trained = []

    def stops_in_the_third_arm(argv, log):
        if argv[0] == "train":
            trained.append(argv)
            if len(trained) == 3:  # the third arm is killed half-way (its checkpoint stays)
                i = argv.index("--steps")
                argv = [*argv[:i + 1], str(int(argv[i + 1]) // 2), *argv[i + 2:]]
        return real(argv, log)

    monkeypatch.setattr(ex.runner, "in_process", stops_in_the_third_arm)
    args = ["experiment", "ablation", "--scale", "smoke", "--out", str(out), "--no-progress"]
    assert main(args) == 1  # reports the interrupted arm
    assert len(trained) == 3 and not (out / "results.json").exists()

    trained.clear()
    monkeypatch.setattr(ex.runner, "in_process", lambda argv, log: (
        trained.append(argv) if argv[0] == "train" else None) or real(argv, log))
    assert main(args) == 0
    names = [Path(a[a.index("--out") + 1]).name for a in trained]
    # The two finished arms are skipped, the third resumes, the other three start.
    assert names == ["limited-hybrid-s0", "semi-uncond_only-s0", "semi-cond_only-s0",
                     "semi-hybrid-s0"]
    assert "--resume" in trained[0] and all("--resume" not in a for a in trained[1:])
    resumed = json.loads((out / "results.json").read_text())
    straight = json.loads((finished / "results.json").read_text())
    assert resumed["summary"] == straight["summary"]
    # The same curves, point for point (the interrupted arm's too).
    assert [a["curve"] for a in resumed["arms"]] == [a["curve"] for a in straight["arms"]]
    assert all(len(a["curve"]) == ex.SCALES["smoke"].curve_points for a in resumed["arms"])


def test_compacted_experiment_keeps_its_results_and_resumes_without_checkpoints(
        finished: Path, tmp_path, monkeypatch):
    """``--compact``: every finished arm loses its checkpoints, yet the table, the curves and
    the samples grid are those of the uncompacted run, and a rerun (also one killed half-way,
    then resumed in a copy that has no checkpoint of the finished arms) trains nothing again."""
    import shutil

    import numpy as np
    from PIL import Image

    out = tmp_path / "compact"
    real = ex.runner.in_process
    trained = []

    def stops_in_the_third_arm(argv, log):
        if argv[0] == "train":
            trained.append(argv)
            if len(trained) == 3:
                i = argv.index("--steps")
                argv = [*argv[:i + 1], str(int(argv[i + 1]) // 2), *argv[i + 2:]]
        return real(argv, log)

    monkeypatch.setattr(ex.runner, "in_process", stops_in_the_third_arm)
    args = ["experiment", "ablation", "--scale", "smoke", "--out", str(out), "--no-progress",
            "--compact"]
    assert main(args) == 1
    arms = ex.plan_arms(ex.SCALES["smoke"], seeds=1)
    for arm in arms[:2]:  # finished: evaluated, drawn, compacted
        run = out / "arms" / arm.name
        assert sorted(p.name for p in run.glob("*.pt")) == []
        marker = json.loads((run / ex.runner.COMPACTED_FILE).read_text())
        assert marker["step"] == arm.steps and "checkpoint.pt" in marker["removed"]
    assert (out / "arms" / arms[2].name / "checkpoint.pt").is_file()  # half-way: kept

    # Carried elsewhere (as a commit would carry it) and resumed there.
    moved = tmp_path / "moved"
    shutil.copytree(out, moved)
    shutil.rmtree(out)
    trained.clear()
    monkeypatch.setattr(ex.runner, "in_process", lambda argv, log: (
        trained.append(argv) if argv[0] in ("train", "evaluate") else None) or real(argv, log))
    assert main([*args[:5], str(moved), *args[6:]]) == 0
    names = [(a[0], Path(a[a.index("--out" if a[0] == "train" else "--run") + 1]).name)
             for a in trained]
    assert [n for n in names if n[1] in (arms[0].name, arms[1].name)] == []
    assert names[0] == ("train", arms[2].name) and "--resume" in trained[0]
    for arm in arms:
        run = moved / "arms" / arm.name
        assert not list(run.glob("*.pt")) and (run / ex.runner.COMPACTED_FILE).is_file()
    got = json.loads((moved / "results.json").read_text())
    want = json.loads((finished / "results.json").read_text())
    assert got["summary"] == want["summary"]
    assert [a["curve"] for a in got["arms"]] == [a["curve"] for a in want["arms"]]
    # The grid drawn from the kept rows is the one drawn from the snapshots.
    assert np.array_equal(np.asarray(Image.open(moved / "samples.png")),
                          np.asarray(Image.open(finished / "samples.png")))
    # Nothing left to do: a rerun neither trains nor evaluates.
    trained.clear()
    assert main([*args[:5], str(moved), *args[6:]]) == 0 and trained == []
    # Only a finished arm can be compacted.
    with pytest.raises(ValueError, match="not evaluated at its last step"):
        ex.runner.compact_arm(tmp_path, arms[0])


def test_floor_and_segmenter_are_at_the_arms_resolution(tmp_path, monkeypatch):
    """A resolution set by an override (the scale's or the command line's) reaches the
    real-vs-real floor's images and the proxy segmenter's config, not only the arms."""
    from ganblocks.metrics import FrechetInceptionDistance

    extra = ["model.resolution=16x16", "model.style_size=4x4"]
    scale = ex.SCALES["smoke"]
    shapes = []
    update = FrechetInceptionDistance.update
    monkeypatch.setattr(FrechetInceptionDistance, "update", lambda self, images, *, real: (
        shapes.append(tuple(images.shape[-2:])), update(self, images, real=real))[1])
    floor = ex.runner.real_floor(scale, out=tmp_path, extra=extra, device="cpu")
    assert floor["resolution"] == [16, 16] and shapes and set(shapes) == {(16, 16)}
    calls = []
    with pytest.raises(ex.Interrupted, match="segmenter"):  # the stand-in runner trains nothing
        ex.runner._segmenter(scale, out=tmp_path, runner=lambda argv, log: calls.append(argv)
                             or 0, extra=extra, device="cpu", progress=False)
    assert calls and json.loads((tmp_path / "segmenter_config.json").read_text())[
        "model"]["resolution"] == [16, 16]
    arm = ex.plan_arms(scale, seeds=1)[0]
    assert all(o in ex.plan.train_overrides(scale, arm, extra) for o in extra)


def test_settings_of_an_existing_experiment_cannot_change(finished: Path):
    with pytest.raises(ValueError, match="seeds"):
        ex.run_ablation(finished, scale=ex.SCALES["smoke"], seeds=2)


def test_plan_orders_stage_two_after_stage_one():
    arms = ex.plan_arms(ex.SCALES["cpu"], seeds=3, stagewise=True)
    assert len(arms) == 2 * 3 * 3 + 2 * 3
    names = [a.name for a in arms]
    for a in arms:
        if a.init_from is not None:  # stage 2 runs after its stage 1
            assert names.index(a.init_from) < names.index(a.name)
    with pytest.raises(ValueError, match="seeds"):
        ex.plan_arms(ex.SCALES["cpu"], seeds=0)


def _result(mode, seed, points, regime="limited"):
    arm = ex.Arm(f"{regime}-{mode}-s{seed}", regime, mode, seed, 4)
    return ex.report.ArmResult(arm, {"points": points}, {})


def test_claim_verdicts_follow_the_paired_t_test():
    def claim(base, hyb, last_base=None, last_hyb=None):
        results = []
        for s, (b, h) in enumerate(zip(base, hyb)):
            lb = b if last_base is None else last_base[s]
            lh = h if last_hyb is None else last_hyb[s]
            # best = min of the curve; the last point differs from the best one.
            results += [_result("uncond_only", s, [{"step": 2, "FID": b}, {"step": 4, "FID": lb}]),
                        _result("hybrid", s, [{"step": 2, "FID": h}, {"step": 4, "FID": lh}])]
        return ex.summarize(results)["claims"][0]

    c = claim([80, 82, 84], [60, 61, 62])
    assert c["verdict"] == "confirmed" and c["best"]["improvements"] == [20, 21, 22]
    # mean 21, sd 1, se 1/sqrt(3), t(0.975, 2) = 4.303: margin 2.48.
    assert c["best"]["margin"] == pytest.approx(4.303 / math.sqrt(3))
    # Same-seed pairing: seeds move together, so a steady 2-point gain is found although the
    # seeds' spread (20 points) is far larger; the unpaired spread would hide it.
    assert claim([60, 80, 100], [58, 78.5, 97.5])["verdict"] == "confirmed"
    assert claim([80, 82, 84], [80, 81, 85])["verdict"].startswith("inconclusive")
    assert claim([60, 61, 62], [80, 82, 84])["verdict"].startswith("not confirmed")
    # The best snapshot decides; the last one is reported beside it.
    c = claim([80, 82, 84], [60, 61, 62], last_base=[90, 90, 90], last_hyb=[95, 96, 97])
    assert c["verdict"] == "confirmed" and c["last"]["verdict"].startswith("not confirmed")
    assert ex.summarize([])["claims"][0]["verdict"] == "not measured"


def test_wall_time_is_summed_over_sittings(finished: Path):
    res = json.loads((finished / "results.json").read_text())
    rows = [json.loads(line) for line in (finished / "sittings.jsonl").read_text().splitlines()]
    assert res["sittings"] == len(rows) >= 1
    assert all(r["end"] >= r["start"] for r in rows)
    assert res["wall_seconds"] == pytest.approx(sum(r["end"] - r["start"] for r in rows))
    assert "Wall time:" in (finished / "results.md").read_text()


def test_after_a_failure_no_further_arm_starts_and_the_failure_is_raised():
    import threading
    import time

    arms = ex.plan_arms(ex.SCALES["smoke"], seeds=1)
    started = []

    def fn(arm):
        started.append(arm.name)
        if arm is arms[1]:
            raise ex.Interrupted(f"arm {arm.name} failed")
        time.sleep(0.2)  # the first arm is still running when the second fails
        return arm.name

    halt = threading.Event()
    with pytest.raises(ex.Interrupted, match=f"arm {arms[1].name} failed"):
        ex.procs.run_all(fn, arms, jobs=2, halt=halt)
    # The running arm finished; of the other four, at most the one already queued started.
    assert started[:2] == [arms[0].name, arms[1].name] and len(started) <= 3
    assert halt.is_set()
    started.clear()
    assert ex.procs.run_all(lambda a: a.name, arms, jobs=1, halt=threading.Event()) == [
        a.name for a in arms]


def test_a_stop_signal_reaches_the_running_arms_once_and_starts_no_new_one():
    import signal
    import subprocess
    import sys
    import threading
    import time

    children = ex.procs.Children()
    # A child that, like the trainer, turns SIGTERM into a clean exit with its own code.
    code = ("import signal, sys, time\n"
            "signal.signal(signal.SIGTERM, lambda *a: sys.exit(7))\n"
            "print('ready', flush=True)\n"
            "time.sleep(60)\n")
    rcs = []
    ready = []

    def run():
        rcs.append(children.run([sys.executable, "-c", code], {}, stdout=subprocess.PIPE))

    t = threading.Thread(target=run)
    t.start()
    deadline = time.time() + 30
    while not children._procs and time.time() < deadline:
        time.sleep(0.01)
    proc = next(iter(children._procs))
    ready.append(proc.stdout.readline())
    start = time.time()
    children.stop(signal.SIGTERM, None)
    t.join(30)
    assert ready == [b"ready\n"] and rcs == [7] and time.time() - start < 10
    assert children.stopping.is_set()
    # No new child is started once stopping.
    assert children.run([sys.executable, "-c", "raise SystemExit(0)"], {}) == 1
    assert children._procs == set()


def test_a_changed_default_seed_count_or_note_resumes(finished: Path, monkeypatch):
    """Neither changes an arm (the seed count used is stored on its own), so an experiment
    started before such an edit continues; a changed protocol is still refused."""
    calls = []
    monkeypatch.setattr(ex.runner, "in_process", lambda argv, log: calls.append(argv) or 0)
    scale = dataclasses.replace(ex.SCALES["smoke"], default_seeds=7, note="edited")
    res = ex.run_ablation(finished, scale=scale, seeds=1, progress=False, log=lambda m: None)
    assert calls == [] and res["seeds"] == 1
    with pytest.raises(ValueError, match="scale"):
        ex.run_ablation(finished, scale=dataclasses.replace(scale, iterations=6), seeds=1)


def test_stagewise_arms_start_from_stage_one_and_keep_it_frozen(tmp_path: Path):
    import torch

    out = tmp_path / "stagewise"
    rc = main(["experiment", "ablation", "--scale", "smoke", "--out", str(out), "--arms",
               "stagewise", "--no-progress"])
    assert rc == 0
    res = json.loads((out / "results.json").read_text())
    stage = {a["name"]: a for a in res["arms"] if a["init_from"] is not None}
    assert sorted(stage) == ["limited-stage_cond_then_uncond-s0",
                             "limited-stage_uncond_then_cond-s0"]
    for name, arm in stage.items():
        first = torch.load(out / "arms" / arm["init_from"] / "checkpoint.pt", map_location="cpu",
                           weights_only=False)["G"]
        second = torch.load(out / arm["run_dir"] / "checkpoint.pt", map_location="cpu",
                            weights_only=False)["G"]
        frozen = tuple(f"{part}." for part in arm["freeze"])
        assert arm["freeze"] and any(k.startswith(frozen) for k in second)
        for key, value in second.items():
            if key.startswith(frozen):  # stage 1's branch and the shared synthesis, unchanged
                assert torch.equal(value, first[key]), (name, key)
        # The other branch trained in stage 2 (starting from stage 1's weights).
        other = [k for k in second if not k.startswith(frozen) and k in first
                 and second[k].is_floating_point()]
        assert any(not torch.equal(second[k], first[k]) for k in other), name
        assert set(arm["metrics"]) == {"FID", "CFID", "mIoU"}
        assert all(math.isfinite(v["mean"]) for v in arm["metrics"].values())
        assert f"| {arm['mode']} |" in (out / "results.md").read_text()
