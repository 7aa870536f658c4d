"""Checkpoint files: atomic writes, permissions, checksums, full disks, kill -9 during writes."""

from __future__ import annotations

import errno
import os
import signal
import time

import pytest
import torch

from ganblocks.train import (
    CheckpointError,
    atomic_save,
    atomic_write,
    load_checkpoint,
    payload_digest,
    previous_snapshot,
)


def _state(seed: int = 0):
    g = torch.Generator().manual_seed(seed)
    return {"w": torch.randn(64, 64, generator=g), "step": seed,
            "nested": {"b": torch.arange(5, dtype=torch.int16), "t": (1.5, None, "x")}}


def test_round_trip_strips_and_verifies_the_checksum(tmp_path):
    state = _state(3)
    path = atomic_save(state, tmp_path / "c.pt")
    raw = torch.load(path, weights_only=False)  # still a plain torch.save file
    assert raw["__checksum__"] == payload_digest(state)
    back = load_checkpoint(path)
    assert "__checksum__" not in back
    assert payload_digest(back) == payload_digest(state)
    torch.testing.assert_close(back["w"], state["w"], rtol=0, atol=0)


def test_digest_sees_every_value():
    base = payload_digest(_state())
    s = _state()
    s["w"][17, 3] = torch.nextafter(s["w"][17, 3], torch.tensor(9.0))  # one ulp
    assert payload_digest(s) != base
    s = _state()
    s["nested"]["t"] = (1.5, None, "y")
    assert payload_digest(s) != base
    s = _state()
    s["w"] = s["w"].double()  # same values, other dtype
    assert payload_digest(s) != base


@pytest.mark.parametrize("damage", ["truncate", "garbage", "empty", "flip"])
def test_damaged_checkpoint_is_a_clear_error_naming_the_previous_snapshot(tmp_path, damage):
    path = tmp_path / "checkpoint.pt"
    atomic_save(_state(1), path, keep_previous=True)
    atomic_save(_state(2), path, keep_previous=True)
    prev = previous_snapshot(path)
    assert load_checkpoint(prev)["step"] == 1
    data = bytearray(path.read_bytes())
    if damage == "truncate":
        data = data[: len(data) // 2]
    elif damage == "garbage":
        data = bytearray(os.urandom(len(data)))
    elif damage == "empty":
        data = bytearray()
    else:  # flip bits in the middle of the tensor data, where the zip reader does not look
        start = data.find(b"data/0") + 200
        for i in range(start, start + 64, 8):
            data[i] ^= 0xFF
    path.write_bytes(bytes(data))
    with pytest.raises(CheckpointError, match="is corrupt or incomplete") as info:
        load_checkpoint(path)
    assert str(path) in str(info.value)
    assert str(prev) in str(info.value)


def test_flipped_payload_byte_without_previous_snapshot(tmp_path):
    path = atomic_save({"w": torch.zeros(4096)}, tmp_path / "c.pt")
    data = bytearray(path.read_bytes())
    i = data.find(b"data/0") + 1000
    data[i] ^= 0x01
    path.write_bytes(bytes(data))
    with pytest.raises(CheckpointError, match=r"corrupt or incomplete \(checksum mismatch\)$"):
        load_checkpoint(path)


@pytest.mark.parametrize("umask", [0o022, 0o002, 0o077])
def test_files_follow_the_umask(tmp_path, umask):
    old = os.umask(umask)
    try:
        path = atomic_save({"a": 1}, tmp_path / "c.pt")
        text = atomic_write(tmp_path / "t.txt", lambda f: f.write(b"x"))
    finally:
        os.umask(old)
    for p in (path, text):
        assert p.stat().st_mode & 0o777 == 0o666 & ~umask


class _FullDisk:
    """A file object that fails like a full disk after ``room`` bytes."""

    def __init__(self, f, room: int) -> None:
        self.f, self.room = f, room

    def write(self, b) -> int:
        self.room -= len(b)
        if self.room < 0:
            raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))
        return self.f.write(b)

    def __getattr__(self, name):
        return getattr(self.f, name)


