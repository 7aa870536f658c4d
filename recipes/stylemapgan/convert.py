"""State dicts of the original StyleMapGAN code (naver-ai/StyleMapGAN ``training/model.py``) ⇄ ours.

One :class:`~ganblocks.convert.StateDictConverter` per network, built from the network itself (its
number of layers), maps the original's keys to ours and back. The generator's (theirs → ours):

* ``mapping_z.{i+1}.weight|bias`` (index 0 is the PixelNorm) → ``mapping.layers.{i}.weight|bias``;
* ``decoder.input.input`` → ``const``;
* ``decoder.convs_latent.{k}.0.weight`` → ``resizer.{k}.weight``; ``….1.bias`` (``….2.bias`` in
  up-sampling layers) → ``resizer.{k}.bias``; ``….1.kernel`` → ``resizer.{k}.resample_filter``
  (÷ 4);
* per styled conv ``{conv}`` (``conv1``, ``convs.{i}.conv1|conv2`` → ``blocks.{i}.conv1|conv2``,
  ``to_rgb``): ``decoder.{conv}.conv.weight`` ``[1, O, I, k, k]`` → ``{conv}.conv.weight``
  ``[O, I, k, k]``; ``decoder.{conv}.conv.gamma|beta.weight|bias`` →
  ``{conv}.modulation.affine.weight|bias`` (γ and β concatenated, γ first);
  ``decoder.{conv}.activate.bias`` → ``{conv}.conv.bias``; ``decoder.{conv}.conv.norm.running_…``
  (BatchNorm2d mode) → ``{conv}.modulation.batch_norm.running_…``;
  ``decoder.convs.{i}.conv1.conv.blur.kernel`` → ``blocks.{i}.conv1.conv.resample_filter`` (÷ 4);
* ``decoder.convs.{i}.skip.0.weight`` → ``blocks.{i}.skip.weight``; ``….skip.1.kernel`` →
  ``blocks.{i}.skip.resample_filter`` (÷ 4).

In the encoder and the discriminator, each ``ConvLayer`` becomes an
:class:`~ganblocks.nn.EqualConv2d` (``from_rgb.0.weight`` + ``from_rgb.1.bias`` →
``from_rgb.weight|bias``), each ``ResBlock`` a ``'resnet'``
:class:`~ganblocks.nn.StyleGAN2DiscriminatorBlock` (``conv1`` → ``conv0``, ``conv2`` →
``conv1``, ``skip``), the discriminator's ``final_conv`` and ``final_linear.0|1`` the epilogue's
``conv``, ``fc`` and ``out``.

**FIR kernels.** The original stores every blur kernel as a buffer (``*.kernel``, ×4 after
up-sampling). Ours are constants derived from ``resample_filter`` and kept out of our state dicts;
loading copies the checkpoint's kernels into the layers (whatever they hold), saving writes the
layers' kernels back, so both directions are exact.

**Biases.** The original's ``FusedLeakyReLU`` bias has no learning-rate multiplier and its
``EqualConv2d`` applies ``lr_mul`` only to up-sampling layers; the networks here use ``lr_mul = 1``
everywhere but the mapping network, as the original does, so every bias is copied as it is.
"""

from __future__ import annotations

import re
from typing import Any, Dict, List, Mapping

import torch
from torch import nn

from ganblocks.convert import (
    Concat,
    Rearrange,
    Rule,
    Scale,
    StateDictConverter,
    StateDictMismatchError,
)

from .layout import NORMALIZE_MODES, stylemapgan_channels

__all__ = [
    "converter_for",
    "discriminator_kwargs",
    "encoder_kwargs",
    "generator_kwargs",
    "load_stylemapgan",
    "save_stylemapgan",
]

_FILTER = "resample_filter"
_UP_KERNEL = Scale(0.25)  # the original's up-sampling kernels carry the gain 2² = 4


