"""Backend selection and the native (compiled C++/CUDA) kernels of the ops.

Every op calls :func:`resolve_impl` with its ``impl`` argument and routes ``'native'`` calls to
:func:`upfirdn2d` / :func:`bias_act` of this module, which run the kernels of ``csrc/`` through
``torch.autograd.Function`` s: backward runs native kernels again (the transposed ``upfirdn2d``;
``bias_act``'s gradient and second-derivative kernels), so double backward (R1) never falls back
to the reference path.

Build. The extension is compiled on first use (never at import) with
``torch.utils.cpp_extension.load`` and ninja, into ``$GANBLOCKS_CACHE_DIR`` (default
``~/.cache/ganblocks``), in a folder keyed by a hash of the sources, the torch version, the
flavour (``cpu``, or ``cuda`` when torch has CUDA, a GPU is visible and a CUDA toolkit is found)
and the compiler flags: an upgrade rebuilds, and nothing builds twice. Concurrent processes
serialise on a lock (an OS file lock, released by the kernel when its holder dies); a lock or a
half-built folder left by an interrupted build is detected, reported and cleared.

``GANBLOCKS_NATIVE`` selects the behaviour:

* ``auto`` (default): build on first use; if that fails, warn **once** (with the compiler's
  message and how to fix it) and use the reference path for the rest of the process;
* ``0`` (or ``off``): never build; ``impl=None`` uses the reference path;
* ``require``: build on first use and raise if that fails.

The first native CUDA call of each (op, configuration) is checked once against the reference on
a small input; on a mismatch that configuration warns loudly and uses the reference path.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import logging
import os
import platform
import shutil
import socket
import sys
import threading
import time
import warnings
from pathlib import Path
from typing import Any, Dict, Optional, Tuple

import torch

__all__ = [
    "NativeBuildWarning",
    "NativeKernelWarning",
    "bias_act",
    "build",
    "build_dir",
    "cache_dir",
    "is_available",
    "resolve_impl",
    "status",
    "upfirdn2d",
]

log = logging.getLogger(__name__)

_IMPLS = (None, "ref", "native")
_CPU_DTYPES = (torch.float32, torch.float64, torch.bfloat16)
_CUDA_DTYPES = (torch.float16, torch.bfloat16, torch.float32, torch.float64)
_CPU_SOURCES = ("ops.cpp", "upfirdn2d_cpu.cpp", "bias_act_cpu.cpp")
_CUDA_SOURCES = ("cuda_ops.cpp", "upfirdn2d_cuda.cu", "bias_act_cuda.cu")
_HEADER_SUFFIXES = (".h", ".cuh")
_ENV_MODE = "GANBLOCKS_NATIVE"
_ENV_CACHE = "GANBLOCKS_CACHE_DIR"
_ENV_SOURCES = "GANBLOCKS_CSRC_DIR"
_ENV_TIMEOUT = "GANBLOCKS_BUILD_TIMEOUT"


class NativeBuildWarning(UserWarning):
    """The native kernels could not be built (the reference path is used instead), or a stale
    build lock was cleared."""


class NativeKernelWarning(UserWarning):
    """A native CUDA kernel disagreed with the reference on its self-check; that configuration
    uses the reference path."""


# Build state of this process: status is None (not tried yet), 'ok', 'failed' or 'disabled'.
_state: Dict[str, Any] = {"status": None, "error": None, "flavour": None, "path": None}
_build_mutex = threading.Lock()
_verified: Dict[Tuple, bool] = {}


# ----------------------------------------------------------------------------------------------
# Configuration


def _mode() -> str:
    raw = os.environ.get(_ENV_MODE, "auto").strip().lower()
    if raw in ("", "auto", "1", "on", "yes", "true"):
        return "auto"
    if raw in ("0", "off", "no", "false", "none"):
        return "off"
    if raw == "require":
        return "require"
    raise ValueError(
        f"{_ENV_MODE}: expected 'auto', '0' or 'require', got {os.environ.get(_ENV_MODE)!r}"
    )


def cache_dir() -> Path:
    """Root of the build cache: ``$GANBLOCKS_CACHE_DIR``, else ``$XDG_CACHE_HOME/ganblocks``, else
    ``~/.cache/ganblocks``.

    Example:
        >>> build_dir().parent == cache_dir() / "native"
        True
    """
    env = os.environ.get(_ENV_CACHE)
    if env:
        return Path(env).expanduser()
    xdg = os.environ.get("XDG_CACHE_HOME")
    base = Path(xdg).expanduser() if xdg else Path.home() / ".cache"
    return base / "ganblocks"


def _source_dir() -> Path:
    env = os.environ.get(_ENV_SOURCES)
    if env:
        return Path(env).expanduser()
    try:
        import ganblocks._csrc as csrc  # package data: the kernel sources

        return Path(csrc.__file__).parent
    except ImportError:  # pragma: no cover - a source checkout without the package mapping
        return Path(__file__).resolve().parents[2] / "csrc"


def _cuda_home() -> Optional[str]:
    from torch.utils import cpp_extension

    return cpp_extension.CUDA_HOME


def _flavour() -> str:
    """``'cuda'`` when this torch can build and run CUDA kernels here, else ``'cpu'``."""
    if torch.version.cuda is None or not torch.cuda.is_available():
        return "cpu"
    return "cuda" if _cuda_home() else "cpu"


def _cpu_signature() -> str:
    """Identifies the host CPU's instruction set (the CPU build uses -march=native)."""
    try:
        with open("/proc/cpuinfo", encoding="utf-8") as fh:
            lines = fh.read().splitlines()
        keep = [ln for ln in lines if ln.startswith(("model name", "flags", "Features"))]
        return "|".join(sorted(set(keep)))
    except OSError:
        return platform.processor() or platform.machine()


