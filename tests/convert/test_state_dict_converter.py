"""ganblocks.convert: rules, transforms against independent references, the exact inverse
(a hypothesis property over random rule sets and tensors, compared bit for bit), and the errors."""

from __future__ import annotations

import math

import pytest
import torch
import torch.nn.functional as F
from hypothesis import given
from hypothesis import strategies as st

from ganblocks.convert import (
    Cast,
    Concat,
    Flip,
    Function,
    Permute,
    Rearrange,
    Reshape,
    Rule,
    Scale,
    Split,
    Stack,
    StateDictConverter,
    StateDictMismatchError,
    Transpose,
    Unbind,
    check_state_dict,
)

_INT_OF = {2: torch.int16, 4: torch.int32, 8: torch.int64}


def bits(t: torch.Tensor) -> torch.Tensor:
    """The tensor's bit patterns (NaN payloads, -0.0 and all), as integers."""
    return t.contiguous().view(_INT_OF[t.element_size()]) if t.is_floating_point() else t


def assert_bitwise_equal(a: dict, b: dict) -> None:
    assert list(a) == list(b) or set(a) == set(b)
    for key in a:
        assert a[key].dtype == b[key].dtype, key
        assert a[key].shape == b[key].shape, key
        assert torch.equal(bits(a[key]), bits(b[key])), key


# ------------------------------------------------------------------------------------------------
# Round trip: a property over random rule sets
# ------------------------------------------------------------------------------------------------


def _values(gen: torch.Generator, shape, dtype, special: bool) -> torch.Tensor:
    """Random values spread over many binades; with ``special``, also ±0, ±inf and NaN."""
    x = torch.randn(shape, generator=gen, dtype=torch.float64)
    x = x * torch.exp2(torch.randint(-20, 20, shape, generator=gen).double())
    if special and x.numel():
        flat = x.view(-1)
        picks = torch.randint(0, flat.numel(), (4,), generator=gen)
        flat[picks] = torch.tensor([0.0, -0.0, math.inf, math.nan], dtype=torch.float64)
    return x.to(dtype)


_KINDS = ["rename", "elementwise", "concat", "split", "stack", "unbind"]


