"""``oco-gan experiment ablation``: the paper's Table 4 ablation as one resumable command.

The design (paper §4.3, Table 4): three training modes (``uncond_only``, ``cond_only``,
``hybrid``) × two data regimes (``limited``: a small fully labelled subset; ``semi``: every image,
few of them labelled), ``S`` seeds each. Every *arm* is an ordinary run directory under
``OUT/arms/`` (inspect it, resume it, evaluate it on its own). As in the paper, every arm trains
the same number of iterations and a branch has the same batch in the hybrid arm as in its
single-branch arm (``--budget images`` gives every arm the hybrid's images seen instead: not the
paper's protocol). During training each arm measures, on a fixed schedule and on fixed sample
sets, what it trains: FID of unconditional samples, CFID and mIoU (under one proxy segmenter
trained first, once per experiment) of conditional samples; the curve stays in the arm's
``selection.json``. The last checkpoint is then evaluated in full (several sample sets, KID). The
summary goes to ``OUT/results.json``, ``OUT/results.md`` (the best and the last snapshot of each
metric, mean ± std over seeds, the paper's numbers beside them, and a verdict on each of the
paper's two claims from paired same-seed differences) and ``OUT/results.png`` (the curves).

``--arms stagewise`` adds the two stage-wise variants of the paper's text (train one branch,
freeze it, train the other) in the limited regime; stage 1 is the ``uncond_only`` /
``cond_only`` arm of the same seed, stage 2 starts from its weights (``--init-from``) with that
branch and the shared synthesis frozen (``train.freeze``).

Rerunning the same command continues: finished arms are skipped, an interrupted arm resumes from
its checkpoint exactly, finished evaluations are reused. ``--jobs N`` trains N arms side by side
(subprocesses); ``--launcher "torchrun --nproc_per_node=4"`` runs each arm under a launcher.
``--hours H`` makes this sitting H hours long: the arms whose estimated remaining time (measured
on the experiment's own arms) fits start first, an arm longer than what is left is trained until
the end and goes on in the next sitting, and the arms running at the end are stopped with their
checkpoints (:mod:`.schedule`).

The package's modules: :mod:`.plan` (scales, arms), :mod:`.procs` (running commands in process or
as subprocesses), :mod:`.schedule` (sittings of a set length), :mod:`.runner` (training and
evaluating the arms), :mod:`.report` (statistics, verdicts, table, chart) and :mod:`.cli` (the
``oco-gan experiment`` command).
"""

from .plan import BUDGETS, MODES, PAPER, REGIMES, SCALES, SCORED, Arm, Scale, plan_arms
from .procs import Interrupted
from .report import results_chart, results_markdown, summarize
from .runner import run_ablation

__all__ = ["BUDGETS", "MODES", "PAPER", "REGIMES", "SCALES", "SCORED", "Arm", "Interrupted",
           "Scale", "plan_arms", "results_chart", "results_markdown", "run_ablation", "summarize"]
