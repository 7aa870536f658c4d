"""A tiny StyleGAN2 run on CPU: every phase runs, resume is exact, the CLI generates images."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch
from PIL import Image

from recipes.stylegan2.__main__ import main
from recipes.stylegan2.train import TrainConfig, Trainer

TINY = dict(
    resolution=8,
    batch=2,
    z_dim=8,
    w_dim=8,
    mapping_layers=1,
    channel_base=32,
    channel_max=8,
    mbstd_group=2,
    r1_interval=2,
    pl_interval=2,
    log_every=1,
    ema_kimg=0.01,
)


def _states_equal(a, b):
    same = [torch.equal(a[k], b[k]) if torch.is_tensor(a[k]) else a[k] == b[k] for k in a]
    return a.keys() == b.keys() and all(same)


def test_resume_continues_exactly(tmp_path):
    straight = Trainer(
        TrainConfig(out=str(tmp_path / "a"), steps=3, checkpoint_every=10, ada=True, **TINY)
    )
    straight.run()
    part = Trainer(
        TrainConfig(out=str(tmp_path / "b"), steps=2, checkpoint_every=10, ada=True, **TINY)
    )
    part.run()
    resumed = Trainer(
        TrainConfig(out=str(tmp_path / "b"), steps=3, checkpoint_every=10, ada=True, **TINY)
    )
    resumed.run()
    assert resumed.step == straight.step == 3
    assert _states_equal(straight.G_ema.state_dict(), resumed.G_ema.state_dict())
    assert _states_equal(straight.D.state_dict(), resumed.D.state_dict())
    assert float(resumed.pl.pl_mean) > 0  # the path-length phase ran (steps 0 and 2)
    assert not _states_equal(
        straight.G.state_dict(),
        Trainer(TrainConfig(out=str(tmp_path / "c"), **TINY)).G.state_dict(),
    )
    lines = [json.loads(x) for x in (tmp_path / "a" / "metrics.jsonl").read_text().splitlines()]
    assert [r["step"] for r in lines] == [1, 2, 3]
    assert {"loss/G", "loss/D", "reg/r1", "reg/pl_penalty", "ada/p"} <= set(lines[0]) | set(
        lines[2]
    )
    assert all(np.isfinite(v) for r in lines for v in r.values())


def test_cli_trains_and_generates(tmp_path):
    args = [f"--{k.replace('_', '-')}={v}" for k, v in TINY.items()]
    assert main(["train", f"--out={tmp_path / 'run'}", "--steps=1", *args]) == 0
    ckpt = tmp_path / "run" / "checkpoint.pt"
    assert ckpt.is_file() and (tmp_path / "run" / "config.json").is_file()
    assert main(["generate", f"--network={ckpt}", f"--out={tmp_path / 'img'}", "--seeds=0-1"]) == 0
    images = sorted((tmp_path / "img").glob("*.png"))
    assert [p.name for p in images] == ["seed0000.png", "seed0001.png"]
    assert Image.open(images[0]).size == (8, 8)


def test_bad_options_are_clear_errors():
    with pytest.raises(ValueError, match="resolution"):
        TrainConfig(resolution=12)
    with pytest.raises(ValueError, match="batch"):
        TrainConfig(batch=0)
    with pytest.raises(FileNotFoundError, match="data"):
        Trainer(TrainConfig(data="/nonexistent/images", **TINY))
