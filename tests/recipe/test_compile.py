"""The OCO-GAN model under ``torch.compile(fullgraph=True)`` and ``torch.export``, with the ops'
native kernels and with the reference path: the generator, the discriminator and a full R1 step
(input gradient with its graph, penalty, gradients of D's parameters) equal eager.

Compiling is slow on a small CPU, so the model is the tiny test configuration, each case compiles
once, and the backend is ``aot_eager``: Dynamo's full graph and AOTAutograd, which is where the
ops' fake kernels and autograd formulas are used, without Inductor's code generation (the ops'
own test, ``tests/ops/test_compile.py``, runs Inductor)."""

from __future__ import annotations

import copy
import os

import pytest
import torch
import torch._dynamo
from oco_tiny import tiny_config

from ganblocks.losses import r1_penalty
from ganblocks.ops import native
from recipes.oco_gan.model import Discriminator, Generator

BACKEND = "aot_eager"
NATIVE_OFF = os.environ.get("GANBLOCKS_NATIVE", "auto").strip().lower() in ("0", "off", "no",
                                                                          "false")


@pytest.fixture(params=["native", "ref"])
def impl(request, monkeypatch):
    """The ops' backend for impl=None, as the model's layers use it."""
    if request.param == "native":
        if NATIVE_OFF:
            pytest.skip("native kernels disabled by GANBLOCKS_NATIVE=0")
        native.build()
    torch._dynamo.reset()
    with native._isolated_state():
        if request.param == "ref":
            monkeypatch.setenv("GANBLOCKS_NATIVE", "0")
        else:
            native.build()
            _kernels_at_every_size(monkeypatch)
        yield request.param
    torch._dynamo.reset()


def _kernels_at_every_size(monkeypatch) -> None:
    """The tiny model's tensors are small enough for impl=None to pick bias_act's reference
    (faster there); make it take the kernels, whose compile support is under test."""
    import importlib

    mod = importlib.import_module("ganblocks.ops.bias_act")
    monkeypatch.setattr(mod, "SMALL_FORWARD", 0)
    monkeypatch.setattr(mod, "SMALL_WITH_GRAD", 0)


def _models(seed: int = 0):
    torch.manual_seed(seed)
    cfg = tiny_config().model
    return cfg, Generator(cfg), Discriminator(cfg)


def _generate(G, z_u, label, z_c):
    return G.forward_mixed(z_u, label, z_c)


def test_compiled_generator_equals_eager(impl):
    cfg, G, _ = _models()
    gen = torch.Generator().manual_seed(1)
    z_u, z_c = torch.randn(2, cfg.z_dim, generator=gen), torch.randn(2, cfg.z_dim, generator=gen)
    ids = torch.randint(0, cfg.num_classes, (2, *cfg.resolution), generator=gen)
    # Integer ids: their eager range check (a data-dependent branch) is skipped when traced.
    label = ids
    compiled = torch.compile(_generate, fullgraph=True, dynamic=False, backend=BACKEND)
    with torch.no_grad():
        got = compiled(G, z_u, label, z_c)
        want = _generate(G, z_u, label, z_c)
    torch.testing.assert_close(got, want, rtol=1e-4, atol=1e-5)


def _r1_step(D, reals):
    """The trainer's lazy R1 term on reals, and its gradient for every parameter of D."""
    reals = reals.detach().requires_grad_(True)
    out = D(reals)
    penalty = r1_penalty(out.image, reals).mean()
    loss = penalty + out.seg.mean()  # the seg head too, so D's every layer runs
    params = [p for p in D.parameters() if p.requires_grad]
    grads = torch.autograd.grad(loss, params, allow_unused=True)
    return penalty.detach(), out.seg.detach(), grads


def test_compiled_r1_step_equals_eager(impl):
    cfg, _, D = _models()
    reals = torch.randn(2, 3, *cfg.resolution, generator=torch.Generator().manual_seed(2))
    D_eager = copy.deepcopy(D)  # spectral norm updates its power-iteration state per call
    with torch._dynamo.config.patch(trace_autograd_ops=True):
        compiled = torch.compile(_r1_step, fullgraph=True, dynamic=False, backend=BACKEND)
        got = compiled(D, reals)
    want = _r1_step(D_eager, reals)
    torch.testing.assert_close(got[0], want[0], rtol=1e-4, atol=1e-6)
    torch.testing.assert_close(got[1], want[1], rtol=1e-4, atol=1e-5)
    assert len(got[2]) == len(want[2])
    for a, e in zip(got[2], want[2]):
        assert (a is None) == (e is None)
        if a is not None:
            torch.testing.assert_close(a, e, rtol=1e-3, atol=1e-5)


class _Unconditional(torch.nn.Module):
    def __init__(self, G):
        super().__init__()
        self.G = G

    def forward(self, z):
        return self.G(z=z)


def test_export_generator(monkeypatch):
    """torch.export of the unconditional generator (native kernels as custom ops in the graph)."""
    if NATIVE_OFF:
        pytest.skip("native kernels disabled by GANBLOCKS_NATIVE=0")
    native.build()
    _kernels_at_every_size(monkeypatch)
    cfg, G, _ = _models()
    module = _Unconditional(G).eval()
    z = torch.randn(3, cfg.z_dim, generator=torch.Generator().manual_seed(3))
    exported = torch.export.export(module, (z,))
    targets = {str(n.target) for n in exported.graph.nodes if n.op == "call_function"}
    assert {t.split(".")[1] for t in targets if t.startswith("ganblocks.")} >= {
        "upfirdn2d", "bias_act"}, sorted(targets)
    z2 = torch.randn(3, cfg.z_dim, generator=torch.Generator().manual_seed(4))
    with torch.no_grad():
        torch.testing.assert_close(exported.module()(z2), module(z2), rtol=1e-4, atol=1e-5)
