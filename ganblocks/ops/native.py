"""Backend selection and the native (compiled C++/CUDA) kernels of the ops.

Every op calls :func:`resolve_impl` with its ``impl`` argument and routes ``'native'`` calls to
:func:`upfirdn2d` / :func:`bias_act` of this module, which run the kernels of ``csrc/`` as custom
ops with autograd formulas: backward runs native kernels again (the transposed ``upfirdn2d``;
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

This module is the public face of the native backend; the work is done by private modules beside
it: ``_build`` (configuration, cache, lock, compiler), ``_dispatch`` (:func:`resolve_impl` and
the build state of the process), ``_selfcheck`` (the per-configuration check),
``_upfirdn2d_native`` and ``_bias_act_native`` (each op's custom op, autograd formulas, fake
kernels and ``torch.library`` registration). Tests use :mod:`ganblocks.ops.testing`.
"""

from __future__ import annotations

from typing import Any, Dict, Optional, Tuple

import torch

from . import _selfcheck
from ._bias_act_native import bias_act
from ._build import NativeBuildWarning, build_dir, cache_dir
from ._dispatch import build, is_available, resolve_impl, status
from ._kernels import CPU_DTYPES, CUDA_DTYPES
from ._selfcheck import NativeKernelWarning
from ._upfirdn2d_native import upfirdn2d
from .bias_act import bias_act as _bias_act_op
from .testing import isolated_state as _isolated_state  # noqa: F401 (its name before testing.py)
from .upfirdn2d import downsample2d, filter2d, setup_filter, upsample2d

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
    dev = torch.device(device if device is not None else
                       ("cuda" if torch.cuda.is_available() else "cpu"))
    if not is_available(dev):
        raise RuntimeError(f"verify: the native kernels are not available on {dev}")
    before = set(_selfcheck.verified)
    with _selfcheck.checking_device(dev.type):
        f = setup_filter([1, 3, 3, 1], device=dev)
        gen = _selfcheck.check_generator(dev)
        for dtype in (CUDA_DTYPES if dev.type == "cuda" else CPU_DTYPES):
            for cl in (False, True):
                x = torch.randn(2, 8, 16, 16, generator=gen, device=dev).to(dtype)
                x = x.contiguous(memory_format=torch.channels_last) if cl else x
                b = torch.randn(8, generator=gen, device=dev).to(dtype).requires_grad_(True)
                x.requires_grad_(True)
                y = _bias_act_op(upsample2d(x, f, impl="native"), b, act="lrelu", impl="native")
                y = _bias_act_op(downsample2d(y, f, impl="native"), None, act="swish",
                                 clamp=4.0, impl="native")
                y = filter2d(y, f, impl="native")
                (g,) = torch.autograd.grad(y.float().square().sum(), x, create_graph=True)
                torch.autograd.grad(g.float().square().sum(), [x, b])
    return {k: v for k, v in _selfcheck.verified.items() if k not in before}
