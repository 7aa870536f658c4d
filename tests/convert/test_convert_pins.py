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


# ---- seed-10 hardening: every check with its message, reprs, listings, converter errors -------


def _raises(exc, pattern, fn, *args, **kwargs):
    import re

    with pytest.raises(exc) as info:
        fn(*args, **kwargs)
    assert re.fullmatch(pattern, str(info.value), re.S), str(info.value)
    return info.value


def test_transform_arguments_are_checked_by_name():
    from ganblocks.convert import Cast, Concat, Flip, Rearrange, Reshape, Scale, Split, Stack

    assert Flip(1).dims == (1,) and Flip([0, -1]).dims == (0, -1)
    for bad in ([], True, [1, True], [1.0], "ab", 1.0, None):
        _raises(TypeError, r"dims: expected an int or a non-empty sequence of ints, got .*",
                Flip, bad)
    _raises(TypeError, r"dim0, dim1: expected an int or a non-empty sequence of ints, got "
                       r"\[0, 1\.5\]", Transpose, 0, 1.5)
    _raises(ValueError, r"dims: expected a permutation of 0\.\.2, got \[0, 1, 1\]",
            Permute, [0, 1, 1])
    _raises(ValueError, r"dims: expected a permutation of 0\.\.1, got \(1, 2\)", Permute, (1, 2))
    for bad in ("a b", "a -> b -> c", 3):
        _raises(ValueError, r"pattern: expected an einops pattern 'a b -> b a', got .*",
                Rearrange, bad)
    _raises(TypeError, r"inverse_shape: expected an int or a non-empty sequence of ints, got "
                       r"\[\]", Reshape, [2], inverse_shape=[])
    for bad in (0, 0.0, float("inf"), float("nan"), "2", None):
        _raises(ValueError, r"factor: expected a finite non-zero number, got .*", Scale, bad)
    _raises(TypeError, r"dtype: expected a torch\.dtype, got 'float32'", Cast, "float32",
            inverse_dtype=torch.float16)
    _raises(TypeError, r"inverse_dtype: expected a torch\.dtype, got None", Cast, torch.float32,
            inverse_dtype=None)
    _raises(TypeError, r"forward: expected a callable tensor -> tensor, got 3", Function, 3,
            torch.neg)
    _raises(TypeError, r"inverse: expected a callable tensor -> tensor, got None", Function,
            torch.neg, None)
    _raises(ValueError, r"sizes: expected non-negative sizes, got \[2, -1\]", Concat,
            sizes=[2, -1])
    assert Split(sizes=[0, 3]).sizes == (0, 3) and Concat().sizes is None
    _raises(TypeError, r"dim: expected an int or a non-empty sequence of ints, got 1\.5", Stack,
            dim=1.5)
    assert Concat().dim == 0 and Split().dim == 0 and Stack().dim == 0


def test_transform_reprs():
    from ganblocks.convert import (
        Cast,
        Concat,
        Flip,
        Rearrange,
        Reshape,
        Scale,
        Split,
        Stack,
        Unbind,
    )

    assert repr(Flip(2)) == "Flip([2])" and repr(Transpose(0, 2)) == "Transpose(0, 2)"
    assert repr(Permute((2, 0, 1))) == "Permute([2, 0, 1])"
    assert repr(Rearrange(" o i->i o ", k=2)) == "Rearrange('o i -> i o', k=2)"
    assert repr(Reshape([-1], inverse_shape=(2, 3))) == "Reshape([-1], inverse_shape=[2, 3])"
    assert repr(Scale(2)) == "Scale(2.0)"
    assert repr(Cast(torch.float32, inverse_dtype=torch.float16)) == \
        "Cast(torch.float32, inverse_dtype=torch.float16)"
    assert repr(Function(torch.neg, torch.abs)).startswith("Function(<built-in method neg")
    assert repr(Concat(dim=1, sizes=[1, 2])) == "Concat(dim=1, sizes=(1, 2))"
    assert repr(Split()) == "Split(dim=0, sizes=None)"
    assert repr(Stack(dim=2)) == "Stack(dim=2)" and repr(Unbind(dim=1)) == "Unbind(dim=1)"
    assert repr(Scale(0.5).inverted()) == "Scale(0.5).inverted()"
    assert (Concat().inverted().arity, Split().inverted().arity, Flip(0).inverted().arity) == \
        ("one_to_many", "many_to_one", "elementwise")


