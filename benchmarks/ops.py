"""Benchmark of the FIR-resampling and bias-activation ops: reference path against native kernels.

Cases (float32 unless named otherwise), forward and forward+backward:

* ``upsample2d``/``downsample2d``/``filter2d`` with ``setup_filter([1, 3, 3, 1])`` on
  ``[8, 128, 64, 64]``, and ``bias_act(act='lrelu')`` with a bias on ``[8, 256, 64, 64]``;
* the same in bfloat16 and float16 (``bias_act`` and ``upsample2d``), whose time per element
  should match float32's;
* a 12-tap separable ``downsample2d`` on a channels-last ``[8, 128, 64, 64]`` tensor, and a
  ``filter2d`` with a 5x5 disk (not an outer product: the direct 2-D kernel) on the same;
* StyleGAN's small layers: ``upsample2d`` and ``bias_act`` on ``[1, 512, 4, 4]`` and
  ``[1, 512, 8, 8]``, where the per-call overhead dominates.

The paths of one comparison (floor, ref, native, default) are timed interleaved: each of
``ROUNDS`` rounds runs one block of calls of every path, starting from a rotating path, so that a
slow spell of the machine hits all of them alike; a path's time is the median (``--stat min``:
the minimum) of its rounds.

For each it prints the time of the reference path, of the native kernels, their ratio, and the
ratio of native to the **floor**: the time of writing the op's output (forward+backward: output
plus input-sized gradient) once into *freshly mapped* memory (an anonymous ``mmap`` per call, so
every page faults exactly as a new output's pages do). This one definition holds at every size; an
allocation that reuses the allocator's warm pages can be hundreds of times cheaper, which is why
an op may come in under its floor when its outputs happen to recycle freed memory.

Usage::

    python benchmarks/ops.py                  # CPU, 2 threads (the documented setting)
    python benchmarks/ops.py --device cuda    # where a GPU is present
    python benchmarks/ops.py --rst            # also print the table as reStructuredText
    python benchmarks/ops.py --small-only --sweep  # small layers, and bias_act by size

The ``default`` column is ``impl=None``, what models run: the kernels, except on CPU tensors
where the reference is faster (``bias_act`` under ``SMALL_FORWARD`` / ``SMALL_WITH_GRAD``
elements); on the other rows its target is "at least as fast as ref".
"""

from __future__ import annotations

import argparse
import functools
import mmap
import os
import platform
import statistics
import sys
import time
from dataclasses import dataclass
from typing import Callable, Dict, List, Optional

import torch

from ganblocks.ops import bias_act, downsample2d, filter2d, native, setup_filter, upsample2d
from ganblocks.ops.bias_act import SMALL_FORWARD, SMALL_WITH_GRAD

RESAMPLE_SHAPE = (8, 128, 64, 64)
BIAS_ACT_SHAPE = (8, 256, 64, 64)
SMALL_SHAPES = ((1, 512, 4, 4), (1, 512, 8, 8))

# (speed-up over ref at least, native / floor at most) per (case, pass); None: no target.
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
NEVER_SLOWER = 1.0  # every other case: native at least as fast as ref


#: Timing noise allowed when the default path *is* the reference (the same code timed twice).
SAME_PATH_NOISE = 0.05


@dataclass
class Row:
    case: str
    pass_: str
    ref_ms: float
    native_ms: float
    floor_ms: float
    #: ``impl=None``, what models use: the kernels, or the reference where it is faster.
    default_ms: float = float("nan")
    default_path: str = "native"

    @property
    def speedup(self) -> float:
        return self.ref_ms / self.native_ms

    @property
    def default_speedup(self) -> float:
        return self.ref_ms / self.default_ms

    @property
    def vs_floor(self) -> float:
        return self.native_ms / self.floor_ms

    def verdict(self) -> str:
        target = TARGETS.get((self.case, self.pass_))
        if target is None:  # every other case: the default path at least as fast as ref
            if self.default_path == "ref":
                ok = self.default_speedup >= 1 - SAME_PATH_NOISE
                return ("ok" if ok else "MISSED") + " (default = ref here)"
            ok = self.default_speedup >= NEVER_SLOWER
            return ("ok" if ok else "MISSED") + f" (default >={NEVER_SLOWER:g}x ref)"
        min_speedup, max_floor = target
        parts = [f">={min_speedup:g}x ref"]
        if max_floor is not None:
            parts.append(f"<={max_floor:g}x floor")
        ok = self.speedup >= min_speedup and (max_floor is None or self.vs_floor <= max_floor)
        return ("ok" if ok else "MISSED") + f" ({', '.join(parts)})"


