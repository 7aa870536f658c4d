"""MappingNetwork and StyleMapMapping: structure, shapes, PixelNorm in front, map layout."""

from __future__ import annotations

import pytest
import torch
from hypothesis import given
from hypothesis import strategies as st

from ganblocks.nn import EqualLinear, MappingNetwork, StyleMapMapping


def layers_of(module):
    return [m for m in module.modules() if isinstance(m, EqualLinear)]


@given(
    z_dim=st.integers(1, 16),
    w_dim=st.integers(1, 16),
    num_layers=st.integers(1, 4),
    lr_mul=st.sampled_from([0.01, 1.0]),
    n=st.integers(1, 4),
)
def test_mapping_network_structure_and_shape(z_dim, w_dim, num_layers, lr_mul, n):
    net = MappingNetwork(z_dim, w_dim, num_layers=num_layers, lr_mul=lr_mul)
    layers = layers_of(net)
    assert len(layers) == num_layers
    assert layers[0].in_features == z_dim and layers[-1].out_features == w_dim
    assert all(layer.lr_mul == lr_mul and layer.activation == "lrelu" for layer in layers)
    assert net(torch.randn(n, z_dim)).shape == (n, w_dim)


def test_mapping_network_is_layers_after_pixel_norm():
    torch.manual_seed(0)
    net = MappingNetwork(8, 6, num_layers=3).double()
    z = torch.randn(5, 8, dtype=torch.float64)
    h = z / torch.sqrt(z.square().mean(1, keepdim=True) + 1e-8)
    for layer in layers_of(net):
        h = layer(h)
    torch.testing.assert_close(net(z), h)
    # PixelNorm first: the output ignores the latent's scale.
    torch.testing.assert_close(net(7.0 * z), net(z))


@given(
    z_dim=st.integers(1, 16),
    style_channels=st.integers(1, 8),
    size=st.one_of(st.integers(1, 6), st.tuples(st.integers(1, 6), st.integers(1, 12))),
    num_layers=st.integers(1, 3),
    n=st.integers(1, 3),
)
def test_style_map_mapping_shape(z_dim, style_channels, size, num_layers, n):
    net = StyleMapMapping(z_dim, style_channels, size, num_layers=num_layers)
    h, w = (size, size) if isinstance(size, int) else size
    layers = layers_of(net)
    assert len(layers) == num_layers
    assert layers[-1].out_features == style_channels * h * w
    assert all(layer.in_features == z_dim for layer in layers)
    assert net(torch.randn(n, z_dim)).shape == (n, style_channels, h, w)


def test_style_map_is_channel_major_reshape_of_last_layer():
    torch.manual_seed(0)
    net = StyleMapMapping(8, 3, (2, 4), num_layers=2).double()
    z = torch.randn(2, 8, dtype=torch.float64)
    flat = []
    handle = layers_of(net)[-1].register_forward_hook(lambda m, i, o: flat.append(o))
    out = net(z)
    handle.remove()
    c, i, j = 2, 1, 3
    torch.testing.assert_close(out[:, c, i, j], flat[0][:, c * 8 + i * 4 + j])
    assert StyleMapMapping().forward(torch.randn(1, 64)).shape == (1, 64, 8, 8)


def test_conditional_mapping_concatenates_normalised_latent_and_label_embedding():
    torch.manual_seed(0)
    net = MappingNetwork(6, 8, num_layers=2, c_dim=3, embed_features=5)
    z, c = torch.randn(4, 6), torch.eye(3)[[0, 1, 2, 0]]
    x = torch.cat([net.norm(z), net.norm(net.embed(c))], dim=1)
    torch.testing.assert_close(net(z, c), net.layers(x))
    assert net.layers[0].in_features == 11
    label_only = MappingNetwork(0, 8, num_layers=1, c_dim=3)
    torch.testing.assert_close(
        label_only(None, c), label_only.layers(label_only.norm(label_only.embed(c)))
    )
    with pytest.raises(ValueError, match="c: expected"):
        net(z)
    with pytest.raises(ValueError, match="z_dim"):
        MappingNetwork(0, 8)
