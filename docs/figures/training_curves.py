"""Training curves of the demo run, plotted from its ``metrics.jsonl`` (``docs/_static/``).

The file is the one ``oco-gan train --preset demo`` wrote (one JSON object per logged step).
Losses are drawn raw and smoothed; any evaluation metric the run logged (keys containing
``fid`` or ``kid``) gets a panel of its own.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Dict, List

import matplotlib.pyplot as plt
import numpy as np
from _tables import DOCS

METRICS = DOCS / "_static" / "demo_metrics.jsonl"  # (the plot directive runs this file by exec)
GROUPS = {
    "generator": ["g/uncond", "g/cond", "g/total"],
    "discriminator": ["d/uncond", "d/cond_real", "d/cond_fake", "d/labelmix", "d/total"],
    "discriminator logits (image head)": ["d/real_logit", "d/fake_logit"],
}


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


def demo_training_curves() -> None:
    """One panel per group of losses, plus one per evaluation metric when the run logged any."""
    rows = read_metrics()
    evals = sorted({k for r in rows for k in r if "fid" in k.lower() or "kid" in k.lower()})
    panels = list(GROUPS) + evals
    nrows = -(-len(panels) // 2)
    fig, axes = plt.subplots(nrows, 2, figsize=(10, 3.4 * nrows), layout="constrained",
                             squeeze=False)
    for ax in axes.flat[len(panels):]:
        ax.remove()
    for ax, panel in zip(axes.flat, panels):
        for key in GROUPS.get(panel, [panel]):
            points = [(r["step"], r[key]) for r in rows if key in r]
            if not points:
                continue
            steps, values = map(np.array, zip(*points))
            window = max(1, len(values) // 20)
            (line,) = ax.plot(steps, _smooth(values, window), label=key, linewidth=1.4)
            if window > 1:
                ax.plot(steps, values, color=line.get_color(), alpha=0.25, linewidth=0.8)
        ax.set_title(panel, fontsize=10)
        ax.set_xlabel("iteration")
        ax.grid(alpha=0.3)
        ax.legend(fontsize=7)
    last = rows[-1]
    fig.suptitle(f"oco-gan train --preset demo: {last['step']} iterations, "
                 f"{last.get('kimg', float('nan')):.1f} kimg", fontsize=10)
