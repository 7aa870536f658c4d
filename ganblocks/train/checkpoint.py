"""Atomic, checksummed checkpoint files and capture/restore of every random number generator."""

from __future__ import annotations

import contextlib
import errno
import hashlib
import os
import pickle
import random
import tempfile
from pathlib import Path
from typing import Any, BinaryIO, Callable, Dict, Optional, Union

import numpy as np
import torch

__all__ = [
    "CHECKSUM_KEY",
    "CheckpointError",
    "atomic_save",
    "atomic_write",
    "capture_rng_state",
    "load_checkpoint",
    "payload_digest",
    "previous_snapshot",
    "restore_rng_state",
]

PathLike = Union[str, os.PathLike]

#: Key under which :func:`atomic_save` stores the checksum of a dict checkpoint's payload.
CHECKSUM_KEY = "__checksum__"

_NO_SPACE = (errno.ENOSPC, errno.EDQUOT)


class CheckpointError(ValueError):
    """A checkpoint file that cannot be used: truncated, garbage or failing its checksum."""


def _umask() -> int:
    mask = os.umask(0o022)
    os.umask(mask)
    return mask


def _no_space(err: BaseException) -> bool:
    """Whether ``err`` (or an exception it wraps, e.g. torch's writer error) is a full disk."""
    seen = set()
    while err is not None and id(err) not in seen:
        seen.add(id(err))
        if isinstance(err, OSError) and err.errno in _NO_SPACE:
            return True
        err = err.__cause__ or err.__context__
    return False


def previous_snapshot(path: PathLike) -> Path:
    """Where :func:`atomic_write` keeps the previous version of ``path`` (``keep_previous``).

    Example:
        >>> previous_snapshot("runs/a/checkpoint.pt").name
        'checkpoint.prev.pt'
    """
    path = Path(path)
    return path.with_name(f"{path.stem}.prev{path.suffix}")


