"""An endless, seeded, resumable sampler that shards one global stream of indices over ranks.

GAN training counts images, not epochs. :class:`InfiniteSampler` defines one global stream:
position ``p`` holds item ``perm_e[p mod n]`` of epoch ``e = p // n`` (a fresh seeded permutation
per epoch, each item once per epoch). Rank ``r`` of ``W`` reads positions ``r, r + W, r + 2W, ...``,
so ``W`` processes with batch ``B`` each see exactly the items one process with batch ``W * B``
sees. Resuming is a matter of ``start``: the number of items this rank has already consumed.
"""

from __future__ import annotations

import hashlib
from typing import Iterator, Sequence, Tuple, Union

import numpy as np
import torch
from torch.utils.data import Sampler

__all__ = ["InfiniteSampler"]


def _epoch_seed(seed: int, epoch: int) -> int:
    digest = hashlib.blake2b(f"{seed}:{epoch}".encode(), digest_size=8).digest()
    return int.from_bytes(digest, "little") & (2**63 - 1)


class InfiniteSampler(Sampler):
    """Endless stream of data-set keys for one rank, optionally with a seeded flip bit per item.

    Args:
        items: Number of items ``n`` (keys ``0 .. n-1``) or an explicit list of keys to draw from
            (e.g. the labelled positions of a semi-supervised data set).
        rank: This process's rank, in ``[0, world_size)``.
        world_size: Number of processes sharing the stream.
        shuffle: A new seeded permutation every epoch; ``False`` cycles in order.
        seed: Seed of the permutations and flips; every rank must use the same one.
        start: Items this rank has already consumed (resume after ``S`` steps of per-rank batch
            ``B`` with ``start = S * B``).
        flip: Yield ``(key, flip)`` pairs whose flip bit is a seeded fair coin per stream position,
            which data sets of :mod:`ganblocks.data` accept as keys; ``False`` yields plain keys.

    Example:
        >>> s0 = InfiniteSampler(5, rank=0, world_size=2, seed=1)
        >>> s1 = InfiniteSampler(5, rank=1, world_size=2, seed=1)
        >>> both = InfiniteSampler(5, seed=1)
        >>> from itertools import islice
        >>> a, b, c = (list(islice(iter(s), k)) for s, k in ((s0, 5), (s1, 5), (both, 10)))
        >>> c == [x for pair in zip(a, b) for x in pair]
        True
        >>> sorted(c[:5]) == sorted(c[5:]) == [0, 1, 2, 3, 4]
        True
    """

    def __init__(
        self,
        items: Union[int, Sequence[int]],
        *,
        rank: int = 0,
        world_size: int = 1,
        shuffle: bool = True,
        seed: int = 0,
        start: int = 0,
        flip: bool = False,
    ) -> None:
        if isinstance(items, (int, np.integer)) and not isinstance(items, bool):
            keys = None
            n = int(items)
        else:
            keys = [int(k) for k in items]
            n = len(keys)
        if n < 1:
            raise ValueError(f"items must hold at least one item, got {n}")
        if not isinstance(world_size, int) or world_size < 1:
            raise ValueError(f"world_size must be a positive int, got {world_size!r}")
        if not isinstance(rank, int) or not 0 <= rank < world_size:
            raise ValueError(f"rank must be an int in [0, {world_size}), got {rank!r}")
        if not isinstance(start, int) or start < 0:
            raise ValueError(f"start must be a non-negative int, got {start!r}")
        self.keys = keys
        self.num_items = n
        self.rank = rank
        self.world_size = world_size
        self.shuffle = bool(shuffle)
        self.seed = int(seed)
        self.start = start
        self.flip = bool(flip)

    def epoch_order(self, epoch: int) -> Tuple[torch.Tensor, torch.Tensor]:
        """Position-to-item permutation ``[n]`` and flip bits ``[n]`` of global epoch ``epoch``."""
        n = self.num_items
        gen = torch.Generator().manual_seed(_epoch_seed(self.seed, epoch))
        perm = torch.randperm(n, generator=gen) if self.shuffle else torch.arange(n)
        flips = torch.randint(0, 2, (n,), generator=gen, dtype=torch.bool)
        return perm, flips

    def __iter__(self) -> Iterator[Union[int, Tuple[int, bool]]]:
        n, w = self.num_items, self.world_size
        pos = self.rank + self.start * w  # global stream position of this rank's next item
        epoch, perm, flips = -1, None, None
        while True:
            e, o = divmod(pos, n)
            if e != epoch:
                epoch = e
                perm, flips = self.epoch_order(e)
                perm, flips = perm.tolist(), flips.tolist()
            item = perm[o]
            key = item if self.keys is None else self.keys[item]
            yield (key, flips[o]) if self.flip else key
            pos += w

    def __repr__(self) -> str:
        return (
            f"InfiniteSampler(items={self.num_items}, rank={self.rank}, "
            f"world_size={self.world_size}, shuffle={self.shuffle}, seed={self.seed}, "
            f"start={self.start}, flip={self.flip})"
        )
