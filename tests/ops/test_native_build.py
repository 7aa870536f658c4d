"""Building the native kernels: nothing at import, a cache keyed by sources/torch/flavour, the
GANBLOCKS_NATIVE modes, one warning and the reference path when the build fails, stale locks,
the CUDA sources compiling with nvcc, and ``python -m ganblocks.ops``."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import tempfile
import textwrap
import time
from pathlib import Path

import pytest
import torch

from ganblocks.ops import _build, native
from ganblocks.ops.testing import isolated_state

CSRC = _build.source_dir()
ROOT = Path(__file__).resolve().parents[2]


def _run_python(code: str, env: dict, timeout: float = 180) -> subprocess.CompletedProcess:
    full_env = {**os.environ, **env}
    full_env.pop("PYTEST_XDIST_WORKER", None)
    return subprocess.run(
        [sys.executable, "-c", textwrap.dedent(code)],
        env=full_env,
        capture_output=True,
        text=True,
        timeout=timeout,
        cwd=ROOT,
    )


def _dead_pid() -> int:
    proc = subprocess.Popen([sys.executable, "-c", "pass"])
    proc.wait()
    return proc.pid


def test_import_builds_nothing(tmp_path):
    cache = tmp_path / "cache"
    out = _run_python(
        """
        import os, sys
        import ganblocks, ganblocks.ops
        from ganblocks.ops import _dispatch
        print(_dispatch.state["status"], os.path.exists(os.environ["C"]))
        """,
        {"GANBLOCKS_CACHE_DIR": str(cache), "C": str(cache)},
    )
    assert out.returncode == 0, out.stderr
    assert out.stdout.split() == ["None", "False"]


def test_cache_key_follows_sources_and_flavour(tmp_path, monkeypatch):
    default = native.build_dir("cpu")
    assert default.parent == native.cache_dir() / "native"
    assert default.name.startswith("cpu-")
    assert native.build_dir("cuda").name.startswith("cuda-")
    copy = tmp_path / "csrc"
    shutil.copytree(CSRC, copy)
    monkeypatch.setenv("GANBLOCKS_CSRC_DIR", str(copy))
    assert native.build_dir("cpu") == default  # same content elsewhere: same build
    with open(copy / "ops.cpp", "a", encoding="utf-8") as fh:
        fh.write("\n// changed\n")
    assert native.build_dir("cpu") != default
    monkeypatch.setenv("GANBLOCKS_CACHE_DIR", str(tmp_path / "elsewhere"))
    assert native.cache_dir() == tmp_path / "elsewhere"


def test_modes(monkeypatch):
    x = torch.randn(1, 1, 4, 4)
    with isolated_state():
        monkeypatch.setenv("GANBLOCKS_NATIVE", "0")
        assert native.resolve_impl(None, x) == "ref"
        assert not native.is_available()
        with pytest.raises(RuntimeError, match="GANBLOCKS_NATIVE=0"):
            native.resolve_impl("native", x)
        assert native.status()["state"] == "disabled"
    with isolated_state():
        monkeypatch.setenv("GANBLOCKS_NATIVE", "sometimes")
        with pytest.raises(ValueError, match=r"^GANBLOCKS_NATIVE: .*'sometimes'"):
            native.resolve_impl(None, x)


def test_broken_build_warns_once_and_falls_back(tmp_path):
    """A deliberately broken copy of the sources, with a stale lock and a half-built folder left
    by an "interrupted" build: no hang, one stale-lock message, one build-failure warning with the
    compiler's message and the fix, then correct results from the reference path."""
    src = tmp_path / "csrc"
    shutil.copytree(CSRC, src)
    for cpp in src.glob("*.cpp"):  # a fatal error stops the compiler at once (fast test)
        cpp.write_text('#include "deliberately_broken.h"\n' + cpp.read_text())
    env = {
        "GANBLOCKS_CSRC_DIR": str(src),
        "GANBLOCKS_CACHE_DIR": str(tmp_path / "cache"),
        "GANBLOCKS_NATIVE": "auto",
        "DEAD_PID": str(_dead_pid()),
    }
    start = time.monotonic()
    out = _run_python(
        """
        import json, os, socket, time, warnings
        import torch
        from ganblocks.ops import bias_act, native, setup_filter, upsample2d

        folder = native.build_dir()
        folder.mkdir(parents=True)
        (folder / "lock").write_text("")  # torch's build lock, as a killed build leaves it
        (folder / "ops.o").write_text("half-written object")
        stale = {"pid": int(os.environ["DEAD_PID"]), "host": socket.gethostname(),
                 "started": time.time() - 600}
        folder.with_name(folder.name + ".lock").write_text(json.dumps(stale))

        x, b, f = torch.randn(2, 3, 8, 8), torch.randn(3), setup_filter([1, 3, 3, 1])
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            same = []
            for _ in range(2):
                same.append(torch.equal(upsample2d(x, f), upsample2d(x, f, impl="ref")))
                same.append(torch.equal(bias_act(x, b, act="lrelu"),
                                        bias_act(x, b, act="lrelu", impl="ref")))
        available = native.is_available()
        errors = {}
        try:
            upsample2d(x, f, impl="native")
        except RuntimeError as exc:
            errors["native"] = str(exc)
        os.environ["GANBLOCKS_NATIVE"] = "require"
        try:
            upsample2d(x, f)
        except RuntimeError as exc:
            errors["require"] = str(exc)
        print(json.dumps({
            "warnings": [[w.category.__name__, str(w.message)] for w in caught],
            "same": same,
            "available": available,
            "baton_left": (folder / "lock").exists(),
            "errors": errors,
        }))
        """,
        env,
    )
    elapsed = time.monotonic() - start
    assert out.returncode == 0, out.stderr
    result = json.loads(out.stdout.strip().splitlines()[-1])
    assert all(result["same"]) and len(result["same"]) == 4
    assert result["available"] is False
    warns = result["warnings"]
    assert all(category == "NativeBuildWarning" for category, _ in warns), warns
    failures = [msg for _, msg in warns if "building the native kernels failed" in msg]
    stale = [msg for _, msg in warns if "stale build lock" in msg]
    assert len(failures) == 1 and len(stale) == 1 and len(warns) == 2, warns
    assert "deliberately_broken.h" in failures[0]  # the compiler's own message
    assert "pip install ninja" in failures[0] and "GANBLOCKS_NATIVE=0" in failures[0]
    assert f"PID {env['DEAD_PID']}" in stale[0] and "no longer running" in stale[0]
    assert "half-built folder" in stale[0]
    assert not result["baton_left"]
    assert "impl='native'" in result["errors"]["native"]
    assert "GANBLOCKS_NATIVE=require" in result["errors"]["require"]
    assert elapsed < 150


