"""Pins of the native backend's Python side found unchecked by mutation samples (issue 23): the
test helper ``isolated_state`` and ``native.verify``. Fast: nothing here compiles (the kernels are
built, or loaded from the cache, once)."""

from __future__ import annotations

import os

import pytest
import torch

from ganblocks.ops import _dispatch, _kernels, _selfcheck, native
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


def test_verify_refuses_a_device_without_kernels(built):
    with pytest.raises(RuntimeError, match="not available on meta"):
        native.verify("meta")
