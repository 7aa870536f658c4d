"""ganblocks.train: EMA, graceful interrupts, metrics logging and the distributed context, pinned
against values worked out by hand (issue 23: every module kills >= 90 % of its mutants)."""

from __future__ import annotations

import json
import os
import signal
import sys
import threading
import types

import pytest
import torch
import torch.distributed as dist
import torch.multiprocessing as mp
from torch import nn

from ganblocks.train import ExponentialMovingAverage
from ganblocks.train.distributed import DistributedContext, init_distributed
from ganblocks.train.logging import MetricsLogger
from ganblocks.train.signals import GracefulInterrupt

# -- EMA ---------------------------------------------------------------------------------------


class _Scalar(nn.Module):
    """One parameter and one buffer, so every update can be followed by hand."""

    def __init__(self, value: float = 0.0) -> None:
        super().__init__()
        self.w = nn.Parameter(torch.tensor([value], dtype=torch.float64))
        self.register_buffer("count", torch.tensor([0.0], dtype=torch.float64))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x * self.w + self.count


def test_ema_defaults():
    ema = ExponentialMovingAverage(_Scalar())
    assert (ema.decay, ema.rampup_steps, ema.num_updates) == (0.999, 0, 0)
    assert ema.current_decay() == 0.999


def test_ema_rampup_decays_then_the_constant():
    """β_t = min(decay, (1 + t) / (10 + t)) for t < rampup_steps, then decay."""
    model = _Scalar(0.0)
    ema = ExponentialMovingAverage(model, decay=0.5, rampup_steps=3)
    expected_betas = [0.1, 2.0 / 11.0, 0.25, 0.5, 0.5]  # t = 0, 1, 2: ramp; then 0.5
    shadow = 0.0
    for t, beta in enumerate(expected_betas):
        assert ema.current_decay() == pytest.approx(beta)
        with torch.no_grad():
            model.w.fill_(float(t + 1))
        ema.update(model)
        shadow = beta * shadow + (1.0 - beta) * (t + 1)
        assert float(ema.shadow.w) == pytest.approx(shadow, rel=1e-12)
    assert ema.num_updates == len(expected_betas)
    # the ramp is capped by decay: with a small decay it never exceeds it
    small = ExponentialMovingAverage(_Scalar(), decay=0.05, rampup_steps=5)
    assert small.current_decay() == 0.05


def test_ema_without_rampup_and_with_zero_decay():
    model = _Scalar(2.0)
    ema = ExponentialMovingAverage(model, decay=0.75)
    with torch.no_grad():
        model.w.fill_(6.0)
    ema.update(model)
    assert float(ema.shadow.w) == pytest.approx(0.75 * 2.0 + 0.25 * 6.0)
    copy = ExponentialMovingAverage(model, decay=0.0)
    with torch.no_grad():
        model.w.fill_(-3.0)
    copy.update(model)
    assert float(copy.shadow.w) == -3.0  # decay 0: the shadow is the model


def test_ema_copies_buffers_and_keeps_its_own_copy():
    model = _Scalar(1.0)
    ema = ExponentialMovingAverage(model, decay=0.9)
    assert ema.shadow is not model and not ema.shadow.training
    assert not any(p.requires_grad for p in ema.shadow.parameters())
    model.count.fill_(7.0)
    ema.update(model)
    assert float(ema.shadow.count) == 7.0  # copied, not averaged
    # forward runs the average
    assert float(ema(torch.tensor([2.0], dtype=torch.float64))) == pytest.approx(2.0 * 1.0 + 7.0)
    with torch.no_grad():
        model.w.fill_(5.0)
    assert float(ema.shadow.w) == 1.0  # the model's later changes do not leak into the copy