def _cuda_arch_list() -> str:
    env = os.environ.get("TORCH_CUDA_ARCH_LIST")
    if env:
        return env
    caps = sorted(
        {torch.cuda.get_device_capability(i) for i in range(torch.cuda.device_count())}
    )
    return ";".join(f"{major}.{minor}" for major, minor in caps)


def _build_spec(flavour: str) -> Dict[str, Any]:
    """Everything that determines the build: sources, flags, and the key hashed from them."""
    src = _source_dir()
    sources = list(_CPU_SOURCES) + (list(_CUDA_SOURCES) if flavour == "cuda" else [])
    headers = sorted(p.name for p in src.iterdir() if p.suffix in _HEADER_SUFFIXES)
    cflags = ["-O3", "-fopenmp", "-DNDEBUG"]
    machine = platform.machine().lower()
    native_arch = sys.platform.startswith("linux") and machine in ("x86_64", "amd64")
    if native_arch:
        cflags.append("-march=native")
    cuda_cflags = ["-O3", "--use_fast_math", "-DNDEBUG"] if flavour == "cuda" else []
    if flavour == "cuda":
        cflags.append("-DGANBLOCKS_WITH_CUDA")
    spec = {
        "flavour": flavour,
        "sources": [str(src / name) for name in sources],
        "cflags": cflags,
        "cuda_cflags": cuda_cflags,
        "ldflags": ["-fopenmp"],
        "arch_list": _cuda_arch_list() if flavour == "cuda" else None,
    }
    h = hashlib.sha256()
    for name in sorted(sources) + headers:
        h.update(name.encode())
        h.update((src / name).read_bytes())
    for item in (
        torch.__version__,
        str(torch.version.cuda),
        flavour,
        " ".join(cflags),
        " ".join(cuda_cflags),
        str(spec["arch_list"]),
        sys.platform,
        machine,
        _cpu_signature() if native_arch else "",
    ):
        h.update(b"\0" + item.encode())
    key = h.hexdigest()[:16]
    spec["key"] = key
    spec["name"] = f"ganblocks_native_{flavour}_{key}"
    return spec


def build_dir(flavour: Optional[str] = None) -> Path:
    """Folder of the build for this machine's flavour (nothing is built by calling this):
    ``<cache_dir()>/native/<flavour>-<key>``, the key hashing sources, torch version and flags.

    Example:
        >>> build_dir("cpu").name.startswith("cpu-")
        True
    """
    spec = _build_spec(flavour or _flavour())
    return cache_dir() / "native" / f"{spec['flavour']}-{spec['key']}"


# ----------------------------------------------------------------------------------------------
# Build lock


def _pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    except OSError:
        return False
    return True


