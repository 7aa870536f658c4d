"""Building and loading the native kernels of ``csrc/``: configuration, cache, lock, compiler.

The extension is compiled with ``torch.utils.cpp_extension.load`` and ninja into
``$GANBLOCKS_CACHE_DIR`` (default ``~/.cache/ganblocks``), in a folder keyed by a hash of the
sources, the torch version, the flavour (``cpu``, or ``cuda`` when torch has CUDA, a GPU is visible
and a CUDA toolkit is found) and the compiler flags: an upgrade rebuilds, and nothing builds twice.
Concurrent processes serialise on a lock (an OS file lock, released by the kernel when its holder
dies); a lock or a half-built folder left by an interrupted build is detected, reported and
cleared.

This module holds no state: *when* to build (once per process, on first use) and what a failure
means for the ops is decided by ``_dispatch``.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import platform
import shutil
import socket
import sys
import tempfile
import time
import warnings
from pathlib import Path
from typing import Any, Dict, Optional, Tuple

import torch

__all__ = [
    "ENV_CACHE",
    "ENV_MODE",
    "BuildLock",
    "NativeBuildWarning",
    "build_and_load",
    "build_dir",
    "cache_dir",
    "compile_extension",
    "detect_flavour",
    "failure_message",
    "mode",
    "source_dir",
]

log = logging.getLogger("ganblocks.ops.native")

CPU_SOURCES = ("ops.cpp", "upfirdn2d_cpu.cpp", "bias_act_cpu.cpp")
CUDA_SOURCES = ("cuda_ops.cpp", "upfirdn2d_cuda.cu", "bias_act_cuda.cu")
_HEADER_SUFFIXES = (".h", ".cuh")
ENV_MODE = "GANBLOCKS_NATIVE"
ENV_CACHE = "GANBLOCKS_CACHE_DIR"
ENV_SOURCES = "GANBLOCKS_CSRC_DIR"
ENV_TIMEOUT = "GANBLOCKS_BUILD_TIMEOUT"


class NativeBuildWarning(UserWarning):
    """The native kernels could not be built (the reference path is used instead), or a stale
    build lock was cleared."""


# ----------------------------------------------------------------------------------------------
# Configuration


def mode() -> str:
    """``GANBLOCKS_NATIVE`` normalised to ``'auto'``, ``'off'`` or ``'require'``; raises on any
    other value, naming the variable."""
    raw = os.environ.get(ENV_MODE, "auto").strip().lower()
    if raw in ("", "auto", "1", "on", "yes", "true"):
        return "auto"
    if raw in ("0", "off", "no", "false", "none"):
        return "off"
    if raw == "require":
        return "require"
    raise ValueError(
        f"{ENV_MODE}: expected 'auto', '0' or 'require', got {os.environ.get(ENV_MODE)!r}"
    )


def cache_dir() -> Path:
    """Root of the build cache: ``$GANBLOCKS_CACHE_DIR``, else ``$XDG_CACHE_HOME/ganblocks``, else
    ``~/.cache/ganblocks``.

    Example:
        >>> build_dir().parent == cache_dir() / "native"
        True
    """
    env = os.environ.get(ENV_CACHE)
    if env:
        return Path(env).expanduser()
    xdg = os.environ.get("XDG_CACHE_HOME")
    base = Path(xdg).expanduser() if xdg else Path.home() / ".cache"
    return base / "ganblocks"


def source_dir() -> Path:
    """The folder of the kernel sources: ``$GANBLOCKS_CSRC_DIR``, else ``csrc/`` of a source
    checkout, else the sources installed as package data (``ganblocks._csrc``)."""
    env = os.environ.get(ENV_SOURCES)
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


def detect_flavour() -> str:
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


def build_spec(flavour: str) -> Dict[str, Any]:
    """Everything that determines the build: sources, flags, and the key hashed from them."""
    src = source_dir()
    sources = list(CPU_SOURCES) + (list(CUDA_SOURCES) if flavour == "cuda" else [])
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
    spec = build_spec(flavour or detect_flavour())
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


class BuildLock:
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

    def __enter__(self) -> BuildLock:
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
                        describe_holder(holder),
                        self.path,
                    )
                    told = True
                if waited > self.timeout:
                    holder = describe_holder(self._read(fd))
                    os.close(fd)
                    raise TimeoutError(
                        f"waited {waited:.0f} s for the build lock {self.path} held by {holder}; "
                        f"raise {ENV_TIMEOUT} (seconds) or end that process if it is hung"
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


def describe_holder(info: Optional[dict]) -> str:
    """A lock holder's record in words: PID, host, start time, and whether it still runs."""
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


