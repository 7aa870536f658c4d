"""``torch.compile(fullgraph=True)`` of the native ops: no graph break (the build and the backend
choice happen outside the graph; the ops have fake kernels), and the compiled function equals
eager in forward, backward and double backward (R1)."""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap

import pytest
import torch
import torch._dynamo

from ganblocks.ops import bias_act, downsample2d, native, setup_filter, upfirdn2d, upsample2d


@pytest.fixture(scope="module", autouse=True)
def built():
    if os.environ.get("GANBLOCKS_NATIVE", "auto").strip().lower() in ("0", "off", "no", "false"):
        pytest.skip("native kernels disabled by GANBLOCKS_NATIVE=0")
    native.build()
    torch._dynamo.reset()
    yield
    torch._dynamo.reset()


def _net(x, b, f, f1):
    """Both ops, every filter kind: up (2-D taps), bias + lrelu, down (separable 12 taps)."""
    y = upsample2d(x, f, impl="native")
    y = bias_act(y, b, act="lrelu", clamp=2.0, impl="native")
    y = upfirdn2d(y, f1, down=2, padding=5, gain=-1.5, impl="native")
    return bias_act(downsample2d(y, f, impl="native"), act="tanh", impl="native")


def _r1_step(x, b, f, f1):
    """Forward, the input gradient with its graph, and the penalty's gradient (double backward),
    all inside the compiled function."""
    x = x.detach().requires_grad_(True)
    out = _net(x, b, f, f1)
    (g,) = torch.autograd.grad(out.sum(), x, create_graph=True)
    penalty = g.square().sum()
    (gb,) = torch.autograd.grad(penalty, b)
    return out.detach(), g.detach(), gb


def test_compiled_ops_equal_eager_fullgraph():
    gen = torch.Generator().manual_seed(0)
    x = torch.randn(2, 3, 12, 12, generator=gen)
    b = torch.randn(3, generator=gen).requires_grad_(True)
    f = setup_filter([1, 3, 3, 1])
    f1 = setup_filter(list(range(1, 13)), separable=True)
    with torch._dynamo.config.patch(trace_autograd_ops=True):
        compiled = torch.compile(_r1_step, fullgraph=True, dynamic=False)
        got = compiled(x, b, f, f1)
    want = _r1_step(x, b, f, f1)
    for a, e in zip(got, want):
        torch.testing.assert_close(a, e, rtol=1e-5, atol=1e-6)


def test_compile_before_first_build():
    """A process whose first native call is inside torch.compile: the build runs while Dynamo
    traces (outside the graph), with no graph break."""
    code = textwrap.dedent(
        """
        import torch
        from ganblocks.ops import _dispatch, bias_act
        assert _dispatch.state["status"] is None
        fn = torch.compile(lambda x: bias_act(x, act="relu"), fullgraph=True, backend="eager")
        x = torch.randn(256, 256)  # large enough for impl=None to take the kernels
        assert torch.equal(fn(x), bias_act(x, act="relu", impl="ref"))
        print(_dispatch.state["status"])
        """
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         timeout=300)
    assert out.returncode == 0, out.stderr[-3000:]
    assert out.stdout.split()[-1] == "ok"
