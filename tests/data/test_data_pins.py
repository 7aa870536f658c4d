"""Pins of ganblocks.data found unchecked by mutation runs (issue 23): the sampler's stream (what
a resumed run reads), its argument checks and flip bits; the palette's argument handling."""

from __future__ import annotations

import hashlib
from itertools import islice

import numpy as np
import pytest
import torch

from ganblocks.data import InfiniteSampler, colorize_labels, make_palette


def _epoch_order(seed: int, epoch: int, n: int):
    """The stream's permutation and flip bits, written out: a CPU generator seeded with the
    63-bit little-endian BLAKE2b-64 digest of "seed:epoch", then randperm(n) and n coin flips."""
    digest = hashlib.blake2b(f"{seed}:{epoch}".encode(), digest_size=8).digest()
    gen = torch.Generator().manual_seed(int.from_bytes(digest, "little") % 2**63)
    perm = torch.randperm(n, generator=gen)
    return perm.tolist(), torch.randint(0, 2, (n,), generator=gen, dtype=torch.bool).tolist()


@pytest.mark.parametrize("seed", [0, 3, 12345])
def test_sampler_stream_is_stable_across_versions(seed):
    """A resumed run must read the same items as before an upgrade: the stream is pinned."""
    n, epochs = 7, 12
    expected_keys, expected_flips = [], []
    for e in range(epochs):
        perm, flips = _epoch_order(seed, e, n)
        expected_keys += perm
        expected_flips += flips
    got = list(islice(iter(InfiniteSampler(n, seed=seed, flip=True)), n * epochs))
    assert [k for k, _ in got] == expected_keys
    assert [f for _, f in got] == expected_flips
    assert all(type(f) is bool and type(k) is int for k, f in got)


def test_sampler_without_shuffle_cycles_in_order_with_explicit_keys():
    s = InfiniteSampler([10, 20, 30], shuffle=False, rank=1, world_size=2, start=1)
    # global positions 1 + 2 * 1 = 3, 5, 7, 9: items 0, 2, 1, 0
    assert list(islice(iter(s), 4)) == [10, 30, 20, 10]


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({"world_size": 0}, "world_size must be a positive int"),
        ({"world_size": 2.0}, "world_size must be a positive int"),
        ({"rank": 2, "world_size": 2}, r"rank must be an int in \[0, 2\)"),
        ({"rank": -1}, "rank must be an int"),
        ({"start": -1}, "start must be a non-negative int"),
    ],
)
def test_sampler_checks_its_arguments_by_name(kwargs, match):
    with pytest.raises(ValueError, match=match):
        InfiniteSampler(4, **kwargs)
    with pytest.raises(ValueError, match="at least one item"):
        InfiniteSampler([])


# -- palette ------------------------------------------------------------------------------------


def test_make_palette_range():
    # the largest ids use the top bit group: class 2**23 sets bit 23 = 3 * 7 + 2 -> B bit 7 - 7
    big = make_palette(2**23 + 1)  # above 2**23: ~0.5 GB and a few seconds
    assert big.shape == (2**23 + 1, 3) and big[-1].tolist() == [0, 0, 1]
    del big
    with pytest.raises(ValueError, match=r"num_classes must be in \[1, 2\*\*24\]"):
        make_palette(2**24 + 1)
    with pytest.raises(ValueError, match="num_classes must be in"):
        make_palette(0)
    with pytest.raises(TypeError, match="num_classes must be an int"):
        make_palette(True)


def test_colorize_labels_refuses_non_integer_labels():
    for label in (torch.zeros(2, 2), torch.zeros(2, 2, dtype=torch.bool), np.zeros((2, 2))):
        with pytest.raises(TypeError, match="label must have an integer dtype"):
            colorize_labels(label, 3)
    with pytest.raises(ValueError, match=r"label must be \[\.\.\., H, W\]"):
        colorize_labels(torch.zeros(3, dtype=torch.long), 3)
    with pytest.raises(TypeError, match="label must be a numpy array or torch tensor"):
        colorize_labels([[0]], 3)