def _styled_conv(theirs: str, ours: str, *, up: bool) -> List[Rule]:
    """An original ``StyledConv`` (``ModulatedConv2d`` + ``FusedLeakyReLU``) → StyledConv2d."""
    rules = [
        Rule(f"{theirs}.conv.weight", f"{ours}.conv.weight",
             transform=Rearrange("1 o i kh kw -> o i kh kw")),
        Rule([f"{theirs}.conv.gamma.{{p:weight|bias}}", f"{theirs}.conv.beta.{{p}}"],
             f"{ours}.modulation.affine.{{p}}", transform=Concat(dim=0)),
        Rule(f"{theirs}.activate.bias", f"{ours}.conv.bias"),
        Rule(f"{theirs}.conv.norm.{{s:running_mean|running_var|num_batches_tracked}}",
             f"{ours}.modulation.batch_norm.{{s}}"),
    ]
    if up:
        rules.append(Rule(f"{theirs}.conv.blur.kernel", f"{ours}.conv.{_FILTER}",
                          transform=_UP_KERNEL))
    return rules


def _conv_layer(theirs: str, ours: str, *, down: bool = False, bias: bool = True) -> List[Rule]:
    """An original ``ConvLayer`` ([Blur], EqualConv2d, [FusedLeakyReLU]) → EqualConv2d."""
    i = 0
    rules = []
    if down:
        rules.append(Rule(f"{theirs}.0.kernel", f"{ours}.{_FILTER}"))
        i = 1
    rules.append(Rule(f"{theirs}.{i}.weight", f"{ours}.weight"))
    if bias:
        rules.append(Rule(f"{theirs}.{i + 1}.bias", f"{ours}.bias"))
    return rules


def _res_block(theirs: str, ours: str) -> List[Rule]:
    """An original ``ResBlock`` → a ``'resnet'`` StyleGAN2DiscriminatorBlock."""
    return (
        _conv_layer(f"{theirs}.conv1", f"{ours}.conv0")
        + _conv_layer(f"{theirs}.conv2", f"{ours}.conv1", down=True)
        + _conv_layer(f"{theirs}.skip", f"{ours}.skip", down=True, bias=False)
    )


def _generator_rules(net: nn.Module) -> List[Rule]:
    rules = [
        Rule(f"mapping_z.{i + 1}.{{p:weight|bias}}", f"mapping.layers.{i}.{{p}}")
        for i in range(len(net.mapping.layers))
    ]
    rules.append(Rule("decoder.input.input", "const"))
    for k in range(len(net.resizer)):
        theirs, ours = f"decoder.convs_latent.{k}", f"resizer.{k}"
        if net.resizer[k].up > 1:  # EqualConv2d (transposed), Blur, FusedLeakyReLU
            rules += [
                Rule(f"{theirs}.0.weight", f"{ours}.weight"),
                Rule(f"{theirs}.1.kernel", f"{ours}.{_FILTER}", transform=_UP_KERNEL),
                Rule(f"{theirs}.2.bias", f"{ours}.bias"),
            ]
        else:
            rules += _conv_layer(theirs, ours)
    rules += _styled_conv("decoder.conv1", "conv1", up=False)
    for i in range(len(net.blocks)):
        theirs, ours = f"decoder.convs.{i}", f"blocks.{i}"
        rules += _styled_conv(f"{theirs}.conv1", f"{ours}.conv1", up=True)
        rules += _styled_conv(f"{theirs}.conv2", f"{ours}.conv2", up=False)
        rules += [
            Rule(f"{theirs}.skip.0.weight", f"{ours}.skip.weight"),
            Rule(f"{theirs}.skip.1.kernel", f"{ours}.skip.{_FILTER}", transform=_UP_KERNEL),
        ]
    rules += _styled_conv("decoder.to_rgb", "to_rgb", up=False)
    return rules


def _encoder_rules(net: nn.Module) -> List[Rule]:
    rules = _conv_layer("from_rgb", "from_rgb")
    for i in range(len(net.blocks)):
        rules += _res_block(f"convs.{i}", f"blocks.{i}")
    return rules + _conv_layer("final_conv", "to_style")


def _discriminator_rules(net: nn.Module) -> List[Rule]:
    rules = _conv_layer("convs.0", "from_rgb")
    for i in range(len(net.blocks)):
        rules += _res_block(f"convs.{i + 1}", f"blocks.{i}")
    return rules + _conv_layer("final_conv", "epilogue.conv") + [
        Rule("final_linear.0.{p:weight|bias}", "epilogue.fc.{p}"),
        Rule("final_linear.1.{p:weight|bias}", "epilogue.out.{p}"),
    ]


