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
import tempfile
import threading
import time
import warnings
import weakref
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
    "verify",
]

log = logging.getLogger(__name__)

_IMPLS = (None, "ref", "native")
_CPU_DTYPES = (torch.float32, torch.float64, torch.bfloat16, torch.float16)
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
    # A source checkout: the kernels beside this package (an editable install's mapping of
    # ganblocks._csrc may point at another checkout).
    beside = Path(__file__).resolve().parents[2] / "csrc"
    if (beside / "ops.cpp").is_file():
        return beside
    import ganblocks._csrc as csrc  # an installed package: the kernel sources as package data

    return Path(csrc.__file__).parent


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


def _fallback_cache() -> Path:
    """Where builds go when the cache folder cannot be written: a per-user temporary folder."""
    uid = os.getuid() if hasattr(os, "getuid") else os.getlogin()
    return Path(tempfile.gettempdir()) / f"ganblocks-{uid}"


def _writable(root: Path) -> Optional[str]:
    """None when ``root / 'native'`` can be created and written, else the reason."""
    try:
        folder = root / "native"
        folder.mkdir(parents=True, exist_ok=True)
        with tempfile.NamedTemporaryFile(dir=folder, prefix=".probe-"):
            pass
    except OSError as exc:
        return f"{type(exc).__name__}: {exc}"
    return None


def _build_and_load(flavour: str) -> Path:
    """Load the build of this flavour from the cache, or build it there first.

    The compiler runs in a private folder ``<key>.tmp-<pid>-<random>`` that is renamed into place
    (with its ``build.json`` marker) only when complete, so a build folder is either absent or
    finished, and compiler processes left behind by a killed build can only write into their
    own, abandoned folder (cleared by the next build, under the lock).
    """
    spec = _build_spec(flavour)
    name = f"{flavour}-{spec['key']}"
    root = cache_dir()

    def finished(root: Path) -> Tuple[Path, Optional[Path]]:
        """The build folder under ``root``, and its library when complete (loaded)."""
        folder = root / "native" / name
        library = folder / f"{spec['name']}.so"
        if (folder / "build.json").is_file() and library.is_file():
            torch.ops.load_library(str(library))
            return folder, library
        return folder, None

    folder, library = finished(root)
    if library is not None:
        return library
    reason = _writable(root)
    if reason is not None:
        fallback = _fallback_cache()
        warnings.warn(
            f"ganblocks: the build cache {root} is not writable ({reason}); building the native "
            f"kernels in {fallback} instead, which the system may clear. Set {_ENV_CACHE} to a "
            "writable folder to keep the build.",
            NativeBuildWarning,
            stacklevel=4,
        )
        folder, library = finished(fallback)
        if library is not None:
            return library
    timeout = float(os.environ.get(_ENV_TIMEOUT, "1800"))
    with _BuildLock(folder.with_name(name + ".lock"), timeout=timeout) as lock:
        _, library = finished(folder.parent.parent)  # built by another process meanwhile?
        if library is not None:
            return library
        leftovers = folder.exists()
        abandoned = sorted(folder.parent.glob(name + ".tmp-*"))
        if lock.stale or leftovers or abandoned:
            baton = folder / "lock"
            what = []
            if lock.stale:
                what.append(f"a stale build lock left by {_describe(lock.stale)}")
            if baton.exists():
                what.append(f"torch's build lock {baton}")
            if leftovers or abandoned:
                what.append("a half-built folder")
            warnings.warn(
                f"ganblocks: cleared {', '.join(what)} in {folder.parent} (an earlier build of "
                f"{name} was interrupted); rebuilding the native kernels",
                NativeBuildWarning,
                stacklevel=4,
            )
            for path in [folder, *abandoned]:
                shutil.rmtree(path, ignore_errors=True)
        private = Path(tempfile.mkdtemp(prefix=f"{name}.tmp-{os.getpid()}-", dir=folder.parent))
        print(
            f"ganblocks: compiling the native {flavour.upper()} kernels (once; about a minute, "
            f"more on a busy machine) into {folder}",
            file=sys.stderr,
            flush=True,
        )
        start = time.monotonic()
        try:
            built = _compile(spec, private)
            info = {
                "torch": torch.__version__,
                "flavour": flavour,
                "key": spec["key"],
                "seconds": round(time.monotonic() - start, 1),
                "library": built.name,
            }
            (private / "build.json").write_text(json.dumps(info, indent=1), encoding="utf-8")
            os.rename(private, folder)
        except BaseException:
            # A failed build leaves nothing behind.
            shutil.rmtree(private, ignore_errors=True)
            raise
        print(f"ganblocks: native kernels built in {info['seconds']:.0f} s (cached for later "
              "runs)", file=sys.stderr, flush=True)
        return folder / built.name


