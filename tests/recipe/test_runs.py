"""Run directories a user can trust: refusals (exit code 2, files untouched), one writer per
directory, resume-and-extend, full disks, damaged checkpoints, orphaned temporary files."""

from __future__ import annotations

import errno
import hashlib
import json
import os
import re
import shutil
import signal
import time
from pathlib import Path

import pytest
import torch
from oco_tiny import TINY, tiny_config

from ganblocks.train import MetricsLogger, load_checkpoint
from recipes.oco_gan.cli import main
from recipes.oco_gan.rundir import open_run_dir


@pytest.fixture(autouse=True)
def _one_thread(monkeypatch):
    monkeypatch.setenv("OMP_NUM_THREADS", "1")  # the CLI then leaves torch's threads alone


def _train(*args: str) -> int:
    return main(["train", "--no-progress", "--device", "cpu", *args])


@pytest.fixture(scope="module")
def finished_run(tmp_path_factory):
    """A tiny run of 2 steps (checkpoint.pt and checkpoint.prev.pt) and its config file."""
    base = tmp_path_factory.mktemp("finished")
    cfg = base / "tiny.json"
    tiny_config("train.checkpoint_every=1").save(cfg)
    assert _train("--config", str(cfg), "--out", str(base / "run"), "--steps", "2") == 0
    return base / "run", cfg


def _snapshot(folder: Path) -> dict:
    """Every file under ``folder`` (the lock file aside) with the hash of its bytes."""
    return {str(p.relative_to(folder)): hashlib.sha256(p.read_bytes()).hexdigest()
            for p in sorted(folder.rglob("*")) if p.is_file() and p.name != ".lock"}


def _copy(run: Path, dest: Path) -> Path:
    shutil.copytree(run, dest)
    return dest


def _truncate(run: Path) -> None:
    ckpt = run / "checkpoint.pt"
    ckpt.write_bytes(ckpt.read_bytes()[:1000])


def _garbage(run: Path) -> None:
    (run / "checkpoint.pt").write_bytes(os.urandom(5000))


def _flip(run: Path) -> None:
    ckpt = run / "checkpoint.pt"
    data = bytearray(ckpt.read_bytes())
    i = data.find(b"data/0") + 300
    data[i] ^= 0x10
    ckpt.write_bytes(bytes(data))


# (name, damage to the copied run or None, arguments, expected message)
CASES = [
    ("existing run, no --resume", None, ["--steps", "3"],
     r"already holds a run \(checkpoint.pt, config.json, metrics.jsonl\): continue it with "
     r"--resume .* --overwrite"),
    ("resume changing the model", None, ["--resume", "model.z_dim=4", "loss.r1_gamma=2"],
     r"other settings of loss.r1_gamma, model.z_dim \(loss.r1_gamma: 10.0 in the checkpoint, "
     r"2.0 now"),
    ("resume with another preset", None, ["--resume", "--preset", "cityscapes"],
     r"--resume: the checkpoint was trained with other settings of .*data.name"),
    ("truncated checkpoint", _truncate, ["--resume"],
     r"checkpoint .*checkpoint.pt is corrupt or incomplete .* previous snapshot "
     r".*checkpoint.prev.pt"),
    ("garbage checkpoint", _garbage, ["--resume"], r"is corrupt or incomplete"),
    ("flipped byte", _flip, ["--resume"], r"corrupt or incomplete \(checksum mismatch\)"),
    ("resume and overwrite", None, ["--resume", "--overwrite"], r"exclude each other"),
    ("delete-old alone", None, ["--delete-old"], r"--delete-old only goes with --overwrite"),
    ("bad steps", None, ["--resume", "--steps", "0"], r"--steps must be >= 1, got 0"),
    ("bad override", None, ["--resume", "train.nope=1"], r"train has no field 'nope'"),
]


@pytest.mark.parametrize("name,damage,args,message", CASES, ids=[c[0] for c in CASES])
def test_refusals_exit_2_with_a_message_and_touch_nothing(finished_run, tmp_path, capsys, name,
                                                          damage, args, message):
    run = _copy(finished_run[0], tmp_path / "run")
    if damage is not None:
        damage(run)
    before = _snapshot(run)
    assert _train("--out", str(run), *args) == 2
    err = capsys.readouterr().err
    assert err.startswith("oco-gan train: error: "), err
    assert "Traceback" not in err
    assert re.search(message, err), err
    assert _snapshot(run) == before