def test_colorize_labels_with_a_given_palette():
    """Palettes may be lists, arrays or tensors; values are rounded and clipped to [0, 255]."""
    label = np.array([[0, 1], [2, 1]])
    palette = [[0.0, -3.0, 300.0], [10.4, 10.6, 255.0], [1.0, 2.0, 3.0]]
    out = colorize_labels(label, palette=palette)
    assert out.dtype == np.uint8
    assert out[0, 0].tolist() == [0, 0, 255] and out[0, 1].tolist() == [10, 11, 255]
    assert out[1, 0].tolist() == [1, 2, 3]
    same = colorize_labels(torch.from_numpy(label), palette=torch.tensor(palette))
    assert same.tolist() == out.tolist()
    for bad in ([[0, 0, 0, 0]], [0, 0, 0], np.zeros((2, 3, 1))):
        with pytest.raises(ValueError, match=r"palette must be \[N, 3\]"):
            colorize_labels(label, palette=bad)
    with pytest.raises(ValueError, match="palette has 3 colours, num_classes is 4"):
        colorize_labels(label, 4, palette=palette)


# -- transforms ---------------------------------------------------------------------------------


def test_parse_resolution_accepts_one_pixel_and_refuses_zero():
    from ganblocks.data.transforms import parse_resolution

    assert parse_resolution(1) == (1, 1) and parse_resolution((1, 3)) == (1, 3)
    with pytest.raises(ValueError, match=r"size must be positive, got \(0, 4\)"):
        parse_resolution((0, 4), name="size")


def test_load_rgb_scales_float_and_32_bit_images(tmp_path):
    """Mode F: [0, 1] data scaled by 255, larger data taken as 0-255; mode I with values above
    16 bits: scaled by 255 / (2**32 - 1)."""
    from PIL import Image

    from ganblocks.data.transforms import load_rgb

    unit = tmp_path / "unit.tif"
    Image.fromarray(np.array([[0.0, 0.5, 1.0]], np.float32), mode="F").save(unit)
    assert [p[0] for p in np.asarray(load_rgb(unit))[0]] == [0, 128, 255]
    wide = tmp_path / "wide.tif"
    Image.fromarray(np.array([[0.0, 100.0, 300.0]], np.float32), mode="F").save(wide)
    assert [p[0] for p in np.asarray(load_rgb(wide))[0]] == [0, 100, 255]
    deep = tmp_path / "deep.tif"
    Image.fromarray(np.array([[0, 2**31 - 1, 70000]], np.int32), mode="I").save(deep)
    expected = [0, 127, round(70000 * 255 / (2**32 - 1))]
    assert [p[0] for p in np.asarray(load_rgb(deep))[0]] == expected


def test_resize_label_refuses_ids_beyond_int32():
    from ganblocks.data.transforms import resize_label

    with pytest.raises(ValueError, match=r"label values out of int32 range: \[0, 2147483648\]"):
        resize_label(np.array([[0, 2**31]]), (2, 4))
    big = resize_label(np.array([[0, 2**31 - 1]]), (1, 4))
    assert big.tolist() == [[0, 0, 2**31 - 1, 2**31 - 1]]


def test_resize_label_keeps_negative_ids_down_to_int32_min():
    from ganblocks.data.transforms import resize_label

    lab = np.array([[-(2**31), -3], [-1, 2**31 - 1]])
    up = resize_label(lab, (4, 4))
    np.testing.assert_array_equal(up, np.repeat(np.repeat(lab, 2, axis=0), 2, axis=1))
    with pytest.raises(ValueError, match=r"out of int32 range: \[-2147483649, 0\]"):
        resize_label(np.array([[-(2**31) - 1, 0]]), (2, 4))


def test_load_rgb_of_a_missing_file_or_a_folder_is_not_found(tmp_path):
    from ganblocks.data.transforms import load_rgb

    for path in (tmp_path / "nope.png", tmp_path):
        with pytest.raises(FileNotFoundError, match=r"^image file not found: "):
            load_rgb(path)


