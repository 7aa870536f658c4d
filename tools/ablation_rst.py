"""Print an ablation experiment's ``results.json`` as reStructuredText for ``docs/experiments.rst``.

The docs table is generated from the run's own file (and ``tests/docs/test_experiments_page.py``
checks that the page still agrees with the committed ``results.json``), so the published numbers
are the measured ones. Usage (from the repository root)::

    python tools/ablation_rst.py runs/ablation-cpu/results.json
    python tools/ablation_rst.py experiments/ablation-cpu/results.json \
        --publish docs/_static/ablation-cpu

``--publish DIR`` also copies the run's ``results.json``, ``results.md``, ``results.png`` (the
curves) and ``samples.png`` (every arm at its best snapshots) into ``DIR``, the folder the printed
figures point to (relative to ``docs/``).
"""

from __future__ import annotations

import argparse
import json
import shutil
import sys
from pathlib import Path
from typing import Any, Dict, List, Optional, Sequence

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from recipes.oco_gan.experiment import PAPER, REGIMES, SCORED
from recipes.oco_gan.experiment.report import criteria_text

METRICS = ("FID", "CFID", "mIoU")
MODES = tuple(SCORED)  # the table's row order


def cell(stats: Optional[Dict[str, Any]], metric: str) -> str:
    """``mean ± std (seed values)`` of one regime × mode × metric, or ``–`` when not scored.

    >>> cell({"mean": 10.0, "std": 2.0, "n": 2, "values": [9.0, 11.0]}, "FID")
    '10.0 ± 2.0 (9.0, 11.0)'
    >>> cell({"mean": 0.5, "std": None, "n": 1, "values": [0.5]}, "mIoU")
    '50.0'
    >>> cell(None, "CFID")
    '–'
    """
    if not stats or stats.get("mean") is None:
        return "–"
    k = 100.0 if metric == "mIoU" else 1.0
    text = f"{k * stats['mean']:.1f}"
    if stats.get("std") is not None:
        seeds = ", ".join(f"{k * v:.1f}" for v in stats["values"])
        text += f" ± {k * stats['std']:.1f} ({seeds})"
    return text


def table(results: Dict[str, Any]) -> List[str]:
    """The list-table: one row per regime × mode; per metric our best and last snapshot (mean ±
    std over seeds, then each seed's value) and the paper's value."""
    head = ["regime", "arm"] + [f"{m} {who}" for m in METRICS
                                for who in ("best", "last", "(paper)")]
    lines = [".. list-table::", "   :header-rows: 1", ""]
    lines += [("   * - " if i == 0 else "     - ") + h for i, h in enumerate(head)]
    for regime in REGIMES:
        modes = results["summary"].get(regime, {})
        for mode in [m for m in MODES if m in modes] + [m for m in modes if m not in MODES]:
            paper = PAPER.get(regime, {}).get(mode, {})
            row = [regime, f"``{mode}``"]
            for m in METRICS:
                s = modes[mode].get(m) or {}
                row += [cell(s.get("best"), m), cell(s.get("last"), m),
                        f"{paper[m]:.1f}" if m in paper else "–"]
            lines += [("   * - " if i == 0 else "     - ") + c for i, c in enumerate(row)]
    return lines


def claims(results: Dict[str, Any]) -> List[str]:
    """One bullet per claim: the verdict, the seed means, the same-seed improvements and the
    test's margin, for the best snapshots (the verdict's) and the last ones."""
    out = []
    for c in results["claims"]:
        text = f"* {c['claim']}: **{c['verdict']}**"
        for which in ("best", "last"):
            s = c.get(which, {})
            if "improvements" not in s:
                continue
            diffs = ", ".join(f"{d:+.1f}" for d in s["improvements"])
            text += (f"; {which} snapshots: {c['baseline']} {s['baseline_mean']:.1f} → hybrid "
                     f"{s['hybrid_mean']:.1f}, same-seed improvements {diffs}")
            if "margin" in s:
                text += f" (mean {s['mean_improvement']:+.1f}, margin ±{s['margin']:.1f})"
            if which == "last":
                text += f": {s['verdict']}"
        text += f"; paper {c['paper'][0]} → {c['paper'][1]}"
        out.append(text)
    return out


