"""Pins of conv2d_resample's routes found unchecked by a mutation run (issue 23).

References: the documented semantics written with ``upfirdn2d(impl="ref")`` and
``torch.nn.functional.conv2d``. Up-sampling: zero insertion and the FIR (gain ``up**2``) on the
up-sampled grid, padded by ``padding`` plus the filter's centring (``(2, 1)`` for a 4-tap filter
and a 3-wide kernel at ``up=2``), then a valid convolution. Down-sampling: the FIR on the input
grid, then a convolution of stride ``down``.
"""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F

from ganblocks.ops import conv2d_resample, setup_filter, upfirdn2d
from ganblocks.ops.conv2d_resample import _centred_padding

F1331 = setup_filter([1, 3, 3, 1]).double()


@pytest.mark.parametrize("padding", [1, [-5, 2, 2, -4], [2, -4, -5, 2], [-2, -3, -1, -2]])
def test_up_sampling_conv_with_negative_padding_on_one_side(padding):
    """Negative padding on one side only: the transposed convolution must not crop the other."""
    gen = torch.Generator().manual_seed(0)
    x = torch.randn(1, 2, 8, 9, generator=gen, dtype=torch.float64)
    w = torch.randn(3, 2, 3, 3, generator=gen, dtype=torch.float64)
    p = [padding] * 4 if isinstance(padding, int) else padding
    up = upfirdn2d(
        x, F1331, up=2, padding=[p[0] + 2, p[1] + 1, p[2] + 2, p[3] + 1], gain=4, impl="ref"
    )
    expected = F.conv2d(up, w)
    y = conv2d_resample(x, w, F1331, up=2, padding=padding)
    assert y.shape == expected.shape
    torch.testing.assert_close(y, expected)


@pytest.mark.parametrize("shape", [(2, 1), (1, 2), (1, 1), (3, 3)])
def test_down_sampling_conv_of_any_kernel_shape(shape):
    gen = torch.Generator().manual_seed(1)
    x = torch.randn(2, 3, 8, 10, generator=gen, dtype=torch.float64)
    w = torch.randn(4, 3, *shape, generator=gen, dtype=torch.float64)
    px0, px1, py0, py1 = _centred_padding(0, F1331, 1, 2)
    fir = upfirdn2d(x, F1331, padding=[px0, px1, py0, py1], impl="ref")
    expected = F.conv2d(fir, w, stride=2)
    y = conv2d_resample(x, w, F1331, down=2)
    assert y.shape == expected.shape
    torch.testing.assert_close(y, expected)


@pytest.mark.parametrize("up", [1, 2, 3])
@pytest.mark.parametrize("down", [1, 2])
@pytest.mark.parametrize("padding", [[0, 0, 0, 0], [2, 1, 3, 0], [-1, 2, 1, -1]])
def test_the_adjoint_parameters_map_back_to_the_input_size(up, down, padding):
    """``transpose`` gives the adjoint call: its output is exactly ``in_h x in_w``, and
    ``<upfirdn2d(x), y> == <x, upfirdn2d_adjoint(y)>``."""
    from ganblocks.ops._params import UpFirDn2dParams

    f = setup_filter([1, 2, 4, 1]).double()  # not symmetric: a missing flip would show
    in_h, in_w = 9, 7
    params = UpFirDn2dParams.parse(up=up, down=down, padding=padding)
    out_h, out_w = params.output_size(in_h, in_w, f)
    adj = params.transpose(in_h, in_w, f)
    assert adj.output_size(out_h, out_w, f) == (in_h, in_w)
    gen = torch.Generator().manual_seed(up * 10 + down)
    x = torch.randn(1, 1, in_h, in_w, generator=gen, dtype=torch.float64)
    y = torch.randn(1, 1, out_h, out_w, generator=gen, dtype=torch.float64)
    fwd = upfirdn2d(x, f, up=up, down=down, padding=padding, impl="ref")
    back = upfirdn2d(
        y, f, up=adj.upx, down=adj.downx, padding=list(adj.padding),
        flip_filter=adj.flip_filter, impl="ref",
    )  # fmt: skip
    assert back.shape == x.shape
    torch.testing.assert_close((fwd * y).sum(), (x * back).sum())