def test_refusals_of_the_output_folder(tmp_path, capsys):
    a_file = tmp_path / "file"
    a_file.write_text("x")
    assert _train("--out", str(a_file)) == 2
    assert f"--out {a_file} is a file, expected a directory" in capsys.readouterr().err
    assert _train("--out", str(a_file / "sub")) == 2
    assert "is a file, expected a directory" in capsys.readouterr().err
    assert a_file.read_text() == "x"
    assert _train("--out", str(tmp_path / "empty"), "--resume") == 2
    assert "--resume: no run to continue in" in capsys.readouterr().err
    assert not (tmp_path / "empty").exists()  # nothing left behind by a refused start


def _as_unprivileged(fn):
    """Run ``fn() -> str`` in a forked child that, when we are root (who ignores file
    permissions), first drops to user ``nobody``; returns what ``fn`` returned."""
    r, w = os.pipe()
    pid = os.fork()
    if pid == 0:  # pragma: no cover - the child
        code = 1
        try:
            os.close(r)
            if os.geteuid() == 0:
                os.setgroups([])
                os.setgid(65534)
                os.setuid(65534)
            os.write(w, fn().encode())
            code = 0
        except BaseException:
            import traceback

            os.write(w, traceback.format_exc().encode())
        finally:
            os._exit(code)
    os.close(w)
    with os.fdopen(r) as f:
        out = f.read()
    assert os.waitpid(pid, 0)[1] == 0, out
    return out


@pytest.mark.skipif(not hasattr(os, "fork"), reason="needs os.fork (POSIX)")
def test_read_only_output_folder():
    import contextlib
    import io
    import tempfile

    base = Path(tempfile.mkdtemp())  # in /tmp: reachable by the unprivileged child
    base.chmod(0o755)
    ro = base / "ro"
    ro.mkdir()
    ro.chmod(0o555)

    # Import everything the command needs first: the child may not read the Python install.
    import recipes.oco_gan.train  # noqa: F401
    from recipes.oco_gan.cli import build_parser

    build_parser()

    def attempt() -> str:
        err = io.StringIO()
        with contextlib.redirect_stderr(err):
            codes = [_train("--out", str(ro / "run")), _train("--out", str(ro))]
        return json.dumps({"codes": codes, "err": err.getvalue()})

    result = json.loads(_as_unprivileged(attempt))
    assert result["codes"] == [2, 2]
    err = result["err"]
    assert f"--out {ro / 'run'} is not writable (cannot create it in {ro})" in err, err
    assert f"--out {ro} is not writable" in err and "Traceback" not in err
    assert list(ro.iterdir()) == []
    ro.chmod(0o755)
    shutil.rmtree(base)


def test_failed_start_leaves_no_run_behind(tmp_path, capsys):
    out = tmp_path / "run"
    assert _train("--preset", "folder", "--data", str(tmp_path / "missing"), "--out",
                  str(out)) == 2
    assert "folder root" in capsys.readouterr().err
    assert not out.exists()


def test_overrides_mix_with_options(tmp_path):
    out = tmp_path / "run"
    cfg = tmp_path / "tiny.json"
    tiny_config().save(cfg)
    assert main(["train", "train.log_every=2", "--config", str(cfg), "--out", str(out),
                 "train.sample_every=7", "--steps", "1", "--no-progress"]) == 0
    saved = json.loads((out / "config.json").read_text())
    assert saved["train"]["log_every"] == 2 and saved["train"]["sample_every"] == 7


