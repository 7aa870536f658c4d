"""recipes.stylegan2.convert: the NVlabs key conversion on ganblocks.convert, no import of the
networks, and every NVlabs filter buffer written on export for each architecture."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest
import torch

import recipes.stylegan2.convert as convert
from ganblocks.nn import EqualConv2d
from recipes.stylegan2 import Discriminator, Generator
from recipes.stylegan2.networks import SynthesisBlock, SynthesisLayer


def test_convert_imports_nothing_of_the_networks():
    """networks.py imports convert.py (from_nvlabs / to_nvlabs); never the other way round, not
    even for type checking."""
    tree = ast.parse(Path(convert.__file__).read_text(encoding="utf-8"))
    imported = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.ImportFrom):
            imported.add("." * node.level + (node.module or ""))
            imported.update(alias.name for alias in node.names)
        elif isinstance(node, ast.Import):
            imported.update(alias.name for alias in node.names)
    assert not {name for name in imported if "networks" in name}, imported


def _nets(architecture: str):
    torch.manual_seed(0)
    G = Generator(z_dim=8, c_dim=0, w_dim=8, img_resolution=16, img_channels=3, channel_base=64,
                  channel_max=16, mapping_kwargs={"num_layers": 2}, architecture=architecture)
    D = Discriminator(c_dim=0, img_resolution=16, img_channels=3, channel_base=64,
                      channel_max=16, architecture=architecture)
    return G, D


@pytest.mark.parametrize("architecture", ["orig", "skip", "resnet"])
def test_export_writes_a_filter_for_every_nvlabs_layer_that_has_one(architecture):
    """Reference: the modules whose NVlabs counterparts register ``resample_filter`` (synthesis
    blocks and layers, discriminator blocks, and every 2-D convolution layer)."""
    G, D = _nets(architecture)
    for net, kinds, kind in (
        (G, (SynthesisBlock, SynthesisLayer, EqualConv2d), "G"),
        (D, (type(D.b8), EqualConv2d), "D"),  # b16 and b8 are discriminator blocks
    ):
        expected = {f"{name}.resample_filter" for name, m in net.named_modules()
                    if isinstance(m, kinds) and name}
        exported = convert.to_nvlabs_state_dict(net, prefix_kind=kind)
        assert {k for k in exported if k.endswith("resample_filter")} == expected
        # The export loads back, and its renames are the converter's inverse.
        ours = convert.from_nvlabs_keys(exported, net.state_dict(), kind)
        assert all(torch.equal(ours[k], v) for k, v in net.state_dict().items())


def test_converters_rename_one_to_one():
    G, _ = _nets("skip")
    ours = G.state_dict()
    theirs = convert.NVLABS_G.invert(ours)
    assert len(theirs) == len(ours)
    assert theirs["mapping.fc1.weight"] is ours["mapping.net.layers.1.weight"]
    assert theirs["synthesis.b8.conv0.noise_strength"] is ours["synthesis.b8.conv0.noise.strength"]
    assert convert.NVLABS_G.convert(theirs).keys() == ours.keys()


def test_bad_prefix_kind_and_shape_errors_are_clear():
    G, _ = _nets("skip")
    with pytest.raises(ValueError, match="prefix_kind: expected 'G' or 'D', got 'g'"):
        convert.to_nvlabs_state_dict(G, prefix_kind="g")
    theirs = G.to_nvlabs()
    theirs["synthesis.b8.conv0.weight"] = torch.zeros(1, 1, 3, 3)
    shape = r"'synthesis\.b8\.conv0\.conv\.weight' has \(1, 1, 3, 3\)"
    with pytest.raises(ValueError, match=shape):
        Generator.from_nvlabs(theirs, z_dim=8, c_dim=0, w_dim=8, img_resolution=16,
                              img_channels=3, channel_base=64, channel_max=16,
                              mapping_kwargs={"num_layers": 2}, architecture="skip")