def converter_for(net: nn.Module) -> StateDictConverter:
    """The converter between the original's layout and ``net``'s (a network of this recipe).

    Example:
        >>> from recipes.stylemapgan import Discriminator
        >>> conv = converter_for(Discriminator(8, low_res_channels=8))
        >>> conv.convert_key("final_linear.0.weight"), conv.convert_key("convs.1.conv2.0.kernel")
        (('epilogue.fc.weight',), ('blocks.0.conv1.resample_filter',))
    """
    rules = {"generator": _generator_rules, "encoder": _encoder_rules,
             "discriminator": _discriminator_rules}.get(getattr(net, "stylemapgan_kind", None))
    if rules is not None:
        return StateDictConverter(rules(net))
    raise TypeError(
        f"net: expected a Generator, Encoder or Discriminator of recipes.stylemapgan, got "
        f"{type(net).__name__}"
    )


def _filters(net: nn.Module, converter: StateDictConverter) -> Dict[str, torch.Tensor]:
    """The FIR kernels of ``net``'s layers that have one in the original, by their names."""
    return {name: buf for name, buf in net.named_buffers()
            if name.rsplit(".", 1)[-1] == _FILTER
            and converter.inverse.convert_key(name) is not None}


def load_stylemapgan(net: nn.Module, state_dict: Mapping[str, torch.Tensor]) -> None:
    """Load the original's ``state_dict`` into ``net`` (a network of this recipe), in place.

    Every key must be claimed and every weight of ``net`` provided with its shape; the FIR kernels
    are copied into the resampling layers.

    Raises:
        ganblocks.convert.StateDictMismatchError: Unknown, missing or misshaped keys, all named
            (in both layouts).
    """
    _reject_checkpoint(state_dict)
    converter = converter_for(net)
    expected: Dict[str, Any] = {k: tuple(v.shape) for k, v in net.state_dict().items()}
    for name, buf in _filters(net, converter).items():
        # A kernel keeps the shape it has in the checkpoint (the original's blur_kernel).
        theirs = converter.inverse.convert_key(name)
        given = state_dict.get(theirs[0]) if theirs else None
        ok = isinstance(given, torch.Tensor) and given.ndim == 2
        expected[name] = tuple(given.shape) if ok else tuple(buf.shape)
    ours = converter.convert(state_dict, expected=expected)
    filters = {k: ours.pop(k) for k in list(ours) if k.rsplit(".", 1)[-1] == _FILTER}
    net.load_state_dict(ours)
    with torch.no_grad():
        for name, kernel in filters.items():
            owner, _, leaf = name.rpartition(".")
            module = net.get_submodule(owner)
            old = getattr(module, leaf)
            setattr(module, leaf, kernel.detach().to(device=old.device, dtype=old.dtype).clone())


def save_stylemapgan(net: nn.Module) -> Dict[str, torch.Tensor]:
    """``net``'s weights and FIR kernels under the original's key names."""
    converter = converter_for(net)
    ours = dict(net.state_dict())
    ours.update({k: v.detach() for k, v in _filters(net, converter).items()})
    return converter.invert(ours)


def _reject_checkpoint(state_dict: Mapping[str, Any]) -> None:
    if not isinstance(state_dict, Mapping):
        raise TypeError(f"state_dict: expected a mapping of key names to tensors, got "
                        f"{type(state_dict).__name__}")
    nets = [k for k in ("g_ema", "generator", "e_ema", "encoder", "discriminator")
            if k in state_dict]
    if nets:
        raise ValueError(
            f"state_dict: this is a whole training checkpoint (it holds {nets}); pass one "
            f"network's state dict, e.g. ckpt['g_ema'] to Generator.from_stylemapgan"
        )


def _count(state_dict: Mapping[str, Any], pattern: str) -> int:
    regex = re.compile(pattern)
    return len({m.group(1) for k in state_dict if (m := regex.fullmatch(k))})


def _need(state_dict: Mapping[str, Any], key: str, network: str) -> torch.Tensor:
    if key not in state_dict:
        raise StateDictMismatchError(
            f"state_dict: no {key!r}; expected the state dict of the original StyleMapGAN "
            f"{network}", missing=[repr(key)]
        )
    return state_dict[key]


