"""Pins of ganblocks.data found unchecked by mutation runs (issue 23): the sampler's stream (what
a resumed run reads), its argument checks and flip bits; the palette's argument handling."""

from __future__ import annotations

import hashlib
import re
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


# -- transforms: every check and conversion (seed-10 hardening) ---------------------------------


def test_parse_resolution_forms_types_and_messages():
    from ganblocks.data.transforms import parse_resolution

    assert parse_resolution(None) is None
    for value, hw in ((5, (5, 5)), (np.int64(6), (6, 6)), ([2, 3], (2, 3)),
                      ((np.int32(4), 7), (4, 7))):
        got = parse_resolution(value)
        assert got == hw and type(got) is tuple and all(type(v) is int for v in got)
    for bad in (True, 2.0, "4", (2,), (2, 3, 4), (True, 2), (2, False), (2.0, 2), {2, 3}):
        with pytest.raises(TypeError, match=r"^size must be an int or a pair \(H, W\) of ints, "
                                            r"got "):
            parse_resolution(bad, name="size")
    with pytest.raises(TypeError, match=r"^resolution must be an int or a pair \(H, W\) of "
                                        r"ints, got \(2, 3, 4\)$"):
        parse_resolution((2, 3, 4))
    for bad, hw in ((0, (0, 0)), ((3, 0), (3, 0)), (-2, (-2, -2)), ((4, -1), (4, -1))):
        with pytest.raises(ValueError, match=rf"^resolution must be positive, got "
                                             rf"\({hw[0]}, {hw[1]}\)$"):
            parse_resolution(bad)


def test_high_depth_images_to_8_bit_exactly():
    from PIL import Image

    from ganblocks.data.transforms import _to_8bit

    def grey(arr, mode):
        img = Image.fromarray(arr)
        assert img.mode == mode
        out = _to_8bit(img)
        assert out.mode == "L"
        return np.asarray(out)[0].tolist()

    f32 = np.float32
    assert grey(np.array([[-1.0, 0.25, 1.0, 0.0]], f32), "F") == [0, 64, 255, 0]
    assert grey(np.array([[2.0, 300.0, -5.0, 1.0]], f32), "F") == [2, 255, 0, 1]
    # Scaled in float64: 0.25294119 (float32) x 255 is 64.500004, so 65; in float32 the product
    # rounds to 64.5 exactly, and that to the even 64.
    assert grey(np.array([[0.25294119119644165]], f32), "F") == [65]
    with np.errstate(invalid="ignore"):  # NaN is left out of the range (its byte: whatever)
        assert grey(np.array([[np.nan, 0.5, 1.0]], f32), "F")[1:] == [128, 255]
    assert grey(np.array([[0, 257, 65535, 32896]], np.uint16), "I;16") == [0, 1, 255, 128]
    assert grey(np.array([[0, 257, 65535, -7]], np.int32), "I") == [0, 1, 255, 0]
    assert grey(np.array([[65536, 2**31 - 1, 0]], np.int32), "I") == [0, 127, 0]
    assert grey(np.array([[2**31 - 1 - 2**24, 2**30]], np.int32), "I") == [127, 64]


def test_load_rgb_modes_and_unreadable_files(tmp_path):
    from PIL import Image

    from ganblocks.data.transforms import load_rgb

    pal = Image.new("P", (2, 1))
    pal.putpalette([0, 0, 0, 10, 20, 30] + [0] * 762)
    pal.putpixel((1, 0), 1)
    pal.save(tmp_path / "p.png")
    img = load_rgb(tmp_path / "p.png")
    assert img.mode == "RGB" and img.getpixel((1, 0)) == (10, 20, 30)
    Image.fromarray(np.array([[0, 65535]], np.uint16)).save(tmp_path / "g16.png")
    assert load_rgb(str(tmp_path / "g16.png")).getpixel((1, 0)) == (255, 255, 255)
    (tmp_path / "bad.png").write_bytes(b"not an image at all")
    with pytest.raises(ValueError, match=r"^cannot read image .*bad\.png: "):
        load_rgb(tmp_path / "bad.png")
    with pytest.raises(FileNotFoundError, match=r"^image file not found: .*nope\.png$"):
        load_rgb(str(tmp_path / "nope.png"))


