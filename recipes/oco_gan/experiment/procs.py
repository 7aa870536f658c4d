"""How the experiment runs commands: in process, or as subprocesses side by side that a
Ctrl-C stops gracefully (each trainer finishes its step and writes its checkpoint)."""

from __future__ import annotations

import contextlib
import os
import shlex
import signal
import subprocess
import sys
import threading
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any, Callable, Dict, Iterator, List, Optional, Sequence, Set

from .plan import Arm

__all__ = ["Children", "Interrupted", "Runner", "forward_signals", "in_process", "run_all",
           "subprocess_runner"]

#: Runs one ``oco-gan`` command line (``argv`` without the program name), its output appended to
#: the log file when one is given; returns the exit code.
Runner = Callable[[List[str], Optional[Path]], int]


def in_process(argv: List[str], log: Optional[Path]) -> int:
    from ..cli import main

    return main(argv)


class Children:
    """The arm subprocesses running now, and whether the experiment is stopping.

    Each child runs in its own session, so a Ctrl-C in the terminal reaches only this process;
    :meth:`stop` then sends every child one SIGTERM (a trainer finishes its step, writes its
    checkpoint and exits) and no further arm is started.
    """

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._procs: Set[subprocess.Popen] = set()
        self._signalled = False
        self.stopping = threading.Event()

    def run(self, cmd: List[str], env: Dict[str, str], stdout: Any = None) -> int:
        with self._lock:
            if self.stopping.is_set():
                return 1
            proc = subprocess.Popen(cmd, env=env, stdout=stdout,
                                    stderr=subprocess.STDOUT if stdout is not None else None,
                                    start_new_session=True)
            self._procs.add(proc)
        try:
            return proc.wait()
        finally:
            with self._lock:
                self._procs.discard(proc)

    def stop(self, signum: int = signal.SIGTERM, frame: Any = None) -> None:
        """Stop every child (SIGTERM) and start no other. As a signal handler (``frame`` given),
        a second signal stops this process at once, as by default. The first signal counts as
        the first even when the experiment was already stopping (after a failed arm, or at the
        end of a sitting): the running children are then still stopped gracefully."""
        with self._lock:
            first = frame is None or not self._signalled
            self._signalled = self._signalled or frame is not None
            self.stopping.set()
            procs = list(self._procs)
        if not first:  # a second signal: stop waiting, as by default
            signal.signal(signum, signal.SIG_DFL)
            signal.raise_signal(signum)
            return
        for proc in procs:
            with contextlib.suppress(ProcessLookupError):
                proc.send_signal(signal.SIGTERM)


def subprocess_runner(launcher: Sequence[str], threads: Optional[int],
                       children: Children) -> Runner:
    def run(argv: List[str], log: Optional[Path]) -> int:
        prefix = list(launcher) if launcher else [sys.executable]
        cmd = [*prefix, "-m", "recipes.oco_gan", *argv]
        env = dict(os.environ)
        if threads is not None:
            env.setdefault("OMP_NUM_THREADS", str(threads))
        if log is None:
            return children.run(cmd, env)
        log.parent.mkdir(parents=True, exist_ok=True)
        with open(log, "a", encoding="utf-8") as fh:
            fh.write(f"$ {shlex.join(cmd)}\n")
            fh.flush()
            return children.run(cmd, env, stdout=fh)

    return run


@contextlib.contextmanager
def forward_signals(children: Children) -> Iterator[None]:
    """While active (main thread only), SIGINT/SIGTERM stop the experiment gracefully."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    previous = {s: signal.signal(s, children.stop) for s in (signal.SIGINT, signal.SIGTERM)}
    try:
        yield
    finally:
        for s, h in previous.items():
            signal.signal(s, h)



class Interrupted(Exception):
    """An arm stopped before its last step (SIGINT/SIGTERM or a failure)."""




class NotStarted(Interrupted):
    def __init__(self, name: str) -> None:
        super().__init__(f"arm {name} not started: the experiment is stopping; rerun the same "
                         "command to continue")


def run_all(fn: Callable[[Arm], Any], arms: Sequence[Arm], *, jobs: int,
            halt: threading.Event) -> List[Any]:
    """``[fn(a) for a in arms]``, ``jobs`` at a time; after a failure or a stop signal
    (``halt`` set) no further arm starts, the running ones finish, the first failure is raised."""

    def guarded(arm: Arm) -> Any:
        if halt.is_set():
            raise NotStarted(arm.name)
        try:
            return fn(arm)
        except BaseException:
            halt.set()
            raise

    if jobs <= 1:
        return [guarded(a) for a in arms]
    with ThreadPoolExecutor(max_workers=jobs) as pool:
        futures = [pool.submit(guarded, a) for a in arms]
        results: List[Any] = []
        errors: List[BaseException] = []
        for f in futures:
            try:
                results.append(f.result())
            except BaseException as exc:  # collected, the real failure is raised below
                errors.append(exc)
    if errors:
        raise next((e for e in errors if not isinstance(e, NotStarted)), errors[0])
    return results

