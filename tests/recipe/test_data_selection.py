"""The paper's data-set variants: Cityscapes 25K (``data.extra``), ADE20K scene subsets
(``data.scene_categories``, e.g. ADE-Indoor) and the semi-supervised conditional batch of 4.

Runs on the miniature Cityscapes / ADE20K layouts of ``test_data_datasets``: Cityscapes has 3
finely annotated train images and 1 ``train_extra`` image, ADE20K 3 train and 1 val image with
their scenes in ``sceneCategories.txt``.
"""

from __future__ import annotations

import json

import numpy as np
import pytest
from recipe.test_data_datasets import ADE_SCENES, make_ade20k, make_cityscapes

from recipes.oco_gan.cli import main
from recipes.oco_gan.config import (
    SEMI_BATCH_COND,
    ConfigError,
    OCOGANConfig,
    apply_overrides,
    get_preset,
)
from recipes.oco_gan.data import build_dataset
from recipes.oco_gan.segmenter import real_dataset
from recipes.oco_gan.trainer_data import open_training_data

#: A tiny 16x32 model for the 35 Cityscapes classes (no train.batch_cond: the regime sets it).
TINY_CITY = [
    "model.resolution=16,32", "model.style_size=4,8", "model.z_dim=8", "model.style_channels=8",
    "model.mapping_layers=2", "model.channel_multiplier=0.03125", "model.max_channels=16",
    "model.cond_hidden_channels=8", "model.d_channel_multiplier=0.0625", "model.d_max_channels=16",
    "model.d_bottleneck=4", "train.batch_uncond=4", "train.num_samples=2", "train.log_every=1",
    "train.sample_every=1000", "train.checkpoint_every=1000", "loss.r1_interval=2",
    "train.ema_rampup_steps=2",
]


@pytest.fixture
def rng():
    return np.random.default_rng(0)


# --- semi-supervised conditional batch ---------------------------------------------------------


@pytest.mark.parametrize("preset", ["cityscapes", "ade20k", "coco_stuff", "celebamask_hq", "demo"])
def test_semi_regime_sets_the_papers_conditional_batch(preset):
    base = get_preset(preset)
    assert base.train.batch_cond in (8, 16, 32)  # presets: full-data batches (COCO 32)
    semi = apply_overrides(base, ["data.regime=semi"])
    assert semi.train.batch_cond == SEMI_BATCH_COND == 4
    # An explicit batch wins, in either order.
    assert apply_overrides(base, ["data.regime=semi", "train.batch_cond=16"]
                           ).train.batch_cond == 16
    assert apply_overrides(base, ["train.batch_cond=12", "data.regime=semi"]
                           ).train.batch_cond == 12
    # The limited regime keeps the preset's batch.
    assert apply_overrides(base, ["data.regime=limited"]).train.batch_cond == base.train.batch_cond


def test_a_saved_semi_config_keeps_its_batch(tmp_path):
    """A config that is already semi (a saved run, a --config file) is not changed again."""
    cfg = apply_overrides(get_preset("cityscapes"), ["data.regime=semi", "train.batch_cond=8"])
    cfg.save(tmp_path / "c.json")
    loaded = OCOGANConfig.load(tmp_path / "c.json")
    assert loaded.train.batch_cond == 8
    assert apply_overrides(loaded, ["train.steps=10"]).train.batch_cond == 8


# --- Cityscapes 25K ---------------------------------------------------------------------------


def test_data_extra_config_field():
    cfg = apply_overrides(get_preset("cityscapes"), ["data.extra=true"])
    assert cfg.data.extra is True
    with pytest.raises(ConfigError, match=r"data.extra .* only for data.name=cityscapes"):
        apply_overrides(get_preset("ade20k"), ["data.extra=true"])


def test_cityscapes_25k_semi_run_records_extra_and_resume_reuses_the_split(tmp_path, rng,
                                                                           capsys):
    root = tmp_path / "cityscapes"
    make_cityscapes(root, rng)
    run = tmp_path / "run"
    args = ["train", "--preset", "cityscapes", "--data", str(root), "--regime", "semi",
            "--labelled", "2", "--extra", "--steps", "1", "--out", str(run), "--no-progress",
            "--device", "cpu", *TINY_CITY]
    assert main(args) == 0
    out = capsys.readouterr().out
    # 3 fine + 1 train_extra image, 2 of the fine ones labelled; the regime's batch of 4.
    assert ("oco-gan: data cityscapes + train_extra, regime semi: 4 images, 2 labelled; "
            "batches: conditional 4, unconditional 4 (conditional batch 4 in the "
            "semi-supervised regime") in out
    cfg = OCOGANConfig.load(run / "config.json")
    assert cfg.data.extra is True and cfg.train.batch_cond == 4
    split = json.loads((run / "split.json").read_text())
    ds = build_dataset("cityscapes", root, extra=True, resolution=(16, 32))
    extra_pos = [i for i, n in enumerate(ds.item_names) if "train_extra" in n]
    assert split["selection"] == {"extra": True} and split["num_items"] == 4
    assert extra_pos == [3] and 3 in split["indices"]  # the train_extra image is used...
    assert len(split["labelled_indices"]) == 2 and 3 not in split["labelled_indices"]  # unlabelled
    assert split["fingerprint"] == ds.fingerprint

    # Resume: the saved config (extra included) reopens the same images and reuses the split.
    before = (run / "split.json").read_bytes()
    assert main(["train", "--out", str(run), "--resume", "--no-progress", "--device", "cpu",
                 "--steps", "2"]) == 0
    assert (run / "split.json").read_bytes() == before
    assert "regime semi: 4 images, 2 labelled" in capsys.readouterr().out

    # The same run directory opened without the train_extra images is refused, naming why.
    other = apply_overrides(cfg, ["data.extra=false"])
    with pytest.raises(ValueError, match=r"selection \{'extra': True\}.*data\.extra"):
        open_training_data(other, run)


