"""Per-image inference time and peak memory of the OCO-GAN generator.

For the ``demo`` preset and the full-width 256² (``ade20k``) and 256×512 (``cityscapes``) presets,
at batch 1 and 8, unconditional (``G(z=...)``) and conditional (``G(label=...)``): seconds per
image with the generator in eval mode under ``torch.inference_mode``. The paper reports 0.05 s
(unconditional) and 0.06 s (conditional) per image on a V100; on a CUDA machine this script also
measures fp32 and bf16 with channels_last and prints the ratio to the paper's numbers.

Each configuration runs in its own subprocess so that the peak memory it reports (process RSS on
CPU, ``max_memory_allocated`` on CUDA) is its own.

    python benchmarks/model.py [--threads 2] [--presets demo ade20k cityscapes] [--repeats 3]
"""

from __future__ import annotations

import argparse
import json
import resource
import subprocess
import sys
import time
from pathlib import Path

PAPER = {"uncond": 0.05, "cond": 0.06}  # s/image on a V100 (paper, Table 3)


def measure(preset: str, batch: int, device: str, dtype: str, repeats: int) -> dict:
    import torch

    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
    from recipes.oco_gan.config import get_preset
    from recipes.oco_gan.model import Generator

    cfg = get_preset(preset).model
    torch.manual_seed(0)
    G = Generator(cfg).eval().to(device)
    if device == "cuda":
        G = G.to(memory_format=torch.channels_last)
    base_rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    z = torch.randn(batch, cfg.z_dim, device=device)
    label = torch.randint(0, cfg.num_classes, (batch, *cfg.resolution), device=device)
    amp = (torch.autocast(device_type=device, dtype=torch.bfloat16) if dtype == "bf16"
           else torch.autocast(device_type=device, enabled=False))
    out = {"preset": preset, "batch": batch, "device": device, "dtype": dtype}
    for kind, call in (("uncond", lambda: G(z=z)), ("cond", lambda: G(label=label, z=z))):
        with torch.inference_mode(), amp:
            call()  # warm-up
            if device == "cuda":
                torch.cuda.synchronize()
            times = []
            for _ in range(repeats):
                start = time.perf_counter()
                call()
                if device == "cuda":
                    torch.cuda.synchronize()
                times.append(time.perf_counter() - start)
        out[kind] = min(times) / batch
    if device == "cuda":
        out["peak_mib"] = torch.cuda.max_memory_allocated() / 2**20
    else:
        out["peak_mib"] = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
        out["model_mib"] = base_rss
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--presets", nargs="*", default=["demo", "ade20k", "cityscapes"])
    parser.add_argument("--batches", nargs="*", type=int, default=[1, 8])
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--_child", default=None, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args._child:
        import torch

        torch.set_num_threads(args.threads)
        preset, batch, device, dtype = json.loads(args._child)
        print(json.dumps(measure(preset, batch, device, dtype, args.repeats)))
        return

    import torch

    configs = [(p, b, "cpu", "fp32") for p in args.presets for b in args.batches]
    if torch.cuda.is_available():
        configs += [(p, b, "cuda", d) for p in args.presets for b in args.batches
                    for d in ("fp32", "bf16")]
    print(f"{'preset':<11} {'batch':>5} {'device':>6} {'dtype':>5} {'uncond s/img':>13} "
          f"{'cond s/img':>11} {'peak MiB':>9} {'vs paper (u/c)':>15}")
    for cfg in configs:
        res = subprocess.run(
            [sys.executable, __file__, "--threads", str(args.threads), "--repeats",
             str(args.repeats), "--_child", json.dumps(cfg)],
            capture_output=True, text=True, check=True)
        r = json.loads(res.stdout.strip().splitlines()[-1])
        ratio = f"{r['uncond'] / PAPER['uncond']:.1f}x/{r['cond'] / PAPER['cond']:.1f}x"
        print(f"{r['preset']:<11} {r['batch']:>5} {r['device']:>6} {r['dtype']:>5} "
              f"{r['uncond']:>13.4f} {r['cond']:>11.4f} {r['peak_mib']:>9.0f} {ratio:>15}",
              flush=True)
    print("(vs paper: our time per image divided by the paper's V100 time, 0.05 s / 0.06 s; "
          "CPU rows are on this machine's CPU, not comparable to a GPU)")


if __name__ == "__main__":
    main()
