r"""
StyleMapGAN from the blocks, in under 100 lines
===============================================

StyleMapGAN (Kim et al., CVPR 2021) generates from a *style map*, a latent with spatial
extent, instead of StyleGAN's style vector: a mapping network turns ``z`` into a map
``[N, 64, 8, 8]``, a stack of convolutions resizes it into one map per layer, and every
layer of the synthesis network normalises its input and modulates it *per pixel* by its
map. Its blocks are in :mod:`ganblocks.nn`, and :mod:`ganblocks.convert` reads the
original code's checkpoints, so a port of the generator that loads the original weights
and computes the original images is the short program below.

The weights are the project's golden test data: small generators created and run by the
original naver-ai code, stored under that code's key names with every parameter and
buffer moved away from its initial value, together with its inputs and outputs.
:mod:`recipes.stylemapgan` is the full port (encoder, discriminator, every option of the
original, argument checks): the last section checks that both agree.
"""

# %%
# The port
# --------
# Widths follow the original table; its up-sampling convolutions run
# ``conv_transpose2d`` with the kernel unflipped (``flip_weight=False``). The converter
# renames the original's keys, joins its separate γ and β convolutions into our single
# ``affine`` one, drops the leading 1 of its modulated weights and copies its blur
# kernels (which carry the up-sampling gain 4) into our layers.

# port: start
import torch
from torch import nn

from ganblocks.convert import Concat, Rearrange, Rule, Scale, StateDictConverter
from ganblocks.nn import (
    StyledConv2d,
    StyleMapMapping,
    StyleMapResizer,
    StyleMapSynthesisBlock,
)


def width(res, multiplier=2, low_res=512):
    return low_res if res <= 32 else int(16384 * multiplier) // res