class _BuildLock:
    """Inter-process lock on ``path``: an OS (``flock``) lock, released by the kernel when its
    holder exits or is killed, so it can never go stale. The holder writes its PID, host and start
    time into the file and erases them on release; finding them on acquiring means the previous
    build was interrupted, which is reported (its half-built folder is then rebuilt)."""

    def __init__(self, path: Path, *, timeout: float, poll: float = 0.2) -> None:
        self.path = Path(path)
        self.timeout = timeout
        self.poll = poll
        self.fd: Optional[int] = None
        self.stale: Optional[dict] = None

    def __enter__(self) -> _BuildLock:
        try:
            import fcntl
        except ImportError:  # pragma: no cover - no flock (Windows): builds are not serialised
            return self
        self.path.parent.mkdir(parents=True, exist_ok=True)
        fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o644)
        start = time.monotonic()
        told = False
        while True:
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
                break
            except OSError:
                waited = time.monotonic() - start
                if not told and waited > 5:
                    holder = self._read(fd)
                    log.warning(
                        "ganblocks: waiting for the native build of another process (%s) to "
                        "finish (lock %s)",
                        _describe(holder),
                        self.path,
                    )
                    told = True
                if waited > self.timeout:
                    holder = _describe(self._read(fd))
                    os.close(fd)
                    raise TimeoutError(
                        f"waited {waited:.0f} s for the build lock {self.path} held by {holder}; "
                        f"raise {_ENV_TIMEOUT} (seconds) or end that process if it is hung"
                    ) from None
                time.sleep(self.poll)
        self.fd = fd
        previous = self._read(fd)
        if previous:
            self.stale = previous
        os.ftruncate(fd, 0)
        info = {"pid": os.getpid(), "host": socket.gethostname(), "started": time.time()}
        os.pwrite(fd, json.dumps(info).encode(), 0)
        return self

    @staticmethod
    def _read(fd: int) -> Optional[dict]:
        try:
            raw = os.pread(fd, 4096, 0)
        except OSError:
            return None
        if not raw.strip():
            return None
        try:
            return json.loads(raw.decode())
        except ValueError:
            return {"raw": raw[:200].decode(errors="replace")}

    def __exit__(self, *exc: object) -> None:
        if self.fd is None:
            return
        import fcntl

        try:
            os.ftruncate(self.fd, 0)
            fcntl.flock(self.fd, fcntl.LOCK_UN)
        finally:
            os.close(self.fd)
            self.fd = None


def _describe(info: Optional[dict]) -> str:
    if not info:
        return "unknown process"
    if "pid" not in info:
        return f"unreadable lock content {info.get('raw')!r}"
    when = time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(info.get("started", 0)))
    alive = ""
    if info.get("host") == socket.gethostname():
        alive = ", running" if _pid_alive(int(info["pid"])) else ", no longer running"
    return f"PID {info['pid']} on {info.get('host')}, started {when}{alive}"


# ----------------------------------------------------------------------------------------------
# Build and load


def _compile(spec: Dict[str, Any], folder: Path) -> Path:
    """Compile the extension into ``folder`` (under the lock) and load it."""
    from torch.utils.cpp_extension import load

    env_backup = os.environ.get("TORCH_CUDA_ARCH_LIST")
    if spec["arch_list"]:
        os.environ["TORCH_CUDA_ARCH_LIST"] = spec["arch_list"]
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # torch's notes on compiler versions etc.
            path = load(
                name=spec["name"],
                sources=spec["sources"],
                extra_cflags=spec["cflags"],
                extra_cuda_cflags=spec["cuda_cflags"],
                extra_ldflags=spec["ldflags"],
                build_directory=str(folder),
                with_cuda=spec["flavour"] == "cuda",
                is_python_module=False,
                verbose=False,
            )
    finally:
        if spec["arch_list"]:
            if env_backup is None:
                os.environ.pop("TORCH_CUDA_ARCH_LIST", None)
            else:
                os.environ["TORCH_CUDA_ARCH_LIST"] = env_backup
    return Path(path)


