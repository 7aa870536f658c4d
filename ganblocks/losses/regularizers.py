r"""Gradient penalties and the lazy-regularisation schedule.

R1 (Mescheder et al., 2018) penalises the discriminator's gradient on real data:

.. math:: R_1 = \frac{\gamma}{2}\, \mathbb{E}_x \bigl\lVert \nabla_x D(x) \bigr\rVert^2 .

:func:`r1_penalty` returns the per-sample squared norm :math:`\lVert\nabla_x D(x)\rVert^2`; the
trainer multiplies its mean by :math:`\gamma/2`. Lazy regularisation (StyleGAN2) evaluates the
penalty only every :math:`k`-th discriminator step, as a separate optimiser step, and multiplies
it by :math:`k` so its average strength is unchanged. Because the optimiser then takes
:math:`k + 1` steps where the unregularised schedule took :math:`k`, Adam's learning rate and betas
are corrected with :math:`c = k / (k + 1)`: :math:`\text{lr} \to c \cdot \text{lr}`,
:math:`\beta_i \to \beta_i^{\,c}`.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Tuple

import torch

__all__ = ["LazyRegularizer", "lazy_adam_params", "r1_penalty"]


def r1_penalty(
    logits: torch.Tensor, inputs: torch.Tensor, *, create_graph: bool = True
) -> torch.Tensor:
    """Per-sample squared gradient norm ``‖∂(Σ logits)/∂inputs_b‖²``.

    Summing the logits before differentiating is exact as long as sample ``b``'s logits depend on
    ``inputs[b]`` only (true for a discriminator without cross-sample layers such as batch norm or
    minibatch-stddev, where the penalty then mixes samples, as in StyleGAN2).

    Args:
        logits: Discriminator output on ``inputs``, any shape (e.g. ``[B]`` or ``[B, 1]``).
        inputs: ``[B, ...]`` tensor with ``requires_grad=True`` that produced ``logits``.
        create_graph: Keep the graph of the gradient so the penalty can be minimised (double
            backward). ``False`` only to monitor it.

    Returns:
        ``[B]`` tensor.

    Example:
        >>> x = torch.tensor([[1.0, 2.0], [3.0, 4.0]], requires_grad=True)
        >>> logits = (x**2).sum(dim=1)  # gradient 2x
        >>> r1_penalty(logits, x)
        tensor([ 20., 100.], grad_fn=<SumBackward1>)
    """
    if not isinstance(logits, torch.Tensor) or not logits.is_floating_point():
        raise TypeError("logits: expected a floating-point torch.Tensor")
    if not isinstance(inputs, torch.Tensor) or not inputs.is_floating_point():
        raise TypeError("inputs: expected a floating-point torch.Tensor")
    if inputs.ndim < 1:
        raise ValueError("inputs: expected a batched tensor [B, ...], got a scalar")
    if not inputs.requires_grad:
        raise ValueError(
            "inputs: expected requires_grad=True (call inputs.requires_grad_() before D)"
        )
    if not logits.requires_grad:
        raise ValueError("logits: expected a tensor computed from inputs (it has no grad_fn)")
    (grad,) = torch.autograd.grad(
        logits.sum(), inputs, create_graph=create_graph, allow_unused=True
    )
    if grad is None:
        raise ValueError("inputs: logits do not depend on inputs; pass the tensor fed to D")
    return grad.square().reshape(grad.shape[0], -1).sum(dim=1)  # [B] inputs too


def _check_interval(interval: int) -> int:
    if isinstance(interval, bool) or not isinstance(interval, int) or interval < 1:
        raise ValueError(f"interval: expected a positive int, got {interval!r}")
    return interval


def lazy_adam_params(
    lr: float, betas: Tuple[float, float], interval: int
) -> Tuple[float, Tuple[float, float]]:
    """Adam hyper-parameters corrected for a regulariser run every ``interval`` steps.

    With ``c = interval / (interval + 1)`` returns ``(lr · c, (β₁^c, β₂^c))``.

    Args:
        lr: Learning rate of the unregularised schedule.
        betas: Adam's ``(β₁, β₂)``.
        interval: Regularisation interval ``k``.

    Returns:
        ``(lr, betas)`` to pass to ``torch.optim.Adam``.

    Example:
        >>> lr, betas = lazy_adam_params(0.002, (0.0, 0.99), 16)
        >>> round(lr, 8), round(betas[1], 6)
        (0.00188235, 0.990585)
    """
    _check_interval(interval)
    if not lr > 0:
        raise ValueError(f"lr: expected a positive learning rate, got {lr!r}")
    if len(betas) != 2 or not all(0.0 <= b < 1.0 for b in betas):
        raise ValueError(f"betas: expected two values in [0, 1), got {betas!r}")
    c = interval / (interval + 1)
    return lr * c, (betas[0] ** c, betas[1] ** c)


@dataclass(frozen=True)
class LazyRegularizer:
    """Schedule of a lazily evaluated regulariser: run on every ``interval``-th step, scaled by it.

    Args:
        interval: Evaluate the regulariser when ``step % interval == 0``; 1 means every step.

    Example:
        >>> lazy = LazyRegularizer(interval=16)
        >>> [step for step in range(40) if lazy.is_due(step)], lazy.weight
        ([0, 16, 32], 16.0)
        >>> lr, betas = lazy.adam_params(0.002, (0.0, 0.99))
    """

    interval: int = 16

    def __post_init__(self) -> None:
        _check_interval(self.interval)

    def is_due(self, step: int) -> bool:
        """Whether the regulariser runs at (0-based) optimiser step ``step``."""
        if isinstance(step, bool) or not isinstance(step, int) or step < 0:
            raise ValueError(f"step: expected a non-negative int, got {step!r}")
        return step % self.interval == 0

    @property
    def weight(self) -> float:
        """Factor on the regulariser when it runs (``interval``), keeping its average strength."""
        return float(self.interval)

    def adam_params(
        self, lr: float, betas: Tuple[float, float]
    ) -> Tuple[float, Tuple[float, float]]:
        """:func:`lazy_adam_params` with this schedule's interval."""
        return lazy_adam_params(lr, betas, self.interval)
