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


# ---- native.verify: the exact calls of its documented workload (seed-10 hardening) -----------


def _ganblocks_op_calls(fn):
    """Run ``fn`` and return every ``torch.ops.ganblocks`` call it made: the op, and per argument
    its shape, dtype, strides and values (all of them for small tensors, else the sum and a
    position-weighted sum), or the argument itself."""
    from torch.utils._python_dispatch import TorchDispatchMode

    def describe(a):
        if not isinstance(a, torch.Tensor):
            return a
        v = a.detach().double().flatten()
        vals = tuple(v.tolist()) if v.numel() <= 64 else (
            v.sum().item(), (v * torch.arange(v.numel(), dtype=torch.float64)).sum().item())
        return tuple(a.shape), a.dtype, a.stride(), vals

    calls = []

    class Record(TorchDispatchMode):
        def __torch_dispatch__(self, func, types, args=(), kwargs=None):
            out = func(*args, **(kwargs or {}))
            if func.namespace == "ganblocks":
                calls.append((str(func), tuple(describe(a) for a in args)))
            return out

    with Record():
        result = fn()
    return calls, result


def test_verify_makes_exactly_the_calls_of_its_documented_workload(built, fresh_verified):
    """verify("cpu"): for each CPU dtype, in both layouts, a batch of two 8-channel 16 x 16
    images (and a bias of 8) drawn from the self-check's generator, then the upsample2d /
    bias_act(lrelu, bias) / downsample2d / bias_act(swish, clamp 4) / filter2d chain with
    setup_filter([1, 3, 3, 1]), a squared float32 loss, its gradient with a graph and the
    gradient of that gradient's squared norm: the very same kernel calls, inputs and all."""
    from ganblocks.ops import bias_act, downsample2d, filter2d, setup_filter, upsample2d

    def workload():
        dev = torch.device("cpu")
        with _selfcheck.checking_device("cpu"):
            f = setup_filter([1, 3, 3, 1], device=dev)
            gen = _selfcheck.check_generator(dev)
            for dtype in _kernels.CPU_DTYPES:
                for cl in (False, True):
                    x = torch.randn(2, 8, 16, 16, generator=gen).to(dtype)
                    x = x.contiguous(memory_format=torch.channels_last) if cl else x
                    b = torch.randn(8, generator=gen).to(dtype).requires_grad_(True)
                    x.requires_grad_(True)
                    y = bias_act(upsample2d(x, f, impl="native"), b, act="lrelu", impl="native")
                    y = bias_act(downsample2d(y, f, impl="native"), None, act="swish",
                                 clamp=4.0, impl="native")
                    y = filter2d(y, f, impl="native")
                    (g,) = torch.autograd.grad(y.float().square().sum(), x, create_graph=True)
                    torch.autograd.grad(g.float().square().sum(), [x, b])
        return dict(_selfcheck.verified)

    expected_calls, expected = _ganblocks_op_calls(workload)
    fresh_verified.clear()
    calls, got = _ganblocks_op_calls(lambda: native.verify("cpu"))
    assert got == expected and len(got) > 0
    assert calls == expected_calls
    # The first call: the up-sampling of the first float32 batch by [1, 3, 3, 1] x 4 (gain up^2).
    first_x = next(c[1][0] for c in calls if c[1][0][0] == (2, 8, 16, 16))
    assert first_x[1] == torch.float32
    taps = next(c[1][1][3] for c in calls if c[0] == "ganblocks.upfirdn2d.default")
    outer = torch.tensor([1.0, 3.0, 3.0, 1.0]).outer(torch.tensor([1.0, 3.0, 3.0, 1.0])) / 64
    assert taps == tuple((outer * 4).flatten().tolist())


def test_verify_defaults_to_the_cpu_without_a_gpu(built, fresh_verified, monkeypatch):
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    got = native.verify()
    assert got and {k[1] for k in got} == set(_kernels.CPU_DTYPES)


# ---- _selfcheck: the remaining edges (seed-10 hardening) --------------------------------------


def test_a_cpu_tensor_is_never_captured_even_while_a_stream_captures(monkeypatch):
    monkeypatch.setattr(torch.cuda, "is_current_stream_capturing", lambda: True)
    assert _selfcheck.capturing(torch.empty(2)) is False
    with _selfcheck.checking_device("cpu"):
        assert _selfcheck.check_due(torch.empty(2))


def test_rel_err_of_a_small_reference_and_of_the_largest_difference_below_zero():
    # A reference of magnitude under 1 still divides: 0.1 / 0.5.
    small = torch.tensor([0.5, 0.0], dtype=torch.float64)
    assert _selfcheck.rel_err(small + 0.125, small) == 0.25
    # The largest difference is a negative one: |-3| counts, not the largest signed (+1).
    a, b = torch.tensor([2.0, -1.0]), torch.tensor([1.0, 2.0])
    assert _selfcheck.rel_err(a, b) == 1.5


def test_rel_err_compares_in_float64_whatever_the_shapes():
    # A half-precision vector against a 0-d float64 reference, and the other way round: 1.0001
    # and 1 differ by 1e-4 in float64 (in float16 both are 1, a difference of 0).
    half, dbl = torch.ones(3, dtype=torch.float16), torch.tensor(1.0001, dtype=torch.float64)
    assert _selfcheck.rel_err(half, dbl) == pytest.approx(1e-4 / 1.0001, rel=1e-6)
    assert _selfcheck.rel_err(dbl, half) == pytest.approx(1e-4, rel=1e-6)



# ---- _bias_act_native: parameters, check inputs, references, keys and fake kernels -----------


def test_bias_act_op_arguments_of_the_parsed_parameters():
    from ganblocks.ops import _bias_act_native as ban
    from ganblocks.ops._params import ACTIVATIONS, BiasActParams

    lrelu = ACTIVATIONS["lrelu"]
    # clamp None is -1 on the op's side (any negative clamp means none); 0 is a real clamp.
    assert ban._clamp_arg(BiasActParams(lrelu, 1, 0.2, 1.0, None)) == -1.0
    assert ban._clamp_arg(BiasActParams(lrelu, 1, 0.2, 1.0, 0)) == 0.0
    got = ban._clamp_arg(BiasActParams(lrelu, 1, 0.2, 1.0, 3))
    assert got == 3.0 and type(got) is float
    # ... and back: the op's (code, dim, alpha, gain, clamp) as parsed parameters.
    swish = ACTIVATIONS["swish"]
    assert ban._act_params(swish.code, 2, 0.5, 1.5, -1.0) == BiasActParams(swish, 2, 0.5, 1.5, None)
    assert ban._act_params(swish.code, 2, 0.5, 1.5, 0.0) == BiasActParams(swish, 2, 0.5, 1.5, 0.0)
    assert ban._act_params(lrelu.code, 0, 0.2, 2.0, 0.5) == BiasActParams(lrelu, 0, 0.2, 2.0, 0.5)
    assert ban._bias_shape(torch.empty(2, 3, 4), 1) == [1, -1, 1]
    assert ban._bias_shape(torch.empty(2, 3), 0) == [-1, 1]


