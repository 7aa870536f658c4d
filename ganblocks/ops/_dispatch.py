"""Choosing the path of each op call, and the build state of this process.

Every op calls :func:`resolve_impl` with its ``impl`` argument. The first call that may use the
native kernels builds (or loads) them, once per process (:func:`ensure_built`), under the policy
of ``GANBLOCKS_NATIVE``:

* ``auto`` (default): build on first use; if that fails, warn **once** (with the compiler's
  message and how to fix it) and use the reference path for the rest of the process;
* ``0`` (or ``off``): never build; ``impl=None`` uses the reference path;
* ``require``: build on first use and raise if that fails.

Once built, each op's native path registers its fake kernels and autograd formulas with
``torch.library``. The eager fast path of :func:`resolve_impl` reads :data:`state` directly.
"""

from __future__ import annotations

import threading
import warnings
from pathlib import Path
from typing import Any, Dict, Optional

import torch

from . import _bias_act_native, _build, _upfirdn2d_native
from ._build import ENV_MODE, NativeBuildWarning
from ._kernels import CPU_DTYPES, CUDA_DTYPES, supported

__all__ = ["build", "ensure_built", "is_available", "resolve_impl", "state", "status"]

_IMPLS = (None, "ref", "native")

# Build state of this process: status is None (not tried yet), 'ok', 'failed' or 'disabled';
# flavour is what was built ('cpu' or 'cuda'), path the library.
state: Dict[str, Any] = {"status": None, "error": None, "flavour": None, "path": None}
_build_mutex = threading.Lock()
_registered = False


# ----------------------------------------------------------------------------------------------
# Build once per process


def _register_library() -> None:
    """Give the C++ ops (defined by csrc/ops.cpp) fake kernels, for torch.compile / torch.export
    / meta tensors, and autograd formulas; once per process, after the library is loaded."""
    global _registered
    if _registered:
        return
    _upfirdn2d_native.register_library()
    _bias_act_native.register_library()
    _registered = True


def _build_with_cpu_retry(flavour: str) -> Path:
    """Build ``flavour``; when a CUDA build fails, warn and build the CPU kernels alone, so that
    a CUDA-side problem (toolkit, architecture, nvcc) never costs the CPU kernels."""
    try:
        return _build.build_and_load(flavour)
    except Exception as exc:
        if flavour != "cuda":
            raise
        warnings.warn(
            "ganblocks: building the native CUDA kernels failed, so only the CPU kernels are "
            "built; CUDA tensors use the reference path (results are the same, only slower).\n"
            f"  Compiler said:\n    {_build.failure_message(exc)}\n  For CUDA kernels: a CUDA "
            f"toolkit matching torch.version.cuda ({torch.version.cuda}) with CUDA_HOME set; "
            "then run `python -m ganblocks.ops`.",
            NativeBuildWarning,
            stacklevel=6,
        )
        state["flavour"] = "cpu"
        return _build.build_and_load("cpu")


def _warn_build_failed(message: str) -> None:
    warnings.warn(
        "ganblocks: building the native kernels failed, so the ops use the reference "
        "(pure PyTorch) path for the rest of this process; results are the same, only "
        f"slower.\n  Compiler/loader said:\n    {message}\n  To fix: install a C++17 "
        "compiler (g++ or clang) and ninja (`pip install ninja`); for CUDA also a CUDA "
        f"toolkit matching torch.version.cuda ({torch.version.cuda}) with CUDA_HOME set. "
        f"Then run `python -m ganblocks.ops` to build and check the kernels (the build "
        f"cache is {_build.cache_dir()}). Set {ENV_MODE}=0 to silence this warning, or "
        f"{ENV_MODE}=require to make it an error.",
        NativeBuildWarning,
        stacklevel=6,
    )


def _first_build(mode: str, *, warn_failure: bool) -> bool:
    """Build or load the extension for this machine's flavour and record the outcome in
    :data:`state` (called once per process, under the mutex)."""
    flavour = _build.detect_flavour()
    state["flavour"] = flavour
    if flavour == "cpu" and torch.version.cuda is not None and torch.cuda.is_available():
        warnings.warn(
            "ganblocks: no CUDA toolkit found (set CUDA_HOME to one matching "
            f"torch.version.cuda = {torch.version.cuda}), so only the CPU kernels are built; "
            "CUDA tensors use the reference path",
            NativeBuildWarning,
            stacklevel=5,
        )
    try:
        path = _build_with_cpu_retry(flavour)
        if not hasattr(torch.ops.ganblocks, "upfirdn2d"):
            raise RuntimeError(f"{path} loaded but registered no ganblocks ops")
        _register_library()
    except Exception as exc:  # any failure: compiler, ninja, permissions, loading
        message = _build.failure_message(exc)
        state.update(status="failed", error=message)
        if mode == "require":
            raise RuntimeError(
                f"{ENV_MODE}=require: building the native kernels failed: {message}"
            ) from exc
        if warn_failure:
            _warn_build_failed(message)
        return False
    state.update(status="ok", path=str(path), error=None)
    return True


