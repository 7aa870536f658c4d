"""``python -m ganblocks.ops`` in-process (``ganblocks.ops.__main__.main``): its report, exit
status and helpers, pinned after a mutation sample (issue 23). The subprocess run of the command
is in test_native_build.py."""

from __future__ import annotations

import os

import pytest
import torch

from ganblocks.ops import __main__ as ops_main
from ganblocks.ops import native


@pytest.fixture(scope="module")
def built():
    if os.environ.get("GANBLOCKS_NATIVE", "auto").strip().lower() in ("0", "off", "no", "false"):
        pytest.skip("native kernels disabled by GANBLOCKS_NATIVE=0")
    return native.build()


def test_rel_err_relative_to_the_reference_magnitude():
    a = torch.tensor([0.25, -0.5])
    b = torch.tensor([0.5, -0.25])
    # max |a - b| = 0.25, max |b| = 0.5 (below 1: still divided)
    assert ops_main._rel_err(a, b) == 0.5
    assert ops_main._rel_err(torch.tensor([3.0]), torch.tensor([2.0])) == 0.5
    assert ops_main._rel_err(torch.tensor([0.125]), torch.zeros(1)) == 0.125


def test_median_ms_takes_the_median_of_the_repetitions(monkeypatch):
    # perf_counter readings (start, end) pairs: 3 ms, 1 ms, 10 ms, 2 ms, 5 ms -> median 3 ms.
    ticks = iter([0.0, 0.003, 1.0, 1.001, 2.0, 2.010, 3.0, 3.002, 4.0, 4.005])
    monkeypatch.setattr(ops_main.time, "perf_counter", lambda: next(ticks))
    calls = []
    ms = ops_main._median_ms(lambda: calls.append(1), torch.device("cpu"), 5)
    assert ms == pytest.approx(3.0) and len(calls) == 5


def test_report_and_exit_status_when_native_agrees(built, capsys):
    assert ops_main.main(["--reps", "1"]) == 0
    out = capsys.readouterr().out
    assert out.startswith("ganblocks.ops backends\n")
    assert f"torch            : {torch.__version__}" in out
    assert "cpu              : native + ref (native dtypes: float32, float64, bfloat16, float16)" \
        in out
    assert "self-check on cpu (float32):" in out
    (header,) = [line for line in out.splitlines() if line.startswith("  case ")]
    assert header.split() == ["case", "max", "rel", "err", "ref", "ms", "native", "ms", "speed-up"]
    for name in ("upsample2d", "downsample2d", "filter2d", "upfirdn2d 2-D filter",
                 "upsample2d fwd+bwd", "bias_act lrelu", "bias_act lrelu fwd+bwd",
                 "bias_act tanh clamp", "double backward (R1)"):
        assert f"\n  {name:<26} " in out, name
    assert "MISMATCH" not in out
    assert out.rstrip().endswith("self-check: passed")


def test_no_check_only_builds(built, capsys):
    assert ops_main.main(["--no-check"]) == 0
    out = capsys.readouterr().out
    assert "native kernels   : built/loaded in" in out and "self-check" not in out


def test_a_mismatch_is_reported_and_fails(built, capsys, monkeypatch):
    real_cases = ops_main._cases

    def cases(device, dtype):
        out = []
        for name, run in real_cases(device, dtype)[:2]:
            if name == "downsample2d":  # a native result off by 1e-3 relative
                def run(impl, run=run):
                    return tuple(t * (1 + 1e-3) if impl == "native" else t for t in run(impl))
            out.append((name, run))
        return out

    monkeypatch.setattr(ops_main, "_cases", cases)
    assert ops_main.main(["--reps", "1"]) == 1
    lines = capsys.readouterr().out.splitlines()
    (down,) = [line for line in lines if line.startswith("  downsample2d ")]
    (up,) = [line for line in lines if line.startswith("  upsample2d ")]
    assert down.endswith("  MISMATCH") and not up.endswith("MISMATCH")
    assert lines[-1] == "self-check: FAILED"


def test_tolerance_is_per_dtype_and_ten_times_looser_for_double_backward(built, capsys,
                                                                         monkeypatch):
    # A relative error of 5e-5 passes the double backward (10 x 1e-5) but not a first-order case.
    real_cases = ops_main._cases

    def cases(device, dtype):
        picked = {name: run for name, run in real_cases(device, dtype)}

        def off(run):
            return lambda impl: tuple(t * (1 + 5e-5) if impl == "native" else t
                                      for t in run(impl))

        return [("filter2d", off(picked["filter2d"])),
                ("double backward (R1)", off(picked["double backward (R1)"]))]

    monkeypatch.setattr(ops_main, "_cases", cases)
    assert ops_main.self_check(torch.device("cpu"), torch.float32, 1) is False
    lines = capsys.readouterr().out.splitlines()
    (filt,) = [line for line in lines if line.startswith("  filter2d ")]
    (r1,) = [line for line in lines if line.startswith("  double backward (R1) ")]
    assert filt.endswith("MISMATCH") and not r1.endswith("MISMATCH")
    assert ops_main.TOLERANCE[torch.float32] == 1e-5


def test_disabled_and_failed_builds(capsys, monkeypatch):
    monkeypatch.setenv("GANBLOCKS_NATIVE", "0")
    assert ops_main.main([]) == 0
    out = capsys.readouterr().out
    assert "disabled (GANBLOCKS_NATIVE=0); the ops use the reference path" in out
    monkeypatch.setenv("GANBLOCKS_NATIVE", "auto")

    def broken():
        raise RuntimeError("no compiler here")

    monkeypatch.setattr(ops_main.native, "build", broken)
    assert ops_main.main([]) == 1
    out = capsys.readouterr().out
    assert "BUILD FAILED; the ops use the reference path\nno compiler here" in out


def test_each_resampling_case_compares_its_own_op(built):
    """The cases named after an op return that op's result (not their input): up-sampling
    doubles the 64 x 64 images, down-sampling halves them, filtering keeps the size."""
    cases = dict(ops_main._cases(torch.device("cpu"), torch.float32))
    shapes = {name: [tuple(t.shape) for t in cases[name]("ref")]
              for name in ("upsample2d", "downsample2d", "filter2d")}  # fmt: skip
    assert shapes == {"upsample2d": [(4, 32, 128, 128)], "downsample2d": [(4, 32, 32, 32)],
                      "filter2d": [(4, 32, 64, 64)]}  # fmt: skip


def test_reported_error_is_relative_to_the_reference(built, capsys, monkeypatch):
    # A native result twice the reference: |2r - r| / |r| = 1 (relative to itself it would be 0.5).
    real_cases = ops_main._cases

    def cases(device, dtype):
        (name, run), = [c for c in real_cases(device, dtype) if c[0] == "filter2d"]
        return [(name, lambda impl: tuple(t * 2 if impl == "native" else t for t in run(impl)))]

    monkeypatch.setattr(ops_main, "_cases", cases)
    assert ops_main.self_check(torch.device("cpu"), torch.float32, 1) is False
    (line,) = [ln for ln in capsys.readouterr().out.splitlines() if ln.startswith("  filter2d ")]
    assert line.split()[1] == "1.00e+00"
