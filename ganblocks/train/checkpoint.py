"""Atomic checkpoint files and capture/restore of every random number generator."""

from __future__ import annotations

import os
import random
import tempfile
from pathlib import Path
from typing import Any, BinaryIO, Callable, Dict, Optional, Union

import numpy as np
import torch

__all__ = [
    "atomic_save",
    "atomic_write",
    "capture_rng_state",
    "load_checkpoint",
    "restore_rng_state",
]

PathLike = Union[str, os.PathLike]


def atomic_write(path: PathLike, write: Callable[[BinaryIO], None]) -> Path:
    """Call ``write(file)`` on a temporary file in ``path``'s folder, fsync, rename over ``path``.

    A reader (or a run interrupted mid-write) sees either the previous complete file or the new
    complete file, never a truncated one; on error the temporary file is removed.

    Example:
        >>> import tempfile, os
        >>> p = atomic_write(os.path.join(tempfile.mkdtemp(), "a.txt"), lambda f: f.write(b"hi"))
        >>> p.read_text()
        'hi'
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "wb") as f:
            write(f)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        if os.path.exists(tmp):
            os.unlink(tmp)
        raise
    return path


def atomic_save(obj: Any, path: PathLike) -> Path:
    """``torch.save`` ``obj`` to ``path`` atomically (see :func:`atomic_write`).

    Example:
        >>> import tempfile, os
        >>> d = tempfile.mkdtemp()
        >>> p = atomic_save({"step": 3}, os.path.join(d, "ckpt.pt"))
        >>> load_checkpoint(p)["step"]
        3
    """
    return atomic_write(path, lambda f: torch.save(obj, f))


def load_checkpoint(path: PathLike, *, map_location: Optional[Any] = "cpu") -> Dict[str, Any]:
    """Load a checkpoint written by :func:`atomic_save`, with a clear error if it is missing."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"checkpoint: no file at {path}")
    return torch.load(path, map_location=map_location, weights_only=False)


def capture_rng_state(*generators: torch.Generator) -> Dict[str, Any]:
    """States of Python's, NumPy's and torch's global RNGs (CPU and CUDA), plus ``generators``.

    Example:
        >>> g = torch.Generator().manual_seed(0)
        >>> state = capture_rng_state(g)
        >>> a = (torch.rand(2), torch.rand(2, generator=g))
        >>> restore_rng_state(state, g)
        >>> b = (torch.rand(2), torch.rand(2, generator=g))
        >>> all(torch.equal(x, y) for x, y in zip(a, b))
        True
    """
    state: Dict[str, Any] = {
        "python": random.getstate(),
        "numpy": np.random.get_state(),
        "torch": torch.get_rng_state(),
        "generators": [g.get_state() for g in generators],
    }
    if torch.cuda.is_available():
        state["cuda"] = torch.cuda.get_rng_state_all()
    return state


def restore_rng_state(state: Dict[str, Any], *generators: torch.Generator) -> None:
    """Inverse of :func:`capture_rng_state` (``generators`` in the same order)."""
    random.setstate(state["python"])
    np.random.set_state(state["numpy"])
    torch.set_rng_state(state["torch"])
    if "cuda" in state and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(state["cuda"])
    saved = state.get("generators", [])
    if len(saved) != len(generators):
        raise ValueError(f"generators: the state holds {len(saved)} generator(s), got "
                         f"{len(generators)}")
    for g, s in zip(generators, saved):
        g.set_state(s)
