"""State-dict key conversion between NVlabs' StyleGAN2 networks and :mod:`recipes.stylegan2`.

NVlabs' ``networks_stylegan2.py`` names its tensors after its own modules (``mapping.fc0.weight``,
``synthesis.b8.conv0.affine.bias``, ``synthesis.b8.conv0.noise_strength``, ``b16.conv1.weight``, …).
Ours nest the same tensors inside the :mod:`ganblocks.nn` blocks (``mapping.net.layers.0.weight``,
``synthesis.b8.conv0.conv.affine.bias``, ``synthesis.b8.conv0.noise.strength``, …). The tensors
themselves are identical: both store unscaled weights with the equalised-LR gains applied at run
time, so conversion only renames keys: :data:`NVLABS_G` and :data:`NVLABS_D` are the
:class:`ganblocks.convert.StateDictConverter` of each network (NVlabs → ours, and back with
:meth:`~ganblocks.convert.StateDictConverter.invert`).

Every NVlabs layer also stores its FIR filter ``resample_filter`` whether it resamples or not; the
filters that are used (those of up/down-sampling layers and of the skip image resampling) are
loaded, the others are ignored on load (``optional`` rules) and written as the default
``[1, 3, 3, 1]`` filter on export.
"""

from __future__ import annotations

import re
from typing import Dict, Mapping

import torch
from torch import nn

from ganblocks.convert import Rule, StateDictConverter
from ganblocks.ops import setup_filter

__all__ = [
    "NVLABS_D",
    "NVLABS_G",
    "from_nvlabs_keys",
    "load_nvlabs_state_dict",
    "to_nvlabs_state_dict",
]

# Placeholders: ``{r}`` a block's resolution, ``{i}`` a layer index, ``{p}`` a tensor's name.
#: NVlabs generator keys → ours (and back).
NVLABS_G = StateDictConverter(
    [
        Rule("mapping.w_avg", "mapping.truncation.w_avg"),
        Rule("mapping.embed.{p:weight|bias}", "mapping.net.embed.{p}"),
        Rule(r"mapping.fc{i:\d+}.{p:weight|bias}", "mapping.net.layers.{i}.{p}"),
        Rule(r"synthesis.b{r:\d+}.const", "synthesis.b{r}.const"),
        Rule(r"synthesis.b{r:\d+}.resample_filter", "synthesis.b{r}.torgb.upsample.resample_filter",
             optional=True),
        Rule(r"synthesis.b{r:\d+}.conv{i:[01]}.{p:weight|affine\.weight|affine\.bias}",
             "synthesis.b{r}.conv{i}.conv.{p}"),
        Rule(r"synthesis.b{r:\d+}.conv{i:[01]}.resample_filter",
             "synthesis.b{r}.conv{i}.conv.resample_filter", optional=True),
        Rule(r"synthesis.b{r:\d+}.conv{i:[01]}.noise_{p:strength|const}",
             "synthesis.b{r}.conv{i}.noise.{p}"),
        Rule(r"synthesis.b{r:\d+}.conv{i:[01]}.bias", "synthesis.b{r}.conv{i}.bias"),
        Rule(r"synthesis.b{r:\d+}.torgb.{p:weight|affine\.weight|affine\.bias}",
             "synthesis.b{r}.torgb.conv.{p}"),
        Rule(r"synthesis.b{r:\d+}.torgb.bias", "synthesis.b{r}.torgb.bias"),
        Rule(r"synthesis.b{r:\d+}.skip.weight", "synthesis.b{r}.skip.weight"),
        Rule(r"synthesis.b{r:\d+}.skip.resample_filter", "synthesis.b{r}.skip.resample_filter",
             optional=True),
    ]
)

#: NVlabs discriminator keys → ours (and back).
NVLABS_D = StateDictConverter(
    [
        Rule("mapping.embed.{p:weight|bias}", "mapping.embed.{p}"),
        Rule(r"mapping.fc{i:\d+}.{p:weight|bias}", "mapping.layers.{i}.{p}"),
        Rule(r"b{r:\d+}.resample_filter", "b{r}.downsample.resample_filter", optional=True),
        Rule(r"b{r:\d+}.{m:fromrgb|conv0|conv1|conv|skip|fc|out}.{p:weight|bias}", "b{r}.{m}.{p}"),
        Rule(r"b{r:\d+}.{m:fromrgb|conv0|conv1|conv|skip}.resample_filter",
             "b{r}.{m}.resample_filter", optional=True),
    ]
)

_CONVERTERS = {"G": NVLABS_G, "D": NVLABS_D}

# The NVlabs modules that hold a ``resample_filter`` buffer, each recognised by a key it has:
# generator blocks, their two convolution layers and resnet skips; discriminator blocks (they
# always have conv0, the epilogue has not) and their convolutions (fromrgb, conv0/1, skip, and the
# epilogue's conv).
_FILTER_OWNERS = {
    "G": [re.compile(r"(synthesis\.b\d+)\..+"),
          re.compile(r"(synthesis\.b\d+\.(?:conv[01]|skip))\.weight")],
    "D": [re.compile(r"(b\d+)\.conv0\.weight"),
          re.compile(r"(b\d+\.(?:fromrgb|conv0|conv1|skip|conv))\.weight")],
}


def _converter(prefix_kind: str) -> StateDictConverter:
    if prefix_kind not in _CONVERTERS:
        raise ValueError(f"prefix_kind: expected 'G' or 'D', got {prefix_kind!r}")
    return _CONVERTERS[prefix_kind]


def from_nvlabs_keys(
    state_dict: Mapping[str, torch.Tensor], ours: Mapping[str, torch.Tensor], prefix_kind: str
) -> Dict[str, torch.Tensor]:
    """Rename an NVlabs ``state_dict`` onto the keys of ``ours`` (our module's state dict).

    Raises:
        ganblocks.convert.StateDictMismatchError: (a ``KeyError`` and a ``ValueError``) naming the
            keys that have no counterpart, the missing ones (under both names) and shape
            mismatches.
    """
    return _converter(prefix_kind).convert(state_dict, expected=ours)


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


def to_nvlabs_state_dict(model: nn.Module, *, prefix_kind: str) -> Dict[str, torch.Tensor]:
    """Our ``model``'s state dict under NVlabs' key names, with every original buffer present."""
    converter = _converter(prefix_kind)
    untracked = _untracked_w_avg(model)
    ours = {k: v for k, v in model.state_dict().items() if k != untracked}
    out = {k: v.detach().clone() for k, v in converter.invert(ours).items()}
    default = setup_filter([1, 3, 3, 1])
    for pattern in _FILTER_OWNERS[prefix_kind]:
        for key in list(out):
            m = pattern.fullmatch(key)
            if m is not None:
                out.setdefault(f"{m[1]}.resample_filter", default.clone())
    return out
