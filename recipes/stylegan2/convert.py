"""State-dict key conversion between NVlabs' StyleGAN2 networks and :mod:`recipes.stylegan2`.

NVlabs' ``networks_stylegan2.py`` names its tensors after its own modules (``mapping.fc0.weight``,
``synthesis.b8.conv0.affine.bias``, ``synthesis.b8.conv0.noise_strength``, ``b16.conv1.weight``, …).
Ours nest the same tensors inside the :mod:`ganblocks.nn` blocks (``mapping.net.layers.0.weight``,
``synthesis.b8.conv0.conv.affine.bias``, ``synthesis.b8.conv0.noise.strength``, …). The tensors
themselves are identical: both store unscaled weights with the equalised-LR gains applied at run
time, so conversion only renames keys.

Every NVlabs layer also stores its FIR filter ``resample_filter`` whether it resamples or not; the
filters that are used (those of up/down-sampling layers and of the skip image resampling) are
loaded, the others are ignored on load and written as the default ``[1, 3, 3, 1]`` filter on
export.
"""

from __future__ import annotations

import re
from typing import Dict, List, Mapping, Tuple

import torch
from torch import nn

from ganblocks.nn import EqualConv2d
from ganblocks.ops import setup_filter

__all__ = ["from_nvlabs_keys", "load_nvlabs_state_dict", "to_nvlabs_state_dict"]

_Rules = List[Tuple[str, str]]

# (NVlabs pattern, our replacement); applied in order, first match wins, anchored at both ends.
_G_RULES: _Rules = [
    (r"mapping\.w_avg", r"mapping.truncation.w_avg"),
    (r"mapping\.embed\.(weight|bias)", r"mapping.net.embed.\1"),
    (r"mapping\.fc(\d+)\.(weight|bias)", r"mapping.net.layers.\1.\2"),
    (r"synthesis\.b(\d+)\.const", r"synthesis.b\1.const"),
    (r"synthesis\.b(\d+)\.resample_filter", r"synthesis.b\1.torgb.upsample.resample_filter"),
    (
        r"synthesis\.b(\d+)\.(conv[01])\.(weight|affine\.weight|affine\.bias|resample_filter)",
        r"synthesis.b\1.\2.conv.\3",
    ),
    (r"synthesis\.b(\d+)\.(conv[01])\.noise_strength", r"synthesis.b\1.\2.noise.strength"),
    (r"synthesis\.b(\d+)\.(conv[01])\.noise_const", r"synthesis.b\1.\2.noise.const"),
    (r"synthesis\.b(\d+)\.(conv[01])\.bias", r"synthesis.b\1.\2.bias"),
    (
        r"synthesis\.b(\d+)\.torgb\.(weight|affine\.weight|affine\.bias)",
        r"synthesis.b\1.torgb.conv.\2",
    ),
    (r"synthesis\.b(\d+)\.torgb\.bias", r"synthesis.b\1.torgb.bias"),
    (r"synthesis\.b(\d+)\.skip\.(weight|resample_filter)", r"synthesis.b\1.skip.\2"),
]
_D_RULES: _Rules = [
    (r"mapping\.embed\.(weight|bias)", r"mapping.embed.\1"),
    (r"mapping\.fc(\d+)\.(weight|bias)", r"mapping.layers.\1.\2"),
    (r"b(\d+)\.resample_filter", r"b\1.downsample.resample_filter"),
    (
        r"b(\d+)\.(fromrgb|conv0|conv1|conv|skip|fc|out)\.(weight|bias|resample_filter)",
        r"b\1.\2.\3",
    ),
]

# Our key → NVlabs key (the inverse renames).
_G_INVERSE: _Rules = [
    (r"mapping\.truncation\.w_avg", r"mapping.w_avg"),
    (r"mapping\.net\.embed\.(weight|bias)", r"mapping.embed.\1"),
    (r"mapping\.net\.layers\.(\d+)\.(weight|bias)", r"mapping.fc\1.\2"),
    (r"synthesis\.b(\d+)\.torgb\.upsample\.resample_filter", r"synthesis.b\1.resample_filter"),
    (r"synthesis\.b(\d+)\.(conv[01])\.conv\.(.+)", r"synthesis.b\1.\2.\3"),
    (r"synthesis\.b(\d+)\.(conv[01])\.noise\.strength", r"synthesis.b\1.\2.noise_strength"),
    (r"synthesis\.b(\d+)\.(conv[01])\.noise\.const", r"synthesis.b\1.\2.noise_const"),
    (r"synthesis\.b(\d+)\.torgb\.conv\.(.+)", r"synthesis.b\1.torgb.\2"),
    (r"(synthesis\.b\d+\.(?:const|conv[01]\.bias|torgb\.bias|skip\.\w+))", r"\1"),
]
_D_INVERSE: _Rules = [
    (r"mapping\.embed\.(weight|bias)", r"mapping.embed.\1"),
    (r"mapping\.layers\.(\d+)\.(weight|bias)", r"mapping.fc\1.\2"),
    (r"b(\d+)\.downsample\.resample_filter", r"b\1.resample_filter"),
    (r"(b\d+\.(?:fromrgb|conv0|conv1|conv|skip|fc|out)\.(?:weight|bias|resample_filter))", r"\1"),
]

