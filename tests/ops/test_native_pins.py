"""Pins of the native backend's Python side found unchecked by mutation samples (issue 23): the
test helper ``isolated_state`` and ``native.verify``. Fast: nothing here compiles (the kernels are
built, or loaded from the cache, once)."""

from __future__ import annotations

import os
import re
from pathlib import Path

import pytest
import torch

from ganblocks.ops import _build, _dispatch, _kernels, _selfcheck, native
from ganblocks.ops.testing import isolated_state


@pytest.fixture(scope="module")
def built():
    if os.environ.get("GANBLOCKS_NATIVE", "auto").strip().lower() in ("0", "off", "no", "false"):
        pytest.skip("native kernels disabled by GANBLOCKS_NATIVE=0")
    return native.build()


def test_isolated_state_starts_fresh_and_gives_everything_back(built):
    saved_verified = dict(_selfcheck.verified)
    probe = ("probe-op", "outside")
    _selfcheck.verified[probe] = True
    try:
        before_state = dict(_dispatch.state)
        before_verified = dict(_selfcheck.verified)
        assert before_state["status"] == "ok"
        with isolated_state():
            # As if the process had not tried to build yet, with nothing self-checked.
            assert _dispatch.state == {"status": None, "error": None, "flavour": None,
                                       "path": None}
            assert _selfcheck.verified == {}
            assert native.status()["state"] == "not built yet"
            # Whatever the block records is dropped on the way out.
            _selfcheck.verified[("probe-op", "inside")] = False
            _dispatch.state.update(status="failed", error="broken on purpose")
        assert _dispatch.state == before_state
        assert _selfcheck.verified == before_verified
    finally:
        _selfcheck.verified.clear()
        _selfcheck.verified.update(saved_verified)


def test_verify_checks_every_cpu_dtype_layout_and_op_once(built):
    """``verify("cpu")``: both ops forward, backward and double backward, with and without bias
    and clamp, in every CPU dtype and both layouts; all agree; only new configurations are
    returned; the user's random stream and the checked devices are left as they were."""
    saved = dict(_selfcheck.verified)
    _selfcheck.verified.clear()
    try:
        rng = torch.random.get_rng_state()
        results = native.verify("cpu")
        assert torch.equal(torch.random.get_rng_state(), rng)
        assert _selfcheck.CHECKED_DEVICES == ("cuda",)
        assert results and all(results.values())
        assert results == _selfcheck.verified
        by_op: dict = {}
        for key in results:
            by_op.setdefault(key[0], []).append(key)
        assert set(by_op) == {"upfirdn2d", "bias_act", "bias_act_grad", "bias_act_grad2"}
        for name, keys in by_op.items():
            assert {k[1] for k in keys} == set(_kernels.CPU_DTYPES), name
            if name == "upfirdn2d":
                layouts = {k[-1][1] for k in keys}
                # up-sampling (up=2), down-sampling (down=2) and the plain filter, with the
                # transposed ops of their gradients: [1, 3, 3, 1] taps throughout.
                assert {k[2] for k in keys} == {(4, 4)}
                assert {(k[3], k[5]) for k in keys} >= {(2, 1), (1, 2), (1, 1)}
            else:
                layouts = {k[6] for k in keys}
            assert layouts == {False, True}, name
        bias_keys = by_op["bias_act"]
        assert {k[3] for k in bias_keys} == {True, False}  # with and without bias
        assert {k[5] for k in bias_keys} == {True, False}  # with and without clamp
        assert len({k[2] for k in bias_keys}) == 2  # lrelu and swish (as kernel codes)
        # A second call finds every configuration checked already.
        assert native.verify("cpu") == {}
        assert native.verify(torch.device("cpu")) == {}
    finally:
        _selfcheck.verified.clear()
        _selfcheck.verified.update(saved)