@st.composite
def conversions(draw):
    """A converter over a few rules of random kinds and a state dict that they cover."""
    seed = draw(st.integers(0, 2**31 - 1))
    gen = torch.Generator().manual_seed(seed)
    rules, state = [], {}
    for k in range(draw(st.integers(1, 4))):
        kind = draw(st.sampled_from(_KINDS))
        dtype = draw(st.sampled_from([torch.float32, torch.float64, torch.float16]))
        shape = draw(st.lists(st.integers(1, 4), min_size=2, max_size=3))
        n = draw(st.integers(2, 3))
        dim = draw(st.integers(0, len(shape) - 1))
        special = True
        transforms = []
        if kind == "elementwise":
            options = draw(st.lists(st.sampled_from(["flip", "transpose", "permute", "rearrange",
                                                      "reshape", "scale", "cast"]),
                                    min_size=1, max_size=3))
            for opt in options:
                if opt == "flip":
                    transforms.append(Flip(draw(st.integers(-len(shape), len(shape) - 1))))
                elif opt == "transpose" and len(shape) > 1:
                    transforms.append(Transpose(0, len(shape) - 1))
                    shape = [shape[-1], *shape[1:-1], shape[0]]
                elif opt == "permute":
                    perm = draw(st.permutations(range(len(shape))))
                    transforms.append(Permute(perm))
                    shape = [shape[p] for p in perm]
                elif opt == "rearrange":
                    pattern = " ".join(f"a{i}" for i in range(len(shape)))
                    sizes = {f"a{i}": size for i, size in enumerate(shape)}
                    transforms.append(Rearrange(f"{pattern} -> ({pattern}) 1", **sizes))
                    shape = [math.prod(shape), 1]
                elif opt == "reshape":
                    transforms.append(Reshape((-1,), inverse_shape=shape))
                    shape = [math.prod(shape)]
                elif opt == "scale" and dtype != torch.float16:  # half: too few binades
                    special = False  # NaN payloads need not survive a multiplication
                    transforms.append(Scale(2.0 ** draw(st.integers(-3, 3))))
                elif opt == "cast" and dtype != torch.float64:  # widening only: exact
                    transforms.append(Cast(torch.float64, inverse_dtype=dtype))
                    dtype = torch.float64
        # Sources are named with the rule number and their index; values are drawn below.
        n_src = {"concat": n, "stack": n}.get(kind, 1)
        n_tgt = {"split": n, "unbind": n}.get(kind, 1)
        if kind == "concat":
            transforms = [Concat(dim=dim)]
        elif kind == "split":
            transforms = [Split(dim=dim)]
        elif kind == "stack":
            transforms = [Stack(dim=dim)]
        elif kind == "unbind":
            transforms = [Unbind(dim=dim)]
        sources = [f"m{{i:\\d+}}.r{k}s{j}.{{p:weight|bias}}" for j in range(n_src)]
        targets = [f"layers.{{i}}.rule{k}.t{j}.{{p}}" for j in range(n_tgt)]
        rules.append(Rule(sources, targets, transform=transforms))
        # Instances: one or two block indices, each with weight and maybe bias.
        for i in draw(st.sets(st.integers(0, 12), min_size=1, max_size=2)):
            for p in ["weight", "bias"][: draw(st.integers(1, 2))]:
                in_shape = list(shape if kind != "elementwise" else state_shape(rules[-1], shape))
                if kind == "split":
                    in_shape[dim % len(in_shape)] = n * draw(st.integers(1, 2))
                if kind == "unbind":
                    in_shape[dim % len(in_shape)] = n
                for j in range(n_src):
                    src_dtype = dtype if kind != "elementwise" else first_dtype(rules[-1], dtype)
                    state[f"m{i}.r{k}s{j}.{p}"] = _values(gen, in_shape, src_dtype, special)
    passthrough = draw(st.booleans())
    if passthrough:
        state["other.buffer"] = _values(gen, [3], torch.float32, True)
        state["count"] = torch.tensor(7)
    keys = list(state)
    order = draw(st.permutations(range(len(keys))))
    state = {keys[i]: state[keys[i]] for i in order}
    return StateDictConverter(rules, passthrough=passthrough), state


def state_shape(rule: Rule, out_shape):
    """The input shape whose image through ``rule``'s element-wise chain is ``out_shape``."""
    x = torch.zeros(out_shape)
    for t in reversed(rule.transforms):
        x = t.inverse([x], 1)[0]
    return list(x.shape)


def first_dtype(rule: Rule, out_dtype):
    for t in rule.transforms:
        if isinstance(t, Cast):
            return t.inverse_dtype
    return out_dtype


@given(conversions())
def test_invert_undoes_convert_bit_for_bit(case):
    converter, theirs = case
    ours = converter.convert(theirs)
    back = converter.invert(ours)
    assert_bitwise_equal(back, theirs)
    # ... and the other way round, on the output layout.
    assert_bitwise_equal(converter.convert(back), ours)
    assert_bitwise_equal(converter.inverse.inverse.convert(theirs), ours)
    # Shapes of the converted tensors are those the rules describe: given as `expected`, accepted.
    converter.convert(theirs, expected={k: v.shape for k, v in ours.items()})


def test_renames_keep_the_very_tensors():
    w = torch.randn(3)
    out = StateDictConverter([Rule("a.{p}", "b.{p}")]).convert({"a.w": w})
    assert out["b.w"] is w


# ------------------------------------------------------------------------------------------------
# Transforms against independent references
# ------------------------------------------------------------------------------------------------


def test_flip_converts_a_convolution_that_stores_its_kernel_flipped():
    """Theirs computes a true convolution (kernel flipped); ours a cross-correlation (F.conv2d)."""
    torch.manual_seed(0)
    w_theirs, x = torch.randn(4, 3, 3, 5), torch.randn(2, 3, 8, 9)
    converter = StateDictConverter([Rule("conv.kernel", "conv.weight", transform=Flip([2, 3]))])
    w_ours = converter.convert({"conv.kernel": w_theirs})["conv.weight"]
    theirs = F.conv2d(x, w_theirs[:, :, range(2, -1, -1)][:, :, :, range(4, -1, -1)])
    torch.testing.assert_close(F.conv2d(x, w_ours), theirs, rtol=0, atol=0)