def test_bias_act_checks_x_by_name_and_accepts_clamp_zero():
    from ganblocks.ops import bias_act

    with pytest.raises((TypeError, ValueError), match=r"^x: "):
        bias_act([1.0, -2.0])
    x = torch.tensor([[1.0, -2.0, 3.0]])
    # clamp = 0 is a valid (if degenerate) clamp: every output is 0
    assert torch.equal(bias_act(x, act="lrelu", clamp=0.0, impl="ref"), torch.zeros_like(x))
    with pytest.raises(ValueError, match="clamp: expected None or a value >= 0"):
        bias_act(x, clamp=-1.0)


@pytest.mark.parametrize(
    ("numel", "grad", "native"),
    [
        # The measured thresholds (benchmarks/ops.py, docs/performance.rst): the native forward
        # from 2**16 elements, forward + backward from 2**17.
        (1 << 16, False, True),
        ((1 << 16) - 1, False, False),
        (1 << 17, True, True),
        ((1 << 17) - 1, True, False),
        ((3 << 16), True, True),
    ],
)
def test_bias_act_default_path_thresholds_on_cpu(numel, grad, native, monkeypatch):
    from ganblocks.ops import _bias_act_native, _dispatch
    from ganblocks.ops import bias_act as bias_act_fn

    if not _dispatch.is_available(torch.device("cpu")):
        pytest.skip("native kernels unavailable")
    calls = []
    real = _bias_act_native.bias_act
    monkeypatch.setattr(_bias_act_native, "bias_act", lambda *a: calls.append(1) or real(*a))
    x = torch.randn(numel, 1, requires_grad=grad)
    bias_act_fn(x, torch.zeros(1), act="lrelu")
    assert bool(calls) == native


def test_upfirdn2d_params_defaults_are_the_identity():
    from ganblocks.ops._params import UpFirDn2dParams

    p = UpFirDn2dParams.parse()
    assert (p.upx, p.upy, p.downx, p.downy) == (1, 1, 1, 1)
    assert (p.padx0, p.padx1, p.pady0, p.pady1) == (0, 0, 0, 0)
    assert p.flip_filter is False and p.gain == 1.0
    x = torch.randn(1, 2, 5, 6, dtype=torch.float64)
    torch.testing.assert_close(upfirdn2d(x, None, impl="ref"), x)


def test_factors_and_padding_given_as_tensors():
    from ganblocks.ops._params import parse_padding, parse_scaling

    assert parse_scaling(torch.tensor([2, 3]), "up") == (2, 3)
    assert parse_scaling(torch.tensor(2), "up") == (2, 2)  # one element: like an int
    assert parse_scaling(torch.tensor([4]), "down") == (4, 4)
    assert parse_padding(torch.tensor([1, 2])) == (1, 1, 2, 2)
    assert parse_padding(torch.tensor([[1, 2], [3, -4]])) == (1, 2, 3, -4)  # read flat


@pytest.mark.parametrize(
    ("x", "error", "match"),
    [
        (torch.randn(2, 3, 5), ValueError, r"^x: expected a tensor of rank 4, got shape \(2, 3"),
        ([[1.0]], TypeError, r"^x: expected a torch.Tensor, got list"),
        (torch.randn(1, 3, 5, 5, 1), ValueError, r"^x: expected a tensor of rank 4"),
    ],
)
def test_conv2d_resample_checks_x_by_name(x, error, match):
    with pytest.raises(error, match=match):
        conv2d_resample(x, torch.randn(4, 3, 3, 3))


@pytest.mark.parametrize("taps", [torch.ones(3, 5), torch.ones(5, 2), torch.ones(4)])
def test_reference_output_size_does_not_depend_on_the_channel_count(taps):
    from ganblocks.ops._reference import upfirdn2d_correlate

    args = (2, 1, 1, 2, 1, 0, 2, 1)  # upx, upy, downx, downy, padx0, padx1, pady0, pady1
    one = upfirdn2d_correlate(torch.randn(1, 1, 7, 6), taps, *args)
    none = upfirdn2d_correlate(torch.randn(1, 0, 7, 6), taps, *args)
    assert none.shape == (1, 0, *one.shape[2:])