def test_load_label_map_modes_grey_colour_and_errors(tmp_path):
    from PIL import Image

    from ganblocks.data.transforms import load_label_map

    def saved(name, img):
        img.save(tmp_path / name)
        return tmp_path / name

    lab = load_label_map(saved("l.png", Image.fromarray(np.array([[0, 3], [255, 1]], np.uint8))))
    assert lab.dtype == np.int64 and lab.tolist() == [[0, 3], [255, 1]]
    deep = load_label_map(saved("i16.png", Image.fromarray(np.array([[0, 300]], np.uint16))))
    assert deep.dtype == np.int64 and deep.tolist() == [[0, 300]]
    rgb = np.repeat(np.array([[[4], [9]]], np.uint8), 3, axis=2)
    assert load_label_map(saved("rgb.png", Image.fromarray(rgb))).tolist() == [[4, 9]]
    rgba = np.concatenate([rgb, np.full((1, 2, 1), 200, np.uint8)], axis=2)
    assert load_label_map(saved("rgba.png", Image.fromarray(rgba, "RGBA"))).tolist() == [[4, 9]]
    bits = load_label_map(saved("b.png", Image.fromarray(np.array([[True, False]]))))
    assert bits.dtype == np.int64 and bits.tolist() == [[1, 0]]
    for name, arr in (("red.png", np.array([[[1, 0, 0], [2, 2, 2]]], np.uint8)),
                      ("blue.png", np.array([[[1, 1, 0], [2, 2, 2]]], np.uint8))):
        with pytest.raises(ValueError, match=rf"^label map .*{name} has colour channels \(mode "
                                             r"RGB\); expected a single-channel PNG of class ids"
                                             r" \(mode L, P or I\)$"):
            load_label_map(saved(name, Image.fromarray(arr)))
    la = Image.fromarray(np.full((1, 2, 2), 5, np.uint8), "LA")
    with pytest.raises(ValueError, match=r"has colour channels \(mode LA\)"):
        load_label_map(saved("la.png", la))
    (tmp_path / "bad.png").write_bytes(b"garbage")
    with pytest.raises(ValueError, match=r"^cannot read label map .*bad\.png: "):
        load_label_map(tmp_path / "bad.png")
    for missing in (tmp_path / "nope.png", tmp_path):
        with pytest.raises(FileNotFoundError, match=r"^label file not found: "):
            load_label_map(missing)


def test_resize_image_is_bicubic_to_height_by_width():
    from PIL import Image

    from ganblocks.data.transforms import resize_image

    arr = np.random.default_rng(0).integers(0, 256, (6, 10, 3), dtype=np.uint8)
    img = Image.fromarray(arr)
    assert resize_image(img, (6, 10)) is img
    out = resize_image(img, (3, 4))
    assert out.size == (4, 3)
    expected = img.resize((4, 3), resample=Image.Resampling.BICUBIC)
    assert np.array_equal(np.asarray(out), np.asarray(expected))
    assert not np.array_equal(np.asarray(out),
                              np.asarray(img.resize((4, 3), resample=Image.Resampling.BILINEAR)))


def test_resize_label_nearest_to_height_by_width():
    from ganblocks.data.transforms import resize_label

    lab = np.array([[0, 1, 2], [3, 4, 5]])
    assert resize_label(lab, (2, 3)) is lab
    out = resize_label(lab, (4, 6))
    assert out.dtype == np.int64 and out.shape == (4, 6)
    assert out.tolist() == np.repeat(np.repeat(lab, 2, 0), 2, 1).tolist()
    assert resize_label(lab, (2, 6)).tolist() == np.repeat(lab, 2, 1).tolist()
    assert resize_label(np.array([[7, 8]], np.uint8), (1, 4)).tolist() == [[7, 7, 8, 8]]
    strided = np.arange(12).reshape(3, 4)[:, ::2]  # not contiguous
    assert resize_label(strided, (3, 4)).tolist() == np.repeat(strided, 2, 1).tolist()
    with pytest.raises(ValueError, match=r"^label values out of int32 range: \[-2147483649, "
                                         r"2147483648\]$"):
        resize_label(np.array([[-(2**31) - 1, 2**31]]), (2, 2))


def test_image_to_tensor_values_layout_and_checks():
    from PIL import Image

    from ganblocks.data.transforms import image_to_tensor

    arr = np.zeros((2, 3, 3), np.uint8)
    arr[0, 1, 2], arr[1, 2, 0] = 255, 51
    t = image_to_tensor(arr)
    assert t.shape == (3, 2, 3) and t.dtype == torch.float32 and t.is_contiguous()
    assert t[2, 0, 1].item() == 1.0 and t[0, 1, 2].item() == pytest.approx(-0.6)
    assert t[1, 0, 0].item() == -1.0
    assert torch.equal(image_to_tensor(Image.fromarray(arr)), t)
    for bad in (np.zeros((2, 3), np.uint8), np.zeros((2, 3, 4), np.uint8),
                np.zeros((2, 3, 3), np.float32), np.zeros((1, 2, 3, 3), np.uint8)):
        message = f"image must be uint8 [H, W, 3], got {bad.dtype} {bad.shape}"
        with pytest.raises(ValueError, match="^" + re.escape(message) + "$"):
            image_to_tensor(bad)


