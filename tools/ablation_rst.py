"""Print an ablation experiment's ``results.json`` as reStructuredText for ``docs/experiments.rst``.

The docs table is generated from the run's own file (and ``tests/docs/test_experiments_page.py``
checks that the page still agrees with the committed ``results.json``), so the published numbers
are the measured ones. Usage (from the repository root)::

    python tools/ablation_rst.py runs/ablation-cpu/results.json
"""

from __future__ import annotations

import argparse
import json
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


def render(results: Dict[str, Any]) -> str:
    """The table, a blank line, the claims and, where the file has them, each arm's criteria, as
    one rST fragment."""
    per_arm = criteria(results)
    return "\n".join([*table(results), "", *claims(results),
                      *(["", *per_arm] if per_arm else [])]) + "\n"


def main(argv: Optional[Sequence[str]] = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("results", type=Path, help="an experiment's results.json")
    a = p.parse_args(argv)
    sys.stdout.write(render(json.loads(a.results.read_text(encoding="utf-8"))))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