def test_parse_padding_of_a_scalar_checks_and_converts_it():
    import numpy as np

    from ganblocks.ops._params import parse_padding

    p = parse_padding(np.int64(-2))
    assert p == (-2, -2, -2, -2) and all(type(v) is int for v in p)
    for bad in (1.0, 1.5, True, np.bool_(True), "1", None):
        with pytest.raises(TypeError, match=r"^pad: expected an integer"):
            parse_padding(bad, "pad")


def test_activation_codes_match_the_kernels_enum():
    """``ActivationSpec.code`` is the id the native kernels switch on: compare the table with
    the ``ActCode`` enum of ``csrc/activations.h`` (kLinear = 1 ... kSwish = 9)."""
    import re
    from pathlib import Path

    from ganblocks.ops._params import ACTIVATIONS

    header = Path(__file__).resolve().parents[2] / "csrc" / "activations.h"
    enum = re.search(r"enum ActCode : int \{(.*?)\};", header.read_text(), re.S).group(1)
    ids = {name.lower(): int(v) for name, v in re.findall(r"k(\w+) = (\d+)", enum)}
    assert ids == {name: spec.code for name, spec in ACTIVATIONS.items()}


def test_parsed_parameters_are_frozen_and_hashable():
    import dataclasses

    from ganblocks.ops._params import ACTIVATIONS, BiasActParams, UpFirDn2dParams

    a = BiasActParams(ACTIVATIONS["lrelu"], dim=1, alpha=0.2, gain=1.0, clamp=None)
    b = BiasActParams(ACTIVATIONS["lrelu"], dim=1, alpha=0.2, gain=1.0, clamp=None)
    assert a == b and hash(a) == hash(b) and len({a, b}) == 1
    u = UpFirDn2dParams.parse(up=2, padding=1)
    assert hash(u) == hash(UpFirDn2dParams.parse(up=2, padding=1))
    for obj, field in ((a, "clamp"), (u, "upx"), (ACTIVATIONS["relu"], "code")):
        with pytest.raises(dataclasses.FrozenInstanceError):
            setattr(obj, field, 0)


# ---- _params: every check, its exception and its message (seed-10 hardening) -----------------


def test_check_tensor_names_the_argument_and_the_expectation():
    from ganblocks.ops._params import check_tensor

    x = torch.zeros(2, 3)
    assert check_tensor(x, "x") is x and check_tensor(x, "x", ndim=2) is x
    with pytest.raises(TypeError, match=r"^w: expected a torch\.Tensor, got list$"):
        check_tensor([1.0], "w")
    with pytest.raises(TypeError, match=r"^w: expected a floating-point tensor, got dtype "
                                        r"torch\.int64$"):
        check_tensor(torch.zeros(2, dtype=torch.long), "w")
    with pytest.raises(ValueError, match=r"^w: expected a tensor of rank 3, got shape \(2, 3\)$"):
        check_tensor(x, "w", ndim=3)


def test_integers_of_every_kind_and_the_rest_refused():
    import numpy as np

    from ganblocks.ops._params import _as_int

    for v, e in ((3, 3), (np.int32(-2), -2), (0, 0)):
        got = _as_int(v, "n")
        assert got == e and type(got) is int
    for bad in (True, np.bool_(False), 2.0, "2", None):
        with pytest.raises(TypeError, match=r"^n: expected an integer, got "):
            _as_int(bad, "n")
    with pytest.raises(TypeError, match=r"^n: expected an integer, got 2\.5$"):
        _as_int(2.5, "n")


