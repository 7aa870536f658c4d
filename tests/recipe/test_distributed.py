"""Distributed training (gloo on CPU) computes what one process computes with the same batch."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from oco_tiny import tiny_config

pytestmark = pytest.mark.slow

ENV = {**os.environ, "OMP_NUM_THREADS": "1"}


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _train_args(cfg: Path, out: Path, steps: int) -> list:
    return ["-m", "recipes.oco_gan", "train", "--config", str(cfg), "--out", str(out),
            "--steps", str(steps), "--no-progress", "--device", "cpu"]


def _torchrun(*args: str) -> list:
    return [sys.executable, "-m", "torch.distributed.run", *args]


def _check(result: subprocess.CompletedProcess) -> None:
    assert result.returncode == 0, (result.stdout or "")[-4000:] + (result.stderr or "")[-4000:]


def _final(out: Path) -> dict:
    return torch.load(out / "checkpoint.pt", weights_only=False)


def _assert_close_states(a: dict, b: dict) -> None:
    """Equal up to float64 rounding (an all-reduce sums gradients in another order than one
    process does). A real discrepancy (class weights counted per rank, a missing gradient sync,
    different samples) moves parameters by ~lr = 2e-3."""
    assert a["step"] == b["step"]
    for part in ("G", "D", "G_ema"):
        for k, v in b[part].items():
            if isinstance(v, torch.Tensor) and v.is_floating_point():
                torch.testing.assert_close(a[part][k], v, rtol=1e-9, atol=1e-9, msg=f"{part}.{k}")


@pytest.fixture(scope="module")
def single_process_run(tmp_path_factory):
    root = tmp_path_factory.mktemp("dist")
    cfg = root / "tiny.json"
    # float64, so that the comparison is not blurred by float32 rounding (Adam with β1 = 0
    # turns a rounding-level gradient difference of a near-zero gradient into a full ±lr step).
    # r1_interval=2: steps 0 and 2 include the lazy R1 term.
    tiny_config("train.dtype=float64").save(cfg)
    out = root / "single"
    _check(subprocess.run([sys.executable, *_train_args(cfg, out, 3)], env=ENV,
                          capture_output=True, text=True, timeout=300))
    return cfg, root, _final(out)


def test_two_processes_equal_one_process(single_process_run):
    cfg, root, single = single_process_run
    out = root / "two"
    result = subprocess.run(
        _torchrun("--nproc_per_node=2", "--master_addr=127.0.0.1",
                  f"--master_port={_free_port()}", *_train_args(cfg, out, 3)),
        env=ENV, capture_output=True, text=True, timeout=300)
    _check(result)
    _assert_close_states(_final(out), single)
    # Rank-0-only I/O: one metrics file with one line per step, written once.
    assert len((out / "metrics.jsonl").read_text().splitlines()) == 3


def test_two_nodes_on_localhost(single_process_run):
    cfg, root, single = single_process_run
    out = root / "nodes"
    port = _free_port()
    common = ["--nnodes=2", "--nproc_per_node=1", "--rdzv_backend=c10d",
              f"--rdzv_endpoint=127.0.0.1:{port}", "--rdzv_id=ganblocks-test"]
    procs = [
        subprocess.Popen(_torchrun(*common, f"--node_rank={rank}", *_train_args(cfg, out, 3)),
                         env=ENV, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
        for rank in range(2)
    ]
    outputs = [p.communicate(timeout=300)[0] for p in procs]
    for p, text in zip(procs, outputs):
        assert p.returncode == 0, text[-4000:]
    _assert_close_states(_final(out), single)


def test_uneven_batch_is_a_clear_error(tmp_path):
    cfg = tmp_path / "odd.json"
    tiny_config("train.batch_cond=3").save(cfg)
    result = subprocess.run(
        _torchrun("--nproc_per_node=2", "--master_addr=127.0.0.1",
                  f"--master_port={_free_port()}", *_train_args(cfg, tmp_path / "o", 1)),
        env=ENV, capture_output=True, text=True, timeout=300)
    assert result.returncode != 0
    assert "train.batch_cond" in result.stdout + result.stderr
