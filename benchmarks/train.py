"""Throughput of the OCO-GAN training step, and where its time goes.

Prints images/s and peak memory of the ``demo`` preset's step (one G step + one D step, with the
lazy R1 term every ``loss.r1_interval`` steps, as in training) on the CPU, and the share of the
step spent in each phase (data, G forward, D forward, backward passes, R1). On a CUDA machine it
also measures the 256² ``ade20k`` preset in fp32 and bf16.

    python benchmarks/train.py [--steps 20] [--threads 2] [--preset demo] [key=value ...]

``--compile`` then compiles every block of G and D with ``torch.compile`` (the ops' native kernels
are custom ops inside the compiled graphs) and prints the compiled step time beside the eager
one. The lazy-R1 steps run their blocks eagerly (``torch.compiler.set_stance("force_eager")``):
AOTAutograd, which compiled blocks use, has no double backward.
"""

from __future__ import annotations

import argparse
import resource
import sys
import tempfile
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

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


def run(preset: str, overrides, steps: int, device: str, compile_: bool = False,
        backend: str = "inductor") -> None:
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
        compiled = (compare_compiled(trainer, steps, device, elapsed, backend) if compile_
                    else [])
    images = steps * (trainer.bu + trainer.bc)
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
    for line in compiled:
        print(line)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--steps", type=int, default=20)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--preset", default="demo")
    parser.add_argument("--compile", action="store_true",
                        help="also time the step with G's and D's blocks torch.compile'd")
    parser.add_argument("--compile-backend", default="inductor",
                        help="torch.compile backend for --compile (default inductor)")
    parser.add_argument("overrides", nargs="*")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    run(args.preset, args.overrides, args.steps, "cpu", args.compile, args.compile_backend)
    if torch.cuda.is_available():
        for mp in ("none", "bf16"):
            run("ade20k", [f"train.mixed_precision={mp}", "train.channels_last=true"],
                args.steps, "cuda", args.compile, args.compile_backend)


if __name__ == "__main__":
    main()
