"""The experiment's summary: each arm's best and last point of its model-selection curve,
statistics over seeds, paired same-seed differences and the verdicts on the paper's claims, the
Markdown table and the chart of the curves.

The rule for a verdict, fixed before any run: for each seed, the improvement is the baseline
arm's value minus the hybrid arm's (FID and CFID: lower is better); with ``n >= 2`` seeds the
claim is **confirmed** when the mean improvement is positive and a two-sided paired t-test at the
5 % level rejects "no difference" (``mean > t(0.975, n - 1) * sd / sqrt(n)``), **not confirmed**
when the hybrid is worse by the same test, and **inconclusive** otherwise (and with one seed).
The verdict uses the best snapshot of each arm, as the paper selects its models; the last
snapshot's test is reported beside it.
"""

from __future__ import annotations

import math
import statistics
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Dict, List, Optional, Sequence

from .plan import MODES, PAPER, REGIMES, Arm

__all__ = ["ArmResult", "arm_entry", "arm_values", "criteria_text", "curve_criteria",
           "results_chart", "results_markdown", "summarize"]

#: Metrics on the curves; FID and CFID are lower-is-better, the mIoU higher-is-better and taken
#: at the snapshot that the CFID selects.
METRICS = ("FID", "CFID", "mIoU")
#: Two-sided 97.5 % quantiles of Student's t with 1..30 degrees of freedom (1.96 beyond).
T975 = (12.706, 4.303, 3.182, 2.776, 2.571, 2.447, 2.365, 2.306, 2.262, 2.228, 2.201, 2.179,
        2.160, 2.145, 2.131, 2.120, 2.110, 2.101, 2.093, 2.086, 2.080, 2.074, 2.069, 2.064,
        2.060, 2.056, 2.052, 2.048, 2.045, 2.042)
#: The scale's criteria on each arm's own curve (docs/experiments.rst, fixed before the run): a
#: curve has flattened when its best value improved by at most FLAT_PERCENT over its last third
#: (or it turned up); it has turned up when its last point is at least TURN_UP_PERCENT above its
#: best; it has learned when its best is below LEARNED_BELOW.
FLAT_PERCENT = 5.0
TURN_UP_PERCENT = 10.0
LEARNED_BELOW = 100.0
CLAIMS = (("limited", "FID", "uncond_only",
           "limited data: hybrid training improves unconditional FID over uncond_only"),
          ("semi", "CFID", "cond_only",
           "semi-supervised: hybrid training improves conditional CFID over cond_only"))


@dataclass(frozen=True)
class ArmResult:
    """What one arm produced: its plan entry, its curve (``selection.json``, ``None`` when it
    has none) and the final evaluation of its last checkpoint (``eval/results.json``)."""

    arm: Arm
    curve: Optional[Dict[str, Any]]
    final: Dict[str, Any]


def arm_values(result: ArmResult) -> Dict[str, Dict[str, Any]]:
    """Per scored metric: ``best`` (and ``best_step``), ``last`` and ``final``.

    ``best`` is the minimum of the FID / CFID curve; the mIoU's is its value at the CFID's best
    step (the snapshot the CFID selects). ``last`` is the curve's last point. ``final`` is the
    final evaluation of the last checkpoint (mean over its sample sets). A metric missing from the
    curve (the frozen branch of a stage-wise arm) has only ``final``, which also stands as its
    ``last``.

    Example:
        >>> arm = Arm("limited-hybrid-s0", "limited", "hybrid", 0, 4)
        >>> curve = {"points": [{"step": 2, "FID": 9.0, "CFID": 5.0, "mIoU": 0.4},
        ...                     {"step": 4, "FID": 7.0, "CFID": 6.0, "mIoU": 0.5}]}
        >>> v = arm_values(ArmResult(arm, curve, {"metrics": {"FID": {"mean": 7.5}}}))
        >>> v["FID"]["best"], v["FID"]["best_step"], v["FID"]["last"], v["FID"]["final"]
        (7.0, 4, 7.0, 7.5)
        >>> v["mIoU"]["best"], v["mIoU"]["best_step"], v["mIoU"]["last"]
        (0.4, 2, 0.5)
    """
    points = (result.curve or {}).get("points", [])
    finals = result.final.get("metrics") or {}

    def best_of(metric: str) -> Optional[Dict[str, Any]]:
        scored = [p for p in points if _finite(p.get(metric))]
        return min(scored, key=lambda p: p[metric]) if scored else None

    out: Dict[str, Dict[str, Any]] = {}
    for metric in result.arm.scored:
        final = (finals.get(metric) or {}).get("mean")
        on_curve = [p for p in points if metric in p]
        selected = best_of("CFID" if metric == "mIoU" else metric)
        if not on_curve or selected is None or metric not in selected:
            out[metric] = {"best": None, "best_step": None, "last": final, "final": final}
            continue
        out[metric] = {"best": selected[metric], "best_step": selected["step"],
                       "last": on_curve[-1][metric], "final": final}
    return out