def test_elementwise_transforms_both_ways():
    from ganblocks.convert import Cast, Flip, Rearrange, Reshape, Scale

    x = torch.arange(6.0).view(2, 3)
    assert torch.equal(Flip(1).forward([x], 1)[0], x.flip(1))
    assert torch.equal(Flip(1).inverse([x.flip(1)], 1)[0], x)
    r = Rearrange("a b -> b a")
    assert torch.equal(r.forward([x], 1)[0], x.t()) and r.forward([x], 1)[0].is_contiguous()
    assert torch.equal(r.inverse([x.t()], 1)[0], x) and r.inverse([x.t()], 1)[0].is_contiguous()
    k = Rearrange("(a b) -> a b", b=3)
    assert k.forward([torch.arange(6)], 1)[0].shape == (2, 3)
    assert k.inverse([torch.zeros(4, 3)], 1)[0].shape == (12,)
    s = Reshape([3, 2], inverse_shape=[-1])
    assert s.forward([x], 1)[0].shape == (3, 2) and s.inverse([x], 1)[0].shape == (6,)
    assert Scale(0.25).forward([x], 1)[0].tolist() == (x * 0.25).tolist()
    assert Scale(0.25).inverse([x], 1)[0].tolist() == (x * 4).tolist()
    assert Scale(0.25).exact and Scale(-8).exact and not Scale(3).exact
    assert not Scale(0.3).exact
    c = Cast(torch.float64, inverse_dtype=torch.float16)
    assert c.forward([x], 1)[0].dtype == torch.float64
    assert c.inverse([x], 1)[0].dtype == torch.float16
    assert Transpose(0, 1).inverse([x.t()], 1)[0].tolist() == x.tolist()


def test_cuts_and_unbinds_check_their_sizes():
    from ganblocks.convert import Concat, Split, Stack, Unbind

    x = torch.arange(10).view(5, 2)
    parts = Split(dim=0, sizes=[2, 3]).forward([x], 2)
    assert [tuple(p.shape) for p in parts] == [(2, 2), (3, 2)] and parts[1].is_contiguous()
    cols = Split(dim=1).forward([x], 2)
    assert all(p.is_contiguous() for p in cols) and torch.equal(cols[1], x[:, 1:])
    _raises(ValueError, r"split: a tensor of shape \(5, 2\) does not cut into 2 equal parts "
                        r"along dim 0", Split().forward, [x], 2)
    _raises(ValueError, r"split: sizes \[2, 2\] do not cut a tensor of shape \(5, 2\) along dim "
                        r"0 into 2 parts", Split(sizes=[2, 2]).forward, [x], 2)
    _raises(ValueError, r"split: sizes \[2, 3\] do not cut a tensor of shape \(5, 2\) along dim "
                        r"0 into 3 parts", Concat(sizes=[2, 3]).inverse, [x], 3)
    assert torch.equal(Split(dim=1).inverse(cols, 1)[0], x)
    rows = Unbind(dim=1).forward([x], 2)
    assert torch.equal(rows[0], x[:, 0]) and rows[0].is_contiguous()
    assert torch.equal(Unbind(dim=1).inverse(rows, 1)[0], x)
    assert torch.equal(Stack(dim=1).forward(rows, 1)[0], x)
    assert torch.equal(Stack(dim=1).inverse([x], 2)[1], x[:, 1])
    _raises(ValueError, r"unbind: a tensor of shape \(5, 2\) has 2 entries along dim 1, "
                        r"expected 3", Unbind(dim=1).forward, [x], 3)