@pytest.mark.skipif(not hasattr(os, "fork"), reason="needs os.fork (POSIX)")
def test_second_writer_is_refused_naming_the_first(finished_run, tmp_path, capsys):
    run = _copy(finished_run[0], tmp_path / "run")
    before = _snapshot(run)
    r, w = os.pipe()
    pid = os.fork()
    if pid == 0:  # pragma: no cover - the lock holder
        try:
            os.close(r)
            open_run_dir(run, resume=True)
            os.write(w, b"locked\n")
            time.sleep(120)
        finally:
            os._exit(0)
    os.close(w)
    try:
        assert os.read(r, 100) == b"locked\n"
        assert _train("--out", str(run), "--resume", "--steps", "3") == 2
        err = capsys.readouterr().err
        assert f"run directory {run} is in use by process {pid}" in err, err
        assert _snapshot(run) == before
        # --overwrite must not move a run that is being trained either.
        assert _train("--out", str(run), "--overwrite") == 2
        assert f"in use by process {pid}" in capsys.readouterr().err
        assert _snapshot(run) == before
    finally:
        os.kill(pid, signal.SIGKILL)
        os.waitpid(pid, 0)
        os.close(r)
    # The lock of a dead process never blocks.
    open_run_dir(run, resume=True).release()


def _params(state):
    return {f"{part}.{k}": v for part in ("G", "D", "G_ema") for k, v in state[part].items()
            if isinstance(v, torch.Tensor)}


def test_resume_extends_a_finished_run_exactly(tmp_path, capsys):
    """N steps, then --resume --steps 2N, equals 2N steps straight (bit for bit)."""
    cfg = tmp_path / "tiny.json"
    tiny_config().save(cfg)
    n = 2
    ext, straight = tmp_path / "extended", tmp_path / "straight"
    assert _train("--config", str(cfg), "--out", str(ext), "--steps", str(n)) == 0
    (ext / ".checkpoint.pt.orphan.tmp").write_bytes(b"torn")  # a killed write's leftover
    with open(ext / "metrics.jsonl", "a") as f:  # rows of steps after the checkpoint (a crash)
        f.write(json.dumps({"step": n + 1, "time": 0.0}) + "\n" + '{"step": 5, "ti')
    capsys.readouterr()
    assert _train("--out", str(ext), "--resume", "--steps", str(2 * n)) == 0
    out = capsys.readouterr().out
    assert f"train.steps {n} -> {2 * n}" in out and f"stopped at step {2 * n}" in out
    assert _train("--config", str(cfg), "--out", str(straight), "--steps", str(2 * n)) == 0
    a, b = load_checkpoint(ext / "checkpoint.pt"), load_checkpoint(straight / "checkpoint.pt")
    assert a["step"] == b["step"] == 2 * n
    pa, pb = _params(a), _params(b)
    assert pa.keys() == pb.keys()
    for k in pa:
        torch.testing.assert_close(pa[k], pb[k], rtol=0, atol=0, msg=k)
    steps = [json.loads(line)["step"] for line in (ext / "metrics.jsonl").read_text().splitlines()]
    assert steps == list(range(1, 2 * n + 1))  # no duplicates, no torn line
    assert not list(ext.glob(".*.tmp"))
    history = [json.loads(line) for line in (ext / "history.jsonl").read_text().splitlines()]
    assert [h["event"] for h in history] == ["start", "resume"]
    assert history[1]["changes"] == {"train.steps": [n, 2 * n]} and history[1]["step"] == n
    assert json.loads((ext / "config.json").read_text())["train"]["steps"] == 2 * n
    assert load_checkpoint(ext / "checkpoint.prev.pt")["step"] == n
    umask = os.umask(0o022)
    os.umask(umask)
    for f in ("checkpoint.pt", "config.json", "split.json", "samples/latest.png"):
        assert (ext / f).stat().st_mode & 0o777 == 0o666 & ~umask, f


def test_overwrite_moves_the_old_run_aside(finished_run, tmp_path, capsys):
    run = _copy(finished_run[0], tmp_path / "run")
    before = _snapshot(run)
    cfg = finished_run[1]
    assert _train("--config", str(cfg), "--out", str(run), "--steps", "1", "--overwrite") == 0
    aside = [p for p in tmp_path.iterdir() if p.name.startswith("run.old-")]
    assert len(aside) == 1 and _snapshot(aside[0]) == before
    assert f"previous run is now in {aside[0]}" in capsys.readouterr().out
    assert load_checkpoint(run / "checkpoint.pt")["step"] == 1
    assert _train("--config", str(cfg), "--out", str(run), "--steps", "1", "--overwrite",
                  "--delete-old") == 0
    assert len([p for p in tmp_path.iterdir() if p.name.startswith("run.old-")]) == 1