def test_ema_state_dict_round_trip_keeps_the_update_count():
    model = _Scalar(1.0)
    ema = ExponentialMovingAverage(model, decay=0.5, rampup_steps=10)
    for _ in range(3):
        ema.update(model)
    state = ema.state_dict()
    other = ExponentialMovingAverage(_Scalar(4.0), decay=0.5, rampup_steps=10)
    other.load_state_dict(state)
    assert other.num_updates == 3
    assert other.current_decay() == pytest.approx(min(0.5, 4.0 / 13.0))
    assert float(other.shadow.w) == float(ema.shadow.w)


@pytest.mark.parametrize("decay", [1.0, -0.1, 1.5])
def test_ema_rejects_a_decay_outside_0_1(decay):
    with pytest.raises(ValueError, match="decay: expected a value in"):
        ExponentialMovingAverage(_Scalar(), decay=decay)


def test_ema_rejects_negative_rampup():
    with pytest.raises(ValueError, match="rampup_steps"):
        ExponentialMovingAverage(_Scalar(), rampup_steps=-1)
    assert ExponentialMovingAverage(_Scalar(), rampup_steps=0).current_decay() == 0.999


# -- graceful interrupts -----------------------------------------------------------------------


@pytest.mark.parametrize("signum", [signal.SIGINT, signal.SIGTERM])
def test_interrupt_sets_the_flag_and_restores_handlers(signum):
    calls = []
    before = {s: signal.getsignal(s) for s in GracefulInterrupt.SIGNALS}
    previous = signal.signal(signum, lambda s, f: calls.append(s))
    try:
        with GracefulInterrupt() as stop:
            assert not stop.requested and stop.signum is None
            signal.raise_signal(signum)
            assert stop.requested and stop.signum == signum
            assert calls == []  # swallowed the first time
            signal.raise_signal(signum)  # second one: the previous handler runs
            assert calls == [signum]
        assert signal.getsignal(signum) is not stop._handler
        signal.raise_signal(signum)  # restored outside the block
        assert calls == [signum, signum]
    finally:
        signal.signal(signum, previous)
    assert {s: signal.getsignal(s) for s in GracefulInterrupt.SIGNALS} == before


def test_interrupt_handles_both_signals_and_leaves_nothing_installed():
    with GracefulInterrupt() as stop:
        assert signal.getsignal(signal.SIGINT) == stop._handler
        assert signal.getsignal(signal.SIGTERM) == stop._handler
    assert signal.getsignal(signal.SIGINT) != stop._handler
    assert signal.getsignal(signal.SIGTERM) != stop._handler
    assert stop._previous == {}


def test_interrupt_outside_the_main_thread_installs_nothing():
    seen = {}

    def run():
        with GracefulInterrupt() as stop:
            seen["handlers"] = [signal.getsignal(s) for s in GracefulInterrupt.SIGNALS]
            seen["previous"] = dict(stop._previous)

    before = [signal.getsignal(s) for s in GracefulInterrupt.SIGNALS]
    thread = threading.Thread(target=run)
    thread.start()
    thread.join()
    assert seen == {"handlers": before, "previous": {}}


# -- metrics logger ----------------------------------------------------------------------------


def _records(path):
    return [json.loads(line) for line in path.read_text().splitlines()]


def test_logger_appends_one_json_line_per_call(tmp_path):
    run = tmp_path / "a" / "run"  # parents created
    with MetricsLogger(run, tensorboard=False) as log:
        log.log(3, {"loss/d": torch.tensor(0.25), "lr": 2})
        log.log(7.0, {"loss/g": 1.5})
    rows = _records(run / "metrics.jsonl")
    assert [r["step"] for r in rows] == [3, 7]
    assert isinstance(rows[1]["step"], int) and isinstance(rows[0]["lr"], float)
    assert rows[0]["loss/d"] == 0.25 and rows[1]["loss/g"] == 1.5
    assert all(abs(r["time"] - __import__("time").time()) < 60 for r in rows)
    assert log._file is None
    # a second logger on the same run appends (a resumed run keeps its history)
    with MetricsLogger(run, tensorboard=False) as log:
        log.log(9, {"x": 1.0})
    assert [r["step"] for r in _records(run / "metrics.jsonl")] == [3, 7, 9]
    log.log(10, {"x": 2.0})  # after close: nothing written, no error
    assert len(_records(run / "metrics.jsonl")) == 3


