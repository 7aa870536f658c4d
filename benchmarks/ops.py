"""Benchmark of the FIR-resampling and bias-activation ops: reference path against native kernels.

For ``upsample2d``, ``downsample2d`` and ``filter2d`` with ``setup_filter([1, 3, 3, 1])`` on a
``[8, 128, 64, 64]`` float32 tensor, and ``bias_act(act='lrelu')`` (with a bias) on
``[8, 256, 64, 64]``, forward and forward+backward, it prints the time of the reference path, of
the native kernels, their ratio, and the ratio of native to the *memory floor*: the time of
producing a freshly allocated tensor of the op's output size in one pass (``x + 1`` for bias_act,
an output-sized ``torch.empty(...).fill_(1)`` for the resampling ops; forward+backward adds the
same for the input-sized gradient). A fresh allocation is part of the floor because the ops return
new tensors: page-faulting a new 64 MiB output alone costs tens of milliseconds on a small VM.

Usage::

    python benchmarks/ops.py                  # CPU, 2 threads (the documented setting)
    python benchmarks/ops.py --device cuda    # where a GPU is present
    python benchmarks/ops.py --rst            # also print the table as reStructuredText
"""

from __future__ import annotations

import argparse
import os
import platform
import sys
from dataclasses import dataclass
from typing import Callable, Dict, List, Optional

import torch
import torch.utils.benchmark as tb

from ganblocks.ops import bias_act, downsample2d, filter2d, native, setup_filter, upsample2d

RESAMPLE_SHAPE = (8, 128, 64, 64)
BIAS_ACT_SHAPE = (8, 256, 64, 64)

# (speed-up over ref at least, native / floor at most) per (op, pass); None: no target.
TARGETS = {
    ("upsample2d", "fwd"): (4.0, 2.0),
    ("downsample2d", "fwd"): (1.5, None),
    ("filter2d", "fwd"): (1.5, None),
    ("bias_act", "fwd"): (2.5, 1.5),
    ("upsample2d", "fwd+bwd"): (2.0, None),
    ("downsample2d", "fwd+bwd"): (2.0, None),
    ("filter2d", "fwd+bwd"): (2.0, None),
    ("bias_act", "fwd+bwd"): (2.0, None),
}


@dataclass
class Row:
    op: str
    pass_: str
    ref_ms: float
    native_ms: float
    floor_ms: float

    @property
    def speedup(self) -> float:
        return self.ref_ms / self.native_ms

    @property
    def vs_floor(self) -> float:
        return self.native_ms / self.floor_ms

    def verdict(self) -> str:
        min_speedup, max_floor = TARGETS.get((self.op, self.pass_), (None, None))
        parts = []
        if min_speedup is not None:
            parts.append(f">={min_speedup:g}x ref")
        if max_floor is not None:
            parts.append(f"<={max_floor:g}x floor")
        ok = (min_speedup is None or self.speedup >= min_speedup) and (
            max_floor is None or self.vs_floor <= max_floor
        )
        return ("ok" if ok else "MISSED") + (f" ({', '.join(parts)})" if parts else "")


def _time_ms(fn: Callable[[], object], threads: int, min_run_time: float) -> float:
    timer = tb.Timer("fn()", globals={"fn": fn}, num_threads=threads)
    return timer.blocked_autorange(min_run_time=min_run_time).median * 1e3


def _cases(device: torch.device) -> Dict[str, dict]:
    gen = torch.Generator().manual_seed(0)
    x = torch.randn(RESAMPLE_SHAPE, generator=gen).to(device)
    xb = torch.randn(BIAS_ACT_SHAPE, generator=gen).to(device)
    b = torch.randn(BIAS_ACT_SHAPE[1], generator=gen).to(device)
    f = setup_filter([1, 3, 3, 1], device=device)
    def resampling(fn: Callable) -> dict:
        out_shape = fn(x, f, impl="ref").shape
        return {
            "inputs": [x],
            "run": lambda impl, t: fn(t, f, impl=impl),
            "floor_fwd": lambda: torch.empty(out_shape, device=device).fill_(1),
            "floor_grad": lambda: torch.empty(RESAMPLE_SHAPE, device=device).fill_(1),
        }

    cases = {
        "upsample2d": resampling(upsample2d),
        "downsample2d": resampling(downsample2d),
        "filter2d": resampling(filter2d),
    }
    cases["bias_act"] = {
        "inputs": [xb, b],
        "run": lambda impl, t, bb: bias_act(t, bb, act="lrelu", impl=impl),
        "floor_fwd": lambda: xb + 1,
        "floor_grad": lambda: xb + 1,
    }
    return cases


