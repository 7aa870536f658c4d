"""The experiment's summary: statistics over seeds, the verdicts on the paper's claims, the
Markdown table and the chart."""

from __future__ import annotations

import math
import statistics
from pathlib import Path
from typing import Any, Dict, List, Optional, Sequence, Tuple

from .plan import PAPER, REGIMES, Arm

__all__ = ["results_chart", "results_markdown", "summarize"]

def _stats(values: Sequence[float]) -> Dict[str, Any]:
    values = [float(v) for v in values if v is not None and not math.isnan(float(v))]
    if not values:
        return {"mean": None, "std": None, "n": 0, "values": []}
    return {"mean": statistics.fmean(values),
            "std": statistics.stdev(values) if len(values) > 1 else None,
            "n": len(values), "values": values}


def _claim(summary: Dict[str, Any], regime: str, metric: str, baseline: str,
           text: str) -> Dict[str, Any]:
    """Is ``hybrid`` lower than ``baseline`` on ``metric`` (lower is better) beyond the noise?

    Confirmed when the difference of the seed means exceeds twice its standard error (with at
    least two seeds per arm); the opposite direction by the same margin is "contradicted";
    anything else is "inconclusive".
    """
    a = summary.get(regime, {}).get(baseline, {}).get(metric)
    b = summary.get(regime, {}).get("hybrid", {}).get(metric)
    claim: Dict[str, Any] = {"claim": text, "regime": regime, "metric": metric,
                             "baseline": baseline, "paper": [PAPER[regime][baseline][metric],
                                                             PAPER[regime]["hybrid"][metric]]}
    if not a or not b or a["mean"] is None or b["mean"] is None:
        return {**claim, "verdict": "not measured"}
    diff = a["mean"] - b["mean"]
    claim.update(baseline_mean=a["mean"], hybrid_mean=b["mean"], improvement=diff)
    if a["n"] < 2 or b["n"] < 2:
        return {**claim, "verdict": "inconclusive (one seed: no spread to compare with)"}
    se = math.sqrt(a["std"] ** 2 / a["n"] + b["std"] ** 2 / b["n"])
    claim["standard_error"] = se
    if diff > 2 * se:
        verdict = "confirmed"
    elif diff < -2 * se:
        verdict = "contradicted"
    else:
        verdict = "inconclusive (difference within two standard errors)"
    return {**claim, "verdict": verdict}


def summarize(arm_results: Sequence[Tuple[Arm, Dict[str, Any]]]) -> Dict[str, Any]:
    """Mean ± std over seeds per regime × mode × metric, and the verdicts on the two claims.

    Each arm's metric is the mean over its evaluation's sample sets; the std here is over seeds.

    Example:
        >>> arm = Arm("limited-hybrid-s0", "limited", "hybrid", 0, 10)
        >>> res = {"metrics": {"FID": {"mean": 50.0}, "CFID": {"mean": 40.0}}}
        >>> summarize([(arm, res)])["summary"]["limited"]["hybrid"]["FID"]["mean"]
        50.0
    """
    per: Dict[str, Dict[str, Dict[str, List[float]]]] = {}
    for arm, res in arm_results:
        for metric in arm.scored:
            entry = (res.get("metrics") or {}).get(metric)
            if entry is None:
                continue
            per.setdefault(arm.regime, {}).setdefault(arm.mode, {}).setdefault(
                metric, []).append(entry["mean"])
    summary = {r: {m: {k: _stats(v) for k, v in metrics.items()} for m, metrics in modes.items()}
               for r, modes in per.items()}
    claims = [
        _claim(summary, "limited", "FID", "uncond_only",
               "limited data: hybrid training improves unconditional FID over uncond_only"),
        _claim(summary, "semi", "CFID", "cond_only",
               "semi-supervised: hybrid training improves conditional CFID over cond_only"),
    ]
    return {"summary": summary, "claims": claims}


def _fmt(stats: Optional[Dict[str, Any]], metric: str) -> str:
    if not stats or stats["mean"] is None:
        return "–"
    scale = 100.0 if metric == "mIoU" else 1.0
    text = f"{scale * stats['mean']:.1f}"
    if stats["std"] is not None:
        text += f" ± {scale * stats['std']:.1f}"
    return text