def test_logger_disabled_writes_nothing(tmp_path):
    run = tmp_path / "rank1"
    log = MetricsLogger(run, enabled=False)
    log.log(1, {"x": 1.0})
    log.close()
    assert not run.exists()


def test_logger_writes_tensorboard_scalars_when_available(tmp_path, monkeypatch):
    events = []

    class Writer:
        def __init__(self, logdir):
            events.append(("open", logdir))

        def add_scalar(self, tag, value, step):
            events.append((tag, value, step))

        def close(self):
            events.append(("close",))

    fake = types.ModuleType("torch.utils.tensorboard")
    fake.SummaryWriter = Writer
    monkeypatch.setitem(sys.modules, "torch.utils.tensorboard", fake)
    log = MetricsLogger(tmp_path)
    log.log(5, {"a": torch.tensor(2.5), "b": 1})
    log.close()
    log.close()  # idempotent
    assert events == [
        ("open", str(tmp_path / "tensorboard")),
        ("a", 2.5, 5),
        ("b", 1.0, 5),
        ("close",),
    ]
    assert isinstance(events[2][1], float)
    events.clear()
    with MetricsLogger(tmp_path, tensorboard=False) as log:
        log.log(1, {"a": 1.0})
    assert events == []


def test_logger_without_tensorboard_falls_back_to_jsonl(tmp_path, monkeypatch):
    monkeypatch.setitem(sys.modules, "torch.utils.tensorboard", None)  # import fails
    with MetricsLogger(tmp_path) as log:
        assert log._tb is None
        log.log(2, {"a": 3.0})
    assert _records(tmp_path / "metrics.jsonl")[0]["a"] == 3.0


# -- distributed context -----------------------------------------------------------------------


def test_context_defaults_and_shards():
    ctx = DistributedContext()
    assert (ctx.rank, ctx.world_size, ctx.local_rank, ctx.device) == (0, 1, 0, torch.device("cpu"))
    assert ctx.is_main and not ctx.distributed
    assert not DistributedContext(rank=1, world_size=2).is_main
    assert DistributedContext(rank=1, world_size=2).distributed
    assert DistributedContext(rank=1, world_size=4).shard(8) == slice(2, 4)
    assert DistributedContext(rank=0, world_size=3).shard(9) == slice(0, 3)
    assert DistributedContext(rank=2, world_size=3).shard(9) == slice(6, 9)
    with pytest.raises(ValueError, match=r"images: the global batch 10 must be divisible .* 4"):
        DistributedContext(rank=0, world_size=4).shard(10, "images")


def test_single_process_collectives_are_identities():
    ctx = DistributedContext()
    t = torch.tensor([2.0, 4.0])
    assert ctx.all_reduce_mean_(t) is t and t.tolist() == [2.0, 4.0]
    assert ctx.all_reduce_sum_(t) is t and t.tolist() == [2.0, 4.0]
    assert ctx.any(True) is True and ctx.any(0) is False
    p = nn.Parameter(torch.ones(2))
    p.grad = torch.full((2,), 3.0)
    ctx.sync_gradients([p])
    assert p.grad.tolist() == [3.0, 3.0]
    ctx.barrier()
    ctx.broadcast_module(nn.Linear(1, 1))


def test_init_distributed_reads_the_environment(monkeypatch):
    for name in ("WORLD_SIZE", "RANK", "LOCAL_RANK"):
        monkeypatch.delenv(name, raising=False)
    ctx = init_distributed(device="cpu")
    assert (ctx.rank, ctx.world_size, ctx.local_rank, ctx.device) == (0, 1, 0, torch.device("cpu"))
    monkeypatch.setenv("WORLD_SIZE", "1")
    monkeypatch.setenv("RANK", "0")
    monkeypatch.setenv("LOCAL_RANK", "3")
    ctx = init_distributed(device="cpu")
    assert (ctx.world_size, ctx.local_rank) == (1, 3)
    assert not dist.is_initialized()  # one process: no process group