def _failure_message(exc: BaseException) -> str:
    text = str(exc).strip()
    lines = [ln for ln in text.splitlines() if ln.strip()]
    errors = [ln for ln in lines if "error" in ln.lower()]
    shown = errors[:12] if errors else lines[-12:]
    detail = "\n    ".join(shown)
    if len(detail) > 3000:
        detail = detail[:3000] + " ..."
    return f"{type(exc).__name__}: {detail}"


def _build_with_cpu_retry(flavour: str) -> Path:
    """Build ``flavour``; when a CUDA build fails, warn and build the CPU kernels alone, so that
    a CUDA-side problem (toolkit, architecture, nvcc) never costs the CPU kernels."""
    try:
        return _build_and_load(flavour)
    except Exception as exc:
        if flavour != "cuda":
            raise
        warnings.warn(
            "ganblocks: building the native CUDA kernels failed, so only the CPU kernels are "
            "built; CUDA tensors use the reference path (results are the same, only slower).\n"
            f"  Compiler said:\n    {_failure_message(exc)}\n  For CUDA kernels: a CUDA toolkit "
            f"matching torch.version.cuda ({torch.version.cuda}) with CUDA_HOME set; then run "
            "`python -m ganblocks.ops`.",
            NativeBuildWarning,
            stacklevel=5,
        )
        _state["flavour"] = "cpu"
        return _build_and_load("cpu")


def _ensure_built(*, warn_failure: bool = True) -> bool:
    """Build or load the extension once per process; ``True`` when the native ops are usable.
    ``warn_failure=False``: a failed build is only recorded (for callers that raise instead)."""
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
            path = _build_with_cpu_retry(flavour)
            if not hasattr(torch.ops.ganblocks, "upfirdn2d"):
                raise RuntimeError(f"{path} loaded but registered no ganblocks ops")
            _register_library()
        except Exception as exc:  # any failure: compiler, ninja, permissions, loading
            message = _failure_message(exc)
            _state.update(status="failed", error=message)
            if mode == "require":
                raise RuntimeError(
                    f"{_ENV_MODE}=require: building the native kernels failed: {message}"
                ) from exc
            if not warn_failure:
                return False
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

    Notices about the build (a stale lock cleared, an unwritable cache, CUDA kernels that could
    not be built) are shown as :class:`NativeBuildWarning`; a failure raises instead.

    Raises:
        RuntimeError: if the build fails or is disabled by ``GANBLOCKS_NATIVE=0``.
    """
    ok = _ensure_built(warn_failure=False)
    if not ok:
        raise RuntimeError(f"ganblocks native kernels unavailable: {_state['error']}")
    return Path(_state["path"])


def status() -> Dict[str, Any]:
    """What is known about the native backend, without building anything: mode, flavour, state
    (``'not built yet'``, ``'ok'``, ``'failed'`` or ``'disabled'``), error, folders, dtypes.

    Example:
        >>> status()["dtypes"]["cpu"]
        ['float32', 'float64', 'bfloat16', 'float16']
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


@torch.compiler.assume_constant_result
def _native_ready(device_type: str) -> bool:
    """:func:`is_available` as a constant for ``torch.compile``: Dynamo runs it (and so the first
    build, with its file lock) eagerly while tracing and puts only the answer into the graph."""
    return is_available(torch.device(device_type))


def _ready_for(x: torch.Tensor) -> bool:
    """:func:`_native_ready` for ``x``'s device; in eager mode, once built, read straight from
    the build state (about a microsecond less per op call than the general path)."""
    if _state["status"] == "ok" and not torch.compiler.is_compiling():
        return x.is_cpu or _state["flavour"] == "cuda"
    return _native_ready(x.device.type)


