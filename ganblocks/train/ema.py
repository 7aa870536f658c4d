"""Exponential moving average of a model's parameters, with a ramp-up."""

from __future__ import annotations

import copy
from typing import Any, Dict

import torch
from torch import nn

__all__ = ["ExponentialMovingAverage"]


class ExponentialMovingAverage(nn.Module):
    """Keeps ``shadow = β·shadow + (1 − β)·model`` after every step.

    During the first ``rampup_steps`` updates the decay is ``min(decay, (1 + t) / (10 + t))`` so
    that the average is not frozen at the random initial weights. Buffers (e.g. spectral-norm
    vectors) are copied, not averaged.

    Args:
        model: The trained module; a deep copy becomes the average (``.shadow``), in eval mode
            and without gradients.
        decay: β once the ramp-up is over.
        rampup_steps: Length of the ramp-up in updates (0 disables it).

    Example:
        >>> net = nn.Linear(2, 2)
        >>> ema = ExponentialMovingAverage(net, decay=0.9, rampup_steps=0)
        >>> with torch.no_grad():
        ...     _ = net.weight.add_(1.0)
        >>> ema.update(net)
        >>> torch.allclose(ema.shadow.weight, net.weight - 0.9)
        True
    """

    def __init__(self, model: nn.Module, *, decay: float = 0.999, rampup_steps: int = 0) -> None:
        super().__init__()
        if not 0.0 <= decay < 1.0:
            raise ValueError(f"decay: expected a value in [0, 1), got {decay}")
        if rampup_steps < 0:
            raise ValueError(f"rampup_steps: expected >= 0, got {rampup_steps}")
        self.decay = float(decay)
        self.rampup_steps = int(rampup_steps)
        self.shadow = copy.deepcopy(model).eval().requires_grad_(False)
        self.num_updates = 0

    def current_decay(self) -> float:
        t = self.num_updates
        if t < self.rampup_steps:
            return min(self.decay, (1.0 + t) / (10.0 + t))
        return self.decay

    @torch.no_grad()
    def update(self, model: nn.Module) -> None:
        beta = self.current_decay()
        for p_ema, p in zip(self.shadow.parameters(), model.parameters()):
            p_ema.lerp_(p.detach().to(p_ema.dtype), 1.0 - beta)
        for b_ema, b in zip(self.shadow.buffers(), model.buffers()):
            b_ema.copy_(b)
        self.num_updates += 1

    def get_extra_state(self) -> Dict[str, Any]:
        return {"num_updates": self.num_updates}

    def set_extra_state(self, state: Dict[str, Any]) -> None:
        self.num_updates = int(state["num_updates"])

    def forward(self, *args: Any, **kwargs: Any) -> Any:
        return self.shadow(*args, **kwargs)
