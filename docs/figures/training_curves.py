"""Training curves of the demo run, plotted from its ``metrics.jsonl`` (``docs/_static/``).

``demo_metrics.jsonl`` is the file the run wrote (one JSON object per logged step, the periodic
FID rows included) and ``demo_config.json`` the config it saved, from which the FID panel reads
what was measured (feature network, number of images). Losses are drawn raw and smoothed; the
FID (``eval/fid``, and the best so far, ``eval/best_fid``) gets a panel of its own.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any, Dict, List

import matplotlib.pyplot as plt
import numpy as np
from _tables import DOCS

METRICS = DOCS / "_static" / "demo_metrics.jsonl"  # (the plot directive runs this file by exec)
CONFIG = DOCS / "_static" / "demo_config.json"
GROUPS = {
    "generator": ["g/uncond", "g/cond", "g/total"],
    "discriminator": ["d/uncond", "d/cond_real", "d/cond_fake", "d/labelmix", "d/total"],
    "discriminator logits (image head)": ["d/real_logit", "d/fake_logit"],
}
FEATURES = {"inception": "Inception-v3", "randconv": "random conv. features"}


def read_metrics(path: Path = METRICS) -> List[Dict[str, float]]:
    """The logged rows, in step order."""
    rows = [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines() if line]
    if not rows:
        raise ValueError(f"{path}: no metrics")
    return sorted(rows, key=lambda r: r["step"])


def _smooth(y: np.ndarray, window: int) -> np.ndarray:
    if len(y) < window:
        return y
    kernel = np.ones(window) / window
    padded = np.concatenate([np.full(window // 2, y[0]), y, np.full(window - 1 - window // 2,
                                                                      y[-1])])
    return np.convolve(padded, kernel, mode="valid")


def _fid_title(config: Dict[str, Any]) -> str:
    train = config.get("train", {})
    features = FEATURES.get(train.get("eval_features"), str(train.get("eval_features")))
    n = train.get("eval_num")
    return (f"FID of G_ema, every {train.get('eval_every')} training images\n"
            f"{features}: {n} val. images vs {n} samples")


def _series(rows: List[Dict[str, float]], key: str):
    points = [(r["step"], r[key]) for r in rows if key in r]
    return tuple(map(np.array, zip(*points))) if points else (None, None)


def demo_training_curves() -> None:
    """Losses (three panels) and, when the run logged it, the periodic FID (a fourth)."""
    rows = read_metrics(METRICS)
    config = json.loads(CONFIG.read_text(encoding="utf-8")) if CONFIG.is_file() else {}
    has_fid = any("eval/fid" in r for r in rows)
    panels = [*GROUPS, "FID"] if has_fid else list(GROUPS)
    nrows = -(-len(panels) // 2)
    fig, axes = plt.subplots(nrows, 2, figsize=(10, 3.4 * nrows), layout="constrained",
                             squeeze=False)
    for ax in axes.flat[len(panels):]:
        ax.remove()
    for ax, panel in zip(axes.flat, panels):
        if panel == "FID":
            steps, fid = _series(rows, "eval/fid")
            ax.plot(steps, fid, marker="o", ms=4, label="eval/fid")
            steps, best = _series(rows, "eval/best_fid")
            if steps is not None:
                ax.plot(steps, best, linestyle="--", label="eval/best_fid")
            ax.set_title(_fid_title(config), fontsize=9)
        else:
            for key in GROUPS[panel]:
                steps, values = _series(rows, key)
                if steps is None:
                    continue
                window = max(1, len(values) // 20)
                (line,) = ax.plot(steps, _smooth(values, window), label=key, linewidth=1.4)
                if window > 1:
                    ax.plot(steps, values, color=line.get_color(), alpha=0.25, linewidth=0.8)
            ax.set_title(panel, fontsize=10)
        ax.set_xlabel("iteration")
        ax.grid(alpha=0.3)
        ax.legend(fontsize=7)
    last = max(r["step"] for r in rows)
    kimg = max((r["kimg"] for r in rows if "kimg" in r), default=float("nan"))
    fig.suptitle(f"{config.get('preset', 'demo')} preset: {last} iterations, {kimg:.1f} kimg",
                 fontsize=10)
