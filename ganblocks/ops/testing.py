"""Helpers for tests of code that uses the ops' native backend.

:func:`isolated_state` runs a block as if the process had not tried to build the native kernels
yet, so that a test can exercise ``GANBLOCKS_NATIVE`` modes, build failures or the first build
inside ``torch.compile``, and gives the process its build state back afterwards.
"""

from __future__ import annotations

import contextlib
from typing import Iterator

from . import _dispatch, _selfcheck

__all__ = ["isolated_state"]


@contextlib.contextmanager
def isolated_state() -> Iterator[None]:
    """Run the block with a fresh native build state (not tried yet) and no self-checked
    configurations; restore both afterwards.

    The kernels themselves stay loaded (a process cannot unload them): the first native call in
    the block decides again, under the current ``GANBLOCKS_NATIVE``, whether to use them.

    Example:
        >>> from ganblocks.ops import native
        >>> before = native.status()["state"]
        >>> with isolated_state():
        ...     native.status()["state"]
        'not built yet'
        >>> native.status()["state"] == before
        True
    """
    saved = dict(_dispatch.state), dict(_selfcheck.verified)
    _dispatch.state.update(status=None, error=None, flavour=None, path=None)
    _selfcheck.verified.clear()
    try:
        yield
    finally:
        _dispatch.state.clear()
        _dispatch.state.update(saved[0])
        _selfcheck.verified.clear()
        _selfcheck.verified.update(saved[1])
