"""Self-check of the native kernels' configurations against the reference path.

The first eager call of each CUDA configuration (op, dtype, layout, launch path, ...) compares the
kernel with the reference on a small input drawn from a private generator (the user's random
stream is untouched); on a mismatch it warns once (:class:`NativeKernelWarning`) and that
configuration uses the reference for the rest of the process. It never runs while a CUDA graph is
being captured or inside a compiled region (there the kernel runs unchecked, and the check happens
at the next eager call); ``ganblocks.ops.native.verify`` (and ``python -m ganblocks.ops``) checks
the common configurations ahead of time.

This module holds the machinery; each op's native path (``_upfirdn2d_native``,
``_bias_act_native``) builds its own configuration keys and check inputs.
"""

from __future__ import annotations

import contextlib
import warnings
from typing import Callable, Dict, Iterator, Sequence, Tuple

import torch

__all__ = [
    "CHECKED_DEVICES",
    "NativeKernelWarning",
    "capturing",
    "check_due",
    "check_generator",
    "checking_device",
    "randn",
    "rel_err",
    "tracing",
    "verified",
    "verified_ok",
]


class NativeKernelWarning(UserWarning):
    """A native CUDA kernel disagreed with the reference on its self-check; that configuration
    uses the reference path."""


# Devices whose calls are self-checked (the CPU kernels are covered by the test suite instead;
# tests add "cpu" here to exercise the logic without a GPU).
CHECKED_DEVICES: Tuple[str, ...] = ("cuda",)
CHECK_SEED = 20240607

# The configurations checked in this process: key -> whether the kernel agreed.
verified: Dict[Tuple, bool] = {}


def tracing(x: torch.Tensor) -> bool:
    """True while ``x`` is being traced (torch.compile, AOTAutograd, torch.export, make_fx)."""
    if torch.compiler.is_compiling():
        return True
    if type(x) not in (torch.Tensor, torch.nn.Parameter):  # FakeTensor, FunctionalTensor, ...
        return True
    modes = torch._C._TorchDispatchModeKey
    return any(torch._C._get_dispatch_mode(m) is not None for m in (modes.FAKE, modes.PROXY))


def capturing(x: torch.Tensor) -> bool:
    """True while a CUDA graph is being captured on ``x``'s device."""
    return x.is_cuda and torch.cuda.is_current_stream_capturing()


def check_due(x: torch.Tensor) -> bool:
    """Whether a call on ``x`` may run the self-check now."""
    if x.device.type not in CHECKED_DEVICES:
        return False
    return not (tracing(x) or capturing(x))


@contextlib.contextmanager
def checking_device(device_type: str) -> Iterator[None]:
    """Self-check the calls on ``device_type`` too while the block runs."""
    global CHECKED_DEVICES
    saved = CHECKED_DEVICES
    CHECKED_DEVICES = (*saved, device_type)
    try:
        yield
    finally:
        CHECKED_DEVICES = saved


def check_generator(device: torch.device) -> torch.Generator:
    """A private generator for the self-check's inputs (never the default one)."""
    return torch.Generator(device=device).manual_seed(CHECK_SEED)


def randn(
    shape: Sequence[int], like: torch.Tensor, gen: torch.Generator, channels_last: bool = False
) -> torch.Tensor:
    """A standard normal tensor of ``shape`` on ``like``'s device and dtype, drawn from ``gen``
    (in float32, then cast, so that every dtype sees the same values)."""
    t = torch.randn(list(shape), generator=gen, device=like.device, dtype=torch.float32)
    t = t.to(like.dtype)
    return t.contiguous(memory_format=torch.channels_last) if channels_last else t


def rel_err(a: torch.Tensor, b: torch.Tensor) -> float:
    """Largest absolute difference relative to the largest magnitude of ``b``."""
    scale = b.double().abs().max().item()
    err = (a.double() - b.double()).abs().max().item()
    return err / scale if scale > 0 else err


def _tolerance(dtype: torch.dtype) -> float:
    return {torch.float64: 1e-9, torch.float32: 1e-4}.get(dtype, 3e-2)


def verified_ok(key: Tuple, check: Callable[[], float]) -> bool:
    """Run ``check() -> relative error`` once per key (``(op name, dtype, ...)``); False (and a
    warning) on a mismatch."""
    ok = verified.get(key)
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
    verified[key] = ok
    return ok