@pytest.mark.skipif(torch.cuda.is_available(), reason="checks the error without CUDA")
def test_init_distributed_refuses_cuda_without_cuda():
    with pytest.raises(ValueError, match="device: 'cuda' was requested"):
        init_distributed(device="cuda")


def _worker(rank: int, init_file: str, out_dir: str) -> None:
    torch.set_num_threads(1)
    os.environ.update(WORLD_SIZE="2", RANK=str(rank), LOCAL_RANK=str(rank))
    os.environ["MASTER_ADDR"], os.environ["MASTER_PORT"] = "127.0.0.1", "0"
    dist.init_process_group("gloo", init_method=f"file://{init_file}", rank=rank, world_size=2)
    try:
        ctx = init_distributed(device="cpu")  # already initialised: reads the environment
        out = {"ctx": [ctx.rank, ctx.world_size, ctx.local_rank, ctx.distributed]}
        t = torch.tensor([1.0 + rank, 10.0 * rank])
        out["mean"] = ctx.all_reduce_mean_(t.clone()).tolist()
        out["sum"] = ctx.all_reduce_sum_(t.clone()).tolist()
        out["any"] = [ctx.any(rank == 1), ctx.any(False)]
        # a: gradient on both ranks; b: only on rank 0; c: on no rank; d: frozen
        a = nn.Parameter(torch.zeros(2, 2))
        b = nn.Parameter(torch.zeros(3))
        c = nn.Parameter(torch.zeros(1))
        d = nn.Parameter(torch.zeros(1), requires_grad=False)
        a.grad = torch.full((2, 2), 2.0 + 4.0 * rank)
        if rank == 0:
            b.grad = torch.tensor([2.0, 4.0, 6.0])
        ctx.sync_gradients([a, b, c, d])
        out["grads"] = [a.grad.tolist(), b.grad.tolist(), c.grad is None, d.grad is None]
        lin = nn.Linear(2, 1)
        with torch.no_grad():
            lin.weight.fill_(float(rank + 5))
            lin.bias.fill_(float(rank - 5))
        ctx.broadcast_module(lin, src=1)
        out["broadcast"] = [lin.weight.tolist(), lin.bias.tolist()]
        ctx.barrier()
        with open(os.path.join(out_dir, f"{rank}.json"), "w") as f:
            json.dump(out, f)
    finally:
        dist.destroy_process_group()


def test_two_process_collectives(tmp_path):
    mp.spawn(_worker, args=(str(tmp_path / "init"), str(tmp_path)), nprocs=2, join=True)
    for rank in (0, 1):
        out = json.loads((tmp_path / f"{rank}.json").read_text())
        assert out["ctx"] == [rank, 2, rank, True]
        assert out["mean"] == [1.5, 5.0]  # ([1, 0] + [2, 10]) / 2
        assert out["sum"] == [3.0, 10.0]
        assert out["any"] == [True, False]
        a, b, c_none, d_none = out["grads"]
        assert a == [[4.0, 4.0], [4.0, 4.0]]  # (2 + 6) / 2
        assert b == [1.0, 2.0, 3.0]  # missing on rank 1 counts as zero
        assert c_none and d_none  # no rank had one: still None
        assert out["broadcast"] == [[[6.0, 6.0]], [-4.0]]  # rank 1's values everywhere


def test_ema_shadow_may_keep_a_wider_dtype():
    """A float64 average of a float32 model: every update casts the model's values."""
    model = nn.Linear(2, 1).float()
    ema = ExponentialMovingAverage(model, decay=0.5)
    ema.shadow.double()
    with torch.no_grad():
        model.weight.fill_(1.0)
    before = ema.shadow.weight.clone()
    ema.update(model)
    assert ema.shadow.weight.dtype == torch.float64
    torch.testing.assert_close(ema.shadow.weight, 0.5 * before + 0.5)