def curve_criteria(points: Sequence[Dict[str, Any]], metric: str) -> Optional[Dict[str, Any]]:
    """The scale's criteria on one lower-is-better curve (``FID`` or ``CFID``) of one arm.

    The last third of the curve starts at two thirds of its last step; ``improved_percent`` is
    how much the best value improved over it (from the best up to that step to the best of all),
    ``above_best_percent`` how far the last point lies above the best. ``flattened`` is
    ``improved_percent <= FLAT_PERCENT`` or ``turned_up`` (``above_best_percent >=
    TURN_UP_PERCENT``); ``learned`` is ``best < LEARNED_BELOW``. ``None`` without such a curve.

    Example:
        >>> pts = [{"step": s, "FID": v} for s, v in [(2, 150.0), (4, 120.0), (6, 90.0)]]
        >>> c = curve_criteria(pts, "FID")  # the last third starts at step 4
        >>> c["improved_percent"], c["flattened"], c["learned"], c["turned_up"]
        (25.0, False, True, False)
        >>> c = curve_criteria(pts[:2] + [{"step": 6, "FID": 135.0}], "FID")
        >>> c["best"], c["above_best_percent"], c["turned_up"], c["flattened"], c["learned"]
        (120.0, 12.5, True, True, False)
    """
    curve = [(p["step"], float(p[metric])) for p in points if _finite(p.get(metric))]
    if not curve:
        return None
    start = curve[-1][0] * 2 / 3
    before = [v for s, v in curve if s <= start] or [curve[0][1]]
    best_step, best = min(curve, key=lambda sv: sv[1])
    last = curve[-1][1]
    # FID and CFID are positive; a zero (identical sets) counts as no relative change.
    improved = 100.0 * (min(before) - best) / min(before) if min(before) > 0 else 0.0
    above = 100.0 * (last - best) / best if best > 0 else 0.0
    turned_up = above >= TURN_UP_PERCENT
    return {"best": best, "best_step": best_step, "last": last,
            "improved_percent": round(improved, 2), "above_best_percent": round(above, 2),
            "flattened": improved <= FLAT_PERCENT or turned_up, "turned_up": turned_up,
            "learned": best < LEARNED_BELOW}


def arm_entry(result: ArmResult) -> Dict[str, Any]:
    """One arm's record in ``results.json``."""
    a = result.arm
    return {"name": a.name, "regime": a.regime, "mode": a.mode, "seed": a.seed,
            "steps": a.steps, "eval_every_images": a.eval_every,
            "run_dir": str(Path("arms") / a.name), "init_from": a.init_from,
            "freeze": list(a.freeze), "values": arm_values(result),
            "curve": (result.curve or {}).get("points", []),
            "criteria": {m: curve_criteria((result.curve or {}).get("points", []), m)
                         for m in ("FID", "CFID") if m in a.scored},
            "metrics": {m: (result.final.get("metrics") or {}).get(m) for m in a.scored}}


def _finite(value: Any) -> bool:
    return value is not None and math.isfinite(float(value))


def _stats(values: Sequence[Optional[float]]) -> Dict[str, Any]:
    values = [float(v) for v in values if _finite(v)]
    if not values:
        return {"mean": None, "std": None, "n": 0, "values": []}
    return {"mean": statistics.fmean(values),
            "std": statistics.stdev(values) if len(values) > 1 else None,
            "n": len(values), "values": values}