_RULES = {"G": (_G_RULES, _G_INVERSE), "D": (_D_RULES, _D_INVERSE)}


def _rename(key: str, rules: _Rules) -> str | None:
    for pattern, repl in rules:
        if re.fullmatch(pattern, key):
            return re.sub(f"^{pattern}$", repl, key)
    return None


def from_nvlabs_keys(
    state_dict: Mapping[str, torch.Tensor], ours: Mapping[str, torch.Tensor], prefix_kind: str
) -> Dict[str, torch.Tensor]:
    """Rename an NVlabs ``state_dict`` onto the keys of ``ours`` (our module's state dict).

    Raises ``KeyError`` naming the keys that have no counterpart or are missing.
    """
    rules = _RULES[prefix_kind][0]
    out: Dict[str, torch.Tensor] = {}
    unexpected = []
    for key, value in state_dict.items():
        new = _rename(key, rules)
        if new is None:
            unexpected.append(key)
        elif new in ours:
            out[new] = value
        elif not key.endswith("resample_filter"):  # the filters of non-resampling layers
            unexpected.append(key)
    missing = sorted(set(ours) - set(out))
    if unexpected or missing:
        raise KeyError(
            f"state_dict: does not match the network built from these arguments; "
            f"unexpected keys {unexpected[:8]}{' …' if len(unexpected) > 8 else ''}, "
            f"missing keys (original names of ours) "
            f"{[_rename(k, _RULES[prefix_kind][1]) for k in missing[:8]]}"
        )
    for key, value in out.items():
        if tuple(value.shape) != tuple(ours[key].shape):
            raise ValueError(
                f"state_dict: {key!r} has shape {tuple(value.shape)}, the network built from these "
                f"arguments expects {tuple(ours[key].shape)}"
            )
    return out


def load_nvlabs_state_dict(
    model: nn.Module, state_dict: Mapping[str, torch.Tensor], *, prefix_kind: str
) -> None:
    """Load an original-key ``state_dict`` into our ``model`` (``prefix_kind`` ``'G'``/``'D'``)."""
    if not isinstance(state_dict, Mapping):
        raise TypeError(
            f"state_dict: expected a mapping of tensors, got {type(state_dict).__name__}"
        )
    ours = model.state_dict()
    untracked = _untracked_w_avg(model)
    if untracked:  # built with w_avg_beta=None: the original has no w_avg buffer
        ours = {k: v for k, v in ours.items() if k != untracked}
    loaded = from_nvlabs_keys(state_dict, ours, prefix_kind)
    if untracked:
        loaded[untracked] = model.state_dict()[untracked]
    model.load_state_dict(loaded, strict=True)


def _untracked_w_avg(model: nn.Module) -> str:
    mapping = getattr(model, "mapping", None)
    if mapping is not None and getattr(mapping, "track_w_avg", True) is False:
        return "mapping.truncation.w_avg"
    return ""


def _unused_filter_modules(model: nn.Module, prefix_kind: str) -> List[str]:
    """Our module names whose NVlabs counterpart stores a ``resample_filter`` buffer."""
    from .networks import DiscriminatorBlock, SynthesisBlock, SynthesisLayer

    kinds: Tuple[type, ...]
    if prefix_kind == "G":
        kinds = (SynthesisBlock, SynthesisLayer, EqualConv2d)
    else:
        kinds = (DiscriminatorBlock, EqualConv2d)
    return [name for name, m in model.named_modules() if isinstance(m, kinds) and name]


def to_nvlabs_state_dict(model: nn.Module, *, prefix_kind: str) -> Dict[str, torch.Tensor]:
    """Our ``model``'s state dict under NVlabs' key names, with every original buffer present."""
    inverse = _RULES[prefix_kind][1]
    out: Dict[str, torch.Tensor] = {}
    untracked = _untracked_w_avg(model)
    for key, value in model.state_dict().items():
        if key == untracked:
            continue
        new = _rename(key, inverse)
        if new is None:
            raise KeyError(f"model: no original name for our key {key!r}")
        out[new] = value.detach().clone()
    default = setup_filter([1, 3, 3, 1])
    for name in _unused_filter_modules(model, prefix_kind):
        out.setdefault(f"{name}.resample_filter", default.clone())
    return out
