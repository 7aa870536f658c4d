"""Fused bias + activation + gain + clamp, the epilogue of every StyleGAN-family layer.

``bias_act(x, b, dim=1, act='lrelu')`` computes ``clamp(act(x + b) * gain, -clamp, clamp)`` where
``b`` broadcasts along dimension ``dim`` of ``x``. Each activation has a default ``alpha`` (used by
``lrelu`` only) and a default ``gain`` chosen to keep the signal's second moment roughly unchanged.
"""

from __future__ import annotations

from typing import Optional

import torch

from . import _bias_act_native, _dispatch
from ._params import ACTIVATIONS, ActivationSpec, BiasActParams, _as_int, check_gain, check_tensor
from ._reference import bias_act_ref

__all__ = ["ACTIVATIONS", "ActivationSpec", "BiasActParams", "bias_act"]


def _parse(
    x: torch.Tensor,
    b: Optional[torch.Tensor],
    dim: int,
    act: str,
    alpha: Optional[float],
    gain: Optional[float],
    clamp: Optional[float],
) -> BiasActParams:
    check_tensor(x, "x")
    if not isinstance(act, str) or act not in ACTIVATIONS:
        raise ValueError(f"act: unknown activation {act!r}; expected one of {sorted(ACTIVATIONS)}")
    spec = ACTIVATIONS[act]
    dim = _as_int(dim, "dim")
    if b is not None:
        check_tensor(b, "b", ndim=1)
        if not 0 <= dim < x.ndim:
            raise ValueError(f"dim: expected 0 <= dim < x.ndim = {x.ndim}, got {dim}")
        if b.shape[0] != x.shape[dim]:
            raise ValueError(
                f"b: expected {x.shape[dim]} elements (x.shape[{dim}]), got {b.shape[0]}"
            )
    alpha = spec.def_alpha if alpha is None else check_gain(alpha, "alpha")
    gain = spec.def_gain if gain is None else check_gain(gain, "gain")
    if clamp is not None:
        clamp = check_gain(clamp, "clamp")
        if clamp < 0:
            raise ValueError(f"clamp: expected None or a value >= 0, got {clamp!r}")
    return BiasActParams(spec=spec, dim=dim, alpha=float(alpha), gain=float(gain), clamp=clamp)


def bias_act(
    x: torch.Tensor,
    b: Optional[torch.Tensor] = None,
    *,
    dim: int = 1,
    act: str = "linear",
    alpha: Optional[float] = None,
    gain: Optional[float] = None,
    clamp: Optional[float] = None,
    impl: Optional[str] = None,
) -> torch.Tensor:
    """Add a bias, apply an activation, scale by a gain and clamp, in one op.

    ``y = clamp(act(x + b, alpha) * gain, -clamp, clamp)``

    Args:
        x: Input of any shape, e.g. ``[N, C, H, W]``.
        b: Bias ``[x.shape[dim]]``, or ``None``.
        dim: Dimension of ``x`` that ``b`` runs along.
        act: One of :data:`ACTIVATIONS`: ``'linear'``, ``'relu'``, ``'lrelu'``, ``'tanh'``,
            ``'sigmoid'``, ``'elu'``, ``'selu'``, ``'softplus'``, ``'swish'``.
        alpha: Negative slope of ``lrelu`` (default 0.2); ignored by the other activations.
        gain: Scale after the activation; ``None`` is the activation's default (``sqrt(2)`` for
            relu, lrelu and swish, 1 otherwise).
        clamp: Clamp the output to ``[-clamp, clamp]`` after the gain; ``None`` disables it.
        impl: ``'ref'``, ``'native'`` (``'cuda'`` is accepted as NVlabs' spelling of it) or
            ``None``: native when built, else ref; on CPU, tensors under
            ``SMALL_FORWARD`` elements (``SMALL_WITH_GRAD`` when a gradient is recorded)
            take ref, which is faster there (StyleGAN's 4x4 and 8x8 layers).

    Returns:
        Same shape and dtype as ``x``.

    Example:
        >>> x = torch.tensor([[-1.0, 2.0]])
        >>> bias_act(x, torch.tensor([0.5, -0.5]), act='lrelu')
        tensor([[-0.1414,  2.1213]])
    """
    p = _parse(x, b, dim, act, alpha, gain, clamp)
    if impl is None and _ref_is_faster(x, b):  # checked first: these calls are the cheapest
        return bias_act_ref(x, b, p)
    if _dispatch.resolve_impl(impl, x) == "native":
        return _bias_act_native.bias_act(x, b, p)
    return bias_act_ref(x, b, p)


#: CPU sizes (elements of ``x``) below which ``impl=None`` takes the reference path: there the
#: custom op's fixed per-call cost (dispatcher, and the Python autograd formula when a gradient
#: is recorded) outweighs the kernel's speed. Measured with ``benchmarks/ops.py --small-only``
#: and ``--sweep`` on a quiet machine (see docs/performance.rst): the native forward wins from
#: about 2**16 elements (0.93x at 2**15, 1.29x at 2**16), forward+backward from about 2**17
#: (0.91x at 2**16, 1.19x at 2**17).
SMALL_FORWARD = 1 << 16
SMALL_WITH_GRAD = 1 << 17


def _ref_is_faster(x: torch.Tensor, b: Optional[torch.Tensor]) -> bool:
    # Ordered cheapest first: this runs on every impl=None call, and on the small layers it
    # decides in two attribute reads.
    if not x.is_cpu:
        return False
    n = x.numel()
    if n < SMALL_FORWARD:
        return True
    if n >= SMALL_WITH_GRAD:
        return False
    return torch.is_grad_enabled() and (x.requires_grad or (b is not None and b.requires_grad))
