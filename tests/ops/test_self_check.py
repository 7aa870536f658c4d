"""The first-use self-check of the native kernels (run for CUDA tensors) cannot hurt a run: it
draws from its own generator, never runs during CUDA-graph capture or in a compiled region, falls
back to the reference on a mismatch, and checks the size-dependent launch paths of the CUDA
kernels with small inputs. Exercised on the CPU by checking CPU calls the same way."""

from __future__ import annotations

import os
import re
import warnings

import pytest
import torch
import torch._dynamo

from ganblocks.ops import (
    _bias_act_native,
    _build,
    _kernels,
    _selfcheck,
    _upfirdn2d_native,
    bias_act,
    native,
    setup_filter,
    upfirdn2d,
    upsample2d,
)


@pytest.fixture(scope="module", autouse=True)
def built():
    if os.environ.get("GANBLOCKS_NATIVE", "auto").strip().lower() in ("0", "off", "no", "false"):
        pytest.skip("native kernels disabled by GANBLOCKS_NATIVE=0")
    return native.build()


@pytest.fixture
def checked_cpu(monkeypatch):
    """CPU calls are self-checked like CUDA calls, with a fresh record of checked configs."""
    monkeypatch.setattr(_selfcheck, "CHECKED_DEVICES", ("cpu", "cuda"))
    saved = dict(_selfcheck.verified)
    _selfcheck.verified.clear()
    yield _selfcheck.verified
    _selfcheck.verified.clear()
    _selfcheck.verified.update(saved)


def _workload(x, b, f):
    """Forward, backward and double backward of both ops (every op of the bias_act family)."""
    x = x.detach().requires_grad_(True)
    y = bias_act(upsample2d(x, f, impl="native"), None, act="swish", impl="native")
    z = bias_act(y, b, act="lrelu", impl="native")
    (g,) = torch.autograd.grad(z.square().sum(), x, create_graph=True)
    (gg,) = torch.autograd.grad(g.square().sum(), x)
    return z.detach(), g.detach(), gg


def test_self_check_leaves_the_users_random_stream_alone(checked_cpu):
    x, b, f = torch.randn(2, 3, 8, 8), torch.randn(3), setup_filter([1, 3, 3, 1])
    plain = _workload(x, b, f)
    state = torch.get_rng_state()
    checked = _workload(x, b, f)
    assert torch.equal(torch.get_rng_state(), state)
    names = {key[0] for key in checked_cpu}
    assert names == {"upfirdn2d", "bias_act", "bias_act_grad", "bias_act_grad2"}, names
    assert all(checked_cpu.values())
    for a, e in zip(checked, plain):
        assert torch.equal(a, e)


def test_no_check_during_graph_capture_then_checked_after(checked_cpu, monkeypatch):
    x, b, f = torch.randn(2, 3, 8, 8), torch.randn(3), setup_filter([1, 3, 3, 1])
    monkeypatch.setattr(_selfcheck, "capturing", lambda t: True)
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # nothing DISAGREES: nothing is checked
        _workload(x, b, f)
    assert checked_cpu == {}
    monkeypatch.setattr(_selfcheck, "capturing", lambda t: False)
    _workload(x, b, f)
    assert len(checked_cpu) >= 4 and all(checked_cpu.values())


def test_no_check_inside_a_compiled_region(checked_cpu):
    x, b, f = torch.randn(2, 3, 8, 8), torch.randn(3), setup_filter([1, 3, 3, 1])
    torch._dynamo.reset()
    try:
        fn = torch.compile(lambda t: bias_act(upsample2d(t, f, impl="native"), b, act="relu",
                                              impl="native"), fullgraph=True, backend="eager")
        y = fn(x)
    finally:
        torch._dynamo.reset()
    assert checked_cpu == {}
    want = bias_act(upsample2d(x, f, impl="ref"), b, act="relu", impl="ref")
    torch.testing.assert_close(y, want, rtol=1e-5, atol=1e-6)


