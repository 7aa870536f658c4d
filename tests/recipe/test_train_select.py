"""Model selection during training: periodic FID of the EMA generator, best.pt, snapshots."""

from __future__ import annotations

import json
import warnings

import pytest
import torch
from oco_tiny import tiny_config

from ganblocks.metrics import FrechetInceptionDistance
from recipes.oco_gan.evaluate import make_feature_extractor
from recipes.oco_gan.train import OCOGANTrainer
from recipes.oco_gan.train_select import EVAL_SEED, crossed, read_curve

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


# -- CFID, mIoU and the curve file --------------------------------------------------------------


def _scripted_segmenter(path, num_classes: int):
    """A fixed random TorchScript segmenter (images [B,3,H,W] -> logits [B,N,H,W])."""
    torch.manual_seed(3)
    net = torch.nn.Conv2d(3, num_classes, 3, padding=1)
    with warnings.catch_warnings():  # torch.jit's deprecation notice
        warnings.simplefilter("ignore", DeprecationWarning)
        torch.jit.save(torch.jit.script(net), str(path))
    return net


def _cfid_and_miou_of(G, trainer, seg=None, n=16):
    from ganblocks.metrics import MeanIoU

    items = [trainer.data.val.get_item(i, flip=False) for i in range(n)]
    labels = torch.stack([it["label"] for it in items])
    fid = FrechetInceptionDistance(make_feature_extractor("randconv"))
    fid.update(torch.stack([it["image"] for it in items]), real=True)
    m = trainer.cfg.model
    z = torch.randn(n, m.z_dim, generator=torch.Generator().manual_seed(EVAL_SEED + 1))
    with torch.no_grad():
        fake = G(label=labels, z=z).clamp(-1, 1)
    fid.update(fake, real=False)
    miou = None
    if seg is not None:
        metric = MeanIoU(m.num_classes, ignore_index=m.dontcare_index)
        with torch.no_grad():
            metric.update(seg(fake).argmax(dim=1), labels)
        miou = metric.compute().miou
    return fid.compute(), miou


def test_hybrid_curve_has_fid_and_cfid_and_best_cfid_checkpoint(tmp_path):
    trainer = OCOGANTrainer(tiny_config(*EVAL), tmp_path, progress=False)
    trainer.fit(steps=4)
    curve = read_curve(tmp_path)
    assert [(p["step"], p["images"]) for p in curve["points"]] == [(2, 12), (4, 24)]
    assert all(set(p) == {"step", "images", "FID", "CFID"} for p in curve["points"])
    # The logged values are the curve's, and the CFID is that of the EMA generator's conditional
    # samples on the first eval_num validation label maps with the fixed noise.
    assert [(s, f) for s, f, _ in _evals(tmp_path)] == [(p["step"], p["FID"])
                                                       for p in curve["points"]]
    cfid4, _ = _cfid_and_miou_of(trainer.ema.shadow, trainer)
    assert curve["points"][1]["CFID"] == pytest.approx(cfid4, rel=1e-6)
    cfids = [p["CFID"] for p in curve["points"]]
    best_step = (2, 4)[cfids.index(min(cfids))]
    assert curve["best"]["CFID"] == {"value": min(cfids), "step": best_step}
    fids = [p["FID"] for p in curve["points"]]
    assert curve["best"]["FID"] == {"value": min(fids), "step": (2, 4)[fids.index(min(fids))]}
    assert torch.load(tmp_path / "best_cfid.pt", weights_only=False)["step"] == best_step
    assert curve["num_real"] == 16 and curve["every_images"] == 12


