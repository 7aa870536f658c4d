"""Mapping networks against a reference written from the spec with plain torch ops.

The reference does not read the layers' gains: it applies the equalised-LR rule itself
(effective weight ``W · lr_mul / sqrt(fan_in)``, effective bias ``b · lr_mul``), PixelNorm
``z / sqrt(mean(z²) + 1e-8)`` and ``lrelu(0.2)·√2`` after every layer, with the documented defaults
(8 layers, ``lr_mul = 0.01``; StyleMapGAN's 64-d ``z`` → 64×8×8 map).
"""

from __future__ import annotations

import math

import pytest
import torch
import torch.nn.functional as F

from ganblocks.nn import EqualLinear, MappingNetwork, StyleMapMapping

SPEC_LR_MUL = 0.01  # OCO_GAN_SPEC §2 / StyleGAN: mapping layers learn 100× slower


def pixel_norm(z: torch.Tensor) -> torch.Tensor:
    return z / torch.sqrt(z.square().mean(dim=1, keepdim=True) + 1e-8)


def mlp_ref(linears, x: torch.Tensor, lr_mul: float) -> torch.Tensor:
    for layer in linears:
        fan_in = layer.weight.shape[1]
        x = F.linear(x, layer.weight * (lr_mul / math.sqrt(fan_in)), layer.bias * lr_mul)
        x = F.leaky_relu(x, 0.2) * math.sqrt(2.0)
    return x


def linears(module) -> list:
    return [m for m in module.modules() if isinstance(m, EqualLinear)]


def randomise_biases(module, gen):
    with torch.no_grad():
        for layer in linears(module):
            layer.bias.copy_(torch.randn(layer.bias.shape, generator=gen, dtype=layer.bias.dtype))


def test_mapping_network_defaults_match_reference():
    gen = torch.Generator().manual_seed(0)
    torch.manual_seed(0)
    net = MappingNetwork(6, 5).double()
    randomise_biases(net, gen)
    layers = linears(net)
    assert len(layers) == 8
    assert [tuple(m.weight.shape) for m in layers] == [(5, 6)] + [(5, 5)] * 7
    z = torch.randn(7, 6, generator=gen, dtype=torch.float64) * 3
    torch.testing.assert_close(net(z), mlp_ref(layers, pixel_norm(z), SPEC_LR_MUL))


def test_mapping_network_hidden_width_and_lr_mul():
    gen = torch.Generator().manual_seed(1)
    net = MappingNetwork(4, 3, num_layers=3, hidden_dim=9, lr_mul=0.5).double()
    randomise_biases(net, gen)
    layers = linears(net)
    assert [tuple(m.weight.shape) for m in layers] == [(9, 4), (9, 9), (3, 9)]
    z = torch.randn(5, 4, generator=gen, dtype=torch.float64)
    torch.testing.assert_close(net(z), mlp_ref(layers, pixel_norm(z), 0.5))


