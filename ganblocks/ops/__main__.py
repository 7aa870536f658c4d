"""``python -m ganblocks.ops``: show the ops' backends, build the native kernels ahead of time, and
run a quick self-check (native against the reference, with timings).

Exit status: 0 when the native kernels are built and agree with the reference (or are disabled by
``GANBLOCKS_NATIVE=0``), 1 otherwise.
"""

from __future__ import annotations

import argparse
import time
from typing import Callable, List, Optional, Sequence, Tuple

import torch

from . import native
from .bias_act import bias_act
from .upfirdn2d import downsample2d, filter2d, setup_filter, upfirdn2d, upsample2d

TOLERANCE = {torch.float64: 1e-10, torch.float32: 1e-5, torch.float16: 3e-3, torch.bfloat16: 2e-2}


def _rel_err(a: torch.Tensor, b: torch.Tensor) -> float:
    scale = b.double().abs().max().item()
    err = (a.double() - b.double()).abs().max().item()
    return err / scale if scale > 0 else err


def _median_ms(fn: Callable[[], object], device: torch.device, reps: int) -> float:
    times = []
    for _ in range(reps):
        if device.type == "cuda":
            torch.cuda.synchronize(device)
        start = time.perf_counter()
        fn()
        if device.type == "cuda":
            torch.cuda.synchronize(device)
        times.append(time.perf_counter() - start)
    times.sort()
    return 1e3 * times[len(times) // 2]


def _cases(device: torch.device, dtype: torch.dtype) -> List[Tuple[str, Callable]]:
    """(name, run(impl) -> tensors to compare) pairs covering forward, backward, double backward."""
    gen = torch.Generator().manual_seed(0)
    x = torch.randn(4, 32, 64, 64, generator=gen).to(device, dtype)
    xb = torch.randn(4, 64, 64, 64, generator=gen).to(device, dtype)
    b = torch.randn(64, generator=gen).to(device, dtype)
    f = setup_filter([1, 3, 3, 1], device=device)
    f2 = torch.randn(3, 5, generator=gen).to(device)

    def fwd_bwd(op: Callable, inp: torch.Tensor, impl: str, *extra: torch.Tensor):
        leaves = [t.detach().requires_grad_(True) for t in (inp, *extra)]
        y = op(*leaves, impl)
        grads = torch.autograd.grad(y, leaves, torch.ones_like(y))
        return (y.detach(), *grads)

    def r1(impl: str):  # double backward, as in an R1 penalty
        xi = xb.detach().requires_grad_(True)
        y = bias_act(upsample2d(xi, f, impl=impl), None, act="lrelu", impl=impl)
        (g,) = torch.autograd.grad(y.square().sum(), xi, create_graph=True)
        (gg,) = torch.autograd.grad(g.square().sum(), xi)
        return (g.detach(), gg)

    return [
        ("upsample2d", lambda impl: (upsample2d(x, f, impl=impl),)),
        ("downsample2d", lambda impl: (downsample2d(x, f, impl=impl),)),
        ("filter2d", lambda impl: (filter2d(x, f, impl=impl),)),
        (
            "upfirdn2d 2-D filter",
            lambda impl: (upfirdn2d(x, f2, up=2, down=3, padding=1, impl=impl),),
        ),
        (
            "upsample2d fwd+bwd",
            lambda impl: fwd_bwd(lambda t, i: upsample2d(t, f, impl=i), x, impl),
        ),
        ("bias_act lrelu", lambda impl: (bias_act(xb, b, act="lrelu", impl=impl),)),
        (
            "bias_act lrelu fwd+bwd",
            lambda impl: fwd_bwd(
                lambda t, bb, i: bias_act(t, bb, act="lrelu", impl=i), xb, impl, b
            ),
        ),
        ("bias_act tanh clamp", lambda impl: (bias_act(xb, b, act="tanh", clamp=0.5, impl=impl),)),
        ("double backward (R1)", r1),
    ]


def self_check(device: torch.device, dtype: torch.dtype, reps: int) -> bool:
    print(f"\nself-check on {device.type} ({str(dtype).replace('torch.', '')}):")
    print(f"  {'case':<26} {'max rel err':>11} {'ref ms':>9} {'native ms':>10} {'speed-up':>9}")
    ok = True
    for name, run in _cases(device, dtype):
        ref = run("ref")
        nat = run("native")
        err = max(_rel_err(a, r) for a, r in zip(nat, ref))
        t_ref = _median_ms(lambda run=run: run("ref"), device, reps)
        t_nat = _median_ms(lambda run=run: run("native"), device, reps)
        passed = err <= TOLERANCE[dtype] * (10 if "double" in name else 1)
        ok &= passed
        mark = "" if passed else "  MISMATCH"
        print(
            f"  {name:<26} {err:>11.2e} {t_ref:>9.2f} {t_nat:>10.2f} {t_ref / t_nat:>8.1f}x{mark}"
        )
    return ok


def main(argv: Optional[Sequence[str]] = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m ganblocks.ops",
        description="Show the backends of ganblocks.ops, build the native kernels, self-check.",
    )
    parser.add_argument("--reps", type=int, default=5, help="timing repetitions per case")
    parser.add_argument("--no-check", action="store_true", help="build only, skip the self-check")
    args = parser.parse_args(argv)

    info = native.status()
    print("ganblocks.ops backends")
    print(f"  GANBLOCKS_NATIVE : {info['mode']}")
    print(f"  torch            : {torch.__version__} (CUDA {torch.version.cuda})")
    print(f"  build flavour    : {info['flavour']}")
    print(f"  build folder     : {info['build_dir']}")
    if info["mode"] == "off":
        print("  native kernels   : disabled (GANBLOCKS_NATIVE=0); the ops use the reference path")
        return 0
    start = time.monotonic()
    try:
        path = native.build()
    except RuntimeError as exc:
        print(f"  native kernels   : BUILD FAILED; the ops use the reference path\n{exc}")
        return 1
    print(f"  native kernels   : built/loaded in {time.monotonic() - start:.1f} s ({path.name})")
    devices = [torch.device("cpu")]
    if torch.cuda.is_available():
        devices.append(torch.device("cuda"))
    for dev in devices:
        usable = native.is_available(dev)
        dtypes = ", ".join(info["dtypes"][dev.type]) if usable else "-"
        backend = "native + ref" if usable else "ref only"
        print(f"  {dev.type:<17}: {backend} (native dtypes: {dtypes})")
    if args.no_check:
        return 0
    ok = True
    for dev in devices:
        if native.is_available(dev):
            ok &= self_check(dev, torch.float32, args.reps)
        if dev.type == "cuda" and native.is_available(dev):
            # The per-configuration checks of the common configurations, ahead of time (they are
            # skipped during CUDA-graph capture and inside compiled regions).
            results = native.verify(dev)
            bad = [key for key, agrees in results.items() if not agrees]
            print(f"\nverify on cuda: {len(results)} configurations checked, "
                  f"{len(bad)} disagree{'' if not bad else ': ' + ', '.join(map(str, bad))}")
            ok &= not bad
    print("\nself-check:", "passed" if ok else "FAILED")
    return 0 if ok else 1


if __name__ == "__main__":
    raise SystemExit(main())
