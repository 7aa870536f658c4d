"""Throughput of the OCO-GAN training step, and where its time goes.

Prints images/s and peak memory of the ``demo`` preset's step (one G step + one D step, with the
lazy R1 term every ``loss.r1_interval`` steps, as in training) on the CPU, and the share of the
step spent in each phase (data, G forward, D forward, backward passes, R1). On a CUDA machine it
also measures the 256² ``ade20k`` preset in fp32 and bf16.

    python benchmarks/train.py [--steps 20] [--threads 2] [--preset demo] [key=value ...]

``--floor`` adds the compute floor: the step's FLOPs (counted by
``torch.utils.flop_counter`` on one step without R1) divided by the sgemm rate measured here (the
best of 2048² matmuls on the same threads), so the printed ratio is how far the step is from
running its arithmetic at matrix-multiply speed. ``--versus-ref`` times the step in
subprocesses with the native kernels (default) and without them (``GANBLOCKS_NATIVE=off``, the
pure-PyTorch reference ops), interleaved for ``--rounds`` rounds, and prints both images/s and
their ratio. ``--versus KEY=VALUE`` does the same for one config setting, e.g.
``--versus train.d_fakes=reuse`` (one G forward per iteration instead of two).

``--compile`` then compiles every block of G and D with ``torch.compile`` (the ops' native kernels
are custom ops inside the compiled graphs) and prints the compiled step time beside the eager
one. The lazy-R1 steps run their blocks eagerly (``torch.compiler.set_stance("force_eager")``):
AOTAutograd, which compiled blocks use, has no double backward.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
sys.path.insert(0, str(Path(__file__).resolve().parent))

from flops import flop_counter, matmul_flops_per_s

from recipes.oco_gan.config import apply_overrides, get_preset
from recipes.oco_gan.train import OCOGANTrainer


def peak_rss_mib() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def compile_blocks(*nets: torch.nn.Module, backend: str = "inductor") -> int:
    """Compile each top-level block of ``nets`` in place (``Module.compile``); returns how many."""
    count = 0
    for net in nets:
        for child in net.children():
            blocks = child if isinstance(child, torch.nn.ModuleList) else [child]
            for block in blocks:
                block.compile(dynamic=False, backend=backend)
                count += 1
    return count


def _r1_due(trainer) -> bool:
    loss = trainer.cfg.loss
    return loss.r1_gamma > 0 and trainer.step % loss.r1_interval == 0


def timed_steps(trainer, steps: int, device: str, r1_eager: bool) -> float:
    """Seconds for ``steps`` training steps (R1 steps without compiled code when ``r1_eager``)."""
    if device == "cuda":
        torch.cuda.synchronize()
    start = time.perf_counter()
    for _ in range(steps):
        if r1_eager and _r1_due(trainer):
            with torch.compiler.set_stance("force_eager"):
                trainer.train_step()
        else:
            trainer.train_step()
    if device == "cuda":
        torch.cuda.synchronize()
    return time.perf_counter() - start


def compare_compiled(trainer, steps: int, device: str, eager_s: float,
                     backend: str = "inductor") -> list:
    """Compile G's and D's blocks, warm up (compiling), time ``steps`` steps; the lines to print
    (compiled against eager, as measured in this run)."""
    n = compile_blocks(trainer.G, trainer.D, backend=backend)
    start = time.perf_counter()
    timed_steps(trainer, max(2, trainer.cfg.loss.r1_interval + 1), device, r1_eager=True)
    warm = time.perf_counter() - start
    compiled_s = timed_steps(trainer, steps, device, r1_eager=True)
    return [
        f"  torch.compile ({backend}) of {n} blocks of G and D (first steps, compiling: "
        f"{warm:.0f} s)",
        f"  eager    {eager_s / steps * 1000:8.0f} ms/step",
        f"  compiled {compiled_s / steps * 1000:8.0f} ms/step  ({eager_s / compiled_s:.2f}x "
        "faster than eager; R1 steps run eagerly)",
    ]


def step_flops(trainer) -> int:
    """FLOPs of one training step without the lazy R1 term (convolutions and matrix products of
    the forward and backward passes of G and D; the elementwise and resampling ops are not
    counted)."""
    while trainer.cfg.loss.r1_gamma > 0 and _r1_due(trainer):
        trainer.train_step()
    with flop_counter() as counter:
        trainer.train_step()
    return counter.flops


def run(preset: str, overrides, steps: int, device: str, compile_: bool = False,
        backend: str = "inductor", floor: bool = False, quiet: bool = False) -> float:
    cfg = apply_overrides(get_preset(preset), list(overrides))
    with tempfile.TemporaryDirectory() as tmp:
        from ganblocks.train import DistributedContext

        ctx = DistributedContext(device=torch.device(device))
        trainer = OCOGANTrainer(cfg, tmp, ctx=ctx, progress=False)
        trainer.train_step()  # warm-up (caches, allocator, first R1)
        if device == "cuda":
            torch.cuda.reset_peak_memory_stats()
            torch.cuda.synchronize()
        trainer.timings = {}
        elapsed = timed_steps(trainer, steps, device, r1_eager=False)
        timings = dict(trainer.timings)
        flops = step_flops(trainer) if floor else 0
        compiled = (compare_compiled(trainer, steps, device, elapsed, backend) if compile_
                    else [])
    images = steps * (trainer.bu + trainer.bc)
    if quiet:
        return images / elapsed
    mp = cfg.train.mixed_precision
    print(f"\n{preset} ({cfg.model.resolution[0]}x{cfg.model.resolution[1]}, batch "
          f"{trainer.bu} uncond + {trainer.bc} cond, {mp}, {device}, "
          f"{torch.get_num_threads()} threads)")
    print(f"  {steps} steps in {elapsed:.2f} s: {elapsed / steps * 1000:.0f} ms/step, "
          f"{images / elapsed:.1f} images/s")
    if device == "cuda":
        print(f"  peak GPU memory {torch.cuda.max_memory_allocated() / 2**20:.0f} MiB")
    else:
        print(f"  peak process RSS {peak_rss_mib():.0f} MiB")
    total = sum(timings.values())
    print(f"  {'phase':<40} {'ms/step':>8} {'share':>6} (eager)")
    for name, t in sorted(timings.items(), key=lambda kv: -kv[1]):
        print(f"  {name:<40} {t / steps * 1000:8.1f} {t / total:6.1%}")
    print(f"  (phases cover {total / elapsed:.0%} of the wall time; R1 runs every "
          f"{cfg.loss.r1_interval} steps, its share is averaged)")
    if floor:
        rate = matmul_flops_per_s("cpu") / 1e9
        floor_s = flops / (rate * 1e9)
        print(f"  compute floor: {flops / 1e9:.2f} GFLOP per step (no R1) at the measured sgemm "
              f"rate {rate:.1f} GFLOP/s = {floor_s * 1000:.0f} ms/step, "
              f"{(trainer.bu + trainer.bc) / floor_s:.1f} images/s; the step runs at "
              f"{floor_s / (elapsed / steps):.0%} of it")
    for line in compiled:
        print(line)
    return images / elapsed


def _interleaved(variants, preset: str, steps: int, threads: int, rounds: int):
    """Images/s of each variant ``name -> (environment, overrides)``, each measurement in its
    own subprocess, the variants interleaved (their order alternating) over ``rounds`` rounds."""
    names = list(variants)
    rates = {name: [] for name in names}
    for r in range(rounds):
        for name in (names if r % 2 == 0 else names[::-1]):
            env, overrides = variants[name]
            cmd = [sys.executable, __file__, "--quiet", "--steps", str(steps), "--threads",
                   str(threads), "--preset", preset, *overrides]
            out = subprocess.run(cmd, env=dict(os.environ, **env), check=True,
                                 capture_output=True, text=True)
            rates[name].append(json.loads(out.stdout.strip().splitlines()[-1])["images_per_s"])
    print(f"\n{preset} step, {threads} thread(s), median of {rounds} interleaved rounds of "
          f"{steps} steps:")
    for name in names:
        print(f"  {name:<24} {statistics.median(rates[name]):6.1f} images/s  (rounds: "
              f"{', '.join(f'{x:.1f}' for x in rates[name])})")
    return {name: statistics.median(v) for name, v in rates.items()}


def versus_ref(preset: str, overrides, steps: int, threads: int, rounds: int) -> None:
    """Images/s of the step with the native kernels and with the reference ops."""
    med = _interleaved({"native kernels": ({"GANBLOCKS_NATIVE": "auto"}, list(overrides)),
                        "reference ops": ({"GANBLOCKS_NATIVE": "off"}, list(overrides))},
                       preset, steps, threads, rounds)
    print(f"  native / ref             {med['native kernels'] / med['reference ops']:6.2f}x")


def versus_setting(preset: str, overrides, setting: str, steps: int, threads: int,
                   rounds: int) -> None:
    """Images/s of the step as configured and with ``setting`` (``key=value``) added."""
    med = _interleaved({"as configured": ({}, list(overrides)),
                        setting: ({}, [*overrides, setting])}, preset, steps, threads, rounds)
    print(f"  with / without           {med[setting] / med['as configured']:6.2f}x")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--steps", type=int, default=20)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--preset", default="demo")
    parser.add_argument("--compile", action="store_true",
                        help="also time the step with G's and D's blocks torch.compile'd")
    parser.add_argument("--compile-backend", default="inductor",
                        help="torch.compile backend for --compile (default inductor)")
    parser.add_argument("--floor", action="store_true",
                        help="also print the compute floor (FLOPs / measured sgemm rate)")
    parser.add_argument("--versus-ref", action="store_true",
                        help="time native kernels against the reference ops (subprocesses)")
    parser.add_argument("--versus", default=None, metavar="KEY=VALUE",
                        help="time the step with this config override against without it "
                             "(subprocesses), e.g. --versus train.d_fakes=reuse")
    parser.add_argument("--rounds", type=int, default=4,
                        help="rounds of --versus-ref / --versus")
    parser.add_argument("--quiet", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("overrides", nargs="*")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    if args.quiet:  # one measurement for --versus-ref, as JSON
        rate = run(args.preset, args.overrides, args.steps, "cpu", quiet=True)
        print(json.dumps({"images_per_s": rate}))
        return
    if args.versus_ref:
        versus_ref(args.preset, args.overrides, args.steps, args.threads, args.rounds)
        return
    if args.versus is not None:
        if "=" not in args.versus:
            parser.error(f"--versus: expected KEY=VALUE, got {args.versus!r}")
        versus_setting(args.preset, args.overrides, args.versus, args.steps, args.threads,
                       args.rounds)
        return
    run(args.preset, args.overrides, args.steps, "cpu", args.compile, args.compile_backend,
        floor=args.floor)
    if torch.cuda.is_available():
        for mp in ("none", "bf16"):
            run("ade20k", [f"train.mixed_precision={mp}", "train.channels_last=true"],
                args.steps, "cuda", args.compile, args.compile_backend)


if __name__ == "__main__":
    main()
