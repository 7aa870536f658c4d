"""Argument checks shared by the blocks of :mod:`ganblocks.nn`.

Every constructor and forward validates its arguments here, so that bad input fails with a message
naming the argument and the expected form instead of a stack trace from inside a convolution.
"""

from __future__ import annotations

import numbers
from typing import Optional, Sequence, Tuple, Union

import torch

from ganblocks.ops import ACTIVATIONS

IntPair = Union[int, Sequence[int]]


def check_int(value: object, name: str, *, minimum: int = 1) -> int:
    """Return ``value`` as an ``int`` if it is an integer ``>= minimum``, else raise."""
    if isinstance(value, bool) or not isinstance(value, numbers.Integral):
        raise TypeError(f"{name}: expected an integer, got {value!r}")
    if value < minimum:
        raise ValueError(f"{name}: expected an integer >= {minimum}, got {value}")
    return int(value)


def check_positive_float(value: object, name: str) -> float:
    """Return ``value`` as a ``float`` if it is a real number ``> 0``, else raise."""
    if isinstance(value, bool) or not isinstance(value, numbers.Real):
        raise TypeError(f"{name}: expected a real number, got {value!r}")
    if not value > 0:
        raise ValueError(f"{name}: expected a number > 0, got {value!r}")
    return float(value)


def check_activation(value: object, name: str = "activation") -> str:
    """Return ``value`` if it names an activation of :func:`~ganblocks.ops.bias_act`."""
    if not isinstance(value, str) or value not in ACTIVATIONS:
        raise ValueError(
            f"{name}: unknown activation {value!r}; expected one of {sorted(ACTIVATIONS)}"
        )
    return value


def check_pair(value: object, name: str) -> Tuple[int, int]:
    """Parse ``int | (h, w)`` into ``(h, w)``, each a positive integer."""
    if isinstance(value, (tuple, list)):
        if len(value) != 2:
            raise ValueError(f"{name}: expected an int or a pair (h, w), got {value!r}")
        return check_int(value[0], name), check_int(value[1], name)
    v = check_int(value, name)
    return v, v


def check_input(
    x: object,
    name: str,
    *,
    ndim: int,
    channels: Optional[int] = None,
    channel_dim: int = 1,
) -> torch.Tensor:
    """Check that ``x`` is a floating-point tensor of rank ``ndim`` with ``channels`` channels."""
    if not isinstance(x, torch.Tensor):
        raise TypeError(f"{name}: expected a torch.Tensor, got {type(x).__name__}")
    if not x.is_floating_point():
        raise TypeError(f"{name}: expected a floating-point tensor, got dtype {x.dtype}")
    if x.ndim != ndim:
        raise ValueError(f"{name}: expected a tensor of rank {ndim}, got shape {tuple(x.shape)}")
    if channels is not None and x.shape[channel_dim] != channels:
        raise ValueError(
            f"{name}: expected {channels} channels along dim {channel_dim}, "
            f"got shape {tuple(x.shape)}"
        )
    return x


def conv2d(
    in_channels: int,
    out_channels: int,
    kernel_size: int,
    *,
    spectral_norm: bool = False,
    bias: bool = True,
    dilation: int = 1,
) -> torch.nn.Module:
    """A plain ``nn.Conv2d`` with "same" padding, wrapped in spectral norm when asked.

    Spectral norm uses :func:`torch.nn.utils.parametrizations.spectral_norm`, so
    ``torch.nn.utils.parametrize.is_parametrized(conv, 'weight')`` tells whether a conv carries it.
    """
    conv = torch.nn.Conv2d(
        in_channels,
        out_channels,
        kernel_size,
        padding=dilation * (kernel_size // 2),
        dilation=dilation,
        bias=bias,
    )
    if spectral_norm:
        conv = torch.nn.utils.parametrizations.spectral_norm(conv)
    return conv
