"""OCO-GAN training: the full step, determinism, exact resume, interrupts."""

from __future__ import annotations

import math
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch
from oco_tiny import tiny_config

from recipes.oco_gan.train import OCOGANTrainer


def _params(trainer):
    return {**{f"G.{k}": v for k, v in trainer.G.state_dict().items()},
            **{f"D.{k}": v for k, v in trainer.D.state_dict().items()},
            **{f"E.{k}": v for k, v in trainer.ema.state_dict().items()
               if isinstance(v, torch.Tensor)}}


def _assert_same(a, b, *, rtol=0.0, atol=0.0):
    assert a.keys() == b.keys()
    for k in a:
        torch.testing.assert_close(a[k], b[k], rtol=rtol, atol=atol, msg=k)


@pytest.mark.parametrize("mode", ["hybrid", "uncond_only", "cond_only"])
def test_steps_are_finite_and_reach_every_parameter(tmp_path, mode):
    trainer = OCOGANTrainer(tiny_config(f"train.mode={mode}"), tmp_path, progress=False)
    for _ in range(2):  # step 0 includes the lazy R1 term
        logs = trainer.train_step()
        assert all(math.isfinite(v) for v in logs.values()), logs
    expected = {"hybrid": {"g/uncond", "g/cond", "d/uncond", "d/cond_real", "d/labelmix"},
                "uncond_only": {"g/uncond", "d/uncond"},
                "cond_only": {"g/cond", "d/cond_real", "d/cond_fake"}}[mode]
    assert expected <= logs.keys()
    # D's last step: every parameter of the heads in use got a gradient.
    D, G = trainer.D, trainer.G
    d_parts = [D.encoder]
    if mode != "cond_only":
        d_parts += [D.head_blocks, D.head_conv, D.head_fc, D.head_out]
    if mode != "uncond_only":
        d_parts += [D.aspp, D.decoder, D.seg_out]
    for part in d_parts:
        assert all(p.grad is not None and torch.isfinite(p.grad).all() for p in part.parameters())
    # G: the branch in use and the synthesis got gradients in its last step.
    g_parts = [G.synthesis] + ([G.uncond_style] if mode != "cond_only" else []) \
        + ([G.cond_style] if mode != "uncond_only" else [])
    for part in g_parts:
        assert all(p.grad is not None for p in part.parameters())
    if mode == "uncond_only":
        assert all(p.grad is None for p in G.cond_style.parameters())


def test_r1_runs_on_schedule(tmp_path):
    trainer = OCOGANTrainer(tiny_config("loss.r1_interval=3"), tmp_path, progress=False)
    seen = [("d/r1" in trainer.train_step()) for _ in range(4)]
    assert seen == [True, False, False, True]


def test_same_seed_same_parameters(tmp_path):
    a = OCOGANTrainer(tiny_config(), tmp_path / "a", progress=False)
    b = OCOGANTrainer(tiny_config(), tmp_path / "b", progress=False)
    for _ in range(3):
        a.train_step()
        b.train_step()
    _assert_same(_params(a), _params(b))
    c = OCOGANTrainer(tiny_config("train.seed=1"), tmp_path / "c", progress=False)
    c.train_step()
    assert not torch.equal(c.G.synthesis.const, a.G.synthesis.const)


def test_resume_is_exact(tmp_path):
    straight = OCOGANTrainer(tiny_config(), tmp_path / "straight", progress=False)
    straight.fit(steps=5)
    first = OCOGANTrainer(tiny_config(), tmp_path / "resumed", progress=False)
    first.fit(steps=2)
    del first
    second = OCOGANTrainer(tiny_config(), tmp_path / "resumed", resume=True, progress=False)
    assert second.step == 2
    summary = second.fit(steps=5)
    assert summary["step"] == 5
    _assert_same(_params(straight), _params(second))
    assert straight.opt_d.state_dict()["state"].keys() == second.opt_d.state_dict()["state"].keys()
    lines = (tmp_path / "resumed" / "metrics.jsonl").read_text().splitlines()
    assert len(lines) == 5
    assert (tmp_path / "resumed" / "split.json").is_file()
    assert (tmp_path / "resumed" / "samples" / "latest.png").is_file()