@pytest.mark.parametrize(
    ("shape", "keep", "expected"),
    [
        ((8, 40, 32, 32), None, [(2, 2, 32, 32)]),  # shrunk axis by axis until <= 2**16
        ((8, 40, 32, 32), 1, [(2, 40, 2, 32)]),  # the bias axis kept whole
        ((16, 64, 64), None, [(16, 64, 64)]),  # exactly 2**16 elements: kept as it is
        ((16, 64, 65), None, [(2, 64, 65)]),  # one row more: shrunk
        ((3, 30000), None, [(2, 30000)]),  # an axis of three shrinks to two
        ((5, 3, 7), 1, [(5, 3, 7)]),
        # Past the grid (2**20 elements): one more input just past it, along the first axis
        # that is not the bias's (the only one if that is all there is).
        ((1 << 21,), None, [(2,), ((1 << 20) + 1,)]),
        ((1 << 21,), 0, [(1 << 21,), ((1 << 20) + 1,)]),
        ((1, 1 << 21), None, [(1, 2), ((1 << 19) + 1, 2)]),
        ((4, 1 << 19), 0, [(4, 2), (4, (1 << 18) + 1)]),
        (((1 << 20) + 1, 1), None, [(2, 1), ((1 << 20) + 1, 1)]),
        ((1 << 10, 1 << 10), None, [(2, 1 << 10)]),  # exactly 2**20: no second input
    ],
)
def test_bias_act_check_shapes_exactly(shape, keep, expected):
    from ganblocks.ops import _bias_act_native as ban

    assert ban.check_shapes(torch.empty(shape, device="meta"), keep) == expected


def _swish_grads(x, b, dy, g, gain):
    """Closed forms of swish (z sigmoid(z), times gain): dy f'(z) and g dy f''(z), z = x + b."""
    z = x + b.reshape(1, -1, 1)
    s = torch.sigmoid(z)
    d1 = s + z * s * (1 - s)
    d2 = s * (1 - s) * (2 + z * (1 - 2 * s))
    return gain * z * s, dy * gain * d1, g * dy * gain * d2


def _swish_case(seed):
    """x, dy, g [2, 3, 4], a bias [3] (float64) and swish parameters with gain 1.5 on axis 1."""
    from ganblocks.ops._params import ACTIVATIONS, BiasActParams

    gen = torch.Generator().manual_seed(seed)
    x, dy, g = (torch.randn(2, 3, 4, generator=gen, dtype=torch.float64) for _ in range(3))
    b = torch.randn(3, generator=gen, dtype=torch.float64)
    return x, dy, g, b, BiasActParams(ACTIVATIONS["swish"], 1, 0.2, 1.5, None)


def test_bias_act_references_of_each_op_of_the_family():
    from ganblocks.ops import _bias_act_native as ban

    x, dy, g, b, p = _swish_case(5)
    y, dx, d = _swish_grads(x, b, dy, g, 1.5)
    torch.testing.assert_close(ban._ref_value("bias_act", None, x, b, p), y)
    got_dx = ban._ref_value("bias_act_grad", dy, x, b, p)
    torch.testing.assert_close(got_dx, dx)
    assert not got_dx.requires_grad
    got_d = ban._ref_value("bias_act_grad2", dy, x, b, p, g)
    torch.testing.assert_close(got_d, d)
    assert not got_d.requires_grad and not x.requires_grad  # x itself left alone
    # Inside a backward with a graph: dx stays a differentiable function of x (and dy).
    xg = x.clone().requires_grad_(True)
    dxg = ban._ref_value("bias_act_grad", dy, xg, b, p)
    assert dxg.requires_grad
    torch.testing.assert_close(dxg, dx)
    (gx,) = torch.autograd.grad(dxg, xg, g)
    torch.testing.assert_close(gx, d)
    # The same with only dy requiring a gradient: dx is linear in dy.
    dyg = dy.clone().requires_grad_(True)
    dxy = ban._ref_value("bias_act_grad", dyg, x, b, p)
    (gdy,) = torch.autograd.grad(dxy, dyg, g)
    torch.testing.assert_close(gdy, g * dx / dy)
    # Grad mode off: detached whatever requires a gradient.
    with torch.no_grad():
        assert not ban._ref_value("bias_act_grad", dy, xg, b, p).requires_grad


def test_bias_act_reference_outputs_with_and_without_the_bias_gradient():
    from ganblocks.ops import _bias_act_native as ban
    from ganblocks.ops._params import ACTIVATIONS, BiasActParams

    x = torch.randn(2, 3, 4, dtype=torch.float64).to(torch.float16)
    dy = torch.randn(2, 3, 4, dtype=torch.float64).to(torch.float16)
    b = torch.randn(3).to(torch.float16)
    p = BiasActParams(ACTIVATIONS["lrelu"], 1, 0.2, 1.0, None)
    ref = ban._ref_value("bias_act_grad", dy, x, b, p)
    assert torch.equal(ban._ref_outputs("bias_act", (), x, b, p, None),
                       ban._ref_value("bias_act", None, x, b, p))
    got, db = ban._ref_outputs("bias_act_grad", (dy,), x, b, p, True)
    assert torch.equal(got, ref) and db.dtype == torch.float32 and db.shape == (3,)
    torch.testing.assert_close(db, ref.float().sum((0, 2)))
    got, db = ban._ref_outputs("bias_act_grad", (dy,), x, b, p, False)
    assert torch.equal(got, ref) and db.dtype == torch.float32 and db.shape == (0,)


def test_bias_act_check_keys_name_every_configuration_entry(built, monkeypatch):
    """(op, dtype, activation code, bias?, bias axis or None, clamp?, channels-last?, past the
    grid?): the keys of a forward, backward and double backward."""
    from ganblocks.ops import bias_act
    from ganblocks.ops._params import ACTIVATIONS

    keys = []
    monkeypatch.setattr(_selfcheck, "CHECKED_DEVICES", ("cpu", "cuda"))
    monkeypatch.setattr(_selfcheck, "verified_ok", lambda key, check: keys.append(key) or True)
    code = ACTIVATIONS["swish"].code
    x = torch.randn(2, 5, 4, 3).contiguous(memory_format=torch.channels_last).requires_grad_(True)
    b = torch.randn(5, requires_grad=True)
    y = bias_act(x, b, act="swish", clamp=0.0, impl="native")
    (gx,) = torch.autograd.grad(y.square().sum(), x, create_graph=True)
    gx.sum().backward()
    cfg = (torch.float32, code, True, 1, True, True, False)
    assert set(keys) == {("bias_act", *cfg), ("bias_act_grad", *cfg), ("bias_act_grad2", *cfg)}
    keys.clear()
    bias_act(torch.randn(3, 4).double(), None, act="lrelu", dim=1, impl="native")
    assert keys == [("bias_act", torch.float64, ACTIVATIONS["lrelu"].code, False, None, False,
                     False, False)]


def test_bias_act_op_gets_axis_zero_and_clamp_minus_one_without_bias_or_clamp(built):
    from ganblocks.ops import bias_act
    from ganblocks.ops._params import ACTIVATIONS

    x = torch.randn(2, 3, 4)
    calls, _ = _ganblocks_op_calls(lambda: bias_act(x, None, act="lrelu", dim=1, alpha=0.3,
                                                    gain=2.0, impl="native"))
    ((name, args),) = calls
    assert name == "ganblocks.bias_act.default"
    assert args[1:] == (None, 0, ACTIVATIONS["lrelu"].code, 0.3, 2.0, -1.0)
    calls, _ = _ganblocks_op_calls(lambda: bias_act(x, torch.zeros(3), act="relu", dim=1,
                                                    clamp=2, impl="native"))
    assert calls[0][1][2:] == (1, ACTIVATIONS["relu"].code, 0.0, 2 ** 0.5, 2.0)


