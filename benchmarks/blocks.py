"""Forward+backward time of the style-modulated blocks at 64×64, as a baseline for optimisation.

Measures, with :mod:`torch.utils.benchmark`, the median and the minimum of blocked runs (on a
shared machine the minimum is the steadier baseline):

* a stack of :class:`~ganblocks.nn.StyledConv2d` layers (spatial modulation → equalised 3×3 conv →
  fused bias + lrelu), the shape of a StyleMapGAN/OCO-GAN synthesis block, one style map per layer;
* one :class:`~ganblocks.nn.ModulatedConv2d` (StyleGAN2), on the grouped-conv route (``fused=True``)
  and the activation-scaling route (``fused=False``), with and without up-sampling.

Usage::

    python benchmarks/blocks.py                        # CPU, 2 threads, batch 4, 64 channels
    python benchmarks/blocks.py --device cuda --batch 16 --channels 256
"""

from __future__ import annotations

import argparse
from typing import Callable

import torch
from torch.utils import benchmark

from ganblocks.nn import ModulatedConv2d, StyledConv2d
from ganblocks.ops import native


def fwd_bwd(fn: Callable[[], torch.Tensor], params: list) -> Callable[[], None]:
    """A closure running forward, a scalar loss and backward (gradients accumulate; harmless)."""

    def run() -> None:
        out = fn()
        out.square().mean().backward()
        for p in params:
            p.grad = None

    return run


def measure(label: str, sub_label: str, run: Callable[[], None], args) -> benchmark.Measurement:
    for _ in range(2):  # warm-up (allocator, kernel selection)
        run()
    if args.device == "cuda":
        torch.cuda.synchronize()
    timer = benchmark.Timer(
        stmt="run()",
        globals={"run": run},
        num_threads=args.threads,
        label=label,
        sub_label=sub_label,
        description=f"{args.device}, batch {args.batch}, {args.channels} ch, {args.size}²",
    )
    return timer.blocked_autorange(min_run_time=args.min_run_time)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--batch", type=int, default=4)
    parser.add_argument("--channels", type=int, default=64)
    parser.add_argument("--style-channels", type=int, default=64)
    parser.add_argument("--style-dim", type=int, default=512)
    parser.add_argument("--layers", type=int, default=4)
    parser.add_argument("--size", type=int, default=64)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--min-run-time", type=float, default=1.0)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    torch.manual_seed(0)
    dev = torch.device(args.device)
    n, c, s = args.batch, args.channels, args.size
    print(
        f"torch {torch.__version__}, native ops available: {native.is_available(dev)}, "
        f"threads {args.threads}"
    )

    results = []
    x = torch.randn(n, c, s, s, device=dev, requires_grad=True)

    # StyledConv2d stack: one style map per layer, at the input's resolution.
    stack = torch.nn.ModuleList(
        [StyledConv2d(c, c, 3, args.style_channels) for _ in range(args.layers)]
    ).to(dev)
    styles = [
        torch.randn(n, args.style_channels, s, s, device=dev, requires_grad=True)
        for _ in range(args.layers)
    ]

    def stack_forward() -> torch.Tensor:
        h = x
        for layer, style in zip(stack, styles):
            h = layer(h, style)
        return h

    params = [*stack.parameters(), x, *styles]
    results.append(
        measure("fwd+bwd", f"StyledConv2d x{args.layers}", fwd_bwd(stack_forward, params), args)
    )

    # ModulatedConv2d, both routes, plain and up-sampling (input s/2 → output s).
    w = torch.randn(n, args.style_dim, device=dev, requires_grad=True)
    x_half = torch.randn(n, c, s // 2, s // 2, device=dev, requires_grad=True)
    for up in (1, 2):
        for fused in (True, False):
            layer = ModulatedConv2d(c, c, 3, args.style_dim, up=up, fused=fused).to(dev)
            inp = x if up == 1 else x_half
            name = f"ModulatedConv2d up={up} fused={fused}"

            def forward(layer=layer, inp=inp) -> torch.Tensor:
                return layer(inp, w)

            results.append(
                measure("fwd+bwd", name, fwd_bwd(forward, [*layer.parameters(), inp, w]), args)
            )

    benchmark.Compare(results).print()
    for m in results:
        ms, best = m.median * 1e3, min(m.times) * 1e3
        print(f"{m.task_spec.sub_label:40s} median {ms:8.2f} ms  min {best:8.2f} ms")


if __name__ == "__main__":
    main()
