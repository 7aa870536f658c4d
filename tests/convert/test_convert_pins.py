"""ganblocks.convert: behaviour pinned after mutation samples (issue 23): the contiguous results of
the layout transforms, ``convert_key`` under ``passthrough`` and the argument checks of
``check_state_dict``."""

from __future__ import annotations

import pytest
import torch

from ganblocks.convert import (
    Function,
    Permute,
    Rule,
    StateDictConverter,
    Transpose,
    check_state_dict,
)


def test_permute_returns_contiguous_tensors_both_ways():
    # A permuted view is not contiguous; the transform hands back a compact copy (as Transpose
    # does), so that a later Function may call .view() and a saved checkpoint holds plain tensors.
    x = torch.arange(24.0).reshape(2, 3, 4)
    p = Permute([2, 0, 1])
    out = p.forward([x], 1)[0]
    assert out.is_contiguous()
    # Independent reference: element [k, i, j] of the result is x[i, j, k].
    for i in range(2):
        for j in range(3):
            for k in range(4):
                assert out[k, i, j] == x[i, j, k]
    back = p.inverse([out.transpose(0, 2).contiguous().transpose(0, 2)], 1)[0]
    assert back.is_contiguous() and torch.equal(back, x)
    assert Transpose(0, 2).forward([x], 1)[0].is_contiguous()


def test_permute_then_view_in_a_rule():
    # [out, in] stored as [in, out]: permute, then flatten with .view (needs a compact tensor).
    rule = Rule("fc.w", "fc.weight",
                transform=[Permute([1, 0]), Function(lambda t: t.view(-1), lambda t: t.view(3, 2))])
    converter = StateDictConverter([rule])
    w = torch.arange(6.0).reshape(2, 3)
    out = converter.convert({"fc.w": w})["fc.weight"]
    assert out.tolist() == [0.0, 3.0, 1.0, 4.0, 2.0, 5.0]


def test_convert_key_keeps_unclaimed_keys_only_under_passthrough():
    rules = [Rule("fc{i}.w", "layers.{i}.weight")]
    assert StateDictConverter(rules).convert_key("other.w") is None
    assert StateDictConverter(rules, passthrough=True).convert_key("other.w") == ("other.w",)
    # A claimed key is renamed either way.
    assert StateDictConverter(rules, passthrough=True).convert_key("fc2.w") == (
        "layers.2.weight",)


@pytest.mark.parametrize(
    ("state_dict", "expected", "name"),
    [
        ([("w", torch.zeros(2))], {"w": (2,)}, "state_dict"),
        ({"w": torch.zeros(2)}, [("w", (2,))], "expected"),
    ],
)
def test_check_state_dict_refuses_what_is_not_a_mapping(state_dict, expected, name):
    with pytest.raises(TypeError, match=f"^{name}: expected a mapping"):
        check_state_dict(state_dict, expected)


def test_an_inverted_transform_runs_the_inner_one_both_ways():
    from ganblocks.convert import Concat, Scale

    x = torch.arange(6.0).view(2, 3)
    scale = Scale(4.0)
    inv = scale.inverted()
    torch.testing.assert_close(inv.forward([x], 1)[0], x / 4.0)
    torch.testing.assert_close(inv.inverse([x], 1)[0], x * 4.0)
    assert inv.inverted() is scale
    # Concat merges many into one; its inverse splits one into many.
    a, b = torch.ones(1, 2), torch.zeros(2, 2)
    split = Concat(dim=0, sizes=[1, 2]).inverted()
    parts = split.forward([torch.cat([a, b])], 2)
    assert len(parts) == 2 and torch.equal(parts[0], a) and torch.equal(parts[1], b)
    merged = split.inverse([a, b], 1)
    assert len(merged) == 1 and torch.equal(merged[0], torch.cat([a, b]))


@pytest.mark.parametrize(
    ("source", "target", "match"),
    [
        ("a.{i", "b.{i}", r"^source: unclosed '\{'"),
        ("a.{i}", "b.{i", r"^target: unclosed '\{'"),
        ("a.}", "b", r"^source: unbalanced '\}'"),
        ("a", "b}", r"^target: unbalanced '\}'"),
        ("a.{1x}", "b.{1x}", r"^source: placeholder \{1x\}"),
    ],
)
def test_a_malformed_template_is_reported_as_source_or_target(source, target, match):
    with pytest.raises(ValueError, match=match):
        Rule(source, target)