@pytest.mark.parametrize("cropped", [False, True])
def test_bias_act_fake_kernels_give_shapes_dtypes_and_layouts(built, cropped):
    """On meta tensors: y and dx like a dense x (a cropped x as a contiguous copy), db of the
    bias's length in the compute dtype when wanted, else empty."""
    x = torch.empty(2, 5, 4, 3, device="meta", dtype=torch.float16)
    x = x.contiguous(memory_format=torch.channels_last)
    x = x[..., 1:] if cropped else x
    expected = (2 * 5 * 4 * 2 // 2, 8, 2, 1) if cropped else (60, 1, 15, 5)
    b = torch.empty(5, device="meta", dtype=torch.float16)
    ops = torch.ops.ganblocks
    y = ops.bias_act(x, b, 1, 3, 0.2, 1.0, -1.0)
    assert y.shape == x.shape and y.dtype == torch.float16 and y.stride() == expected
    for want_db, n in ((True, 5), (False, 0)):
        dx, db = ops.bias_act_grad(x, x, b, 1, 3, 0.2, 1.0, -1.0, want_db)
        assert dx.shape == x.shape and dx.stride() == expected
        assert db.shape == (n,) and db.dtype == torch.float32
        d, db2 = ops.bias_act_grad2(x, x, x, b, 1, 9, 0.2, 1.0, -1.0, want_db)
        assert d.stride() == expected and db2.shape == (n,) and db2.dtype == torch.float32
    _, db = ops.bias_act_grad(x, x, None, 1, 3, 0.2, 1.0, -1.0, True)
    assert db.shape == (0,)


def test_bias_act_third_derivative_raises(built):
    from ganblocks.ops import bias_act

    x = torch.randn(2, 3, 4, dtype=torch.float64, requires_grad=True)
    y = bias_act(x, None, act="swish", impl="native")
    (g1,) = torch.autograd.grad(y.sum(), x, create_graph=True)
    (g2,) = torch.autograd.grad(g1.sum(), x, create_graph=True)
    with pytest.raises(NotImplementedError, match=r"third derivatives of bias_act .*impl='ref'"):
        torch.autograd.grad(g2.sum(), x)


@pytest.mark.parametrize("needs", ["x", "b", "dy"])
def test_bias_act_gradients_of_one_input_at_a_time(built, needs):
    """Backward and double backward where only x, only b, or (second order) only dy of the
    gradient op needs a gradient: each equals the reference path's."""
    from ganblocks.ops import bias_act

    gen = torch.Generator().manual_seed(11)
    x0 = torch.randn(2, 3, 4, generator=gen, dtype=torch.float64)
    b0 = torch.randn(3, generator=gen, dtype=torch.float64)

    def run(impl):
        x, b = x0.clone(), b0.clone()
        (x if needs != "b" else b).requires_grad_(True)
        y = bias_act(x, b, act="swish", impl=impl)
        leaf = x if needs != "b" else b
        (g,) = torch.autograd.grad(y.square().sum(), leaf, create_graph=True)
        return g, *torch.autograd.grad((g * g.detach().sign()).sum(), leaf)

    for a, e in zip(run("native"), run("ref")):
        torch.testing.assert_close(a, e)


# ---- _upfirdn2d_native: taps, sizes, launch paths, check inputs, keys and the fake kernel -----


def test_filter_weights_apply_gain_flip_and_compute_dtype(built):
    from ganblocks.ops import _upfirdn2d_native as un
    from ganblocks.ops._params import UpFirDn2dParams

    un._taps_cache.clear()
    f2 = torch.tensor([[1.0, 2.0, 3.0], [4.0, 5.0, 6.0]])
    x32, x64 = torch.empty(1, 1, 4, 4), torch.empty(1, 1, 4, 4, dtype=torch.float64)
    w, neg = un._filter_weights(f2, UpFirDn2dParams.parse(gain=-2.0), x32)
    assert not neg and w.dtype == torch.float32 and w.is_contiguous()
    assert torch.equal(w, (f2 * -2.0).flip([0, 1]))  # correlation order: flipped
    w, _ = un._filter_weights(f2, UpFirDn2dParams.parse(gain=3.0, flip_filter=True), x64)
    assert w.dtype == torch.float64 and torch.equal(w, f2.double() * 3.0)
    # Separable: sqrt(|gain|) per axis, and a negative gain negates the output instead.
    f1 = torch.tensor([1.0, 2.0, 4.0])
    w, neg = un._filter_weights(f1, UpFirDn2dParams.parse(gain=-4.0), x32)
    assert neg and torch.equal(w, torch.tensor([8.0, 4.0, 2.0]))
    w, neg = un._filter_weights(f1, UpFirDn2dParams.parse(gain=4.0, flip_filter=True), x32)
    assert not neg and torch.equal(w, torch.tensor([2.0, 4.0, 8.0]))
    # No filter: the 1 x 1 identity times the gain.
    w, neg = un._filter_weights(None, UpFirDn2dParams.parse(gain=-0.5), x64)
    assert not neg and w.dtype == torch.float64 and torch.equal(w, torch.tensor([[-0.5]]).double())
    # A half-precision x: the gained taps rounded to half, then carried in float32.
    third = torch.tensor([[1.0 / 3.0]])
    w, _ = un._filter_weights(third, UpFirDn2dParams.parse(), x32.half())
    assert w.dtype == torch.float32 and w.item() == third.half().item() != third.item()


def test_filter_weights_are_reused_for_the_same_unchanged_filter_only(built):
    from ganblocks.ops import _upfirdn2d_native as un
    from ganblocks.ops._params import UpFirDn2dParams

    un._taps_cache.clear()
    f = torch.tensor([1.0, 3.0, 3.0, 1.0])
    x, p = torch.empty(1, 1, 4, 4), UpFirDn2dParams.parse(gain=2.0)
    w1, _ = un._filter_weights(f, p, x)
    assert un._filter_weights(f, p, x)[0] is w1 and len(un._taps_cache) == 1
    # Another gain, flip, dtype: other taps (and entries).
    assert un._filter_weights(f, UpFirDn2dParams.parse(gain=3.0), x)[0] is not w1
    assert un._filter_weights(f, UpFirDn2dParams.parse(gain=2.0, flip_filter=True), x)[0] \
        is not w1
    assert un._filter_weights(f, p, x.double())[0].dtype == torch.float64
    assert len(un._taps_cache) == 4
    # Changed in place: new taps.
    with torch.no_grad():
        f[0] = 5.0
    w2, _ = un._filter_weights(f, p, x)
    assert w2 is not w1 and w2[-1].item() == pytest.approx(5.0 * 2.0 ** 0.5, rel=1e-6)
    # An equal filter in another tensor is not the same filter.
    assert un._filter_weights(f.clone(), p, x)[0] is not w2
    # The cache holds 256 entries, then starts over.
    un._taps_cache.clear()
    filters = [torch.ones(3) for _ in range(256)]
    for g in filters:
        un._filter_weights(g, p, x)
    assert len(un._taps_cache) == 256
    un._filter_weights(f, p, x)
    assert len(un._taps_cache) == 1
    # While tracing, nothing is cached.
    un._taps_cache.clear()
    from torch._subclasses.fake_tensor import FakeTensorMode

    with FakeTensorMode(allow_non_fake_inputs=True):
        un._filter_weights(f, p, torch.empty(1, 1, 4, 4))
    assert un._taps_cache == {}
    un._taps_cache.clear()


def test_taps_size_out_hw_and_min_extent():
    from ganblocks.ops import _upfirdn2d_native as un

    assert un._taps_size(torch.ones(3, 5)) == (5, 3)
    assert un._taps_size(torch.ones(4)) == (4, 4)
    # (h, w) of 7 x 6 by taps 3 x 5, up (2, 1), down (1, 2), padding x (1, 0), y (2, 1)
    args = (2, 1, 1, 2, 1, 0, 2, 1)
    assert un._out_hw(7, 6, torch.ones(3, 5), args) == ((7 + 3 - 3) // 2 + 1, 12 + 1 - 5 + 1)
    assert un._out_hw(7, 6, torch.ones(3, 5), args) == (4, 9)
    assert un._min_extent(16, 2, 1, 1, 4) == 1
    assert un._min_extent(16, 1, 0, 0, 4) == 4
    assert un._min_extent(3, 1, 0, 0, 4) == 3
    assert un._min_extent(16, 2, 0, 0, 5) == 3
    assert un._min_extent(16, 1, 3, 3, 4) == 1


def test_taps_ref_runs_the_reference_in_x_dtype():
    from ganblocks.ops import _upfirdn2d_native as un
    from ganblocks.ops._reference import upfirdn2d_correlate

    x = torch.randn(1, 2, 5, 5, dtype=torch.float64)
    w = torch.rand(3, 3, dtype=torch.float32)
    got = un.taps_ref(x, w, (2, 2, 1, 1, 1, 1, 1, 1))
    assert got.dtype == torch.float64
    assert torch.equal(got, upfirdn2d_correlate(x, w.double(), 2, 2, 1, 1, 1, 1, 1, 1))


@pytest.mark.parametrize(
    ("shape", "cl", "dtype", "w", "args", "expected"),
    [
        ((2, 3, 16, 16), False, torch.float32, (4, 4), (2, 2, 1, 1, 2, 1, 2, 1),
         ("tiled", False, False)),
        ((1, 4097, 8, 8), False, torch.float32, (4, 4), (1, 1, 1, 1, 2, 1, 2, 1),
         ("tiled", False, True)),  # more planes than the grid's z
        ((1, 4096, 8, 8), False, torch.float32, (4, 4), (1, 1, 1, 1, 2, 1, 2, 1),
         ("tiled", False, False)),
        ((1, 16 * 4096 + 1, 8, 8), True, torch.float32, (4, 4), (1, 1, 1, 1, 2, 1, 2, 1),
         ("tiled", True, True)),  # NHWC planes: 16 channels each
        ((1, 16 * 4096, 8, 8), True, torch.float32, (4, 4), (1, 1, 1, 1, 2, 1, 2, 1),
         ("tiled", True, False)),
        ((1, 8 * 4096 + 1, 8, 8), True, torch.float64, (4, 4), (1, 1, 1, 1, 2, 1, 2, 1),
         ("tiled", True, True)),  # 8 channels in float64
        ((1, 8 * 4096, 8, 8), True, torch.float64, (4, 4), (1, 1, 1, 1, 2, 1, 2, 1),
         ("tiled", True, False)),
        ((1, 1, 32 * 65535, 1), False, torch.float32, (1, 1), (1, 1, 1, 1, 0, 0, 0, 0),
         ("tiled", False, False)),  # rows of 32 at the grid's y limit (one plane: no z)
        ((1, 1, 32 * 65535 + 1, 1), False, torch.float32, (1, 1), (1, 1, 1, 1, 0, 0, 0, 0),
         ("generic", False, True)),
        ((1, 1, 2 * 16 * 65535 - 1, 1), False, torch.float32, (1, 1), (1, 1, 2, 2, 0, 0, 0, 0),
         ("tiled", False, False)),  # down 2: rows of 16
        ((1, 1, 2 * 16 * 65535 + 1, 1), False, torch.float32, (1, 1), (1, 1, 2, 2, 0, 0, 0, 0),
         ("generic", False, False)),
        ((1, 1, 4 * 8 * 65535 + 1, 1), False, torch.float32, (1, 1), (1, 1, 4, 4, 0, 0, 0, 0),
         ("generic", False, False)),  # down 4: rows of 8
        ((1, 1, 4 * 8 * 65535 - 3, 1), False, torch.float32, (1, 1), (1, 1, 4, 4, 0, 0, 0, 0),
         ("tiled", False, False)),
        ((1, 8, 16, 16), False, torch.float32, (9,), (1, 1, 1, 1, 4, 4, 4, 4),
         ("separable", False, False)),  # more than 8 separable taps: two passes
        ((1, 8, 16, 16), False, torch.float32, (8,), (1, 1, 1, 1, 4, 3, 4, 3),
         ("tiled", False, False)),
        ((4, 2, 512, 512), False, torch.float32, (9,), (1, 1, 1, 1, 4, 4, 4, 4),
         ("separable", False, True)),
        ((1, 8, 16, 16), False, torch.float32, (4, 4), (2, 1, 1, 1, 2, 1, 2, 1),
         ("generic", False, False)),  # up 2 x 1: no tiled kernel
        ((1, 8, 16, 16), False, torch.float32, (4, 4), (1, 1, 2, 1, 2, 1, 2, 1),
         ("generic", False, False)),
        ((1, 8, 16, 16), False, torch.float32, (4, 4), (3, 3, 1, 1, 2, 1, 2, 1),
         ("generic", False, False)),
        ((1, 8, 16, 16), False, torch.float32, (4, 4), (4, 4, 1, 1, 2, 1, 2, 1),
         ("tiled", False, False)),
        ((1, 8, 16, 16), False, torch.float32, (4, 4), (1, 1, 4, 4, 2, 1, 2, 1),
         ("tiled", False, False)),
        ((1, 1, 16, 16), True, torch.float32, (4, 4), (1, 1, 1, 1, 2, 1, 2, 1),
         ("tiled", False, False)),  # one channel: never channels-last
        ((1, 1024, 32, 33), False, torch.float32, (3, 3), (2, 1, 1, 1, 1, 1, 1, 1),
         ("generic", False, True)),  # more outputs than the 1-D grid has threads
    ],
)
def test_launch_path_exactly(shape, cl, dtype, w, args, expected):
    from ganblocks.ops import _upfirdn2d_native as un

    x = _meta(shape, cl).to(dtype)
    assert un.launch_path(x, torch.ones(w), args) == expected


@pytest.mark.parametrize(
    ("shape", "cl", "dtype", "w", "args", "expected"),
    [
        ((2, 3, 16, 16), False, torch.float32, (4, 4), (2, 2, 1, 1, 2, 1, 2, 1),
         [(1, 3, 16, 16)]),
        ((2, 40, 16, 16), False, torch.float32, (4, 4), (2, 2, 1, 1, 2, 1, 2, 1),
         [(1, 4, 16, 16)]),
        ((2, 40, 16, 16), True, torch.float32, (4, 4), (2, 2, 1, 1, 2, 1, 2, 1),
         [(1, 32, 16, 16)]),
        # The generic kernel: one channel of x's height, only as wide as gives an output.
        ((1, 8, 20, 30), False, torch.float32, (4, 4), (2, 1, 1, 1, 1, 1, 0, 0),
         [(1, 1, 20, 1)]),
        ((1, 8, 20, 30), False, torch.float32, (4, 4), (1, 1, 2, 1, 0, 0, 0, 0),
         [(1, 1, 20, 4)]),
        # Past the grid's z: one more plane than fits, as small as gives an output.
        ((1, 4097, 8, 8), False, torch.float32, (4, 4), (1, 1, 1, 1, 2, 1, 2, 1),
         [(1, 4, 8, 8), (1, 4097, 1, 1)]),
        ((1, 16 * 4096 + 1, 8, 8), True, torch.float32, (4, 4), (1, 1, 1, 1, 2, 1, 2, 1),
         [(1, 32, 8, 8), (1, 4097 * 16, 1, 1)]),
        ((1, 8 * 4096 + 1, 8, 8), True, torch.float64, (4, 4), (1, 1, 1, 1, 0, 0, 0, 0),
         [(1, 32, 8, 8), (1, 4097 * 8, 4, 4)]),
        # The separable passes past the 1-D grid: channels enough to stride.
        ((4, 2, 512, 512), False, torch.float32, (9,), (1, 1, 1, 1, 4, 4, 4, 4),
         [(1, 2, 512, 512), (1, 5, 512, 512)]),
        # ... unless the first input already strides: 4 x 1024 x 1024 outputs.
        ((1, 4, 1024, 1024), False, torch.float32, (9,), (1, 1, 1, 1, 4, 4, 4, 4),
         [(1, 4, 1024, 1024)]),
    ],
)
def test_upfirdn2d_check_shapes_exactly(shape, cl, dtype, w, args, expected):
    from ganblocks.ops import _upfirdn2d_native as un

    x = _meta(shape, cl).to(dtype)
    assert un.check_shapes(x, torch.ones(w), args) == expected


def test_upfirdn2d_check_key_names_the_configuration(built, monkeypatch):
    from ganblocks.ops import _upfirdn2d_native as un
    from ganblocks.ops import upfirdn2d

    keys = []
    monkeypatch.setattr(_selfcheck, "CHECKED_DEVICES", ("cpu", "cuda"))
    monkeypatch.setattr(_selfcheck, "verified_ok", lambda key, check: keys.append(key) or True)
    x = torch.randn(2, 3, 7, 6, dtype=torch.float64)
    upfirdn2d(x, torch.ones(3, 5, dtype=torch.float64), up=[2, 1], down=[1, 2],
              padding=[1, 0, 2, 1], impl="native")
    args = (2, 1, 1, 2, 1, 0, 2, 1)
    assert keys == [("upfirdn2d", torch.float64, (3, 5), *args,
                     un.launch_path(x, torch.ones(3, 5), args))]
    assert keys[0][-1] == ("generic", False, False)


@pytest.mark.parametrize("channels", [3, 1])
def test_upfirdn2d_fake_kernel_gives_shape_dtype_and_layout(built, channels):
    x = _meta((2, channels, 7, 6), True).to(torch.float16)
    y = torch.ops.ganblocks.upfirdn2d(x, torch.empty(3, 5, device="meta"), 2, 1, 1, 2, 1, 0, 2, 1)
    assert y.shape == (2, channels, 4, 9) and y.dtype == torch.float16
    fmt = torch.channels_last if channels > 1 else torch.contiguous_format
    assert y.is_contiguous(memory_format=fmt)
    if channels > 1:
        assert not y.is_contiguous()


@pytest.mark.parametrize("args", [dict(up=[2, 3], down=[3, 2], padding=[1, 2, 3, 0]),
                                  dict(up=1, down=2, padding=[-1, 2, 0, 1]),
                                  dict(up=[1, 2], down=1, padding=[2, -1, 1, 3])])
@pytest.mark.parametrize("taps", [(3, 5), (4,)])
def test_upfirdn2d_native_gradients_of_asymmetric_calls(built, args, taps):
    from ganblocks.ops import upfirdn2d

    gen = torch.Generator().manual_seed(2)
    f = torch.rand(taps, generator=gen, dtype=torch.float64)
    x0 = torch.randn(2, 3, 7, 6, generator=gen, dtype=torch.float64)

    def run(impl):
        x = x0.clone().requires_grad_(True)
        y = upfirdn2d(x, f, gain=-1.5, **args, impl=impl)
        (g,) = torch.autograd.grad(y.square().sum(), x, create_graph=True)
        return y, g, *torch.autograd.grad(g.square().sum(), x)

    for a, e in zip(run("native"), run("ref")):
        torch.testing.assert_close(a, e)


def test_native_upfirdn2d_refuses_a_filter_that_wants_a_gradient(built):
    from ganblocks.ops import _upfirdn2d_native as un
    from ganblocks.ops._params import UpFirDn2dParams

    x, p = torch.randn(1, 1, 4, 4), UpFirDn2dParams.parse()
    f = torch.ones(3, requires_grad=True)
    with pytest.raises(ValueError, match=r"^f: the native upfirdn2d does not differentiate the "
                                         r"filter, but f\.requires_grad is True; pass "
                                         r"f\.detach\(\)"):
        un.upfirdn2d(x, f, p)
    with torch.no_grad():
        y = un.upfirdn2d(x, f, p)
    assert y.shape == (1, 1, 2, 2)
    assert un.upfirdn2d(x, None, p).shape == (1, 1, 4, 4)


# ---- _build: configuration, key, lock records, compiler call and cache steps (seed-10) --------


@pytest.mark.parametrize(
    ("raw", "expected"),
    [(None, "auto"), ("", "auto"), (" AUTO ", "auto"), ("1", "auto"), ("on", "auto"),
     ("Yes", "auto"), ("true", "auto"), ("0", "off"), ("OFF", "off"), ("no", "off"),
     ("false", "off"), ("None", "off"), (" require", "require"), ("Require", "require")],
)
def test_native_mode_spellings(monkeypatch, raw, expected):
    if raw is None:
        monkeypatch.delenv("GANBLOCKS_NATIVE", raising=False)
    else:
        monkeypatch.setenv("GANBLOCKS_NATIVE", raw)
    assert _build.mode() == expected


@pytest.mark.parametrize("raw", ["2", "required", "maybe", "o n"])
def test_native_mode_refuses_other_values_naming_the_variable(monkeypatch, raw):
    monkeypatch.setenv("GANBLOCKS_NATIVE", raw)
    with pytest.raises(ValueError, match=rf"^GANBLOCKS_NATIVE: expected 'auto', '0' or "
                                         rf"'require', got '{raw}'$"):
        _build.mode()


def test_cache_dir_skips_empty_variables(tmp_path, monkeypatch):
    monkeypatch.setenv("HOME", str(tmp_path))
    monkeypatch.setenv("GANBLOCKS_CACHE_DIR", "")
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "x"))
    assert _build.cache_dir() == tmp_path / "x" / "ganblocks"
    monkeypatch.setenv("XDG_CACHE_HOME", "")
    assert _build.cache_dir() == tmp_path / ".cache" / "ganblocks"
    monkeypatch.setenv("GANBLOCKS_CSRC_DIR", "")
    assert _build.source_dir() == CSRC