@dataclass
class Case:
    name: str
    inputs: List[torch.Tensor]
    run: Callable  # run(impl, *inputs) -> output


#: How a timing summarises its rounds: ``median`` (default) or ``min`` (``--stat min``: the
#: least disturbed round, robust to other jobs preempting this one on a shared machine).
STAT = "median"

#: Rounds per comparison: each round times one block of every path, in an order rotated from
#: round to round, so that drift of the machine (other jobs, clock changes) hits every path alike.
ROUNDS = 25


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def _calls_per_block(fn: Callable[[], object], block_s: float, device: torch.device) -> int:
    """How many calls of ``fn`` fill about ``block_s`` seconds (after a warm-up call)."""
    fn()
    _sync(device)
    calls, start = 0, time.perf_counter()
    while True:
        fn()
        calls += 1
        _sync(device)
        spent = time.perf_counter() - start
        if spent >= min(0.02, block_s):
            return max(1, round(calls * block_s / spent))


def time_paths(fns: Dict[str, Callable[[], object]], device: torch.device,
               min_run_time: float) -> Dict[str, float]:
    """Milliseconds per call of each of ``fns``, timed interleaved.

    Every path gets ``min_run_time`` seconds in all, split into :data:`ROUNDS` blocks; round
    ``r`` runs one block of each path, starting from path ``r mod len(fns)``. A path's time is
    the :data:`STAT` of its per-call block times.
    """
    names = list(fns)
    block_s = min_run_time / ROUNDS
    calls = {n: _calls_per_block(fns[n], block_s, device) for n in names}
    per_call: Dict[str, List[float]] = {n: [] for n in names}
    for r in range(ROUNDS):
        for n in names[r % len(names):] + names[:r % len(names)]:
            fn, k = fns[n], calls[n]
            _sync(device)
            start = time.perf_counter()
            for _ in range(k):
                fn()
            _sync(device)
            per_call[n].append((time.perf_counter() - start) / k)
    pick = min if STAT == "min" else statistics.median
    return {n: pick(v) * 1e3 for n, v in per_call.items()}


def fresh_page_write(nbytes: int, device: torch.device) -> Callable[[], None]:
    """One write of ``nbytes`` into memory mapped for this call (CPU: an anonymous mmap, whose
    pages fault on first touch; CUDA: a new allocation of the caching allocator)."""
    if device.type == "cuda":
        return lambda: torch.empty(nbytes, dtype=torch.uint8, device=device).fill_(1)

    def write() -> None:
        buf = mmap.mmap(-1, max(nbytes, 1))
        t = torch.frombuffer(buf, dtype=torch.uint8)
        t.fill_(1)
        del t
        buf.close()

    return write