def test_parse_scaling_pairs_checks_and_messages():
    from ganblocks.ops._params import parse_scaling

    assert parse_scaling(1, "up") == (1, 1)
    assert parse_scaling([2, 3], "up") == (2, 3) and parse_scaling((3, 1), "up") == (3, 1)
    with pytest.raises(ValueError, match=r"^down: expected an int or a pair \[x, y\], got "
                                         r"\[1, 2, 3\]$"):
        parse_scaling((1, 2, 3), "down")
    with pytest.raises(ValueError, match=r"^down: expected an int or a pair"):
        parse_scaling([2], "down")
    for bad in (0, [1, 0], [0, 1], -1):
        with pytest.raises(ValueError, match=r"^up: factors must be integers >= 1, got "):
            parse_scaling(bad, "up")
    with pytest.raises(ValueError, match=r"^up: factors must be integers >= 1, got \[2, 0\]$"):
        parse_scaling([2, 0], "up")
    with pytest.raises(TypeError, match=r"^up: expected an integer"):
        parse_scaling([2, 1.5], "up")
    # A tensor of 1 or 2 elements is read as an int or a pair; any other size is refused.
    with pytest.raises(TypeError, match=r"^up: expected an integer"):
        parse_scaling(torch.tensor([1, 2, 3]), "up")
    with pytest.raises(ValueError, match=r"^up: factors must be"):
        parse_scaling(torch.tensor([0]), "up")


def test_parse_padding_sequences_and_the_message_of_a_bad_length():
    from ganblocks.ops._params import parse_padding

    assert parse_padding(0) == (0, 0, 0, 0)
    assert parse_padding([3, -1]) == (3, 3, -1, -1)
    assert parse_padding((1, 2, 3, 4)) == (1, 2, 3, 4)
    for bad in ([1], [1, 2, 3], (1, 2, 3, 4, 5), []):
        with pytest.raises(ValueError, match=r"^pad: expected an int, \[px, py\] or "
                                             rf"\[x0, x1, y0, y1\], got a sequence of length "
                                             rf"{len(bad)}$"):
            parse_padding(bad, "pad")
    with pytest.raises(TypeError, match=r"^padding: expected an integer"):
        parse_padding([1, 2.0])


def test_check_filter_accepts_none_and_1d_or_2d_float_filters_only():
    from ganblocks.ops._params import check_filter, filter_size

    assert check_filter(None) is None
    f1, f2 = torch.ones(3), torch.ones(2, 5)
    assert check_filter(f1) is f1 and check_filter(f2, "g") is f2
    with pytest.raises(TypeError, match=r"^g: expected None or a torch\.Tensor \(see "
                                        r"setup_filter\), got list$"):
        check_filter([1.0], "g")
    with pytest.raises(TypeError, match=r"^g: expected a floating-point filter, got dtype "
                                        r"torch\.int64$"):
        check_filter(torch.ones(3, dtype=torch.long), "g")
    for bad in (torch.ones(()), torch.ones(2, 2, 2), torch.ones(0), torch.ones(0, 3)):
        with pytest.raises(ValueError, match=r"^g: expected a non-empty 1-D \(separable\) or "
                                             r"2-D \[fh, fw\] filter, got shape "):
            check_filter(bad, "g")
    assert filter_size(None) == (1, 1)
    assert filter_size(f2) == (5, 2) and filter_size(torch.ones(4)) == (4, 4)


def test_check_gain_of_numbers_tensors_and_the_rest():
    import numpy as np

    from ganblocks.ops._params import check_gain

    for v, e in ((2, 2.0), (np.float32(0.5), 0.5), (torch.tensor([3.0]), 3.0),
                 (torch.tensor(-1), -1.0), (0, 0.0)):
        got = check_gain(v)
        assert got == e and type(got) is float
    for bad in (True, np.bool_(True), "2", None, torch.tensor([1.0, 2.0]),
                torch.tensor(1 + 1j), 1j):
        with pytest.raises(TypeError, match=r"^g: expected a real number, got "):
            check_gain(bad, "g")
    for bad in (float("inf"), float("-inf"), float("nan"), torch.tensor(float("inf"))):
        with pytest.raises(ValueError, match=r"^gain: expected a finite number, got "):
            check_gain(bad)
    with pytest.raises(TypeError, match=r"^gain: expected a real number, got '2'$"):
        check_gain("2")


def test_check_bool_takes_python_and_numpy_bools_only():
    import numpy as np

    from ganblocks.ops._params import check_bool

    assert check_bool(True, "b") is True and check_bool(np.bool_(False), "b") is False
    for bad in (1, 0, None, "True"):
        with pytest.raises(TypeError, match=r"^flag: expected True or False, got "):
            check_bool(bad, "flag")