def test_verify_checks_what_the_documented_workload_checks(built):
    """``verify`` runs the wrappers with ``setup_filter([1, 3, 3, 1])`` (up-sampling, then
    ``bias_act`` with a bias, down-sampling, ``bias_act`` with a clamp, filtering), forward,
    backward and double backward of a squared loss: the same workload written out here, with
    the CPU calls self-checked, must check exactly the configurations ``verify`` returns."""
    from ganblocks.ops import bias_act, downsample2d, filter2d, setup_filter, upsample2d

    saved = dict(_selfcheck.verified)
    try:
        _selfcheck.verified.clear()
        f = setup_filter([1, 3, 3, 1])
        with _selfcheck.checking_device("cpu"):
            for dtype in _kernels.CPU_DTYPES:
                for cl in (False, True):
                    x = torch.randn(2, 8, 16, 16).to(dtype)
                    x = x.contiguous(memory_format=torch.channels_last) if cl else x
                    x.requires_grad_(True)
                    b = torch.randn(8).to(dtype).requires_grad_(True)
                    y = bias_act(upsample2d(x, f, impl="native"), b, act="lrelu", impl="native")
                    y = downsample2d(y, f, impl="native")
                    y = bias_act(y, None, act="swish", clamp=4.0, impl="native")
                    y = filter2d(y, f, impl="native")
                    (g,) = torch.autograd.grad(y.float().square().sum(), x, create_graph=True)
                    torch.autograd.grad(g.float().square().sum(), [x, b])
        expected = dict(_selfcheck.verified)
        _selfcheck.verified.clear()
        assert native.verify("cpu") == expected
        assert {k[0] for k in expected} == {"upfirdn2d", "bias_act", "bias_act_grad",
                                            "bias_act_grad2"}
    finally:
        _selfcheck.verified.clear()
        _selfcheck.verified.update(saved)


def test_verify_refuses_a_device_without_kernels(built):
    with pytest.raises(RuntimeError, match="not available on meta"):
        native.verify("meta")


# ---- _selfcheck: the machinery, on its own -----------------------------------------------------


@pytest.fixture
def fresh_verified():
    saved = dict(_selfcheck.verified)
    _selfcheck.verified.clear()
    yield _selfcheck.verified
    _selfcheck.verified.clear()
    _selfcheck.verified.update(saved)


def test_rel_err_is_a_float_relative_to_the_reference_magnitude():
    a = torch.tensor([1.0, 2.0, -3.0])
    b = torch.tensor([1.5, 2.0, -4.0])
    # max |a - b| = 1, max |b| = 4
    err = _selfcheck.rel_err(a, b)
    assert isinstance(err, float) and err == 0.25
    # An all-zero reference: the absolute error itself.
    assert _selfcheck.rel_err(torch.tensor([0.5, -2.0]), torch.zeros(2)) == 2.0
    # Half-precision inputs are compared in float64.
    h = torch.tensor([1024.0, 1.0], dtype=torch.float16)
    assert _selfcheck.rel_err(h + torch.tensor([0.0, 1.0], dtype=torch.float16), h) == 1 / 1024


@pytest.mark.parametrize(
    ("dtype", "err", "ok"),
    [
        (torch.float64, 1e-9, True),  # at the tolerance: agrees
        (torch.float64, 1e-7, False),
        (torch.float32, 1e-4, True),
        (torch.float32, 1.5e-4, False),
        (torch.float32, 1e-3, False),
        (torch.float16, 1e-2, True),
        (torch.bfloat16, 5e-2, False),
    ],
)
def test_verified_ok_applies_the_tolerance_of_the_keys_dtype(fresh_verified, dtype, err, ok):
    key = ("probe-op", dtype, "cfg")
    calls = []

    def check():
        calls.append(1)
        return err

    if ok:
        assert _selfcheck.verified_ok(key, check) is True
    else:
        with pytest.warns(_selfcheck.NativeKernelWarning, match="probe-op.*DISAGREES"):
            assert _selfcheck.verified_ok(key, check) is False
    # Remembered: the check runs once per key.
    assert _selfcheck.verified_ok(key, check) is ok and calls == [1]
    assert fresh_verified == {key: ok}


def test_a_check_that_raises_counts_as_a_mismatch(fresh_verified):
    key = ("probe-op", torch.float32, "launch")

    def check():
        raise RuntimeError("launch failed: too many resources")

    with pytest.warns(_selfcheck.NativeKernelWarning, match=r"RuntimeError: launch failed"):
        assert _selfcheck.verified_ok(key, check) is False
    assert fresh_verified == {key: False}