def test_full_disk_keeps_the_previous_file_and_says_so(tmp_path, monkeypatch):
    path = tmp_path / "checkpoint.pt"
    atomic_save(_state(1), path)
    before = path.read_bytes()
    real_save = torch.save
    monkeypatch.setattr(torch, "save", lambda obj, f: real_save(obj, _FullDisk(f, 3000)))
    with pytest.raises(OSError, match=r"no space left on device while writing .*checkpoint\.pt") \
            as info:
        atomic_save(_state(2), path, keep_previous=True)
    assert info.value.errno == errno.ENOSPC
    assert path.read_bytes() == before
    assert sorted(p.name for p in tmp_path.iterdir()) == ["checkpoint.pt"]  # no tmp left
    monkeypatch.undo()
    assert load_checkpoint(path)["step"] == 1


def _write_forever(path, out_fd: int) -> None:
    """Child process: write checkpoints back to back, announcing each finished step."""
    torch.set_num_threads(1)  # as DataLoader workers do after a fork
    step = 0
    while True:
        step += 1
        g = torch.Generator().manual_seed(step)
        atomic_save({"step": step, "w": torch.randn(300_000, generator=g)}, path,
                    keep_previous=True)
        os.write(out_fd, f"{step}\n".encode())


@pytest.mark.skipif(not hasattr(os, "fork"), reason="needs os.fork (POSIX)")
def test_kill_9_during_checkpoint_writes_leaves_a_loadable_checkpoint(tmp_path):
    """SIGKILL a process that writes checkpoints back to back at varying moments: the file on
    disk is always the last complete write (or the one being renamed), never a torn one."""
    path = tmp_path / "checkpoint.pt"
    for k in range(8):
        r, w = os.pipe()
        pid = os.fork()
        if pid == 0:  # pragma: no cover - the child never returns
            try:
                os.close(r)
                _write_forever(path, w)
            finally:
                os._exit(1)
        os.close(w)
        with os.fdopen(r) as announced:
            first = announced.readline()  # at least one complete write of this child
            assert first, "the writer died before its first checkpoint"
            time.sleep(0.003 + 0.007 * k)
            os.kill(pid, signal.SIGKILL)
            os.waitpid(pid, 0)
            written = [int(s) for s in (first + announced.read()).split()]
        state = load_checkpoint(path)
        # The file holds the last announced write, or the one after it (renamed, not printed).
        assert written[-1] <= state["step"] <= written[-1] + 1
        g = torch.Generator().manual_seed(state["step"])
        torch.testing.assert_close(state["w"], torch.randn(300_000, generator=g), rtol=0, atol=0)
        if k:  # from the second child on, the previous snapshot exists and is whole too
            assert load_checkpoint(previous_snapshot(path))["step"] >= 1


def test_keep_previous_after_a_kill_between_the_renames_never_writes_into_a_snapshot(tmp_path):
    # A run killed after "prev <- path" and before "path <- new" leaves prev and path as two links
    # to one file, and may leave its temporary link name behind. The next saves (same pid: a
    # resumed run in the same process slot) must neither write into that file nor lose it.
    path = tmp_path / "checkpoint.pt"
    atomic_save({"step": 1, "w": torch.arange(50_000.0)}, path)
    prev = previous_snapshot(path)
    os.link(path, prev)
    stale = prev.with_name(f".{prev.name}.{os.getpid()}.tmp")
    os.link(path, stale)
    old_inode = path.stat().st_ino
    atomic_save({"step": 2, "w": torch.zeros(3)}, path, keep_previous=True)
    assert load_checkpoint(prev)["step"] == 1 and load_checkpoint(path)["step"] == 2
    atomic_save({"step": 3, "w": torch.ones(3)}, path, keep_previous=True)
    assert load_checkpoint(prev)["step"] == 2 and load_checkpoint(path)["step"] == 3
    assert not stale.exists() and prev.stat().st_ino != old_inode
    leftovers = sorted(p.name for p in tmp_path.iterdir())
    assert leftovers == ["checkpoint.prev.pt", "checkpoint.pt"]
