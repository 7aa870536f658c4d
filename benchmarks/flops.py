"""Counting a step's floating-point operations and measuring the machine's matmul rate: the two
halves of a compute floor (FLOPs / matmul FLOP/s), shared by the training benchmarks."""

from __future__ import annotations

import time


def matmul_flops_per_s(device: str, n: int = 2048, repeats: int = 5) -> float:
    import torch

    a = torch.randn(n, n, device=device)
    b = torch.randn(n, n, device=device)
    a @ b  # warm-up
    best = float("inf")
    for _ in range(repeats):
        if device == "cuda":
            torch.cuda.synchronize()
        t = time.perf_counter()
        a @ b
        if device == "cuda":
            torch.cuda.synchronize()
        best = min(best, time.perf_counter() - t)
    return 2 * n**3 / best


def flop_counter():
    """A dispatch mode summing torch's FLOP formulas (matmuls, convolutions and their backward)
    over every op it sees; double backward included (``FlopCounterMode``'s module tracker is not
    used, it does not follow the graphs of R1 and path length)."""
    from torch.utils._python_dispatch import TorchDispatchMode
    from torch.utils.flop_counter import flop_registry

    class Counter(TorchDispatchMode):
        flops = 0

        def __torch_dispatch__(self, func, types, args=(), kwargs=None):
            kwargs = kwargs or {}
            out = func(*args, **kwargs)
            formula = flop_registry.get(func._overloadpacket)
            if formula is not None:
                self.flops += formula(*args, **kwargs, out_val=out)
            return out

    return Counter()