def _norm_from(kwargs: Dict[str, Any]) -> None:
    """Accept the original's ``normalize_mode`` for ``norm``."""
    if "normalize_mode" not in kwargs:
        return
    mode = kwargs.pop("normalize_mode")
    if "norm" in kwargs:
        raise TypeError("normalize_mode: give either normalize_mode (the original's name) or "
                        "norm, not both")
    if mode not in NORMALIZE_MODES:
        raise ValueError(
            f"normalize_mode: expected one of {list(NORMALIZE_MODES)}, got {mode!r} (the "
            f"original's 'GroupNorm' fails in its own forward pass)"
        )
    kwargs["norm"] = NORMALIZE_MODES[mode]


def generator_kwargs(state_dict: Mapping[str, Any], kwargs: Mapping[str, Any]) -> Dict[str, Any]:
    """Our :class:`~recipes.stylemapgan.Generator` arguments for the original's ``state_dict``.

    ``kwargs`` win over what the state dict shows: ``size``, ``style_dim``,
    ``latent_spatial_size``, ``mapping_layers``, ``small_generator`` and ``norm='batch'`` (when it
    holds running statistics).
    """
    _reject_checkpoint(state_dict)
    out = dict(kwargs)
    _norm_from(out)
    mapping_in = _need(state_dict, "mapping_z.1.weight", "Generator")
    const = _need(state_dict, "decoder.input.input", "Generator")
    style_dim = int(mapping_in.shape[1])
    latent = int(const.shape[-1])
    blocks = _count(state_dict, r"decoder\.convs\.(\d+)\.skip\.0\.weight")
    resizer_out = [int(state_dict[f"decoder.convs_latent.{k}.0.weight"].shape[0])
                   for k in range(2 + 2 * blocks)
                   if f"decoder.convs_latent.{k}.0.weight" in state_dict]
    # small_generator: every style map has style_dim channels instead of the synthesis' widths
    # (when the widths are style_dim too, both read the same weights the same way).
    widths = [
        stylemapgan_channels(latent << (k // 2),
                             channel_multiplier=out.get("channel_multiplier", 2),
                             low_res_channels=out.get("low_res_channels", 512))
        for k in range(len(resizer_out))
    ]
    inferred = {
        "size": latent * 2**blocks,
        "style_dim": style_dim,
        "latent_spatial_size": latent,
        "mapping_layers": _count(state_dict, r"mapping_z\.(\d+)\.weight"),
        "small_generator": resizer_out != widths and all(c == style_dim for c in resizer_out),
    }
    if any(k.endswith(".conv.norm.running_mean") for k in state_dict):
        inferred["norm"] = "batch"
    return {**inferred, **out}


def encoder_kwargs(state_dict: Mapping[str, Any], kwargs: Mapping[str, Any]) -> Dict[str, Any]:
    """Our :class:`~recipes.stylemapgan.Encoder` arguments for the original's ``state_dict``.

    ``style_dim`` comes from the last conv; ``size`` and ``latent_spatial_size`` differ by the
    number of residual blocks, so one of them is needed (``latent_spatial_size`` defaults to 8).
    """
    _reject_checkpoint(state_dict)
    out = dict(kwargs)
    final = _need(state_dict, "final_conv.0.weight", "Encoder")
    halvings = _count(state_dict, r"convs\.(\d+)\.skip\.1\.weight")
    if "size" in out and "latent_spatial_size" not in out:
        out["latent_spatial_size"] = max(int(out["size"]) >> halvings, 1)
    latent = int(out.get("latent_spatial_size", 8))
    inferred = {"size": latent << halvings, "latent_spatial_size": latent,
                "style_dim": int(final.shape[0])}
    return {**inferred, **out}


def discriminator_kwargs(state_dict: Mapping[str, Any],
                         kwargs: Mapping[str, Any]) -> Dict[str, Any]:
    """Our :class:`~recipes.stylemapgan.Discriminator` arguments for the original's ``state_dict``
    (``size`` from the number of residual blocks)."""
    _reject_checkpoint(state_dict)
    _need(state_dict, "final_linear.1.weight", "Discriminator")
    halvings = _count(state_dict, r"convs\.(\d+)\.skip\.1\.weight")
    return {"size": 4 << halvings, **kwargs}
