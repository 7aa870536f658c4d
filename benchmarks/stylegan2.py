"""Training-step throughput of the StyleGAN2 recipe, native vs reference ops, against the
machine's compute limit.

For each ops backend (``native`` kernels vs the pure-PyTorch ``ref`` path, selected with
``GANBLOCKS_NATIVE``, each in its own subprocess) it times ``--steps`` full training steps (G main,
D main, and the lazy path-length / R1 phases on their schedule, so their cost is averaged in) after
a warm-up, and prints images/s. It also counts the floating-point operations of the same steps
(``torch.utils.flop_counter``: matmuls and convolutions, forward, backward and double backward)
and measures this machine's float32 matmul throughput, to print how far the step is from the
compute limit: ``achieved FLOP/s / matmul FLOP/s``. On a CUDA machine the same runs on the GPU.

    python benchmarks/stylegan2.py [--resolution 64] [--batch 8] [--steps 8] [--threads 2]
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(Path(__file__).resolve().parent))

from flops import flop_counter, matmul_flops_per_s  # noqa: E402


def worker(args: argparse.Namespace) -> dict:
    import torch

    sys.path.insert(0, str(ROOT))
    from ganblocks.ops import native
    from ganblocks.train import DistributedContext
    from recipes.stylegan2.train import TrainConfig, Trainer

    torch.set_num_threads(args.threads)
    device = args.device
    cfg = TrainConfig(
        out=tempfile.mkdtemp(), resolution=args.resolution, batch=args.batch, steps=10**9,
        z_dim=512, w_dim=512, mapping_layers=8, channel_base=args.channel_base,
        channel_max=args.channel_max, mbstd_group=4, r1_interval=16, pl_interval=4,
    )
    trainer = Trainer(cfg, DistributedContext(device=torch.device(device)))
    batches = trainer._batches()
    real = next(batches)
    trainer.train_step(real)  # warm-up, includes both regularisers (step 0)
    if device == "cuda":
        torch.cuda.synchronize()
    start_step = trainer.step
    t = time.perf_counter()
    for _ in range(args.steps):
        trainer.train_step(real)
    if device == "cuda":
        torch.cuda.synchronize()
    elapsed = time.perf_counter() - t
    trainer.step = start_step  # count the same steps (same regulariser schedule)
    with flop_counter() as counter:
        for _ in range(args.steps):
            trainer.train_step(real)
    backend = "native" if native.is_available(torch.device(device)) else "ref"
    return {
        "backend": backend,
        "device": device,
        "img_per_s": args.batch * args.steps / elapsed,
        "ms_per_step": elapsed / args.steps * 1000,
        "flops_per_step": counter.flops / args.steps,
        "matmul_flops_per_s": matmul_flops_per_s(device),
        "threads": torch.get_num_threads(),
    }


def run(args: argparse.Namespace, device: str, backend: str) -> dict:
    env = dict(os.environ, GANBLOCKS_NATIVE="require" if backend == "native" else "0")
    cmd = [sys.executable, __file__, "--worker", "--device", device]
    for k in ("resolution", "batch", "steps", "threads", "channel_base", "channel_max"):
        cmd += [f"--{k.replace('_', '-')}", str(getattr(args, k))]
    out = subprocess.run(cmd, env=env, capture_output=True, text=True, check=False)
    if out.returncode != 0:
        raise RuntimeError(f"{backend} on {device} failed:\n{out.stderr[-3000:]}")
    return json.loads(out.stdout.strip().splitlines()[-1])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--resolution", type=int, default=64)
    parser.add_argument("--batch", type=int, default=8)
    parser.add_argument("--steps", type=int, default=8)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--channel-base", dest="channel_base", type=int, default=16384)
    parser.add_argument("--channel-max", dest="channel_max", type=int, default=512)
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--worker", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.worker:
        print(json.dumps(worker(args)))
        return
    import torch

    devices = ["cpu"] + (["cuda"] if torch.cuda.is_available() else [])
    print(
        f"StyleGAN2 training step, {args.resolution}x{args.resolution}, batch {args.batch}, "
        f"channel_base {args.channel_base}, channel_max {args.channel_max}, "
        f"steps 1..{args.steps} after a warm-up step 0 (lazy R1 at multiples of 16, path length "
        f"at multiples of 4), {args.threads} CPU threads"
    )
    header = f"{'device':<6} {'ops':<7} {'img/s':>8} {'ms/step':>9} {'GFLOP/step':>11} " \
             f"{'GFLOP/s':>9} {'matmul GFLOP/s':>15} {'of limit':>9}"
    for device in devices:
        print(header, flush=True)
        results = {}
        for backend in ("native", "ref"):
            r = results[backend] = run(args, device, backend)
            achieved = r["flops_per_step"] / (r["ms_per_step"] / 1000)
            print(
                f"{device:<6} {backend:<7} {r['img_per_s']:8.2f} {r['ms_per_step']:9.1f} "
                f"{r['flops_per_step'] / 1e9:11.2f} {achieved / 1e9:9.1f} "
                f"{r['matmul_flops_per_s'] / 1e9:15.1f} {achieved / r['matmul_flops_per_s']:9.1%}",
                flush=True,
            )
        ratio = results["native"]["img_per_s"] / results["ref"]["img_per_s"]
        print(f"{device}: native / ref = {ratio:.2f}x images/s (same run of this script)")


if __name__ == "__main__":
    main()