def test_concat_turns_two_linear_layers_into_one():
    """Two linear layers (γ and β) → one layer with their outputs stacked, as in SPADE."""
    torch.manual_seed(0)
    gamma, beta = torch.nn.Linear(5, 3), torch.nn.Linear(5, 3)
    theirs = {f"{n}.{p}": v for n, m in (("gamma", gamma), ("beta", beta))
              for p, v in m.state_dict().items()}
    converter = StateDictConverter(
        [Rule(["gamma.{p}", "beta.{p}"], "{p}", transform=Concat(dim=0))]
    )
    ours = torch.nn.Linear(5, 6)
    ours.load_state_dict(converter.convert(theirs, expected=ours.state_dict()))
    x = torch.randn(7, 5)
    torch.testing.assert_close(ours(x), torch.cat([gamma(x), beta(x)], dim=1))
    back = converter.invert(ours.state_dict())
    assert all(torch.equal(back[k], theirs[k]) for k in theirs)


def test_split_and_unbind_cut_into_the_rule_targets():
    qkv = torch.arange(24.0).reshape(6, 4)
    split = StateDictConverter([Rule("qkv", ["q", "k", "v"], transform=Split(dim=0))])
    out = split.convert({"qkv": qkv})
    assert [out[k].tolist() for k in "qkv"] == [qkv[0:2].tolist(), qkv[2:4].tolist(),
                                                 qkv[4:6].tolist()]
    uneven = StateDictConverter([Rule("qkv", ["q", "kv"], transform=Split(dim=1, sizes=[1, 3]))])
    assert uneven.convert({"qkv": qkv})["kv"].tolist() == qkv[:, 1:].tolist()
    per_layer = StateDictConverter([Rule("w", ["w0", "w1", "w2", "w3"], transform=Unbind(dim=1))])
    assert per_layer.convert({"w": qkv})["w2"].tolist() == [row[2] for row in qkv.tolist()]
    stacked = StateDictConverter([Rule(["a", "b"], "ab", transform=Stack(dim=1))])
    assert stacked.convert({"a": torch.ones(3), "b": torch.zeros(3)})["ab"].tolist() == [[1, 0]] * 3


def test_chained_transforms_run_in_order_and_back_in_reverse():
    """[out, in] matrix of theirs → our [out, in, 1, 1] kernel, scaled by 2."""
    converter = StateDictConverter(
        [Rule("fc.w", "conv.weight", transform=[Rearrange("o i -> o i 1 1"), Scale(2.0)])]
    )
    w = torch.randn(4, 3)
    out = converter.convert({"fc.w": w})["conv.weight"]
    assert torch.equal(out, 2 * w[:, :, None, None])
    assert torch.equal(converter.invert({"conv.weight": out})["fc.w"], w)


def test_permute_and_transpose_match_torch():
    x = torch.randn(2, 3, 4)
    assert torch.equal(Permute([1, 2, 0]).forward([x], 1)[0], x.permute(1, 2, 0))
    assert torch.equal(Permute([1, 2, 0]).inverse([x.permute(1, 2, 0)], 1)[0], x)
    assert torch.equal(Transpose(0, 2).forward([x], 1)[0], x.transpose(0, 2))


def test_cast_and_function():
    half = torch.randn(5).half()
    widened = Cast(torch.float32, inverse_dtype=torch.float16).forward([half], 1)[0]
    assert widened.dtype == torch.float32 and torch.equal(widened.half(), half)
    neg = Function(torch.neg, torch.neg)
    assert torch.equal(neg.inverse(neg.forward([half], 1), 1)[0], half)


