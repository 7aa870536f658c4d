"""Ablation switches of the discriminator change exactly what they name."""

from __future__ import annotations

import torch
from oco_tiny import tiny_config
from torch.nn.utils import parametrize

from recipes.oco_gan.model import Discriminator


def _convs(D):
    """``{name: (type name, has spectral norm)}`` of every conv of ``D``."""
    out = {}
    for name, m in D.named_modules():
        if isinstance(m, torch.nn.Conv2d) or type(m).__name__ == "EqualConv2d":
            sn = isinstance(m, torch.nn.Conv2d) and parametrize.is_parametrized(m, "weight")
            kind = "EqualConv2d" if type(m).__name__ == "EqualConv2d" else "Conv2d"
            out[name] = (kind, sn)
    return out


def test_table10_switch_touches_only_the_encoder():
    base = _convs(Discriminator(tiny_config().model))
    ablated = _convs(Discriminator(tiny_config("model.d_encoder_spectral_norm=true").model))
    assert base.keys() == ablated.keys()
    encoder = [n for n in base if n.startswith("encoder.")]
    assert encoder
    for name in base:
        if name.startswith("encoder."):
            assert base[name] == ("EqualConv2d", False), name
            assert ablated[name] == ("Conv2d", True), name  # spectral norm on a plain conv
        else:  # the image head keeps its equalised convs, the seg head its spectral norm
            assert ablated[name] == base[name], name
    assert base["head_blocks.0.conv1"] == ("EqualConv2d", False)
    # Parameters outside the encoder keep their names and shapes.
    a = {n: p.shape for n, p in Discriminator(tiny_config().model).named_parameters()
         if not n.startswith("encoder.")}
    b = {n: p.shape for n, p in Discriminator(
        tiny_config("model.d_encoder_spectral_norm=true").model).named_parameters()
         if not n.startswith("encoder.")}
    assert a == b


def test_seg_out_spectral_norm_switch():
    assert _convs(Discriminator(tiny_config().model))["seg_out"] == ("Conv2d", False)
    on = Discriminator(tiny_config("model.seg_out_spectral_norm=true").model)
    assert _convs(on)["seg_out"] == ("Conv2d", True)
