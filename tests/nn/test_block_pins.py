"""Fixed-weights golden outputs of every public block of ganblocks.nn (issue 23).

A checkpoint is a state dict: what it *means* is the output a block computes from it. Each case
below builds a block with small sizes, loads a stored state dict (float64 values drawn once from a
seeded generator, with ``strict=True``, so a renamed, added or reshaped entry fails) and compares
its output on a stored input with the stored output. A change of layout (the channel order of a
style map, the order of concatenated branches, which weight a key names) or of a default (a rate,
a gain, a filter, a norm) changes the output and fails here, even where a reference test that
reuses the block's own sub-layers cannot see it.

Where an independent derivation is short, the golden output is also checked against plain
``torch.nn.functional`` code written here (mapping networks, ASPP, ToRGB, blur/resampling), so the
stored numbers are not merely whatever the code printed once.

Regenerate (only for an intended change of meaning, and say so in the commit)::

    python tests/nn/test_block_pins.py
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import Callable, Dict, Tuple

import pytest
import torch
import torch.nn.functional as F
from torch import nn

import ganblocks.nn as gn

GOLDEN = Path(__file__).resolve().parent.parent / "golden" / "pins_nn.pt"
SQRT2 = math.sqrt(2.0)


def _randn(gen: torch.Generator, *shape: int) -> torch.Tensor:
    return torch.randn(*shape, generator=gen, dtype=torch.float64)


# name -> (factory, inputs(gen) -> (args, kwargs)); sizes are small, shapes non-square.
Case = Tuple[Callable[[], nn.Module], Callable[[torch.Generator], Tuple[tuple, dict]]]


def _label(gen: torch.Generator, n: int, c: int, h: int, w: int) -> torch.Tensor:
    ids = torch.randint(0, c, (n, h, w), generator=gen)
    return F.one_hot(ids, c).permute(0, 3, 1, 2).to(torch.float64)


CASES: Dict[str, Case] = {
    "EqualLinear": (
        lambda: gn.EqualLinear(5, 4, lr_mul=0.5, activation="lrelu"),
        lambda g: ((_randn(g, 3, 5),), {}),
    ),
    "EqualConv2d": (lambda: gn.EqualConv2d(3, 4, 3), lambda g: ((_randn(g, 2, 3, 5, 7),), {})),
    "EqualConv2d_up": (
        lambda: gn.EqualConv2d(3, 2, 3, up=2, activation="lrelu"),
        lambda g: ((_randn(g, 2, 3, 4, 5),), {}),
    ),
    "EqualConv2d_down": (
        lambda: gn.EqualConv2d(3, 2, 3, down=2),
        lambda g: ((_randn(g, 2, 3, 8, 6),), {}),
    ),
    "EqualConv2d_dilated": (
        lambda: gn.EqualConv2d(3, 2, 3, dilation=2, padding=[3, 1]),
        lambda g: ((_randn(g, 1, 3, 7, 9),), {}),
    ),
    "PixelNorm": (lambda: gn.PixelNorm(), lambda g: ((_randn(g, 3, 6),), {})),
    "MappingNetwork": (
        lambda: gn.MappingNetwork(6, 5, num_layers=3),
        lambda g: ((_randn(g, 4, 6),), {}),
    ),
    "MappingNetwork_conditional": (
        lambda: gn.MappingNetwork(6, 5, num_layers=2, c_dim=3),
        lambda g: ((_randn(g, 4, 6), torch.eye(3, dtype=torch.float64)[[0, 2, 1, 2]]), {}),
    ),
    "StyleMapMapping": (
        lambda: gn.StyleMapMapping(6, 3, (2, 3), num_layers=2),
        lambda g: ((_randn(g, 4, 6),), {}),
    ),
    "ASPP": (lambda: gn.ASPP(3, 4), lambda g: ((_randn(g, 2, 3, 9, 7),), {})),
    "ModulatedConv2d": (
        lambda: gn.ModulatedConv2d(3, 4, 3, 5),
        lambda g: ((_randn(g, 2, 3, 5, 6), _randn(g, 2, 5)), {}),
    ),
    "ModulatedConv2d_up": (
        lambda: gn.ModulatedConv2d(3, 2, 3, 5, up=2, activation="lrelu"),
        lambda g: ((_randn(g, 2, 3, 4, 3), _randn(g, 2, 5)), {}),
    ),
    "SpatialModulation": (
        lambda: gn.SpatialModulation(3, 2),
        lambda g: ((_randn(g, 2, 3, 5, 6), _randn(g, 2, 2, 5, 6)), {}),
    ),
    "StyledConv2d": (
        lambda: gn.StyledConv2d(3, 4, 3, 2),
        lambda g: ((_randn(g, 2, 3, 5, 6), _randn(g, 2, 2, 5, 6)), {}),
    ),
    "StyledConv2d_up": (
        lambda: gn.StyledConv2d(3, 2, 3, 2, up=2),
        lambda g: ((_randn(g, 2, 3, 3, 4), _randn(g, 2, 2, 3, 4)), {}),
    ),
    "ResBlockD": (lambda: gn.ResBlockD(3, 4), lambda g: ((_randn(g, 2, 3, 8, 6),), {})),
    "ResBlockU": (lambda: gn.ResBlockU(3, 2), lambda g: ((_randn(g, 2, 3, 4, 3),), {})),
    "SPADE": (
        lambda: gn.SPADE(3, 4, hidden_channels=5),
        lambda g: ((_randn(g, 2, 3, 6, 4), _label(g, 2, 4, 3, 2)), {}),
    ),
    "SPADEResBlock": (
        lambda: gn.SPADEResBlock(3, 2, 4, hidden_channels=5),
        lambda g: ((_randn(g, 2, 3, 6, 4), _label(g, 2, 4, 6, 4)), {}),
    ),
    "ToRGB": (
        lambda: gn.ToRGB(4, 3, 5),
        lambda g: ((_randn(g, 2, 4, 6, 4), _randn(g, 2, 5)), {"skip": _randn(g, 2, 3, 3, 2)}),
    ),
    "DiscriminatorEpilogue": (
        lambda: gn.DiscriminatorEpilogue(3, 4, mbstd_group_size=2),
        lambda g: ((_randn(g, 4, 3, 4, 4),), {}),
    ),
    "MinibatchStd": (lambda: gn.MinibatchStd(), lambda g: ((_randn(g, 8, 3, 2, 3),), {})),
    "Blur": (lambda: gn.Blur(padding=[2, 1, 1, 2]), lambda g: ((_randn(g, 2, 2, 5, 6),), {})),
    "Upsample2d": (lambda: gn.Upsample2d(), lambda g: ((_randn(g, 2, 2, 3, 4),), {})),
    "Downsample2d": (lambda: gn.Downsample2d(), lambda g: ((_randn(g, 2, 2, 6, 8),), {})),
    "NoiseInjection": (
        lambda: gn.NoiseInjection((3, 4)),
        lambda g: ((_randn(g, 2, 2, 3, 4),), {"noise_mode": "const"}),
    ),
    "WAverageTruncation": (
        lambda: gn.WAverageTruncation(5),
        lambda g: ((_randn(g, 2, 3, 5), 0.7), {"truncation_cutoff": 2}),
    ),
}


def _seeded_state(module: nn.Module, seed: int) -> Dict[str, torch.Tensor]:
    """Every floating entry of the state dict drawn from N(0, 1) (variances from U(0.5, 1.5))."""
    gen = torch.Generator().manual_seed(seed)
    state = {}
    for key, value in module.state_dict().items():
        if value.is_floating_point():
            shape = value.shape
            if key.endswith("running_var"):
                value = torch.rand(shape, generator=gen, dtype=torch.float64) + 0.5
            else:
                value = torch.randn(shape, generator=gen, dtype=torch.float64)
        state[key] = value
    return state


def _build(name: str, state: Dict[str, torch.Tensor]) -> nn.Module:
    module = CASES[name][0]().double().eval()
    module.load_state_dict(state, strict=True)
    return module


def make_golden() -> Dict[str, dict]:
    out = {}
    for i, (name, (factory, inputs)) in enumerate(CASES.items()):
        torch.manual_seed(0)
        module = factory().double().eval()
        state = _seeded_state(module, 1000 + i)
        module.load_state_dict(state, strict=True)
        args, kwargs = inputs(torch.Generator().manual_seed(2000 + i))
        with torch.no_grad():
            y = module(*args, **kwargs)
        out[name] = {"state": state, "args": args, "kwargs": kwargs, "output": y}
    return out


@pytest.fixture(scope="module")
def golden() -> Dict[str, dict]:
    return torch.load(GOLDEN, weights_only=True)


def _run(golden: Dict[str, dict], name: str) -> Tuple[nn.Module, torch.Tensor]:
    entry = golden[name]
    module = _build(name, entry["state"])
    with torch.no_grad():
        return module, module(*entry["args"], **entry["kwargs"])


def test_every_case_has_a_golden_output(golden):
    assert sorted(golden) == sorted(CASES)


@pytest.mark.parametrize("name", list(CASES))
def test_block_reproduces_its_golden_output(golden, name):
    _, y = _run(golden, name)
    expected = golden[name]["output"]
    assert y.shape == expected.shape
    torch.testing.assert_close(y, expected, rtol=1e-9, atol=1e-9)


# -- independent derivations of some of the stored outputs -----------------------------------


def _equal_linear(x, w, b, lr_mul, act):
    y = F.linear(x, w * (lr_mul / math.sqrt(w.shape[1])), None if b is None else b * lr_mul)
    return F.leaky_relu(y, 0.2) * SQRT2 if act else y


def _pixel_norm(x):
    return x / torch.sqrt(x.pow(2).mean(dim=1, keepdim=True) + 1e-8)


def _mlp(state, prefix, x, n_layers, lr_mul=0.01):
    for i in range(n_layers):
        x = _equal_linear(x, state[f"{prefix}{i}.weight"], state[f"{prefix}{i}.bias"], lr_mul, True)
    return x


def test_golden_mapping_networks_follow_stylegan(golden):
    entry = golden["MappingNetwork"]
    z = entry["args"][0]
    torch.testing.assert_close(
        entry["output"], _mlp(entry["state"], "layers.", _pixel_norm(z), 3), rtol=1e-9, atol=1e-9
    )
    # conditional: [pixelnorm(z), pixelnorm(embed(c))], embed plain (lr_mul 1, linear)
    entry = golden["MappingNetwork_conditional"]
    z, c = entry["args"]
    s = entry["state"]
    e = _equal_linear(c, s["embed.weight"], s["embed.bias"], 1.0, False)
    x = torch.cat([_pixel_norm(z), _pixel_norm(e)], dim=1)
    torch.testing.assert_close(entry["output"], _mlp(s, "layers.", x, 2), rtol=1e-9, atol=1e-9)


def test_golden_style_map_is_channel_major(golden):
    """The last layer's output vector is the style map in (channel, row, column) order: entry
    ``c * h * w + i * w + j`` is pixel ``(i, j)`` of channel ``c``."""
    entry = golden["StyleMapMapping"]
    flat = _mlp(entry["state"], "layers.", _pixel_norm(entry["args"][0]), 2)
    n, (c, h, w) = flat.shape[0], (3, 2, 3)
    expected = torch.empty(n, c, h, w, dtype=torch.float64)
    for ci in range(c):
        for i in range(h):
            for j in range(w):
                expected[:, ci, i, j] = flat[:, ci * h * w + i * w + j]
    torch.testing.assert_close(entry["output"], expected, rtol=1e-9, atol=1e-9)


def test_golden_aspp_is_deeplab_v3(golden):
    """Branches in the order 1x1, 3x3 dilation 2, 3x3 dilation 3, image pooling (the defaults),
    each followed by leaky_relu(0.2), concatenated, projected by a 1x1 conv."""
    entry = golden["ASPP"]
    s, x = entry["state"], entry["args"][0]

    def conv(key, t, **kw):
        return F.conv2d(t, s[f"{key}.weight"], s[f"{key}.bias"], **kw)

    outs = [
        conv("branches.0", x),
        conv("branches.1", x, padding=2, dilation=2),
        conv("branches.2", x, padding=3, dilation=3),
        conv("pool", x.mean(dim=(2, 3), keepdim=True)).expand(-1, -1, *x.shape[2:]),
    ]
    outs = [F.leaky_relu(o, 0.2) for o in outs]
    expected = conv("project", torch.cat(outs, dim=1))
    torch.testing.assert_close(entry["output"], expected, rtol=1e-9, atol=1e-9)


def _fir_1331() -> torch.Tensor:
    f = torch.tensor([1.0, 3.0, 3.0, 1.0], dtype=torch.float64)
    return torch.outer(f, f) / 64.0


def test_golden_blur_and_resampling_are_the_1331_fir(golden):
    """Blur: correlation with the normalised [1, 3, 3, 1] outer product after the "same" padding
    of a 4-tap filter, (2, 1) on each axis, plus the extra ``[x0, x1, y0, y1]``; up-sampling by 2:
    zero insertion, padding (2, 1), filter x4; down-sampling by 2: padding 1 on each side, filter,
    every second pixel."""
    f = _fir_1331()[None, None]

    def depthwise(t, pad):
        c = t.shape[1]
        return F.conv2d(F.pad(t, pad), f.expand(c, 1, 4, 4), groups=c)

    x = golden["Blur"]["args"][0]
    torch.testing.assert_close(golden["Blur"]["output"], depthwise(x, (2 + 2, 1 + 1, 2 + 1, 1 + 2)))
    x = golden["Upsample2d"]["args"][0]
    z = torch.zeros(*x.shape[:2], 2 * x.shape[2], 2 * x.shape[3], dtype=torch.float64)
    z[:, :, ::2, ::2] = x
    torch.testing.assert_close(golden["Upsample2d"]["output"], 4.0 * depthwise(z, (2, 1, 2, 1)))
    x = golden["Downsample2d"]["args"][0]
    down = depthwise(x, (1, 1, 1, 1))[:, :, ::2, ::2]
    torch.testing.assert_close(golden["Downsample2d"]["output"], down)


def test_golden_to_rgb_is_an_undemodulated_1x1_plus_upsampled_skip(golden):
    entry = golden["ToRGB"]
    s = entry["state"]
    (x, style), skip = entry["args"], entry["kwargs"]["skip"]
    weights = [k for k in s if k.endswith("weight") and s[k].ndim == 4]
    affines = [k for k in s if k.endswith("weight") and s[k].ndim == 2]
    assert len(weights) == 1 and len(affines) == 1
    wkey, akey = weights[0], affines[0]
    abias = s[akey[: -len("weight")] + "bias"]
    # the affine: equalised linear of gain 1 / sqrt(style_dim), bias initialised to 1 (stored)
    st = _equal_linear(style, s[akey], abias, 1.0, False)  # [N, in]
    w = s[wkey] / math.sqrt(x.shape[1])  # [out, in, 1, 1], He gain of a 1x1 conv
    rgb = torch.einsum("oi,ni,nihw->nohw", w[:, :, 0, 0], st, x)
    bias = [k for k in s if k.endswith("bias") and s[k].ndim == 1 and s[k].shape[0] == 3]
    rgb = rgb + s[bias[0]].view(1, -1, 1, 1)
    f = _fir_1331()[None, None].expand(3, 1, 4, 4)
    z = torch.zeros(*skip.shape[:2], 2 * skip.shape[2], 2 * skip.shape[3], dtype=torch.float64)
    z[:, :, ::2, ::2] = skip
    up = 4.0 * F.conv2d(F.pad(z, (2, 1, 2, 1)), f, groups=3)
    torch.testing.assert_close(entry["output"], rgb + up, rtol=1e-9, atol=1e-9)


def test_golden_w_average_truncation_interpolates_the_first_layers(golden):
    entry = golden["WAverageTruncation"]
    (ws, psi), cutoff = entry["args"], entry["kwargs"]["truncation_cutoff"]
    avg = next(v for v in entry["state"].values() if v.shape == (5,))
    expected = ws.clone()
    expected[:, :cutoff] = avg + psi * (ws[:, :cutoff] - avg)
    torch.testing.assert_close(entry["output"], expected)


def test_golden_minibatch_std_appends_the_group_std(golden):
    """Default group size 4, one channel: the batch splits as ``[G, M]`` (sample ``n = g·M + m``,
    StyleGAN2's grouping), the std over ``g`` is averaged over channels and pixels and appended as
    a constant channel, sample ``n`` getting the value of ``m = n mod M``."""
    entry = golden["MinibatchStd"]
    x, y = entry["args"][0], entry["output"]
    torch.testing.assert_close(y[:, :3], x)
    g = x.reshape(4, 2, 3, 2, 3)  # [G, M, C, H, W]
    std = (g.var(dim=0, unbiased=False) + 1e-8).sqrt().mean(dim=(1, 2, 3))  # [M]
    expected = std.repeat(4)  # n -> m = n mod M
    torch.testing.assert_close(y[:, 3, 0, 0], expected)
    assert bool((y[:, 3] == y[:, 3, :1, :1]).all())


if __name__ == "__main__":  # pragma: no cover - regenerates the golden file
    torch.save(make_golden(), GOLDEN)
    print(f"wrote {GOLDEN}")