def test_scale_by_any_factor_round_trips_within_two_ulp():
    torch.manual_seed(0)
    x = torch.randn(10000) * 100
    for factor in (1 / math.sqrt(27), 0.1, 3.0, math.sqrt(2)):
        s = Scale(factor)
        back = s.unapply(s.apply(x))
        ulp = torch.nextafter(x.abs(), torch.tensor(math.inf)) - x.abs()
        assert ((back - x).abs() <= 2 * ulp).all(), factor
    assert Scale(0.25).exact and Scale(-8).exact and not Scale(0.1).exact


def test_repeated_placeholder_must_repeat_the_same_text():
    converter = StateDictConverter([Rule("b{r}.to_b{r}.w", "blocks.{r}.w")])
    assert converter.convert({"b8.to_b8.w": torch.zeros(1)}).keys() == {"blocks.8.w"}
    with pytest.raises(StateDictMismatchError, match=r"unexpected keys: 'b8\.to_b16\.w'"):
        converter.convert({"b8.to_b16.w": torch.zeros(1)})


def test_placeholder_with_nested_braces_and_optional_prefix():
    converter = StateDictConverter(
        [Rule(r"{pre:(?:.+\.)?}x{n:\d{2}}.w", "{pre}y{n}.weight")], passthrough=True
    )
    out = converter.convert({"x12.w": 1, "a.b.x34.w": 2, "x5.w": 3})
    assert out == {"y12.weight": 1, "a.b.y34.weight": 2, "x5.w": 3}
    assert converter.invert(out) == {"x12.w": 1, "a.b.x34.w": 2, "x5.w": 3}


# ------------------------------------------------------------------------------------------------
# Strictness and errors
# ------------------------------------------------------------------------------------------------

CONVERTER = StateDictConverter(
    [
        Rule(r"fc{i:\d+}.{p:weight|bias}", "layers.{i}.{p}"),
        Rule([r"n{i:\d+}.g", "n{i}.b"], "norms.{i}.gb", transform=Concat(dim=0)),
        Rule(r"fc{i:\d+}.filter", "layers.{i}.resample.filter", optional=True),
    ]
)


def test_unclaimed_keys_and_incomplete_groups_are_named():
    with pytest.raises(StateDictMismatchError) as info:
        CONVERTER.convert({"fc0.weight": torch.zeros(1), "head.w": torch.zeros(1),
                           "n3.g": torch.zeros(2)})
    err = info.value
    assert isinstance(err, KeyError) and isinstance(err, ValueError)
    assert err.unexpected == ["'head.w'"]
    assert err.incomplete == [("n3.g", ("n3.b",))]
    assert "'n3.g' without 'n3.b'" in str(err) and "unexpected keys: 'head.w'" in str(err)


def test_expected_names_missing_unexpected_and_shapes_in_both_layouts():
    theirs = {"fc0.weight": torch.zeros(4, 3), "fc9.bias": torch.zeros(4),
              "n0.g": torch.zeros(2), "n0.b": torch.zeros(2)}
    expected = {"layers.0.weight": torch.zeros(4, 2), "layers.0.bias": (4,), "norms.0.gb": (4,)}
    with pytest.raises(StateDictMismatchError) as info:
        CONVERTER.convert(theirs, expected=expected)
    err = info.value
    assert err.unexpected == ["'fc9.bias' → 'layers.9.bias'"]
    assert err.missing == ["'layers.0.bias' (from 'fc0.bias')"]
    assert err.mismatched == [("layers.0.weight", (4, 3), (4, 2))]
    for text in ("'fc9.bias' → 'layers.9.bias'", "'layers.0.bias' (from 'fc0.bias')",
                 "'layers.0.weight' has (4, 3), expected (4, 2)"):
        assert text in str(err)


def test_optional_outputs_are_dropped_only_when_expected_lacks_them():
    theirs = {"fc0.weight": torch.zeros(1), "fc0.filter": torch.ones(4),
              "fc1.weight": torch.zeros(1), "fc1.filter": torch.ones(4)}
    expected = {"layers.0.weight": (1,), "layers.1.weight": (1,), "layers.1.resample.filter": (4,)}
    out = CONVERTER.convert(theirs, expected=expected)
    assert set(out) == set(expected)
    assert set(CONVERTER.convert(theirs)) == set(expected) | {"layers.0.resample.filter"}
    back = CONVERTER.invert(out, expected={"fc0.weight": (1,), "fc1.weight": (1,)})
    assert set(back) == {"fc0.weight", "fc1.weight"}


