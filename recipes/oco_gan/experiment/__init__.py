"""``oco-gan experiment ablation``: the paper's Table 4 ablation as one resumable command.

The design (paper §4.3, Table 4): three training modes (``uncond_only``, ``cond_only``,
``hybrid``) × two data regimes (``limited``: a small fully labelled subset; ``semi``: every image,
few of them labelled), ``S`` seeds each. Every *arm* is an ordinary run directory under
``OUT/arms/`` (inspect it, resume it, evaluate it on its own), trained for the same number of
images seen (batch_uncond + batch_cond per iteration, so single-branch arms run more iterations),
then evaluated with its EMA generator on what it trains: FID of unconditional samples for
``uncond_only`` and ``hybrid``, CFID and mIoU (under one proxy segmenter trained once per
experiment) of conditional samples for ``cond_only`` and ``hybrid``. The summary goes to
``OUT/results.json``, ``OUT/results.md`` (mean ± std over seeds, the paper's numbers beside them,
and a verdict on each of the paper's two claims) and ``OUT/results.png`` (bars with error bars).

``--arms stagewise`` adds the two stage-wise variants of the paper's text (train one branch,
freeze it, train the other) in the limited regime; stage 1 is the ``uncond_only`` /
``cond_only`` arm of the same seed, stage 2 starts from its weights (``--init-from``) with that
branch and the shared synthesis frozen (``train.freeze``).

Rerunning the same command continues: finished arms are skipped, an interrupted arm resumes from
its checkpoint exactly, finished evaluations are reused. ``--jobs N`` trains N arms side by side
(subprocesses); ``--launcher "torchrun --nproc_per_node=4"`` runs each arm under a launcher.

The package's modules: :mod:`.plan` (scales, arms), :mod:`.procs` (running commands in process or
as subprocesses), :mod:`.runner` (training and evaluating the arms), :mod:`.report` (statistics,
verdicts, table, chart) and :mod:`.cli` (the ``oco-gan experiment`` command).
"""

from .plan import MODES, PAPER, REGIMES, SCALES, SCORED, Arm, Scale, plan_arms
from .procs import Interrupted
from .report import results_chart, results_markdown, summarize
from .runner import run_ablation

__all__ = ["MODES", "PAPER", "REGIMES", "SCALES", "SCORED", "Arm", "Interrupted", "Scale",
           "plan_arms", "results_chart", "results_markdown", "run_ablation", "summarize"]