# -- the paired data set ------------------------------------------------------------------------


def _png(path, w, h):
    from PIL import Image

    Image.new("RGB", (w, h), (10, 20, 30)).save(path)
    return path


def test_split_key_takes_one_element_tensors():
    from ganblocks.data import split_key

    assert split_key(torch.tensor(3), 10) == (3, None)
    assert split_key((torch.tensor([-2]), 0), 10) == (8, False)
    with pytest.raises(TypeError, match="index must be an int"):
        split_key(torch.tensor([1, 2]), 10)


def test_flip_coins_follow_the_seed():
    from ganblocks.data import FlipRNG

    gen = torch.Generator().manual_seed(5)
    expected = [bool(torch.randint(0, 2, (1,), generator=gen).item()) for _ in range(40)]
    coin = FlipRNG(5)
    assert [coin.coin() for _ in range(40)] == expected
    one, two = FlipRNG(1), FlipRNG(2)
    assert [one.coin() for _ in range(40)] != [two.coin() for _ in range(40)]


def test_paired_data_set_defaults_and_label_remapping(tmp_path):
    from ganblocks.data import PairedImageLabelDataset

    raw = {"a": np.array([[0, 1], [2, 0]]), "b": np.array([[2, 2], [0, 0]])}
    ds = PairedImageLabelDataset(
        [_png(tmp_path / "a.png", 2, 2), _png(tmp_path / "b.png", 2, 2)],
        ["a", "b"],
        num_classes=3,
        label_lut=np.array([0, -1, 2]),  # raw 1 has no class
        label_loader=raw.__getitem__,
    )
    assert ds.class_names == ["class_0", "class_1", "class_2"]
    assert ds.load_label(1).tolist() == [[2, 2], [0, 0]]
    with pytest.raises(ValueError, match="label map a: raw value 1 has no class in a data set"):
        ds.load_label(0)


def test_small_images_warn_on_either_axis_of_a_non_square_resolution(tmp_path):
    from ganblocks.data import PairedImageLabelDataset

    # 8 x 8 images upscaled to H x W = 8 x 16: twice as wide as the image
    ds = PairedImageLabelDataset(
        [_png(tmp_path / "a.png", 8, 8)], [None], num_classes=2, resolution=(8, 16)
    )
    with pytest.warns(UserWarning, match="much smaller than the resolution 16x8"):
        item = ds.get_item(0)
    assert item["image"].shape == (3, 8, 16) and not item["has_label"]


def test_label_maps_of_another_aspect_ratio_are_refused_beyond_2_percent(tmp_path):
    from ganblocks.data import PairedImageLabelDataset

    labels = {"ok": np.zeros((101, 100), np.int64), "bad": np.zeros((103, 100), np.int64)}
    image = _png(tmp_path / "a.png", 100, 100)
    ds = PairedImageLabelDataset(
        [image, image], ["ok", "bad"], num_classes=2, label_loader=labels.__getitem__
    )
    assert ds.get_item(0)["label"].shape == (100, 100)  # 1 % off: resized
    with pytest.raises(ValueError, match="different aspect ratios, wrong pairing"):
        ds.get_item(1)  # 3 % off


def test_label_map_with_green_unlike_red_and_blue_is_refused(tmp_path):
    from PIL import Image

    from ganblocks.data.transforms import load_label_map

    arr = np.zeros((4, 5, 3), dtype=np.uint8)
    arr[..., 0] = arr[..., 2] = 3  # red equals blue ...
    arr[..., 1] = 7  # ... green does not: a colour image, not class ids
    path = tmp_path / "label.png"
    Image.fromarray(arr, mode="RGB").save(path)
    with pytest.raises(ValueError, match="colour channels"):
        load_label_map(path)
    # Three equal channels are grey: read as ids.
    arr[..., 1] = 3
    Image.fromarray(arr, mode="RGB").save(path)
    assert load_label_map(path).tolist() == [[3] * 5] * 4


