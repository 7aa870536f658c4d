"""Argument parsing and validation shared by the ops.

Every op validates its arguments here so that bad input fails with a message naming the argument
and the expected form, never with a stack trace from deep inside a convolution.
"""

from __future__ import annotations

import math
import numbers
from typing import Sequence, Tuple, Union

import torch

try:
    from numpy import bool_ as np_bool
except ImportError:  # pragma: no cover - numpy is optional
    np_bool = bool

IntPair = Union[int, Sequence[int]]
Padding = Union[int, Sequence[int]]


def check_tensor(x: object, name: str, *, ndim: int | None = None) -> torch.Tensor:
    """Return ``x`` if it is a floating-point tensor of rank ``ndim``; else raise, naming it."""
    if not isinstance(x, torch.Tensor):
        raise TypeError(f"{name}: expected a torch.Tensor, got {type(x).__name__}")
    if not x.is_floating_point():
        raise TypeError(f"{name}: expected a floating-point tensor, got dtype {x.dtype}")
    if ndim is not None and x.ndim != ndim:
        raise ValueError(f"{name}: expected a tensor of rank {ndim}, got shape {tuple(x.shape)}")
    return x


def _as_int(value: object, name: str) -> int:
    if isinstance(value, (bool, np_bool)) or not isinstance(value, numbers.Integral):
        raise TypeError(f"{name}: expected an integer, got {value!r}")
    return int(value)


def parse_scaling(value: IntPair, name: str) -> Tuple[int, int]:
    """Parse an up/down factor ``int | [x, y]`` into ``(sx, sy)``, each at least 1."""
    if isinstance(value, (list, tuple)):
        if len(value) != 2:
            raise ValueError(f"{name}: expected an int or a pair [x, y], got {list(value)!r}")
        sx, sy = (_as_int(v, name) for v in value)
    elif isinstance(value, torch.Tensor) and value.numel() in (1, 2):
        return parse_scaling(value.flatten().tolist(), name)
    else:
        sx = sy = _as_int(value, name)
    if sx < 1 or sy < 1:
        raise ValueError(f"{name}: factors must be integers >= 1, got {value!r}")
    return sx, sy


def parse_padding(value: Padding, name: str = "padding") -> Tuple[int, int, int, int]:
    """Parse ``int | [px, py] | [x0, x1, y0, y1]`` into ``(x0, x1, y0, y1)`` (negative crops)."""
    if isinstance(value, torch.Tensor):
        value = value.flatten().tolist()
    if isinstance(value, (list, tuple)):
        vals = [_as_int(v, name) for v in value]
        if len(vals) == 2:
            px, py = vals
            return px, px, py, py
        if len(vals) == 4:
            return vals[0], vals[1], vals[2], vals[3]
        raise ValueError(
            f"{name}: expected an int, [px, py] or [x0, x1, y0, y1], got a sequence of length "
            f"{len(vals)}"
        )
    p = _as_int(value, name)
    return p, p, p, p


def check_filter(f: torch.Tensor | None, name: str = "f") -> torch.Tensor | None:
    """Validate a FIR filter: ``None``, a 1-D separable filter or a 2-D ``[fh, fw]`` filter."""
    if f is None:
        return None
    if not isinstance(f, torch.Tensor):
        raise TypeError(
            f"{name}: expected None or a torch.Tensor (see setup_filter), got {type(f).__name__}"
        )
    if not f.is_floating_point():
        raise TypeError(f"{name}: expected a floating-point filter, got dtype {f.dtype}")
    if f.ndim not in (1, 2) or f.numel() == 0:
        raise ValueError(
            f"{name}: expected a non-empty 1-D (separable) or 2-D [fh, fw] filter, "
            f"got shape {tuple(f.shape)}"
        )
    return f


def filter_size(f: torch.Tensor | None) -> Tuple[int, int]:
    """Return ``(fw, fh)`` of a filter; ``None`` is the 1x1 identity filter."""
    if f is None:
        return 1, 1
    return int(f.shape[-1]), int(f.shape[0])


def check_gain(gain: object, name: str = "gain") -> float:
    """Return ``gain`` as a float if it is a real number (Python or NumPy, not a bool or string)
    and finite; else raise, naming it."""
    if isinstance(gain, torch.Tensor) and gain.numel() == 1 and not gain.dtype.is_complex:
        gain = gain.item()
    if isinstance(gain, (bool, np_bool)) or not isinstance(gain, numbers.Real):
        raise TypeError(f"{name}: expected a real number, got {gain!r}")
    value = float(gain)
    if not math.isfinite(value):
        raise ValueError(f"{name}: expected a finite number, got {gain!r}")
    return value


def check_bool(value: object, name: str) -> bool:
    """Return ``value`` if it is a bool (Python or NumPy); else raise, naming it."""
    if not isinstance(value, (bool, np_bool)):
        raise TypeError(f"{name}: expected True or False, got {value!r}")
    return bool(value)