def test_resume_without_checkpoint_is_a_clear_error(tmp_path):
    with pytest.raises(FileNotFoundError, match="--resume: no checkpoint"):
        OCOGANTrainer(tiny_config(), tmp_path, resume=True, progress=False)


def test_checkpoint_holds_the_full_state(tmp_path):
    trainer = OCOGANTrainer(tiny_config("train.ada=true"), tmp_path, progress=False)
    trainer.fit(steps=1)
    state = torch.load(tmp_path / "checkpoint.pt", weights_only=False)
    for key in ("G", "D", "G_ema", "opt_g", "opt_d", "augment", "rng", "step", "images_seen",
                "split", "config", "stream_u", "stream_c"):
        assert state[key] is not None, key
    assert "p" in state["augment"]
    assert not list(tmp_path.glob(".checkpoint.pt*"))  # no temporary file left behind


def _cli(*args: str) -> list:
    return [sys.executable, "-m", "recipes.oco_gan", *args]


def _write_tiny_config(path: Path, *extra: str) -> Path:
    tiny_config(*extra).save(path)
    return path


@pytest.mark.slow
def test_sigint_checkpoints_and_resume_matches_a_straight_run(tmp_path):
    cfg = _write_tiny_config(tmp_path / "tiny.json")
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    total = 12
    run = tmp_path / "interrupted"
    proc = subprocess.Popen(_cli("train", "--config", str(cfg), "--out", str(run), "--steps",
                                 str(total), "--no-progress"), env=env,
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    metrics = run / "metrics.jsonl"
    deadline = time.time() + 120
    while time.time() < deadline and proc.poll() is None:
        if metrics.is_file() and len(metrics.read_text().splitlines()) >= 2:
            break
        time.sleep(0.05)
    proc.send_signal(signal.SIGINT)
    out, _ = proc.communicate(timeout=120)
    assert proc.returncode == 0, out
    assert "after an interrupt" in out, out
    stopped = torch.load(run / "checkpoint.pt", weights_only=False)["step"]
    assert 2 <= stopped < total, out

    done = subprocess.run(_cli("train", "--out", str(run), "--resume", "--no-progress"),
                          env=env, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stdout + done.stderr
    straight = tmp_path / "straight"
    ref = subprocess.run(_cli("train", "--config", str(cfg), "--out", str(straight), "--steps",
                              str(total), "--no-progress"), env=env, capture_output=True,
                         text=True, timeout=300)
    assert ref.returncode == 0, ref.stdout + ref.stderr
    a = torch.load(run / "checkpoint.pt", weights_only=False)
    b = torch.load(straight / "checkpoint.pt", weights_only=False)
    assert a["step"] == b["step"] == total
    for part in ("G", "D"):
        for k in b[part]:
            torch.testing.assert_close(a[part][k], b[part][k], rtol=0, atol=0, msg=k)


@pytest.mark.parametrize("extra", [["train.mixed_precision=bf16"], ["train.mixed_precision=fp16"],
                                   ["train.channels_last=true"],
                                   ["train.ada=true"], ["loss.uncond_seg_loss=gumbel"]])
def test_options_train(tmp_path, extra):
    trainer = OCOGANTrainer(tiny_config(*extra), tmp_path, progress=False)
    for _ in range(2):
        logs = trainer.train_step()
        assert all(math.isfinite(v) for v in logs.values()), logs
    if "loss.uncond_seg_loss=gumbel" in extra:
        assert "g/uncond_gumbel_seg" in logs
    if "train.ada=true" in extra:
        assert "ada/p" in logs