def test_logger_lines_are_on_disk_before_close(tmp_path):
    """Line-buffered: a run killed after a log call has the line in the file."""
    log = MetricsLogger(tmp_path, tensorboard=False)
    log.log(1, {"a": 1.0})
    assert len(_records(tmp_path / "metrics.jsonl")) == 1
    handle = log._file
    log.close()
    assert handle.closed


def test_logger_accepts_a_string_run_dir_for_tensorboard(tmp_path, monkeypatch):
    opened = []

    class Writer:
        def __init__(self, logdir):
            opened.append(logdir)

        def add_scalar(self, *args):
            pass

        def close(self):
            pass

    fake = types.ModuleType("torch.utils.tensorboard")
    fake.SummaryWriter = Writer
    monkeypatch.setitem(sys.modules, "torch.utils.tensorboard", fake)
    with MetricsLogger(str(tmp_path)) as log:
        assert log._tb is not None
    assert opened == [str(tmp_path / "tensorboard")]


class _FakeCollectives:
    """A stand-in for torch.distributed in one process: records the calls; all_reduce adds the
    tensor once more (as if a second rank held the same values)."""

    def __init__(self, monkeypatch):
        self.calls = []
        monkeypatch.setattr(dist, "barrier", lambda *a, **k: self.calls.append("barrier"))
        monkeypatch.setattr(dist, "all_reduce", self.all_reduce)

    def all_reduce(self, tensor, op=None):
        self.calls.append(("all_reduce", tuple(tensor.shape)))
        if op is None or op == dist.ReduceOp.SUM:
            tensor.mul_(2)


def test_context_collectives_with_a_fake_second_rank(monkeypatch):
    fake = _FakeCollectives(monkeypatch)
    ctx = DistributedContext(rank=0, world_size=2)
    ctx.barrier()
    assert fake.calls == ["barrier"]
    p = nn.Parameter(torch.zeros(3))  # a single parameter (no second one to take a device from)
    p.grad = torch.tensor([1.0, 2.0, 3.0])
    ctx.sync_gradients([p])
    assert p.grad.tolist() == [1.0, 2.0, 3.0]  # (g + g) / 2
    t = torch.tensor([4.0])
    assert ctx.all_reduce_mean_(t).tolist() == [4.0]
    assert ctx.all_reduce_sum_(t).tolist() == [8.0]


def test_init_distributed_starts_a_gloo_group_with_the_timeout(monkeypatch):
    seen = []
    monkeypatch.setattr(dist, "is_initialized", lambda: False)
    monkeypatch.setattr(dist, "init_process_group", lambda **kw: seen.append(kw))
    monkeypatch.setenv("WORLD_SIZE", "2")
    monkeypatch.setenv("RANK", "1")
    monkeypatch.setenv("LOCAL_RANK", "1")
    ctx = init_distributed(device="cpu")
    assert (ctx.rank, ctx.world_size, ctx.local_rank) == (1, 2, 1)
    assert seen == [{"backend": "gloo", "timeout": __import__("datetime").timedelta(seconds=1800)}]
    init_distributed(device="cpu", backend="mpi", timeout_s=5.0)
    assert seen[1]["backend"] == "mpi" and seen[1]["timeout"].total_seconds() == 5.0


# -- checkpoints --------------------------------------------------------------------------------


def test_atomic_write_creates_missing_folders_and_syncs_the_whole_file(tmp_path, monkeypatch):
    from ganblocks.train import atomic_write

    sizes = []
    real_fsync = os.fsync

    def spy(fd):
        sizes.append(os.fstat(fd if isinstance(fd, int) else fd.fileno()).st_size)
        real_fsync(fd)

    monkeypatch.setattr(os, "fsync", spy)
    target = tmp_path / "a" / "b" / "c.bin"
    atomic_write(target, lambda f: f.write(b"x" * 1000))
    assert target.read_bytes() == b"x" * 1000
    assert sizes == [1000]  # flushed before the sync: what is synced is the whole file