def resolve_impl(impl: Optional[str], x: torch.Tensor) -> str:
    """Map an op's ``impl`` argument to ``'ref'`` or ``'native'`` for input ``x``.

    ``None`` picks native when it is built for ``x``'s device and dtype, else ref; ``'native'``
    (or ``'cuda'``, the spelling of NVlabs' ops, accepted on every device) raises when native
    cannot run ``x``.

    Example:
        >>> resolve_impl('ref', torch.zeros(1))
        'ref'
    """
    if impl == "cuda":
        impl = "native"
    if impl not in _IMPLS:
        raise ValueError(f"impl: expected None, 'ref', 'native' (or 'cuda'), got {impl!r}")
    if impl == "ref":
        return "ref"
    if impl is None:
        if not _supported(x):
            return "ref"
        return "native" if _ready_for(x) else "ref"
    if not _supported(x):
        raise TypeError(
            f"impl='native': the native kernels do not support {x.dtype} tensors on "
            f"{x.device.type} (CPU: float32, float64, bfloat16, float16; CUDA: float16, "
            "bfloat16, float32, float64); use impl=None (falls back to the reference) or "
            "impl='ref'"
        )
    if not _ready_for(x):
        reason = _state["error"] or f"built for {_state['flavour']} only"
        raise RuntimeError(
            f"impl='native': the native kernels are not available for {x.device.type} tensors "
            f"({reason}); use impl=None or impl='ref'"
        )
    return "native"


# ----------------------------------------------------------------------------------------------
# Self-check of CUDA configurations
#
# The first eager call of each CUDA configuration compares the kernel with the reference on a small
# input drawn from a private generator (the user's random stream is untouched). It never runs
# while a CUDA graph is being captured or inside a compiled region (there the kernel runs
# unchecked, and the check happens at the next eager call); `verify()` (and
# `python -m ganblocks.ops`) checks the common configurations ahead of time.

# Devices whose calls are self-checked (the CPU kernels are covered by the test suite instead;
# tests add "cpu" here to exercise the logic without a GPU).
_CHECKED_DEVICES: Tuple[str, ...] = ("cuda",)
_CHECK_SEED = 20240607


def _tracing(x: torch.Tensor) -> bool:
    """True while ``x`` is being traced (torch.compile, AOTAutograd, torch.export, make_fx)."""
    if torch.compiler.is_compiling():
        return True
    if type(x) not in (torch.Tensor, torch.nn.Parameter):  # FakeTensor, FunctionalTensor, ...
        return True
    modes = torch._C._TorchDispatchModeKey
    return any(torch._C._get_dispatch_mode(m) is not None for m in (modes.FAKE, modes.PROXY))


def _capturing(x: torch.Tensor) -> bool:
    return x.is_cuda and torch.cuda.is_current_stream_capturing()


def _check_due(x: torch.Tensor) -> bool:
    """Whether a call on ``x`` may run the self-check now."""
    if x.device.type not in _CHECKED_DEVICES:
        return False
    return not (_tracing(x) or _capturing(x))


def _check_generator(device: torch.device) -> torch.Generator:
    """A private generator for the self-check's inputs (never the default one)."""
    return torch.Generator(device=device).manual_seed(_CHECK_SEED)


def _randn(shape, like: torch.Tensor, gen: torch.Generator, channels_last: bool = False):
    t = torch.randn(list(shape), generator=gen, device=like.device, dtype=torch.float32)
    t = t.to(like.dtype)
    return t.contiguous(memory_format=torch.channels_last) if channels_last else t


def _rel_err(a: torch.Tensor, b: torch.Tensor) -> float:
    scale = b.double().abs().max().item()
    err = (a.double() - b.double()).abs().max().item()
    return err / scale if scale > 0 else err


def _tolerance(dtype: torch.dtype) -> float:
    return {torch.float64: 1e-9, torch.float32: 1e-4}.get(dtype, 3e-2)


def _is_channels_last(x: torch.Tensor) -> bool:
    """The layout test of the kernels: NHWC-dense and not also NCHW-dense."""
    return (
        x.dim() == 4
        and not x.is_contiguous()
        and x.is_contiguous(memory_format=torch.channels_last)
    )


def _verified_ok(key: Tuple, check) -> bool:
    """Run ``check() -> relative error`` once per key; False (and a warning) on a mismatch."""
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
            f"ganblocks: the native kernel for {key[0]} with configuration {key[1:]} "
            f"DISAGREES with the reference path ({detail}). This configuration now uses the "
            "reference path (correct, slower). Please report this with your GPU model and "
            "torch version.",
            NativeKernelWarning,
            stacklevel=4,
        )
    _verified[key] = ok
    return ok


