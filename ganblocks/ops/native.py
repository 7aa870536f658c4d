"""Backend selection for the ops: the pure-PyTorch reference or the compiled native kernels.

Every op calls :func:`resolve_impl` with its ``impl`` argument; ``'native'`` calls are routed to
:func:`upfirdn2d` / :func:`bias_act` of this module. The native kernels are not built yet: asking
for ``impl='native'`` raises a clear error, and ``impl=None`` uses the reference path.
"""

from __future__ import annotations

from typing import Optional

import torch

__all__ = ["is_available", "resolve_impl"]

_IMPLS = (None, "ref", "native")


def is_available(device: Optional[torch.device] = None) -> bool:
    """Whether the native kernels can run on ``device`` (``False`` until they are built)."""
    return False


def resolve_impl(impl: Optional[str], x: torch.Tensor) -> str:
    """Map an op's ``impl`` argument to ``'ref'`` or ``'native'`` for input ``x``."""
    if impl not in _IMPLS:
        raise ValueError(f"impl: expected None, 'ref' or 'native', got {impl!r}")
    if impl == "ref":
        return "ref"
    if impl == "native":
        if not is_available(x.device):
            raise RuntimeError(
                "impl='native': the native kernels are not built yet in this version of "
                "ganblocks; use impl='ref' or impl=None"
            )
        return "native"
    return "native" if is_available(x.device) else "ref"


def upfirdn2d(x, f, p):  # pragma: no cover - replaced by the native backend
    raise RuntimeError("native upfirdn2d is not built yet")


def bias_act(x, b, p):  # pragma: no cover - replaced by the native backend
    raise RuntimeError("native bias_act is not built yet")
