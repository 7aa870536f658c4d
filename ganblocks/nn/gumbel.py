"""Gumbel-Softmax (Jang et al. 2017; Maddison et al. 2017) with a straight-through hard mode.

A sample is ``softmax((logits + g) / tau)`` with i.i.d. Gumbel noise ``g = -log(-log(U))``,
``U ~ Uniform(0, 1)``. Its arg-max is an exact sample of ``Categorical(softmax(logits))``. In hard
mode the forward value is the one-hot arg-max, and the gradient is that of the soft sample
(straight-through estimator). The noise is drawn from an optional ``torch.Generator`` on any
device, so samples are reproducible.
"""

from __future__ import annotations

from typing import Optional

import torch
from torch import nn

from .checks import check_positive_float

__all__ = ["GumbelSoftmax", "gumbel_softmax"]


def gumbel_softmax(
    logits: torch.Tensor,
    *,
    tau: float = 1.0,
    hard: bool = True,
    dim: int = 1,
    generator: Optional[torch.Generator] = None,
) -> torch.Tensor:
    """Draw a (straight-through) Gumbel-Softmax sample along ``dim``.

    Args:
        logits: Unnormalised log-probabilities, any shape, classes along ``dim`` (e.g.
            ``[N, K, H, W]`` for per-pixel class logits).
        tau: Temperature ``> 0``; small values give nearly one-hot soft samples.
        hard: Return the one-hot arg-max of the sample in the forward pass, with the soft
            sample's gradient.
        dim: The class dimension.
        generator: Source of the uniform noise, on any device: the noise is drawn on the
            generator's device and moved to ``logits``' (so a CPU generator serves CUDA logits);
            ``None`` uses the global generator of ``logits``' device.

    Returns:
        Same shape and dtype as ``logits``; sums to 1 along ``dim``.

    Example:
        >>> g = torch.Generator().manual_seed(0)
        >>> y = gumbel_softmax(torch.randn(2, 5, 4, 4), generator=g)
        >>> bool((y.sum(1) == 1).all()), bool(((y == 0) | (y == 1)).all())
        (True, True)
    """
    if not isinstance(logits, torch.Tensor) or not logits.is_floating_point():
        raise TypeError(f"logits: expected a floating-point tensor, got {type(logits).__name__}")
    tau = check_positive_float(tau, "tau")
    if isinstance(dim, bool) or not isinstance(dim, int) or not -logits.ndim <= dim < logits.ndim:
        raise ValueError(f"dim: expected an int in [-{logits.ndim}, {logits.ndim}), got {dim!r}")
    if generator is not None and not isinstance(generator, torch.Generator):
        raise TypeError(
            f"generator: expected a torch.Generator or None, got {type(generator).__name__}"
        )
    # Draw on the generator's device (a CPU generator serves CUDA or meta logits), then move.
    where = logits.device if generator is None else generator.device
    u = torch.rand(logits.shape, generator=generator, device=where, dtype=logits.dtype)
    u = u.to(logits.device)
    # U = 0 would give -log(-log(0)) = -inf; clamp to the smallest positive normal number.
    gumbels = -torch.log(-torch.log(u.clamp_min(torch.finfo(u.dtype).tiny)))
    soft = torch.softmax((logits + gumbels) / tau, dim=dim)
    if not hard:
        return soft
    one_hot = torch.zeros_like(soft).scatter_(dim, soft.argmax(dim=dim, keepdim=True), 1.0)
    # Straight-through: the value of one_hot, the gradient of soft.
    return one_hot - soft.detach() + soft


class GumbelSoftmax(nn.Module):
    """Module form of :func:`gumbel_softmax` (samples in both training and evaluation mode).

    Args:
        tau: Temperature ``> 0``.
        hard: Straight-through one-hot samples.
        dim: The class dimension.

    Shapes:
        ``logits: [N, K, *]`` (classes along ``dim``) → same shape.

    Example:
        >>> gs = GumbelSoftmax(0.5)
        >>> y = gs(torch.randn(3, 4), generator=torch.Generator().manual_seed(1))
        >>> y.sum(1)
        tensor([1., 1., 1.])
    """

    def __init__(self, tau: float = 1.0, *, hard: bool = True, dim: int = 1) -> None:
        super().__init__()
        self.tau = check_positive_float(tau, "tau")
        self.hard = bool(hard)
        self.dim = dim

    def forward(
        self, logits: torch.Tensor, *, generator: Optional[torch.Generator] = None
    ) -> torch.Tensor:
        """``logits`` (classes along ``dim``) → a sample of the same shape; see
        :func:`gumbel_softmax` for ``generator``."""
        return gumbel_softmax(
            logits, tau=self.tau, hard=self.hard, dim=self.dim, generator=generator
        )

    def extra_repr(self) -> str:
        return f"tau={self.tau:g}, hard={self.hard}, dim={self.dim}"
