"""State-dict translation between the SPADE/OASIS implementations' key names and ours.

The reference SPADE layer stores ``mlp_shared.0`` (label conv), ``mlp_gamma`` and ``mlp_beta`` (two
convs) and its parameter-free norm under ``param_free_norm`` (SPADE) or ``first_norm`` (OASIS);
:class:`ganblocks.nn.SPADE` stores ``shared``, one ``gamma_beta`` conv (γ's output channels first,
then β's: the same two convolutions stacked) and ``norm``. Spectral-normed convs use the legacy
``weight_orig/_u/_v`` layout there and the parametrization layout here
(:func:`ganblocks.nn.spectral_norm_from_legacy`). Everything else keeps its name, up to the
renames of whole sub-module prefixes that each recipe lists.

The renames and the γ/β concatenation are :class:`ganblocks.convert.StateDictConverter` rules
(:func:`spade_layer_converter`), so every translation has its exact inverse. All functions return
new dicts holding the same tensors (γ/β are concatenated or split, exactly).
"""

from __future__ import annotations

import functools
import re
import warnings
from typing import Any, Dict, Mapping, Sequence, Tuple

import torch
from torch import nn

from ganblocks.convert import (
    Concat,
    Rule,
    StateDictConverter,
    StateDictMismatchError,
    check_state_dict,
)
from ganblocks.nn import spectral_norm_from_legacy, spectral_norm_to_legacy

__all__ = [
    "load_converted",
    "opt_get",
    "rename_keys",
    "rename_prefixes",
    "spade_layer_converter",
    "spade_layers_from_reference",
    "spade_layers_to_reference",
]

_REQUIRED = object()
# A SPADE layer: ``norm_0``, ``norm_1`` or ``norm_s`` of a residual block, at any depth.
_LAYER = r"{pre:(?:.+\.)?}norm_{n:[01s]}"


def opt_get(opt: Any, name: str, default: Any = _REQUIRED) -> Any:
    """Read option ``name`` from a dict or an ``argparse.Namespace``-like object.

    Example:
        >>> import argparse
        >>> opt_get(argparse.Namespace(ngf=32), "ngf"), opt_get({"ngf": 32}, "z_dim", 64)
        (32, 64)
    """
    if isinstance(opt, Mapping):
        if name in opt:
            return opt[name]
    elif hasattr(opt, name):
        return getattr(opt, name)
    if default is _REQUIRED:
        raise ValueError(f"opt: missing the option {name!r}")
    return default


def rename_keys(
    state_dict: Mapping[str, torch.Tensor], rules: Sequence[Tuple[str, str]]
) -> Dict[str, torch.Tensor]:
    """Apply every ``(pattern, replacement)`` of ``rules`` (:func:`re.sub`) to every key, in order.

    Raises if two keys end up with the same name.

    .. deprecated:: 0.1
        Regular-expression substitutions have no inverse; describe the conversion with
        :class:`ganblocks.convert.StateDictConverter` instead (the recipes do).

    Example:
        >>> import warnings
        >>> with warnings.catch_warnings():
        ...     warnings.simplefilter("ignore", DeprecationWarning)
        ...     rename_keys({"a.conv_s.weight": torch.ones(1)}, [("conv_s", "shortcut")])
        {'a.shortcut.weight': tensor([1.])}
    """
    warnings.warn(
        "rename_keys is deprecated: describe the conversion with "
        "ganblocks.convert.StateDictConverter (it also gives the inverse)",
        DeprecationWarning,
        stacklevel=2,
    )
    out: Dict[str, torch.Tensor] = {}
    for key, value in state_dict.items():
        new = key
        for pattern, repl in rules:
            new = re.sub(pattern, repl, new)
        if new in out:
            raise ValueError(f"state_dict: two keys map to {new!r} (one is {key!r})")
        out[new] = value
    return out


def rename_prefixes(
    state_dict: Mapping[str, torch.Tensor], prefixes: Mapping[str, str]
) -> Dict[str, torch.Tensor]:
    """Rename the keys under ``old.`` to ``new.``, for each ``old → new`` of ``prefixes``.

    Other keys keep their names. A :class:`~ganblocks.convert.StateDictConverter` with one rule
    per prefix (its inverse is ``rename_prefixes`` with the mapping reversed).

    Example:
        >>> rename_prefixes({"head_0.fc.bias": torch.zeros(1)}, {"head_0": "body.0"})
        {'body.0.fc.bias': tensor([0.])}
    """
    return _prefix_converter(tuple(prefixes.items())).convert(state_dict)


