"""Turn SIGINT/SIGTERM into a flag that a training loop checks between steps."""

from __future__ import annotations

import signal
import threading
from types import FrameType
from typing import Any, Dict, Optional

__all__ = ["GracefulInterrupt"]


class GracefulInterrupt:
    """Context manager: while active, SIGINT and SIGTERM set :attr:`requested` instead of killing.

    The loop finishes its current step, writes a checkpoint and exits cleanly. A second signal of
    the same kind restores the default behaviour (so a stuck process can still be stopped).

    Example:
        >>> import os, signal
        >>> with GracefulInterrupt() as stop:
        ...     os.kill(os.getpid(), signal.SIGTERM)
        ...     stop.requested
        True
    """

    SIGNALS = (signal.SIGINT, signal.SIGTERM)

    def __init__(self) -> None:
        self.requested = False
        self.signum: Optional[int] = None
        self._previous: Dict[int, Any] = {}

    def _handler(self, signum: int, frame: Optional[FrameType]) -> None:
        if self.requested:  # second signal: give up gracefully handling it
            signal.signal(signum, self._previous.get(signum, signal.SIG_DFL))
            signal.raise_signal(signum)
            return
        self.requested = True
        self.signum = signum

    def __enter__(self) -> GracefulInterrupt:
        if threading.current_thread() is threading.main_thread():
            for s in self.SIGNALS:
                self._previous[s] = signal.signal(s, self._handler)
        return self

    def __exit__(self, *exc: Any) -> None:
        for s, h in self._previous.items():
            signal.signal(s, h)
        self._previous.clear()