@pytest.mark.parametrize(
    ("source", "target", "pattern"),
    [
        ("a.{i", "b.{i}", r"source: unclosed '\{' at position 2 of 'a\.\{i'"),
        ("a.}", "b", r"source: unbalanced '\}' at position 2 of 'a\.\}'"),
        ("a.{1x}", "b.{1x}", r"source: placeholder \{1x\} of 'a\.\{1x\}': expected \{name\} or "
                             r"\{name:regex\} with a Python identifier as the name"),
        ("a.{}", "b", r"source: placeholder \{\} of .*"),
        ("a.{i:\\d{2}}.{j}", "b.{i}.{k}", r"rule \['a\.\{i:\\\\d\{2\}\}\.\{j\}'\] -> "
                                          r"\['b\.\{i\}\.\{k\}'\]: every template must use the "
                                          r"same placeholders; 'a\.\{i:\\\\d\{2\}\}\.\{j\}' has "
                                          r"\['i', 'j'\], 'b\.\{i\}\.\{k\}' has \['i', 'k'\]"),
        ("a.{i:\\d+}", "b.{i:[0-9]+}", r"rule .*: placeholder 'i' is declared twice with "
                                       r"different expressions \('\\\\d\+', '\[0-9\]\+'\)"),
    ],
)
def test_template_errors_name_the_side_and_the_position(source, target, pattern):
    _raises(ValueError, pattern, Rule, source, target)


def test_rule_arguments_and_arity_checks():
    from ganblocks.convert import Concat, Flip, Scale, Split, Stack

    for bad in ("", [], ["a", ""], ["a", 3], None, 3):
        _raises(TypeError, r"source: expected a key template or a non-empty list of them, "
                           r"got .*", Rule, bad, "b")
    _raises(ValueError, r"target: the same template twice in \['b', 'b'\]", Rule, ["a", "c"],
            ["b", "b"], transform=Stack())
    _raises(TypeError, r"transform: expected Transform instances, got 'flip'", Rule, "a", "b",
            transform=[Flip(0), "flip"])
    _raises(ValueError, r"rule \['a'\] -> \['b'\]: at most one many-to-one or one-to-many "
                        r"transform per rule, got \[Concat\(dim=0, sizes=None\), Split\(dim=0, "
                        r"sizes=None\)\]", Rule, "a", "b", transform=[Concat(), Split()])
    _raises(ValueError, r"rule \['a', 'c'\] -> \['b'\]: 2 source and 1 target templates need a "
                        r"many-to-one \(Concat, Stack\) or one-to-many \(Split, Unbind\) "
                        r"transform", Rule, ["a", "c"], "b", transform=Flip(0))
    _raises(ValueError, r"rule \['a', 'c'\] -> \['b', 'd'\]: Concat\(dim=0, sizes=None\) writes "
                        r"one target, got 2", Rule, ["a", "c"], ["b", "d"], transform=Concat())
    _raises(ValueError, r"rule \['a', 'c'\] -> \['b', 'd'\]: Split\(dim=0, sizes=None\) reads "
                        r"one source, got 2", Rule, ["a", "c"], ["b", "d"], transform=Split())
    r = Rule("a", ["b", "c"], transform=[Scale(2.0), Split()], optional=1)
    assert r.optional is True and r.transforms == tuple(r.transforms)
    assert repr(r) == ("Rule('a' -> ['b', 'c'], transform=[Scale(2.0), Split(dim=0, "
                       "sizes=None)], optional=True)")
    assert repr(Rule("a", "b")) == "Rule('a' -> 'b')"
    back = r.inverse()
    assert back.source == ("b", "c") and back.target == ("a",) and back.optional is True
    assert repr(back.transforms) == "(Split(dim=0, sizes=None).inverted(), Scale(2.0).inverted())"
    out = r.apply([torch.arange(4.0)])
    assert [t.tolist() for t in out] == [[0.0, 2.0], [4.0, 6.0]]
    assert [t.tolist() for t in back.apply(out)] == [[0.0, 1.0, 2.0, 3.0]]
    # A repeated placeholder must capture the same text both times.
    twice = StateDictConverter([Rule("{a}.{a}.w", "{a}.w")])
    assert twice.convert_key("x.x.w") == ("x.w",) and twice.convert_key("x.y.w") is None
    assert StateDictConverter([Rule("l{i:\\d+}.w", "b.{i}")]).convert_key("lx.w") is None