def _build_and_load(flavour: str) -> Path:
    spec = _build_spec(flavour)
    folder = cache_dir() / "native" / f"{flavour}-{spec['key']}"
    library = folder / f"{spec['name']}.so"
    marker = folder / "build.json"
    if marker.is_file() and library.is_file():
        torch.ops.load_library(str(library))
        return library
    timeout = float(os.environ.get(_ENV_TIMEOUT, "1800"))
    with _BuildLock(folder.with_name(folder.name + ".lock"), timeout=timeout) as lock:
        if marker.is_file() and library.is_file():  # built by another process meanwhile
            torch.ops.load_library(str(library))
            return library
        leftovers = folder.exists() and any(folder.iterdir())
        if lock.stale or leftovers:
            baton = folder / "lock"
            what = []
            if lock.stale:
                what.append(f"a stale build lock left by {_describe(lock.stale)}")
            if baton.exists():
                what.append(f"torch's build lock {baton}")
            if leftovers:
                what.append("a half-built folder")
            warnings.warn(
                f"ganblocks: cleared {', '.join(what)} in {folder} (an earlier build was "
                "interrupted); rebuilding the native kernels",
                NativeBuildWarning,
                stacklevel=4,
            )
            shutil.rmtree(folder, ignore_errors=True)
        folder.mkdir(parents=True, exist_ok=True)
        print(
            f"ganblocks: compiling the native {flavour.upper()} kernels (once; about a minute) "
            f"into {folder}",
            file=sys.stderr,
            flush=True,
        )
        start = time.monotonic()
        try:
            path = _compile(spec, folder)
        except BaseException:
            # A failed build leaves nothing behind: a later process starts clean (a folder
            # without its marker therefore always means an interrupted build).
            shutil.rmtree(folder, ignore_errors=True)
            raise
        info = {
            "torch": torch.__version__,
            "flavour": flavour,
            "key": spec["key"],
            "seconds": round(time.monotonic() - start, 1),
            "library": path.name,
        }
        tmp = marker.with_suffix(".tmp")
        tmp.write_text(json.dumps(info, indent=1), encoding="utf-8")
        os.replace(tmp, marker)
        print(f"ganblocks: native kernels built in {info['seconds']:.0f} s (cached for later "
              "runs)", file=sys.stderr, flush=True)
        return path


def _failure_message(exc: BaseException) -> str:
    text = str(exc).strip()
    lines = [ln for ln in text.splitlines() if ln.strip()]
    errors = [ln for ln in lines if "error" in ln.lower()]
    shown = errors[:12] if errors else lines[-12:]
    detail = "\n    ".join(shown)
    if len(detail) > 3000:
        detail = detail[:3000] + " ..."
    return f"{type(exc).__name__}: {detail}"


def _ensure_built() -> bool:
    """Build or load the extension once per process; ``True`` when the native ops are usable."""
    status_ = _state["status"]
    if status_ == "ok":
        return True
    if status_ == "failed" and _mode() == "require":
        raise RuntimeError(f"{_ENV_MODE}=require: {_state['error']}")
    if status_ is not None:
        return False
    with _build_mutex:
        if _state["status"] is not None:
            return _state["status"] == "ok"
        mode = _mode()
        if mode == "off":
            _state.update(status="disabled", error=f"disabled by {_ENV_MODE}=0")
            return False
        flavour = _flavour()
        _state["flavour"] = flavour
        if flavour == "cpu" and torch.version.cuda is not None and torch.cuda.is_available():
            warnings.warn(
                "ganblocks: no CUDA toolkit found (set CUDA_HOME to one matching "
                f"torch.version.cuda = {torch.version.cuda}), so only the CPU kernels are built; "
                "CUDA tensors use the reference path",
                NativeBuildWarning,
                stacklevel=4,
            )
        try:
            path = _build_and_load(flavour)
            if not hasattr(torch.ops.ganblocks, "upfirdn2d"):
                raise RuntimeError(f"{path} loaded but registered no ganblocks ops")
        except Exception as exc:  # any failure: compiler, ninja, permissions, loading
            message = _failure_message(exc)
            _state.update(status="failed", error=message)
            if mode == "require":
                raise RuntimeError(
                    f"{_ENV_MODE}=require: building the native kernels failed: {message}"
                ) from exc
            warnings.warn(
                "ganblocks: building the native kernels failed, so the ops use the reference "
                "(pure PyTorch) path for the rest of this process; results are the same, only "
                f"slower.\n  Compiler/loader said:\n    {message}\n  To fix: install a C++17 "
                "compiler (g++ or clang) and ninja (`pip install ninja`); for CUDA also a CUDA "
                f"toolkit matching torch.version.cuda ({torch.version.cuda}) with CUDA_HOME set. "
                f"Then run `python -m ganblocks.ops` to build and check the kernels (the build "
                f"cache is {cache_dir()}). Set {_ENV_MODE}=0 to silence this warning, or "
                f"{_ENV_MODE}=require to make it an error.",
                NativeBuildWarning,
                stacklevel=4,
            )
            return False
        _state.update(status="ok", path=str(path), error=None)
        return True


def build() -> Path:
    """Build (or load from the cache) the native kernels now and return the library's path.

    Raises:
        RuntimeError: if the build fails or is disabled by ``GANBLOCKS_NATIVE=0``.
    """
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", NativeBuildWarning)
        ok = _ensure_built()
    if not ok:
        raise RuntimeError(f"ganblocks native kernels unavailable: {_state['error']}")
    return Path(_state["path"])


