"""ganblocks.data: palette, pair transforms, the paired data set and the infinite sampler."""

from __future__ import annotations

import pickle
from itertools import islice

import numpy as np
import pytest
import torch
from hypothesis import given
from hypothesis import strategies as st
from PIL import Image

from ganblocks.data import (
    FlipRNG,
    InfiniteSampler,
    PairedImageLabelDataset,
    colorize_labels,
    hflip_pair,
    image_to_tensor,
    load_label_map,
    make_palette,
    parse_resolution,
    resize_label,
)

# --- palette ----------------------------------------------------------------------------------


@pytest.mark.parametrize("n", [1, 2, 19, 151, 256])
def test_palette_colours_are_distinct(n):
    pal = make_palette(n)
    assert pal.shape == (n, 3) and pal.dtype == np.uint8
    assert len({tuple(c) for c in pal.tolist()}) == n
    assert pal[0].tolist() == [0, 0, 0]


def test_palette_bit_rule():
    # class 0b101_011 (= 43): group 0 holds bits (1, 1, 0), group 1 holds (1, 0, 1)
    r, g, b = make_palette(44)[43].tolist()
    assert (r, g, b) == (128 + 64, 128, 64)


def test_colorize_numpy_and_torch_agree():
    lab = np.random.default_rng(0).integers(0, 7, (2, 5, 6))
    out_np = colorize_labels(lab, 7)
    out_t = colorize_labels(torch.from_numpy(lab), 7, channels_first=True)
    assert out_np.shape == (2, 5, 6, 3) and out_t.shape == (2, 3, 5, 6)
    assert out_t.dtype == torch.uint8
    np.testing.assert_array_equal(out_t.permute(0, 2, 3, 1).numpy(), out_np)
    np.testing.assert_array_equal(out_np, make_palette(7)[lab])


def test_colorize_custom_palette_and_errors():
    pal = np.array([[1, 2, 3], [4, 5, 6]])
    assert colorize_labels(np.array([[1, 0]]), palette=pal).tolist() == [[[4, 5, 6], [1, 2, 3]]]
    with pytest.raises(ValueError, match=r"label values must lie in \[0, 2\)"):
        colorize_labels(np.array([[2]]), palette=pal)
    with pytest.raises(TypeError, match="integer dtype"):
        colorize_labels(np.zeros((2, 2)), 3)
    with pytest.raises(ValueError, match="num_classes or palette"):
        colorize_labels(np.zeros((2, 2), int))


# --- transforms --------------------------------------------------------------------------------


def test_parse_resolution():
    assert parse_resolution(8) == (8, 8)
    assert parse_resolution([4, 8]) == (4, 8)
    with pytest.raises(TypeError, match="resolution"):
        parse_resolution((4, 8, 2))
    with pytest.raises(ValueError, match="positive"):
        parse_resolution((0, 8))


@given(
    h=st.integers(1, 6), w=st.integers(1, 6), fy=st.integers(1, 4), fx=st.integers(1, 4),
    seed=st.integers(0, 100),
)  # fmt: skip
def test_resize_label_integer_factors_repeat_and_sample(h, w, fy, fx, seed):
    lab = np.random.default_rng(seed).integers(0, 300, (h, w))
    up = resize_label(lab, (h * fy, w * fx))
    np.testing.assert_array_equal(up, np.kron(lab, np.ones((fy, fx), dtype=np.int64)))
    # nearest downsampling of a block image gives back the blocks
    np.testing.assert_array_equal(resize_label(up, (h, w)), lab)


def test_image_to_tensor_range():
    arr = np.array([[[0, 128, 255]]], dtype=np.uint8)
    t = image_to_tensor(arr)
    assert t.shape == (3, 1, 1) and t.dtype == torch.float32
    torch.testing.assert_close(t[:, 0, 0], torch.tensor([-1.0, 128 / 127.5 - 1, 1.0]))