def test_state_dict_checks_and_their_listing():
    from ganblocks.convert import StateDictMismatchError

    sd = {f"k{i:02d}": torch.zeros(1) for i in range(12)}
    err = _raises(StateDictMismatchError, r".*", check_state_dict, sd, {"w": (1,)}, what="mine")
    shown = ", ".join(repr(f"k{i:02d}") for i in range(10))
    assert str(err) == ("mine: not the expected keys and shapes\n"
                        f"  unexpected keys: {shown} … and 2 more\n  missing keys: 'w'")
    assert isinstance(err, KeyError) and isinstance(err, ValueError)
    assert err.args == (err.message,) == (str(err),)  # pickles and reprs with its message
    assert err.unexpected == [repr(k) for k in sd] and err.missing == ["'w'"]
    assert err.mismatched == [] and err.incomplete == []
    ten = {f"k{i:02d}": torch.zeros(1) for i in range(10)}
    assert str(_raises(StateDictMismatchError, r".*", check_state_dict, ten, {})).endswith(shown)
    err = _raises(StateDictMismatchError, r".*", check_state_dict,
                  {"w": torch.zeros(2, 3), "s": [4], "n": None}, {"w": [3, 2], "s": (5,),
                                                                  "n": (1,)})
    assert str(err) == ("state_dict: not the expected keys and shapes\n  shape mismatches: 'w' "
                        "has (2, 3), expected (3, 2), 's' has (4,), expected (5,)")
    assert err.mismatched == [("w", (2, 3), (3, 2)), ("s", (4,), (5,))]
    check_state_dict({"w": torch.zeros(2), "o": object()}, {"w": torch.Size([2]), "o": "x"})
    _raises(TypeError, r"expected: expected a mapping of key names to tensors, got list",
            check_state_dict, {}, [])


def test_converter_arguments_inverse_and_repr():
    _raises(TypeError, r"rules: expected Rule instances, got 'a'", StateDictConverter,
            [Rule("a", "b"), "a"])
    c = StateDictConverter((Rule("a", "b"),), passthrough=1)
    assert c.passthrough is True and c.inverse.passthrough is True and c.inverse.inverse is c
    assert c.inverse is c.inverse
    assert repr(c) == "StateDictConverter([\n    Rule('a' -> 'b'),\n], passthrough=True)"
    assert repr(StateDictConverter([])) == "StateDictConverter([\n], passthrough=False)"
    # The first rule that matches claims a key.
    first = StateDictConverter([Rule("{x}.w", "first.{x}"), Rule("a.w", "second")])
    assert first.convert_key("a.w") == ("first.a",)


