"""Deprecated alias of :mod:`recipes.stylegan2.testing.nvlabs_pickle` (test helpers now live in
:mod:`recipes.stylegan2.testing`): its names still resolve here, with a
:class:`DeprecationWarning` when one is used."""

import warnings
from typing import Any

from .testing import nvlabs_pickle as _moved

__all__ = list(_moved.__all__)


def __getattr__(name: str) -> Any:
    if name in _moved.__all__:
        warnings.warn(
            f"recipes.stylegan2.nvlabs_pickle_testing is deprecated: import {name} from "
            "recipes.stylegan2.testing instead",
            DeprecationWarning,
            stacklevel=2,
        )
        return getattr(_moved, name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