def test_check_inputs_in_either_layout_hold_the_same_values():
    like = torch.empty(0, dtype=torch.float16)
    plain = _selfcheck.randn((2, 3, 4, 5), like, _selfcheck.check_generator(like.device))
    nhwc = _selfcheck.randn((2, 3, 4, 5), like, _selfcheck.check_generator(like.device), True)
    assert plain.is_contiguous() and not plain.is_contiguous(memory_format=torch.channels_last)
    assert nhwc.is_contiguous(memory_format=torch.channels_last) and not nhwc.is_contiguous()
    assert nhwc.dtype == torch.float16 and torch.equal(plain, nhwc)
    # Drawn in float32, then cast: every dtype sees the same values.
    ref = torch.randn(2, 3, 4, 5, generator=torch.Generator().manual_seed(_selfcheck.CHECK_SEED))
    assert torch.equal(plain, ref.half())


def test_tracing_recognises_fake_tensors_by_their_type():
    from torch._subclasses.fake_tensor import FakeTensorMode

    mode = FakeTensorMode()
    with mode:
        fake = torch.empty(2, 3)
        assert _selfcheck.tracing(fake)
    # Outside the mode, a fake tensor is still not a real one: no check may run on it.
    assert _selfcheck.tracing(fake)
    assert not _selfcheck.tracing(torch.empty(2, 3))
    assert not _selfcheck.tracing(torch.nn.Parameter(torch.empty(2, 3)))
    with _selfcheck.checking_device("cpu"):
        assert _selfcheck.check_due(torch.empty(2, 3)) and not _selfcheck.check_due(fake)


@pytest.mark.parametrize("shape", [(1 << 21,), (3 << 20, 1, 1), (3 << 19, 1)])
def test_bias_act_check_inputs_of_vectors_also_cross_the_grid_limit(shape):
    # x strides over the CUDA grid (more elements than the 1-D grid has threads); the check
    # inputs must include one that does too, even when x has a single non-trivial dimension.
    from ganblocks.ops import _bias_act_native

    limit = _kernels.CUDA_MAX_BLOCKS_1D * 256
    x = torch.empty(shape, device="meta")
    assert x.numel() > limit
    sizes = [torch.Size(s).numel() for s in _bias_act_native.check_shapes(x, None)]
    assert sizes[0] <= 1 << 16  # the small one
    assert limit < max(sizes) < 2 * limit + (1 << 16)


def _bias_act_inputs():
    gen = torch.Generator().manual_seed(3)
    x = torch.randn(2, 5, 4, 3, generator=gen, dtype=torch.float64)
    b = torch.randn(5, generator=gen, dtype=torch.float64)
    return x, b


def _disagree_on(monkeypatch, op):
    """CPU calls are self-checked, and the check of ``op`` (only) disagrees."""
    monkeypatch.setattr(_selfcheck, "CHECKED_DEVICES", ("cpu", "cuda"))
    checked = []

    def verified_ok(key, check):
        checked.append(key[0])
        return key[0] != op

    monkeypatch.setattr(_selfcheck, "verified_ok", verified_ok)
    return checked


@pytest.mark.parametrize("op", ["bias_act", "bias_act_grad"])
def test_bias_act_falls_back_to_the_reference_where_its_check_disagrees(built, monkeypatch, op):
    # The self-check of one op of the family disagrees (the others run natively): the value and
    # the gradients must still equal the reference path's.
    from ganblocks.ops import bias_act

    checked = _disagree_on(monkeypatch, op)
    x0, b0 = _bias_act_inputs()

    def run(impl):
        x, b = x0.clone().requires_grad_(True), b0.clone().requires_grad_(True)
        y = bias_act(x, b, act="lrelu", clamp=0.5, impl=impl)
        return (y, *torch.autograd.grad(y.square().sum(), [x, b]))

    got = run("native")
    assert op in checked
    for a, e in zip(got, run("ref")):
        torch.testing.assert_close(a, e)


