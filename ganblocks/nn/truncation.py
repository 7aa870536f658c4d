"""The truncation trick (StyleGAN): pull style vectors towards their running average."""

from __future__ import annotations

from typing import Optional

import torch
from torch import nn

from .checks import check_input, check_int

__all__ = ["WAverageTruncation"]


class WAverageTruncation(nn.Module):
    """Track the average style vector ``w_avg`` and truncate towards it.

    ``update(w)`` sets ``w_avg ← lerp(mean_N(w), w_avg, beta)`` (an exponential moving average with
    decay ``beta``, called on training batches). ``forward(ws, psi, cutoff)`` returns
    ``w_avg + psi · (ws - w_avg)`` for the first ``cutoff`` style vectors of ``ws`` (all when
    ``cutoff`` is ``None``) and leaves the others unchanged; ``psi = 1`` is the identity, ``psi =
    0`` gives the average image.

    Args:
        w_dim: Size of a style vector.
        beta: Decay of the moving average.

    Shapes:
        ``ws: [N, num_ws, w_dim]`` or ``[N, w_dim]`` → same shape.

    Example:
        >>> trunc = WAverageTruncation(8)
        >>> trunc.update(torch.ones(4, 8))  # w_avg: 0 → 0.002 (beta 0.998)
        >>> out = trunc(torch.ones(2, 3, 8), truncation_psi=0.5, truncation_cutoff=2)
        >>> [round(float(v), 3) for v in out[0, :, 0]]
        [0.501, 0.501, 1.0]
    """

    def __init__(self, w_dim: int, *, beta: float = 0.998) -> None:
        super().__init__()
        self.w_dim = check_int(w_dim, "w_dim")
        if not 0.0 <= float(beta) <= 1.0:
            raise ValueError(f"beta: expected a decay in [0, 1], got {beta!r}")
        self.beta = float(beta)
        self.register_buffer("w_avg", torch.zeros(self.w_dim))

    @torch.no_grad()
    def update(self, w: torch.Tensor) -> None:
        """Move ``w_avg`` towards the batch mean of ``w: [N, w_dim]``."""
        check_input(w, "w", ndim=2, channels=self.w_dim)
        self.w_avg.copy_(w.detach().float().mean(dim=0).lerp(self.w_avg, self.beta))

    def forward(
        self,
        ws: torch.Tensor,
        truncation_psi: float = 1.0,
        truncation_cutoff: Optional[int] = None,
    ) -> torch.Tensor:
        """``ws: [N, num_ws, w_dim]`` (or ``[N, w_dim]``) → truncated, same shape."""
        if not isinstance(ws, torch.Tensor) or ws.ndim not in (2, 3) or ws.shape[-1] != self.w_dim:
            shape = tuple(ws.shape) if isinstance(ws, torch.Tensor) else type(ws).__name__
            raise ValueError(
                f"ws: expected [N, num_ws, {self.w_dim}] or [N, {self.w_dim}], got {shape}"
            )
        if truncation_psi == 1:
            return ws
        w_avg = self.w_avg.to(ws.dtype)
        if truncation_cutoff is None or ws.ndim == 2:
            return w_avg.lerp(ws, float(truncation_psi))
        cutoff = check_int(truncation_cutoff, "truncation_cutoff", minimum=0)
        head = w_avg.lerp(ws[:, :cutoff], float(truncation_psi))
        return torch.cat([head, ws[:, cutoff:]], dim=1)

    def extra_repr(self) -> str:
        return f"w_dim={self.w_dim}, beta={self.beta:g}"