def test_a_disagreeing_kernel_warns_once_and_uses_the_reference(checked_cpu, monkeypatch):
    x, f = torch.randn(1, 2, 6, 6), setup_filter([1, 2, 1])
    sentinel = []

    def wrong_ref(t, w, args):  # stands in for a kernel that disagrees with the reference
        sentinel.append(1)
        return torch.full(_upfirdn2d_native.fake(t, w, *args).shape, 7.0)

    monkeypatch.setattr(_upfirdn2d_native, "taps_ref", wrong_ref)
    with pytest.warns(native.NativeKernelWarning, match="DISAGREES"):
        y = upfirdn2d(x, f, up=2, padding=1, impl="native")
    assert bool((y == 7).all()) and sentinel
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        upfirdn2d(x, f, up=2, padding=1, impl="native")  # remembered: no second warning


W4 = torch.ones(4, 4)
W12 = torch.ones(12)


def _meta(shape, channels_last=False, dtype=torch.float32):
    t = torch.empty(shape, device="meta", dtype=dtype)
    return t.contiguous(memory_format=torch.channels_last) if channels_last else t


@pytest.mark.parametrize(
    "shape, channels_last, w, args",
    [
        ((64, 512, 32, 32), False, W4, (2, 2, 1, 1, 2, 1, 2, 1)),  # z strides over 32768 planes
        ((256, 512, 16, 16), True, W4, (1, 1, 2, 2, 1, 1, 1, 1)),  # NHWC z striding
        ((1, 1, 1 << 20, 6), False, W4, (2, 2, 1, 1, 2, 1, 2, 1)),  # tall: generic kernel
        ((8, 64, 256, 256), False, torch.ones(3, 5), (3, 3, 2, 2, 1, 1, 1, 1)),  # 1-D stride
        ((4, 32, 128, 128), False, W12, (1, 1, 2, 2, 5, 5, 5, 5)),  # long separable filter
        ((1, 4, 16, 16), False, W4, (2, 2, 1, 1, 2, 1, 2, 1)),  # nothing special
    ],
)
def test_check_inputs_take_the_launch_path_of_the_real_input(shape, channels_last, w, args):
    """Each size-dependent CUDA launch path of x is taken by one of its small check inputs."""
    x = _meta(shape, channels_last)
    path = _upfirdn2d_native.launch_path(x, w, args)
    shapes = _upfirdn2d_native.check_shapes(x, w, args)
    paths = [_upfirdn2d_native.launch_path(_meta(s, channels_last), w, args) for s in shapes]
    assert path in paths, (path, paths)
    assert all(torch.Size(s).numel() < 3 * _kernels.CUDA_MAX_BLOCKS_1D * 256 for s in shapes)
    assert all(p[0] == path[0] and p[1] == path[1] for p in paths)


@pytest.mark.parametrize("shape, keep", [((64, 512, 64, 64), 1), ((3, 1 << 21), None),
                                         ((2, 8), 1)])
def test_bias_act_check_inputs_cover_grid_striding(shape, keep):
    limit = _kernels.CUDA_MAX_BLOCKS_1D * 256
    shapes = _bias_act_native.check_shapes(_meta(shape), keep)
    sizes = [torch.Size(s).numel() for s in shapes]
    assert sizes[0] <= max(1 << 16, 4 * shape[keep or 0])
    assert (max(sizes) > limit) == (torch.Size(shape).numel() > limit)
    assert max(sizes) < 2 * limit + (1 << 16)
    if keep is not None:
        assert all(s[keep] == shape[keep] for s in shapes)


def test_launch_limits_match_the_cuda_sources():
    text = (_build.source_dir() / "cuda_common.cuh").read_text()
    found = {m.group(1): int(m.group(2))
             for m in re.finditer(r"constexpr int64_t (kMax\w+) = (\d+);", text)}
    assert found == {"kMaxBlocks1D": _kernels.CUDA_MAX_BLOCKS_1D,
                     "kMaxGridZ": _kernels.CUDA_MAX_GRID_Z, "kMaxGridY": _kernels.CUDA_MAX_GRID_Y}