def test_flip_coins_survive_pickling_with_their_seed():
    import pickle

    from ganblocks.data import FlipRNG

    coin = FlipRNG(7)
    coin.coin()
    copy = pickle.loads(pickle.dumps(coin))  # e.g. into a DataLoader worker
    fresh = FlipRNG(7)
    # The copy starts its own generator from the seed (the state is not carried over).
    assert copy.seed == 7
    assert [copy.coin() for _ in range(20)] == [fresh.coin() for _ in range(20)]


def test_label_lut_may_be_a_list(tmp_path):
    from ganblocks.data import PairedImageLabelDataset

    raw = {"a": np.array([[0, 1], [2, 0]])}
    ds = PairedImageLabelDataset(
        [_png(tmp_path / "a.png", 2, 2)], ["a"], num_classes=3,
        label_lut=[2, 0, 1], label_loader=raw.__getitem__,
    )
    assert ds.load_label(0).tolist() == [[2, 0], [1, 2]]


def test_aspect_check_treats_a_wider_and_a_taller_label_alike(tmp_path):
    from ganblocks.data import PairedImageLabelDataset

    # A 50 x 50 image; labels one pixel short on either axis: 2 % off, within the tolerance,
    # whichever axis it is.
    labels = {"short": np.zeros((49, 50), np.int64), "narrow": np.zeros((50, 49), np.int64)}
    image = _png(tmp_path / "a.png", 50, 50)
    ds = PairedImageLabelDataset(
        [image, image], ["short", "narrow"], num_classes=2, label_loader=labels.__getitem__
    )
    assert ds.get_item(0)["label"].shape == (50, 50)
    assert ds.get_item(1)["label"].shape == (50, 50)


def test_paired_data_set_num_classes_must_be_an_int():
    from ganblocks.data import PairedImageLabelDataset

    for bad, kind in ((3.0, "float"), (True, "bool"), ("3", "str")):
        with pytest.raises(TypeError, match=f"^num_classes must be an int, got {kind}$"):
            PairedImageLabelDataset(["a.png"], ["a"], num_classes=bad)
    assert PairedImageLabelDataset(["a.png"], ["a"], num_classes=np.int16(3)).num_classes == 3


def test_paired_data_set_names_the_raw_value_without_a_class():
    from ganblocks.data import PairedImageLabelDataset

    raw = {"neg": np.array([[-1, 0], [2, 7]]), "big": np.array([[0, 1], [3, 1]])}
    ds = PairedImageLabelDataset(
        ["a.png", "b.png"], ["neg", "big"], num_classes=3,
        label_lut=[2, 0, 1], label_loader=raw.__getitem__,
    )
    with pytest.raises(ValueError, match=r"^label map neg: raw value -1 has no class"):
        ds.load_label(0)
    with pytest.raises(ValueError, match=r"^label map big: raw value 3 has no class"):
        ds.load_label(1)
    plain = PairedImageLabelDataset(
        ["a.png", "b.png"], ["neg", "big"], num_classes=3, label_loader=raw.__getitem__
    )
    with pytest.raises(ValueError, match=r"^label map neg: value -1 is outside"):
        plain.load_label(0)
    with pytest.raises(ValueError, match=r"^label map big: value 3 is outside"):
        plain.load_label(1)


def test_validate_reads_every_labelled_map_and_names_the_first_bad_one():
    from ganblocks.data import PairedImageLabelDataset

    raw = {"ok": np.array([[0, 1]]), "bad": np.array([[0, 5]]), "worse": np.array([[9, 0]])}
    read = []

    def loader(key):
        read.append(key)
        return raw[key]

    good = PairedImageLabelDataset(
        ["a.png", "b.png", "c.png"], ["ok", None, "ok"], num_classes=2, label_loader=loader
    )
    assert good.validate() is None and read == ["ok", "ok"]  # the unlabelled item is skipped
    bad = PairedImageLabelDataset(
        ["a.png", "b.png", "c.png", "d.png"], ["ok", None, "bad", "worse"], num_classes=2,
        label_loader=loader,
    )
    with pytest.raises(ValueError, match=r"^label map bad: value 5 is outside the class range"):
        bad.validate()
