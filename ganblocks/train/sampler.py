"""An infinite, seeded sampler of global batches, sharded across ranks, with a resumable state."""

from __future__ import annotations

from typing import Any, Dict, List

import torch

__all__ = ["GlobalBatchSampler"]


class GlobalBatchSampler:
    """Yields global batches of indices drawn without replacement, epoch after epoch.

    Every rank builds the same sampler (same seed) and takes its shard of each global batch, so
    a run on W processes sees exactly the samples of a single-process run with the same global
    batch. Each epoch is a fresh permutation of ``range(num_items)`` drawn from
    ``seed + epoch``; a batch may straddle two epochs. :meth:`state_dict` / :meth:`load_state_dict`
    resume at the exact next batch.

    Example:
        >>> s = GlobalBatchSampler(5, seed=0)
        >>> a = s.next_batch(4); state = s.state_dict(); b = s.next_batch(4)
        >>> s.load_state_dict(state); s.next_batch(4) == b
        True
        >>> sorted(a + b[:1]) == [0, 1, 2, 3, 4]
        True
    """

    def __init__(self, num_items: int, *, seed: int = 0) -> None:
        if num_items < 1:
            raise ValueError(f"num_items: expected at least one item, got {num_items}")
        self.num_items = int(num_items)
        self.seed = int(seed)
        self.epoch = 0
        self.position = 0
        self._perm = self._permutation(0)

    def _permutation(self, epoch: int) -> List[int]:
        gen = torch.Generator().manual_seed(self.seed * 100003 + epoch)
        return torch.randperm(self.num_items, generator=gen).tolist()

    def next_batch(self, size: int) -> List[int]:
        """The next ``size`` indices of the global stream."""
        out: List[int] = []
        while len(out) < size:
            if self.position == self.num_items:
                self.epoch += 1
                self.position = 0
                self._perm = self._permutation(self.epoch)
            take = min(size - len(out), self.num_items - self.position)
            out.extend(self._perm[self.position:self.position + take])
            self.position += take
        return out

    def state_dict(self) -> Dict[str, Any]:
        return {"num_items": self.num_items, "seed": self.seed, "epoch": self.epoch,
                "position": self.position}

    def load_state_dict(self, state: Dict[str, Any]) -> None:
        if state["num_items"] != self.num_items:
            raise ValueError(f"state: the sampler was saved for {state['num_items']} items, this "
                             f"data set has {self.num_items}")
        self.seed, self.epoch, self.position = state["seed"], state["epoch"], state["position"]
        self._perm = self._permutation(self.epoch)
