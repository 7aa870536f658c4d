"""16-bit images and label maps, small-image warnings, and the documented ``folder`` layout
(``images/`` + ``labels/`` only) training with a held-out validation split."""

from __future__ import annotations

import json
import struct
import zlib
from pathlib import Path

import numpy as np
import pytest
import torch
from oco_tiny import TINY
from PIL import Image

from ganblocks.data import PairedImageLabelDataset
from ganblocks.data.transforms import image_to_tensor, load_label_map, load_rgb
from recipes.oco_gan.cli import main
from recipes.oco_gan.config import ConfigError, apply_overrides, get_preset


def write_png16(path: Path, arr: np.ndarray) -> Path:
    """A 16-bit PNG (grey, grey+alpha, RGB or RGBA by the channel count), written by hand:
    Pillow cannot write 16-bit colour."""
    arr = np.asarray(arr, dtype=np.uint16)
    h, w = arr.shape[:2]
    channels = 1 if arr.ndim == 2 else arr.shape[2]
    colour_type = {1: 0, 2: 4, 3: 2, 4: 6}[channels]
    rows = b"".join(b"\x00" + arr[y].astype(">u2").tobytes() for y in range(h))

    def chunk(kind: bytes, data: bytes) -> bytes:
        return (struct.pack(">I", len(data)) + kind + data
                + struct.pack(">I", zlib.crc32(kind + data) & 0xFFFFFFFF))

    header = struct.pack(">IIBBBBB", w, h, 16, colour_type, 0, 0, 0)
    path.write_bytes(b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", header)
                     + chunk(b"IDAT", zlib.compress(rows)) + chunk(b"IEND", b""))
    return path


def test_16bit_grey_image_is_scaled_by_its_depth(tmp_path):
    values = np.array([[0, 257, 32896], [1000, 65535, 65278]], np.uint16)
    rgb = np.asarray(load_rgb(write_png16(tmp_path / "g.png", values)))
    expected = np.rint(values / 257.0).astype(np.uint8)  # v * 255 / 65535
    for c in range(3):
        np.testing.assert_array_equal(rgb[..., c], expected)
    # ... not clipped to white, as a plain 8-bit conversion does
    assert (np.asarray(Image.open(tmp_path / "g.png").convert("L")) == 255).sum() > 2
    assert image_to_tensor(load_rgb(tmp_path / "g.png")).min() == -1.0


@pytest.mark.parametrize("channels", [2, 3, 4])
def test_16bit_colour_images_keep_their_values(tmp_path, channels):
    rng = np.random.default_rng(channels)
    values = rng.integers(0, 65536, size=(5, 7, channels), dtype=np.uint16)
    rgb = np.asarray(load_rgb(write_png16(tmp_path / "c.png", values))).astype(int)
    colour = values[..., :3] if channels >= 3 else np.repeat(values[..., :1], 3, -1)
    # within one 8-bit level of v * 255 / 65535 (Pillow keeps the high byte)
    assert np.abs(rgb - colour / 257.0).max() <= 1.0


def test_16bit_label_maps_are_integers(tmp_path):
    labels = np.array([[0, 1, 300], [299, 2, 65535]], np.uint16)
    np.testing.assert_array_equal(load_label_map(write_png16(tmp_path / "l.png", labels)),
                                  labels.astype(np.int64))


def test_one_warning_for_much_smaller_images(tmp_path):
    names = []
    for k in range(3):
        Image.new("RGB", (8, 8), (k, k, k)).save(tmp_path / f"{k}.png")
        names.append(tmp_path / f"{k}.png")
    ds = PairedImageLabelDataset(names, [None] * 3, num_classes=2, resolution=32)
    with pytest.warns(UserWarning, match=r"0.png is 8x8 \(WxH\), much smaller than the "
                                         r"resolution 32x32") as record:
        for k in range(3):
            ds.get_item(k, flip=False)
    assert len(record) == 1
    big = PairedImageLabelDataset(names, [None] * 3, num_classes=2, resolution=12)
    import warnings

    with warnings.catch_warnings():
        warnings.simplefilter("error")
        big.get_item(0, flip=False)  # 8 of 12: not "much smaller"


def test_data_settings_of_the_guide_exist():
    cfg = apply_overrides(get_preset("folder"), ["data.num_classes=12",
                                                 "data.allow_unlabelled=true"])
    assert cfg.model.num_classes == 12 and cfg.data.allow_unlabelled
    with pytest.raises(ConfigError, match=r"data.num_classes \(12\) and model.num_classes "
                                          r"\(3\) differ"):
        apply_overrides(get_preset("folder"), ["data.num_classes=12", "model.num_classes=3"])
    with pytest.raises(ConfigError, match=r"data\.allow_unlabelled is only for the folder"):
        apply_overrides(get_preset("demo"), ["data.allow_unlabelled=true"])


def _folder_root(root: Path, n: int = 12, *, unlabelled: int = 0) -> Path:
    """``images/`` (16-bit grey and 8-bit RGB PNGs) and ``labels/`` (16-bit) of 3 classes."""
    (root / "images").mkdir(parents=True)
    (root / "labels").mkdir()
    rng = np.random.default_rng(0)
    for k in range(n + unlabelled):
        img = rng.integers(0, 65536, size=(16, 16), dtype=np.uint16)
        if k % 2:
            write_png16(root / "images" / f"im{k:02d}.png", img)
        else:
            Image.fromarray((img >> 8).astype(np.uint8)).convert("RGB").save(
                root / "images" / f"im{k:02d}.png")
        if k < n:
            write_png16(root / "labels" / f"im{k:02d}.png",
                        rng.integers(0, 3, size=(16, 16), dtype=np.uint16))
    return root


def test_folder_layout_without_val_trains_with_a_held_out_split(tmp_path):
    root = _folder_root(tmp_path / "mine", unlabelled=2)
    out = tmp_path / "run"
    tiny = [t for t in TINY if not t.startswith("data.synthetic_size")]
    rc = main(["train", "--preset", "folder", "--data", str(root), "--out", str(out),
               "--steps", "1", "--no-progress", "--device", "cpu", "data.num_classes=3",
               "data.allow_unlabelled=true", "--regime", "semi", "--labelled", "5", *tiny])
    assert rc == 0
    split = json.loads((out / "split.json").read_text())
    held = split["validation"]["held_out"]
    assert len(held) == 1 and held[0].startswith("images/im") and split["num_items"] == 13
    assert torch.load(out / "checkpoint.pt", weights_only=False)["step"] == 1
    # The held-out image is not a training item, and the draw is reused on resume.
    assert main(["train", "--out", str(out), "--resume", "--steps", "2", "--no-progress",
                 "--device", "cpu"]) == 0
    assert json.loads((out / "split.json").read_text()) == split