def test_cpu_signature_keeps_the_instruction_set_lines(monkeypatch):
    import io

    text = ("processor : 0\nmodel name : Chip X\nflags : fpu sse2 avx2\ncpu MHz : 2000\n"
            "processor : 1\nmodel name : Chip X\nflags : fpu sse2 avx2\nFeatures : neon\n")
    monkeypatch.setattr(_build, "open", lambda *a, **k: io.StringIO(text), raising=False)
    assert _build._cpu_signature() == "Features : neon|flags : fpu sse2 avx2|model name : Chip X"

    def unreadable(*a, **k):
        raise PermissionError("no /proc here")

    monkeypatch.setattr(_build, "open", unreadable, raising=False)
    monkeypatch.setattr(_build.platform, "processor", lambda: "")
    monkeypatch.setattr(_build.platform, "machine", lambda: "riscv64")
    assert _build._cpu_signature() == "riscv64"
    monkeypatch.setattr(_build.platform, "processor", lambda: "Chip Y")
    assert _build._cpu_signature() == "Chip Y"


def test_cuda_arch_list_from_the_variable_or_the_visible_gpus(monkeypatch):
    monkeypatch.setenv("TORCH_CUDA_ARCH_LIST", "8.6+PTX")
    assert _build._cuda_arch_list() == "8.6+PTX"
    monkeypatch.setenv("TORCH_CUDA_ARCH_LIST", "")
    caps = {0: (8, 0), 1: (7, 5), 2: (8, 0), 3: (9, 0)}
    monkeypatch.setattr(torch.cuda, "device_count", lambda: 4)
    monkeypatch.setattr(torch.cuda, "get_device_capability", lambda i: caps[i])
    assert _build._cuda_arch_list() == "7.5;8.0;9.0"