def verify(device: Optional[Any] = None) -> Dict[Tuple, bool]:
    """Self-check the common configurations of the native kernels on ``device`` now.

    Runs both ops forward, backward and double backward (the wrappers with
    ``setup_filter([1, 3, 3, 1])``, ``bias_act`` with and without bias and clamp) in every dtype
    the kernels take there, in both layouts, so that their per-configuration self-checks happen
    ahead of time: call it before capturing CUDA graphs or compiling (where checks are skipped).
    Default device: CUDA when available, else CPU (whose kernels the test suite covers; they are
    checked only when asked for here).

    Returns:
        ``{configuration: agrees}`` for the configurations checked by this call.

    Example:
        >>> results = verify("cpu") if is_available() else {("bias_act",): True}
        >>> all(results.values())
        True
    """
    global _CHECKED_DEVICES
    dev = torch.device(device if device is not None else
                       ("cuda" if torch.cuda.is_available() else "cpu"))
    if not is_available(dev):
        raise RuntimeError(f"verify: the native kernels are not available on {dev}")
    from .bias_act import bias_act as bias_act_op
    from .upfirdn2d import downsample2d, filter2d, setup_filter, upsample2d

    saved, before = _CHECKED_DEVICES, set(_verified)
    _CHECKED_DEVICES = (*saved, dev.type)
    try:
        f = setup_filter([1, 3, 3, 1], device=dev)
        gen = _check_generator(dev)
        for dtype in (_CUDA_DTYPES if dev.type == "cuda" else _CPU_DTYPES):
            for cl in (False, True):
                x = torch.randn(2, 8, 16, 16, generator=gen, device=dev).to(dtype)
                x = x.contiguous(memory_format=torch.channels_last) if cl else x
                b = torch.randn(8, generator=gen, device=dev).to(dtype).requires_grad_(True)
                x.requires_grad_(True)
                y = bias_act_op(upsample2d(x, f, impl="native"), b, act="lrelu", impl="native")
                y = bias_act_op(downsample2d(y, f, impl="native"), None, act="swish",
                                clamp=4.0, impl="native")
                y = filter2d(y, f, impl="native")
                (g,) = torch.autograd.grad(y.float().square().sum(), x, create_graph=True)
                torch.autograd.grad(g.float().square().sum(), [x, b])
    finally:
        _CHECKED_DEVICES = saved
    return {k: v for k, v in _verified.items() if k not in before}


# ----------------------------------------------------------------------------------------------
# upfirdn2d: the op torch.ops.ganblocks.upfirdn2d(x, w, upx, upy, downx, downy, padx0, padx1,
# pady0, pady1) takes the taps `w` in correlation order with the gain applied, in the compute
# dtype (float64 for float64 x, else float32).

# Launch limits of the CUDA kernels (kept equal to csrc/cuda_common.cuh): beyond them a kernel
# strides over its grid or (tiled kernels) hands over to the generic one.
_CUDA_MAX_BLOCKS_1D = 4096
_CUDA_MAX_GRID_Z = 4096
_CUDA_MAX_GRID_Y = 65535


def _opmath(dtype: torch.dtype) -> torch.dtype:
    return torch.float64 if dtype == torch.float64 else torch.float32


_taps_cache: Dict[Tuple, Tuple[Any, torch.Tensor]] = {}


def _filter_weights(f: Optional[torch.Tensor], p, x: torch.Tensor) -> Tuple[torch.Tensor, bool]:
    """The taps as the op takes them, and whether the output must be negated.

    The gain is applied to the float32 filter and rounded to x's dtype, as the reference does. A
    separable (1-D) filter carries ``sqrt(|gain|)`` per axis; a negative gain then negates the
    result (exact: rounding is symmetric in sign). Eager calls reuse the taps of the same filter
    tensor (unchanged since) with the same arguments, which saves several small ops per call.
    """
    negate = f is not None and f.ndim == 1 and p.gain < 0
    eager = not _tracing(x)
    key = None
    if eager and f is not None:
        key = (id(f), f._version, x.dtype, x.device, p.gain, p.flip_filter)
        hit = _taps_cache.get(key)
        if hit is not None and hit[0]() is f:
            return hit[1], negate
    if f is None:
        f = torch.ones([1, 1], dtype=torch.float32, device=x.device)
    gain = abs(p.gain) if f.ndim == 1 else p.gain
    w = (f.detach() * (gain ** (f.ndim / 2))).to(x.dtype)
    if not p.flip_filter:
        w = w.flip(list(range(w.ndim)))
    w = w.to(device=x.device, dtype=_opmath(x.dtype)).contiguous()
    if key is not None:
        if len(_taps_cache) >= 256:
            _taps_cache.clear()
        _taps_cache[key] = (weakref.ref(f), w)
    return w, negate


def _taps_size(w: torch.Tensor) -> Tuple[int, int]:
    fw = int(w.shape[-1])
    return fw, (int(w.shape[0]) if w.ndim == 2 else fw)


def _upfirdn2d_out_size(x: torch.Tensor, w: torch.Tensor, args: Tuple[int, ...]) -> Tuple:
    return _out_hw(x.shape[2], x.shape[3], w, args)


