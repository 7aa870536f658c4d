"""Model selection during training: periodic FID of the EMA generator, best.pt, snapshots."""

from __future__ import annotations

import json

import pytest
import torch
from oco_tiny import tiny_config

from ganblocks.metrics import FrechetInceptionDistance
from recipes.oco_gan.evaluate import make_feature_extractor
from recipes.oco_gan.train import OCOGANTrainer
from recipes.oco_gan.train_select import EVAL_SEED, crossed

# 4 + 2 images per iteration: evaluation and a snapshot every 2 iterations.
EVAL = ["train.eval_every=12", "train.eval_num=16", "train.eval_batch=8",
        "train.eval_features=randconv", "train.keep_every=12"]


def _evals(run):
    lines = [json.loads(x) for x in (run / "metrics.jsonl").read_text().splitlines()]
    return [(x["step"], x["eval/fid"], x["eval/best_fid"]) for x in lines if "eval/fid" in x]


def _fid_of(G, trainer, n=16):
    fid = FrechetInceptionDistance(make_feature_extractor("randconv"))
    fid.update(torch.stack([trainer.data.val.get_item(i, flip=False)["image"]
                            for i in range(n)]), real=True)
    z = torch.randn(n, trainer.cfg.model.z_dim, generator=torch.Generator().manual_seed(EVAL_SEED))
    with torch.no_grad():
        fid.update(G(z=z).clamp(-1, 1), real=False)
    return fid.compute()


def test_crossed():
    assert crossed(0, 6, 6) and crossed(5, 7, 6) and not crossed(6, 11, 6)
    assert not crossed(0, 100, 0)


def test_periodic_fid_best_and_snapshots(tmp_path):
    trainer = OCOGANTrainer(tiny_config(*EVAL), tmp_path, progress=False)
    trainer.fit(steps=4)
    evals = _evals(tmp_path)
    assert [s for s, _, _ in evals] == [2, 4]
    (_, fid2, best2), (_, fid4, best4) = evals
    assert best2 == fid2 and best4 == min(fid2, fid4)
    # The value is the FID of the EMA generator (not of G) on the fixed subset.
    assert fid4 == pytest.approx(_fid_of(trainer.ema.shadow, trainer), rel=1e-7)
    assert fid4 != pytest.approx(_fid_of(trainer.G.eval(), trainer), rel=1e-4)
    best = torch.load(tmp_path / "best.pt", weights_only=False)
    assert best["step"] == (2 if fid2 <= fid4 else 4)
    assert best["selection"]["best"] == best4
    snaps = sorted(p.name for p in (tmp_path / "snapshots").iterdir())
    assert snaps == ["checkpoint_step0000002.pt", "checkpoint_step0000004.pt"]
    assert torch.load(tmp_path / "snapshots" / snaps[0], weights_only=False)["step"] == 2


def test_resume_with_evaluation_is_exact(tmp_path):
    straight = OCOGANTrainer(tiny_config(*EVAL), tmp_path / "a", progress=False)
    straight.fit(steps=4)
    first = OCOGANTrainer(tiny_config(*EVAL), tmp_path / "b", progress=False)
    first.fit(steps=3)
    resumed = OCOGANTrainer(tiny_config(*EVAL), tmp_path / "b", resume=True, progress=False)
    assert resumed.selection.best == _evals(tmp_path / "b")[0][2]
    resumed.fit(steps=4)
    for part in ("G", "D"):
        a, b = getattr(straight, part).state_dict(), getattr(resumed, part).state_dict()
        for k in a:
            torch.testing.assert_close(b[k], a[k], rtol=0, atol=0, msg=k)
    assert _evals(tmp_path / "a") == _evals(tmp_path / "b")
