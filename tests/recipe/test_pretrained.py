"""The shipped demo generator: export from a checkpoint, loading, and the demo's grid from it."""

from __future__ import annotations

import pytest
import torch
from oco_tiny import TINY, tiny_config
from PIL import Image

from ganblocks.train import CheckpointError, load_checkpoint
from recipes.oco_gan import pretrained
from recipes.oco_gan.cli import main
from recipes.oco_gan.config import get_preset
from recipes.oco_gan.generate import load_generator
from recipes.oco_gan.train import OCOGANTrainer


@pytest.fixture(autouse=True)
def _one_thread(monkeypatch):
    monkeypatch.setenv("OMP_NUM_THREADS", "1")


@pytest.fixture(scope="module")
def tiny_run(tmp_path_factory):
    run = tmp_path_factory.mktemp("pretrained") / "run"
    trainer = OCOGANTrainer(tiny_config(), run, progress=False)
    trainer.fit(steps=2)
    return run, trainer


def test_export_keeps_the_ema_generator_in_half_precision(tiny_run, tmp_path):
    run, trainer = tiny_run
    out = pretrained.export_generator(run / "checkpoint.pt", tmp_path / "g.pt")
    raw = load_checkpoint(out)
    assert raw["format"] == pretrained.GENERATOR_FORMAT and raw["step"] == 2
    assert set(raw) == {"format", "config", "step", "images_seen", "G_ema"}  # no D, no optimiser
    loaded = load_generator(out)
    assert loaded.step == 2 and loaded.config.model == trainer.cfg.model
    ema = trainer.ema.shadow.state_dict()
    for k, v in loaded.G.state_dict().items():
        assert v.dtype == ema[k].dtype
        # float16 storage: the EMA weights rounded to half precision, then back to float32.
        torch.testing.assert_close(v, ema[k].half().to(ema[k].dtype), rtol=0, atol=0, msg=k)
    z = torch.randn(3, trainer.cfg.model.z_dim, generator=torch.Generator().manual_seed(0))
    with torch.no_grad():
        torch.testing.assert_close(loaded.G(z=z), trainer.ema.shadow.eval()(z=z), rtol=0,
                                   atol=5e-2)
    full = pretrained.export_generator(run / "checkpoint.pt", tmp_path / "g32.pt", half=False)
    for k, v in load_generator(full).G.state_dict().items():
        torch.testing.assert_close(v, ema[k], rtol=0, atol=0, msg=k)
    assert full.stat().st_size > 1.8 * out.stat().st_size


def test_export_refuses_what_is_not_a_trained_run(tmp_path):
    with pytest.raises(FileNotFoundError, match="checkpoint: no file"):
        pretrained.export_generator(tmp_path / "missing.pt", tmp_path / "g.pt")
    from ganblocks.train import atomic_save

    atomic_save({"step": 1}, tmp_path / "foreign.pt")
    with pytest.raises(ValueError, match="holds no EMA generator"):
        pretrained.export_generator(tmp_path / "foreign.pt", tmp_path / "g.pt")
    (tmp_path / "broken.pt").write_bytes(b"not a checkpoint")
    with pytest.raises(CheckpointError):
        pretrained.export_generator(tmp_path / "broken.pt", tmp_path / "g.pt")
    assert not (tmp_path / "g.pt").exists()


def test_load_demo_generator_matches_the_model_settings(tiny_run, tmp_path):
    run, trainer = tiny_run
    out = pretrained.export_generator(run / "checkpoint.pt", tmp_path / "g.pt")
    assert pretrained.load_demo_generator(trainer.cfg.model, path=out) is not None
    assert pretrained.load_demo_generator(None, path=out) is not None
    other = tiny_config("model.z_dim=12").model
    assert pretrained.load_demo_generator(other, path=out) is None
    assert pretrained.load_demo_generator(trainer.cfg.model, path=tmp_path / "none.pt") is None


def _layout_stats(x):
    """Share of images whose top 8 rows are bluer / brighter than their bottom 8, and the
    per-pixel spread across images (mean over pixels of the std over the batch)."""
    bluer = (x[:, 2, :8].mean((1, 2)) > x[:, 2, -8:].mean((1, 2))).float().mean()
    brighter = (x[:, :, :8].mean((1, 2, 3)) > x[:, :, -8:].mean((1, 2, 3))).float().mean()
    return float(bluer), float(brighter), float(x.std(0).mean())


def test_the_shipped_generator_is_the_demo_presets():
    from recipes.oco_gan.segmenter import real_dataset

    assert pretrained.DEMO_GENERATOR.is_file(), "the demo generator is not shipped"
    assert pretrained.DEMO_GENERATOR.stat().st_size < 4 * 2**20  # a few MB
    cfg = get_preset("demo")
    loaded = pretrained.load_demo_generator(cfg.model)
    assert loaded is not None, "the shipped generator does not match the demo preset's model"
    assert loaded.step >= 3000 and loaded.config.preset == "demo"
    z = torch.randn(64, cfg.model.z_dim, generator=torch.Generator().manual_seed(0))
    with torch.no_grad():
        x = loaded.G(z=z)
    assert x.shape == (64, 3, 32, 32) and torch.isfinite(x).all()
    # Its unconditional samples have learned the scenes' layout: sky above ground in (nearly)
    # every sample, as in every real image, with a spread across samples like the data's
    # (an untrained generator spreads 3-4x more; a collapsed one hardly at all).
    ds = real_dataset(cfg, "val")
    real = torch.stack([ds.get_item(i, flip=False)["image"] for i in range(64)])
    r_bluer, r_brighter, r_spread = _layout_stats(real)
    bluer, brighter, spread = _layout_stats(x)
    assert r_bluer == r_brighter == 1.0
    assert bluer >= 0.9 and brighter >= 0.9, (bluer, brighter)
    assert 0.5 * r_spread <= spread <= 2 * r_spread, (spread, r_spread)


def test_demo_writes_the_shipped_generators_grid_first(tiny_run, tmp_path, monkeypatch, capsys):
    run, _ = tiny_run
    shipped = pretrained.export_generator(run / "checkpoint.pt", tmp_path / "g.pt")
    monkeypatch.setattr(pretrained, "DEMO_GENERATOR", shipped)
    out = tmp_path / "demo"
    tiny = [t for t in TINY if not t.startswith("train.log_every")]
    assert main(["demo", "--steps", "1", "--out", str(out), "--device", "cpu", "--no-progress",
                 *tiny]) == 0
    printed = capsys.readouterr().out
    grid = out / "samples" / "pretrained.png"
    assert grid.is_file() and str(grid) in printed
    trained = out / "samples" / "latest.png"
    with Image.open(grid) as a, Image.open(trained) as b:
        assert a.size == b.size  # the same layout: label | real | 3 conditional | 3 unconditional
    # Other model settings: no grid from a generator of another shape, and it says so.
    out2 = tmp_path / "demo2"
    assert main(["demo", "--steps", "1", "--out", str(out2), "--device", "cpu", "--no-progress",
                 *tiny, "model.z_dim=12"]) == 0
    assert "no shipped demo generator for these model settings" in capsys.readouterr().out
    assert not (out2 / "samples" / "pretrained.png").exists()
