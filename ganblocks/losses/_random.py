"""Random draws that honour an optional ``torch.Generator`` on any device (internal)."""

from __future__ import annotations

from typing import Optional, Sequence

import torch


def draw_device(generator: Optional[torch.Generator], device: torch.device) -> torch.device:
    """Device to draw on: the generator's (a CPU generator works for CUDA data), else ``device``."""
    if generator is None:
        return device
    if not isinstance(generator, torch.Generator):
        raise TypeError(
            f"generator: expected a torch.Generator or None, got {type(generator).__name__}"
        )
    return generator.device


def rand(
    shape: Sequence[int],
    *,
    generator: Optional[torch.Generator],
    device: torch.device,
    dtype: torch.dtype = torch.float32,
) -> torch.Tensor:
    """``U[0, 1)`` samples drawn with ``generator`` and moved to ``device``."""
    where = draw_device(generator, device)
    return torch.rand(tuple(shape), generator=generator, device=where, dtype=dtype).to(device)


def randn(
    shape: Sequence[int],
    *,
    generator: Optional[torch.Generator],
    device: torch.device,
    dtype: torch.dtype = torch.float32,
) -> torch.Tensor:
    """Standard normal samples drawn with ``generator`` and moved to ``device``."""
    where = draw_device(generator, device)
    return torch.randn(tuple(shape), generator=generator, device=where, dtype=dtype).to(device)
