"""Data regimes: seeded splits, presets, split files, and applying a split to a data set."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import numpy as np
import pytest
import torch
from hypothesis import given
from hypothesis import strategies as st

from recipes.oco_gan.data import (
    PAPER_PRESETS,
    SplitDataset,
    SyntheticScenes,
    load_or_make_split,
    load_split,
    make_split,
    resolve_sizes,
    save_split,
    seeded_order,
    split_for_dataset,
)


@given(
    n=st.integers(1, 300), seed=st.integers(0, 2**40), frac=st.floats(0.01, 1.0),
    regime=st.sampled_from(["full", "limited", "semi"]),
)  # fmt: skip
def test_split_sizes_and_invariants(n, seed, frac, regime):
    k = max(1, round(frac * n))
    kwargs = {"limited": {"subset": k}, "semi": {"labelled": k}, "full": {}}[regime]
    s = make_split(n, regime=regime, seed=seed, **kwargs)
    idx, lab = s["indices"], s["labelled_indices"]
    assert idx == sorted(set(idx)) and lab == sorted(set(lab)) and set(lab) <= set(idx)
    assert all(0 <= i < n for i in idx)
    expected = {"full": (n, n), "limited": (k, k), "semi": (n, k)}[regime]
    assert (len(idx), len(lab)) == expected
    assert json.loads(json.dumps(s)) == s  # JSON-serialisable as is
    assert make_split(n, regime=regime, seed=seed, **kwargs) == s  # deterministic


def test_seeds_differ_and_subsets_are_nested():
    a = make_split(1000, regime="limited", subset=100, seed=0)["indices"]
    b = make_split(1000, regime="limited", subset=100, seed=1)["indices"]
    assert a != b and len(set(a) & set(b)) < 50  # two seeds: nearly independent draws
    big = make_split(1000, regime="limited", subset=300, seed=0)["indices"]
    assert set(a) <= set(big)
    semi = make_split(1000, regime="semi", labelled=100, seed=0)["labelled_indices"]
    assert semi == a  # semi labelled items = limited subset of the same size and seed


def test_draw_is_uniform_enough():
    # every item is drawn about equally often over many seeds
    hits = np.zeros(40)
    for seed in range(500):
        hits[make_split(40, regime="limited", subset=10, seed=seed)["indices"]] += 1
    assert hits.min() > 80 and hits.max() < 170  # expectation 125


def test_order_ignores_global_rngs_and_processes():
    np.random.seed(1)
    torch.manual_seed(1)
    here = seeded_order(50, 7).tolist()
    code = (
        "import numpy as np, torch; np.random.seed(99); torch.manual_seed(99);"
        "from recipes.oco_gan.data import seeded_order; print(seeded_order(50, 7).tolist())"
    )
    env = {**os.environ, "PYTHONHASHSEED": "123"}
    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True, env=env
    )
    assert json.loads(out.stdout) == here


def test_fractions_and_pool():
    s = make_split(200, regime="limited", subset=0.1, seed=3)
    assert s["subset"] == 20 and len(s["indices"]) == 20
    pool = list(range(0, 200, 4))  # 50 labelled items
    s = make_split(200, regime="semi", labelled=0.2, seed=3, labelled_pool=pool)
    assert len(s["labelled_indices"]) == 10 and set(s["labelled_indices"]) <= set(pool)
    assert len(s["indices"]) == 200
    s = make_split(200, regime="full", labelled_pool=pool)
    assert s["labelled_indices"] == pool and len(s["indices"]) == 200
    s = make_split(200, regime="limited", subset=1.0, labelled_pool=pool)
    assert s["indices"] == pool  # the limited subset is drawn among labelled items


def test_make_split_errors():
    with pytest.raises(ValueError, match="regime must be one of"):
        make_split(10, regime="partial")
    with pytest.raises(ValueError, match="needs subset"):
        make_split(10, regime="limited")
    with pytest.raises(ValueError, match="needs labelled"):
        make_split(10, regime="semi")
    with pytest.raises(ValueError, match=r"subset must be in \[1, 10\]"):
        make_split(10, regime="limited", subset=11)
    with pytest.raises(ValueError, match=r"fraction must be in \(0, 1\]"):
        make_split(10, regime="semi", labelled=1.5)
    with pytest.raises(ValueError, match="only for the limited regime"):
        make_split(10, regime="full", subset=3)
    with pytest.raises(ValueError, match="labelled_pool"):
        make_split(10, regime="full", labelled_pool=[10])
    with pytest.raises(TypeError, match="num_items"):
        make_split(10.0)


def test_paper_presets():
    assert resolve_sizes("cityscapes", "limited") == (1.0, None)  # Cityscapes5K: all of gtFine
    assert resolve_sizes("coco_stuff", "limited") == (0.1, None)  # COCO-Stuff12K
    assert resolve_sizes("ade20k", "limited") == (0.2, None)  # ADE4K
    assert resolve_sizes("celebamask_hq", "limited") == (3000, None)
    semi = {name: resolve_sizes(name, "semi")[1] for name in PAPER_PRESETS}
    assert semi == {
        "cityscapes": 500, "celebamask_hq": 500, "ade20k": 2000, "coco_stuff": 2000,
        "synthetic": 200,
    }  # fmt: skip
    assert resolve_sizes("ade20k", "full") == (None, None)
    assert resolve_sizes("ade20k", "limited", subset=7) == (7, None)
    with pytest.raises(ValueError, match="needs subset"):
        resolve_sizes("folder", "limited")
    # the fractions give the paper's counts on the full train splits
    assert make_split(118_287, regime="limited", subset=0.1)["subset"] == 11_829  # ≈ 12K
    assert make_split(20_210, regime="limited", subset=0.2)["subset"] == 4_042  # ≈ 4K


def test_save_load_round_trip(tmp_path):
    s = make_split(57, regime="semi", labelled=9, seed=4, fingerprint="abc")
    path = tmp_path / "run" / "split.json"
    save_split(path, s)
    assert load_split(path) == s
    assert sorted(os.listdir(tmp_path / "run")) == ["split.json"]  # no temporary left behind
    s2 = make_split(57, regime="limited", subset=3)
    save_split(path, s2)  # overwrite atomically
    assert load_split(path) == s2


def test_load_split_errors(tmp_path):
    with pytest.raises(FileNotFoundError, match=r"nope\.json"):
        load_split(tmp_path / "nope.json")
    bad = tmp_path / "bad.json"
    bad.write_text("{not json")
    with pytest.raises(ValueError, match=r"bad\.json: not valid JSON"):
        load_split(bad)
    s = make_split(5, regime="semi", labelled=2)
    s["labelled_indices"] = [4, 1]
    bad.write_text(json.dumps(s))
    with pytest.raises(ValueError, match=r"bad\.json: labelled_indices must be sorted"):
        load_split(bad)
    s = make_split(5, regime="limited", subset=2)
    s["indices"] = [0, 7]
    bad.write_text(json.dumps(s))
    with pytest.raises(ValueError, match=r"ints in \[0, 5\)"):
        load_split(bad)
    with pytest.raises(ValueError, match="not a split"):
        save_split(bad, {"indices": []})


def test_split_dataset_limited_and_semi():
    base = SyntheticScenes(resolution=16, size=30)
    lim = SplitDataset(base, make_split(30, regime="limited", subset=6, seed=1))
    assert len(lim) == 6 and lim.labelled_positions == list(range(6))
    for pos, idx in enumerate(lim.indices):
        item = lim[pos]
        assert item["index"] == idx and torch.equal(item["label"], base[idx]["label"])
    assert lim.num_classes == base.num_classes and lim.resolution == (16, 16)

    split = make_split(30, regime="semi", labelled=5, seed=2)
    semi = SplitDataset(base, split)
    assert len(semi) == 30 and semi.labelled_positions == split["labelled_indices"]
    for pos in range(30):
        item = semi[pos]
        assert torch.equal(item["image"], base[pos]["image"])  # every image is used
        if pos in split["labelled_indices"]:
            assert item["has_label"] and torch.equal(item["label"], base[pos]["label"])
        else:
            assert item["has_label"] is False and not item["label"].any()
    flipped = semi[(split["labelled_indices"][0], True)]
    plain = semi[(split["labelled_indices"][0], False)]
    assert torch.equal(flipped["label"], plain["label"].flip(-1))


def test_split_dataset_checks_the_data_set():
    base = SyntheticScenes(resolution=16, size=30)
    with pytest.raises(ValueError, match="drawn for 31 items"):
        SplitDataset(base, make_split(31))
    s = split_for_dataset(base, regime="semi", labelled=3)
    other = SyntheticScenes(resolution=16, size=30, seed=5)
    with pytest.raises(ValueError, match="fingerprint"):
        SplitDataset(other, s)
    assert len(SplitDataset(base, s).labelled_positions) == 3


def test_load_or_make_split_reuses_and_guards(tmp_path):
    base = SyntheticScenes(resolution=16, size=300)
    path = tmp_path / "split.json"
    first = load_or_make_split(path, base, regime="semi", seed=3)  # synthetic preset: 200
    assert len(first["labelled_indices"]) == first["labelled"] == 200
    assert load_split(path) == first
    # a resumed run gets the saved split back, even if the draw would now differ
    saved = load_split(path)
    saved["labelled_indices"] = saved["labelled_indices"][:1]
    saved["labelled"] = first["labelled"]
    save_split(path, saved)
    again = load_or_make_split(path, base, regime="semi", seed=3)
    assert again["labelled_indices"] == saved["labelled_indices"]
    with pytest.raises(ValueError, match=r"split\.json: the saved split has seed=3"):
        load_or_make_split(path, base, regime="semi", seed=4)
    with pytest.raises(ValueError, match="regime="):
        load_or_make_split(path, base, regime="full", seed=3)


def test_semi_labelled_count_above_pool_is_an_error():
    base = SyntheticScenes(resolution=16, size=100)
    with pytest.raises(ValueError, match=r"labelled must be in \[1, 100\]"):
        split_for_dataset(base, regime="semi", labelled=200)