def test_hflip_pair_keeps_alignment():
    lab = torch.randint(0, 5, (2, 4, 7))
    img = lab[:, None].float().expand(2, 3, 4, 7)  # colour encodes the label
    fi, fl = hflip_pair(img, lab)
    assert torch.equal(fi[:, 0].long(), fl)
    assert torch.equal(fl, lab.flip(-1))
    with pytest.raises(ValueError, match="sizes differ"):
        hflip_pair(img, lab[..., :-1])


def test_load_label_map_modes(tmp_path):
    ids = np.array([[0, 1, 2], [3, 250, 7]], dtype=np.uint8)
    Image.fromarray(ids, mode="L").save(tmp_path / "l.png")
    p = Image.fromarray(ids, mode="P")
    p.putpalette(make_palette(256).ravel().tolist())
    p.save(tmp_path / "p.png")
    Image.fromarray(np.stack([ids] * 3, -1)).save(tmp_path / "grey_rgb.png")
    Image.fromarray(np.array([[1000, 2]], dtype=np.uint16)).save(tmp_path / "i16.png")
    for name in ("l.png", "p.png", "grey_rgb.png"):
        np.testing.assert_array_equal(load_label_map(tmp_path / name), ids)
    assert load_label_map(tmp_path / "i16.png").tolist() == [[1000, 2]]
    Image.fromarray(make_palette(6)[ids % 6]).save(tmp_path / "colour.png")
    with pytest.raises(ValueError, match=r"colour\.png.*colour channels"):
        load_label_map(tmp_path / "colour.png")
    with pytest.raises(FileNotFoundError, match=r"nope\.png"):
        load_label_map(tmp_path / "nope.png")


# --- paired data set ---------------------------------------------------------------------------


def _write_pair(folder, stem, label, n_colours):
    """Label ``[H, W]`` and an image whose colour encodes it (palette colour per class)."""
    Image.fromarray(label.astype(np.uint8)).save(folder / f"{stem}_label.png")
    Image.fromarray(make_palette(n_colours)[label]).save(folder / f"{stem}.png")
    return folder / f"{stem}.png", folder / f"{stem}_label.png"


def test_paired_dataset_lut_and_errors(tmp_path):
    lab = np.array([[0, 1, 1, 255], [0, 1, 1, 255]])
    img, lpath = _write_pair(tmp_path, "a", lab, 256)
    lut = np.full(256, -1)
    lut[0], lut[1], lut[255] = 1, 2, 0
    ds = PairedImageLabelDataset([img], [lpath], num_classes=3, label_lut=lut)
    assert ds[0]["label"].tolist() == [[1, 2, 2, 0], [1, 2, 2, 0]]
    lut[1] = -1
    with pytest.raises(ValueError, match=r"a_label\.png: raw value 1 has no class"):
        PairedImageLabelDataset([img], [lpath], num_classes=3, label_lut=lut)[0]
    with pytest.raises(ValueError, match=r"a_label\.png: value 255 is outside the class range"):
        PairedImageLabelDataset([img], [lpath], num_classes=3)[0]
    with pytest.raises(ValueError, match="same length"):
        PairedImageLabelDataset([img], [], num_classes=3)
    wrong = tmp_path / "wide.png"
    Image.fromarray(np.zeros((2, 8), np.uint8)).save(wrong)
    with pytest.raises(ValueError, match="aspect ratios"):
        PairedImageLabelDataset([img], [wrong], num_classes=3)[0]


def test_paired_dataset_flip_keys_and_unlabelled(tmp_path):
    rng = np.random.default_rng(1)
    lab = np.kron(rng.integers(0, 4, (2, 3)), np.ones((4, 4), int))  # 8x12, asymmetric
    img, lpath = _write_pair(tmp_path, "a", lab, 4)
    ds = PairedImageLabelDataset([img, img], [lpath, None], num_classes=4, flip=True, seed=3)
    plain, flipped = ds[(0, False)], ds[(0, True)]
    assert torch.equal(plain["label"], torch.from_numpy(lab))
    assert torch.equal(flipped["label"], plain["label"].flip(-1))
    assert torch.equal(flipped["image"], plain["image"].flip(-1))
    seen = {bool(torch.equal(ds[0]["label"], plain["label"])) for _ in range(20)}
    assert seen == {True, False}  # random flips happen, and both outcomes occur
    unl = ds[1]
    assert unl["has_label"] is False and not unl["label"].any() and unl["label"].shape == (8, 12)
    assert ds[-1]["index"] == 1
    with pytest.raises(IndexError):
        ds[2]
    ds2 = pickle.loads(pickle.dumps(ds))
    assert torch.equal(ds2[(0, True)]["image"], flipped["image"])


