"""Collective helpers for the metrics: no-ops unless ``torch.distributed`` is initialised.

Every metric accumulates on each rank separately and reduces only when asked (in ``compute()``),
so the helpers here return new tensors and never modify their input.
"""

from __future__ import annotations

import torch
import torch.distributed as dist

__all__ = ["all_gather_rows", "all_reduce_sum", "is_distributed"]


def is_distributed() -> bool:
    """``True`` when ``torch.distributed`` is available, initialised and has more than one rank."""
    return dist.is_available() and dist.is_initialized() and dist.get_world_size() > 1


def all_reduce_sum(x: torch.Tensor) -> torch.Tensor:
    """Sum ``x`` over all ranks; returns a new tensor (a copy of ``x`` when not distributed).

    A collective: when distributed, every rank must call it with a tensor of the same shape and
    dtype.
    """
    out = x.clone()
    if is_distributed():
        dist.all_reduce(out, op=dist.ReduceOp.SUM)
    return out


def all_gather_rows(x: torch.Tensor) -> torch.Tensor:
    """Concatenate the rows of ``x: [n_r, ...]`` from every rank (in rank order).

    Ranks may hold different numbers of rows; the trailing shape and dtype must agree. Returns ``x``
    itself when not distributed.
    """
    if not is_distributed():
        return x
    world = dist.get_world_size()
    count = torch.tensor([x.shape[0]], device=x.device, dtype=torch.int64)
    counts = [torch.zeros_like(count) for _ in range(world)]
    dist.all_gather(counts, count)
    sizes = [int(c.item()) for c in counts]
    longest = max(sizes)
    padded = x.new_zeros((longest, *x.shape[1:]))
    padded[: x.shape[0]] = x
    gathered = [torch.empty_like(padded) for _ in range(world)]
    dist.all_gather(gathered, padded)
    return torch.cat([g[:n] for g, n in zip(gathered, sizes)], dim=0)