def test_hflip_pair_checks_both_axes_and_mirrors_batches():
    from ganblocks.data.transforms import hflip_pair

    img = torch.arange(24.0).view(2, 1, 3, 4)
    lab = torch.arange(24).view(2, 3, 4)
    fi, fl = hflip_pair(img, lab)
    assert torch.equal(fi, img.flip(-1)) and torch.equal(fl, lab.flip(-1))
    for bad in (torch.zeros(2, 3, 5), torch.zeros(2, 2, 4)):
        with pytest.raises(ValueError, match=r"^image \[\.\.\., C, H, W\] and label \[\.\.\., H, "
                                             r"W\] sizes differ: \(2, 1, 3, 4\) vs \(2, "):
            hflip_pair(img, bad)


# -- the paired data set: keys, fingerprints, coins, arguments and items (seed-10 hardening) ----


def test_split_key_forms_ranges_and_messages():
    from ganblocks.data import split_key

    assert split_key(0, 1) == (0, None)
    assert split_key([2, 1], 5) == (2, True) and split_key((np.int64(-5), 0), 5) == (0, False)
    flip = split_key((1, np.bool_(True)), 5)[1]
    assert flip is True
    for bad in ((1, 2, 3), [1]):
        with pytest.raises(TypeError, match=r"^key must be an index or a pair \(index, flip\), "
                                            r"got "):
            split_key(bad, 5)
    for bad, kind in ((True, "bool"), (1.0, "float"), ("1", "str"), ((None, True), "NoneType")):
        with pytest.raises(TypeError, match=rf"^index must be an int, got {kind}$"):
            split_key(bad, 5)
    for bad in (5, -6, 10):
        with pytest.raises(IndexError, match=rf"^index {bad} out of range for a data set of 5 "
                                             r"items$"):
            split_key(bad, 5)
    assert split_key(-1, 5) == (4, None) and split_key(4, 5) == (4, None)


def test_fingerprint_is_blake2b_of_the_names_each_ended_by_a_zero_byte():
    from ganblocks.data import fingerprint

    assert fingerprint(["a.png", "b.png"]) == hashlib.blake2b(
        b"a.png\0b.png\0", digest_size=8).hexdigest()
    assert fingerprint([]) == hashlib.blake2b(b"", digest_size=8).hexdigest()
    assert fingerprint(["ab"]) != fingerprint(["a", "b"])
    assert fingerprint(["é"]) == hashlib.blake2b("é\0".encode(), digest_size=8).hexdigest()


def test_flip_coins_seed_from_the_process_when_not_given(monkeypatch):
    import os

    from ganblocks.data import FlipRNG

    def stream(seed, n=24):
        gen = torch.Generator().manual_seed(seed)
        return [bool(torch.randint(0, 2, (1,), generator=gen).item()) for _ in range(n)]

    torch.manual_seed(1234)
    coin = FlipRNG()
    assert [coin.coin() for _ in range(24)] == stream(1234)
    # Seeds beyond 63 bits wrap (torch's generators take [0, 2**63)).
    big = FlipRNG(2**63 + 9)
    assert [big.coin() for _ in range(24)] == stream(9)
    # In another process (a forked worker) the generator starts over from the seed.
    seeded = FlipRNG(9)
    first = [seeded.coin() for _ in range(12)]
    assert first == stream(9, 12)
    pid = os.getpid()
    monkeypatch.setattr(os, "getpid", lambda: pid + 1)
    assert [seeded.coin() for _ in range(12)] == first
    assert FlipRNG(3).__getstate__() == {"seed": 3}


def _raw_loader(raw):
    return raw.__getitem__


