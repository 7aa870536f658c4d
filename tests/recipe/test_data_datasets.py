"""Real data-set loaders on miniature copies of each distributed layout, written into tmp_path.

Every fixture image is painted with a colour per class of its label map, so a loaded pair can be
checked for alignment (pairing, resizing, flipping) by classifying each pixel by its colour.
The archives' other files (colour/instance maps, polygons, _inst folders, txt files) are written
too, and several of them would make the loader fail if it picked them up.
"""

from __future__ import annotations

import json
import pickle
import shutil
from itertools import islice
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from recipes.oco_gan.data import (
    CELEBAMASK_HQ_PARTS,
    DATASETS,
    InfiniteSampler,
    SplitDataset,
    build_dataset,
    make_split,
)

# colours far apart, so that JPEG artefacts never turn one into another
CODE = np.array(
    [[0, 0, 0], [255, 0, 0], [0, 255, 0], [0, 0, 255], [255, 255, 0], [255, 0, 255],
     [0, 255, 255], [255, 255, 255]],
    dtype=np.uint8,
)  # fmt: skip


def blocky(rng, hw, values, block=8):
    """A random, left-right asymmetric map of ``values`` made of ``block``-pixel squares."""
    while True:
        grid = rng.choice(values, (hw[0] // block, hw[1] // block))
        if not np.array_equal(grid, grid[:, ::-1]):
            return np.kron(grid, np.ones((block, block), dtype=np.int64))


def paint(classes, used):
    """RGB image whose colour at each pixel encodes its class (``used[k]`` gets ``CODE[k]``)."""
    lut = np.zeros(int(max(used)) + 1, dtype=np.int64)
    lut[list(used)] = np.arange(len(used))
    return CODE[lut[classes]]


def save_img(path, rgb):
    path.parent.mkdir(parents=True, exist_ok=True)
    if path.suffix == ".jpg":
        Image.fromarray(rgb).save(path, quality=95, subsampling=0)
    else:
        Image.fromarray(rgb).save(path)


def save_label(path, label, dtype=np.uint8):
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(label.astype(dtype)).save(path)


def agreement(item, used):
    """Share of pixels whose colour decodes to their label (1.0 = image and label aligned)."""
    rgb = ((item["image"].permute(1, 2, 0).numpy() + 1) * 127.5).astype(np.float64)
    dist = ((rgb[:, :, None, :] - CODE[None, None, : len(used)].astype(np.float64)) ** 2).sum(-1)
    decoded = np.asarray(used)[dist.argmin(-1)]
    return float((decoded == item["label"].numpy()).mean())


# --- the layouts ------------------------------------------------------------------------------

CITY_USED = (0, 7, 11, 21, 23, 26, 34)


def make_cityscapes(root: Path, rng):
    expected = {}
    for split, cities in {"train": {"aachen": 2, "bochum": 1}, "val": {"frankfurt": 2}}.items():
        for city, n in cities.items():
            for k in range(n):
                stem = f"{city}_{k:06d}_000019"
                lab = blocky(rng, (32, 64), CITY_USED)
                gt = root / "gtFine" / split / city
                save_label(gt / f"{stem}_gtFine_labelIds.png", lab)
                save_img(gt / f"{stem}_gtFine_color.png", paint(lab, CITY_USED))
                save_label(gt / f"{stem}_gtFine_instanceIds.png", lab * 1000 + 1, np.uint16)
                (gt / f"{stem}_gtFine_polygons.json").write_text(json.dumps({"objects": []}))
                img = root / "leftImg8bit" / split / city / f"{stem}_leftImg8bit.png"
                save_img(img, paint(lab, CITY_USED))
                expected[(split, str(img.relative_to(root)))] = lab
    extra = root / "leftImg8bit/train_extra/augsburg/augsburg_000000_000001_leftImg8bit.png"
    save_img(extra, paint(blocky(rng, (32, 64), CITY_USED), CITY_USED))
    (root / "license.txt").write_text("fixture")
    return expected


ADE_USED = (0, 1, 3, 77, 150)
#: Scene of each fixture image, as ``sceneCategories.txt`` lists them (train and val together).
ADE_SCENES = {"ADE_train_00000001": "airport_terminal", "ADE_train_00000002": "bedroom",
              "ADE_train_00000003": "street", "ADE_val_00000001": "bedroom"}


def make_ade20k(root: Path, rng):
    expected = {}
    for split, n in (("training", 3), ("validation", 1)):
        for k in range(1, n + 1):
            stem = f"ADE_{'train' if split == 'training' else 'val'}_{k:08d}"
            lab = blocky(rng, (32, 32), ADE_USED)
            save_label(root / "annotations" / split / f"{stem}.png", lab)
            save_img(root / "images" / split / f"{stem}.jpg", paint(lab, ADE_USED))
            expected[(split, stem)] = lab
    (root / "sceneCategories.txt").write_text(
        "".join(f"{stem} {scene}\n" for stem, scene in ADE_SCENES.items()))
    (root / "objectInfo150.txt").write_text("Idx\tRatio\tTrain\tVal\tName\n")
    return expected


COCO_RAW = (0, 5, 100, 181, 255)  # raw stuffthingmaps values → classes 1, 6, 101, 182, 0


def make_coco_stuff(root: Path, rng):
    expected = {}
    for split, n in (("train", 3), ("val", 2)):
        for k in range(n):
            stem = f"{k * 9 + 9:012d}"
            raw = blocky(rng, (32, 32), COCO_RAW)
            save_label(root / f"{split}_label" / f"{stem}.png", raw)
            save_label(root / f"{split}_inst" / f"{stem}.png", raw * 300, np.uint16)
            remapped = np.where(raw == 255, 0, raw + 1)
            save_img(root / f"{split}_img" / f"{stem}.jpg", paint(remapped, COCO_USED))
            expected[(split, stem)] = remapped
    return expected


COCO_USED = (0, 1, 6, 101, 182)

CELEBA_IDS = {0: 100, 1: 170_000, 2001: 190_000, 4005: 5}  # HQ id → CelebA original index
CELEBA_USED = (0, 1, 2, 4, 10, 13, 14, 18)  # background, skin, nose, l_eye, mouth, hair, hat, cloth


def make_celebamask_hq(root: Path, rng):
    """Part masks in which earlier parts cover the regions of later ones (skin under the nose,
    hair under the hat): only the dataset's order (later overwrites earlier) gives the map back."""
    expected = {}
    lines = ["idx         orig_idx    orig_file"]
    for idx, orig in CELEBA_IDS.items():
        lines.append(f"{idx:<12d}{orig:<12d}{orig + 1:06d}.jpg")
        target = blocky(rng, (16, 16), CELEBA_USED, block=4)
        cover = rng.random((16, 16)) < 0.7
        for k, part in enumerate(CELEBAMASK_HQ_PARTS):
            c = k + 1
            mask = (target == c) | ((target > c) & cover)
            if mask.any():
                path = root / "CelebAMask-HQ-mask-anno" / str(idx // 2000) / f"{idx:05d}_{part}.png"
                save_label(path, mask * 255)
        big = np.kron(target, np.ones((2, 2), dtype=np.int64))  # images 2x the masks' size
        save_img(root / "CelebA-HQ-img" / f"{idx}.jpg", paint(big, CELEBA_USED))
        expected[idx] = target
    (root / "CelebA-HQ-to-CelebA-mapping.txt").write_text("\n".join(lines) + "\n")
    (root / "CelebAMask-HQ-attribute-anno.txt").write_text("30000\n")
    (root / "README.txt").write_text("fixture")
    return expected


FOLDER_USED = (0, 1, 2, 5)


def make_folder(root: Path, rng, names=("a.png", "b.jpg", "c.jpeg")):
    expected = {}
    for name in names:
        lab = blocky(rng, (24, 32), FOLDER_USED)
        save_img(root / "images" / name, paint(lab, FOLDER_USED))
        save_label(root / "labels" / f"{Path(name).stem}.png", lab)
        expected[Path(name).stem] = lab
    return expected


@pytest.fixture
def rng():
    return np.random.default_rng(0)


# --- pairing, remapping, sizes -----------------------------------------------------------------


def test_cityscapes_pairs_labelids_only(tmp_path, rng):
    expected = make_cityscapes(tmp_path, rng)
    for split, n in (("train", 3), ("val", 2)):
        ds = build_dataset("cityscapes", tmp_path, split=split, resolution=(32, 64))
        assert len(ds) == n and ds.num_classes == 35 and ds.dontcare_index == 0
        assert ds.item_names == sorted(ds.item_names)
        for i in range(n):
            item = ds[i]
            lab = expected[(split, ds.item_names[i])]
            assert torch.equal(item["label"], torch.from_numpy(lab))
            assert agreement(item, CITY_USED) > 0.99
    ds = build_dataset("cityscapes", tmp_path)  # default: 256x512
    assert ds.resolution == (256, 512) and ds[0]["image"].shape == (3, 256, 512)


def test_cityscapes_resize_and_extra(tmp_path, rng):
    expected = make_cityscapes(tmp_path, rng)
    ds = build_dataset("cityscapes", tmp_path, split="train", resolution=(16, 32))
    item = ds[1]
    assert item["image"].shape == (3, 16, 32) and item["label"].shape == (16, 32)
    lab = expected[("train", ds.item_names[1])]
    assert torch.equal(item["label"], torch.from_numpy(lab[::2, ::2]))  # nearest on 8-px blocks
    assert agreement(item, CITY_USED) > 0.9  # bicubic blurs the block edges only
    ext = build_dataset("cityscapes", tmp_path, split="train", resolution=(16, 32), extra=True)
    assert len(ext) == 4 and ext.labelled_mask.tolist() == [True, True, True, False]
    assert ext[3]["has_label"] is False and not ext[3]["label"].any()
    with pytest.raises(ValueError, match="extra"):
        build_dataset("cityscapes", tmp_path, split="val", extra=True)


def test_ade20k(tmp_path, rng):
    expected = make_ade20k(tmp_path, rng)
    ds = build_dataset("ade20k", tmp_path, split="train", resolution=32)
    assert len(ds) == 3 and ds.num_classes == 151 and len(ds.class_names) == 151
    for i in range(3):
        stem = Path(ds.item_names[i]).stem
        assert torch.equal(ds[i]["label"], torch.from_numpy(expected[("training", stem)]))
        assert agreement(ds[i], ADE_USED) > 0.97
    val = build_dataset("ade20k", tmp_path, split="val", resolution=(16, 16))
    assert len(val) == 1 and val[0]["label"].shape == (16, 16)


def test_coco_stuff_remaps_labels(tmp_path, rng):
    expected = make_coco_stuff(tmp_path, rng)
    ds = build_dataset("coco_stuff", tmp_path, split="train", resolution=32)
    assert len(ds) == 3 and ds.num_classes == 183 and ds.dontcare_index == 0
    seen = set()
    for i in range(3):
        stem = Path(ds.item_names[i]).stem
        label = ds[i]["label"]
        assert torch.equal(label, torch.from_numpy(expected[("train", stem)]))  # +1, 255 → 0
        assert agreement(ds[i], COCO_USED) > 0.97
        seen |= set(label.unique().tolist())
    assert {0, 182} <= seen
    assert len(build_dataset("coco_stuff", tmp_path, split="val")) == 2


def test_celebamask_hq_merges_parts_in_order(tmp_path, rng):
    expected = make_celebamask_hq(tmp_path, rng)
    ds = build_dataset("celebamask_hq", tmp_path, split="all", resolution=16)
    assert len(ds) == 4 and ds.num_classes == 19 and ds.class_names[13] == "hair"
    for i, idx in enumerate(sorted(CELEBA_IDS)):
        item = ds[i]
        assert torch.equal(item["label"], torch.from_numpy(expected[idx]))
        assert agreement(item, CELEBA_USED) > 0.97
    # the fixture does test the order: painting the parts in reverse gives another map
    masks = ds.labels[0].parts
    reverse = np.zeros((16, 16), dtype=np.int64)
    for cls, path in reversed(masks):
        reverse[np.asarray(Image.open(path)) > 127] = cls
    assert not np.array_equal(reverse, expected[0])
    # masks are half the images' size: at native size the label map is upsampled to the image
    native = build_dataset("celebamask_hq", tmp_path, split="all")[0]
    assert native["image"].shape == (3, 256, 256)
    full = build_dataset("celebamask_hq", tmp_path, split="all", resolution=32)[2]
    assert torch.equal(full["label"], torch.from_numpy(np.kron(expected[2001], np.ones((2, 2)))))


def test_celebamask_hq_official_split(tmp_path, rng):
    make_celebamask_hq(tmp_path, rng)
    ids = {}
    for split in ("train", "val", "test"):
        ds = build_dataset("celebamask_hq", tmp_path, split=split, resolution=16)
        ids[split] = [ds.labels[i].image_index for i in range(len(ds))]
    assert ids == {"train": [0, 4005], "val": [1], "test": [2001]}
    (tmp_path / "CelebA-HQ-to-CelebA-mapping.txt").unlink()
    with pytest.raises(FileNotFoundError, match=r"CelebA-HQ-to-CelebA-mapping\.txt"):
        build_dataset("celebamask_hq", tmp_path, split="train")
    assert len(build_dataset("celebamask_hq", tmp_path, split="all")) == 4


def test_folder_layouts(tmp_path, rng):
    expected = make_folder(tmp_path, rng)
    ds = build_dataset("folder", tmp_path, num_classes=6, resolution=(24, 32))
    assert len(ds) == 3 and ds.num_classes == 6 and ds.dontcare_index is None
    for i in range(3):
        stem = Path(ds.item_names[i]).stem
        assert torch.equal(ds[i]["label"], torch.from_numpy(expected[stem]))
        assert agreement(ds[i], FOLDER_USED) > 0.97
    native = build_dataset("folder", tmp_path, num_classes=6)
    assert native.resolution is None and native[0]["image"].shape == (3, 24, 32)
    named = build_dataset(
        "folder", tmp_path, num_classes=6, dontcare_index=0, class_names=list("abcdef")
    )
    assert named.class_names[5] == "f" and named.dontcare_index == 0
    with pytest.raises(FileNotFoundError, match="val"):
        build_dataset("folder", tmp_path, split="val", num_classes=6)
    with pytest.raises(ValueError, match="num_classes is required"):
        build_dataset("folder", tmp_path)
    # with split sub-folders
    make_folder(tmp_path / "split_root" / "val", rng, names=("x.png",))
    make_folder(tmp_path / "split_root" / "train", rng, names=("y.png", "z.png"))
    assert len(build_dataset("folder", tmp_path / "split_root", split="val", num_classes=6)) == 1
    assert len(build_dataset("folder", tmp_path / "split_root", num_classes=6)) == 2


def test_folder_unlabelled_images(tmp_path, rng):
    make_folder(tmp_path, rng)
    (tmp_path / "labels" / "b.png").unlink()
    with pytest.raises(FileNotFoundError, match=r"b\.jpg has no label map.*labels/b\.png"):
        build_dataset("folder", tmp_path, num_classes=6)
    ds = build_dataset("folder", tmp_path, num_classes=6, allow_unlabelled=True)
    assert ds.labelled_mask.tolist() == [True, False, True]
    assert ds[1]["has_label"] is False and ds[0]["has_label"] is True


# --- joint flip ------------------------------------------------------------------------------


BUILDERS = {
    "cityscapes": (make_cityscapes, CITY_USED, {}),
    "ade20k": (make_ade20k, ADE_USED, {}),
    "coco_stuff": (make_coco_stuff, COCO_USED, {}),
    "celebamask_hq": (make_celebamask_hq, CELEBA_USED, {"split": "all"}),
    "folder": (make_folder, FOLDER_USED, {"num_classes": 6}),
}


@pytest.mark.parametrize("name", sorted(BUILDERS))
def test_joint_flip_keeps_image_and_label_aligned(tmp_path, rng, name):
    make, used, kwargs = BUILDERS[name]
    make(tmp_path, rng)
    hw = (16, 32) if name == "cityscapes" else (16, 16)
    ds = build_dataset(name, tmp_path, resolution=hw, flip=True, seed=0, **kwargs)
    plain, flipped = ds[(0, False)], ds[(0, True)]
    assert torch.equal(flipped["label"], plain["label"].flip(-1))
    assert torch.equal(flipped["image"], plain["image"].flip(-1))
    assert not torch.equal(flipped["label"], plain["label"])  # the fixture is asymmetric
    outcomes = set()
    for _ in range(12):  # random flips: each draw is aligned, and both outcomes occur
        item = ds[0]
        assert agreement(item, used) > 0.85
        outcomes.add(bool(torch.equal(item["label"], plain["label"])))
    assert outcomes == {True, False}


# --- errors ----------------------------------------------------------------------------------


def test_missing_folders_are_named(tmp_path, rng):
    with pytest.raises(FileNotFoundError, match="cityscapes root: folder not found"):
        build_dataset("cityscapes", tmp_path / "nowhere")
    make_cityscapes(tmp_path, rng)
    shutil.rmtree(tmp_path / "gtFine" / "val")
    with pytest.raises(FileNotFoundError, match=r"gtFine.*folder not found: .*gtFine/val"):
        build_dataset("cityscapes", tmp_path, split="val")


def test_wrong_layout_names_the_expected_folder(tmp_path, rng):
    make_coco_stuff(tmp_path, rng)
    with pytest.raises(FileNotFoundError, match=r"ade20k images: folder not found: .*images"):
        build_dataset("ade20k", tmp_path)


def test_image_without_label_is_named(tmp_path, rng):
    make_cityscapes(tmp_path, rng)
    gone = tmp_path / "gtFine/train/bochum/bochum_000000_000019_gtFine_labelIds.png"
    gone.unlink()
    with pytest.raises(FileNotFoundError, match=r"bochum_000000_000019_leftImg8bit\.png has no"):
        build_dataset("cityscapes", tmp_path)
    make_ade20k(tmp_path / "ade", rng)
    (tmp_path / "ade/annotations/training/ADE_train_00000002.png").unlink()
    with pytest.raises(FileNotFoundError, match=r"ADE_train_00000002\.jpg has no label map"):
        build_dataset("ade20k", tmp_path / "ade")
    make_celebamask_hq(tmp_path / "celeba", rng)
    for p in (tmp_path / "celeba/CelebAMask-HQ-mask-anno/1").glob("02001_*.png"):
        p.unlink()
    with pytest.raises(FileNotFoundError, match=r"2001\.jpg has no label map"):
        build_dataset("celebamask_hq", tmp_path / "celeba", split="all")


def test_label_without_image_is_a_count_mismatch(tmp_path, rng):
    make_coco_stuff(tmp_path, rng)
    save_label(tmp_path / "train_label" / "000000999999.png", np.zeros((8, 8)))
    with pytest.raises(ValueError, match=r"mismatched counts.*3 images but 4.*000000999999\.png"):
        build_dataset("coco_stuff", tmp_path)
    make_cityscapes(tmp_path / "city", rng)
    (tmp_path / "city/leftImg8bit/val/frankfurt/frankfurt_000001_000019_leftImg8bit.png").unlink()
    with pytest.raises(ValueError, match=r"mismatched counts.*frankfurt_000001_000019_gtFine"):
        build_dataset("cityscapes", tmp_path / "city", split="val")


@pytest.mark.parametrize(
    ("name", "bad_value", "kwargs"),
    [("cityscapes", 35, {}), ("ade20k", 151, {}), ("coco_stuff", 182, {}),
     ("folder", 6, {"num_classes": 6})],
)  # fmt: skip
def test_label_value_out_of_range_is_named(tmp_path, rng, name, bad_value, kwargs):
    make, _, _ = BUILDERS[name]
    make(tmp_path, rng)
    ds = build_dataset(name, tmp_path, resolution=16, **kwargs)
    path = ds.labels[1]
    raw = np.asarray(Image.open(path)).copy()
    raw[3, 5] = bad_value
    save_label(Path(path), raw)
    ds[0]  # other items still load
    with pytest.raises(ValueError, match=rf"{Path(path).name}.* {bad_value} "):
        ds[1]
    with pytest.raises(ValueError, match=Path(path).name):
        ds.validate()


def test_bad_arguments(tmp_path, rng):
    make_ade20k(tmp_path, rng)
    with pytest.raises(ValueError, match="name must be one of"):
        build_dataset("imagenet", tmp_path)
    with pytest.raises(ValueError, match="split for ade20k"):
        build_dataset("ade20k", tmp_path, split="test")
    with pytest.raises(ValueError, match="151 classes"):
        build_dataset("ade20k", tmp_path, num_classes=150)
    with pytest.raises(ValueError, match="only be set for 'folder'"):
        build_dataset("ade20k", tmp_path, dontcare_index=None, class_names=["x"])
    with pytest.raises(ValueError, match="root"):
        build_dataset("ade20k")
    assert set(DATASETS) == {
        "synthetic", "cityscapes", "ade20k", "coco_stuff", "celebamask_hq", "folder",
    }  # fmt: skip


def test_split_dataset_on_real_layout(tmp_path, rng):
    make_cityscapes(tmp_path, rng)
    ds = build_dataset("cityscapes", tmp_path, resolution=(16, 32), extra=True)
    split = make_split(len(ds), regime="semi", labelled=2, seed=0, labelled_pool=[0, 1, 2])
    view = SplitDataset(ds, split)
    assert len(view) == 4 and len(view.labelled_positions) == 2
    assert 3 not in view.labelled_positions  # the train_extra image never gets a label
    assert sum(view[i]["has_label"] for i in range(4)) == 2
    batch = torch.utils.data.default_collate([view[i] for i in range(4)])
    assert batch["image"].shape == (4, 3, 16, 32) and batch["has_label"].sum() == 2


def test_worker_processes_and_pickling(tmp_path, rng):
    make_celebamask_hq(tmp_path, rng)
    ds = build_dataset("celebamask_hq", tmp_path, split="all", resolution=16, flip=True)
    clone = pickle.loads(pickle.dumps(ds))
    assert torch.equal(clone[(2, True)]["label"], ds[(2, True)]["label"])
    sampler = InfiniteSampler(len(ds), seed=0, flip=True)
    keys = list(islice(iter(sampler), 4))
    loader = torch.utils.data.DataLoader(ds, batch_size=4, sampler=sampler, num_workers=2)
    batch = next(iter(loader))  # items built in worker processes: same keys, same tensors
    expected = torch.utils.data.default_collate([ds[k] for k in keys])
    assert torch.equal(batch["image"], expected["image"])
    assert torch.equal(batch["label"], expected["label"])