def test_build_spec_flags_names_and_what_the_key_follows(tmp_path, monkeypatch):
    import shutil

    copy = tmp_path / "csrc"
    shutil.copytree(CSRC, copy)
    monkeypatch.setenv("GANBLOCKS_CSRC_DIR", str(copy))
    monkeypatch.setattr(_build.sys, "platform", "linux")
    monkeypatch.setattr(_build.platform, "machine", lambda: "x86_64")
    monkeypatch.setattr(_build, "_cpu_signature", lambda: "flags : avx2")
    spec = _build.build_spec("cpu")
    assert spec["cflags"] == ["-O3", "-fopenmp", "-DNDEBUG", "-march=native"]
    assert spec["ldflags"] == ["-fopenmp"] and spec["flavour"] == "cpu"
    assert spec["sources"] == [str(copy / n) for n in _build.CPU_SOURCES]
    key = spec["key"]
    assert re.fullmatch(r"[0-9a-f]{16}", key) and spec["name"] == f"ganblocks_native_cpu_{key}"

    def key_now():
        return _build.build_spec("cpu")["key"]

    # Not part of the build: other files, and a source of the other flavour.
    (copy / "README.txt").write_text("notes")
    assert key_now() == key
    with open(copy / "bias_act_cuda.cu", "a", encoding="utf-8") as fh:
        fh.write("\n// a CUDA-only change\n")
    assert key_now() == key
    # Part of it: headers (.h and .cuh, by content and by name), the CPU signature with
    # -march=native, the platform.
    keys = {key}
    with open(copy / "activations.h", "a", encoding="utf-8") as fh:
        fh.write("\n// changed\n")
    keys.add(key_now())
    (copy / "extra.cuh").write_text("// new header\n")
    keys.add(key_now())
    monkeypatch.setattr(_build, "_cpu_signature", lambda: "flags : avx512f")
    keys.add(key_now())
    monkeypatch.setattr(_build.sys, "platform", "linux2")
    keys.add(key_now())
    assert len(keys) == 5
    # The machine's name in any case: "X86_64" is x86-64 too (and the same build).
    monkeypatch.setattr(_build.platform, "machine", lambda: "X86_64")
    upper = _build.build_spec("cpu")
    assert upper["cflags"][-1] == "-march=native" and upper["key"] == key_now()
    monkeypatch.setattr(_build.platform, "machine", lambda: "x86_64")
    assert key_now() == upper["key"]
    # Elsewhere than x86-64 Linux: no -march=native, and the CPU signature does not count.
    monkeypatch.setattr(_build.platform, "machine", lambda: "aarch64")
    arm = _build.build_spec("cpu")
    assert arm["cflags"] == ["-O3", "-fopenmp", "-DNDEBUG"] and arm["key"] not in keys
    monkeypatch.setattr(_build, "_cpu_signature", lambda: "flags : sve")
    assert key_now() == arm["key"]
    # CUDA: the arch list is part of the spec and of the key.
    monkeypatch.setattr(_build, "_cuda_arch_list", lambda: "8.0")
    cuda = _build.build_spec("cuda")
    assert cuda["arch_list"] == "8.0" and cuda["cflags"][-1] == "-DGANBLOCKS_WITH_CUDA"
    assert cuda["cuda_cflags"] == ["-O3", "--use_fast_math", "-DNDEBUG"]
    assert cuda["name"] == f"ganblocks_native_cuda_{cuda['key']}"
    monkeypatch.setattr(_build, "_cuda_arch_list", lambda: "9.0")
    assert _build.build_spec("cuda")["key"] != cuda["key"]