def paired_test(improvements: Sequence[float]) -> Dict[str, Any]:
    """The verdict of the module's rule on same-seed improvements (baseline − hybrid).

    Example:
        >>> paired_test([10.0, 12.0, 11.0])["verdict"]
        'confirmed'
        >>> paired_test([10.0, -12.0])["verdict"]
        'inconclusive (the difference is within the test margin)'
        >>> paired_test([-5.0, -5.5, -6.0])["verdict"]
        'not confirmed (the hybrid is worse)'
    """
    d = [float(x) for x in improvements]
    out: Dict[str, Any] = {"improvements": d, "n": len(d),
                           "mean_improvement": statistics.fmean(d) if d else None}
    if len(d) < 2:
        return {**out, "verdict": "inconclusive (fewer than two seeds: no spread to test)"}
    se = statistics.stdev(d) / math.sqrt(len(d))
    t = T975[len(d) - 2] if len(d) - 1 <= len(T975) else 1.96
    margin = t * se
    out.update(standard_error=se, margin=margin)
    if out["mean_improvement"] > margin:
        return {**out, "verdict": "confirmed"}
    if out["mean_improvement"] < -margin:
        return {**out, "verdict": "not confirmed (the hybrid is worse)"}
    return {**out, "verdict": "inconclusive (the difference is within the test margin)"}


def _claim(per_arm: Dict[str, Dict[str, Any]], regime: str, metric: str, baseline: str,
           text: str, seeds: Sequence[int]) -> Dict[str, Any]:
    claim: Dict[str, Any] = {"claim": text, "regime": regime, "metric": metric,
                             "baseline": baseline,
                             "paper": [PAPER[regime][baseline][metric],
                                       PAPER[regime]["hybrid"][metric]]}
    for which in ("best", "last"):
        pairs = []
        for s in seeds:
            a = per_arm.get(f"{regime}-{baseline}-s{s}", {}).get(metric, {}).get(which)
            b = per_arm.get(f"{regime}-hybrid-s{s}", {}).get(metric, {}).get(which)
            if _finite(a) and _finite(b):
                pairs.append((s, a, b))
        if not pairs:
            claim[which] = {"verdict": "not measured"}
            continue
        test = paired_test([a - b for _, a, b in pairs])
        claim[which] = {"seeds": [s for s, _, _ in pairs],
                        "baseline_mean": statistics.fmean(a for _, a, _ in pairs),
                        "hybrid_mean": statistics.fmean(b for _, _, b in pairs), **test}
    claim["verdict"] = claim["best"]["verdict"]
    return claim


def summarize(arm_results: Sequence[ArmResult]) -> Dict[str, Any]:
    """Mean ± std over seeds of every regime × mode × metric (best, last, final), and the
    verdicts on the two claims from the paired same-seed differences.

    Example:
        >>> def res(mode, seed, fid):
        ...     arm = Arm(f"limited-{mode}-s{seed}", "limited", mode, seed, 4)
        ...     return ArmResult(arm, {"points": [{"step": 4, "FID": fid, "CFID": 1.0}]}, {})
        >>> out = summarize([res("uncond_only", 0, 80.0), res("hybrid", 0, 60.0),
        ...                  res("uncond_only", 1, 82.0), res("hybrid", 1, 61.0)])
        >>> out["summary"]["limited"]["hybrid"]["FID"]["best"]["mean"]
        60.5
        >>> out["claims"][0]["best"]["improvements"], out["claims"][0]["verdict"]
        ([20.0, 21.0], 'confirmed')
    """
    per_arm = {r.arm.name: arm_values(r) for r in arm_results}
    grouped: Dict[str, Dict[str, Dict[str, Dict[str, List[Any]]]]] = {}
    for r in arm_results:
        for metric, values in per_arm[r.arm.name].items():
            slot = grouped.setdefault(r.arm.regime, {}).setdefault(r.arm.mode, {}).setdefault(
                metric, {"best": [], "last": [], "final": []})
            for which in slot:
                slot[which].append(values[which])
    summary = {regime: {mode: {metric: {which: _stats(v) for which, v in slots.items()}
                               for metric, slots in metrics.items()}
                        for mode, metrics in modes.items()}
               for regime, modes in grouped.items()}
    seeds = sorted({r.arm.seed for r in arm_results})
    claims = [_claim(per_arm, regime, metric, baseline, text, seeds)
              for regime, metric, baseline, text in CLAIMS]
    return {"summary": summary, "claims": claims}