def status() -> Dict[str, Any]:
    """What is known about the native backend, without building anything: mode, flavour, state
    (``'not built yet'``, ``'ok'``, ``'failed'`` or ``'disabled'``), error, folders, dtypes.

    Example:
        >>> status()["dtypes"]["cpu"]
        ['float32', 'float64', 'bfloat16']
    """
    flavour = _state["flavour"] or _flavour()
    devices = ["cpu"] + (["cuda"] if flavour == "cuda" else [])
    return {
        "mode": _mode(),
        "flavour": flavour,
        "state": _state["status"] or "not built yet",
        "error": _state["error"],
        "library": _state["path"],
        "cache_dir": str(cache_dir()),
        "build_dir": str(build_dir(flavour)),
        "devices": devices,
        "dtypes": {
            "cpu": [str(d).replace("torch.", "") for d in _CPU_DTYPES],
            "cuda": [str(d).replace("torch.", "") for d in _CUDA_DTYPES],
        },
    }


# ----------------------------------------------------------------------------------------------
# Dispatch


def _supported(x: torch.Tensor) -> bool:
    kind = x.device.type
    if kind == "cpu":
        return x.dtype in _CPU_DTYPES
    if kind == "cuda":
        return x.dtype in _CUDA_DTYPES
    return False


def is_available(device: Optional[torch.device] = None) -> bool:
    """Whether the native kernels can run on ``device`` (default: CPU); builds them on first use.

    Example:
        >>> isinstance(is_available(torch.device('cpu')), bool)
        True
    """
    kind = torch.device(device).type if device is not None else "cpu"
    if kind not in ("cpu", "cuda"):
        return False
    if not _ensure_built():
        return False
    return kind == "cpu" or _state["flavour"] == "cuda"


def resolve_impl(impl: Optional[str], x: torch.Tensor) -> str:
    """Map an op's ``impl`` argument to ``'ref'`` or ``'native'`` for input ``x``.

    ``None`` picks native when it is built for ``x``'s device and dtype, else ref; ``'native'``
    raises when native cannot run ``x``.

    Example:
        >>> resolve_impl('ref', torch.zeros(1))
        'ref'
    """
    if impl not in _IMPLS:
        raise ValueError(f"impl: expected None, 'ref' or 'native', got {impl!r}")
    if impl == "ref":
        return "ref"
    if impl is None:
        if not _supported(x):
            return "ref"
        return "native" if is_available(x.device) else "ref"
    if not _supported(x):
        raise TypeError(
            f"impl='native': the native kernels do not support {x.dtype} tensors on "
            f"{x.device.type} (CPU: float32, float64, bfloat16; CUDA: float16, bfloat16, "
            "float32, float64); use impl=None (falls back to the reference) or impl='ref'"
        )
    if not is_available(x.device):
        reason = _state["error"] or f"built for {_state['flavour']} only"
        raise RuntimeError(
            f"impl='native': the native kernels are not available for {x.device.type} tensors "
            f"({reason}); use impl=None or impl='ref'"
        )
    return "native"


# ----------------------------------------------------------------------------------------------
# Self-check of CUDA configurations


def _rel_err(a: torch.Tensor, b: torch.Tensor) -> float:
    scale = b.double().abs().max().item()
    err = (a.double() - b.double()).abs().max().item()
    return err / scale if scale > 0 else err


def _tolerance(dtype: torch.dtype) -> float:
    return {torch.float64: 1e-9, torch.float32: 1e-4}.get(dtype, 3e-2)


def _is_channels_last(x: torch.Tensor) -> bool:
    return (
        x.dim() == 4
        and not x.is_contiguous()
        and x.is_contiguous(memory_format=torch.channels_last)
    )


def _small_like(x: torch.Tensor, keep_dim: Optional[int] = None) -> torch.Tensor:
    """A random tensor with x's layout, dtype and device, with few elements."""
    shape = list(x.shape)
    for d in range(len(shape)):
        if d != keep_dim and shape[d] > 2 and torch.Size(shape).numel() > 1 << 16:
            shape[d] = 2
    fmt = torch.channels_last if _is_channels_last(x) else torch.contiguous_format
    return torch.randn(shape, dtype=x.dtype, device=x.device).contiguous(memory_format=fmt)