def test_build_dir_of_the_detected_flavour(monkeypatch):
    monkeypatch.setattr(_build, "detect_flavour", lambda: "cpu")
    cpu = _build.build_dir()
    assert cpu == _build.build_dir("cpu") == (
        _build.cache_dir() / "native" / f"cpu-{_build.build_spec('cpu')['key']}")


def test_pid_alive_reads_the_kill_probe(monkeypatch):
    assert _build._pid_alive(os.getpid()) is True

    def kill_raising(exc):
        def kill(pid, sig):
            assert sig == 0
            raise exc

        return kill

    for exc, alive in ((ProcessLookupError(), False), (PermissionError(), True),
                       (OSError("other"), False)):
        monkeypatch.setattr(_build.os, "kill", kill_raising(exc))
        assert _build._pid_alive(12345) is alive


def test_lock_records_read_and_described(tmp_path, monkeypatch):
    import json
    import socket
    import time as time_mod

    def read(content: bytes):
        path = tmp_path / "rec"
        path.write_bytes(content)
        fd = os.open(path, os.O_RDONLY)
        try:
            return _build.BuildLock._read(fd)
        finally:
            os.close(fd)

    assert read(b"") is None and read(b"  \n") is None
    assert read(json.dumps({"pid": 3}).encode()) == {"pid": 3}
    assert read(b"x" * 300) == {"raw": "x" * 200}
    assert read(b"\xff{") == {"raw": "\ufffd{"}
    assert _build.BuildLock._read(-1) is None  # an unreadable descriptor
    assert _build.describe_holder(None) == "unknown process"
    assert _build.describe_holder({}) == "unknown process"
    assert _build.describe_holder({"raw": "junk"}) == "unreadable lock content 'junk'"
    when = time_mod.strftime("%Y-%m-%d %H:%M:%S", time_mod.localtime(1000))
    assert _build.describe_holder({"pid": 7, "host": "elsewhere", "started": 1000}) == \
        f"PID 7 on elsewhere, started {when}"
    epoch = time_mod.strftime("%Y-%m-%d %H:%M:%S", time_mod.localtime(0))
    here = socket.gethostname()
    monkeypatch.setattr(_build, "_pid_alive", lambda pid: pid == 7)
    assert _build.describe_holder({"pid": "7", "host": here}) == \
        f"PID 7 on {here}, started {epoch}, running"
    assert _build.describe_holder({"pid": 8, "host": here, "started": 1000}) == \
        f"PID 8 on {here}, started {when}, no longer running"


def test_build_lock_timeout_message_and_a_release_without_a_lock(tmp_path, monkeypatch):
    fcntl = pytest.importorskip("fcntl")
    import json
    import types

    now = [0.0]
    clock = types.SimpleNamespace(monotonic=lambda: now[0], time=lambda: 0.0,
                                  sleep=lambda s: now.__setitem__(0, now[0] + s))
    monkeypatch.setattr(_build, "time", clock)
    monkeypatch.setattr(_build, "describe_holder", lambda info: f"holder {info}")
    path = tmp_path / "sub" / "x.lock"
    path.parent.mkdir()
    path.write_text(json.dumps({"pid": 1}))
    fd = os.open(path, os.O_RDWR)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)
        lock = _build.BuildLock(path, timeout=2.0, poll=0.5)
        assert lock.poll == 0.5 and lock.timeout == 2.0 and lock.stale is None
        with pytest.raises(TimeoutError, match=r"^waited 2 s for the build lock .*x\.lock held by "
                                               r"holder \{'pid': 1\}; raise "
                                               r"GANBLOCKS_BUILD_TIMEOUT \(seconds\) or end that "
                                               r"process if it is hung$"):
            lock.__enter__()
        assert now[0] == 2.5 and lock.fd is None
    finally:
        os.close(fd)
    assert _build.BuildLock(path, timeout=1).__exit__(None, None, None) is None
    assert _build.BuildLock(tmp_path / "p.lock", timeout=1).poll == 0.2
    with _build.BuildLock(tmp_path / "new" / "deep" / "y.lock", timeout=1) as lock:
        assert lock.fd is not None and lock.stale is None  # folders made, no record before