def compile_extension(spec: Dict[str, Any], folder: Path) -> Path:
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


def _load_finished(root: Path, spec: Dict[str, Any]) -> Tuple[Path, Optional[Path]]:
    """The build folder of ``spec`` under cache root ``root``, and its library when the build
    there is complete (then loaded into this process)."""
    folder = root / "native" / f"{spec['flavour']}-{spec['key']}"
    library = folder / f"{spec['name']}.so"
    if (folder / "build.json").is_file() and library.is_file():
        torch.ops.load_library(str(library))
        return folder, library
    return folder, None


def _clear_leftovers(folder: Path, lock: BuildLock) -> None:
    """Report and remove what an interrupted build of ``folder`` left: its record in the lock,
    a half-built folder, private folders of killed compilers (called under the lock)."""
    leftovers = folder.exists()
    abandoned = sorted(folder.parent.glob(folder.name + ".tmp-*"))
    if not (lock.stale or leftovers or abandoned):
        return
    baton = folder / "lock"
    what = []
    if lock.stale:
        what.append(f"a stale build lock left by {describe_holder(lock.stale)}")
    if baton.exists():
        what.append(f"torch's build lock {baton}")
    if leftovers or abandoned:
        what.append("a half-built folder")
    warnings.warn(
        f"ganblocks: cleared {', '.join(what)} in {folder.parent} (an earlier build of "
        f"{folder.name} was interrupted); rebuilding the native kernels",
        NativeBuildWarning,
        stacklevel=6,
    )
    for path in [folder, *abandoned]:
        shutil.rmtree(path, ignore_errors=True)


def _compile_into_place(spec: Dict[str, Any], folder: Path) -> Path:
    """Compile in a private folder beside ``folder`` and rename it into place, complete with its
    ``build.json`` marker; a failed build leaves nothing behind (called under the lock)."""
    flavour = spec["flavour"]
    private = Path(
        tempfile.mkdtemp(prefix=f"{folder.name}.tmp-{os.getpid()}-", dir=folder.parent)
    )
    print(
        f"ganblocks: compiling the native {flavour.upper()} kernels (once; about a minute, "
        f"more on a busy machine) into {folder}",
        file=sys.stderr,
        flush=True,
    )
    start = time.monotonic()
    try:
        built = compile_extension(spec, private)
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
        shutil.rmtree(private, ignore_errors=True)
        raise
    print(f"ganblocks: native kernels built in {info['seconds']:.0f} s (cached for later "
          "runs)", file=sys.stderr, flush=True)
    return folder / built.name


def build_and_load(flavour: str) -> Path:
    """Load the build of this flavour from the cache, or build it there first.

    The compiler runs in a private folder ``<key>.tmp-<pid>-<random>`` that is renamed into place
    (with its ``build.json`` marker) only when complete, so a build folder is either absent or
    finished, and compiler processes left behind by a killed build can only write into their
    own, abandoned folder (cleared by the next build, under the lock).
    """
    spec = build_spec(flavour)
    root = cache_dir()
    folder, library = _load_finished(root, spec)
    if library is not None:
        return library
    reason = _writable(root)
    if reason is not None:
        fallback = _fallback_cache()
        warnings.warn(
            f"ganblocks: the build cache {root} is not writable ({reason}); building the native "
            f"kernels in {fallback} instead, which the system may clear. Set {ENV_CACHE} to a "
            "writable folder to keep the build.",
            NativeBuildWarning,
            stacklevel=5,
        )
        folder, library = _load_finished(fallback, spec)
        if library is not None:
            return library
    timeout = float(os.environ.get(ENV_TIMEOUT, "1800"))
    with BuildLock(folder.with_name(folder.name + ".lock"), timeout=timeout) as lock:
        _, library = _load_finished(folder.parent.parent, spec)  # built by another process?
        if library is not None:
            return library
        _clear_leftovers(folder, lock)
        return _compile_into_place(spec, folder)


def failure_message(exc: BaseException) -> str:
    """The gist of a build failure: the compiler's error lines (else its last lines), capped."""
    text = str(exc).strip()
    lines = [ln for ln in text.splitlines() if ln.strip()]
    errors = [ln for ln in lines if "error" in ln.lower()]
    shown = errors[:12] if errors else lines[-12:]
    detail = "\n    ".join(shown)
    if len(detail) > 3000:
        detail = detail[:3000] + " ..."
    return f"{type(exc).__name__}: {detail}"