def test_paired_data_set_arguments_by_name(tmp_path):
    from ganblocks.data import PairedImageLabelDataset as P

    with pytest.raises(ValueError, match=r"^images and labels must have the same length, got 2 "
                                         r"and 1$"):
        P(["a", "b"], ["a"], num_classes=2)
    for bad in (0, -1):
        with pytest.raises(ValueError, match=rf"^num_classes must be >= 1, got {bad}$"):
            P(["a"], ["a"], num_classes=bad)
    assert P(["a"], ["a"], num_classes=1).class_names == ["class_0"]
    for bad in (-1, 3):
        with pytest.raises(ValueError, match=r"^dontcare_index must be in \[0, 3\) or None$"):
            P(["a"], ["a"], num_classes=3, dontcare_index=bad)
    assert P(["a"], ["a"], num_classes=3, dontcare_index=0).dontcare_index == 0
    assert P(["a"], ["a"], num_classes=3, dontcare_index=2).dontcare_index == 2
    with pytest.raises(ValueError, match=r"^class_names must have 3 entries, got 2$"):
        P(["a"], ["a"], num_classes=3, class_names=["x", "y"])
    named = P(["a"], ["a"], num_classes=2, class_names=("sky", "road"))
    assert named.class_names == ["sky", "road"]
    with pytest.raises(ValueError, match=r"^item_names must have one entry per image$"):
        P(["a", "b"], ["a", None], num_classes=2, item_names=["x"])
    ds = P([tmp_path / "a.png", "b.png"], [None, "b"], num_classes=2, resolution=4, flip=1,
           label_lut=np.array([0, 1], np.uint8))
    assert ds.item_names == [str(tmp_path / "a.png"), "b.png"]
    assert ds.resolution == (4, 4) and ds.flip is True and ds.label_lut.dtype == np.int64
    assert ds.labelled_mask.tolist() == [False, True] and len(ds) == 2
    assert ds.has_label(1) is True and ds.has_label(0) is False
    assert ds.label_loader.__name__ == "load_label_map"
    assert ds.fingerprint == fingerprint_of([str(tmp_path / "a.png"), "b.png"])
    assert repr(ds) == ("PairedImageLabelDataset(items=2, labelled=1, num_classes=2, "
                        "resolution=(4, 4), flip=True)")
    with pytest.raises(TypeError, match=r"^resolution must be an int or a pair"):
        P(["a"], ["a"], num_classes=2, resolution=2.5)


def fingerprint_of(names):
    from ganblocks.data import fingerprint

    return fingerprint(names)


def test_subset_copies_the_chosen_items_in_order():
    from ganblocks.data import PairedImageLabelDataset as P

    ds = P(["a", "b", "c"], [None, "b", "c"], num_classes=2, item_names=["x", "y", "z"])
    sub = ds.subset([-1, 0, np.int64(1)])
    assert sub.images == ["c", "a", "b"] and sub.labels == ["c", None, "b"]
    assert sub.item_names == ["z", "x", "y"] and sub.labelled_mask.tolist() == [True, False, True]
    assert sub.fingerprint == fingerprint_of(["z", "x", "y"]) and len(sub) == 3
    assert ds.images == ["a", "b", "c"] and ds.labelled_mask.tolist() == [False, True, True]
    with pytest.raises(IndexError, match=r"^index 3 out of range"):
        ds.subset([3])


def test_label_remapping_ranges_and_messages():
    from ganblocks.data import PairedImageLabelDataset as P

    raw = {"top": np.array([[0, 3]]), "neg": np.array([[-2, 0]]), "far": np.array([[4, 0]]),
           "big": np.array([[0, 2]]), "none": np.array([[1, 0]])}
    lut = P(["a"] * 5, list(raw), num_classes=3, label_lut=[0, -1, 5, 2],
            label_loader=_raw_loader(raw))
    assert lut.load_label(0).tolist() == [[0, 2]]
    with pytest.raises(ValueError, match=r"^label map neg: raw value -2 has no class \(expected "
                                         r"raw values in \[0, 4\) for 3 classes\)$"):
        lut.load_label(1)
    with pytest.raises(ValueError, match=r"^label map far: raw value 4 has no class \(expected"):
        lut.load_label(2)
    with pytest.raises(ValueError, match=r"^label map big: value 5 is outside the class range "
                                         r"\[0, 3\) \(num_classes=3\)$"):
        lut.load_label(3)
    with pytest.raises(ValueError, match=r"^label map none: raw value 1 has no class in a data "
                                         r"set of 3 classes$"):
        lut.load_label(4)
    plain = P(["a"] * 3, ["top", "neg", "big"], num_classes=3, label_loader=_raw_loader(raw))
    with pytest.raises(ValueError, match=r"^label map top: value 3 is outside the class range "
                                         r"\[0, 3\) \(num_classes=3\)$"):
        plain.load_label(0)
    with pytest.raises(ValueError, match=r"^label map neg: value -2 is outside"):
        plain.load_label(1)
    assert plain.load_label(2).tolist() == [[0, 2]]