def test_mapping_output_ignores_the_scale_of_z():
    """PixelNorm first: z and c·z (c > 0) give the same style."""
    torch.manual_seed(2)
    net = MappingNetwork(8, 8, num_layers=2).double()
    z = torch.randn(4, 8, dtype=torch.float64)
    # equal up to PixelNorm's eps (1e-8 against a mean square of about 1 or 1/16)
    torch.testing.assert_close(net(z * 37.0), net(z), rtol=1e-5, atol=1e-6)
    torch.testing.assert_close(net(z * 0.25), net(z), rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize("size", [(2, 3), (3, 1)])
def test_style_map_layout_is_channel_major(size):
    """out[n, c, i, j] = last layer's output[n, c·h·w + i·w + j], written as explicit indexing."""
    h, w = size
    gen = torch.Generator().manual_seed(3)
    net = StyleMapMapping(5, 4, size, num_layers=3).double()
    randomise_biases(net, gen)
    layers = linears(net)
    assert [tuple(m.weight.shape) for m in layers] == [(5, 5), (5, 5), (4 * h * w, 5)]
    z = torch.randn(3, 5, generator=gen, dtype=torch.float64)
    flat = mlp_ref(layers, pixel_norm(z), SPEC_LR_MUL)
    expected = torch.empty(3, 4, h, w, dtype=torch.float64)
    for c in range(4):
        for i in range(h):
            for j in range(w):
                expected[:, c, i, j] = flat[:, c * h * w + i * w + j]
    out = net(z)
    assert out.shape == (3, 4, h, w)
    torch.testing.assert_close(out, expected)


def test_style_map_mapping_defaults_are_stylemapgan():
    """64-d z → 8 layers (7 of width 64, the last 64 → 64·8·8) → a 64×8×8 map, lr_mul 0.01."""
    gen = torch.Generator().manual_seed(4)
    net = StyleMapMapping().double()
    randomise_biases(net, gen)
    layers = linears(net)
    assert [tuple(m.weight.shape) for m in layers] == [(64, 64)] * 7 + [(64 * 64, 64)]
    z = torch.randn(2, 64, generator=gen, dtype=torch.float64)
    expected = mlp_ref(layers, pixel_norm(z), SPEC_LR_MUL).reshape(2, 64, 8, 8)
    torch.testing.assert_close(net(z), expected)


def test_mapping_layers_learn_slower_by_lr_mul():
    """With one SGD step of size lr, the effective weight of a layer with lr_mul moves
    lr_mul² times as far as the same layer's with lr_mul = 1 (equalised LR's purpose)."""
    z = torch.randn(16, 4, generator=torch.Generator().manual_seed(5), dtype=torch.float64)
    moves = []
    for lr_mul in (1.0, None):
        torch.manual_seed(6)
        net = (MappingNetwork(4, 4, num_layers=1) if lr_mul is None
               else MappingNetwork(4, 4, num_layers=1, lr_mul=lr_mul)).double()
        layer = linears(net)[0]
        with torch.no_grad():  # same effective weight in both nets
            layer.weight.copy_(torch.ones(4, 4, dtype=torch.float64) * 2.0 / layer.weight_gain)
        before = (layer.weight * layer.weight_gain).detach().clone()
        net(z).square().sum().backward()
        with torch.no_grad():
            layer.weight -= 1e-3 * layer.weight.grad
        moves.append(((layer.weight * layer.weight_gain) - before).norm().item())
    assert moves[1] / moves[0] == pytest.approx(SPEC_LR_MUL**2, rel=1e-6)


@pytest.mark.parametrize(
    ("make", "exc", "match"),
    [
        (lambda: MappingNetwork(0, 4), ValueError, "z_dim"),
        (lambda: MappingNetwork(4, 0), ValueError, "w_dim"),
        (lambda: MappingNetwork(4, 4.0), TypeError, "w_dim"),
        (lambda: MappingNetwork(4, 4, hidden_dim=0), ValueError, "hidden_dim"),
        (lambda: StyleMapMapping(0, 4), ValueError, "z_dim"),
        (lambda: StyleMapMapping(4, 0), ValueError, "style_dim"),
        (lambda: StyleMapMapping(4, 4, (0, 2)), ValueError, "size"),
        (lambda: StyleMapMapping(4, 4, num_layers=0), ValueError, "num_layers"),
    ],
)
def test_mapping_arguments_are_checked_by_name(make, exc, match):
    with pytest.raises(exc, match=match):
        make()


def test_mapping_inputs_are_checked_by_name():
    with pytest.raises(ValueError, match=r"^z: "):
        MappingNetwork(4, 4)(torch.randn(2, 4, 1))
    with pytest.raises(ValueError, match=r"^z: "):
        StyleMapMapping(4, 4, (2, 2))(torch.randn(2, 5))
    with pytest.raises(ValueError, match=r"^z: "):
        StyleMapMapping(4, 4, (2, 2))(torch.randn(4))
