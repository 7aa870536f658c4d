"""Random draws that honour an optional ``torch.Generator`` on any device.

Used by the losses and augmentations that take a ``generator=`` argument: the numbers are drawn
on the generator's device (a CPU generator works for CUDA data, as torch's own samplers do not
allow) and then moved to the data's device.

Example:
    >>> g = torch.Generator().manual_seed(0)
    >>> a = rand((2, 3), generator=g, device=torch.device("cpu"))
    >>> b = rand((2, 3), generator=torch.Generator().manual_seed(0), device=torch.device("cpu"))
    >>> torch.equal(a, b), a.shape
    (True, torch.Size([2, 3]))
"""

from __future__ import annotations

from typing import Optional, Sequence

import torch

__all__ = ["draw_device", "rand", "randn"]


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
