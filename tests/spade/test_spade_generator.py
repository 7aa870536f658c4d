"""SPADE generator from our blocks: the original's weights and outputs (golden), converters."""

from __future__ import annotations

import argparse

import pytest
import torch
import torch.nn.functional as F
from testutils import load_golden, rel_err

from recipes.spade import Generator, parse_norm_G

CASES = [c for c in load_golden("baselines")["cases"] if c["kind"] == "spade"]


def onehot(label, n):
    return F.one_hot(label, n).permute(0, 3, 1, 2).float()


@pytest.mark.parametrize("case", CASES, ids=[c["name"] for c in CASES])
def test_reproduces_the_original(case):
    G = Generator.from_spade(case["G_state"], case["opt"]).eval()
    with torch.no_grad():
        img = G(onehot(case["label"], case["opt"]["semantic_nc"]))
    assert img.shape == case["img"].shape
    assert rel_err(img, case["img"]) <= 1e-5


@pytest.mark.parametrize("case", CASES, ids=[c["name"] for c in CASES])
def test_to_spade_gives_back_the_original_state_dict(case):
    G = Generator.from_spade(case["G_state"], argparse.Namespace(**case["opt"]))
    back = G.to_spade()
    assert list(back) == list(G.to_spade())  # deterministic order
    assert set(back) == set(case["G_state"])
    for key, value in case["G_state"].items():
        assert torch.equal(back[key], value), key


@pytest.mark.parametrize(
    ("layers", "norm_G", "crop", "aspect", "size", "blocks", "ups"),
    [
        ("normal", "spadeinstance3x3", 64, 2.0, (32, 64), 7, 5),
        ("more", "spectralspadebatch3x3", 64, 1.0, (64, 64), 7, 6),
        ("most", "spectralspadesyncbatch3x3", 128, 1.0, (128, 128), 8, 7),
    ],
)
def test_round_trip_of_our_weights(layers, norm_G, crop, aspect, size, blocks, ups):
    """Our (trained) weights → the original's names → our module again: identical outputs."""
    opt = dict(semantic_nc=3, ngf=2, crop_size=crop, aspect_ratio=aspect, use_vae=False,
               num_upsampling_layers=layers, norm_G=norm_G)
    torch.manual_seed(0)
    G = Generator.from_opt(opt)
    G(torch.rand(2, 3, *size))  # a training step's forward moves BN stats and SN vectors
    G.eval()
    H = Generator.from_spade(G.to_spade(), opt).eval()
    label = onehot(torch.randint(0, 3, (1, *size)), 3)
    img = H(label)
    assert G.output_size == size and img.shape == (1, 3, *size)
    assert torch.equal(G(label), img)
    assert len(G.body) == blocks and sum(G.upsample) == ups


def test_parse_norm_G():
    assert parse_norm_G("spadeinstance5x5") == (False, "instance", 5)
    assert parse_norm_G("spectralspadebatch3x3") == (True, "batch", 3)
    with pytest.raises(ValueError, match="norm_G"):
        parse_norm_G("spectralinstance")


def test_errors():
    opt = dict(semantic_nc=3, ngf=2, crop_size=64, norm_G="spadebatch3x3")
    with pytest.raises(ValueError, match="use_vae"):
        Generator.from_opt({**opt, "use_vae": True})
    with pytest.raises(ValueError, match="crop_size"):
        Generator.from_opt({**opt, "crop_size": 16})
    with pytest.raises(ValueError, match="num_upsampling_layers"):
        Generator.from_opt({**opt, "num_upsampling_layers": "many"})
    with pytest.raises(ValueError, match="missing the option 'semantic_nc'"):
        Generator.from_opt({"crop_size": 64})
    G = Generator.from_opt(opt)
    with pytest.raises(ValueError, match="does not fit the SPADE generator"):
        Generator.from_spade(G.to_spade(), {**opt, "ngf": 4})
    with pytest.raises(ValueError, match="label: expected 3 channels"):
        G(torch.rand(1, 4, 64, 64))
    with pytest.raises(ValueError, match="label: expected a floating-point one-hot"):
        G(torch.zeros(1, 64, 64, dtype=torch.long))


def test_sync_batchnorm_conversion_keeps_keys_and_outputs():
    """Multi-GPU users convert with SyncBatchNorm: the state dict and eval outputs stay the same."""
    torch.manual_seed(0)
    G = Generator(semantic_nc=3, ngf=1, crop_size=32).eval()
    S = torch.nn.SyncBatchNorm.convert_sync_batchnorm(Generator(semantic_nc=3, ngf=1, crop_size=32))
    S.load_state_dict(G.state_dict())
    S.eval()
    assert isinstance(S.body[0].norm_0.norm, torch.nn.SyncBatchNorm)
    assert list(S.state_dict()) == list(G.state_dict())
    label = onehot(torch.randint(0, 3, (1, 32, 32)), 3)
    assert torch.equal(S(label), G(label))