def results_markdown(results: Dict[str, Any]) -> str:
    """The experiment's table (ours vs the paper's) and the claims' verdicts as Markdown."""
    lines = [f"# OCO-GAN Table 4 ablation, scale `{results['scale']}`", "",
             f"{results['seeds']} seed(s) per arm; {results['images_per_arm']} images seen per "
             f"arm; metrics: {results['features']} features, {results['eval_repeats']} sample "
             "sets per arm; mean ± std over seeds (mIoU in %). Paper: Table 4 (Cityscapes5K / "
             "Cityscapes25K), stage-wise rows from §4.3's text.", "",
             f"Command: `{results['command']}`", ""]
    if results.get("wall_seconds") is not None:
        lines += [f"Wall time: {results['wall_seconds'] / 3600:.2f} h over "
                  f"{results.get('sittings', 1)} sitting(s).", ""]
    metrics = ("FID", "CFID", "mIoU")
    for regime in REGIMES:
        modes = results["summary"].get(regime, {})
        if not modes:
            continue
        lines += [f"## {regime}", "",
                  "| arm | " + " | ".join(f"{m} (ours) | {m} (paper)" for m in metrics) + " |",
                  "|---" * (1 + 2 * len(metrics)) + "|"]
        for mode, stats in modes.items():
            paper = PAPER.get(regime, {}).get(mode, {})
            cells = []
            for m in metrics:
                cells += [_fmt(stats.get(m), m),
                          f"{paper[m]:.1f}" if m in paper else "–"]
            lines.append(f"| {mode} | " + " | ".join(cells) + " |")
        lines.append("")
    lines += ["## The paper's claims at this scale", ""]
    for c in results["claims"]:
        detail = ""
        if "improvement" in c:
            detail = (f" ({c['baseline']} {c['baseline_mean']:.1f} → hybrid "
                      f"{c['hybrid_mean']:.1f}, improvement {c['improvement']:+.1f}")
            if "standard_error" in c:
                detail += f", standard error {c['standard_error']:.1f}"
            detail += f"; paper {c['paper'][0]} → {c['paper'][1]})"
        lines.append(f"- {c['claim']}: **{c['verdict']}**{detail}")
    lines.append("")
    return "\n".join(lines)


def results_chart(results: Dict[str, Any], path: Path) -> Optional[Path]:
    """A bar chart (regime × metric panels, one bar per arm, error bars = std over seeds)."""
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:  # pragma: no cover - matplotlib is in the test extra
        return None
    metrics = ("FID", "CFID", "mIoU")
    fig, axes = plt.subplots(len(REGIMES), len(metrics), figsize=(11, 6), squeeze=False)
    for i, regime in enumerate(REGIMES):
        modes = results["summary"].get(regime, {})
        for j, metric in enumerate(metrics):
            ax = axes[i][j]
            names, means, errs = [], [], []
            for mode, stats in modes.items():
                s = stats.get(metric)
                if s and s["mean"] is not None:
                    k = 100.0 if metric == "mIoU" else 1.0
                    names.append(mode.replace("_", "\n"))
                    means.append(k * s["mean"])
                    errs.append(k * (s["std"] or 0.0))
            ax.bar(range(len(names)), means, yerr=errs, capsize=4,
                   color=["#4c72b0", "#dd8452", "#55a868", "#8172b3", "#937860"][:len(names)])
            ax.set_xticks(range(len(names)), names, fontsize=7)
            better = "higher" if metric == "mIoU" else "lower"
            ax.set_title(f"{regime}: {metric} ({better} is better)", fontsize=9)
    fig.suptitle(f"OCO-GAN ablation (scale {results['scale']}, {results['seeds']} seed(s), "
                 "mean ± std over seeds)", fontsize=10)
    fig.tight_layout()
    from ganblocks.train.checkpoint import atomic_write

    atomic_write(path, lambda f: fig.savefig(f, format="png", dpi=110))
    plt.close(fig)
    return path

