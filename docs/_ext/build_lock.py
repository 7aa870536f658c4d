"""One docs build at a time per source tree.

sphinx-gallery writes the executed examples into the *source* tree (``docs/auto_examples``), so
two builds of the same checkout running at once (two test workers, or a person and a test) would
write the same files. This extension holds an exclusive lock on ``docs/.build.lock`` from the
moment the extensions load until the build ends; a second build waits for the first, then reuses
the examples it ran (sphinx-gallery re-runs only scripts whose content changed).
"""

from __future__ import annotations

import atexit
import fcntl
from pathlib import Path
from typing import IO, Optional

from sphinx.application import Sphinx

_held: Optional[IO[bytes]] = None


def _release(*_: object) -> None:
    global _held
    if _held is not None:
        fcntl.flock(_held, fcntl.LOCK_UN)
        _held.close()
        _held = None


def setup(app: Sphinx) -> dict:
    global _held
    if _held is None:
        _held = open(Path(app.srcdir) / ".build.lock", "ab")  # noqa: SIM115 - held until the end
        fcntl.flock(_held, fcntl.LOCK_EX)  # blocks while another build of this tree runs
        atexit.register(_release)
    app.connect("build-finished", _release)
    return {"parallel_read_safe": True, "parallel_write_safe": True}