def test_compile_extension_calls_torch_with_the_spec(tmp_path, monkeypatch):
    from torch.utils import cpp_extension

    seen = []

    def load(**kwargs):
        seen.append((kwargs, os.environ.get("TORCH_CUDA_ARCH_LIST")))
        return str(tmp_path / "lib.so")

    monkeypatch.setattr(cpp_extension, "load", load)
    spec = {"name": "n", "sources": ["a.cpp"], "cflags": ["-O3"], "cuda_cflags": ["-X"],
            "ldflags": ["-l"], "flavour": "cuda", "arch_list": "8.0"}
    monkeypatch.delenv("TORCH_CUDA_ARCH_LIST", raising=False)
    assert _build.compile_extension(spec, tmp_path / "f") == tmp_path / "lib.so"
    assert seen[-1] == (dict(name="n", sources=["a.cpp"], extra_cflags=["-O3"],
                             extra_cuda_cflags=["-X"], extra_ldflags=["-l"],
                             build_directory=str(tmp_path / "f"), with_cuda=True,
                             is_python_module=False, verbose=False), "8.0")
    assert "TORCH_CUDA_ARCH_LIST" not in os.environ  # unset again
    monkeypatch.setenv("TORCH_CUDA_ARCH_LIST", "7.0")
    _build.compile_extension(spec, tmp_path / "f")
    assert seen[-1][1] == "8.0" and os.environ["TORCH_CUDA_ARCH_LIST"] == "7.0"
    cpu = dict(spec, flavour="cpu", arch_list=None)
    _build.compile_extension(cpu, tmp_path / "f")
    assert seen[-1][0]["with_cuda"] is False and seen[-1][1] == "7.0"
    # A failing compiler still restores the variable.
    monkeypatch.setattr(cpp_extension, "load", lambda **kw: (_ for _ in ()).throw(
        RuntimeError("error: boom")))
    with pytest.raises(RuntimeError, match="boom"):
        _build.compile_extension(spec, tmp_path / "f")
    assert os.environ["TORCH_CUDA_ARCH_LIST"] == "7.0"


def test_writable_probe_and_finished_builds(tmp_path, monkeypatch):
    assert _build._writable(tmp_path / "root") is None
    assert (tmp_path / "root" / "native").is_dir()
    assert list((tmp_path / "root" / "native").iterdir()) == []  # the probe is gone
    (tmp_path / "file").write_text("")
    reason = _build._writable(tmp_path / "file")
    assert reason is not None and reason.startswith(("FileExistsError: ", "NotADirectoryError: "))
    loaded = []
    monkeypatch.setattr(torch.ops, "load_library", lambda p: loaded.append(p))
    spec = {"flavour": "cpu", "key": "abc", "name": "lib"}
    folder = tmp_path / "native" / "cpu-abc"
    assert _build._load_finished(tmp_path, spec) == (folder, None)
    folder.mkdir(parents=True)
    (folder / "lib.so").write_text("")
    assert _build._load_finished(tmp_path, spec) == (folder, None)  # no marker yet
    (folder / "lib.so").unlink()
    (folder / "build.json").write_text("{}")
    assert _build._load_finished(tmp_path, spec) == (folder, None)  # no library
    (folder / "lib.so").write_text("")
    assert _build._load_finished(tmp_path, spec) == (folder, folder / "lib.so")
    assert loaded == [str(folder / "lib.so")]


def test_leftovers_reported_and_cleared(tmp_path):
    import types

    folder = tmp_path / "cpu-abc"
    clean = types.SimpleNamespace(stale=None)
    import warnings

    with warnings.catch_warnings():
        warnings.simplefilter("error")
        _build._clear_leftovers(folder, clean)  # nothing there: silent
    (folder / "lock").mkdir(parents=True)
    other = tmp_path / "cpu-abcd.tmp-1-x"  # another build's name: kept
    other.mkdir()
    abandoned = tmp_path / "cpu-abc.tmp-99-y"
    abandoned.mkdir()
    stale = types.SimpleNamespace(stale={"raw": "junk"})
    with pytest.warns(_build.NativeBuildWarning) as rec:
        _build._clear_leftovers(folder, stale)
    assert str(rec[0].message) == (
        f"ganblocks: cleared a stale build lock left by unreadable lock content 'junk', "
        f"torch's build lock {folder / 'lock'}, a half-built folder in {tmp_path} (an earlier "
        f"build of cpu-abc was interrupted); rebuilding the native kernels")
    assert not folder.exists() and not abandoned.exists() and other.exists()
    abandoned.mkdir()
    with pytest.warns(_build.NativeBuildWarning, match=r"^ganblocks: cleared a half-built "
                                                       r"folder in "):
        _build._clear_leftovers(folder, clean)
    assert not abandoned.exists()


def test_compile_into_place_reports_and_records_the_build(tmp_path, monkeypatch, capsys):
    import json

    ticks = iter([10.0, 73.26])
    monkeypatch.setattr(_build.time, "monotonic", lambda: next(ticks))

    def compile_(spec, folder):
        (folder / "lib_x.so").write_text("")
        return folder / "lib_x.so"

    monkeypatch.setattr(_build, "compile_extension", compile_)
    folder = tmp_path / "cpu-k"
    got = _build._compile_into_place({"flavour": "cpu", "key": "k", "name": "lib_x"}, folder)
    assert got == folder / "lib_x.so"
    assert json.loads((folder / "build.json").read_text()) == {
        "torch": torch.__version__, "flavour": "cpu", "key": "k", "seconds": 63.3,
        "library": "lib_x.so"}
    err = capsys.readouterr().err
    assert err == (f"ganblocks: compiling the native CPU kernels (once; about a minute, more on "
                   f"a busy machine) into {folder}\n"
                   "ganblocks: native kernels built in 63 s (cached for later runs)\n")


def test_build_and_load_reads_the_lock_timeout_from_the_environment(tmp_path, monkeypatch):
    timeouts = []

    class Lock:
        def __init__(self, path, *, timeout):
            timeouts.append((path, timeout))
            self.stale = None

        def __enter__(self):
            return self

        def __exit__(self, *exc):
            return None

    monkeypatch.setenv("GANBLOCKS_CACHE_DIR", str(tmp_path))
    monkeypatch.setattr(_build, "BuildLock", Lock)
    monkeypatch.setattr(_build, "_compile_into_place", lambda spec, folder: folder / "lib.so")
    folder = _build.build_dir("cpu")
    monkeypatch.delenv("GANBLOCKS_BUILD_TIMEOUT", raising=False)
    (folder / "half").mkdir(parents=True)  # an interrupted build's folder: cleared first
    with pytest.warns(_build.NativeBuildWarning, match=r"cleared a half-built folder"):
        assert _build.build_and_load("cpu") == folder / "lib.so"
    assert not folder.exists()
    monkeypatch.setenv("GANBLOCKS_BUILD_TIMEOUT", "12.5")
    _build.build_and_load("cpu")
    lock_path = folder.with_name(folder.name + ".lock")
    assert timeouts == [(lock_path, 1800.0), (lock_path, 12.5)]


