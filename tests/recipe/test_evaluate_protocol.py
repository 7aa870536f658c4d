"""``oco-gan evaluate`` follows the paper's protocol: five sample sets by default, the data set's
evaluated mIoU classes (Cityscapes' 19 trainIds), and only the metrics of the branches a run
trained."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch
from oco_tiny import tiny_config
from recipe.test_data_datasets import CITY_USED, CODE, make_cityscapes
from recipe.test_data_selection import TINY_CITY as CITY_MODEL

from ganblocks.metrics import MeanIoU
from recipes.oco_gan.cli import main
from recipes.oco_gan.config import OCOGANConfig, apply_overrides, get_preset
from recipes.oco_gan.data import (
    CITYSCAPES_CLASSES,
    CITYSCAPES_EVAL_LABEL_IDS,
    build_dataset,
    evaluated_classes,
)
from recipes.oco_gan.evaluate import evaluate_run
from recipes.oco_gan.model import Generator
from recipes.oco_gan.train import OCOGANTrainer

pytestmark = pytest.mark.filterwarnings("ignore::DeprecationWarning:torch.jit")

QUICK = ["--features", "randconv", "--num-real", "6", "--num-fake", "6", "--kid-subsets", "2",
         "--no-progress", "--device", "cpu"]


def _results(run_dir):
    return json.loads((run_dir / "eval" / "results.json").read_text())


# --- evaluated classes -----------------------------------------------------------------------


def test_standard_classes_of_each_data_set():
    city = evaluated_classes("cityscapes", 35, 0)
    assert city.label_ids == CITYSCAPES_EVAL_LABEL_IDS and len(city.label_ids) == 19
    assert city.names == ("road", "sidewalk", "building", "wall", "fence", "pole",
                          "traffic light", "traffic sign", "vegetation", "terrain", "sky",
                          "person", "rider", "car", "truck", "bus", "train", "motorcycle",
                          "bicycle")
    assert all(CITYSCAPES_CLASSES[i] == n for i, n in zip(city.label_ids, city.names))
    ade = evaluated_classes("ade20k", 151, 0)
    assert ade.label_ids == tuple(range(1, 151)) and "other" not in ade.names
    coco = evaluated_classes("coco_stuff", 183, 0)
    assert coco.label_ids == tuple(range(1, 183)) and "unlabeled" not in coco.names
    assert evaluated_classes("cityscapes", 35, 0, protocol="all").label_ids == tuple(range(1, 35))
    assert evaluated_classes("celebamask_hq", 19, None).label_ids == tuple(range(19))
    with pytest.raises(ValueError, match="protocol"):
        evaluated_classes("ade20k", 151, 0, protocol="trainids")


def test_a_segmenter_perfect_on_the_19_trainids_scores_1_under_the_standard_protocol():
    """The issue's case: a trainId segmenter cannot predict the 15 other labelIds. Scored over
    the 34 labelIds it loses every pixel of those classes; scored as Cityscapes is, it is
    perfect."""
    gen = torch.Generator().manual_seed(0)
    target = torch.randint(0, 35, (4, 16, 32), generator=gen)
    evaluated = torch.tensor(CITYSCAPES_EVAL_LABEL_IDS)
    is_eval = torch.isin(target, evaluated)
    pred = torch.where(is_eval, target, torch.full_like(target, 7))  # others: called "road"
    std, everything = (MeanIoU(35, ignore_index=0, classes=evaluated_classes(
        "cityscapes", 35, 0, protocol=p).label_ids) for p in ("standard", "all"))
    for m in (std, everything):
        m.update(pred, target)
    assert std.compute().miou == 1.0
    assert everything.compute().miou < 0.6  # 15 of 34 classes at IoU 0, road diluted


# --- branches ----------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def runs(tmp_path_factory):
    root = tmp_path_factory.mktemp("modes")
    out = {}
    for mode in ("uncond_only", "cond_only"):
        trainer = OCOGANTrainer(tiny_config(f"train.mode={mode}"), root / mode, progress=False)
        trainer.fit(steps=0)  # a checkpoint is all evaluation needs
        out[mode] = root / mode
    return out


def test_uncond_only_run_skips_conditional_metrics(runs):
    run = runs["uncond_only"]
    assert main(["evaluate", "--run", str(run), "--repeats", "1", *QUICK]) == 0
    res = _results(run)
    assert res["train_mode"] == "uncond_only"
    assert set(res["metrics"]) == {"FID", "KID"}
    assert set(res["skipped"]) == {"CFID", "CKID", "mIoU"}
    assert "conditional branch was not trained" in res["skipped"]["CFID"]
    md = (run / "eval" / "results.md").read_text()
    assert "CFID skipped: train.mode=uncond_only" in md and "| CFID" not in md


def test_cond_only_run_skips_unconditional_metrics(runs):
    run = runs["cond_only"]
    assert main(["evaluate", "--run", str(run), "--repeats", "1", *QUICK]) == 0
    res = _results(run)
    assert set(res["metrics"]) == {"CFID", "CKID"} and set(res["skipped"]) == {"FID", "KID"}
    # The conditional samples are those of a full evaluation: same seeds, same numbers.
    assert main(["evaluate", "--run", str(run), "--repeats", "1", "--all-branches", *QUICK]) == 0
    full = _results(run)
    assert set(full["metrics"]) == {"FID", "KID", "CFID", "CKID"} and full["skipped"] == {}
    assert full["untrained_branch"] == ["FID", "KID"]
    assert full["metrics"]["CFID"]["values"] == res["metrics"]["CFID"]["values"]
    md = (run / "eval" / "results.md").read_text()
    assert "| FID ↓ † |" in md and "did not train" in md


def test_default_is_five_sample_sets(runs):
    run = runs["uncond_only"]
    assert main(["evaluate", "--run", str(run), *QUICK]) == 0
    res = _results(run)
    assert res["repeats"] == 5 and res["seeds"] == [0, 1, 2, 3, 4]
    assert len(res["metrics"]["FID"]["values"]) == 5 and res["metrics"]["FID"]["std"] is not None


# --- Cityscapes mIoU end to end ------------------------------------------------------------------

#: The tiny 16x32 Cityscapes model of the data tests, with small fixed batches.
TINY_CITY = [*CITY_MODEL, "train.batch_uncond=2", "train.batch_cond=2"]


def _colour_segmenter(path):
    """A 1×1 conv that labels each pixel with the fixture colour nearest to it (the fixture
    paints class ``CITY_USED[k]`` with ``CODE[k]``), except the license plate (34), which it
    never predicts (like a 19-trainId network)."""
    conv = torch.nn.Conv2d(3, 35, 1)
    with torch.no_grad():
        conv.weight.zero_()
        conv.bias.fill_(-1e4)
        for k, cls in enumerate(CITY_USED):
            if cls == 34:
                continue
            code = torch.tensor(CODE[k], dtype=torch.float32) / 127.5 - 1
            conv.weight[cls, :, 0, 0] = 2 * code
            conv.bias[cls] = -(code**2).sum()
    torch.jit.script(conv).save(str(path))
    return conv


def _trainid_miou(pred: np.ndarray, target: np.ndarray) -> float:
    """cityscapesScripts' rule from a 35×35 labelId confusion matrix: IoU of each evaluated class
    with false positives counted on evaluated rows only (numpy, independent of ganblocks)."""
    keep = target != 0
    conf = np.zeros((35, 35), dtype=np.int64)
    np.add.at(conf, (target[keep], pred[keep]), 1)
    ev = list(CITYSCAPES_EVAL_LABEL_IDS)
    ious = []
    for c in ev:
        tp = conf[c, c]
        union = conf[c].sum() + conf[ev, c].sum() - tp
        if union:
            ious.append(tp / union)
    return float(np.mean(ious))


def test_cityscapes_miou_is_scored_on_the_19_trainids(tmp_path):
    root = tmp_path / "cityscapes"
    make_cityscapes(root, np.random.default_rng(0))
    cfg = apply_overrides(get_preset("cityscapes"), [*TINY_CITY, f"data.root={root}"])
    run = tmp_path / "run"
    OCOGANTrainer(cfg, run, progress=False).fit(steps=0)  # a checkpoint is enough
    seg = _colour_segmenter(tmp_path / "seg.pt")
    res = evaluate_run(run, segmenter=tmp_path / "seg.pt", repeats=1, features="randconv",
                       kid_subsets=2)
    assert res["miou_classes"]["protocol"] == "cityscapes-19-trainids"
    assert res["miou_classes"]["label_ids"] == list(CITYSCAPES_EVAL_LABEL_IDS)
    assert list(res["iou_per_class"]) == list(evaluated_classes("cityscapes", 35, 0).names)

    val = build_dataset("cityscapes", root, split="val", resolution=(16, 32))
    images = torch.stack([val[i]["image"] for i in range(len(val))])
    labels = torch.stack([val[i]["label"] for i in range(len(val))]).numpy()
    with torch.no_grad():
        real_pred = seg(images).argmax(1).numpy()
    assert res["segmenter"]["miou_real"] == pytest.approx(_trainid_miou(real_pred, labels))

    # The conditional samples of set 0 (seed 0): z_u [2, z], then z_c [2, z], EMA weights.
    state = torch.load(run / "checkpoint.pt", weights_only=False)
    G = Generator(OCOGANConfig.from_dict(state["config"]).model)
    G.load_state_dict({k[len("shadow."):]: v for k, v in state["G_ema"].items()
                       if k.startswith("shadow.")})
    G.eval()
    gen = torch.Generator().manual_seed(0)
    torch.randn(2, 8, generator=gen)
    z_c = torch.randn(2, 8, generator=gen)
    with torch.no_grad():
        pred = seg(G(label=torch.from_numpy(labels), z=z_c).clamp(-1, 1)).argmax(1).numpy()
    assert res["metrics"]["mIoU"]["values"][0] == pytest.approx(_trainid_miou(pred, labels))

    every = evaluate_run(run, segmenter=tmp_path / "seg.pt", repeats=1, features="randconv",
                         kid_subsets=2, miou_classes="all", write=False)
    assert every["miou_classes"]["num_classes"] == 34
    assert every["segmenter"]["miou_real"] < res["segmenter"]["miou_real"]  # plate pixels lost


def test_stagewise_runs_keep_both_branches():
    """A run started from another run's weights (train.init_from) or with frozen parts
    (train.freeze) trained its other branch in an earlier stage: nothing is skipped."""
    from types import SimpleNamespace

    from recipes.oco_gan.evaluate import _stagewise

    assert not _stagewise(get_preset("demo"))
    assert _stagewise(SimpleNamespace(train=SimpleNamespace(freeze=("synthesis",))))
    assert _stagewise(SimpleNamespace(train=SimpleNamespace(init_from="runs/stage1")))