def _cases(device: torch.device, small_only: bool = False) -> List[Case]:
    gen = torch.Generator().manual_seed(0)

    def randn(shape, dtype=torch.float32, channels_last=False):
        t = torch.randn(shape, generator=gen).to(device=device, dtype=dtype)
        return t.contiguous(memory_format=torch.channels_last) if channels_last else t

    f = setup_filter([1, 3, 3, 1], device=device)
    f12 = setup_filter([1, 4, 9, 15, 20, 22, 22, 20, 15, 9, 4, 1], device=device,
                       separable=True)

    # A filter that is not an outer product (21 taps of a 5x5 disk): the direct 2-D kernel.
    yy, xx = torch.meshgrid(torch.arange(-2, 3), torch.arange(-2, 3), indexing="ij")
    disk = setup_filter((yy**2 + xx**2 <= 5).float(), device=device)

    def resampling(fn: Callable, filt: torch.Tensor) -> Callable:
        return lambda impl, t: fn(t, filt, impl=impl)

    def biased(impl, t, bb):
        return bias_act(t, bb, act="lrelu", impl=impl)

    cases = []
    if not small_only:
        x, xb = randn(RESAMPLE_SHAPE), randn(BIAS_ACT_SHAPE)
        b = randn(BIAS_ACT_SHAPE[1:2])
        cases += [
            Case("upsample2d", [x], resampling(upsample2d, f)),
            Case("downsample2d", [x], resampling(downsample2d, f)),
            Case("filter2d", [x], resampling(filter2d, f)),
            Case("bias_act", [xb, b], biased),
        ]
        for dtype in (torch.bfloat16, torch.float16):
            tag = str(dtype).replace("torch.", "")
            cases += [
                Case(f"upsample2d {tag}", [x.to(dtype)], resampling(upsample2d, f)),
                Case(f"bias_act {tag}", [xb.to(dtype), b.to(dtype)], biased),
            ]
        cases.append(Case("downsample2d 12-tap NHWC",
                          [randn(RESAMPLE_SHAPE, channels_last=True)],
                          resampling(downsample2d, f12)))
        cases.append(Case("filter2d 5x5 disk NHWC",
                          [randn(RESAMPLE_SHAPE, channels_last=True)],
                          resampling(filter2d, disk)))
    for shape in SMALL_SHAPES:
        size = "x".join(str(s) for s in shape)
        cases += [
            Case(f"upsample2d {size}", [randn(shape)], resampling(upsample2d, f)),
            Case(f"bias_act {size}", [randn(shape), randn(shape[1:2])], biased),
        ]
    return cases


def run(device: torch.device, threads: int, min_run_time: float,
        small_only: bool = False) -> List[Row]:
    torch.set_num_threads(threads)
    rows = []
    for case in _cases(device, small_only):
        inputs, op = case.inputs, case.run
        leaves = [t.detach().clone().requires_grad_(True) for t in inputs]
        y = op("ref", *inputs)
        dy = torch.ones_like(y)
        out_bytes = y.numel() * y.element_size()
        in_bytes = inputs[0].numel() * inputs[0].element_size()

        def fwd(impl, op=op, inputs=inputs):
            return op(impl, *inputs)

        def fwd_bwd(impl, op=op, leaves=leaves, dy=dy):
            return torch.autograd.grad(op(impl, *leaves), leaves, dy)

        for pass_, fn, nbytes in (("fwd", fwd, out_bytes),
                                  ("fwd+bwd", fwd_bwd, out_bytes + in_bytes)):
            ms = time_paths({"floor": fresh_page_write(nbytes, device),
                             "ref": functools.partial(fn, "ref"),
                             "native": functools.partial(fn, "native"),
                             "default": functools.partial(fn, None)}, device, min_run_time)
            path = _default_path(case.name, inputs[0], grad=pass_ != "fwd")
            rows.append(Row(case.name, pass_, ms["ref"], ms["native"], ms["floor"],
                            ms["default"], path))
    return rows


def _default_path(case: str, x: torch.Tensor, *, grad: bool) -> str:
    """The path ``impl=None`` takes for this case (bias_act sends small CPU tensors to ref)."""
    if case.startswith("bias_act") and x.device.type == "cpu":
        limit = SMALL_WITH_GRAD if grad else SMALL_FORWARD
        if x.numel() < limit:
            return "ref"
    return "native"


def _sweep_ratios(c: int, h: int, gen: torch.Generator, min_run_time: float) -> List[float]:
    x, b = torch.randn(1, c, h, h, generator=gen), torch.randn(c, generator=gen)
    xl, bl = x.clone().requires_grad_(True), b.clone().requires_grad_(True)
    dy = torch.ones_like(x)

    def fwd(impl: str) -> object:
        return bias_act(x, b, act="lrelu", impl=impl)

    def fwd_bwd(impl: str) -> object:
        return torch.autograd.grad(bias_act(xl, bl, act="lrelu", impl=impl), (xl, bl), dy)

    ratios = []
    for fn in (fwd, fwd_bwd):
        ms = time_paths({"ref": functools.partial(fn, "ref"),
                         "native": functools.partial(fn, "native")}, x.device, min_run_time)
        ratios.append(ms["ref"] / ms["native"])
    return ratios