def test_bias_act_forward_fallback_keeps_double_backward(built, monkeypatch):
    from ganblocks.ops import bias_act

    _disagree_on(monkeypatch, "bias_act")
    x0, b0 = _bias_act_inputs()

    def run(impl):
        x, b = x0.clone().requires_grad_(True), b0.clone().requires_grad_(True)
        y = bias_act(x, b, act="lrelu", clamp=0.5, impl=impl)
        gx, gb = torch.autograd.grad(y.square().sum(), [x, b], create_graph=True)
        return torch.autograd.grad(gx.square().sum() + gb.square().sum(), [x, b])

    for a, e in zip(run("native"), run("ref")):
        torch.testing.assert_close(a, e)


def test_bias_act_grad_fallback_keeps_double_backward(built, monkeypatch):
    # Found by the issue-23 mutation sample: when the check of bias_act_grad disagreed, its
    # reference fallback returned a detached dx, so a double backward (R1) through it failed.
    from ganblocks.ops import bias_act

    checked = _disagree_on(monkeypatch, "bias_act_grad")
    x0, b0 = _bias_act_inputs()

    def run(impl):
        x, b = x0.clone().requires_grad_(True), b0.clone().requires_grad_(True)
        y = bias_act(x, b, act="lrelu", clamp=0.5, impl=impl)
        gx, gb = torch.autograd.grad(y.square().sum(), [x, b], create_graph=True)
        return (gx, gb, *torch.autograd.grad(gx.square().sum() + gb.square().sum(), [x, b]))

    got = run("native")
    assert "bias_act_grad" in checked
    for a, e in zip(got, run("ref")):
        torch.testing.assert_close(a, e)


@pytest.mark.parametrize("act", ["lrelu", "swish"])
def test_bias_act_double_backward_through_the_bias_gradient_alone(built, act):
    # The second-order term reaches x only through db (dx is not used): the bias-shaped gradient
    # must be spread over x's shape.
    from ganblocks.ops import bias_act

    x0, b0 = _bias_act_inputs()

    def run(impl):
        x, b = x0.clone().requires_grad_(True), b0.clone().requires_grad_(True)
        y = bias_act(x, b, act=act, impl=impl)
        _, gb = torch.autograd.grad(y.square().sum(), [x, b], create_graph=True)
        return torch.autograd.grad(gb.square().sum(), [x, b])

    for a, e in zip(run("native"), run("ref")):
        torch.testing.assert_close(a, e)


def _dense_by_definition(t: torch.Tensor) -> bool:
    """Non-overlapping and dense, from the definition: the elements' memory offsets are exactly
    ``numel`` consecutive ones, each used once (true for an empty tensor)."""
    offsets = torch.zeros((), dtype=torch.int64)
    for size, stride in zip(t.shape, t.stride()):
        offsets = offsets.unsqueeze(-1) + torch.arange(size) * stride
    flat = offsets.flatten().sort().values
    return flat.numel() == 0 or torch.equal(flat - flat[0], torch.arange(flat.numel()))


def test_dense_layouts_are_recognised_as_aten_defines_them():
    from ganblocks.ops import _bias_act_native

    base = torch.empty(2, 3, 4, 5)
    cl = base.contiguous(memory_format=torch.channels_last)
    cases = {
        "contiguous": base, "channels_last": cl, "transposed": base.transpose(1, 3),
        "cropped": base[..., :3], "strided": base[:, ::2], "cropped_nhwc": cl[..., 1:],
        "expanded": torch.empty(1, 3, 1, 1).expand(2, 3, 4, 5), "ones": torch.empty(2, 1, 4, 1),
        "one_element": torch.empty_strided((1, 1), (5, 9)), "scalar": torch.tensor(1.0),
        "empty": torch.empty(2, 0, 3),
        "empty_odd_strides": torch.empty_strided((2, 0, 3), (7, 5, 2)),
        "overlapping": torch.empty(10).as_strided((3, 3), (1, 1)),
    }
    got = {k: _bias_act_native._non_overlapping_and_dense(t) for k, t in cases.items()}
    assert got == {k: _dense_by_definition(t) for k, t in cases.items()}
    assert not got["cropped"] and got["empty_odd_strides"]  # both kinds occur
    # A dense tensor is used as it is, anything else as a contiguous copy.
    assert _bias_act_native._dense(cl) is cl
    assert _bias_act_native._dense(cases["cropped_nhwc"]).is_contiguous()


