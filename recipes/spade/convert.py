"""State-dict translation between the SPADE/OASIS implementations' key names and ours.

The reference SPADE layer stores ``mlp_shared.0`` (label conv), ``mlp_gamma`` and ``mlp_beta`` (two
convs) and its parameter-free norm under ``param_free_norm`` (SPADE) or ``first_norm`` (OASIS);
:class:`ganblocks.nn.SPADE` stores ``shared``, one ``gamma_beta`` conv (γ's output channels first,
then β's: the same two convolutions stacked) and ``norm``. Spectral-normed convs use the legacy
``weight_orig/_u/_v`` layout there and the parametrization layout here
(:func:`ganblocks.nn.spectral_norm_from_legacy`). Everything else keeps its name, up to the
renames of whole sub-module prefixes that each recipe lists.

All functions return new dicts holding the same tensors (γ/β are concatenated or split, exactly).
"""

from __future__ import annotations

import re
from typing import Any, Dict, Mapping, Sequence, Tuple

import torch
from torch import nn

from ganblocks.nn import spectral_norm_from_legacy, spectral_norm_to_legacy

__all__ = [
    "load_converted",
    "opt_get",
    "rename_keys",
    "rename_prefixes",
    "spade_layers_from_reference",
    "spade_layers_to_reference",
]

_REQUIRED = object()
_SPADE_LAYER = r"(?P<layer>(?:^|.*\.)norm_[01s])\."


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

    Example:
        >>> rename_keys({"a.conv_s.weight": torch.ones(1)}, [("conv_s", "shortcut")])
        {'a.shortcut.weight': tensor([1.])}
    """
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

    Example:
        >>> rename_prefixes({"head_0.fc.bias": torch.zeros(1)}, {"head_0": "body.0"})
        {'body.0.fc.bias': tensor([0.])}
    """
    rules = [(rf"^{re.escape(old)}\.", f"{new}.") for old, new in prefixes.items()]
    out: Dict[str, torch.Tensor] = {}
    for key, value in state_dict.items():
        new = key
        for pattern, repl in rules:
            new, hits = re.subn(pattern, repl, new)
            if hits:
                break
        out[new] = value
    return out


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
        norm_0.norm.running_var [1.0, 1.0]
        norm_0.gamma_beta.bias [1.0, 1.0, 0.0, 0.0]
        >>> spade_layers_to_reference(ours, norm_key="first_norm").keys() == theirs.keys()
        True
    """
    sd = dict(spectral_norm_from_legacy(state_dict))
    for key in [k for k in sd if re.fullmatch(_SPADE_LAYER + r"mlp_gamma\.(weight|bias)", k)]:
        beta_key = key.replace(".mlp_gamma.", ".mlp_beta.")
        if beta_key not in sd:
            raise ValueError(f"state_dict: {key!r} has no matching {beta_key!r}")
        gamma, beta = sd.pop(key), sd.pop(beta_key)
        sd[key.replace(".mlp_gamma.", ".gamma_beta.")] = torch.cat([gamma, beta], dim=0)
    return rename_keys(
        sd,
        [
            (_SPADE_LAYER + r"mlp_shared\.0\.", r"\g<layer>.shared."),
            (_SPADE_LAYER + re.escape(norm_key) + r"\.", r"\g<layer>.norm."),
        ],
    )


def spade_layers_to_reference(
    state_dict: Mapping[str, torch.Tensor], *, norm_key: str
) -> Dict[str, torch.Tensor]:
    """Inverse of :func:`spade_layers_from_reference`: our keys → the reference's."""
    sd = rename_keys(
        spectral_norm_to_legacy(state_dict),
        [
            (_SPADE_LAYER + r"shared\.", r"\g<layer>.mlp_shared.0."),
            (_SPADE_LAYER + r"norm\.", rf"\g<layer>.{norm_key}."),
        ],
    )
    for key in [k for k in sd if re.fullmatch(_SPADE_LAYER + r"gamma_beta\.(weight|bias)", k)]:
        gamma, beta = sd.pop(key).chunk(2, dim=0)
        sd[key.replace(".gamma_beta.", ".mlp_gamma.")] = gamma
        sd[key.replace(".gamma_beta.", ".mlp_beta.")] = beta
    return sd


def load_converted(module: nn.Module, state_dict: Mapping[str, torch.Tensor], what: str) -> None:
    """``module.load_state_dict(state_dict)`` (strict), re-raising mismatches as a clear error."""
    try:
        module.load_state_dict(state_dict, strict=True)
    except RuntimeError as err:
        raise ValueError(
            f"state_dict: does not fit the {what} built from opt (check the options that set "
            f"its widths and layers); after translating to our key names:\n{err}"
        ) from None