def sweep(threads: int, min_run_time: float) -> str:
    """bias_act (lrelu, with bias) ref vs native by size: where the kernels start to win."""
    torch.set_num_threads(threads)
    gen = torch.Generator().manual_seed(0)
    lines = [f"{'elements':>9} {'fwd ref/native':>15} {'fwd+bwd ref/native':>19}"]
    for c, h in ((512, 4), (512, 8), (256, 16), (512, 16), (256, 32), (512, 32), (256, 64)):
        fwd, fwd_bwd = _sweep_ratios(c, h, gen, min_run_time)
        lines.append(f"{c * h * h:>9} {fwd:>14.2f}x {fwd_bwd:>18.2f}x")
    return "\n".join(lines)


def _ms(v: float) -> str:
    """Four significant digits: enough that ratios of the printed times match the printed
    ratios at every size (10 µs to 100 ms)."""
    return f"{v:.4g}"


def format_table(rows: List[Row]) -> str:
    head = (f"{'case':<26} {'pass':<8} {'ref ms':>8} {'native ms':>10} {'ref/native':>11} "
            f"{'floor ms':>9} {'native/floor':>13} {'default':>14}  target")
    lines = [head, "-" * len(head)]
    for r in rows:
        default = f"{r.default_speedup:.2f}x {r.default_path}"
        lines.append(
            f"{r.case:<26} {r.pass_:<8} {_ms(r.ref_ms):>8} {_ms(r.native_ms):>10} "
            f"{r.speedup:>10.2f}x {_ms(r.floor_ms):>9} {r.vs_floor:>12.2f}x {default:>14}  "
            f"{r.verdict()}"
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
        "     - ref / default (path)",
        "     - target",
    ]
    for r in rows:
        out += [
            f"   * - ``{r.case}``",
            f"     - {r.pass_}",
            f"     - {_ms(r.ref_ms)}",
            f"     - {_ms(r.native_ms)}",
            f"     - {r.speedup:.2f}x",
            f"     - {_ms(r.floor_ms)}",
            f"     - {r.vs_floor:.2f}x",
            f"     - {r.default_speedup:.2f}x ({r.default_path})",
            f"     - {r.verdict()}",
        ]
    return "\n".join(out)


def main(argv: Optional[List[str]] = None) -> int:
    global STAT, ROUNDS
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--device", default="cpu", help="cpu or cuda")
    parser.add_argument("--threads", type=int, default=2, help="CPU threads (default 2)")
    parser.add_argument("--min-run-time", type=float, default=1.0,
                        help="seconds per path and comparison (split into the rounds)")
    parser.add_argument("--rounds", type=int, default=ROUNDS,
                        help=f"interleaved rounds per comparison (default {ROUNDS})")
    parser.add_argument("--small-only", action="store_true", help="only the small-layer cases")
    parser.add_argument("--stat", choices=["median", "min"], default="median",
                        help="per path: median of the rounds (default) or the fastest round "
                             "(robust to other jobs on a shared machine)")
    parser.add_argument("--sweep", action="store_true",
                        help="also sweep bias_act sizes: where the kernels start to beat ref")
    parser.add_argument("--rst", action="store_true", help="also print a reStructuredText table")
    args = parser.parse_args(argv)
    STAT, ROUNDS = args.stat, args.rounds
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
          f"load average {load:.2f} at start, {STAT} of {ROUNDS} interleaved rounds per path")
    print("floor = one write of the output (fwd+bwd: output + input gradient) into freshly "
          "mapped pages")
    rows = run(device, args.threads, args.min_run_time, args.small_only)
    print(format_table(rows))
    if args.rst:
        print()
        print(format_rst(rows))
    if args.sweep:
        print()
        print(sweep(args.threads, args.min_run_time))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