class StyleMapGenerator(nn.Module):
    def __init__(self, size, *, style_dim=64, latent=8, mapping_layers=8, lr_mul=0.01,
                 norm="layer", multiplier=2, low_res=512):
        super().__init__()
        res = [latent << i for i in range((size // latent).bit_length())]
        ch = {r: width(r, multiplier, low_res) for r in res}
        self.mapping = StyleMapMapping(style_dim, style_dim, latent,
                                       num_layers=mapping_layers, lr_mul=lr_mul)
        self.resizer = StyleMapResizer(style_dim, [ch[r] for r in res for _ in "ab"],
                                       flip_weight=False)
        self.const = nn.Parameter(torch.randn(1, ch[latent], latent, latent))
        self.conv1 = StyledConv2d(ch[latent], ch[latent], 3, ch[latent], norm=norm)
        self.blocks = nn.ModuleList(
            StyleMapSynthesisBlock(ch[r // 2], ch[r], norm=norm, flip_weight=False)
            for r in res[1:])
        self.to_rgb = StyledConv2d(ch[size], 3, 1, ch[size], norm=norm)

    def synthesis(self, style_map):  # [N, style_dim, latent, latent] -> image
        maps = self.resizer(style_map)
        x = self.conv1(self.const.expand(len(style_map), -1, -1, -1), maps[0])
        for i, block in enumerate(self.blocks):
            x = block(x, maps[2 * i + 1], maps[2 * i + 2])
        return self.to_rgb(x, maps[-1])

    def forward(self, z):
        return self.synthesis(self.mapping(z))


def styled(theirs, ours):  # their StyledConv: ModulatedConv2d + FusedLeakyReLU
    return [
        Rule(f"{theirs}.conv.weight", f"{ours}.conv.weight",
             transform=Rearrange("1 o i kh kw -> o i kh kw")),
        Rule([f"{theirs}.conv.gamma.{{p:weight|bias}}", f"{theirs}.conv.beta.{{p}}"],
             f"{ours}.modulation.affine.{{p}}", transform=Concat(dim=0)),
        Rule(f"{theirs}.activate.bias", f"{ours}.conv.bias"),
        Rule(f"{theirs}.conv.blur.kernel", f"{ours}.conv.resample_filter",
             transform=Scale(0.25)),
    ]


def converter(G):
    rules = [Rule(f"mapping_z.{i + 1}.{{p}}", f"mapping.layers.{i}.{{p}}")
             for i in range(len(G.mapping.layers))]
    rules += [Rule("decoder.input.input", "const")]
    for k, layer in enumerate(G.resizer):
        up = layer.up > 1  # their ConvLayer: conv, [blur], lrelu with bias
        rules += [Rule(f"decoder.convs_latent.{k}.0.weight", f"resizer.{k}.weight"),
                  Rule(f"decoder.convs_latent.{k}.{1 + up}.bias", f"resizer.{k}.bias")]
        if up:
            rules.append(Rule(f"decoder.convs_latent.{k}.1.kernel",
                              f"resizer.{k}.resample_filter", transform=Scale(0.25)))
    for i in range(len(G.blocks)):
        theirs = f"decoder.convs.{i}"
        rules += styled(f"{theirs}.conv1", f"blocks.{i}.conv1")
        rules += styled(f"{theirs}.conv2", f"blocks.{i}.conv2")
        rules += [Rule(f"{theirs}.skip.0.weight", f"blocks.{i}.skip.weight"),
                  Rule(f"{theirs}.skip.1.kernel", f"blocks.{i}.skip.resample_filter",
                       transform=Scale(0.25))]
    rules += styled("decoder.conv1", "conv1") + styled("decoder.to_rgb", "to_rgb")
    return StateDictConverter(rules)


def load_original(G, state_dict):
    ours = converter(G).convert(state_dict)
    kernels = {k: ours.pop(k) for k in list(ours) if k.endswith("resample_filter")}
    G.load_state_dict(ours)  # strict: every weight, nothing else
    for key, kernel in kernels.items():  # FIR filters: buffers outside our state dict
        module, name = key.rsplit(".", 1)
        setattr(G.get_submodule(module), name, kernel)
    return G
# port: end

# %%
# The original's weights and images
# ---------------------------------
# Two of the golden generators: layer norm (the original's default) at 32×32 from an
# 8×8 style map, and instance norm from a 16×16 one. Our port loads their state dicts
# and draws their images from the same ``z`` (float32, relative error well below 1e-5).

from pathlib import Path  # noqa: E402

import matplotlib.pyplot as plt  # noqa: E402

import recipes  # noqa: E402
from recipes.stylemapgan import Generator  # noqa: E402

root = Path(recipes.__file__).resolve().parents[1]
golden = torch.load(root / "tests" / "golden" / "stylemapgan.pt", weights_only=True)
cases = {c["name"]: c for c in golden["cases"]}

ports = {}
for name in ("G_layernorm_32", "G_instancenorm_32_latent16"):
    case, spec = cases[name], cases[name]["kwargs"]
    G = StyleMapGenerator(
        spec["size"], style_dim=spec["style_dim"], latent=spec["latent_spatial_size"],
        mapping_layers=spec["mapping_layer_num"], lr_mul=spec["lr_mul"],
        norm={"LayerNorm": "layer", "InstanceNorm2d": "instance"}[
            spec["normalize_mode"]],
        low_res=case["ch_max"],
    )
    G = load_original(G, case["state"]).eval()
    with torch.no_grad():
        img = G(case["z"])
    err = ((img - case["img_z"]).abs().max() / case["img_z"].abs().max()).item()
    print(f"{name}: {tuple(img.shape)}, relative error to the original {err:.1e}")
    assert err <= 1e-5
    ports[name] = G

# %%
# The recipe agrees, and the style map edits locally
# --------------------------------------------------
# :meth:`recipes.stylemapgan.Generator.from_stylemapgan` reads the same state dict (and
# infers the architecture from it). Pasting one region of a style map into another and
# decoding is StyleMapGAN's local editing: the image changes mostly inside that region.

case = cases["G_layernorm_32"]
G = Generator.from_stylemapgan(case["state"], lr_mul=0.01,
                               low_res_channels=case["ch_max"]).eval()
with torch.no_grad():
    assert torch.allclose(G(case["z"]), ports["G_layernorm_32"](case["z"]), atol=1e-6)
    a, b = G.style_map(case["z"]).unbind(0)
    mask = torch.zeros(1, 8, 8)
    mask[:, 2:6, 4:] = 1  # the right half of the middle rows
    edited = torch.lerp(a, b, mask)
    images = G.synthesis(torch.stack([a, b, edited]))
    change = (images[2] - images[0]).abs().mean(0)
inside = change[8:24, 16:].mean() / change.mean()
print(f"mean change inside the pasted region / overall: {inside:.2f}")
assert inside > 1

fig, axes = plt.subplots(1, 4, figsize=(8, 2.3))
titles = ["map A", "map B", "A with a patch of B", "|edit - A|"]
shown = [*images, change[None].expand(3, -1, -1)]
for ax, title, im in zip(axes, titles, shown):
    im = (im - im.min()) / (im.max() - im.min())
    ax.imshow(im.permute(1, 2, 0).numpy())
    ax.set_title(title, fontsize=9)
    ax.axis("off")
fig.tight_layout()
plt.show()
