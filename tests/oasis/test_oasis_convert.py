"""OASIS key conversion on ganblocks.convert: the nn.Sequential index of each D conv is checked
(not any index accepted), the golden state dicts convert and come back bit for bit, and
mismatches are named."""

from __future__ import annotations

import pytest
import torch
from testutils import load_golden

from ganblocks.convert import StateDictMismatchError
from recipes.oasis import Discriminator, Generator

CASES = [c for c in load_golden("baselines")["cases"] if c["kind"] == "oasis"]
OPT = dict(semantic_nc=2, channels_G=1, z_dim=2, crop_size=32, no_spectral_norm=True,
           param_free_norm="instance", num_res_blocks=3)


def _d():
    torch.manual_seed(0)
    return Discriminator(semantic_nc=2, channels=[3, 2, 2, 2], last_channels=2,
                         spectral_norm=False)


def test_a_conv_under_the_wrong_sequential_index_is_refused():
    """OASIS puts conv1 of encoder blocks after the first at index 1; index 0 there is another
    layout (the renames used to accept any of 0, 1 and 2)."""
    sd = _d().to_oasis()
    sd["body_down.2.conv1.0.weight"] = sd.pop("body_down.2.conv1.1.weight")
    with pytest.raises(ValueError, match=r"'body_down\.2\.conv1\.0\.weight' matches no rule"):
        Discriminator.from_oasis(sd, OPT)
    sd["body_down.2.conv1.2.weight"] = sd.pop("body_down.2.conv1.0.weight")  # the decoder's index
    with pytest.raises(ValueError, match=r"'body_down\.2\.conv1\.2\.weight' matches no rule"):
        Discriminator.from_oasis(sd, OPT)


def test_every_d_key_has_its_sequential_index_on_export():
    sd = _d().to_oasis()
    convs = sorted(k for k in sd if ".conv1." in k or ".conv2." in k)
    assert convs == [
        "body_down.0.conv1.0.bias", "body_down.0.conv1.0.weight",
        "body_down.0.conv2.1.bias", "body_down.0.conv2.1.weight",
        "body_down.1.conv1.1.bias", "body_down.1.conv1.1.weight",
        "body_down.1.conv2.1.bias", "body_down.1.conv2.1.weight",
        "body_down.2.conv1.1.bias", "body_down.2.conv1.1.weight",
        "body_down.2.conv2.1.bias", "body_down.2.conv2.1.weight",
        "body_up.0.conv1.2.bias", "body_up.0.conv1.2.weight",
        "body_up.0.conv2.1.bias", "body_up.0.conv2.1.weight",
        "body_up.1.conv1.2.bias", "body_up.1.conv1.2.weight",
        "body_up.1.conv2.1.bias", "body_up.1.conv2.1.weight",
        "body_up.2.conv1.2.bias", "body_up.2.conv1.2.weight",
        "body_up.2.conv2.1.bias", "body_up.2.conv2.1.weight",
    ]


@pytest.mark.parametrize("case", CASES, ids=[c["name"] for c in CASES])
def test_golden_state_dicts_come_back_bit_for_bit(case):
    G = Generator.from_oasis(case["G_state"], case["opt"])
    D = Discriminator.from_oasis(case["D_state"], case["opt"])
    for ours, theirs in ((G.to_oasis(), case["G_state"]), (D.to_oasis(), case["D_state"])):
        assert ours.keys() == theirs.keys()
        for key, value in theirs.items():
            assert value.dtype == ours[key].dtype and torch.equal(value, ours[key]), key


def test_mismatches_are_named():
    G = Generator.from_opt({**OPT, "num_res_blocks": 6})
    sd = G.to_oasis()
    sd.pop("body.0.norm_0.mlp_beta.weight")
    pair = r"'body\.0\.norm_0\.mlp_gamma\.weight' without 'body\.0\.norm_0\.mlp_beta\.weight'"
    with pytest.raises(StateDictMismatchError, match=pair):
        Generator.from_oasis(sd, {**OPT, "num_res_blocks": 6})