def test_without_extra_the_fine_images_only(tmp_path, rng):
    root = tmp_path / "cityscapes"
    make_cityscapes(root, rng)
    cfg = apply_overrides(get_preset("cityscapes"), [*TINY_CITY, f"data.root={root}",
                                                     "data.regime=semi", "data.labelled=1"])
    data = open_training_data(cfg, tmp_path / "run")
    assert len(data.all_indices) == 3 and "selection" not in data.split
    # The validation split never takes train_extra images.
    assert len(real_dataset(apply_overrides(cfg, ["data.extra=true"]), "val")) == 2


# --- ADE20K scene subsets (ADE-Indoor) ---------------------------------------------------------


def test_scene_categories_select_train_and_val_images(tmp_path, rng):
    make_ade20k(tmp_path, rng)
    ds = build_dataset("ade20k", tmp_path, split="train", resolution=16,
                       scene_categories=["bedroom", "airport_terminal"])
    kept = [n.split("/")[-1][:-4] for n in ds.item_names]
    assert kept == sorted(s for s, c in ADE_SCENES.items()
                          if c in ("bedroom", "airport_terminal") and "train" in s)
    assert ds.selection == {"scene_categories": ["airport_terminal", "bedroom"]}
    val = build_dataset("ade20k", tmp_path, split="val", resolution=16,
                        scene_categories=["bedroom"])
    assert [n.split("/")[-1] for n in val.item_names] == ["ADE_val_00000001.jpg"]
    assert ds[0]["label"].shape == (16, 16)


def test_scene_categories_errors_are_clear(tmp_path, rng):
    make_ade20k(tmp_path, rng)
    with pytest.raises(ValueError, match=r"\['dungeon'\] not in .*sceneCategories.txt"):
        build_dataset("ade20k", tmp_path, scene_categories=["bedroom", "dungeon"])
    with pytest.raises(FileNotFoundError, match="none of scene categories"):
        build_dataset("ade20k", tmp_path, split="val", scene_categories=["street"])
    with pytest.raises(ValueError, match="scene_categories is only for ade20k"):
        build_dataset("coco_stuff", tmp_path, scene_categories=["bedroom"])
    with pytest.raises(ValueError, match="non-empty list"):
        build_dataset("ade20k", tmp_path, scene_categories="bedroom")
    lines = (tmp_path / "sceneCategories.txt").read_text().splitlines()
    (tmp_path / "sceneCategories.txt").write_text("\n".join(lines[1:]) + "\n")
    with pytest.raises(ValueError, match=r"ADE_train_00000001\.jpg has no scene category"):
        build_dataset("ade20k", tmp_path, scene_categories=["bedroom"])
    (tmp_path / "sceneCategories.txt").unlink()
    with pytest.raises(FileNotFoundError, match=r"sceneCategories\.txt not found"):
        build_dataset("ade20k", tmp_path, scene_categories=["bedroom"])


def test_scene_categories_config_split_and_evaluation_set(tmp_path, rng):
    make_ade20k(tmp_path / "ade", rng)
    cfg = apply_overrides(get_preset("ade20k"), [
        f"data.root={tmp_path / 'ade'}", "data.scene_categories=[bedroom, airport_terminal]",
        "model.resolution=16,16", "model.style_size=4,4", "data.regime=limited",
        "data.subset=1"])
    assert cfg.data.scene_categories == ("bedroom", "airport_terminal")
    data = open_training_data(cfg, tmp_path / "run")
    assert data.split["selection"] == {"scene_categories": ["airport_terminal", "bedroom"]}
    assert data.split["num_items"] == 2 and len(data.all_indices) == 1
    assert len(data.val) == 1  # the evaluation set is the subset's validation images
    assert len(real_dataset(cfg, "val")) == 1
    with pytest.raises(ConfigError, match=r"only for data\.name=ade20k"):
        apply_overrides(get_preset("cityscapes"), ["data.scene_categories=[bedroom]"])
    # 'x' in a scene name is not the 'HxW' separator of resolutions.
    assert apply_overrides(get_preset("ade20k"), ["data.scene_categories=[box_office]"]
                           ).data.scene_categories == ("box_office",)
