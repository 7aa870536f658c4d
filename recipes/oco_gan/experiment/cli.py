"""``oco-gan experiment``: the command line of the experiment runner."""

from __future__ import annotations

import argparse
import shlex
import sys
from pathlib import Path
from typing import Any

from .plan import BUDGETS, SCALES
from .procs import Interrupted
from .report import results_markdown
from .runner import run_ablation

__all__ = ["register", "run"]

def register(sub: Any) -> None:
    p = sub.add_parser(
        "experiment", help="run the paper's ablations (Table 4) end to end, resumably",
        description="The paper's Table 4 ablation as one resumable command. Rerun the same "
                    "command to continue.")
    what = p.add_subparsers(dest="experiment", metavar="NAME", required=True)
    a = what.add_parser("ablation", help="modes uncond_only / cond_only / hybrid × regimes "
                        "limited / semi, S seeds each (paper Table 4)")
    a.add_argument("--scale", choices=sorted(SCALES), required=True,
                   help="smoke (machinery check, ~1 min), cpu (16x16 synthetic scenes, 2 seeds, "
                        "10.8 h measured on 2 CPU cores with --jobs 2, over sittings with "
                        "--compact; see docs/experiments.rst), paper (Cityscapes protocol, for a "
                        "GPU cluster)")
    a.add_argument("--out", required=True, metavar="DIR", help="experiment folder")
    a.add_argument("--seeds", type=int, default=None, metavar="S",
                   help="seeds per arm (default: the scale's)")
    a.add_argument("--data", default=None, metavar="PATH", help="data set root (data.root)")
    a.add_argument("--arms", choices=["table4", "stagewise"], default="table4",
                   help="table4 (default), or stagewise: also the two stage-wise variants")
    a.add_argument("--budget", choices=list(BUDGETS), default="iterations",
                   help="iterations (default, the paper's protocol: every arm trains the same "
                        "iterations, the hybrid's step is the sum of the branches' batches) or "
                        "images (NOT the paper's: every arm sees as many images as the hybrid)")
    a.add_argument("--jobs", type=int, default=1, metavar="N", help="arms trained side by side")
    a.add_argument("--launcher", default="", metavar="CMD",
                   help='run each arm under CMD, e.g. "torchrun --nproc_per_node=4"')
    a.add_argument("--compact", action="store_true",
                   help="remove each finished arm's checkpoints once it is evaluated and its "
                        "samples are drawn (the folder stays a few MB, to keep or commit between "
                        "sittings; a compacted arm counts as finished)")
    a.add_argument("--hours", type=float, default=None, metavar="H",
                   help="end this sitting after H hours: start the arms whose estimated "
                        "remaining time (measured on this experiment's arms) fits in what is "
                        "left, the longest first (when none fits, one that goes on in the next "
                        "sitting), and stop the arms still running at the end (checkpointed; "
                        "the next sitting resumes them)")
    a.add_argument("--device", choices=["auto", "cpu", "cuda"], default="auto")
    a.add_argument("--no-progress", action="store_true", help="no progress bars")
    a.add_argument("overrides", nargs="*", metavar="key=value",
                   help="extra config overrides for every arm (e.g. model.channel_multiplier=0.25)")


def run(args: argparse.Namespace) -> int:
    scale = SCALES[args.scale]
    seeds = args.seeds if args.seeds is not None else scale.default_seeds
    if seeds < 1:
        raise ValueError(f"--seeds must be >= 1, got {seeds}")
    if args.jobs < 1:
        raise ValueError(f"--jobs must be >= 1, got {args.jobs}")
    if args.hours is not None and not args.hours > 0:
        raise ValueError(f"--hours must be a positive number of hours, got {args.hours}")
    extra = list(args.overrides)
    if args.data is not None:
        extra.insert(0, f"data.root={args.data}")
    command = "oco-gan " + shlex.join(sys.argv[1:]) if sys.argv[1:2] == ["experiment"] else ""
    try:
        results = run_ablation(Path(args.out), scale=scale, seeds=seeds,
                               stagewise=args.arms == "stagewise", budget=args.budget,
                               extra=extra, jobs=args.jobs,
                               launcher=shlex.split(args.launcher), compact=args.compact,
                               device=args.device, hours=args.hours,
                               progress=not args.no_progress, command=command or
                               f"oco-gan experiment ablation --scale {scale.name} --out "
                               f"{args.out} --seeds {seeds}")
    except Interrupted as exc:
        print(f"oco-gan experiment: {exc}", file=sys.stderr)
        return 1
    print(results_markdown(results))
    print(f"oco-gan experiment: wrote {Path(args.out) / 'results.json'}, results.md, results.png")
    return 0
