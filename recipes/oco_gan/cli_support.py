"""Process helpers shared by the ``oco-gan`` command modules (no command imports this one's
callers: it sits below :mod:`recipes.oco_gan.train_cli`, :mod:`recipes.oco_gan.evaluate_cli` and
:mod:`recipes.oco_gan.cli`)."""

from __future__ import annotations

import os
import sys
from typing import Any

__all__ = ["exit_process", "set_cpu_threads"]


def set_cpu_threads(ctx: Any) -> None:
    """On CPU, unless ``OMP_NUM_THREADS`` is set, share the cores among the processes of
    ``ctx`` (a :class:`~ganblocks.train.DistributedContext`)."""
    import torch

    if ctx.device.type == "cpu" and "OMP_NUM_THREADS" not in os.environ:
        torch.set_num_threads(max(1, (os.cpu_count() or 1) // max(1, ctx.world_size)))


def exit_process(code: int) -> None:
    """End a torchrun worker now that its work is done and its files are closed.

    Interpreter shutdown after a gloo process group can abort in C++ ("terminate called without
    an active exception", an upstream race between the backend's worker threads and finalisation),
    which torchrun then reports as a failed run. Everything is written and flushed at this point,
    so the worker skips finalisation.
    """
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(code)