def run(device: torch.device, threads: int, min_run_time: float) -> List[Row]:
    torch.set_num_threads(threads)
    rows = []
    for name, case in _cases(device).items():
        inputs, op = case["inputs"], case["run"]
        leaves = [t.detach().clone().requires_grad_(True) for t in inputs]
        dy = torch.ones_like(op("ref", *inputs))

        def fwd(impl, op=op, inputs=inputs):
            return op(impl, *inputs)

        def fwd_bwd(impl, op=op, leaves=leaves, dy=dy):
            return torch.autograd.grad(op(impl, *leaves), leaves, dy)

        floor_fwd = _time_ms(case["floor_fwd"], threads, min_run_time)
        floor_grad = _time_ms(case["floor_grad"], threads, min_run_time)
        for pass_, fn, floor in (("fwd", fwd, floor_fwd), ("fwd+bwd", fwd_bwd,
                                                          floor_fwd + floor_grad)):
            ref = _time_ms(lambda fn=fn: fn("ref"), threads, min_run_time)
            nat = _time_ms(lambda fn=fn: fn("native"), threads, min_run_time)
            rows.append(Row(name, pass_, ref, nat, floor))
    return rows


def format_table(rows: List[Row]) -> str:
    head = (f"{'op':<13} {'pass':<8} {'ref ms':>8} {'native ms':>10} {'ref/native':>11} "
            f"{'floor ms':>9} {'native/floor':>13}  target")
    lines = [head, "-" * len(head)]
    for r in rows:
        lines.append(
            f"{r.op:<13} {r.pass_:<8} {r.ref_ms:>8.1f} {r.native_ms:>10.1f} {r.speedup:>10.1f}x "
            f"{r.floor_ms:>9.1f} {r.vs_floor:>12.2f}x  {r.verdict()}"
        )
    return "\n".join(lines)


def format_rst(rows: List[Row]) -> str:
    out = [
        ".. list-table::",
        "   :header-rows: 1",
        "",
        "   * - op",
        "     - pass",
        "     - ref (ms)",
        "     - native (ms)",
        "     - ref / native",
        "     - floor (ms)",
        "     - native / floor",
    ]
    for r in rows:
        out += [
            f"   * - ``{r.op}``",
            f"     - {r.pass_}",
            f"     - {r.ref_ms:.1f}",
            f"     - {r.native_ms:.1f}",
            f"     - {r.speedup:.1f}x",
            f"     - {r.floor_ms:.1f}",
            f"     - {r.vs_floor:.2f}x",
        ]
    return "\n".join(out)


def main(argv: Optional[List[str]] = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--device", default="cpu", help="cpu or cuda")
    parser.add_argument("--threads", type=int, default=2, help="CPU threads (default 2)")
    parser.add_argument("--min-run-time", type=float, default=1.0, help="seconds per timing")
    parser.add_argument("--rst", action="store_true", help="also print a reStructuredText table")
    args = parser.parse_args(argv)
    device = torch.device(args.device)
    native.build()
    if not native.is_available(device):
        print(f"native kernels are not available on {device}", file=sys.stderr)
        return 1
    cpu = platform.processor() or platform.machine()
    try:
        with open("/proc/cpuinfo", encoding="utf-8") as fh:
            cpu = next(ln.split(":", 1)[1].strip() for ln in fh if ln.startswith("model name"))
    except (OSError, StopIteration):
        pass
    where = torch.cuda.get_device_name(device) if device.type == "cuda" else cpu
    load = os.getloadavg()[0] if hasattr(os, "getloadavg") else float("nan")
    print(f"torch {torch.__version__}, {where}, {args.threads} threads, "
          f"load average {load:.2f} at start")
    rows = run(device, args.threads, args.min_run_time)
    print(format_table(rows))
    if args.rst:
        print()
        print(format_rst(rows))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