def _verified_ok(key: Tuple, check) -> bool:
    """Run ``check() -> relative error`` once per key (CUDA only); False (and a warning) on a
    mismatch."""
    ok = _verified.get(key)
    if ok is not None:
        return ok
    dtype = key[1]
    try:
        with torch.no_grad():
            err = float(check())
        ok = err <= _tolerance(dtype)
        detail = f"relative error {err:.3g}"
    except Exception as exc:  # a launch failure counts as a mismatch
        ok = False
        detail = f"{type(exc).__name__}: {exc}"
    if not ok:
        warnings.warn(
            f"ganblocks: the native CUDA kernel for {key[0]} with configuration {key[1:]} "
            f"DISAGREES with the reference path ({detail}). This configuration now uses the "
            "reference path (correct, slower). Please report this with your GPU model and "
            "torch version.",
            NativeKernelWarning,
            stacklevel=4,
        )
    _verified[key] = ok
    return ok


# ----------------------------------------------------------------------------------------------
# upfirdn2d


def _opmath(dtype: torch.dtype) -> torch.dtype:
    return torch.float64 if dtype == torch.float64 else torch.float32


def _filter_weights(f: Optional[torch.Tensor], p, x: torch.Tensor) -> torch.Tensor:
    """The taps as the kernels take them: gain applied to the float32 filter, rounded to x's dtype
    (as the reference does), in correlation order, in the compute dtype, on x's device."""
    if f is None:
        f = torch.ones([1, 1], dtype=torch.float32, device=x.device)
    w = (f * (p.gain ** (f.ndim / 2))).to(x.dtype)
    if not p.flip_filter:
        w = w.flip(list(range(w.ndim)))
    return w.to(device=x.device, dtype=_opmath(x.dtype)).contiguous()


def _upfirdn2d_kernel(x: torch.Tensor, f: Optional[torch.Tensor], p) -> torch.Tensor:
    w = _filter_weights(f, p, x)

    def call(t: torch.Tensor) -> torch.Tensor:
        return torch.ops.ganblocks.upfirdn2d(
            t, w, p.upx, p.upy, p.downx, p.downy, p.padx0, p.padx1, p.pady0, p.pady1
        )

    if x.is_cuda:
        from .upfirdn2d import upfirdn2d_ref

        cl = _is_channels_last(x)
        key = ("upfirdn2d", x.dtype, "channels_last" if cl else "nchw", tuple(w.shape), p.upx,
               p.upy, p.downx, p.downy, p.padding, p.flip_filter)

        def check() -> float:
            # One image of the same size and layout, a few channels (the kernel choice depends
            # only on the key's fields).
            c = min(int(x.shape[1]), 32 if cl else 4)
            xs = torch.randn(1, c, x.shape[2], x.shape[3], dtype=x.dtype, device=x.device)
            if cl:
                xs = xs.contiguous(memory_format=torch.channels_last)
            return _rel_err(call(xs), upfirdn2d_ref(xs, f, p))

        if not _verified_ok(key, check):
            return upfirdn2d_ref(x, f, p)
    return call(x)


class _UpFirDn2d(torch.autograd.Function):
    """upfirdn2d whose gradient is the transposed upfirdn2d, through this same Function (so it is
    differentiable to any order)."""

    @staticmethod
    def forward(ctx, x, f, p):
        ctx.f = f
        ctx.p = p
        ctx.in_size = (int(x.shape[2]), int(x.shape[3]))
        return _upfirdn2d_kernel(x, f, p)

    @staticmethod
    def backward(ctx, dy):
        dx = None
        if ctx.needs_input_grad[0]:
            pt = ctx.p.transpose(ctx.in_size[0], ctx.in_size[1], ctx.f)
            dx = _UpFirDn2d.apply(dy, ctx.f, pt)
        return dx, None, None


def upfirdn2d(x: torch.Tensor, f: Optional[torch.Tensor], p) -> torch.Tensor:
    """Native :func:`~ganblocks.ops.upfirdn2d` on parsed parameters ``p`` (``UpFirDn2dParams``).

    ``x: [N, C, H, W]`` → ``[N, C, *p.output_size(H, W, f)]``. The filter gets no gradient. The
    ops call this when :func:`resolve_impl` picks ``'native'``.

    Example:
        >>> from ganblocks.ops.upfirdn2d import UpFirDn2dParams, setup_filter
        >>> f = setup_filter([1, 3, 3, 1])
        >>> p = UpFirDn2dParams.parse(up=2, padding=[2, 1, 2, 1], gain=4.0)
        >>> p.output_size(4, 4, f)
        (8, 8)
        >>> y = upfirdn2d(torch.ones(1, 1, 4, 4), f, p) if is_available() else torch.ones(8, 8)
        >>> float(y[..., 3, 3])  # a constant image stays constant away from the borders
        1.0
    """
    if f is not None and f.requires_grad and torch.is_grad_enabled():
        raise ValueError(
            "f: the native upfirdn2d does not differentiate the filter, but f.requires_grad is "
            "True; pass f.detach() (FIR filters are fixed buffers) or use impl='ref'"
        )
    return _UpFirDn2d.apply(x, f, p)