def test_checkpoints_written_earlier_still_load(tmp_path):
    """tests/golden/pins_checkpoint.pt was written by atomic_save; its checksum (over tensor
    dtypes, shapes and bytes, scalars with their types, containers, other objects by type and
    pickle) must still verify, or every saved run stops resuming."""
    import datetime
    from pathlib import Path

    from ganblocks.train import load_checkpoint

    golden = Path(__file__).resolve().parent.parent / "golden" / "pins_checkpoint.pt"
    state = load_checkpoint(str(golden))  # a str path is fine
    assert state == _checkpoint_payload() | {"w": state["w"], "shape": state["shape"]}
    assert torch.equal(state["w"], _checkpoint_payload()["w"])
    assert torch.equal(state["shape"], _checkpoint_payload()["shape"])
    assert state["when"] == datetime.date(2026, 12, 5)


def _checkpoint_payload():
    import datetime

    return {
        "w": torch.arange(6, dtype=torch.float32).reshape(2, 3),
        "shape": torch.zeros(3, 2),  # same bytes as a [2, 3] zero tensor: the shape must count
        "flags": [True, 1, 1.0, "1", b"1", None],
        "nested": {"n": (2, 3.5)},
        "when": datetime.date(2026, 12, 5),
    }


def test_digest_tells_shapes_and_dtypes_apart():
    from ganblocks.train import payload_digest

    zeros = [
        torch.zeros(2, 3),
        torch.zeros(3, 2),
        torch.zeros(6),
        torch.zeros(3, dtype=torch.float64),
    ]
    assert len({payload_digest({"t": t}) for t in zeros}) == 4


def test_restore_rng_state_restores_numpy_too():
    import random

    import numpy as np

    from ganblocks.train import capture_rng_state, restore_rng_state

    state = capture_rng_state()
    a = (random.random(), np.random.rand(), float(torch.rand(1)))
    restore_rng_state(state)
    assert (random.random(), np.random.rand(), float(torch.rand(1))) == a


if __name__ == "__main__":  # pragma: no cover - writes the golden checkpoint once
    from pathlib import Path

    from ganblocks.train import atomic_save

    atomic_save(
        _checkpoint_payload(), Path(__file__).parent.parent / "golden" / "pins_checkpoint.pt"
    )


def test_payload_digest_reads_array_content_not_layout():
    import numpy as np

    from ganblocks.train.checkpoint import payload_digest

    a = np.arange(12, dtype=np.float32).reshape(3, 4)
    f = np.asfortranarray(a)  # same values, column-major memory
    assert payload_digest({"a": a}) == payload_digest({"a": f})
    b = a.copy()
    b[1, 2] += 1
    assert payload_digest({"a": a}) != payload_digest({"a": b})
    assert payload_digest({"a": a}) != payload_digest({"a": a.astype(np.float64)})


def test_restore_rng_state_restores_numpys_global_stream():
    import random

    import numpy as np

    from ganblocks.train.checkpoint import capture_rng_state, restore_rng_state

    state = capture_rng_state()
    first = (random.random(), np.random.rand(3).tolist(), torch.rand(3).tolist())
    restore_rng_state(state)
    again = (random.random(), np.random.rand(3).tolist(), torch.rand(3).tolist())
    assert again == first


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")
def test_restore_rng_state_restores_the_cuda_streams():
    from ganblocks.train.checkpoint import capture_rng_state, restore_rng_state

    state = capture_rng_state()
    first = torch.rand(3, device="cuda").tolist()
    restore_rng_state(state)
    assert torch.rand(3, device="cuda").tolist() == first