@pytest.mark.parametrize("shape", [(8, 40, 32, 32), (3, 700, 90), (64, 64, 64), (5, 3, 7)])
@pytest.mark.parametrize("keep", [None, 1])
def test_bias_act_check_shapes_keep_every_axis_at_two_or_more(shape, keep):
    """The check input shrinks x's axes, but never below two entries (an axis of one would not
    check the indexing along it), and keeps the bias axis whole."""
    from ganblocks.ops import _bias_act_native

    small = _bias_act_native.check_shapes(torch.empty(shape, device="meta"), keep)[0]
    assert len(small) == len(shape)
    assert all(s >= min(o, 2) and s <= o for s, o in zip(small, shape))
    if keep is not None:
        assert small[keep] == shape[keep]


def test_bias_act_check_keeps_the_bias_axis_of_x(built, monkeypatch):
    from ganblocks.ops import _bias_act_native, bias_act

    seen = []
    real = _bias_act_native._ref_value

    def record(name, dy, x, b, p, g=None):
        seen.append((tuple(x.shape), None if b is None else tuple(b.shape)))
        return real(name, dy, x, b, p, g)

    monkeypatch.setattr(_bias_act_native, "_ref_value", record)
    monkeypatch.setattr(_selfcheck, "CHECKED_DEVICES", ("cpu", "cuda"))
    monkeypatch.setattr(_selfcheck, "verified", {})
    x = torch.randn(8, 40, 32, 32)
    bias_act(x, torch.randn(40), act="lrelu", impl="native")
    assert seen and all(xs[1] == 40 and bs == (40,) for xs, bs in seen)
    seen.clear()
    bias_act(x, None, act="lrelu", impl="native")
    assert seen and all(bs is None and torch.Size(xs).numel() <= 1 << 16 for xs, bs in seen)


def test_bias_act_check_key_says_whether_x_strides_over_the_grid(built, monkeypatch):
    """The key's last entry: more elements than the 1-D CUDA grid has threads (4096 x 256), the
    same test that adds a grid-striding input to the check."""
    from ganblocks.ops import _bias_act_native, bias_act

    keys = []
    monkeypatch.setattr(_selfcheck, "CHECKED_DEVICES", ("cpu", "cuda"))
    monkeypatch.setattr(_selfcheck, "verified_ok", lambda key, check: keys.append(key) or True)
    limit = _kernels.CUDA_MAX_BLOCKS_1D * 256
    assert limit == 1 << 20
    for numel in (5000, limit, limit + 1):
        keys.clear()
        x = torch.zeros(numel)
        bias_act(x, None, act="lrelu", impl="native")
        (key,) = keys
        assert key[-1] is (numel > limit)
        assert len(_bias_act_native.check_shapes(x, None)) == (2 if key[-1] else 1)


# ---- _upfirdn2d_native: the launch path predicted from the CUDA sources -----------------------

CSRC = _build.source_dir()


def _meta(shape, channels_last=False):
    t = torch.empty(shape, device="meta")
    return t.contiguous(memory_format=torch.channels_last) if channels_last else t


def test_launch_path_takes_the_tiled_factors_of_the_cuda_launcher():
    from ganblocks.ops import _upfirdn2d_native

    text = (CSRC / "upfirdn2d_cuda.cu").read_text()
    tiled = {(int(u), int(d)) for u, d in re.findall(r"up == (\d+) && down == (\d+)", text)}
    assert (2, 1) in tiled and (1, 2) in tiled  # the parse found the launcher
    w = torch.ones(4, 4)
    for up in range(1, 6):
        for down in range(1, 6):
            x = _meta((1, 4, 16, 16))
            path = _upfirdn2d_native.launch_path(x, w, (up, up, down, down, 2, 1, 2, 1))
            assert (path[0] == "tiled") == ((up, down) in tiled), (up, down, path)