# ----------------------------------------------------------------------------------------------
# bias_act


def _clamp_arg(p) -> float:
    return -1.0 if p.clamp is None else float(p.clamp)


def _act_key(name: str, x: torch.Tensor, b: Optional[torch.Tensor], p) -> Tuple:
    return (name, x.dtype, p.spec.name, b is not None, p.dim if b is not None else None,
            p.clamp is not None, _is_channels_last(x))


def _check_bias_act(name: str, x: torch.Tensor, b: Optional[torch.Tensor], p, run) -> bool:
    """First CUDA call of each bias_act configuration: compare `run(xs, bs, dys, gs)` with the
    reference's value, gradient or second derivative on a small input."""
    from .bias_act import bias_act_ref

    def check() -> float:
        xs = _small_like(x, keep_dim=p.dim if b is not None else None)
        bs = None if b is None else torch.randn_like(b)
        dys, gs = torch.randn_like(xs), torch.randn_like(xs)
        with torch.enable_grad():
            xr = xs.detach().requires_grad_(True)
            yr = bias_act_ref(xr, bs, p)
            if name == "bias_act":
                ref = yr
            else:
                (dx,) = torch.autograd.grad(yr, xr, dys, create_graph=name == "bias_act_grad2")
                if name == "bias_act_grad":
                    ref = dx
                elif dx.requires_grad:
                    (ref,) = torch.autograd.grad(dx, xr, gs)
                else:
                    ref = torch.zeros_like(xs)
        return _rel_err(run(xs, bs, dys, gs), ref.detach())

    return _verified_ok(_act_key(name, x, b, p), check)


def _bias_act_fwd(x, b, p):
    def run(xs, bs, dys, gs):
        return torch.ops.ganblocks.bias_act(
            xs, bs, p.dim, p.spec.code, p.alpha, p.gain, _clamp_arg(p)
        )

    if x.is_cuda and not _check_bias_act("bias_act", x, b, p, run):
        from .bias_act import bias_act_ref

        return bias_act_ref(x, b, p)
    return run(x, b, None, None)


def _ref_grads(dy, x, b, p, g=None):
    """Reference gradient (g None) or second derivative of bias_act, for unverified configs."""
    from .bias_act import bias_act_ref

    with torch.enable_grad():
        xr = x.detach().requires_grad_(True)
        yr = bias_act_ref(xr, b, p)
        (dx,) = torch.autograd.grad(yr, xr, dy, create_graph=g is not None)
        if g is None:
            out = dx
        elif dx.requires_grad:
            (out,) = torch.autograd.grad(dx, xr, g)
        else:
            out = torch.zeros_like(x)
    out = out.detach()
    db = None
    if b is not None:
        dims = [d for d in range(x.ndim) if d != p.dim]
        db = out.sum(dims, dtype=_opmath(x.dtype)) if dims else out.to(_opmath(x.dtype))
    return out, db


def _bias_act_grad(dy, x, b, p, want_db):
    def run(xs, bs, dys, gs):
        return torch.ops.ganblocks.bias_act_grad(
            dys, xs, bs, p.dim, p.spec.code, p.alpha, p.gain, _clamp_arg(p), False
        )[0]

    if x.is_cuda and not _check_bias_act("bias_act_grad", x, b, p, run):
        return _ref_grads(dy, x, b, p)
    return torch.ops.ganblocks.bias_act_grad(
        dy, x, b, p.dim, p.spec.code, p.alpha, p.gain, _clamp_arg(p), want_db
    )


def _bias_act_grad2(g, dy, x, b, p, want_db):
    def run(xs, bs, dys, gs):
        return torch.ops.ganblocks.bias_act_grad2(
            gs, dys, xs, bs, p.dim, p.spec.code, p.alpha, p.gain, _clamp_arg(p), False
        )[0]

    if x.is_cuda and not _check_bias_act("bias_act_grad2", x, b, p, run):
        return _ref_grads(dy, x, b, p, g=g)
    return torch.ops.ganblocks.bias_act_grad2(
        g, dy, x, b, p.dim, p.spec.code, p.alpha, p.gain, _clamp_arg(p), want_db
    )


