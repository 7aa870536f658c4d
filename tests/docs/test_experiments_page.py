"""docs/experiments.rst publishes only the committed results of a real ``cpu``-scale ablation run.

The table and verdicts on the page must be exactly what ``tools/ablation_rst.py`` renders from
the committed ``results.json`` (so nobody edits a number by hand), and that file must be a
finished paper-protocol run of the documented command: every arm of the design, two seeds or
more, each arm's curve and its best / last values, the wall time recorded. While no such file is
committed, the page must say so and publish no verdict.
"""

from __future__ import annotations

import importlib.util
import json
import math
import re
import statistics
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
RUN = ROOT / "docs" / "_static" / "ablation-cpu"
PAGE = ROOT / "docs" / "experiments.rst"


def _tool():
    path = ROOT / "tools" / "ablation_rst.py"
    spec = importlib.util.spec_from_file_location("ablation_rst", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_the_tool_renders_best_and_last_and_the_paired_verdicts():
    from recipes.oco_gan.experiment import Arm, summarize
    from recipes.oco_gan.experiment.report import ArmResult

    def arm(mode, seed, fids, regime="limited"):
        a = Arm(f"{regime}-{mode}-s{seed}", regime, mode, seed, 4)
        points = [{"step": 2 * (i + 1), "FID": f} for i, f in enumerate(fids)]
        return ArmResult(a, {"points": points}, {})

    results = {"claims": [], **summarize([
        arm("uncond_only", 0, [90.0, 80.0, 85.0]), arm("hybrid", 0, [70.0, 60.0, 66.0]),
        arm("uncond_only", 1, [92.0, 82.0, 84.0]), arm("hybrid", 1, [71.0, 61.0, 63.0])])}
    text = _tool().render(results)
    # best = the curves' minima (80, 82 / 60, 61), last = their ends (85, 84 / 66, 63)
    best_u = f"{statistics.fmean([80, 82]):.1f} ± {statistics.stdev([80, 82]):.1f} (80.0, 82.0)"
    last_h = f"{statistics.fmean([66, 63]):.1f} ± {statistics.stdev([66, 63]):.1f} (66.0, 63.0)"
    assert best_u in text and last_h in text
    claim = next(line for line in text.splitlines() if line.startswith("* limited data"))
    assert "same-seed improvements +20.0, +21.0" in claim and "**confirmed**" in claim
    assert "paper 82.0 → 57.4" in claim
    assert "* ``limited-uncond_only-s0``" not in text  # no per-arm criteria in this file

    # With the arms' entries, each arm's criteria on its own curve: [90, 80, 85] at steps 2, 4,
    # 6 is best 80 before its last third (from step 4) and after, its end 6.25 % above the best.
    from recipes.oco_gan.experiment.report import arm_entry
    a = Arm("limited-uncond_only-s0", "limited", "uncond_only", 0, 6)
    curve = {"points": [{"step": 2 * (i + 1), "FID": f} for i, f in enumerate([90.0, 80.0, 85.0])]}
    text = _tool().render({**results, "arms": [arm_entry(ArmResult(a, curve, {}))]})
    assert ("* ``limited-uncond_only-s0``: FID best 80.0 at 4, last 85.0; improved 0.0 % over the "
            "last third, last 6.2 % above the best; flattened yes, turned up no, learned yes"
            in text)


def test_publish_copies_the_run_and_renders_command_wall_time_and_figures(tmp_path):
    from recipes.oco_gan.experiment import Arm, summarize
    from recipes.oco_gan.experiment.report import ArmResult, arm_entry

    arms = [ArmResult(Arm(f"limited-{m}-s{s}", "limited", m, s, 4),
                      {"points": [{"step": 4, "FID": 80.0 - 10 * s - (m == "hybrid")}]}, {})
            for m in ("uncond_only", "hybrid") for s in (0, 1)]
    results = {"command": "oco-gan experiment ablation --scale cpu", "wall_seconds": 9000.0,
               "sittings": 3, "real_floor": {"FID": 33.04, "num_val": 500, "num_train": 500},
               "segmenter_miou_real": 0.8123, "arms": [arm_entry(a) for a in arms],
               **summarize(arms)}
    run = tmp_path / "run"
    run.mkdir()
    (run / "results.json").write_text(json.dumps(results))
    for name in ("results.md", "results.png", "samples.png"):
        (run / name).write_bytes(name.encode())
    tool = _tool()
    docs = tmp_path / "docs" / "_static" / "ablation"
    copies = tool.publish(run / "results.json", docs)
    assert sorted(c.name for c in copies) == ["results.json", "results.md", "results.png",
                                              "samples.png"]
    assert all(c.read_bytes() == (run / c.name).read_bytes() for c in copies)
    text = tool.render(results, base="/_static/ablation")
    assert ("Command: ``oco-gan experiment ablation --scale cpu``; wall time **2.50 h** over 3 "
            "sittings." in text)
    assert "(the floor): 33.0 (500 validation against 500 training images)" in text
    assert "mIoU on real validation images: 81.2 %" in text
    assert ".. figure:: /_static/ablation/results.png" in text
    assert ".. figure:: /_static/ablation/samples.png" in text
    # the grid's caption names its rows in the order the arms were drawn
    assert ("then ``limited-uncond_only-s0``, ``limited-uncond_only-s1``, "
            "``limited-hybrid-s0``, ``limited-hybrid-s1``." in text)
    assert text.index("figure::") < text.index(".. list-table::")
    # Without a base, no figures; a folder the docs cannot show is refused before any copy;
    # a run missing a summary file is an error naming it.
    assert "figure::" not in tool.render(results)
    with pytest.raises(SystemExit):
        tool.main([str(run / "results.json"), "--publish", str(tmp_path / "elsewhere")])
    assert not (tmp_path / "elsewhere").exists()
    (run / "samples.png").unlink()
    with pytest.raises(FileNotFoundError, match=r"samples\.png"):
        tool.publish(run / "results.json", tmp_path / "other")


def test_the_page_publishes_only_committed_results():
    page = PAGE.read_text(encoding="utf-8")
    if not (RUN / "results.json").is_file():
        assert "has not been run yet" in page and "publishes no verdict" in page
        assert not re.search(r"\*\*(confirmed|not confirmed|inconclusive|contradicted)", page)
        assert "_static/ablation-cpu" not in page
        return
    results = json.loads((RUN / "results.json").read_text(encoding="utf-8"))
    # what `tools/ablation_rst.py RUN/results.json --publish docs/_static/ablation-cpu` prints
    assert _tool().render(results, base="/_static/ablation-cpu") in page
    for name in ("results.png", "samples.png"):
        assert (RUN / name).read_bytes()[:8] == b"\x89PNG\r\n\x1a\n", name
    _check_finished_cpu_run(results)


def _check_finished_cpu_run(res: dict) -> None:
    from recipes.oco_gan.experiment import MODES, REGIMES, SCALES, SCORED

    cpu = SCALES["cpu"]
    assert res["scale"] == "cpu" and res["seeds"] >= 2 and res["budget"] == "iterations"
    assert res["curve_points"] == cpu.curve_points and res["curve_num"] == cpu.curve_num
    assert res["features"] == cpu.features and res["wall_seconds"] > 0
    names = {a["name"] for a in res["arms"]}
    assert names >= {f"{r}-{m}-s{s}" for r in REGIMES for m in MODES for s in range(res["seeds"])}
    for arm in res["arms"]:
        assert arm["steps"] == cpu.iterations, arm["name"]
        assert len(arm["curve"]) == cpu.curve_points, arm["name"]
        assert set(arm["values"]) == set(SCORED[arm["mode"]]), arm["name"]
        for metric, v in arm["values"].items():
            assert math.isfinite(v["last"]), (arm["name"], metric)
    for regime in REGIMES:
        for mode in MODES:
            for metric in SCORED[mode]:
                values = [a["values"][metric]["best"] for a in res["arms"]
                          if a["regime"] == regime and a["mode"] == mode]
                stats = res["summary"][regime][mode][metric]["best"]
                assert math.isclose(stats["mean"], statistics.fmean(values), rel_tol=1e-9)


PROGRESS = "python tools/ablation_progress.py experiments/ablation-cpu --finished"
QUOTED = re.compile(
    r"``(python tools/ablation_progress\.py (experiments/[\w./-]+)( --finished)?)``")


def _progress_tool():
    spec = importlib.util.spec_from_file_location(
        "ablation_progress", ROOT / "tools" / "ablation_progress.py")
    tool = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(tool)
    return tool


def _quoted_block(page: str, command: str) -> str:
    """The ``.. code-block:: text`` that follows ``command`` on the page."""
    lines = page[page.index(command):].splitlines()
    start = lines.index(".. code-block:: text") + 2
    block = []
    for line in lines[start:]:
        if line and not line.startswith("   "):
            break
        block.append(line[3:])
    return "\n".join(block).strip()


def test_progress_notes_quote_the_progress_tool(capsys):
    # The page quotes each finished arm's curve and criteria as the progress tool prints them for
    # the committed arms (while the run goes on, and as the curves in numbers once it is
    # published), so no number there is written by hand.
    page = PAGE.read_text(encoding="utf-8")
    if (RUN / "results.json").is_file() and PROGRESS not in page:
        return  # a published run without the block: the test above checks the table
    assert PROGRESS in page
    tool = _progress_tool()
    assert tool.main([str(ROOT / "experiments" / "ablation-cpu"), "--finished"]) == 0
    printed = capsys.readouterr().out.splitlines()
    assert printed and _quoted_block(page, PROGRESS) == "\n".join(printed).strip()
    finished = sorted(d.parent.parent.name for d in
                      (ROOT / "experiments" / "ablation-cpu" / "arms").glob("*/eval/results.json"))
    assert sorted({line.split()[0] for line in printed if not line.startswith(" ")}) == finished


def test_every_quoted_pilot_folder_is_committed_and_quoted_exactly(capsys):
    # Pilot runs (experiments/pilots-*) are published the same way: the page names the tool's
    # command for the committed folder, and the block under it is that command's output.
    page = PAGE.read_text(encoding="utf-8")
    quoted = [m for m in QUOTED.finditer(page) if m.group(1) != PROGRESS]
    pilots = sorted(p.name for p in (ROOT / "experiments").glob("pilots-*"))
    assert sorted({Path(m.group(2)).name for m in quoted}) == pilots
    tool = _progress_tool()
    for m in quoted:
        folder = ROOT / m.group(2)
        assert (folder / "arms").is_dir(), m.group(2)
        argv = [str(folder)] + (["--finished"] if m.group(3) else [])
        assert tool.main(argv) == 0
        printed = capsys.readouterr().out.strip()
        assert printed, m.group(1)
        assert _quoted_block(page, m.group(0)) == printed, m.group(1)
