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


# ---- seed-10 hardening: the workload, the report's format and the CUDA branch (faked) ---------


def test_tolerances_per_dtype():
    expected = {torch.float64: 1e-10, torch.float32: 1e-5, torch.float16: 3e-3,
                torch.bfloat16: 2e-2}
    assert dict(ops_main.TOLERANCE) == expected


def test_cases_run_their_documented_workload(built):
    """Written out: x [4, 32, 64, 64], xb [4, 64, 64, 64], b [64] and a 3 x 5 filter drawn in
    that order from a generator seeded 0, and setup_filter([1, 3, 3, 1])."""
    from ganblocks.ops import bias_act, downsample2d, filter2d, setup_filter, upfirdn2d, upsample2d

    gen = torch.Generator().manual_seed(0)
    x = torch.randn(4, 32, 64, 64, generator=gen)
    xb = torch.randn(4, 64, 64, 64, generator=gen)
    b = torch.randn(64, generator=gen)
    f2 = torch.randn(3, 5, generator=gen)
    f = setup_filter([1, 3, 3, 1])
    cases = dict(ops_main._cases(torch.device("cpu"), torch.float32))
    assert list(cases) == ["upsample2d", "downsample2d", "filter2d", "upfirdn2d 2-D filter",
                           "upsample2d fwd+bwd", "bias_act lrelu", "bias_act lrelu fwd+bwd",
                           "bias_act tanh clamp", "double backward (R1)"]

    def same(name, expected):
        got = cases[name]("ref")
        assert len(got) == len(expected), name
        assert not any(t.requires_grad for t in got), name  # detached: no graph kept alive
        for a, e in zip(got, expected):
            torch.testing.assert_close(a, e, msg=name)

    same("upsample2d", [upsample2d(x, f, impl="ref")])
    same("downsample2d", [downsample2d(x, f, impl="ref")])
    same("filter2d", [filter2d(x, f, impl="ref")])
    same("upfirdn2d 2-D filter", [upfirdn2d(x, f2, up=2, down=3, padding=1, impl="ref")])
    same("bias_act lrelu", [bias_act(xb, b, act="lrelu", impl="ref")])
    same("bias_act tanh clamp", [bias_act(xb, b, act="tanh", clamp=0.5, impl="ref")])
    # fwd+bwd: the output, then the gradients of its sum.
    xl = x.clone().requires_grad_(True)
    y = upsample2d(xl, f, impl="ref")
    same("upsample2d fwd+bwd", [y.detach(), *torch.autograd.grad(y.sum(), xl)])
    xl, bl = xb.clone().requires_grad_(True), b.clone().requires_grad_(True)
    y = bias_act(xl, bl, act="lrelu", impl="ref")
    same("bias_act lrelu fwd+bwd", [y.detach(), *torch.autograd.grad(y.sum(), [xl, bl])])
    xl = xb.clone().requires_grad_(True)
    y = bias_act(upsample2d(xl, f, impl="ref"), None, act="lrelu", impl="ref")
    (g,) = torch.autograd.grad(y.square().sum(), xl, create_graph=True)
    same("double backward (R1)", [g.detach(), *torch.autograd.grad(g.square().sum(), xl)])


def test_report_line_format_and_speed_up(built, capsys, monkeypatch):
    cases = [("filter2d", lambda impl: (torch.ones(3) * (2 if impl == "native" else 1),)),
             ("bias_act lrelu", lambda impl: (torch.ones(2),))]
    monkeypatch.setattr(ops_main, "_cases", lambda device, dtype: cases)
    times = iter([0.5, 0.25, 3.0, 1.0])  # ref, native of each case in turn
    monkeypatch.setattr(ops_main, "_median_ms", lambda fn, device, reps: next(times))
    assert ops_main.self_check(torch.device("cpu"), torch.float64, 3) is False
    lines = capsys.readouterr().out.splitlines()
    assert lines[:3] == [
        "", "self-check on cpu (float64):",
        "  case                       max rel err    ref ms  native ms  speed-up"]
    assert lines[3] == ("  filter2d                      1.00e+00      0.50       0.25"
                        "      2.0x  MISMATCH")
    assert lines[4] == "  bias_act lrelu                0.00e+00      3.00       1.00      3.0x"


def test_median_ms_synchronises_cuda_around_each_repetition(monkeypatch):
    synced, ticks = [], iter(range(100))
    monkeypatch.setattr(torch.cuda, "synchronize", lambda device=None: synced.append(device))
    monkeypatch.setattr(ops_main.time, "perf_counter", lambda: float(next(ticks)) / 1000)
    dev = torch.device("cuda")
    calls = []
    ms = ops_main._median_ms(lambda: calls.append(len(synced)), dev, 4)
    assert synced == [dev] * 8 and calls == [1, 3, 5, 7]
    assert ms == pytest.approx(1.0)
    # Four repetitions of 1, 4, 2 and 3 ms: the upper median, 3 ms.
    ticks2 = iter([0.0, 0.001, 1.0, 1.004, 2.0, 2.002, 3.0, 3.003])
    monkeypatch.setattr(ops_main.time, "perf_counter", lambda: next(ticks2))
    assert ops_main._median_ms(lambda: None, torch.device("cpu"), 4) == pytest.approx(3.0)
    assert len(synced) == 8  # no synchronisation on the CPU