def _bias_shape(x: torch.Tensor, p) -> list:
    return [-1 if d == p.dim else 1 for d in range(x.ndim)]


class _BiasAct(torch.autograd.Function):
    @staticmethod
    def forward(ctx, x, b, p):
        ctx.p = p
        ctx.save_for_backward(x, b)
        return _bias_act_fwd(x, b, p)

    @staticmethod
    def backward(ctx, dy):
        x, b = ctx.saved_tensors
        need_x, need_b = ctx.needs_input_grad[0], ctx.needs_input_grad[1]
        if not (need_x or need_b):
            return None, None, None
        if b is not None and need_b:
            dx, db = _BiasActGrad.apply(dy, x, b, ctx.p, True)
            return (dx if need_x else None), db, None
        dx = _BiasActGrad.apply(dy, x, b, ctx.p, False)
        return dx, None, None


class _BiasActGrad(torch.autograd.Function):
    """dx (and db) of bias_act; its own gradient uses the same kernel (for dy) and the
    second-derivative kernel (for x and b)."""

    @staticmethod
    def forward(ctx, dy, x, b, p, want_db):
        ctx.p = p
        ctx.want_db = want_db
        ctx.save_for_backward(dy, x, b)
        dx, db = _bias_act_grad(dy, x, b, p, want_db)
        if want_db:
            return dx, db.to(b.dtype)
        return dx

    @staticmethod
    def backward(ctx, gdx, gdb=None):
        dy, x, b = ctx.saved_tensors
        p = ctx.p
        g = gdx
        if gdb is not None and b is not None:
            spread = gdb.to(x.dtype).reshape(_bias_shape(x, p)).expand_as(x)
            g = spread if g is None else g + spread
        if g is None:
            return None, None, None, None, None
        need_dy, need_x, need_b = ctx.needs_input_grad[:3]
        g_dy = g_x = g_b = None
        if need_dy:
            g_dy = _BiasActGrad.apply(g, x, b, p, False)
        if p.spec.has_2nd_grad and (need_x or (need_b and b is not None)):
            want_db = bool(need_b and b is not None)
            out = _BiasActGrad2.apply(g, dy, x, b, p, want_db)
            if want_db:
                g_x, g_b = out
            else:
                g_x = out
            if not need_x:
                g_x = None
        return g_dy, g_x, g_b, None, None


class _BiasActGrad2(torch.autograd.Function):
    """Second derivative of bias_act contracted with the incoming gradient (R1 penalties)."""

    @staticmethod
    def forward(ctx, g, dy, x, b, p, want_db):
        d, db = _bias_act_grad2(g, dy, x, b, p, want_db)
        if want_db:
            return d, db.to(b.dtype)
        return d

    @staticmethod
    def backward(ctx, *grads):
        raise NotImplementedError(
            "third derivatives of bias_act are not implemented in the native kernels; use "
            "impl='ref' for them"
        )


def bias_act(x: torch.Tensor, b: Optional[torch.Tensor], p) -> torch.Tensor:
    """Native :func:`~ganblocks.ops.bias_act` on parsed parameters ``p`` (``BiasActParams``).

    ``x`` of any shape, ``b: [x.shape[p.dim]]`` or ``None``; returns ``x``'s shape and dtype.

    Example:
        >>> from ganblocks.ops.bias_act import ACTIVATIONS, BiasActParams
        >>> p = BiasActParams(ACTIVATIONS["lrelu"], dim=1, alpha=0.2, gain=1.0, clamp=None)
        >>> x, b = torch.tensor([[-1.0, 2.0]]), torch.tensor([0.5, 0.5])
        >>> bias_act(x, b, p) if is_available() else torch.tensor([[-0.1, 2.5]])
        tensor([[-0.1000,  2.5000]])
    """
    return _BiasAct.apply(x, b, p)


@contextlib.contextmanager
def _isolated_state():
    """Test helper: run with a fresh build state and restore the old one afterwards."""
    saved = dict(_state), dict(_verified)
    _state.update(status=None, error=None, flavour=None, path=None)
    _verified.clear()
    try:
        yield
    finally:
        _state.clear()
        _state.update(saved[0])
        _verified.clear()
        _verified.update(saved[1])
