"""Throughput of the OCO-GAN training step, and where its time goes.

Prints images/s and peak memory of the ``demo`` preset's step (one G step + one D step, with the
lazy R1 term every ``loss.r1_interval`` steps, as in training) on the CPU, and the share of the
step spent in each phase (data, G forward, D forward, backward passes, R1). On a CUDA machine it
also measures the 256² ``ade20k`` preset in fp32 and bf16.

    python benchmarks/train.py [--steps 20] [--threads 2] [--preset demo] [key=value ...]
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


def run(preset: str, overrides, steps: int, device: str) -> None:
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
        start = time.perf_counter()
        for _ in range(steps):
            trainer.train_step()
        if device == "cuda":
            torch.cuda.synchronize()
        elapsed = time.perf_counter() - start
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
    total = sum(trainer.timings.values())
    print(f"  {'phase':<40} {'ms/step':>8} {'share':>6}")
    for name, t in sorted(trainer.timings.items(), key=lambda kv: -kv[1]):
        print(f"  {name:<40} {t / steps * 1000:8.1f} {t / total:6.1%}")
    print(f"  (phases cover {total / elapsed:.0%} of the wall time; R1 runs every "
          f"{cfg.loss.r1_interval} steps, its share is averaged)")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--steps", type=int, default=20)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--preset", default="demo")
    parser.add_argument("overrides", nargs="*")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    run(args.preset, args.overrides, args.steps, "cpu")
    if torch.cuda.is_available():
        for mp in ("none", "bf16"):
            run("ade20k", [f"train.mixed_precision={mp}", "train.channels_last=true"],
                args.steps, "cuda")


if __name__ == "__main__":
    main()
