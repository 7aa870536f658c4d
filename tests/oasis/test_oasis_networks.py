"""OASIS generator and discriminator from our blocks: the original's weights and outputs (golden),
converters back to OASIS's key names, and the generator's 3-D noise."""

from __future__ import annotations

import argparse

import pytest
import torch
import torch.nn.functional as F
from testutils import load_golden, rel_err

from recipes.oasis import Discriminator, Generator

CASES = [c for c in load_golden("baselines")["cases"] if c["kind"] == "oasis"]
IDS = [c["name"] for c in CASES]


def onehot(label, n):
    return F.one_hot(label, n).permute(0, 3, 1, 2).float()


@pytest.fixture(scope="module", params=CASES, ids=IDS)
def case(request):
    return request.param


@pytest.fixture(scope="module")
def G(case):
    return Generator.from_oasis(case["G_state"], case["opt"]).eval()


@pytest.fixture(scope="module")
def D(case):
    return Discriminator.from_oasis(case["D_state"], argparse.Namespace(**case["opt"])).eval()


def test_generator_reproduces_the_original(case, G):
    z = None if case["opt"]["no_3dnoise"] else case["z"]  # the draw OASIS's G made
    with torch.no_grad():
        img = G(onehot(case["label"], case["opt"]["semantic_nc"]), z)
    assert img.shape == case["img"].shape
    assert rel_err(img, case["img"]) <= 1e-5


def test_discriminator_reproduces_the_original(case, D):
    with torch.no_grad():
        out = D(case["img"])
    n_out = case["opt"]["semantic_nc"] + 1
    assert out.shape == case["D_out"].shape == (2, n_out, *case["img"].shape[2:])
    assert rel_err(out, case["D_out"]) <= 1e-5
    assert D.channels == (3, 8, 8, 16, 16, 32, 32)  # read from the state dict


@pytest.mark.parametrize("which", ["G", "D"])
def test_to_oasis_gives_back_the_original_state_dict(case, G, D, which):
    ours, theirs = (G, case["G_state"]) if which == "G" else (D, case["D_state"])
    back = ours.to_oasis()
    assert set(back) == set(theirs)
    for key, value in theirs.items():
        assert torch.equal(back[key], value), key


def test_generator_draws_z_like_oasis():
    """Without z, G draws torch.randn(B, z_dim) from the global generator, as OASIS does."""
    case = next(c for c in CASES if not c["opt"]["no_3dnoise"])
    G = Generator.from_oasis(case["G_state"], case["opt"]).eval()
    label = onehot(case["label"][:1], case["opt"]["semantic_nc"])
    with torch.no_grad():
        torch.manual_seed(3)
        drawn = G(label)
        torch.manual_seed(3)
        given = G(label, torch.randn(1, case["opt"]["z_dim"]))
        other = G(label, torch.randn(1, case["opt"]["z_dim"]))
    assert torch.equal(drawn, given)
    assert rel_err(other, drawn) > 1e-2  # z matters


def test_round_trip_of_our_weights():
    """Our (trained) weights → OASIS's names → our modules again: identical outputs."""
    opt = dict(semantic_nc=3, channels_G=1, z_dim=2, crop_size=64, aspect_ratio=1.0,
               param_free_norm="syncbatch", num_res_blocks=6)
    torch.manual_seed(0)
    G = Generator.from_opt(opt)
    D = Discriminator(semantic_nc=3, channels=[3, 2, 2, 4, 4, 4, 4], last_channels=2)
    label = onehot(torch.randint(0, 3, (2, 64, 64)), 3)
    D(G(label))  # a training forward moves BN statistics and spectral-norm vectors
    G.eval()
    D.eval()
    G2 = Generator.from_oasis(G.to_oasis(), opt).eval()
    D2 = Discriminator.from_oasis(D.to_oasis(), opt).eval()
    z = torch.randn(2, 2)
    img = G(label, z)
    assert torch.equal(G2(label, z), img)
    assert torch.equal(D2(img), D(img))


def test_without_spectral_norm_keys_are_plain():
    opt = dict(semantic_nc=2, channels_G=1, z_dim=2, crop_size=32, no_spectral_norm=True,
               param_free_norm="instance")
    G = Generator.from_opt(opt)
    assert "body.0.conv_0.weight" in G.to_oasis()
    D = Discriminator(semantic_nc=2, channels=[3, 2, 2, 2], last_channels=2, spectral_norm=False)
    sd = D.to_oasis()
    assert "body_down.1.conv1.1.weight" in sd and "body_up.2.conv_s.bias" in sd
    D2 = Discriminator.from_oasis(sd, {**opt, "num_res_blocks": 3})
    x = torch.randn(1, 3, 16, 16)
    assert torch.equal(D2.eval()(x), D.eval()(x))


def test_errors():
    opt = dict(semantic_nc=3, channels_G=1, z_dim=2, crop_size=64, no_3dnoise=True)
    G = Generator.from_opt(opt)
    with pytest.raises(ValueError, match="z: this generator has no 3-D noise"):
        G(torch.rand(1, 3, 64, 64), torch.randn(1, 2))
    with pytest.raises(ValueError, match="num_res_blocks"):
        Generator.from_opt({**opt, "num_res_blocks": 5})
    with pytest.raises(ValueError, match="param_free_norm"):
        Generator.from_opt({**opt, "param_free_norm": "group"})
    with pytest.raises(ValueError, match="does not fit the OASIS generator"):
        Generator.from_oasis(G.to_oasis(), {**opt, "no_3dnoise": False})
    D = Discriminator(semantic_nc=3, channels=[3, 2, 2, 2], last_channels=2)
    with pytest.raises(ValueError, match="img: expected"):
        D(torch.randn(1, 3, 12, 12))
    with pytest.raises(ValueError, match="num_res_blocks=6"):
        Discriminator.from_oasis(D.to_oasis(), opt)
    with pytest.raises(ValueError, match="does not fit the OASIS discriminator"):
        Discriminator.from_oasis(D.to_oasis(), {**opt, "num_res_blocks": 3, "semantic_nc": 4})
