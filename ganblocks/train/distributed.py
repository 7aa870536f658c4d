"""``torch.distributed`` setup for ``torchrun`` launches, and exact gradient synchronisation.

Gradients are synchronised by an explicit all-reduce after ``backward()`` instead of
``DistributedDataParallel``: it is exact for losses that involve double backward (R1), needs no
module wrapping, and keeps the single- and multi-process code paths identical. Each rank computes
its loss as a mean over its shard of the global batch; averaging the gradients over equal shards
equals the gradient of the mean over the global batch.
"""

from __future__ import annotations

import datetime
import os
from dataclasses import dataclass, field
from typing import Iterable, Optional

import torch
import torch.distributed as dist

__all__ = ["DistributedContext", "init_distributed"]


@dataclass
class DistributedContext:
    """Where this process stands: rank, world size and its device.

    Attributes:
        rank: Global rank (0 on a single process).
        world_size: Number of processes.
        local_rank: Rank on this machine (selects the GPU).
        device: ``cuda:local_rank`` when CUDA is available, else ``cpu``.
    """

    rank: int = 0
    world_size: int = 1
    local_rank: int = 0
    device: torch.device = field(default_factory=lambda: torch.device("cpu"))

    @property
    def is_main(self) -> bool:
        """Rank 0: the only process that writes files and logs."""
        return self.rank == 0

    @property
    def distributed(self) -> bool:
        return self.world_size > 1

    def shard(self, global_batch: int, name: str = "batch") -> slice:
        """This rank's slice of a global batch (the batch must split evenly across ranks).

        Example:
            >>> DistributedContext(rank=1, world_size=2).shard(8)
            slice(4, 8, None)
        """
        if global_batch % self.world_size:
            raise ValueError(
                f"{name}: the global batch {global_batch} must be divisible by the number of "
                f"processes {self.world_size}"
            )
        per = global_batch // self.world_size
        return slice(self.rank * per, (self.rank + 1) * per)

    def barrier(self) -> None:
        if self.distributed:
            dist.barrier()

    def all_reduce_mean_(self, tensor: torch.Tensor) -> torch.Tensor:
        """In-place mean over ranks (no-op on a single process)."""
        if self.distributed:
            dist.all_reduce(tensor, op=dist.ReduceOp.SUM)
            tensor.div_(self.world_size)
        return tensor

    def all_reduce_sum_(self, tensor: torch.Tensor) -> torch.Tensor:
        """In-place sum over ranks (no-op on a single process)."""
        if self.distributed:
            dist.all_reduce(tensor, op=dist.ReduceOp.SUM)
        return tensor

    def any(self, flag: bool) -> bool:
        """True on every rank if ``flag`` is true on any rank (e.g. "an interrupt arrived")."""
        if not self.distributed:
            return bool(flag)
        t = torch.tensor([1.0 if flag else 0.0], device=self.device)
        dist.all_reduce(t, op=dist.ReduceOp.MAX)
        return bool(t.item() > 0)

    def sync_gradients(self, params: Iterable[torch.nn.Parameter]) -> None:
        """Average ``.grad`` over ranks in one flat all-reduce.

        A gradient missing on some ranks counts as zero there; a parameter without a gradient on
        every rank keeps ``grad=None`` (so an optimiser skips it exactly as in one process, e.g.
        the heads a regulariser step does not reach).
        """
        if not self.distributed:
            return
        params = [p for p in params if p.requires_grad]
        if not params:
            return
        has = torch.tensor([p.grad is not None for p in params], dtype=torch.int32,
                           device=params[0].device)
        dist.all_reduce(has, op=dist.ReduceOp.MAX)
        params = [p for p, h in zip(params, has.tolist()) if h]
        if not params:
            return
        for p in params:
            if p.grad is None:
                p.grad = torch.zeros_like(p)
        flat = torch.cat([p.grad.reshape(-1) for p in params])
        dist.all_reduce(flat, op=dist.ReduceOp.SUM)
        flat.div_(self.world_size)
        offset = 0
        for p in params:
            n = p.numel()
            p.grad.copy_(flat[offset:offset + n].view_as(p.grad))
            offset += n

    def broadcast_module(self, module: torch.nn.Module, src: int = 0) -> None:
        """Copy parameters and buffers of rank ``src`` to every rank."""
        if not self.distributed:
            return
        with torch.no_grad():
            for t in list(module.parameters()) + list(module.buffers()):
                dist.broadcast(t.data, src=src)


def init_distributed(*, backend: Optional[str] = None, timeout_s: float = 1800.0,
                     device: Optional[str] = None) -> DistributedContext:
    """Initialise ``torch.distributed`` from ``torchrun``'s environment, if present.

    Without ``WORLD_SIZE`` > 1 in the environment this returns a single-process context. The
    backend defaults to NCCL when CUDA is available and gloo otherwise.

    Args:
        backend: Override the process-group backend.
        timeout_s: Collective timeout.
        device: ``'cpu'`` or ``'cuda'`` to force a device kind; ``None`` picks CUDA if present.

    Example:
        >>> init_distributed(device="cpu").world_size  # not launched by torchrun
        1
    """
    world = int(os.environ.get("WORLD_SIZE", "1"))
    rank = int(os.environ.get("RANK", "0"))
    local_rank = int(os.environ.get("LOCAL_RANK", "0"))
    use_cuda = torch.cuda.is_available() if device is None else device == "cuda"
    if use_cuda and not torch.cuda.is_available():
        raise ValueError("device: 'cuda' was requested but CUDA is not available")
    dev = torch.device("cuda", local_rank) if use_cuda else torch.device("cpu")
    if use_cuda:
        torch.cuda.set_device(dev)
    if world > 1 and not dist.is_initialized():
        dist.init_process_group(
            backend=backend or ("nccl" if use_cuda else "gloo"),
            timeout=datetime.timedelta(seconds=timeout_s),
        )
    return DistributedContext(rank=rank, world_size=world, local_rank=local_rank, device=dev)
