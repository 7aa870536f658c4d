"""Run directories: one writer at a time, no silent overwrite, checked resumes, a history.

A run directory (``--out``) holds ``config.json``, ``split.json``, ``metrics.jsonl``,
``history.jsonl``, ``samples/``, ``checkpoint.pt`` (and ``checkpoint.prev.pt``, the snapshot
before it) and ``.lock``. :func:`open_run_dir` does every check before anything is written:

* ``--out`` must be a writable directory (or creatable);
* a directory that already holds a run is refused unless ``resume`` (continue it) or
  ``overwrite`` (move it aside, or delete it when asked);
* an exclusive :func:`fcntl.flock` on ``.lock`` (holding the owner's PID) keeps a second trainer
  out for as long as the first one lives; the kernel drops the lock of a dead process;
* temporary files left by a killed write (``.*.tmp``) are removed.

:func:`resume_changes` compares a resumed run's config with the checkpoint's: settings in
:data:`SAFE_ON_RESUME` may change, any other difference is an error naming the fields.
"""

from __future__ import annotations

import datetime
import errno
import json
import os
import shutil
import socket
import sys
from pathlib import Path
from typing import Any, Dict, List, Optional, Tuple, Union

from ganblocks.train import atomic_write

from .config import ConfigError, OCOGANConfig

__all__ = [
    "RUN_FILES",
    "SAFE_ON_RESUME",
    "RunDir",
    "RunDirError",
    "config_differences",
    "dedupe_metrics",
    "has_run",
    "open_run_dir",
    "record_history",
    "remove_orphans",
    "resume_changes",
]

#: Files whose presence means "this directory holds a run".
RUN_FILES = ("checkpoint.pt", "config.json", "metrics.jsonl")

#: Config fields that may differ on ``--resume`` (recorded in ``history.jsonl``). Everything
#: else (preset, model, data set and regime, losses, batch sizes, optimiser, seeds) must match.
SAFE_ON_RESUME = (
    "train.steps", "train.log_every", "train.sample_every", "train.checkpoint_every",
    "train.num_samples", "data.root", "data.num_workers",
    "train.eval_every", "train.keep_every", "train.eval_batch", "train.eval_fid_weights",
    "train.eval_segmenter",
)

LOCK_NAME = ".lock"


class RunDirError(ValueError):
    """A run directory that cannot be used as asked (the CLI exits with code 2)."""


def has_run(path: Union[str, os.PathLike]) -> List[str]:
    """The :data:`RUN_FILES` present in ``path`` (empty: no run there).

    Example:
        >>> import tempfile
        >>> has_run(tempfile.mkdtemp())
        []
    """
    path = Path(path)
    return [name for name in RUN_FILES if (path / name).exists()]


def _check_writable(path: Path) -> None:
    if path.exists() and not path.is_dir():
        raise RunDirError(f"--out {path} is a file, expected a directory")
    probe = path
    while not probe.exists():
        probe = probe.parent
    if not probe.is_dir():
        raise RunDirError(f"--out {path}: {probe} is a file, expected a directory")
    if not os.access(probe, os.W_OK | os.X_OK):
        where = "" if probe == path else f" (cannot create it in {probe})"
        raise RunDirError(f"--out {path} is not writable{where}: permission denied")


class RunDir:
    """An opened, locked run directory (see :func:`open_run_dir`).

    Attributes:
        path: The run directory.
        created: Whether :func:`open_run_dir` created it.
        moved_to: Where ``overwrite`` moved the previous run (``None``: not moved).
    """

    def __init__(self, path: Path, fd: int, *, created: bool,
                 moved_to: Optional[Path] = None) -> None:
        self.path = path
        self._fd: Optional[int] = fd
        self.created = created
        self.moved_to = moved_to

    def release(self) -> None:
        """Drop the lock (it is also dropped when the process ends, however it ends)."""
        if self._fd is not None:
            os.close(self._fd)
            self._fd = None

    def abort(self) -> None:
        """Undo :func:`open_run_dir` after a failed start: remove what it created, put a
        moved-aside run back, release the lock."""
        if self.created and self.path.is_dir():
            shutil.rmtree(self.path, ignore_errors=True)
            if self.moved_to is not None and self.moved_to.is_dir() and not self.path.exists():
                os.replace(self.moved_to, self.path)
                self.moved_to = None
        self.release()