def test_flip_rng_seeded_and_fair():
    a, b = FlipRNG(seed=5), FlipRNG(seed=5)
    xs = [a.coin() for _ in range(400)]
    assert xs == [b.coin() for _ in range(400)]
    assert 150 < sum(xs) < 250


# --- infinite sampler --------------------------------------------------------------------------


def _take(sampler, k):
    return list(islice(iter(sampler), k))


@given(
    n=st.integers(1, 13), world=st.integers(1, 4), seed=st.integers(0, 10**6),
    steps=st.integers(1, 6), batch=st.integers(1, 3), flip=st.booleans(),
)  # fmt: skip
def test_sampler_sharding_matches_single_process(n, world, seed, steps, batch, flip):
    total = steps * batch * world
    single = _take(InfiniteSampler(n, seed=seed, flip=flip), total)
    ranks = [
        _take(InfiniteSampler(n, rank=r, world_size=world, seed=seed, flip=flip), steps * batch)
        for r in range(world)
    ]
    # rank r reads global positions r, r + W, ...: interleaving the ranks gives the single stream
    assert [ranks[p % world][p // world] for p in range(total)] == single
    keys = [k[0] if flip else k for k in single]
    for e in range(total // n):  # every full epoch is a permutation
        assert sorted(keys[e * n : (e + 1) * n]) == list(range(n))


@given(n=st.integers(1, 9), start=st.integers(0, 30), world=st.integers(1, 3))
def test_sampler_resume_with_start(n, start, world):
    full = _take(InfiniteSampler(n, rank=world - 1, world_size=world, seed=7, flip=True), start + 9)
    resumed = InfiniteSampler(n, rank=world - 1, world_size=world, seed=7, flip=True, start=start)
    assert _take(resumed, 9) == full[start:]


def test_sampler_keys_order_and_errors():
    keys = [10, 20, 30]
    out = _take(InfiniteSampler(keys, seed=0), 6)
    assert sorted(out[:3]) == keys and sorted(out[3:]) == keys
    assert _take(InfiniteSampler(3, shuffle=False), 7) == [0, 1, 2, 0, 1, 2, 0]
    assert _take(InfiniteSampler(50, seed=1), 50) != _take(InfiniteSampler(50, seed=2), 50)
    flips = [f for _, f in _take(InfiniteSampler(4, seed=0, flip=True), 400)]
    assert 150 < sum(flips) < 250
    with pytest.raises(ValueError, match="rank"):
        InfiniteSampler(3, rank=2, world_size=2)
    with pytest.raises(ValueError, match="items"):
        InfiniteSampler([])
    with pytest.raises(ValueError, match="start"):
        InfiniteSampler(3, start=-1)


def test_sampler_drives_a_dataloader(tmp_path):
    lab = np.kron(np.array([[0, 1, 2]]), np.ones((2, 2), int))
    img, lpath = _write_pair(tmp_path, "a", lab, 3)
    ds = PairedImageLabelDataset([img] * 4, [lpath] * 4, num_classes=3)
    loader = torch.utils.data.DataLoader(
        ds, batch_size=4, sampler=InfiniteSampler(4, seed=0, flip=True)
    )
    batch = next(iter(loader))
    assert batch["image"].shape == (4, 3, 2, 6) and batch["label"].shape == (4, 2, 6)
    assert sorted(batch["index"].tolist()) == [0, 1, 2, 3]
    assert batch["has_label"].dtype == torch.bool and batch["has_label"].all()