def ensure_built(*, warn_failure: bool = True) -> bool:
    """Build or load the extension once per process; ``True`` when the native ops are usable.
    ``warn_failure=False``: a failed build is only recorded (for callers that raise instead)."""
    status_ = state["status"]
    if status_ == "ok":
        return True
    if status_ == "failed" and _build.mode() == "require":
        raise RuntimeError(f"{ENV_MODE}=require: {state['error']}")
    if status_ is not None:
        return False
    with _build_mutex:
        if state["status"] is not None:
            return state["status"] == "ok"
        mode = _build.mode()
        if mode == "off":
            state.update(status="disabled", error=f"disabled by {ENV_MODE}=0")
            return False
        return _first_build(mode, warn_failure=warn_failure)


def build() -> Path:
    """Build (or load from the cache) the native kernels now and return the library's path.

    Notices about the build (a stale lock cleared, an unwritable cache, CUDA kernels that could
    not be built) are shown as :class:`NativeBuildWarning`; a failure raises instead.

    Raises:
        RuntimeError: if the build fails or is disabled by ``GANBLOCKS_NATIVE=0``.
    """
    ok = ensure_built(warn_failure=False)
    if not ok:
        raise RuntimeError(f"ganblocks native kernels unavailable: {state['error']}")
    return Path(state["path"])


def status() -> Dict[str, Any]:
    """What is known about the native backend, without building anything: mode, flavour, state
    (``'not built yet'``, ``'ok'``, ``'failed'`` or ``'disabled'``), error, folders, dtypes.

    Example:
        >>> status()["dtypes"]["cpu"]
        ['float32', 'float64', 'bfloat16', 'float16']
    """
    flavour = state["flavour"] or _build.detect_flavour()
    devices = ["cpu"] + (["cuda"] if flavour == "cuda" else [])
    return {
        "mode": _build.mode(),
        "flavour": flavour,
        "state": state["status"] or "not built yet",
        "error": state["error"],
        "library": state["path"],
        "cache_dir": str(_build.cache_dir()),
        "build_dir": str(_build.build_dir(flavour)),
        "devices": devices,
        "dtypes": {
            "cpu": [str(d).replace("torch.", "") for d in CPU_DTYPES],
            "cuda": [str(d).replace("torch.", "") for d in CUDA_DTYPES],
        },
    }


# ----------------------------------------------------------------------------------------------
# Dispatch


def is_available(device: Optional[torch.device] = None) -> bool:
    """Whether the native kernels can run on ``device`` (default: CPU); builds them on first use.

    Example:
        >>> isinstance(is_available(torch.device('cpu')), bool)
        True
    """
    kind = torch.device(device).type if device is not None else "cpu"
    if kind not in ("cpu", "cuda"):
        return False
    if not ensure_built():
        return False
    return kind == "cpu" or state["flavour"] == "cuda"


@torch.compiler.assume_constant_result
def _native_ready(device_type: str) -> bool:
    """:func:`is_available` as a constant for ``torch.compile``: Dynamo runs it (and so the first
    build, with its file lock) eagerly while tracing and puts only the answer into the graph."""
    return is_available(torch.device(device_type))


def _ready_for(x: torch.Tensor) -> bool:
    """:func:`_native_ready` for ``x``'s device; in eager mode, once built, read straight from
    the build state (about a microsecond less per op call than the general path)."""
    if state["status"] == "ok" and not torch.compiler.is_compiling():
        return x.is_cpu or state["flavour"] == "cuda"
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
        if not supported(x):
            return "ref"
        return "native" if _ready_for(x) else "ref"
    if not supported(x):
        raise TypeError(
            f"impl='native': the native kernels do not support {x.dtype} tensors on "
            f"{x.device.type} (CPU: float32, float64, bfloat16, float16; CUDA: float16, "
            "bfloat16, float32, float64); use impl=None (falls back to the reference) or "
            "impl='ref'"
        )
    if not _ready_for(x):
        reason = state["error"] or f"built for {state['flavour']} only"
        raise RuntimeError(
            f"impl='native': the native kernels are not available for {x.device.type} tensors "
            f"({reason}); use impl=None or impl='ref'"
        )
    return "native"
