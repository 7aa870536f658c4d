"""Charts of the performance page, drawn from its own tables (``docs/performance.rst``)."""

from __future__ import annotations

import matplotlib.pyplot as plt
import numpy as np
from _tables import number, table

PAGE = "performance.rst"


def ops_chart() -> None:
    """Reference vs native time of each op (log scale), with the speed-up written on top."""
    rows = table(PAGE, "Ops: reference path against native kernels")
    labels = [f"{r['op']} · {r['pass']}" for r in rows]
    ref = np.array([number(r["ref (ms)"]) for r in rows])
    nat = np.array([number(r["native (ms)"]) for r in rows])
    floor = np.array([number(r["floor (ms)"]) for r in rows])
    x = np.arange(len(rows))
    _, ax = plt.subplots(figsize=(max(10.0, 0.5 * len(rows)), 4.2), layout="constrained")
    ax.bar(x - 0.27, ref, 0.27, label="ref (pure PyTorch)", color="#9bbbe0")
    ax.bar(x, nat, 0.27, label="native kernels", color="#1f5f9f")
    ax.bar(x + 0.27, floor, 0.27, label="floor (write of the output into fresh pages)",
           color="#cccccc")
    for i in range(len(rows)):
        ax.text(x[i], max(ref[i], nat[i]) * 1.25, f"{ref[i] / nat[i]:.1f}×", ha="center",
                fontsize=7, fontweight="bold")
    ax.set_yscale("log")
    ax.set_ylabel("ms per call (log scale)")
    ax.set_xticks(x, labels, fontsize=7, rotation=60, ha="right", rotation_mode="anchor")
    ax.set_ylim(top=ax.get_ylim()[1] * 3)
    ax.legend(fontsize=8, loc="upper right", ncol=3)
    ax.set_title("Ops on 2 CPU threads: reference vs native (numbers: ref / native)", fontsize=10)


def inference_chart() -> None:
    """Seconds per image of the generator by preset and batch size (log scale)."""
    rows = table(PAGE, "OCO-GAN generator inference")
    labels = [f"{r['preset']}\nbatch {r['batch']}" for r in rows]
    uncond = np.array([number(r["unconditional (s/img)"]) for r in rows])
    cond = np.array([number(r["conditional (s/img)"]) for r in rows])
    x = np.arange(len(rows))
    _, ax = plt.subplots(figsize=(10, 3.6), layout="constrained")
    ax.bar(x - 0.2, uncond, 0.4, label="unconditional", color="#1f5f9f")
    ax.bar(x + 0.2, cond, 0.4, label="conditional", color="#d9822b")
    ax.set_yscale("log")
    ax.set_ylabel("seconds per image (log scale)")
    ax.set_xticks(x, labels, fontsize=8)
    ax.legend(fontsize=8)
    ax.set_title("Generator inference on 2 CPU threads, fp32", fontsize=10)


def train_step_chart() -> None:
    """Where the time of one training iteration goes (horizontal bars, largest first)."""
    rows = table(PAGE, "OCO-GAN training step")
    rows = sorted(rows, key=lambda r: number(r["ms"]))
    ms = np.array([number(r["ms"]) for r in rows])
    _, ax = plt.subplots(figsize=(9, 3.4), layout="constrained")
    ax.barh(np.arange(len(rows)), ms, color="#2b8a3e")
    ax.set_yticks(np.arange(len(rows)), [r["phase"] for r in rows], fontsize=8)
    for i, value in enumerate(ms):
        ax.text(value + ms.max() * 0.01, i, f"{value:.1f} ms ({100 * value / ms.sum():.0f} %)",
                va="center", fontsize=8)
    ax.set_xlim(0, ms.max() * 1.3)
    ax.set_xlabel("ms per iteration")
    ax.set_title("demo preset, one training iteration on 2 CPU threads", fontsize=10)
