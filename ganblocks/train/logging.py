"""Metrics logging: JSON lines (always) and TensorBoard (when installed)."""

from __future__ import annotations

import json
import os
import time
from pathlib import Path
from typing import Any, Dict, Optional, Union

__all__ = ["MetricsLogger"]


class MetricsLogger:
    """Appends one JSON object per :meth:`log` call to ``<run>/metrics.jsonl``.

    Only the process constructed with ``enabled=True`` (rank 0) writes. TensorBoard scalars are
    written too when the ``tensorboard`` package is installed.

    Example:
        >>> import tempfile, json
        >>> d = tempfile.mkdtemp()
        >>> with MetricsLogger(d, tensorboard=False) as log:
        ...     log.log(10, {"loss/d": 0.5})
        >>> json.loads(open(d + "/metrics.jsonl").read())["loss/d"]
        0.5
    """

    def __init__(self, run_dir: Union[str, os.PathLike], *, enabled: bool = True,
                 tensorboard: bool = True) -> None:
        self.enabled = enabled
        self.path = Path(run_dir) / "metrics.jsonl"
        self._file = None
        self._tb: Optional[Any] = None
        if not enabled:
            return
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self._file = open(self.path, "a", buffering=1)  # noqa: SIM115 - closed in close()
        if tensorboard:
            try:
                from torch.utils.tensorboard import SummaryWriter

                self._tb = SummaryWriter(str(Path(run_dir) / "tensorboard"))
            except Exception:  # tensorboard not installed: JSONL only
                self._tb = None

    def log(self, step: int, values: Dict[str, float]) -> None:
        if not self.enabled or self._file is None:
            return
        record = {"step": int(step), "time": time.time(),
                  **{k: float(v) for k, v in values.items()}}
        self._file.write(json.dumps(record) + "\n")
        if self._tb is not None:
            for k, v in values.items():
                self._tb.add_scalar(k, float(v), step)

    def close(self) -> None:
        if self._file is not None:
            self._file.close()
            self._file = None
        if self._tb is not None:
            self._tb.close()
            self._tb = None

    def __enter__(self) -> MetricsLogger:
        return self

    def __exit__(self, *exc: Any) -> None:
        self.close()
