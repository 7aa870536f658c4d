"""The reference ops reproduce the field's standard implementation (tests/golden) to 1e-10."""

from __future__ import annotations

import pytest
import torch
from testutils import load_golden, rel_err

from ganblocks.ops import bias_act, downsample2d, filter2d, setup_filter, upfirdn2d, upsample2d

TOL = 1e-10
UPFIRDN = load_golden("upfirdn2d")
BIAS_ACT = load_golden("bias_act")
WRAPPERS = {"upsample2d": upsample2d, "downsample2d": downsample2d, "filter2d": filter2d}


def _ids(cases, key):
    return [f"{i}-{c[key]}" for i, c in enumerate(cases)]


@pytest.mark.parametrize("case", UPFIRDN["cases"], ids=_ids(UPFIRDN["cases"], "filter_kind"))
def test_upfirdn2d_forward_backward_double_backward(case):
    x = case["x"].clone().requires_grad_(True)
    y = upfirdn2d(
        x, case["f"], up=case["up"], down=case["down"], padding=case["padding"],
        flip_filter=case["flip_filter"], gain=case["gain"], impl="ref",
    )
    assert y.shape == case["y"].shape
    assert rel_err(y, case["y"]) < TOL

    dy = case["dy"].clone().requires_grad_(True)
    (dx,) = torch.autograd.grad(y, x, dy, create_graph=True)
    assert rel_err(dx, case["dx"]) < TOL

    (ddy,) = torch.autograd.grad((dx * case["v"]).sum(), dy)
    assert rel_err(ddy, case["ddy"]) < TOL


@pytest.mark.parametrize("case", UPFIRDN["wrappers"], ids=_ids(UPFIRDN["wrappers"], "fn"))
def test_wrappers(case):
    f = setup_filter(case["taps"])
    assert torch.equal(f, case["f"])
    y = WRAPPERS[case["fn"]](case["x"], f, padding=case["padding"], gain=case["gain"], impl="ref")
    assert y.shape == case["y"].shape
    assert rel_err(y, case["y"]) < TOL


@pytest.mark.parametrize("case", UPFIRDN["setup_filter"])
def test_setup_filter(case):
    f = setup_filter(
        case["taps"], normalize=case["normalize"], flip_filter=case["flip_filter"],
        gain=case["gain"],
    )
    assert f.dtype == torch.float32
    assert f.shape == case["f"].shape
    assert rel_err(f, case["f"]) < TOL


@pytest.mark.parametrize("case", BIAS_ACT["cases"], ids=_ids(BIAS_ACT["cases"], "act"))
def test_bias_act(case):
    x = case["x"].clone().requires_grad_(True)
    b = None if case["b"] is None else case["b"].clone().requires_grad_(True)
    y = bias_act(
        x, b, dim=case["dim"], act=case["act"], alpha=case["alpha"], gain=case["gain"],
        clamp=case["clamp"], impl="ref",
    )
    assert rel_err(y, case["y"]) < TOL

    dy = case["dy"].clone().requires_grad_(True)
    inputs = [x] if b is None else [x, b]
    grads = torch.autograd.grad(y, inputs, dy, create_graph=True)
    assert rel_err(grads[0], case["dx"]) < TOL
    if b is not None:
        assert rel_err(grads[1], case["db"]) < TOL

    ddy, ddx = torch.autograd.grad((grads[0] * case["v"]).sum(), [dy, x], allow_unused=True)
    ddx = torch.zeros_like(x) if ddx is None else ddx
    assert rel_err(ddy, case["ddy"]) < TOL
    assert rel_err(ddx, case["ddx"]) < TOL
    if not case["has_2nd_grad"]:
        assert not ddx.any()