@functools.lru_cache(maxsize=32)
def _prefix_converter(prefixes: Tuple[Tuple[str, str], ...]) -> StateDictConverter:
    for old, new in prefixes:
        if not all(isinstance(p, str) and p and "{" not in p and "}" not in p for p in (old, new)):
            raise ValueError(
                f"prefixes: expected non-empty module names without braces, got {old!r}: {new!r}"
            )
    return StateDictConverter(
        [Rule(f"{old}.{{rest:.+}}", f"{new}.{{rest}}") for old, new in prefixes], passthrough=True
    )


@functools.lru_cache(maxsize=8)
def spade_layer_converter(norm_key: str) -> StateDictConverter:
    """The converter of the reference SPADE layers' keys to :class:`ganblocks.nn.SPADE`'s.

    ``mlp_gamma`` and ``mlp_beta`` are concatenated into ``gamma_beta`` (γ's output channels
    first), ``mlp_shared.0`` becomes ``shared`` and ``<norm_key>`` becomes ``norm``, in every
    SPADE layer (``norm_0``, ``norm_1``, ``norm_s`` at any depth); other keys pass through.

    Args:
        norm_key: The name of the reference SPADE layer's norm: ``'param_free_norm'`` (SPADE) or
            ``'first_norm'`` (OASIS).

    Example:
        >>> conv = spade_layer_converter("param_free_norm")
        >>> conv.convert_key("head_0.norm_s.mlp_shared.0.weight")
        ('head_0.norm_s.shared.weight',)
    """
    if not isinstance(norm_key, str) or not re.fullmatch(r"\w+", norm_key):
        raise ValueError(f"norm_key: expected a module name such as 'first_norm', got {norm_key!r}")
    return StateDictConverter(
        [
            Rule(
                [f"{_LAYER}.mlp_gamma.{{p:weight|bias}}", "{pre}norm_{n}.mlp_beta.{p}"],
                "{pre}norm_{n}.gamma_beta.{p}",
                transform=Concat(dim=0),
            ),
            Rule(f"{_LAYER}.mlp_shared.0.{{rest:.+}}", "{pre}norm_{n}.shared.{rest}"),
            Rule(f"{_LAYER}.{norm_key}.{{rest:.+}}", "{pre}norm_{n}.norm.{rest}"),
        ],
        passthrough=True,
    )


def spade_layers_from_reference(
    state_dict: Mapping[str, torch.Tensor], *, norm_key: str
) -> Dict[str, torch.Tensor]:
    """Reference SPADE-layer keys (``mlp_*``, ``<norm_key>``) and legacy spectral norm → ours.

    Args:
        state_dict: A state dict of the reference implementation.
        norm_key: The name of the reference SPADE layer's norm: ``'param_free_norm'`` (SPADE) or
            ``'first_norm'`` (OASIS).

    Example:
        >>> theirs = {"norm_0.mlp_gamma.bias": torch.ones(2),
        ...           "norm_0.mlp_beta.bias": torch.zeros(2),
        ...           "norm_0.first_norm.running_var": torch.ones(2)}
        >>> ours = spade_layers_from_reference(theirs, norm_key="first_norm")
        >>> for key, value in ours.items():
        ...     print(key, value.tolist())
        norm_0.gamma_beta.bias [1.0, 1.0, 0.0, 0.0]
        norm_0.norm.running_var [1.0, 1.0]
        >>> spade_layers_to_reference(ours, norm_key="first_norm").keys() == theirs.keys()
        True
    """
    return spade_layer_converter(norm_key).convert(spectral_norm_from_legacy(state_dict))


def spade_layers_to_reference(
    state_dict: Mapping[str, torch.Tensor], *, norm_key: str
) -> Dict[str, torch.Tensor]:
    """Inverse of :func:`spade_layers_from_reference`: our keys → the reference's."""
    return spectral_norm_to_legacy(spade_layer_converter(norm_key).invert(state_dict))


def load_converted(module: nn.Module, state_dict: Mapping[str, torch.Tensor], what: str) -> None:
    """``module.load_state_dict(state_dict)`` (strict), re-raising mismatches as a clear error.

    Raises:
        ganblocks.convert.StateDictMismatchError: (a ``ValueError``) naming the unexpected and
            missing keys and the shape mismatches.
    """
    try:
        check_state_dict(state_dict, module.state_dict())
    except StateDictMismatchError as err:
        raise StateDictMismatchError(
            f"state_dict: does not fit the {what} built from opt (check the options that set "
            f"its widths and layers); after translating to our key names:\n  {err}",
            unexpected=err.unexpected,
            missing=err.missing,
            mismatched=err.mismatched,
        ) from None
    module.load_state_dict(state_dict, strict=True)