def test_launch_path_channels_last_needs_more_than_one_channel():
    from ganblocks.ops import _upfirdn2d_native

    # csrc/cuda_ops.cpp: channels_last = !x.is_contiguous() && NHWC-contiguous && C > 1
    text = (CSRC / "cuda_ops.cpp").read_text()
    assert re.search(r"ChannelsLast\)\s*&&\s*C > 1", text)
    w, args = torch.ones(4, 4), (1, 1, 1, 1, 2, 1, 2, 1)
    assert _upfirdn2d_native.launch_path(_meta((2, 2, 8, 8), True), w, args)[1] is True
    assert _upfirdn2d_native.launch_path(_meta((2, 3, 8, 8), True), w, args)[1] is True
    assert _upfirdn2d_native.launch_path(_meta((2, 2, 8, 8)), w, args)[1] is False


@pytest.mark.parametrize("down", [1, 2])
def test_launch_path_hands_tall_nhwc_outputs_to_the_generic_kernel_at_the_grid_limit(down):
    from ganblocks.ops import _upfirdn2d_native

    # csrc/upfirdn2d_cuda.cu, NHWC tiles: TW = DOWN == 1 ? 8 : 4, TH = TW; tiled while the
    # tile rows fit the grid's y (kMaxGridY).
    text = (CSRC / "upfirdn2d_cuda.cu").read_text()
    assert "constexpr int TW = DOWN == 1 ? 8 : 4, TH = TW;" in text
    th = 8 if down == 1 else 4
    w, args = torch.ones(1, 1), (1, 1, down, down, 0, 0, 0, 0)
    for oh, kind in ((th * _kernels.CUDA_MAX_GRID_Y, "tiled"),
                     (th * _kernels.CUDA_MAX_GRID_Y + 1, "generic")):
        x = _meta((1, 4, (oh - 1) * down + 1, 2 * down), True)
        assert _upfirdn2d_native._out_hw(x.shape[2], x.shape[3], w, args)[0] == oh
        assert _upfirdn2d_native.launch_path(x, w, args)[:2] == (kind, True), oh


def test_launch_path_tiles_filters_up_to_the_kernels_largest():
    from ganblocks.ops import _upfirdn2d_native

    # csrc/upfirdn2d_cuda.cu: the tiled kernels take filters up to kFMax x kFMax.
    text = (CSRC / "upfirdn2d_cuda.cu").read_text()
    fmax = int(re.search(r"constexpr int kFMax = (\d+);", text)[1])
    args = (2, 2, 1, 1, 4, 4, 4, 4)
    x = _meta((1, 4, 16, 16))
    for fw, fh in ((fmax, fmax), (fmax, 3), (3, fmax), (fmax + 1, 3), (3, fmax + 1)):
        path = _upfirdn2d_native.launch_path(x, torch.ones(fh, fw), args)
        assert (path[0] == "tiled") == (fw <= fmax and fh <= fmax), (fw, fh, path)
    # A separable filter of kFMax taps is tiled too; one more makes it two passes.
    assert _upfirdn2d_native.launch_path(x, torch.ones(fmax), args)[0] == "tiled"
    assert _upfirdn2d_native.launch_path(x, torch.ones(fmax + 1), args)[0] == "separable"


def test_check_input_that_already_strides_the_grid_gets_no_second_one():
    """A tall channels-last x takes the generic kernel; its first check input (32 channels at
    x's size) already has more outputs than the 1-D grid has threads, so it checks the strided
    launch itself and no second, just-past-the-limit input is added."""
    from ganblocks.ops import _upfirdn2d_native

    limit = _kernels.CUDA_MAX_BLOCKS_1D * 256
    w, args = torch.ones(4, 4), (1, 1, 1, 1, 1, 2, 1, 2)
    x = _meta((1, 32, 8 * _kernels.CUDA_MAX_GRID_Y + 8, 1), True)
    assert _upfirdn2d_native.launch_path(x, w, args) == ("generic", True, True)
    shapes = _upfirdn2d_native.check_shapes(x, w, args)
    assert shapes == [(1, 32, x.shape[2], 1)]
    oh, ow = _upfirdn2d_native._out_hw(x.shape[2], 1, w, args)
    assert 32 * oh * ow > limit >= oh * ow
    # Four images of 2 channels stride; the first input (one image) does not: then one just
    # past the limit is added.
    x2 = _meta((4, 2, 8 * _kernels.CUDA_MAX_GRID_Y + 8, 1), True)
    shapes2 = _upfirdn2d_native.check_shapes(x2, w, args)
    assert len(shapes2) == 2 and shapes2[1][1] * oh * ow > limit >= (shapes2[1][1] - 1) * oh * ow


