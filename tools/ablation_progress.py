"""Print the curve of every arm of an ablation experiment that has one, with the scale's criteria
on it (:func:`recipes.oco_gan.experiment.report.curve_criteria`), while the run is still going.

The progress notes in ``docs/experiments.rst`` quote this output, so the per-arm numbers there
are computed, not read off by hand. Only each arm's own curve is judged: nothing here compares
arms. Usage (from the repository root)::

    python tools/ablation_progress.py experiments/ablation-cpu [--finished]
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import List, Optional, Sequence

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from recipes.oco_gan.experiment.report import criteria_text, curve_criteria


def arm_lines(run_dir: Path) -> List[str]:
    """The lines printed for one arm directory (none when it has no curve yet)."""
    path = run_dir / "selection.json"
    if not path.is_file():
        return []
    points = json.loads(path.read_text()).get("points", [])
    lines = []
    for metric in ("FID", "CFID"):
        c = curve_criteria(points, metric)
        if c is None:
            continue
        curve = ", ".join(f"{p[metric]:.1f}" for p in points if metric in p)
        lines += [f"{run_dir.name} {metric}: {curve}", f"    {criteria_text(c)}"]
    miou = [p["mIoU"] for p in points if "mIoU" in p]
    if miou:
        lines.append(f"    mIoU {miou[0]:.3f} -> {miou[-1]:.3f}")
    return lines


def main(argv: Optional[Sequence[str]] = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("out", type=Path, help="the experiment's folder (the --out of the run)")
    p.add_argument("--finished", action="store_true",
                   help="only the arms that have finished (their eval/results.json exists)")
    args = p.parse_args(argv)
    arms = args.out / "arms"
    if not arms.is_dir():
        p.error(f"out: expected an experiment folder with arms/, got {args.out}")
    for run_dir in sorted(d for d in arms.iterdir() if d.is_dir()):
        if args.finished and not (run_dir / "eval" / "results.json").is_file():
            continue
        for line in arm_lines(run_dir):
            print(line)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