def test_cond_only_curve_has_cfid_and_miou_of_the_segmenter(tmp_path):
    cfg = tiny_config(*EVAL, "train.mode=cond_only")
    seg = _scripted_segmenter(tmp_path / "seg.pt", cfg.model.num_classes)
    # cond_only: 2 images per iteration, so 12 images = every 6 iterations.
    trainer = OCOGANTrainer(tiny_config(*EVAL, "train.mode=cond_only",
                                        f"train.eval_segmenter={tmp_path / 'seg.pt'}"),
                            tmp_path / "run", progress=False)
    trainer.fit(steps=6)
    curve = read_curve(tmp_path / "run")
    assert [p["step"] for p in curve["points"]] == [6]
    point = curve["points"][0]
    assert set(point) == {"step", "images", "CFID", "mIoU"}
    cfid, miou = _cfid_and_miou_of(trainer.ema.shadow, trainer, seg)
    assert point["CFID"] == pytest.approx(cfid, rel=1e-6)
    assert point["mIoU"] == pytest.approx(miou, abs=1e-9) and 0 <= miou <= 1
    assert not (tmp_path / "run" / "best.pt").exists()  # no FID in a cond_only run
    assert (tmp_path / "run" / "best_cfid.pt").is_file()


def test_uncond_only_measures_no_cfid_and_nothing_to_measure_is_refused(tmp_path):
    trainer = OCOGANTrainer(tiny_config(*EVAL, "train.mode=uncond_only"), tmp_path / "u",
                            progress=False)
    trainer.fit(steps=3)  # 4 images per iteration: the evaluation at step 3
    assert [set(p) for p in read_curve(tmp_path / "u")["points"]] == [
        {"step", "images", "FID"}]
    with pytest.raises(ValueError, match=r"train\.eval_every: nothing to measure"):
        OCOGANTrainer(tiny_config(*EVAL, "train.mode=cond_only", "train.eval_cfid=false"),
                      tmp_path / "c", progress=False)


def test_a_resumed_run_continues_the_same_curve(tmp_path):
    straight = OCOGANTrainer(tiny_config(*EVAL), tmp_path / "a", progress=False)
    straight.fit(steps=6)
    first = OCOGANTrainer(tiny_config(*EVAL), tmp_path / "b", progress=False)
    first.fit(steps=3)
    # A crash after the evaluation of step 4 but before any later checkpoint: the curve file
    # holds a point that the checkpoint (step 3) does not; the resumed run replays step 4.
    stale = read_curve(tmp_path / "b")
    stale["points"].append({"step": 4, "images": 24, "FID": -1.0, "CFID": -1.0})
    (tmp_path / "b" / "selection.json").write_text(json.dumps(stale))
    resumed = OCOGANTrainer(tiny_config(*EVAL), tmp_path / "b", resume=True, progress=False)
    assert [p["step"] for p in read_curve(tmp_path / "b")["points"]] == [2]
    resumed.fit(steps=6)
    assert read_curve(tmp_path / "b") == read_curve(tmp_path / "a")


def test_curves_use_eval_num_validation_images_of_the_full_split(tmp_path, capsys):
    # The synthetic validation split the curves read is the evaluation's own (oco-gan evaluate,
    # the experiment's real-vs-real floor): train.eval_num images of it, not a few grid maps.
    from recipes.oco_gan.segmenter import real_dataset

    cfg = tiny_config("train.eval_every=12", "train.eval_num=100", "train.eval_features=randconv",
                      "train.num_samples=2")
    trainer = OCOGANTrainer(cfg, tmp_path / "a", progress=False)
    assert trainer.selection._real_indices() == list(range(100))
    val = real_dataset(cfg, "val")
    assert len(trainer.data.val) == len(val) == 1000
    for i in (0, 99):
        torch.testing.assert_close(trainer.data.val.get_item(i, flip=False)["image"],
                                   val.get_item(i, flip=False)["image"], rtol=0, atol=0)
    assert "train.eval_num" not in capsys.readouterr().out
    # Asking for more than the split holds says so at the start.
    OCOGANTrainer(tiny_config("train.eval_every=12", "train.eval_num=1500",
                              "train.eval_features=randconv"), tmp_path / "b", progress=False)
    assert "train.eval_num=1500 but the validation split has 1000" in capsys.readouterr().out