def test_converter_errors_name_keys_groups_and_rules():
    from ganblocks.convert import Concat, Scale, StateDictMismatchError

    c = StateDictConverter([Rule(["q{i}", "k{i}"], "qk{i}", transform=Concat()),
                            Rule("b{i}", "bias{i}", optional=True),
                            Rule("w{i}", "weight{i}", transform=Scale(2.0))])
    err = _raises(StateDictMismatchError, r".*", c.convert,
                  {"q1": torch.zeros(1), "x": torch.zeros(1)})
    assert str(err) == ("state_dict: does not match the conversion rules\n  incomplete groups "
                        "(a rule needs all of its keys): 'q1' without 'k1'\n  unexpected keys: "
                        "'x'")
    assert err.incomplete == [("q1", ("k1",))]
    out = c.convert({"q1": torch.ones(1), "k1": torch.zeros(2), "b1": torch.ones(3)},
                    expected={"qk1": (3,)})
    assert list(out) == ["qk1"] and out["qk1"].tolist() == [1.0, 0.0, 0.0]  # optional dropped
    err = _raises(StateDictMismatchError, r".*", c.convert, {"w1": torch.ones(2)},
                  expected={"weight1": (3,), "bias2": (1,), "other": (1,)})
    assert str(err) == ("state_dict: does not match the expected keys after conversion\n"
                        "  missing keys: 'bias2' (from 'b2'), 'other'\n"
                        "  shape mismatches: 'weight1' has (2,), expected (3,)")
    err = _raises(StateDictMismatchError, r".*", c.convert, {"w1": torch.ones(2)},
                  expected={})
    assert "unexpected keys: 'w1' → 'weight1'" in str(err)
    _raises(TypeError, r"state_dict: 'w1' is a list; Rule\('w\{i\}' -> 'weight\{i\}', "
                       r"transform=\[Scale\(2\.0\)\]\) transforms tensors", c.convert,
            {"w1": [1.0]})
    _raises(StateDictMismatchError, r"state_dict: Rule\(\['q\{i\}', 'k\{i\}'\] -> 'qk\{i\}', "
                                    r"transform=\[Concat\(dim=0, sizes=None\)\]\) cannot transform "
                                    r"'q1' \(1, 2\), 'k1' \(3,\): .*", c.convert,
            {"q1": torch.ones(1, 2), "k1": torch.ones(3)})
    # A plain rename passes any value through, tensor or not.
    assert c.convert({"b3": "anything"}) == {"bias3": "anything"}
    bad = StateDictConverter([Rule("a", "b", transform=Function(lambda t: t, lambda t: t))])
    bad.rules[0].apply = lambda tensors: [tensors[0], tensors[0]]
    _raises(ValueError, r"Rule\('a' -> 'b', .*\): its transforms returned 2 tensors for 1 "
                        r"targets", bad.convert, {"a": torch.ones(1)})


def test_converter_refuses_what_it_could_not_undo():
    clash = StateDictConverter([Rule("a.{x}", "b.{x}"), Rule("c.{x}", "b.{x}")])
    _raises(ValueError, r"rules: Rule\('c\.\{x\}' -> 'b\.\{x\}'\) writes 'b\.1', which the "
                        r"inverse conversion would give to Rule\('a\.\{x\}' -> 'b\.\{x\}'\): .*",
            clash.convert, {"c.1": torch.ones(1)})
    through = StateDictConverter([Rule("a.{x}", "b.{x}")], passthrough=True)
    assert through.convert({"c": 1}) == {"c": 1}
    _raises(ValueError, r"state_dict: 'b\.1' matches no rule, and under its own name it would "
                        r"read as the output of Rule\('a\.\{x\}' -> 'b\.\{x\}'\): the conversion "
                        r"could not be undone \(a key of another layout, or a state dict "
                        r"converted already\?\)", through.convert, {"b.1": 1})
    assert through.invert({"b.1": 2, "z": 3}) == {"a.1": 2, "z": 3}


def test_converter_takes_mappings_only():
    c = StateDictConverter([Rule("a", "b")])
    _raises(TypeError, r"state_dict: expected a mapping of key names to tensors, got list",
            c.convert, [("a", torch.ones(1))])
    _raises(TypeError, r"expected: expected a mapping of key names to tensors, got list",
            c.convert, {"a": torch.ones(1)}, expected=["b"])
    _raises(TypeError, r"expected: expected a mapping of key names to tensors, got tuple",
            c.invert, {"b": torch.ones(1)}, expected=("a",))
