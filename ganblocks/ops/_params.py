"""Argument parsing and validation shared by the ops, and the parsed arguments every backend takes.

Every op validates its arguments here so that bad input fails with a message naming the argument
and the expected form, never with a stack trace from deep inside a convolution. The records of
parsed arguments (:class:`UpFirDn2dParams`, :class:`BiasActParams`) and the activation table
(:data:`ACTIVATIONS`) live here too, below both paths of each op: the reference
(``_reference``) and the native kernels (``_upfirdn2d_native``, ``_bias_act_native``) import
them, and the public op modules re-export them.
"""

from __future__ import annotations

import math
import numbers
from dataclasses import dataclass
from typing import Callable, Dict, Optional, Sequence, Tuple, Union

import torch
import torch.nn.functional as F

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
        vals = value.flatten().tolist()  # a one-element tensor stands for an int
        return parse_scaling(vals if len(vals) == 2 else vals[0], name)
    else:
        sx = sy = _as_int(value, name)
    if sx < 1 or sy < 1:
        raise ValueError(f"{name}: factors must be integers >= 1, got {value!r}")
    return sx, sy


def parse_padding(value: Padding, name: str = "padding") -> Tuple[int, int, int, int]:
    """Parse a padding ``int | [px, py] | [x0, x1, y0, y1]`` (x = width first, StyleGAN's
    convention) into ``(x0, x1, y0, y1)``; negative values crop. ``name`` names the argument in
    the error a malformed value raises.

    Example:
        >>> parse_padding(1), parse_padding([1, 2]), parse_padding((0, 1, 2, -3))
        ((1, 1, 1, 1), (1, 1, 2, 2), (0, 1, 2, -3))
    """
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


# ----------------------------------------------------------------------------------------------
# upfirdn2d


@dataclass(frozen=True)
class UpFirDn2dParams:
    """Parsed, validated arguments of one :func:`~ganblocks.ops.upfirdn2d` call (shared by every
    backend)."""

    upx: int
    upy: int
    downx: int
    downy: int
    padx0: int
    padx1: int
    pady0: int
    pady1: int
    flip_filter: bool
    gain: float

    @staticmethod
    def parse(
        up: IntPair = 1,
        down: IntPair = 1,
        padding: Padding = 0,
        flip_filter: bool = False,
        gain: float = 1.0,
    ) -> UpFirDn2dParams:
        upx, upy = parse_scaling(up, "up")
        downx, downy = parse_scaling(down, "down")
        padx0, padx1, pady0, pady1 = parse_padding(padding)
        return UpFirDn2dParams(
            upx, upy, downx, downy, padx0, padx1, pady0, pady1,
            check_bool(flip_filter, "flip_filter"), check_gain(gain),
        )

    def output_size(self, in_h: int, in_w: int, f: Optional[torch.Tensor]) -> Tuple[int, int]:
        """Output ``(height, width)`` for an input of ``in_h x in_w``."""
        fw, fh = filter_size(f)
        out_w = (in_w * self.upx + self.padx0 + self.padx1 - fw) // self.downx + 1
        out_h = (in_h * self.upy + self.pady0 + self.pady1 - fh) // self.downy + 1
        return out_h, out_w

    def transpose(self, in_h: int, in_w: int, f: Optional[torch.Tensor]) -> UpFirDn2dParams:
        """Parameters of the adjoint op, mapping the output of this call back to ``in_h x in_w``.

        The adjoint swaps up and down, flips the filter, and pads so that tap ``t`` of the filter
        meets the same input/output pair as in the forward call: ``x0' = fw - 1 - x0`` and
        ``x1' = W*up - W_out*down + x0 - up + 1`` (likewise in y), which makes the adjoint's
        output exactly ``in_h x in_w``.
        """
        fw, fh = filter_size(f)
        out_h, out_w = self.output_size(in_h, in_w, f)
        return UpFirDn2dParams(
            upx=self.downx,
            upy=self.downy,
            downx=self.upx,
            downy=self.upy,
            padx0=fw - 1 - self.padx0,
            padx1=in_w * self.upx - out_w * self.downx + self.padx0 - self.upx + 1,
            pady0=fh - 1 - self.pady0,
            pady1=in_h * self.upy - out_h * self.downy + self.pady0 - self.upy + 1,
            flip_filter=not self.flip_filter,
            gain=self.gain,
        )

    @property
    def padding(self) -> Tuple[int, int, int, int]:
        return self.padx0, self.padx1, self.pady0, self.pady1


# ----------------------------------------------------------------------------------------------
# bias_act


@dataclass(frozen=True)
class ActivationSpec:
    """One entry of the activation table.

    Attributes:
        name: Key in :data:`ACTIVATIONS`.
        func: ``func(x, alpha) -> y``, elementwise.
        def_alpha: Default ``alpha`` (only ``lrelu`` uses it).
        def_gain: Default gain applied after the activation.
        code: Integer id used by the native kernels.
        has_2nd_grad: Whether the second derivative is non-zero somewhere.
    """

    name: str
    func: Callable[[torch.Tensor, float], torch.Tensor]
    def_alpha: float
    def_gain: float
    code: int
    has_2nd_grad: bool


ACTIVATIONS: Dict[str, ActivationSpec] = {
    spec.name: spec
    for spec in [
        ActivationSpec("linear", lambda x, a: x, 0.0, 1.0, 1, False),
        ActivationSpec("relu", lambda x, a: F.relu(x), 0.0, math.sqrt(2), 2, False),
        ActivationSpec("lrelu", lambda x, a: F.leaky_relu(x, a), 0.2, math.sqrt(2), 3, False),
        ActivationSpec("tanh", lambda x, a: torch.tanh(x), 0.0, 1.0, 4, True),
        ActivationSpec("sigmoid", lambda x, a: torch.sigmoid(x), 0.0, 1.0, 5, True),
        ActivationSpec("elu", lambda x, a: F.elu(x), 0.0, 1.0, 6, True),
        ActivationSpec("selu", lambda x, a: F.selu(x), 0.0, 1.0, 7, True),
        ActivationSpec("softplus", lambda x, a: F.softplus(x), 0.0, 1.0, 8, True),
        ActivationSpec("swish", lambda x, a: torch.sigmoid(x) * x, 0.0, math.sqrt(2), 9, True),
    ]
}
"""The activations of :func:`~ganblocks.ops.bias_act`: linear, relu, lrelu, tanh, sigmoid, elu,
selu, softplus, swish. ``elu`` is the standard ELU with alpha 1; the ``alpha`` argument is used by
``lrelu`` only."""


@dataclass(frozen=True)
class BiasActParams:
    """Parsed, validated arguments of one :func:`~ganblocks.ops.bias_act` call (shared by every
    backend)."""

    spec: ActivationSpec
    dim: int
    alpha: float
    gain: float
    clamp: Optional[float]
