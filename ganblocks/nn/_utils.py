"""Private helpers of :mod:`ganblocks.nn`: the plain-conv factory and keyword renaming.

The argument checks live in the public :mod:`ganblocks.nn.checks` (re-exported here for the code
that imported them from this module).
"""

from __future__ import annotations

import functools
import warnings
from typing import Any, Callable, TypeVar

import torch

# Re-exported for the code that imported the checks from here (the ``x as x`` form marks them so).
from .checks import IntPair as IntPair
from .checks import check_activation as check_activation
from .checks import check_choice as check_choice
from .checks import check_input as check_input
from .checks import check_int as check_int
from .checks import check_pair as check_pair
from .checks import check_positive_float as check_positive_float

__all__ = ["conv2d", "renamed_keyword"]

_F = TypeVar("_F", bound=Callable[..., Any])


def renamed_keyword(old: str, new: str) -> Callable[[_F], _F]:
    """Decorate a function so that keyword ``old`` still works, with a ``DeprecationWarning``,
    as the parameter ``new`` (passing both is a ``TypeError``)."""

    def decorate(fn: _F) -> _F:
        @functools.wraps(fn)
        def wrapper(*args: Any, **kwargs: Any) -> Any:
            if old in kwargs:
                if new in kwargs:
                    raise TypeError(f"{old}: deprecated alias of {new}; pass only {new}")
                warnings.warn(
                    f"{old}: deprecated keyword, use {new}", DeprecationWarning, stacklevel=2
                )
                kwargs[new] = kwargs.pop(old)
            return fn(*args, **kwargs)

        return wrapper  # type: ignore[return-value]

    return decorate


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
