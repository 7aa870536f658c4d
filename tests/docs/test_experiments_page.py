"""docs/experiments.rst publishes the committed results of a real ``cpu``-scale ablation run.

The table and verdicts on the page must be exactly what ``tools/ablation_rst.py`` renders from
the committed ``results.json`` (so nobody edits a number by hand), and that file must be a
finished run of the documented command: every arm of the design, two seeds or more, each arm
scored on what it trains, the wall time recorded.
"""

from __future__ import annotations

import importlib.util
import json
import math
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
RUN = ROOT / "docs" / "_static" / "ablation-cpu"


def _tool():
    path = ROOT / "tools" / "ablation_rst.py"
    spec = importlib.util.spec_from_file_location("ablation_rst", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def _results() -> dict:
    return json.loads((RUN / "results.json").read_text(encoding="utf-8"))


def test_page_shows_the_committed_table_and_verdicts():
    page = (ROOT / "docs" / "experiments.rst").read_text(encoding="utf-8")
    assert _tool().render(_results()) in page
    assert "_static/ablation-cpu/results.png" in page
    assert (RUN / "results.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert (RUN / "results.md").read_text(encoding="utf-8").startswith("# OCO-GAN Table 4")


def test_committed_run_is_a_finished_cpu_scale_run():
    from recipes.oco_gan.experiment import MODES, REGIMES, SCALES, SCORED

    res = _results()
    cpu = SCALES["cpu"]
    assert res["scale"] == "cpu" and res["seeds"] >= 2
    assert res["images_per_arm"] == cpu.images and res["features"] == cpu.features
    assert res["eval_repeats"] == cpu.eval_repeats
    assert res["wall_seconds"] > 0 and res["sittings"] >= 1
    names = {a["name"] for a in res["arms"]}
    assert names >= {f"{r}-{m}-s{s}" for r in REGIMES for m in MODES for s in range(res["seeds"])}
    for arm in res["arms"]:
        assert set(arm["metrics"]) == set(SCORED[arm["mode"]]), arm["name"]
        for metric, entry in arm["metrics"].items():
            assert entry is not None and math.isfinite(entry["mean"]), (arm["name"], metric)
    # The summary is the mean over seeds of the arms' values.
    for regime in REGIMES:
        for mode in MODES:
            for metric in SCORED[mode]:
                values = [a["metrics"][metric]["mean"] for a in res["arms"]
                          if a["regime"] == regime and a["mode"] == mode]
                stats = res["summary"][regime][mode][metric]
                assert math.isclose(stats["mean"], sum(values) / len(values), rel_tol=1e-9)