def _fmt(stats: Optional[Dict[str, Any]], metric: str) -> str:
    if not stats or stats["mean"] is None:
        return "–"
    scale = 100.0 if metric == "mIoU" else 1.0
    text = f"{scale * stats['mean']:.1f}"
    if stats["std"] is not None:
        text += f" ± {scale * stats['std']:.1f}"
    return text


def _claim_line(c: Dict[str, Any]) -> str:
    line = f"- {c['claim']}: **{c['verdict']}**"
    best = c.get("best", {})
    if "improvements" in best:
        diffs = ", ".join(f"{d:+.1f}" for d in best["improvements"])
        line += (f" (best snapshots: {c['baseline']} {best['baseline_mean']:.1f} → hybrid "
                 f"{best['hybrid_mean']:.1f}; same-seed improvements {diffs}")
        if "margin" in best:
            line += f", mean {best['mean_improvement']:+.1f} vs margin ±{best['margin']:.1f}"
        line += f"; paper {c['paper'][0]} → {c['paper'][1]})"
    last = c.get("last", {})
    if "improvements" in last:
        diffs = ", ".join(f"{d:+.1f}" for d in last["improvements"])
        line += f". Last snapshots: improvements {diffs}, {last['verdict']}"
    return line


def results_markdown(results: Dict[str, Any]) -> str:
    """The experiment's table (ours, best and last snapshot, vs the paper's) and the verdicts."""
    budget = results.get("budget", "iterations")
    lines = [f"# OCO-GAN Table 4 ablation, scale `{results['scale']}`", "",
             f"{results['seeds']} seed(s) per arm; budget `{budget}`"
             + (" (the paper's protocol: equal iterations)" if budget == "iterations" else
                " (equal images seen: not the paper's protocol)")
             + f"; {results['curve_points']} curve points per arm on {results['curve_num']} "
             f"validation images ({results['features']} features); mean ± std over seeds "
             "(mIoU in %, at the snapshot the CFID selects). Paper: Table 4 "
             "(Cityscapes5K / Cityscapes25K), stage-wise rows from §4.3's text.", "",
             f"Command: `{results['command']}`", ""]
    floor = results.get("real_floor")
    if floor:
        lines += [f"Real-vs-real FID at this sample size (the floor): {floor['FID']:.1f} "
                  f"({floor['num_val']} validation vs {floor['num_train']} training images).",
                  ""]
    if results.get("wall_seconds") is not None:
        lines += [f"Wall time: {results['wall_seconds'] / 3600:.2f} h over "
                  f"{results.get('sittings', 1)} sitting(s).", ""]
    for regime in REGIMES:
        modes = results["summary"].get(regime, {})
        if not modes:
            continue
        lines += [f"## {regime}", "",
                  "| arm | " + " | ".join(f"{m} best | {m} last | {m} paper" for m in METRICS)
                  + " |", "|---" * (1 + 3 * len(METRICS)) + "|"]
        for mode in [m for m in MODES if m in modes] + [m for m in modes if m not in MODES]:
            paper = PAPER.get(regime, {}).get(mode, {})
            cells = []
            for m in METRICS:
                s = modes[mode].get(m) or {}
                cells += [_fmt(s.get("best"), m), _fmt(s.get("last"), m),
                          f"{paper[m]:.1f}" if m in paper else "–"]
            lines.append(f"| {mode} | " + " | ".join(cells) + " |")
        lines.append("")
    lines += ["## The paper's claims at this scale", ""]
    lines += [_claim_line(c) for c in results["claims"]]
    lines.append("")
    criteria = [_criteria_line(a) for a in results.get("arms", []) if a.get("criteria")]
    if criteria:
        lines += ["## The scale's criteria on each arm's own curve", "",
                  f"Flattened: the best improved by at most {FLAT_PERCENT:g} % over the last third "
                  f"(or turned up); turned up: the last point at least {TURN_UP_PERCENT:g} % "
                  f"above the best; learned: the best below {LEARNED_BELOW:g}.", ""]
        lines += [*criteria, ""]
    return "\n".join(lines)