def test_disagreeing_upfirdn2d_check_reports_the_error_relative_to_the_reference(
        built, fresh_verified, monkeypatch):
    from ganblocks.ops import _upfirdn2d_native, setup_filter, upfirdn2d

    true_ref = _upfirdn2d_native.taps_ref
    # A "reference" twice the kernel's values: |got - ref| / max|ref| = 1/2 (not 1, which an error
    # relative to the kernel's own output would give).
    monkeypatch.setattr(_upfirdn2d_native, "taps_ref", lambda x, w, a: 2 * true_ref(x, w, a))
    monkeypatch.setattr(_selfcheck, "CHECKED_DEVICES", ("cpu", "cuda"))
    x = torch.randn(1, 2, 6, 6, dtype=torch.float64)
    with pytest.warns(_selfcheck.NativeKernelWarning, match=r"relative error 0\.5\)"):
        upfirdn2d(x, setup_filter([1, 2, 1]).double(), up=2, padding=1, impl="native")


# ---- _build: folders and flags -------------------------------------------------------------------


def test_cache_and_source_dirs_expand_a_tilde(tmp_path, monkeypatch):
    monkeypatch.setenv("HOME", str(tmp_path))
    monkeypatch.setenv("GANBLOCKS_CACHE_DIR", "~/gb-cache")
    assert _build.cache_dir() == tmp_path / "gb-cache"
    monkeypatch.delenv("GANBLOCKS_CACHE_DIR")
    monkeypatch.setenv("XDG_CACHE_HOME", "~/xdg")
    assert _build.cache_dir() == tmp_path / "xdg" / "ganblocks"
    monkeypatch.delenv("XDG_CACHE_HOME")
    assert _build.cache_dir() == tmp_path / ".cache" / "ganblocks"
    monkeypatch.setenv("GANBLOCKS_CSRC_DIR", "~/kernels")
    assert _build.source_dir() == tmp_path / "kernels"


def test_source_dir_of_a_checkout_reached_through_a_symlink(tmp_path):
    # The package imported through a symlink (e.g. a linked checkout): the kernel sources are
    # still the checkout's csrc/, found from the real location of the package.
    import subprocess
    import sys

    root = Path(__file__).resolve().parents[2]
    (tmp_path / "ganblocks").symlink_to(root / "ganblocks", target_is_directory=True)
    env = {**os.environ, "PYTHONPATH": str(tmp_path)}
    env.pop("GANBLOCKS_CSRC_DIR", None)
    out = subprocess.run(
        [sys.executable, "-c",
         "import ganblocks.ops._build as b; print(b.__file__); print(b.source_dir())"],
        env=env, capture_output=True, text=True, timeout=120, cwd=tmp_path,
    )
    assert out.returncode == 0, out.stderr
    imported, found = out.stdout.split()
    assert imported.startswith(str(tmp_path))  # really imported through the link
    assert Path(found) == root / "csrc"


def test_build_flags_of_each_flavour():
    cpu, cuda = _build.build_spec("cpu"), _build.build_spec("cuda")
    assert cpu["cuda_cflags"] == [] and cpu["arch_list"] is None
    assert {"-O3", "--use_fast_math", "-DNDEBUG"} <= set(cuda["cuda_cflags"])
    assert "-DGANBLOCKS_WITH_CUDA" in cuda["cflags"]
    assert "-DGANBLOCKS_WITH_CUDA" not in cpu["cflags"]
    assert [Path(s).name for s in cpu["sources"]] == list(_build.CPU_SOURCES)
    assert [Path(s).name for s in cuda["sources"]] == [*_build.CPU_SOURCES, *_build.CUDA_SOURCES]