def test_upfirdn2d_params_parse_each_argument_under_its_own_name():
    from ganblocks.ops._params import UpFirDn2dParams

    p = UpFirDn2dParams.parse(up=[2, 3], down=(1, 4), padding=[1, 2, 3, 4], flip_filter=True,
                              gain=2)
    assert (p.upx, p.upy, p.downx, p.downy) == (2, 3, 1, 4)
    assert p.padding == (1, 2, 3, 4) and (p.padx0, p.padx1, p.pady0, p.pady1) == (1, 2, 3, 4)
    assert p.flip_filter is True and p.gain == 2.0 and type(p.gain) is float
    for kwargs, match in (({"up": 0}, "^up: "), ({"down": 0}, "^down: "),
                          ({"padding": [1, 2, 3]}, "^padding: ")):
        with pytest.raises(ValueError, match=match):
            UpFirDn2dParams.parse(**kwargs)
    with pytest.raises(TypeError, match=r"^flip_filter: expected True or False"):
        UpFirDn2dParams.parse(flip_filter=1)
    with pytest.raises(TypeError, match=r"^gain: expected a real number"):
        UpFirDn2dParams.parse(gain="1")


def test_output_size_and_transpose_of_an_asymmetric_call():
    from ganblocks.ops._params import UpFirDn2dParams

    f = torch.ones(3, 5)  # fh = 3, fw = 5
    p = UpFirDn2dParams.parse(up=[2, 3], down=[3, 2], padding=[1, 2, 3, 0], gain=0.5)
    # out_w = (7*2 + 1 + 2 - 5) // 3 + 1 = 5, out_h = (6*3 + 3 + 0 - 3) // 2 + 1 = 10
    assert p.output_size(6, 7, f) == (10, 5)
    assert p.output_size(6, 7, None) == ((6 * 3 + 3 - 1) // 2 + 1, (7 * 2 + 3 - 1) // 3 + 1)
    t = p.transpose(6, 7, f)
    assert (t.upx, t.upy, t.downx, t.downy) == (3, 2, 2, 3)
    # x0' = fw - 1 - x0 = 3, x1' = 7*2 - 5*3 + 1 - 2 + 1 = -1;
    # y0' = fh - 1 - y0 = -1, y1' = 6*3 - 10*2 + 3 - 3 + 1 = -1
    assert t.padding == (3, -1, -1, -1)
    assert t.flip_filter is True and t.gain == 0.5
    assert t.output_size(10, 5, f) == (6, 7)
    assert p.transpose(6, 7, f).transpose(10, 5, f).flip_filter is False


def test_activation_table_defaults_and_functions():
    import math

    from ganblocks.ops._params import ACTIVATIONS

    x = torch.tensor([-2.0, -0.5, 0.0, 1.5], dtype=torch.float64)
    table = {name: (s.def_alpha, s.def_gain, s.has_2nd_grad) for name, s in ACTIVATIONS.items()}
    r2 = math.sqrt(2)
    assert table == {
        "linear": (0.0, 1.0, False), "relu": (0.0, r2, False), "lrelu": (0.2, r2, False),
        "tanh": (0.0, 1.0, True), "sigmoid": (0.0, 1.0, True), "elu": (0.0, 1.0, True),
        "selu": (0.0, 1.0, True), "softplus": (0.0, 1.0, True), "swish": (0.0, r2, True),
    }
    assert all(s.name == name for name, s in ACTIVATIONS.items())
    expected = {
        "linear": x, "relu": x.clamp(min=0), "lrelu": torch.where(x > 0, x, 0.3 * x),
        "tanh": torch.tanh(x), "sigmoid": 1 / (1 + torch.exp(-x)),
        "elu": torch.where(x > 0, x, torch.exp(x) - 1),
        "selu": 1.0507009873554805 * torch.where(x > 0, x, 1.6732632423543772 * (torch.exp(x) - 1)),
        "softplus": torch.log1p(torch.exp(x)), "swish": x / (1 + torch.exp(-x)),
    }
    for name, e in expected.items():
        torch.testing.assert_close(ACTIVATIONS[name].func(x, 0.3), e, msg=name)