def test_report_header_and_default_repetitions(built, capsys, monkeypatch):
    reps = []
    monkeypatch.setattr(ops_main, "self_check", lambda dev, dtype, n: reps.append((dev, dtype, n))
                        or True)
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    assert ops_main.main([]) == 0
    assert reps == [(torch.device("cpu"), torch.float32, 5)]
    out = capsys.readouterr().out.splitlines()
    info = native.status()
    assert out[:5] == [
        "ganblocks.ops backends",
        f"  GANBLOCKS_NATIVE : {info['mode']}",
        f"  torch            : {torch.__version__} (CUDA {torch.version.cuda})",
        f"  build flavour    : {info['flavour']}",
        f"  build folder     : {info['build_dir']}",
    ]
    assert out[-1] == "self-check: passed"
    assert ops_main.main(["--reps", "2"]) == 0 and reps[-1][2] == 2


@pytest.mark.parametrize("verdicts", [(True, True), (True, False)])
def test_the_cuda_branch_with_a_faked_gpu(built, capsys, monkeypatch, verdicts):
    """With a GPU (faked: no kernel runs), each device is self-checked, and CUDA also runs
    verify, whose disagreeing configurations are listed and fail the command."""
    checked = []
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    monkeypatch.setattr(ops_main.native, "is_available", lambda dev=None: True)
    monkeypatch.setattr(ops_main, "self_check",
                        lambda dev, dtype, n: checked.append(dev.type) or True)
    results = {("upfirdn2d", "a"): verdicts[0], ("bias_act", "b"): verdicts[1]}
    monkeypatch.setattr(ops_main.native, "verify",
                        lambda dev: checked.append(("verify", dev.type)) or results)
    code = ops_main.main(["--reps", "1"])
    out = capsys.readouterr().out
    assert checked == ["cpu", "cuda", ("verify", "cuda")]
    assert "  cuda             : native + ref (native dtypes: float16, bfloat16, float32, " \
           "float64)" in out
    if all(verdicts):
        assert code == 0 and "\nverify on cuda: 2 configurations checked, 0 disagree\n" in out
    else:
        assert code == 1
        assert "\nverify on cuda: 2 configurations checked, 1 disagree: ('bias_act', 'b')\n" in out
        assert out.rstrip().endswith("self-check: FAILED")


def test_a_gpu_without_native_kernels_is_reported_and_skipped(built, capsys, monkeypatch):
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    monkeypatch.setattr(ops_main.native, "is_available", lambda dev=None: dev.type == "cpu")
    monkeypatch.setattr(ops_main, "self_check", lambda dev, dtype, n: dev.type == "cpu")
    monkeypatch.setattr(ops_main.native, "verify", lambda dev: pytest.fail("verify ran"))
    assert ops_main.main([]) == 0
    out = capsys.readouterr().out
    assert "  cuda             : ref only (native dtypes: -)\n" in out
    assert "  cpu              : native + ref (native dtypes: float32, float64, bfloat16, " \
           "float16)\n" in out


def test_each_timing_runs_its_own_path_reps_times(capsys, monkeypatch):
    calls = []

    def run(impl):
        calls.append(impl)
        return (torch.ones(2),)

    monkeypatch.setattr(ops_main, "_cases", lambda device, dtype: [("filter2d", run)])
    assert ops_main.self_check(torch.device("cpu"), torch.float32, 3) is True
    assert calls == ["ref", "native"] + ["ref"] * 3 + ["native"] * 3
    assert "MISMATCH" not in capsys.readouterr().out


def test_rel_err_compares_in_float64_whatever_the_shapes():
    # A half-precision vector against a 0-d float64 reference: 1.0001 and 1 differ by 1e-4 in
    # float64 (in float16 both are 1).
    half, dbl = torch.ones(3, dtype=torch.float16), torch.tensor(1.0001, dtype=torch.float64)
    assert ops_main._rel_err(half, dbl) == pytest.approx(1e-4 / 1.0001, rel=1e-6)
    assert ops_main._rel_err(dbl, half) == pytest.approx(1e-4, rel=1e-6)


@pytest.mark.parametrize(("off", "passes"), [(0.95e-4, True), (1.05e-4, False)])
def test_double_backward_tolerance_is_exactly_ten_times(capsys, monkeypatch, off, passes):
    def run(impl):
        return (torch.ones(4, dtype=torch.float64) * (1 + off if impl == "native" else 1),)

    monkeypatch.setattr(ops_main, "_cases", lambda device, dtype: [("double backward (R1)", run)])
    assert ops_main.self_check(torch.device("cpu"), torch.float32, 1) is passes
    assert ("MISMATCH" in capsys.readouterr().out) is not passes