def test_items_sizes_labels_flips_and_the_small_image_warning(tmp_path):
    import warnings

    from PIL import Image

    from ganblocks.data import PairedImageLabelDataset as P

    arr = np.arange(2 * 4 * 3, dtype=np.uint8).reshape(2, 4, 3) * 10
    Image.fromarray(arr).save(tmp_path / "a.png")
    raw = {"l": np.array([[0, 1, 2, 0], [1, 1, 0, 2]])}
    ds = P([tmp_path / "a.png"], ["l"], num_classes=3, label_loader=_raw_loader(raw))
    item = ds.get_item(0)
    assert item["image"].shape == (3, 2, 4) and item["has_label"] is True and item["index"] == 0
    assert torch.equal(item["image"], torch.from_numpy(arr).permute(2, 0, 1).float() / 127.5 - 1)
    assert item["label"].dtype == torch.int64 and item["label"].tolist() == raw["l"].tolist()
    flipped = ds[(-1, True)]
    assert torch.equal(flipped["image"], item["image"].flip(-1))
    assert flipped["label"].tolist() == raw["l"][:, ::-1].tolist() and flipped["index"] == 0
    bare = ds.get_item(0, with_label=False)
    assert bare["has_label"] is False and bare["label"].tolist() == [[0] * 4] * 2
    # A random flip: a fair coin when the data set flips, never otherwise.
    coin = P([tmp_path / "a.png"], ["l"], num_classes=3, label_loader=_raw_loader(raw),
             flip=True, seed=0)
    got = [torch.equal(coin[0]["image"], item["image"].flip(-1)) for _ in range(16)]
    gen = torch.Generator().manual_seed(0)
    assert got == [bool(torch.randint(0, 2, (1,), generator=gen).item()) for _ in range(16)]
    assert all(torch.equal(ds[0]["image"], item["image"]) for _ in range(4))
    # Up-scaled twice or more on either axis: one warning, naming the first such image.
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        P([tmp_path / "a.png"], [None], num_classes=2, resolution=(3, 7)).get_item(0)
    warned = P([tmp_path / "a.png"] * 2, [None] * 2, num_classes=2, resolution=(4, 4))
    with pytest.warns(UserWarning, match=r"^image .*a\.png is 4x2 \(WxH\), much smaller than "
                                         r"the resolution 4x4 it is upscaled to \(other such "
                                         r"images are not reported\)$"):
        warned.get_item(0)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        assert warned.get_item(1)["image"].shape == (3, 4, 4)


def test_aspect_mismatch_message_names_both_files_and_sizes(tmp_path):
    from ganblocks.data import PairedImageLabelDataset as P

    image = _png(tmp_path / "a.png", 100, 50)
    raw = {"bad": np.zeros((52, 100), np.int64), "ok": np.zeros((51, 100), np.int64)}
    ds = P([image, image], ["bad", "ok"], num_classes=2, label_loader=_raw_loader(raw))
    with pytest.raises(ValueError, match=r"^image .*a\.png is 100x50 \(WxH\) but its label map "
                                         r"bad is 100x52: different aspect ratios, wrong "
                                         r"pairing\?$"):
        ds.get_item(0)
    assert ds.get_item(1)["label"].shape == (50, 100)


def test_32_bit_images_are_16_bit_data_up_to_65535_exactly():
    """Mode "I" holds 16-bit data when its largest value is at most 65535: 65535 alone is white
    (scaled by 255 / 65535), 65536 alone already means 32-bit data (scaled by 255 / (2**32 - 1),
    so nearly black)."""
    from PIL import Image

    from ganblocks.data.transforms import _to_8bit

    def grey(values):
        return np.asarray(_to_8bit(Image.fromarray(np.array([values], np.int32))))[0].tolist()

    assert grey([65535, 0]) == [255, 0]
    assert grey([65536, 0]) == [0, 0]
    assert grey([0, 0]) == [0, 0]  # all black: the 16-bit scale, no division by zero
    assert grey([2**31 - 1, 2**24]) == [127, 1]
    # 1086374081 / 16843009 = 64.50000003: just past a rounding boundary on the scale of
    # 2**32 - 1 (on one of 2**32 + 1 it would fall just below it, to 64)
    assert grey([1086374081, 1086374080]) == [65, 64]