def test_two_inputs_written_to_one_key_is_an_error():
    converter = StateDictConverter([Rule("a.{x}", "b.{x}")], passthrough=True)
    with pytest.raises(ValueError, match="converted already"):
        converter.convert({"a.w": torch.zeros(1), "b.w": torch.zeros(1)})
    merge = StateDictConverter([Rule("a{i}.w", "w{i}"), Rule("b{i}.w", "w{i}")])
    assert merge.convert({"a1.w": 1}) == {"w1": 1}
    with pytest.raises(ValueError, match="not invertible"):
        merge.convert({"a1.w": 1, "b1.w": 2})


def test_rules_that_would_not_invert_are_refused_on_use():
    """The general rule first: its output would be claimed on the way back by the same rule, but
    the specific rule's output too, so the specific key would not come back under its name."""
    converter = StateDictConverter([
        Rule("{m}.{p}", "net.{m}.{p}"),
        Rule("const", "net.const.value"),
    ])
    assert converter.convert({"a.w": 1}) == {"net.a.w": 1}
    with pytest.raises(ValueError, match=r"rules: Rule\('const' -> 'net.const.value'\) writes"):
        converter.convert({"const": 1})


def test_transform_failures_name_the_keys():
    converter = StateDictConverter([Rule("w", ["a", "b"], transform=Split(dim=0))])
    with pytest.raises(StateDictMismatchError, match=r"cannot transform 'w' \(3,\).*2 equal"):
        converter.convert({"w": torch.zeros(3)})
    with pytest.raises(TypeError, match="'w' is a int"):
        converter.convert({"w": 3})


def test_check_state_dict():
    check_state_dict({"a": torch.zeros(2)}, {"a": torch.ones(2)})
    with pytest.raises(StateDictMismatchError, match="model: not the expected") as info:
        check_state_dict({"a": torch.zeros(2)}, {"a": (3,), "b": (1,)}, what="model")
    assert info.value.missing == ["'b'"] and info.value.mismatched == [("a", (2,), (3,))]


@pytest.mark.parametrize(
    ("make", "error", "match"),
    [
        (lambda: Rule("a.{x}", "b.{y}"), ValueError, "same placeholders"),
        (lambda: Rule("a.{x:1}", "b.{x:2}"), ValueError, "declared twice"),
        (lambda: Rule("a.{x", "b"), ValueError, "unclosed"),
        (lambda: Rule("a.{1x}", "b.{1x}"), ValueError, "Python identifier"),
        (lambda: Rule(["a", "b"], "c"), ValueError, "many-to-one"),
        (lambda: Rule(["a", "b"], ["c", "d"], transform=Concat()), ValueError, "one target"),
        (lambda: Rule("a", ["c", "d"], transform=[Split(), Split()]), ValueError, "at most one"),
        (lambda: Rule("a", "b", transform=[Flip(0), "flip"]), TypeError, "transform"),
        (lambda: Rule("", "b"), TypeError, "source"),
        (lambda: Rule(["a", "a"], "b", transform=Concat()), ValueError, "same template twice"),
        (lambda: StateDictConverter(["a"]), TypeError, "rules"),
        (lambda: Permute([0, 0]), ValueError, "dims"),
        (lambda: Scale(0.0), ValueError, "factor"),
        (lambda: Cast("float", inverse_dtype=torch.float32), TypeError, "dtype"),
        (lambda: Rearrange("a b"), ValueError, "pattern"),
        (lambda: Concat(dim=0, sizes=[1, -1]), ValueError, "sizes"),
        (lambda: CONVERTER.convert([("fc0.weight", 1)]), TypeError, "state_dict"),
    ],
)
def test_bad_arguments_are_clear_errors(make, error, match):
    with pytest.raises(error, match=match):
        make()