def test_failure_message_shows_error_lines_else_the_last_ones():
    errors = "\n".join([f"note {i}" for i in range(5)] + [f"x.cpp: Error {i}" for i in range(15)])
    got = _build.failure_message(RuntimeError(errors))
    assert got == "RuntimeError: " + "\n    ".join(f"x.cpp: Error {i}" for i in range(12))
    plain = "\n\n".join(f"line {i}" for i in range(20)) + "\n   \n"
    assert _build.failure_message(OSError(plain)) == "OSError: " + "\n    ".join(
        f"line {i}" for i in range(8, 20))


@pytest.mark.parametrize("act", ["lrelu", "swish"])
def test_bias_act_double_backward_through_both_gradients(built, act):
    """The second-order term reaches x and b through dx and db together: the two contributions
    are summed (neither one replaces the other)."""
    from ganblocks.ops import bias_act

    x0, b0 = _bias_act_inputs()

    def run(impl):
        x, b = x0.clone().requires_grad_(True), b0.clone().requires_grad_(True)
        y = bias_act(x, b, act=act, impl=impl)
        gx, gb = torch.autograd.grad(y.square().sum(), [x, b], create_graph=True)
        return torch.autograd.grad(gx.square().sum() + (gb ** 3).sum(), [x, b])

    for a, e in zip(run("native"), run("ref")):
        torch.testing.assert_close(a, e)


def test_bias_act_reference_outputs_of_the_second_derivative_take_g_first():
    from ganblocks.ops import _bias_act_native as ban

    x, dy, g, b, p = _swish_case(8)
    _, _, d = _swish_grads(x, b, dy, g, 1.5)
    got, db = ban._ref_outputs("bias_act_grad2", (g, dy), x, b, p, True)
    torch.testing.assert_close(got, d)
    torch.testing.assert_close(db, d.sum((0, 2)))
    got1 = ban._ref_outputs("bias_act_grad", (dy,), x, b, p, None)
    torch.testing.assert_close(got1, _swish_grads(x, b, dy, g, 1.5)[1])


def test_build_lock_file_is_readable_by_all_and_writable_by_its_owner(tmp_path):
    pytest.importorskip("fcntl")
    import stat

    old = os.umask(0)
    try:
        with _build.BuildLock(tmp_path / "m.lock", timeout=1):
            pass
    finally:
        os.umask(old)
    assert stat.S_IMODE((tmp_path / "m.lock").stat().st_mode) == 0o644


# ---- _build: where its notices point, builds finished elsewhere (hardening before seed 11) ----


def _fake_library_compiler(calls):
    """Records the folder and leaves an empty library there (nothing is compiled)."""
    return lambda spec, folder: calls.append(Path(folder)) or _touch(
        Path(folder) / f"{spec['name']}.so")


def _touch(path):
    path.write_bytes(b"")
    return path


def _native_notices(records):
    return [w for w in records if issubclass(w.category, _build.NativeBuildWarning)
            and "no CUDA toolkit" not in str(w.message)]


def test_build_notices_point_at_the_caller_of_ensure_built(tmp_path, monkeypatch):
    """Both notices of a build (leftovers cleared, an unwritable cache) are attributed to the
    code that asked for the kernels (here: this test, the caller of ``ensure_built``)."""
    import tempfile
    import warnings

    monkeypatch.setenv("GANBLOCKS_NATIVE", "auto")
    monkeypatch.setattr(_build, "detect_flavour", lambda: "cpu")
    monkeypatch.setattr(_build, "compile_extension", _fake_library_compiler([]))
    monkeypatch.setattr(torch.ops, "load_library", lambda path: None)
    monkeypatch.setenv("GANBLOCKS_CACHE_DIR", str(tmp_path / "cache"))
    (_build.build_dir("cpu") / "half").mkdir(parents=True)
    with isolated_state(), warnings.catch_warnings(record=True) as rec:
        warnings.simplefilter("always")
        _dispatch.ensure_built(warn_failure=False)
    (cleared,) = _native_notices(rec)
    assert str(cleared.message).startswith("ganblocks: cleared a half-built folder in ")
    assert cleared.filename == __file__
    blocker = tmp_path / "a-file"
    blocker.write_text("")
    monkeypatch.setenv("GANBLOCKS_CACHE_DIR", str(blocker / "cache"))
    (tmp_path / "tmp").mkdir()
    monkeypatch.setattr(tempfile, "tempdir", str(tmp_path / "tmp"))
    with isolated_state(), warnings.catch_warnings(record=True) as rec:
        warnings.simplefilter("always")
        _dispatch.ensure_built(warn_failure=False)
    (fallback,) = _native_notices(rec)
    assert str(fallback.message).startswith(f"ganblocks: the build cache {blocker / 'cache'} is "
                                            "not writable (")
    assert fallback.filename == __file__


def test_build_and_load_takes_builds_finished_elsewhere(tmp_path, monkeypatch):
    """A build finished by another process while this one waited for the lock is loaded, not
    rebuilt; so is a finished build in the fallback cache when the cache is not writable."""
    import json
    import tempfile

    calls, loaded = [], []
    monkeypatch.setattr(_build, "compile_extension", _fake_library_compiler(calls))
    monkeypatch.setattr(torch.ops, "load_library", lambda path: loaded.append(path))
    monkeypatch.setenv("GANBLOCKS_CACHE_DIR", str(tmp_path / "cache"))
    spec = _build.build_spec("cpu")
    folder = _build.build_dir("cpu")

    def finish(root):
        done = root / "native" / folder.name
        done.mkdir(parents=True)
        (done / "build.json").write_text(json.dumps({"key": spec["key"]}))
        (done / f"{spec['name']}.so").write_bytes(b"")
        return done / f"{spec['name']}.so"

    class Lock:  # the other process finishes while we wait for the lock
        def __init__(self, path, *, timeout):
            self.stale = None

        def __enter__(self):
            self.library = finish(tmp_path / "cache")
            return self

        def __exit__(self, *exc):
            return None

    monkeypatch.setattr(_build, "BuildLock", Lock)
    assert _build.build_and_load("cpu") == folder / f"{spec['name']}.so"
    assert calls == [] and loaded == [str(folder / f"{spec['name']}.so")]
    # A finished build where the cache is not writable: its fallback's build is loaded.
    blocker = tmp_path / "a-file"
    blocker.write_text("")
    monkeypatch.setenv("GANBLOCKS_CACHE_DIR", str(blocker / "cache"))
    monkeypatch.setattr(tempfile, "tempdir", str(tmp_path / "tmp"))
    monkeypatch.setattr(_build, "BuildLock", lambda *a, **k: pytest.fail("locked"))
    library = finish(_build._fallback_cache())
    with pytest.warns(_build.NativeBuildWarning, match="is not writable"):
        assert _build.build_and_load("cpu") == library
    assert calls == [] and loaded[-1] == str(library)


def test_grid_striding_check_input_has_just_enough_channels_for_small_outputs():
    """The generic kernel's second check input, for an x that strides the 1-D grid: the fewest
    channels whose outputs are more than the grid's threads, here with outputs of 94 x 1 (where
    a count rounded up from any other limit would show)."""
    from ganblocks.ops import _upfirdn2d_native

    limit = _kernels.CUDA_MAX_BLOCKS_1D * 256
    w, args = torch.ones(3, 3), (3, 3, 1, 1, 0, 0, 0, 0)
    x = _meta((2000, 4, 32, 32))
    assert _upfirdn2d_native.launch_path(x, w, args) == ("generic", False, True)
    shapes = _upfirdn2d_native.check_shapes(x, w, args)
    assert _upfirdn2d_native._out_hw(32, 1, w, args) == (94, 1)
    assert shapes == [(1, 1, 32, 1), (1, limit // 94 + 1, 32, 1)]
    assert shapes[1][1] == 11156 and 11156 * 94 > limit >= 11155 * 94