def _out_hw(h, wd, w: torch.Tensor, args: Tuple[int, ...]) -> Tuple:
    upx, upy, downx, downy, px0, px1, py0, py1 = args
    fw, fh = _taps_size(w)
    return (h * upy + py0 + py1 - fh) // downy + 1, (wd * upx + px0 + px1 - fw) // downx + 1


def _upfirdn2d_taps_ref(x: torch.Tensor, w: torch.Tensor, args: Tuple[int, ...]) -> torch.Tensor:
    """The reference path on the op's own arguments (for self-checks and their fallback)."""
    from .upfirdn2d import upfirdn2d_correlate

    return upfirdn2d_correlate(x, w.to(x.dtype), *args)


def _upfirdn2d_path(x: torch.Tensor, w: torch.Tensor, args: Tuple[int, ...]) -> Tuple:
    """What decides the CUDA kernel and its launch (mirrors csrc/upfirdn2d_cuda.cu): the tiled
    kernel's factors, whether its grid strides over planes (z) and whether it hands tall outputs
    to the generic kernel (y), or the generic kernel and whether it strides over its grid."""
    upx, upy, downx, downy = args[:4]
    fw, fh = _taps_size(w)
    n, c = int(x.shape[0]), int(x.shape[1])
    oh, ow = _upfirdn2d_out_size(x, w, args)
    cl = _is_channels_last(x) and c > 1
    sep = w.ndim == 1 and fw > 8  # two passes: horizontal, then vertical
    tiled = (upx == upy and downx == downy and (upx, downx) in ((1, 1), (2, 1), (4, 1), (1, 2),
             (1, 4)) and fw <= 8 and fh <= 8 and not sep)
    if tiled:
        if cl:
            th = 8 if downx == 1 else 4
            cc = 8 if x.dtype == torch.float64 else 16
            planes = n * -(-c // cc)
        else:
            th = 32 // downx
            planes = n * c
        if -(-oh // th) <= _CUDA_MAX_GRID_Y:
            return ("tiled", cl, planes > _CUDA_MAX_GRID_Z)
    total = n * c * oh * ow
    return ("generic" if not sep else "separable", cl,
            total > _CUDA_MAX_BLOCKS_1D * 256)


def _min_extent(size: int, up: int, pad0: int, pad1: int, taps: int) -> int:
    """The smallest input extent (at most ``size``) that still gives an output."""
    return max(1, min(size, -(-(taps - pad0 - pad1) // up)))


def _upfirdn2d_check_shapes(x, w, args) -> list:
    """Shapes of small inputs with x's configuration, each taking the CUDA launch path that x
    takes: one image with a few channels, plus, where x's launch strides over its grid or hands a
    tall output to the generic kernel, one just past that limit."""
    upx, upy, _, _, px0, px1, py0, py1 = args
    fw, fh = _taps_size(w)
    kind, cl, strided = _upfirdn2d_path(x, w, args)
    c, h, wd = (int(s) for s in x.shape[1:])
    shapes = [(1, min(c, 32 if cl else 4), h, wd)]
    h_min = _min_extent(h, upy, py0, py1, fh)
    w_min = _min_extent(wd, upx, px0, px1, fw)
    if kind == "generic" and _upfirdn2d_path(x[:1, :1, :, :w_min], w, args)[0] == "generic":
        shapes = [(1, 1, h, w_min)]  # x's own height, all that matters to this path
    if kind == "tiled" and strided:  # the grid's z strides over planes: one more than fits
        per = (8 if x.dtype == torch.float64 else 16) if cl else 1
        shapes.append((1, (_CUDA_MAX_GRID_Z + 1) * per, h_min, w_min))
    elif strided:  # the 1-D grid strides: more outputs than it has threads
        _, c0, h0, w0 = shapes[0]
        oh, ow = _out_hw(h0, w0, w, args)
        if c0 * oh * ow <= _CUDA_MAX_BLOCKS_1D * 256:
            shapes.append((1, _CUDA_MAX_BLOCKS_1D * 256 // (oh * ow) + 1, h0, w0))
    return shapes


def _upfirdn2d_op(x: torch.Tensor, w: torch.Tensor, args: Tuple[int, ...]) -> torch.Tensor:
    """The native op, self-checked on the first eager CUDA call of each configuration (with the
    reference as the fallback on a mismatch)."""
    if _check_due(x):
        key = ("upfirdn2d", x.dtype, tuple(w.shape), *args, _upfirdn2d_path(x, w, args))

        def check() -> float:
            gen = _check_generator(x.device)
            worst = 0.0
            cl = _is_channels_last(x)
            for shape in _upfirdn2d_check_shapes(x, w, args):
                xs = _randn(shape, x, gen, channels_last=cl)
                got = torch.ops.ganblocks.upfirdn2d(xs, w, *args)
                worst = max(worst, _rel_err(got, _upfirdn2d_taps_ref(xs, w, args)))
            return worst

        if not _verified_ok(key, check):
            return _upfirdn2d_taps_ref(x, w, args)
    return torch.ops.ganblocks.upfirdn2d(x, w, *args)


def _upfirdn2d_fake(x, w, upx, upy, downx, downy, padx0, padx1, pady0, pady1):
    oh, ow = _upfirdn2d_out_size(x, w, (upx, upy, downx, downy, padx0, padx1, pady0, pady1))
    cl = _is_channels_last(x) and x.shape[1] > 1
    fmt = torch.channels_last if cl else torch.contiguous_format
    return torch.empty((x.shape[0], x.shape[1], oh, ow), dtype=x.dtype, device=x.device,
                       memory_format=fmt)


def _upfirdn2d_setup(ctx, inputs, output) -> None:
    x, w, *args = inputs
    ctx.args = tuple(args)
    ctx.in_size = (x.shape[2], x.shape[3])
    ctx.save_for_backward(w)


def _upfirdn2d_backward(ctx, dy):
    """The gradient is the transposed upfirdn2d: up and down swap, the taps flip, and the padding
    makes tap t meet the same input/output pair (see ``UpFirDn2dParams.transpose``)."""
    (w,) = ctx.saved_tensors
    upx, upy, downx, downy, px0, _, py0, _ = ctx.args
    in_h, in_w = ctx.in_size
    fw, fh = _taps_size(w)
    out_h, out_w = dy.shape[2], dy.shape[3]
    targs = (downx, downy, upx, upy,
             fw - 1 - px0, in_w * upx - out_w * downx + px0 - upx + 1,
             fh - 1 - py0, in_h * upy - out_h * downy + py0 - upy + 1)
    dx = _upfirdn2d_op(dy, w.flip(list(range(w.ndim))), targs) if ctx.needs_input_grad[0] \
        else None
    return (dx,) + (None,) * 9


def upfirdn2d(x: torch.Tensor, f: Optional[torch.Tensor], p) -> torch.Tensor:
    """Native :func:`~ganblocks.ops.upfirdn2d` on parsed parameters ``p`` (``UpFirDn2dParams``).

    ``x: [N, C, H, W]`` → ``[N, C, *p.output_size(H, W, f)]``. Runs the custom op
    ``torch.ops.ganblocks.upfirdn2d`` (differentiable to any order, traceable by
    ``torch.compile``); the filter gets no gradient. The ops call this when
    :func:`resolve_impl` picks ``'native'``.

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
            "True; pass f.detach() (FIR filters are fixed buffers), use impl=None (which then "
            "takes the reference path) or impl='ref'"
        )
    w, negate = _filter_weights(f, p, x)
    args = (p.upx, p.upy, p.downx, p.downy, p.padx0, p.padx1, p.pady0, p.pady1)
    y = _upfirdn2d_op(x, w, args)
    return y.neg() if negate else y


# ----------------------------------------------------------------------------------------------
# bias_act: the ops
#   bias_act(x, b?, dim, act, alpha, gain, clamp) -> y
#   bias_act_grad(dy, x, b?, ..., want_db) -> (dx, db)        (db empty unless want_db)
#   bias_act_grad2(g, dy, x, b?, ..., want_db) -> (d, db)     (second derivative contracted)
# with clamp < 0 meaning none; db is in the compute dtype.

_ACT_2ND = {4, 5, 6, 7, 8, 9}  # activation codes with a non-zero second derivative


def _clamp_arg(p) -> float:
    return -1.0 if p.clamp is None else float(p.clamp)


def _act_params(code: int, dim: int, alpha: float, gain: float, clamp: float):
    from .bias_act import ACTIVATIONS, BiasActParams

    spec = next(s for s in ACTIVATIONS.values() if s.code == code)
    return BiasActParams(spec, dim, alpha, gain, None if clamp < 0 else clamp)


def _non_overlapping_and_dense(x: torch.Tensor) -> bool:
    """ATen's ``is_non_overlapping_and_dense``: the elements fill a block of memory exactly,
    in some order of the dimensions."""
    if x.numel() == 0:
        return True
    expected = 1
    for stride, size in sorted((st, sz) for sz, st in zip(x.shape, x.stride()) if sz != 1):
        if stride != expected:
            return False
        expected *= size
    return True


def _dense(x: torch.Tensor) -> torch.Tensor:
    """x itself when non-overlapping and dense, else a contiguous copy (as the kernels do)."""
    return x if _non_overlapping_and_dense(x) else x.contiguous()


def _bias_act_fake(x, b, dim, act, alpha, gain, clamp):
    return torch.empty_like(_dense(x))


def _grads_fake(*tensors_then_args):
    x, b = tensors_then_args[-8], tensors_then_args[-7]
    want_db = tensors_then_args[-1]
    n = int(b.shape[0]) if (want_db and b is not None) else 0
    return torch.empty_like(_dense(x)), x.new_empty((n,), dtype=_opmath(x.dtype))


def _bias_act_check_shapes(x: torch.Tensor, keep_dim: Optional[int]) -> list:
    """Shapes of small inputs like x (``keep_dim`` keeps its size, the bias's); one more just past
    the CUDA grid's limit when x's launch strides over its grid (so that path is checked too)."""
    shape = list(x.shape)
    for d in range(len(shape)):
        if d != keep_dim and shape[d] > 2 and torch.Size(shape).numel() > 1 << 16:
            shape[d] = 2
    shapes = [tuple(shape)]
    limit = _CUDA_MAX_BLOCKS_1D * 256
    if x.numel() > limit:
        d = next((k for k in range(len(shape)) if k != keep_dim), 0)
        big = list(shape)
        big[d] = limit // max(1, torch.Size(shape).numel() // max(shape[d], 1)) + 1
        shapes.append(tuple(big))
    return shapes


def _ref_grads(name: str, dy, x, b, p, g=None):
    """Reference value of an op of the bias_act family (for its self-check and fallback)."""
    from .bias_act import bias_act_ref

    if name == "bias_act":
        return bias_act_ref(x, b, p)
    with torch.enable_grad():
        xr = x.detach().requires_grad_(True)
        yr = bias_act_ref(xr, b, p)
        (dx,) = torch.autograd.grad(yr, xr, dy, create_graph=name == "bias_act_grad2")
        if name == "bias_act_grad":
            return dx.detach()
        if dx.requires_grad:
            return torch.autograd.grad(dx, xr, g)[0].detach()
        return torch.zeros_like(x)


def _bias_act_family(name: str, lead: Tuple, x, b, dim, act, alpha, gain, clamp, want_db=None):
    """Call op ``name`` with ``lead`` tensors (dy, g) before x; self-checked like upfirdn2d."""
    op = getattr(torch.ops.ganblocks, name)
    tail = (dim, act, alpha, gain, clamp) + (() if want_db is None else (want_db,))
    if _check_due(x):
        key = (name, x.dtype, act, b is not None, dim if b is not None else None, clamp >= 0,
               _is_channels_last(x), x.numel() > _CUDA_MAX_BLOCKS_1D * 256)
        p = _act_params(act, dim, alpha, gain, clamp)

        def check() -> float:
            gen = _check_generator(x.device)
            worst = 0.0
            cl = _is_channels_last(x)
            for shape in _bias_act_check_shapes(x, dim if b is not None else None):
                xs = _randn(shape, x, gen, channels_last=cl)
                bs = None if b is None else _randn((xs.shape[dim],), b, gen)
                lead_s = tuple(_randn(xs.shape, xs, gen) for _ in lead)
                got = op(*lead_s, xs, bs, *tail)
                got = got[0] if isinstance(got, (tuple, list)) else got
                dy_s = lead_s[-1] if lead_s else None
                g_s = lead_s[0] if len(lead_s) == 2 else None
                worst = max(worst, _rel_err(got, _ref_grads(name, dy_s, xs, bs, p, g_s)))
            return worst

        if not _verified_ok(key, check):
            ref = _ref_grads(name, lead[-1] if lead else None, x, b, p,
                             lead[0] if len(lead) == 2 else None)
            if want_db is None:
                return ref
            dims = [d for d in range(x.ndim) if d != dim]
            db = ref.sum(dims, dtype=_opmath(x.dtype)) if want_db else \
                x.new_empty((0,), dtype=_opmath(x.dtype))
            return ref, db
    return op(*lead, x, b, *tail)


def _bias_shape(x: torch.Tensor, dim: int) -> list:
    return [-1 if d == dim else 1 for d in range(x.ndim)]


def _bias_act_setup(ctx, inputs, output) -> None:
    x, b, *args = inputs
    ctx.args = tuple(args)
    ctx.save_for_backward(x, b)


def _bias_act_backward(ctx, dy):
    x, b = ctx.saved_tensors
    need_x, need_b = ctx.needs_input_grad[:2]
    want_db = bool(b is not None and need_b)
    if not (need_x or want_db):
        return (None,) * 7
    dx, db = _bias_act_family("bias_act_grad", (dy,), x, b, *ctx.args, want_db)
    return (dx if need_x else None), (db.to(b.dtype) if want_db else None), *(None,) * 5


def _bias_act_grad_setup(ctx, inputs, output) -> None:
    dy, x, b, *args = inputs
    ctx.args = tuple(args[:-1])
    ctx.want_db = bool(args[-1])
    ctx.save_for_backward(dy, x, b)


def _bias_act_grad_backward(ctx, gdx, gdb):
    """Gradient of (dx, db): the same kernel for dy (dx is linear in dy), the second-derivative
    kernel for x and b (z = x + b, so both get the same contraction)."""
    dy, x, b = ctx.saved_tensors
    dim, act = ctx.args[0], ctx.args[1]
    g = gdx
    if ctx.want_db and b is not None and gdb is not None and gdb.numel():
        spread = gdb.to(x.dtype).reshape(_bias_shape(x, dim)).expand_as(x)
        g = spread if g is None else g + spread
    need_dy, need_x, need_b = ctx.needs_input_grad[:3]
    none = (None,) * 6
    if g is None:
        return (None, None, None, *none)
    g_dy = g_x = g_b = None
    if need_dy:
        g_dy = _bias_act_family("bias_act_grad", (g,), x, b, *ctx.args, False)[0]
    want_db = bool(need_b and b is not None)
    if act in _ACT_2ND and (need_x or want_db):
        d, db = _bias_act_family("bias_act_grad2", (g, dy), x, b, *ctx.args, want_db)
        g_x = d if need_x else None
        g_b = db.to(b.dtype) if want_db else None
    return (g_dy, g_x, g_b, *none)


def _bias_act_grad2_backward(ctx, *grads):
    raise NotImplementedError(
        "third derivatives of bias_act are not implemented in the native kernels; use "
        "impl='ref' for them"
    )


def bias_act(x: torch.Tensor, b: Optional[torch.Tensor], p) -> torch.Tensor:
    """Native :func:`~ganblocks.ops.bias_act` on parsed parameters ``p`` (``BiasActParams``).

    ``x`` of any shape, ``b: [x.shape[p.dim]]`` or ``None``; returns ``x``'s shape and dtype. Runs
    the custom op ``torch.ops.ganblocks.bias_act`` (differentiable twice, traceable by
    ``torch.compile``).

    Example:
        >>> from ganblocks.ops.bias_act import ACTIVATIONS, BiasActParams
        >>> p = BiasActParams(ACTIVATIONS["lrelu"], dim=1, alpha=0.2, gain=1.0, clamp=None)
        >>> x, b = torch.tensor([[-1.0, 2.0]]), torch.tensor([0.5, 0.5])
        >>> bias_act(x, b, p) if is_available() else torch.tensor([[-0.1, 2.5]])
        tensor([[-0.1000,  2.5000]])
    """
    dim = p.dim if b is not None else 0
    return _bias_act_family("bias_act", (), x, b, dim, p.spec.code, p.alpha, p.gain,
                            _clamp_arg(p))


# ----------------------------------------------------------------------------------------------
# torch.library registration of the C++ ops' fake kernels and autograd formulas

_registered = False


def _register_library() -> None:
    """Give the C++ ops (defined by csrc/ops.cpp) fake kernels, for torch.compile / torch.export
    / meta tensors, and autograd formulas; once per process, after the library is loaded."""
    global _registered
    if _registered:
        return
    lib = torch.library
    lib.register_fake("ganblocks::upfirdn2d")(_upfirdn2d_fake)
    lib.register_fake("ganblocks::bias_act")(_bias_act_fake)
    lib.register_fake("ganblocks::bias_act_grad")(_grads_fake)
    lib.register_fake("ganblocks::bias_act_grad2")(_grads_fake)
    lib.register_autograd("ganblocks::upfirdn2d", _upfirdn2d_backward,
                          setup_context=_upfirdn2d_setup)
    lib.register_autograd("ganblocks::bias_act", _bias_act_backward,
                          setup_context=_bias_act_setup)
    lib.register_autograd("ganblocks::bias_act_grad", _bias_act_grad_backward,
                          setup_context=_bias_act_grad_setup)
    lib.register_autograd("ganblocks::bias_act_grad2", _bias_act_grad2_backward,
                          setup_context=lambda ctx, inputs, output: None)
    _registered = True


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
