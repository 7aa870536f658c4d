"""Our StyleGAN2 loads NVlabs' weights (golden ``baselines.pt``) and reproduces the originals'
outputs; its state dict converts back to the original key names losslessly."""

from __future__ import annotations

import pytest
import torch
from testutils import load_golden, rel_err

from recipes.stylegan2 import Discriminator, Generator

TOL = 1e-5
CASES = [c for c in load_golden("baselines")["cases"] if c["kind"] == "nvlabs_stylegan2"]
IDS = [c["name"] for c in CASES]


def _inputs(case):
    c = case["c"] if case["c"].numel() else None
    cutoff = None if case["truncation_cutoff"] < 0 else case["truncation_cutoff"]
    return c, cutoff


def _run(G, D, case):
    c, cutoff = _inputs(case)
    with torch.no_grad():
        ws = G.mapping(
            case["z"], c, truncation_psi=case["truncation_psi"], truncation_cutoff=cutoff
        )
        return {
            "ws": ws,
            "img_noise_const": G.synthesis(ws, noise_mode="const"),
            "img_noise_none": G.synthesis(ws, noise_mode="none"),
            "D_logits": D(case["img_noise_const"], c),
        }


def _load(case):
    G = Generator.from_nvlabs(case["G_state"], **case["generator_kwargs"]).eval()
    D = Discriminator.from_nvlabs(case["D_state"], **case["discriminator_kwargs"]).eval()
    return G, D


def test_golden_covers_every_architecture_of_g_and_d():
    archs_g = {c["generator_kwargs"]["architecture"] for c in CASES}
    archs_d = {c["discriminator_kwargs"]["architecture"] for c in CASES}
    assert {"skip", "resnet"} <= archs_g and {"skip", "resnet"} <= archs_d
    assert {c["generator_kwargs"]["c_dim"] > 0 for c in CASES} == {False, True}


@pytest.mark.parametrize("case", CASES, ids=IDS)
def test_outputs_match_the_original(case):
    G, D = _load(case)
    out = _run(G, D, case)
    for name, value in out.items():
        assert value.shape == case[name].shape, name
        assert rel_err(value, case[name]) <= TOL, (name, rel_err(value, case[name]))


@pytest.mark.parametrize("case", CASES, ids=IDS)
def test_full_forward_equals_mapping_then_synthesis(case):
    G, _ = _load(case)
    c, cutoff = _inputs(case)
    with torch.no_grad():
        img = G(case["z"], c, case["truncation_psi"], cutoff, noise_mode="const")
    assert rel_err(img, case["img_noise_const"]) <= TOL


@pytest.mark.parametrize("case", CASES, ids=IDS)
def test_round_trip_to_original_keys(case):
    G, D = _load(case)
    g_sd, d_sd = G.to_nvlabs(), D.to_nvlabs()
    assert set(g_sd) == set(case["G_state"]) and set(d_sd) == set(case["D_state"])
    for ours, original in ((g_sd, case["G_state"]), (d_sd, case["D_state"])):
        for key, value in ours.items():
            assert value.shape == original[key].shape, key
            if not key.endswith("resample_filter"):  # unused filters are written as the default
                assert torch.equal(value, original[key]), key
    G2 = Generator.from_nvlabs(g_sd, **case["generator_kwargs"]).eval()
    D2 = Discriminator.from_nvlabs(d_sd, **case["discriminator_kwargs"]).eval()
    first, second = _run(G, D, case), _run(G2, D2, case)
    for name in first:
        assert torch.equal(first[name], second[name]), name


@pytest.mark.parametrize("architecture", ["orig", "skip", "resnet"])
def test_every_architecture_round_trips(architecture):
    torch.manual_seed(0)
    w_avg = {"w_avg_beta": None} if architecture == "orig" else {}  # no w_avg buffer at all
    gk = dict(
        z_dim=8,
        c_dim=2,
        w_dim=8,
        img_resolution=8,
        img_channels=3,
        channel_base=64,
        channel_max=16,
        mapping_kwargs={"num_layers": 2, **w_avg},
        architecture=architecture,
    )
    dk = dict(
        c_dim=2,
        img_resolution=8,
        img_channels=3,
        channel_base=64,
        channel_max=16,
        architecture=architecture,
        mapping_kwargs={"num_layers": 1},
    )
    G, D = Generator(**gk).eval(), Discriminator(**dk).eval()
    assert ("mapping.w_avg" in G.to_nvlabs()) == (not w_avg)
    G2 = Generator.from_nvlabs(G.to_nvlabs(), **gk).eval()
    D2 = Discriminator.from_nvlabs(D.to_nvlabs(), **dk).eval()
    z, c = torch.randn(4, 8), torch.eye(2)[[0, 1, 0, 1]]
    img = G(z, c, noise_mode="const")
    assert torch.equal(img, G2(z, c, noise_mode="const"))
    assert torch.equal(D(img, c), D2(img, c))


def test_wrong_state_dict_is_a_clear_error():
    case = CASES[0]
    sd = dict(case["G_state"])
    sd.pop("mapping.fc0.weight")
    sd["mapping.fc9.weight"] = torch.zeros(1)
    with pytest.raises(KeyError, match=r"mapping\.fc0\.weight"):
        Generator.from_nvlabs(sd, **case["generator_kwargs"])
    bad = dict(case["generator_kwargs"], img_resolution=64)
    with pytest.raises(KeyError, match="missing"):
        Generator.from_nvlabs(case["G_state"], **bad)
    with pytest.raises(TypeError, match="synthesis_kwargs"):
        Generator(**dict(case["generator_kwargs"], channel_bse=3))