def _lock(path: Path) -> int:
    """Take the exclusive lock of run directory ``path``; its file records our PID."""
    import fcntl

    lock = path / LOCK_NAME
    fd = os.open(lock, os.O_RDWR | os.O_CREAT, 0o666)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except OSError as err:
        if err.errno not in (errno.EWOULDBLOCK, errno.EAGAIN, errno.EACCES):
            os.close(fd)
            raise
        holder = os.pread(fd, 200, 0).decode("utf-8", "replace").split()
        os.close(fd)
        who = f"process {holder[0]}" if holder else "another process"
        if len(holder) > 1 and holder[1] != socket.gethostname():
            who += f" on {holder[1]}"
        raise RunDirError(f"run directory {path} is in use by {who} (lock {lock}); wait for it "
                          "to finish or stop it, or choose another --out") from None
    os.ftruncate(fd, 0)
    os.pwrite(fd, f"{os.getpid()} {socket.gethostname()}\n".encode(), 0)
    return fd


def remove_orphans(path: Union[str, os.PathLike]) -> List[Path]:
    """Delete temporary files of interrupted atomic writes (``.<name>.*.tmp``) in the run
    directory and its ``samples/``; returns them. Call only while holding the lock."""
    path = Path(path)
    removed = []
    for folder in (path, path / "samples"):
        if folder.is_dir():
            for tmp in folder.glob(".*.tmp"):
                tmp.unlink(missing_ok=True)
                removed.append(tmp)
    return removed


def _aside(path: Path) -> Path:
    stamp = datetime.datetime.now().strftime("%Y%m%d-%H%M%S")
    target = path.with_name(f"{path.name}.old-{stamp}")
    k = 1
    while target.exists():
        k += 1
        target = path.with_name(f"{path.name}.old-{stamp}-{k}")
    return target


def open_run_dir(path: Union[str, os.PathLike], *, resume: bool = False,
                 overwrite: bool = False, delete_old: bool = False) -> RunDir:
    """Check, lock and prepare run directory ``path`` for a trainer (rank 0 only).

    Args:
        path: The run directory (``--out``).
        resume: Continue the run in ``path`` (it must hold one).
        overwrite: Start over in a ``path`` that holds a run: the old run is moved to
            ``<path>.old-<date>-<time>`` (deleted instead with ``delete_old``).
        delete_old: With ``overwrite``, delete the old run instead of moving it.

    Raises:
        RunDirError: ``path`` is a file or not writable, holds a run and neither ``resume`` nor
            ``overwrite`` was given (the message says which to use), has no run to resume, or is
            locked by a live process (named by PID).

    Example:
        >>> import tempfile, os
        >>> d = os.path.join(tempfile.mkdtemp(), "run")
        >>> run = open_run_dir(d)
        >>> open_run_dir(d)  # a second writer   # doctest: +ELLIPSIS
        Traceback (most recent call last):
        ...
        recipes.oco_gan.rundir.RunDirError: run directory ... is in use by process ...
        >>> run.release()
    """
    path = Path(path)
    if resume and overwrite:
        raise RunDirError("--resume and --overwrite exclude each other")
    if delete_old and not overwrite:
        raise RunDirError("--delete-old only goes with --overwrite")
    _check_writable(path)
    created = not path.exists()
    path.mkdir(parents=True, exist_ok=True)
    fd = None
    try:
        fd = _lock(path)  # first, so that a busy directory names its owner
        found = has_run(path)
        if resume and "checkpoint.pt" not in found:
            raise RunDirError(f"--resume: no run to continue in {path} (no checkpoint.pt)")
        if found and not resume and not overwrite:
            raise RunDirError(
                f"--out {path} already holds a run ({', '.join(found)}): continue it with "
                f"--resume (optionally --steps N to train on), or start over with --overwrite "
                f"(moves it to {path.name}.old-<date>-<time>; add --delete-old to delete it "
                "instead)")
    except BaseException:
        if fd is not None:
            os.close(fd)
        if created:
            shutil.rmtree(path, ignore_errors=True)
        raise
    moved_to = None
    if overwrite and found:
        if delete_old:
            for child in path.iterdir():
                if child.name == LOCK_NAME:
                    continue
                if child.is_dir() and not child.is_symlink():
                    shutil.rmtree(child)
                else:
                    child.unlink()
        else:
            # Move the old run (with its locked .lock) aside and lock a fresh directory.
            moved_to = _aside(path)
            os.replace(path, moved_to)
            path.mkdir()
            old_fd = fd
            fd = _lock(path)
            os.close(old_fd)
            (moved_to / LOCK_NAME).unlink(missing_ok=True)
            created = True
    remove_orphans(path)
    return RunDir(path, fd, created=created, moved_to=moved_to)