def test_full_disk_during_training_keeps_the_checkpoint(finished_run, tmp_path, capsys,
                                                        monkeypatch):
    run = _copy(finished_run[0], tmp_path / "run")
    ckpt = (run / "checkpoint.pt").read_bytes()

    def full(self, step, values):
        raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))

    monkeypatch.setattr(MetricsLogger, "log", full)
    assert _train("--out", str(run), "--resume", "--steps", "4") == 2
    err = capsys.readouterr().err
    assert "no space left on device at step 3" in err and "is intact" in err, err
    assert "Traceback" not in err
    assert (run / "checkpoint.pt").read_bytes() == ckpt
    monkeypatch.undo()

    real_save = torch.save

    def save(obj, f):  # the disk fills up in the middle of the checkpoint
        f.write(b"x" * 100)
        raise RuntimeError("file write failed") from OSError(errno.ENOSPC, "No space left")

    monkeypatch.setattr(torch, "save", save)
    assert _train("--out", str(run), "--resume", "--steps", "3") == 2
    err = capsys.readouterr().err
    assert "no space left on device while writing" in err and "checkpoint.pt" in err, err
    monkeypatch.setattr(torch, "save", real_save)
    assert (run / "checkpoint.pt").read_bytes() == ckpt
    assert not list(run.glob(".*.tmp"))
    assert load_checkpoint(run / "checkpoint.pt")["step"] == 2


def test_train_segmenter_checks_its_output_before_training(tmp_path, capsys):
    a_file = tmp_path / "file"
    a_file.write_text("x")
    for out, message in ((tmp_path, "is a directory, expected a file path"),
                         (a_file / "seg.pt", f"cannot write {a_file / 'seg.pt'}")):
        assert main(["train-segmenter", "--data-preset", "demo", "--out", str(out),
                     "--no-progress", "--device", "cpu"]) == 2
        err = capsys.readouterr().err
        assert message in err and "Traceback" not in err, err
    assert a_file.read_text() == "x" and sorted(p.name for p in tmp_path.iterdir()) == ["file"]


def test_demo_trains_a_fixed_number_of_iterations(tmp_path, capsys):
    from recipes.oco_gan.cli import DEMO_STEPS, _demo_config, build_parser

    parser = build_parser()
    assert _demo_config(parser.parse_args(["demo"])).train.steps == DEMO_STEPS >= 860
    assert _demo_config(parser.parse_args(["demo", "--steps", "5"])).train.steps == 5
    assert _demo_config(parser.parse_args(["demo", "--minutes", "2"])).train.steps > 10**8
    out = tmp_path / "demo"
    tiny = [t for t in TINY if not t.startswith("train.log_every")]
    assert main(["demo", "--steps", "2", "--out", str(out), "--device", "cpu", *tiny]) == 0
    err = capsys.readouterr().err
    assert "2/2 [" in err and "<" in err  # a bar with its total and remaining time (ETA)
    assert load_checkpoint(out / "checkpoint.pt")["step"] == 2


def test_generate_refuses_a_damaged_checkpoint(finished_run, tmp_path, capsys):
    run = _copy(finished_run[0], tmp_path / "run")
    _flip(run)
    assert main(["generate", "--ckpt", str(run / "checkpoint.pt"), "--out",
                 str(tmp_path / "samples"), "--num", "1"]) == 2
    err = capsys.readouterr().err
    assert "is corrupt or incomplete (checksum mismatch)" in err and "Traceback" not in err
    assert "checkpoint.prev.pt" in err


def test_failed_overwrite_puts_the_old_run_back(finished_run, tmp_path, capsys):
    run = _copy(finished_run[0], tmp_path / "run")
    before = _snapshot(run)
    assert _train("--preset", "folder", "--data", str(tmp_path / "missing"), "--out", str(run),
                  "--overwrite") == 2
    assert "folder root" in capsys.readouterr().err
    assert _snapshot(run) == before
    assert sorted(p.name for p in tmp_path.iterdir()) == ["run"]  # nothing moved aside
