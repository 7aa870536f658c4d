"""Spectral-norm state dicts: the legacy hook layout ↔ the parametrization layout.

PyTorch has two spectral-norm implementations that store the same three tensors under different
names. The legacy hook :func:`torch.nn.utils.spectral_norm` (used by SPADE, OASIS, BigGAN-style code
and most published checkpoints) stores, for a parameter ``weight`` of module ``m``::

    m.weight_orig   the unnormalised weight W
    m.weight_u      left singular-vector estimate u  [out]
    m.weight_v      right singular-vector estimate v [in·kh·kw]

The parametrization :func:`torch.nn.utils.parametrizations.spectral_norm` (used by the blocks of
:mod:`ganblocks.nn`) stores the same tensors as::

    m.parametrizations.weight.original
    m.parametrizations.weight.0._u
    m.parametrizations.weight.0._v

Both compute ``W / σ`` with ``σ = uᵀ W_mat v`` (``W_mat`` = ``W`` flattened to ``[out, -1]``), and
in eval mode neither updates ``u, v``: the same tensors give the same output. In training mode both
first run a power-iteration step, in opposite orders (legacy: ``v`` then ``u``; parametrization:
``u`` then ``v``), so they agree there once ``u, v`` have converged to the top singular vectors.
So renaming the keys is all it takes to move weights between the two:
:func:`spectral_norm_from_legacy` and :func:`spectral_norm_to_legacy`. :func:`spectral_sigma`
returns the ``σ`` that eval mode divides by.
"""

from __future__ import annotations

import re
from typing import Dict, Mapping, Tuple

import torch

__all__ = ["spectral_norm_from_legacy", "spectral_norm_to_legacy", "spectral_sigma"]

_LEGACY = re.compile(r"^(?P<prefix>(?:.*\.)?)(?P<name>[^.]+)_(?P<part>orig|u|v)$")
_PARAM = re.compile(
    r"^(?P<prefix>(?:.*\.)?)parametrizations\.(?P<name>[^.]+)\.(?P<part>original|0\._u|0\._v)$"
)
_LEGACY_TO_PARAM = {"orig": "original", "u": "0._u", "v": "0._v"}
_PARAM_TO_LEGACY = {v: k for k, v in _LEGACY_TO_PARAM.items()}


def _groups(
    state_dict: Mapping[str, torch.Tensor], pattern: re.Pattern[str], parts: Mapping[str, str]
) -> Dict[Tuple[str, str], Dict[str, str]]:
    """Group the keys matching ``pattern`` by ``(prefix, name)``; keep only complete triples."""
    found: Dict[Tuple[str, str], Dict[str, str]] = {}
    for key in state_dict:
        m = pattern.match(key)
        if m is not None:
            found.setdefault((m["prefix"], m["name"]), {})[m["part"]] = key
    return {base: keys for base, keys in found.items() if set(keys) == set(parts)}


def _check_mapping(state_dict: object) -> Mapping[str, torch.Tensor]:
    if not isinstance(state_dict, Mapping):
        raise TypeError(
            f"state_dict: expected a mapping of names to tensors, got {type(state_dict).__name__}"
        )
    return state_dict


def spectral_norm_from_legacy(state_dict: Mapping[str, torch.Tensor]) -> Dict[str, torch.Tensor]:
    """Rename legacy spectral-norm keys (``X.weight_orig/_u/_v``) to the parametrization layout.

    Only complete triples ``<p>_orig, <p>_u, <p>_v`` are renamed, to
    ``parametrizations.<p>.original``, ``parametrizations.<p>.0._u`` and
    ``parametrizations.<p>.0._v``; every other key, and every tensor, is passed through unchanged.
    The result loads into a module
    whose convolutions carry :func:`torch.nn.utils.parametrizations.spectral_norm`.

    Args:
        state_dict: A state dict written by modules wrapped in :func:`torch.nn.utils.spectral_norm`.

    Returns:
        A new dict (same tensors, new names).

    Example:
        >>> legacy = torch.nn.utils.spectral_norm(torch.nn.Conv2d(3, 4, 3))
        >>> for key in sorted(spectral_norm_from_legacy(legacy.state_dict())):
        ...     print(key)
        bias
        parametrizations.weight.0._u
        parametrizations.weight.0._v
        parametrizations.weight.original
    """
    state_dict = _check_mapping(state_dict)
    rename = {}
    for (prefix, name), keys in _groups(state_dict, _LEGACY, _LEGACY_TO_PARAM).items():
        for part, key in keys.items():
            rename[key] = f"{prefix}parametrizations.{name}.{_LEGACY_TO_PARAM[part]}"
    return {rename.get(k, k): v for k, v in state_dict.items()}


def spectral_norm_to_legacy(state_dict: Mapping[str, torch.Tensor]) -> Dict[str, torch.Tensor]:
    """Rename parametrization spectral-norm keys to the legacy layout (``X.weight_orig/_u/_v``).

    The inverse of :func:`spectral_norm_from_legacy`: the result loads into modules wrapped with
    :func:`torch.nn.utils.spectral_norm`. Other parametrizations (those without ``0._u`` and
    ``0._v``) are left alone.

    Example:
        >>> conv = torch.nn.utils.parametrizations.spectral_norm(torch.nn.Conv2d(3, 4, 3))
        >>> sorted(spectral_norm_to_legacy(conv.state_dict()))
        ['bias', 'weight_orig', 'weight_u', 'weight_v']
    """
    state_dict = _check_mapping(state_dict)
    rename = {}
    for (prefix, name), keys in _groups(state_dict, _PARAM, _PARAM_TO_LEGACY).items():
        for part, key in keys.items():
            rename[key] = f"{prefix}{name}_{_PARAM_TO_LEGACY[part]}"
    return {rename.get(k, k): v for k, v in state_dict.items()}


def spectral_sigma(weight: torch.Tensor, u: torch.Tensor, v: torch.Tensor) -> torch.Tensor:
    """The ``σ = uᵀ W_mat v`` that spectral norm divides the weight by in eval mode.

    Args:
        weight: The unnormalised weight ``[out, ...]`` (flattened to ``[out, -1]``).
        u: ``[out]``.
        v: ``[numel(weight) / out]``.

    Returns:
        A scalar tensor. When ``u, v`` are the top singular vectors of ``W_mat`` this is its largest
        singular value.

    Example:
        >>> w = torch.diag(torch.tensor([3.0, 1.0]))
        >>> spectral_sigma(w, torch.tensor([1.0, 0.0]), torch.tensor([1.0, 0.0]))
        tensor(3.)
    """
    if not isinstance(weight, torch.Tensor) or weight.ndim < 1:
        raise TypeError(f"weight: expected a tensor of rank >= 1, got {weight!r}")
    mat = weight.reshape(weight.shape[0], -1)
    if not isinstance(u, torch.Tensor) or u.shape != (mat.shape[0],):
        raise ValueError(f"u: expected shape ({mat.shape[0]},), got {getattr(u, 'shape', u)}")
    if not isinstance(v, torch.Tensor) or v.shape != (mat.shape[1],):
        raise ValueError(f"v: expected shape ({mat.shape[1]},), got {getattr(v, 'shape', v)}")
    return torch.dot(u, torch.mv(mat, v))