# -- resume ----------------------------------------------------------------------------------------
def _flatten(d: Dict[str, Any], prefix: str = "") -> Dict[str, Any]:
    out: Dict[str, Any] = {}
    for k, v in d.items():
        key = f"{prefix}{k}"
        if isinstance(v, dict):
            out.update(_flatten(v, key + "."))
        else:
            out[key] = v
    return out


def config_differences(old: OCOGANConfig, new: OCOGANConfig) -> Dict[str, Tuple[Any, Any]]:
    """Fields whose values differ: ``{"section.field": (old, new)}`` (``preset`` included).

    Example:
        >>> from recipes.oco_gan.config import apply_overrides, get_preset
        >>> a = get_preset("demo")
        >>> config_differences(a, apply_overrides(a, ["train.steps=5", "model.z_dim=8"]))
        {'model.z_dim': (64, 8), 'train.steps': (100000, 5)}
    """
    a, b = _flatten(old.to_dict()), _flatten(new.to_dict())
    return {k: (a.get(k), b.get(k)) for k in sorted(set(a) | set(b)) if a.get(k) != b.get(k)}


def resume_changes(saved: OCOGANConfig, requested: OCOGANConfig) -> Dict[str, Tuple[Any, Any]]:
    """The differences of a resume's ``requested`` config from the checkpoint's ``saved`` one.

    Returns:
        ``{"section.field": (old, new)}`` of the changes, all in :data:`SAFE_ON_RESUME`.

    Raises:
        ConfigError: naming every field that differs and may not change on resume.

    Example:
        >>> from recipes.oco_gan.config import apply_overrides, get_preset
        >>> a = get_preset("demo")
        >>> resume_changes(a, apply_overrides(a, ["train.steps=5"]))
        {'train.steps': (100000, 5)}
        >>> resume_changes(a, apply_overrides(a, ["loss.r1_gamma=1", "train.steps=5"]))
        Traceback (most recent call last):
        ...
        recipes.oco_gan.config.ConfigError: --resume: the checkpoint was trained with other ...
    """
    diff = config_differences(saved, requested)
    bad = {k: v for k, v in diff.items() if k not in SAFE_ON_RESUME}
    if bad:
        listed = "; ".join(f"{k}: {old!r} in the checkpoint, {new!r} now"
                           for k, (old, new) in bad.items())
        raise ConfigError(
            f"--resume: the checkpoint was trained with other settings of {', '.join(bad)} "
            f"({listed}). Only {', '.join(SAFE_ON_RESUME)} may change on resume; start a new "
            "run (another --out, or --overwrite) to change the others")
    return diff


def dedupe_metrics(path: Union[str, os.PathLike], step: int) -> int:
    """Drop rows of ``path/metrics.jsonl`` logged after ``step`` (the checkpoint a run resumes
    from) and unreadable (torn) lines, so the resumed run does not log those steps twice.

    Returns the number of lines dropped.

    Example:
        >>> import tempfile, pathlib
        >>> d = pathlib.Path(tempfile.mkdtemp())
        >>> _ = (d / "metrics.jsonl").write_text('{"step": 1}\\n{"step": 2}\\n{"step": 3}\\n{"st')
        >>> dedupe_metrics(d, 2), (d / "metrics.jsonl").read_text()
        (2, '{"step": 1}\\n{"step": 2}\\n')
    """
    file = Path(path) / "metrics.jsonl"
    if not file.is_file():
        return 0
    keep, dropped = [], 0
    for line in file.read_text().splitlines():
        try:
            ok = int(json.loads(line)["step"]) <= step
        except (ValueError, KeyError, TypeError):
            ok = False
        if ok:
            keep.append(line + "\n")
        else:
            dropped += 1
    if dropped:
        atomic_write(file, lambda f: f.write("".join(keep).encode("utf-8")))
    return dropped


def record_history(path: Union[str, os.PathLike], event: str, *, step: int,
                   changes: Optional[Dict[str, Tuple[Any, Any]]] = None,
                   **extra: Any) -> None:
    """Append one line to ``path/history.jsonl``: when, what (``start``/``resume``), at which
    step, the command line, and the settings changed on resume (``{field: [old, new]}``)."""
    record = {
        "time": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
        "event": event, "step": int(step), "pid": os.getpid(), "host": socket.gethostname(),
        "argv": sys.argv, "changes": {k: list(v) for k, v in (changes or {}).items()}, **extra,
    }
    with open(Path(path) / "history.jsonl", "a") as f:
        f.write(json.dumps(record, default=str) + "\n")
