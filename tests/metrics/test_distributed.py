"""The metrics under a real torch.distributed process group (2 CPU ranks, gloo backend).

Each rank feeds a different, unequal shard; compute() on every rank must equal the single-process
value on the union of the shards.
"""

from __future__ import annotations

import os

import pytest
import torch
import torch.distributed as dist
import torch.multiprocessing as mp

from ganblocks.metrics import (
    FeatureStatistics,
    FrechetInceptionDistance,
    KernelInceptionDistance,
    MeanIoU,
)

WORLD = 2
SPLIT = 23  # rank 0 gets the first 23 items, rank 1 the rest: unequal shards


def _data():
    gen = torch.Generator().manual_seed(0)
    real = torch.randn(50, 3, 2, 2, generator=gen)
    fake = torch.randn(50, 3, 2, 2, generator=gen) * 1.2 + 0.3
    target = torch.randint(0, 4, (50, 5, 5), generator=gen)
    target[:, 0, 0] = 255
    pred = torch.randint(0, 4, (50, 5, 5), generator=gen)
    return real, fake, target, pred


def _flatten(x: torch.Tensor) -> torch.Tensor:
    return x.flatten(1)


def _metrics(real, fake, target, pred):
    fid = FrechetInceptionDistance(_flatten)
    kid = KernelInceptionDistance(_flatten, num_subsets=4, subset_size=30)
    miou = MeanIoU(4, ignore_index=255)
    fid.update(real, real=True)
    fid.update(fake, real=False)
    kid.update(real, real=True)
    kid.update(fake, real=False)
    miou.update(pred, target)
    return fid, kid, miou


def _worker(rank: int, init_file: str, out_dir: str) -> None:
    torch.set_num_threads(1)
    dist.init_process_group("gloo", init_method=f"file://{init_file}", rank=rank, world_size=WORLD)
    try:
        real, fake, target, pred = _data()
        shard = slice(0, SPLIT) if rank == 0 else slice(SPLIT, None)
        fid, kid, miou = _metrics(real[shard], fake[shard], target[shard], pred[shard])
        empty = FeatureStatistics(12)  # a rank without data still joins the collective
        stats = empty.all_reduce()
        results = {
            "fid": fid.compute(),
            "fid_again": fid.compute(),  # compute() must not double-count
            "kid": tuple(kid.compute()),
            "miou": miou.compute().miou,
            "stats_count": fid.real.all_reduce().count,
            "empty_count": stats.count,
        }
        torch.save(results, os.path.join(out_dir, f"rank{rank}.pt"))
    finally:
        dist.destroy_process_group()


@pytest.mark.skipif(not dist.is_available(), reason="torch.distributed is not available")
def test_two_ranks_equal_one_process(tmp_path) -> None:
    mp.spawn(_worker, args=(str(tmp_path / "init"), str(tmp_path)), nprocs=WORLD, join=True)
    fid, kid, miou = _metrics(*_data())
    expected_fid, expected_kid, expected_miou = fid.compute(), kid.compute(), miou.compute().miou
    for rank in range(WORLD):
        got = torch.load(tmp_path / f"rank{rank}.pt", weights_only=True)
        assert got["fid"] == pytest.approx(expected_fid, rel=1e-10)
        assert got["fid_again"] == got["fid"]
        # KID gathers rows in rank order, so the union is the same sequence: identical subsets.
        assert got["kid"] == pytest.approx(tuple(expected_kid), rel=1e-10)
        assert got["miou"] == pytest.approx(expected_miou, rel=1e-12)
        assert got["stats_count"] == 50
        assert got["empty_count"] == 0