def criteria(results: Dict[str, Any]) -> List[str]:
    """One bullet per arm: the scale's criteria on its own FID / CFID curve (none for a
    ``results.json`` without per-arm criteria)."""
    out = []
    for arm in results.get("arms", []):
        parts = [f"{m} {criteria_text(c)}" for m, c in (arm.get("criteria") or {}).items() if c]
        if parts:
            out.append(f"* ``{arm['name']}``: " + "; ".join(parts))
    return out


def header(results: Dict[str, Any]) -> List[str]:
    """The command, its wall time over the sittings, the real-vs-real floor and the segmenter's
    mIoU on real images, as far as the file records them.

    >>> lines = header({"command": "oco-gan experiment ablation", "wall_seconds": 5400.0,
    ...                 "sittings": 2,
    ...                 "real_floor": {"FID": 33.04, "num_val": 500, "num_train": 500}})
    >>> for line in lines: print(line)
    Command: ``oco-gan experiment ablation``; wall time **1.50 h** over 2 sittings.
    <BLANKLINE>
    Real-vs-real FID at the curves' sample size (the floor): 33.0 (500 validation against 500
    training images).
    <BLANKLINE>
    """
    out: List[str] = []
    if results.get("command"):
        text = f"Command: ``{results['command']}``"
        if results.get("wall_seconds") is not None:
            n = results.get("sittings", 1)
            text += (f"; wall time **{results['wall_seconds'] / 3600:.2f} h** over {n} "
                     f"sitting{'s' if n != 1 else ''}")
        out += [text + ".", ""]
    floor = results.get("real_floor")
    if floor and floor.get("FID") is not None:
        out += [f"Real-vs-real FID at the curves' sample size (the floor): {floor['FID']:.1f} "
                f"({floor['num_val']} validation against {floor['num_train']} training images).",
                ""]
    if results.get("segmenter_miou_real") is not None:
        out += [f"The proxy segmenter's mIoU on real validation images: "
                f"{100 * results['segmenter_miou_real']:.1f} % (the mIoU column's reference).",
                ""]
    return out


def figures(results: Dict[str, Any], base: str) -> List[str]:
    """The curves (``results.png``) and the samples grid (``samples.png``) as figures under
    ``base`` (a path relative to ``docs/``), the grid's rows named in its caption."""
    rows = ", ".join(f"``{a['name']}``" for a in results.get("arms", []))
    return [f".. figure:: {base}/results.png", "   :width: 100%", "",
            "   Every arm's curve: the mean over seeds, the seeds' range shaded, the real-vs-real "
            "floor dashed.", "",
            f".. figure:: {base}/samples.png", "   :width: 100%", "",
            "   Every arm at its best snapshots: unconditional samples from the snapshot its FID "
            "selects (left half), conditional samples on the first validation label maps from "
            "the snapshot its CFID selects (right half; blank for a branch the arm does not "
            f"train). Rows, top to bottom: the label maps, then {rows}.", ""]


def render(results: Dict[str, Any], *, base: Optional[str] = None) -> str:
    """The command and wall time (where the file has them), the figures (with ``base``), the
    table, a blank line, the claims and, where the file has them, each arm's criteria, as one rST
    fragment."""
    per_arm = criteria(results)
    return "\n".join([*header(results), *(figures(results, base) if base else []),
                      *table(results), "", *claims(results),
                      *(["", *per_arm] if per_arm else [])]) + "\n"


def publish(results_path: Path, folder: Path) -> List[Path]:
    """Copy the run's summary files next to ``results_path`` into ``folder``; the copies."""
    folder.mkdir(parents=True, exist_ok=True)
    copies = []
    for name in ("results.json", "results.md", "results.png", "samples.png"):
        source = results_path.parent / name if name != "results.json" else results_path
        if not source.is_file():
            raise FileNotFoundError(f"results: expected {source} beside {results_path}")
        copies.append(Path(shutil.copyfile(source, folder / name)))
    return copies


def main(argv: Optional[Sequence[str]] = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("results", type=Path, help="an experiment's results.json")
    p.add_argument("--publish", type=Path, metavar="DIR",
                   help="copy the run's summary files into DIR (under docs/) and print figures "
                        "that point there")
    a = p.parse_args(argv)
    results = json.loads(a.results.read_text(encoding="utf-8"))
    base = None
    if a.publish is not None:
        docs = Path(__file__).resolve().parents[1] / "docs"
        try:
            base = "/" + a.publish.resolve().relative_to(docs).as_posix()
        except ValueError:
            p.error(f"--publish: expected a folder under {docs}, got {a.publish}")
        publish(a.results, a.publish)
    sys.stdout.write(render(results, base=base))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