def test_build_lock_waits_for_holder_times_out_and_reports_stale(tmp_path):
    pytest.importorskip("fcntl")
    path = tmp_path / "x.lock"
    holder = subprocess.Popen(
        [
            sys.executable,
            "-c",
            textwrap.dedent(
                """
                import fcntl, json, os, socket, sys, time
                fd = os.open(sys.argv[1], os.O_RDWR | os.O_CREAT)
                fcntl.flock(fd, fcntl.LOCK_EX)
                info = {"pid": os.getpid(), "host": socket.gethostname(), "started": time.time()}
                os.write(fd, json.dumps(info).encode())
                print("locked", flush=True)
                time.sleep(float(sys.argv[2]))
                """
            ),
            str(path),
            "2.0",
        ],
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert holder.stdout.readline().strip() == "locked"
        with (
            pytest.raises(TimeoutError, match=rf"PID {holder.pid} .*running"),
            _build.BuildLock(path, timeout=0.3),
        ):
            pass
        start = time.monotonic()
        with _build.BuildLock(path, timeout=60) as lock:
            waited = time.monotonic() - start
            # The holder exited without releasing its record: reported as an interrupted build.
            assert lock.stale is not None and lock.stale["pid"] == holder.pid
            assert json.loads(path.read_text())["pid"] == os.getpid()
        assert waited > 0.5
        assert path.read_text() == ""  # a clean release leaves no record
        with _build.BuildLock(path, timeout=1) as lock:
            assert lock.stale is None
    finally:
        holder.kill()
        holder.wait()


def _nvcc() -> str | None:
    found = shutil.which("nvcc")
    if found:
        return found
    for candidate in ("/usr/local/cuda/bin/nvcc", "/usr/local/bin/nvcc"):
        if os.path.exists(candidate):
            return candidate
    return None


NVCC = _nvcc()
requires_nvcc = pytest.mark.skipif(NVCC is None, reason="nvcc (CUDA toolkit) not installed")


@requires_nvcc
@pytest.mark.parametrize("source", sorted(p.name for p in CSRC.glob("*.cu")))
def test_cuda_sources_compile_with_nvcc(source, tmp_path):
    """Every .cu file compiles with nvcc alone (they include no torch header)."""
    cmd = [NVCC, "-c", "-std=c++17", "-arch=sm_80", "-I", str(CSRC), str(CSRC / source),
           "-o", str(tmp_path / "out.o")]
    out = subprocess.run(cmd, capture_output=True, text=True, timeout=300)
    assert out.returncode == 0, out.stderr


@requires_nvcc
def test_cuda_binding_parses(tmp_path):
    """The CUDA binding (cuda_ops.cpp) parses against torch's and CUDA's headers."""
    torch_inc = Path(torch.__file__).parent / "include"
    candidates = [Path(os.path.realpath(NVCC)).parent.parent / "include"]
    candidates += [Path(p) / "include" for p in (os.environ.get("CUDA_HOME"), "/usr/local/cuda")
                   if p]
    candidates += sorted(Path("/usr/local").glob("cuda-*/include"))
    cuda_inc = next((c for c in candidates if (c / "cuda_runtime_api.h").exists()), None)
    cxx = shutil.which("c++") or shutil.which("g++")
    if cuda_inc is None or cxx is None:
        pytest.skip("CUDA headers or a host C++ compiler not found")
    if not (torch_inc / "c10" / "cuda" / "CUDAStream.h").exists():
        pytest.skip("this torch ships no c10/cuda headers")
    stub = tmp_path / "c10" / "cuda" / "impl"
    stub.mkdir(parents=True)
    if not (torch_inc / "c10" / "cuda" / "impl" / "cuda_cmake_macros.h").exists():
        (stub / "cuda_cmake_macros.h").write_text("#pragma once\n")  # absent from CPU wheels
    cmd = [cxx, "-fsyntax-only", "-std=c++20", "-DGANBLOCKS_WITH_CUDA", "-isystem",
           str(torch_inc), "-isystem", str(tmp_path), "-isystem", str(cuda_inc), "-I",
           str(CSRC), str(CSRC / "cuda_ops.cpp")]
    out = subprocess.run(cmd, capture_output=True, text=True, timeout=300)
    assert out.returncode == 0, out.stderr[-3000:]


def test_python_m_ganblocks_ops():
    if os.environ.get("GANBLOCKS_NATIVE", "auto").strip().lower() in ("0", "off"):
        pytest.skip("native kernels disabled by GANBLOCKS_NATIVE=0")
    native.build()  # usually cached already
    out = subprocess.run(
        [sys.executable, "-m", "ganblocks.ops", "--reps", "1"],
        capture_output=True,
        text=True,
        timeout=300,
        cwd=ROOT,
    )
    assert out.returncode == 0, out.stdout + out.stderr
    assert "native + ref" in out.stdout
    assert "double backward (R1)" in out.stdout
    assert "self-check: passed" in out.stdout


# ---- build robustness: private build folders, unwritable caches, CUDA failures ----------------


def _fake_compile(calls: list):
    """Stands in for the compiler: writes a library file into the folder it is given."""

    def compile_(spec, folder):
        calls.append(Path(folder))
        path = Path(folder) / f"{spec['name']}.so"
        path.write_bytes(b"not really a library")
        return path

    return compile_


def test_build_runs_in_a_private_folder_renamed_into_place(tmp_path, monkeypatch):
    """Compilers of a killed build can only write into their own abandoned folder: each build
    compiles into a fresh private folder, clears abandoned ones, and renames itself into place
    complete with its marker."""
    monkeypatch.setenv("GANBLOCKS_CACHE_DIR", str(tmp_path))
    final = native.build_dir("cpu")
    abandoned = final.with_name(f"{final.name}.tmp-{_dead_pid()}-x1")
    abandoned.mkdir(parents=True)
    (abandoned / "ops.o").write_text("written by a compiler of a killed build")
    calls = []

    def compile_(spec, folder):
        assert not abandoned.exists() and not final.exists()
        return _fake_compile(calls)(spec, folder)

    monkeypatch.setattr(_build, "compile_extension", compile_)
    with pytest.warns(native.NativeBuildWarning, match="half-built folder"):
        path = _build.build_and_load("cpu")
    (folder,) = calls
    assert folder.parent == final.parent and folder.name.startswith(f"{final.name}.tmp-")
    assert path.parent == final and path.read_bytes() == b"not really a library"
    assert json.loads((final / "build.json").read_text())["key"] in final.name
    assert sorted(p.name for p in final.parent.iterdir()) == [final.name, f"{final.name}.lock"]


def test_failed_build_leaves_no_folder(tmp_path, monkeypatch):
    monkeypatch.setenv("GANBLOCKS_CACHE_DIR", str(tmp_path))

    def failing(spec, folder):
        (Path(folder) / "ops.o").write_text("partial")
        raise RuntimeError("error: compiler crashed")

    monkeypatch.setattr(_build, "compile_extension", failing)
    with pytest.raises(RuntimeError, match="compiler crashed"):
        _build.build_and_load("cpu")
    assert [p.name for p in native.build_dir("cpu").parent.iterdir()] == [
        f"{native.build_dir('cpu').name}.lock"]


def test_unwritable_cache_falls_back_to_a_temporary_one(tmp_path, monkeypatch):
    blocker = tmp_path / "a-file"
    blocker.write_text("")
    monkeypatch.setenv("GANBLOCKS_CACHE_DIR", str(blocker / "cache"))  # cannot be created
    monkeypatch.setattr(tempfile, "tempdir", str(tmp_path / "tmp"))
    (tmp_path / "tmp").mkdir()
    calls = []
    monkeypatch.setattr(_build, "compile_extension", _fake_compile(calls))
    with pytest.warns(native.NativeBuildWarning,
                      match=r"not writable .*GANBLOCKS_CACHE_DIR to a writable folder"):
        path = _build.build_and_load("cpu")
    assert path.is_relative_to(tmp_path / "tmp") and (path.parent / "build.json").is_file()


def test_build_shows_the_stale_lock_notice(tmp_path, monkeypatch):
    monkeypatch.setenv("GANBLOCKS_CACHE_DIR", str(tmp_path))
    native.build()  # the real library is loaded in this process, whatever _compile writes
    lock = native.build_dir("cpu").with_name(native.build_dir("cpu").name + ".lock")
    lock.parent.mkdir(parents=True)
    lock.write_text(json.dumps({"pid": _dead_pid(), "host": "elsewhere", "started": 0}))
    monkeypatch.setattr(_build, "compile_extension", _fake_compile([]))
    monkeypatch.setattr(_build, "detect_flavour", lambda: "cpu")
    with isolated_state(), pytest.warns(native.NativeBuildWarning,
                                        match="stale build lock left by PID"):
        assert native.build().parent == native.build_dir("cpu")


def test_cuda_build_failure_keeps_the_cpu_kernels(monkeypatch):
    if os.environ.get("GANBLOCKS_NATIVE", "auto").strip().lower() in ("0", "off"):
        pytest.skip("native kernels disabled by GANBLOCKS_NATIVE=0")
    native.build()  # the CPU build, cached
    real = _build.build_and_load
    tried = []

    def build_and_load(flavour):
        tried.append(flavour)
        if flavour == "cuda":
            raise RuntimeError("nvcc fatal: Unsupported gpu architecture 'compute_999'")
        return real(flavour)

    monkeypatch.setattr(_build, "detect_flavour", lambda: "cuda")
    monkeypatch.setattr(_build, "build_and_load", build_and_load)
    with isolated_state():
        with pytest.warns(native.NativeBuildWarning,
                          match=r"(?s)CUDA kernels failed.*compute_999"):
            assert native.is_available(torch.device("cpu"))
        assert tried == ["cuda", "cpu"]
        assert native.status()["flavour"] == "cpu" and not native.is_available("cuda")