def atomic_write(path: PathLike, write: Callable[[BinaryIO], None], *,
                 keep_previous: bool = False) -> Path:
    """Call ``write(file)`` on a temporary file in ``path``'s folder, fsync, rename over ``path``.

    A reader (or a run interrupted mid-write) sees either the previous complete file or the new
    complete file, never a truncated one; on error the temporary file (``.<name>.*.tmp``) is
    removed. The file gets the permissions of a normally created one (``0o666`` less the umask).

    Args:
        path: Destination file.
        write: Writes the content to the binary file object it is given.
        keep_previous: Keep the file ``path`` held until now as :func:`previous_snapshot`
            (a hard link where the file system allows, so it costs no copy).

    Raises:
        OSError: ``ENOSPC`` with "no space left on device ..." naming ``path`` when the disk is
            full (``path`` itself is left as it was).

    Example:
        >>> import tempfile, os
        >>> p = atomic_write(os.path.join(tempfile.mkdtemp(), "a.txt"), lambda f: f.write(b"hi"))
        >>> p.read_text(), oct(p.stat().st_mode & 0o777) == oct(0o666 & ~_umask())
        ('hi', True)
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    prev = previous_snapshot(path)
    prev_tmp = prev.with_name(f".{prev.name}.{os.getpid()}.tmp")
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        os.fchmod(fd, 0o666 & ~_umask())
        with os.fdopen(fd, "wb") as f:
            write(f)
            f.flush()
            os.fsync(f.fileno())
        if keep_previous and path.is_file():
            # A stale temporary name may be a hard link to a snapshot: never write into it.
            if os.path.lexists(prev_tmp):
                os.unlink(prev_tmp)
            # After a kill between the two renames below, prev and path are one file (rename
            # of two links to one file does nothing): prev already holds it.
            if not (prev.is_file() and os.path.samefile(path, prev)):
                try:
                    os.link(path, prev_tmp)
                except OSError:  # no hard links here: copy
                    import shutil

                    shutil.copyfile(path, prev_tmp)
                os.replace(prev_tmp, prev)
        os.replace(tmp, path)
    except BaseException as err:
        for leftover in (tmp, prev_tmp):
            if os.path.exists(leftover):
                os.unlink(leftover)
        if _no_space(err):
            raise OSError(errno.ENOSPC, f"no space left on device while writing {path} (the "
                          f"previous {path.name}, if any, is intact)") from err
        raise
    return path


def payload_digest(obj: Any) -> str:
    """BLAKE2b checksum of a checkpoint payload's *content* (tensors bit for bit).

    Computed on the objects, not the file bytes, so the same payload gives the same digest after
    a save/load round trip and any change of a value changes it.

    Example:
        >>> a = payload_digest({"w": torch.ones(3), "step": 2})
        >>> a == payload_digest({"w": torch.ones(3), "step": 2}), a == payload_digest({"w": torch.ones(3), "step": 3})
        (True, False)
    """  # noqa: E501
    h = hashlib.blake2b(digest_size=32)

    def visit(x: Any) -> None:
        if isinstance(x, torch.Tensor):
            t = x.detach().to("cpu").contiguous()
            h.update(f"T{t.dtype}{tuple(t.shape)}".encode())
            if t.numel():
                h.update(t.reshape(-1).view(torch.uint8).numpy().tobytes())
        elif isinstance(x, np.ndarray) and x.dtype != object:
            h.update(f"A{x.dtype.str}{x.shape}".encode())
            h.update(np.ascontiguousarray(x).tobytes())
        elif isinstance(x, dict):
            h.update(f"D{len(x)}".encode())
            for k, v in x.items():
                visit(k)
                visit(v)
        elif isinstance(x, (list, tuple)):
            h.update(f"{'L' if isinstance(x, list) else 'U'}{len(x)}".encode())
            for v in x:
                visit(v)
        elif x is None or isinstance(x, (bool, int, float, str, bytes, np.generic)):
            h.update(f"S{type(x).__name__}:{x!r};".encode())
        else:
            h.update(f"O{type(x).__qualname__}".encode())
            # (An object pickle cannot handle only contributes its type.)
            with contextlib.suppress(Exception):
                h.update(pickle.dumps(x, protocol=4))

    visit(obj)
    return h.hexdigest()


def atomic_save(obj: Any, path: PathLike, *, keep_previous: bool = False) -> Path:
    """``torch.save`` ``obj`` to ``path`` atomically (see :func:`atomic_write`).

    A dict ``obj`` gets the checksum of its content (:func:`payload_digest`) under
    :data:`CHECKSUM_KEY`; :func:`load_checkpoint` verifies and removes it. The file stays a plain
    ``torch.save`` file.

    Example:
        >>> import tempfile, os
        >>> d = tempfile.mkdtemp()
        >>> p = atomic_save({"step": 3}, os.path.join(d, "ckpt.pt"))
        >>> load_checkpoint(p)
        {'step': 3}
    """
    if isinstance(obj, dict):
        obj = {**obj, CHECKSUM_KEY: payload_digest(obj)}
    return atomic_write(path, lambda f: torch.save(obj, f), keep_previous=keep_previous)


def load_checkpoint(path: PathLike, *, map_location: Optional[Any] = "cpu") -> Any:
    """Load a checkpoint written by :func:`atomic_save` and verify its checksum.

    Raises:
        FileNotFoundError: no file at ``path``.
        CheckpointError: the file is truncated, garbage or fails its checksum; the message says
            "checkpoint PATH is corrupt or incomplete" and names the previous snapshot
            (:func:`previous_snapshot`) when there is one.

    Example:
        >>> import tempfile, os
        >>> p = atomic_save({"w": torch.zeros(4)}, os.path.join(tempfile.mkdtemp(), "c.pt"))
        >>> _ = p.write_bytes(p.read_bytes()[:100])  # truncate it
        >>> load_checkpoint(p)
        Traceback (most recent call last):
        ...
        ganblocks.train.checkpoint.CheckpointError: checkpoint ... is corrupt or incomplete ...
    """
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"checkpoint: no file at {path}")
    try:
        state = torch.load(path, map_location=map_location, weights_only=False)
    except Exception as err:
        raise CheckpointError(_corrupt_message(path, f"{type(err).__name__}: "
                                                     f"{str(err).splitlines()[0][:200]}")) from err
    if isinstance(state, dict) and CHECKSUM_KEY in state:
        expected = state.pop(CHECKSUM_KEY)
        if payload_digest(state) != expected:
            raise CheckpointError(_corrupt_message(path, "checksum mismatch"))
    return state


def _corrupt_message(path: Path, why: str) -> str:
    msg = f"checkpoint {path} is corrupt or incomplete ({why})"
    prev = previous_snapshot(path)
    if prev.is_file() and prev != path:
        msg += (f"; the previous snapshot {prev} is there: to continue from it, "
                f"`mv {prev} {path}`")
    return msg


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
