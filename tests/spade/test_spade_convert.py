"""recipes.spade.convert on ganblocks.convert: SPADE-layer and prefix renames with their inverses,
clear errors, and the deprecated regular-expression renamer."""

from __future__ import annotations

import pytest
import torch
from testutils import load_golden

from ganblocks.convert import StateDictMismatchError
from recipes.spade import Generator
from recipes.spade.convert import (
    rename_keys,
    rename_prefixes,
    spade_layer_converter,
    spade_layers_from_reference,
    spade_layers_to_reference,
)

CASES = [c for c in load_golden("baselines")["cases"] if c["kind"] == "spade"]


@pytest.mark.parametrize("case", CASES, ids=[c["name"] for c in CASES])
def test_golden_state_dict_comes_back_bit_for_bit(case):
    G = Generator.from_spade(case["G_state"], case["opt"])
    back = G.to_spade()
    assert back.keys() == case["G_state"].keys()
    for key, value in case["G_state"].items():
        assert value.dtype == back[key].dtype and torch.equal(value, back[key]), key


def test_spade_layer_rules_concatenate_gamma_then_beta_at_any_depth():
    theirs = {
        "head_0.norm_s.mlp_gamma.weight": torch.full((2, 3, 3, 3), 1.0),
        "head_0.norm_s.mlp_beta.weight": torch.full((2, 3, 3, 3), 2.0),
        "norm_1.mlp_shared.0.bias": torch.zeros(4),
        "a.b.norm_0.param_free_norm.running_mean": torch.zeros(3),
        "conv_img.weight": torch.zeros(1),
    }
    ours = spade_layers_from_reference(theirs, norm_key="param_free_norm")
    assert sorted(ours) == ["a.b.norm_0.norm.running_mean", "conv_img.weight",
                            "head_0.norm_s.gamma_beta.weight", "norm_1.shared.bias"]
    assert ours["head_0.norm_s.gamma_beta.weight"][:, 0, 0, 0].tolist() == [1, 1, 2, 2]
    assert ours["conv_img.weight"] is theirs["conv_img.weight"]
    back = spade_layers_to_reference(ours, norm_key="param_free_norm")
    assert back.keys() == theirs.keys()
    assert all(torch.equal(back[k], theirs[k]) for k in theirs)


def test_spade_layer_errors_name_the_keys():
    with pytest.raises(StateDictMismatchError, match=r"'norm_0\.mlp_gamma\.bias' without "
                                                     r"'norm_0\.mlp_beta\.bias'"):
        spade_layers_from_reference({"norm_0.mlp_gamma.bias": torch.ones(2)},
                                    norm_key="first_norm")
    with pytest.raises(ValueError, match="converted already"):
        spade_layers_from_reference({"norm_0.gamma_beta.bias": torch.ones(2)},
                                    norm_key="first_norm")
    with pytest.raises(ValueError, match="norm_key"):
        spade_layer_converter("first norm")


def test_rename_prefixes_and_back():
    sd = {"head_0.fc.bias": torch.zeros(1), "up_1.conv_0.weight": torch.ones(1),
          "up_10.x": torch.ones(1), "fc.weight": torch.ones(1)}
    prefixes = {"head_0": "body.0", "up_1": "body.5"}
    ours = rename_prefixes(sd, prefixes)
    assert list(ours) == ["body.0.fc.bias", "body.5.conv_0.weight", "up_10.x", "fc.weight"]
    assert rename_prefixes(ours, {v: k for k, v in prefixes.items()}) == sd
    with pytest.raises(ValueError, match="prefixes"):
        rename_prefixes(sd, {"head_{0}": "body.0"})


def test_rename_keys_is_deprecated_and_still_works():
    with pytest.warns(DeprecationWarning, match="StateDictConverter"):
        out = rename_keys({"a.conv_s.weight": 1}, [("conv_s", "shortcut")])
    assert out == {"a.shortcut.weight": 1}


def test_from_spade_names_the_keys_that_do_not_fit():
    case = CASES[0]
    sd = dict(case["G_state"])
    sd["extra.weight"] = torch.zeros(1)
    with pytest.raises(ValueError, match=r"does not fit the SPADE generator(.|\n)*"
                                         r"unexpected keys: 'extra\.weight'"):
        Generator.from_spade(sd, case["opt"])
