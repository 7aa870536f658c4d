"""Argument checks of :mod:`ganblocks.nn`, public for code built on the blocks (recipes, user code).

Every block validates its constructor arguments and forward inputs with these helpers, so that bad
input fails with a message naming the argument and the expected form instead of a stack trace from
inside a convolution. Each returns the checked value (converted to the plain Python type), so a
constructor can check and store in one line::

    self.channels = check_int(channels, "channels")

Example:
    >>> check_int(3, "channels")
    3
    >>> check_int(0, "channels")
    Traceback (most recent call last):
        ...
    ValueError: channels: expected an integer >= 1, got 0
    >>> check_choice("layer", "norm", ("instance", "layer", "none"))
    'layer'
"""

from __future__ import annotations

import numbers
from typing import Optional, Sequence, Tuple, TypeVar, Union

import torch

from ganblocks.ops import ACTIVATIONS

__all__ = [
    "IntPair",
    "check_activation",
    "check_choice",
    "check_input",
    "check_int",
    "check_pair",
    "check_positive_float",
]

IntPair = Union[int, Sequence[int]]
_T = TypeVar("_T")


def check_int(value: object, name: str, *, minimum: int = 1) -> int:
    """Return ``value`` as an ``int`` if it is an integer ``>= minimum``, else raise.

    Raises:
        TypeError: ``value`` is not an integer (``bool`` included).
        ValueError: ``value < minimum``.
    """
    if isinstance(value, bool) or not isinstance(value, numbers.Integral):
        raise TypeError(f"{name}: expected an integer, got {value!r}")
    if value < minimum:
        raise ValueError(f"{name}: expected an integer >= {minimum}, got {value}")
    return int(value)


def check_positive_float(value: object, name: str) -> float:
    """Return ``value`` as a ``float`` if it is a real number ``> 0``, else raise.

    Example:
        >>> check_positive_float(1, "eps")
        1.0
    """
    if isinstance(value, bool) or not isinstance(value, numbers.Real):
        raise TypeError(f"{name}: expected a real number, got {value!r}")
    if not value > 0:
        raise ValueError(f"{name}: expected a number > 0, got {value!r}")
    return float(value)


def check_activation(value: object, name: str = "activation") -> str:
    """Return ``value`` if it names an activation of :func:`~ganblocks.ops.bias_act`, else raise."""
    if not isinstance(value, str) or value not in ACTIVATIONS:
        raise ValueError(
            f"{name}: unknown activation {value!r}; expected one of {sorted(ACTIVATIONS)}"
        )
    return value


def check_choice(value: _T, name: str, choices: Sequence[_T]) -> _T:
    """Return ``value`` if it is one of ``choices``, else raise a ``ValueError`` listing them.

    Example:
        >>> check_choice("batch", "norm", ("instance", "layer"))
        Traceback (most recent call last):
            ...
        ValueError: norm: expected one of ['instance', 'layer'], got 'batch'
    """
    if value not in choices:
        raise ValueError(f"{name}: expected one of {list(choices)}, got {value!r}")
    return value


def check_pair(value: object, name: str) -> Tuple[int, int]:
    """Parse ``int | (h, w)`` into ``(h, w)``, each a positive integer.

    Example:
        >>> check_pair(4, "size"), check_pair((4, 8), "size")
        ((4, 4), (4, 8))
    """
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
    """Check that ``x`` is a floating-point tensor of rank ``ndim`` with ``channels`` channels.

    Example:
        >>> check_input(torch.zeros(2, 3, 4, 4), "x", ndim=4, channels=3).shape
        torch.Size([2, 3, 4, 4])
        >>> check_input(torch.zeros(2, 3, 4, 4), "x", ndim=4, channels=8)
        Traceback (most recent call last):
            ...
        ValueError: x: expected 8 channels along dim 1, got shape (2, 3, 4, 4)
    """
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