@pytest.mark.parametrize(
    ("cuda_version", "available", "home", "flavour"),
    [
        ("12.4", True, "/usr/local/cuda", "cuda"),
        ("12.4", True, None, "cpu"),  # no toolkit to compile with
        ("12.4", False, "/usr/local/cuda", "cpu"),  # a CUDA torch without a GPU
        (None, True, "/usr/local/cuda", "cpu"),  # a CPU-only torch
        (None, False, None, "cpu"),
    ],
)
def test_flavour_is_cuda_only_with_a_cuda_torch_a_gpu_and_a_toolkit(
    monkeypatch, cuda_version, available, home, flavour
):
    monkeypatch.setattr(torch.version, "cuda", cuda_version)
    monkeypatch.setattr(torch.cuda, "is_available", lambda: available)
    monkeypatch.setattr(_build, "_cuda_home", lambda: home)
    assert _build.detect_flavour() == flavour


def test_build_key_follows_file_names_and_the_build_environment(tmp_path, monkeypatch):
    import shutil

    copy = tmp_path / "csrc"
    shutil.copytree(CSRC, copy)
    monkeypatch.setenv("GANBLOCKS_CSRC_DIR", str(copy))
    key = _build.build_spec("cpu")["key"]
    # The same bytes under another name (listed in the same place): another build.
    (copy / "activations.h").rename(copy / "activations_.h")
    renamed = _build.build_spec("cpu")["key"]
    assert renamed != key
    (copy / "activations_.h").rename(copy / "activations.h")
    assert _build.build_spec("cpu")["key"] == key
    # Another torch (or CUDA version) needs another build too.
    monkeypatch.setattr(torch, "__version__", "0.0.1+other")
    other_torch = _build.build_spec("cpu")["key"]
    monkeypatch.setattr(torch.version, "cuda", "99.9")
    other_cuda = _build.build_spec("cpu")["key"]
    assert len({key, renamed, other_torch, other_cuda}) == 4


def test_build_lock_tells_after_five_seconds_of_waiting(tmp_path, monkeypatch):
    """The waiting notice comes once, at the first poll past 5 s (a fake clock: no real wait)."""
    fcntl = pytest.importorskip("fcntl")
    import types

    now = [100.0]
    clock = types.SimpleNamespace(
        monotonic=lambda: now[0], time=lambda: 0.0,
        sleep=lambda s: now.__setitem__(0, now[0] + s),
    )  # fmt: skip
    monkeypatch.setattr(_build, "time", clock)
    told = []
    monkeypatch.setattr(_build.log, "warning", lambda *a: told.append(now[0] - 100.0))
    path = tmp_path / "x.lock"
    fd = os.open(path, os.O_RDWR | os.O_CREAT)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)  # another open file: the lock below must wait
        with pytest.raises(TimeoutError), _build.BuildLock(path, timeout=9.0, poll=0.25):
            pass
    finally:
        os.close(fd)
    assert told == [5.25]


def test_fallback_cache_is_a_per_user_folder_in_the_temp_dir(tmp_path, monkeypatch):
    import tempfile

    monkeypatch.setattr(tempfile, "tempdir", str(tmp_path))
    uid = os.getuid() if hasattr(os, "getuid") else os.getlogin()
    assert _build._fallback_cache() == tmp_path / f"ganblocks-{uid}"


def test_build_lock_rewrites_a_longer_stale_record_whole(tmp_path):
    import json

    lock_file = tmp_path / "build.lock"
    stale = {"pid": 12345, "host": "h" * 300, "started": 1.0}
    lock_file.write_text(json.dumps(stale))
    with _build.BuildLock(lock_file, timeout=5) as lock:
        assert lock.stale == stale
        # Our own, shorter record replaces the old one entirely: valid JSON, nothing left over.
        mine = json.loads(lock_file.read_text())
        assert mine["pid"] == os.getpid() and set(mine) == {"pid", "host", "started"}
    assert lock_file.read_text().strip() == ""  # erased on release


def test_failure_message_caps_the_detail_at_3000_characters():
    exact = _build.failure_message(RuntimeError("e" * 3000))
    assert exact == "RuntimeError: " + "e" * 3000
    over = _build.failure_message(RuntimeError("e" * 3001))
    assert over == "RuntimeError: " + "e" * 3000 + " ..."