def criteria_text(c: Dict[str, Any]) -> str:
    """One line of :func:`curve_criteria`'s verdicts, as the report and the progress tool print it.

    Example:
        >>> pts = [{"step": s, "FID": v} for s, v in [(2, 150.0), (4, 120.0), (6, 90.0)]]
        >>> criteria_text(curve_criteria(pts, "FID"))  # doctest: +NORMALIZE_WHITESPACE
        'best 90.0 at 6, last 90.0; improved 25.0 % over the last third, last 0.0 % above the
        best; flattened no, turned up no, learned yes'
    """
    yes = {True: "yes", False: "no"}
    return (f"best {c['best']:.1f} at {c['best_step']}, last {c['last']:.1f}; improved "
            f"{c['improved_percent']:.1f} % over the last third, last "
            f"{c['above_best_percent']:.1f} % above the best; flattened {yes[c['flattened']]}, "
            f"turned up {yes[c['turned_up']]}, learned {yes[c['learned']]}")


def _criteria_line(arm: Dict[str, Any]) -> str:
    parts = [f"{metric} {criteria_text(c)}" for metric, c in arm["criteria"].items() if c]
    return f"- `{arm['name']}`: " + "; ".join(parts)


def results_chart(results: Dict[str, Any], path: Path) -> Optional[Path]:
    """The curves of every arm: one panel per regime × metric, one line per mode (the mean over
    seeds at each curve point) with the seeds' range shaded; the real-vs-real floor dashed."""
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:  # pragma: no cover - matplotlib is in the test extra
        return None
    colors = {"uncond_only": "#4c72b0", "cond_only": "#dd8452", "hybrid": "#55a868",
              "stage_uncond_then_cond": "#8172b3", "stage_cond_then_uncond": "#937860"}
    fig, axes = plt.subplots(len(REGIMES), len(METRICS), figsize=(12, 6.5), squeeze=False)
    floor = (results.get("real_floor") or {}).get("FID")
    for i, regime in enumerate(REGIMES):
        for j, metric in enumerate(METRICS):
            ax = axes[i][j]
            k = 100.0 if metric == "mIoU" else 1.0
            for mode, color in colors.items():
                runs = [a["curve"] for a in results["arms"]
                        if a["regime"] == regime and a["mode"] == mode
                        and any(metric in p for p in a["curve"])]
                if not runs:
                    continue
                steps = sorted({p["step"] for c in runs for p in c if metric in p})
                by_step = [[k * p[metric] for c in runs for p in c
                            if p["step"] == s and _finite(p.get(metric))] for s in steps]
                keep = [n for n, v in enumerate(by_step) if v]
                xs = [steps[n] for n in keep]
                ax.plot(xs, [statistics.fmean(by_step[n]) for n in keep], color=color,
                        label=f"{mode} ({len(runs)} seed{'s' if len(runs) > 1 else ''})")
                ax.fill_between(xs, [min(by_step[n]) for n in keep],
                                [max(by_step[n]) for n in keep], color=color, alpha=0.2)
            if floor is not None and metric != "mIoU":
                ax.axhline(floor, color="grey", linestyle="--", linewidth=1,
                           label="real vs real")
            better = "higher" if metric == "mIoU" else "lower"
            ax.set_title(f"{regime}: {metric} ({better} is better)", fontsize=9)
            ax.set_xlabel("iteration", fontsize=8)
            ax.tick_params(labelsize=7)
            if ax.lines:
                ax.legend(fontsize=6)
    fig.suptitle(f"OCO-GAN ablation curves (scale {results['scale']}, budget "
                 f"{results.get('budget', 'iterations')}; lines: mean over seeds, shading: "
                 "their range)", fontsize=10)
    fig.tight_layout()
    from ganblocks.train.checkpoint import atomic_write

    atomic_write(path, lambda f: fig.savefig(f, format="png", dpi=110))
    plt.close(fig)
    return path
