"""The OCO-GAN architecture diagram of the recipe page, drawn with matplotlib at build time.

The shapes written in the boxes are read from the ``ade20k`` preset's configuration, so the
picture follows the code.
"""

from __future__ import annotations

import matplotlib.pyplot as plt
from matplotlib.patches import FancyArrowPatch, FancyBboxPatch

from recipes.oco_gan.config import get_preset

COLORS = {
    "input": "#e8e8e8",
    "uncond": "#cfe3f7",
    "cond": "#fbe1c4",
    "shared": "#d7efd0",
    "disc": "#e6dcf3",
    "out": "#f8d4d4",
}


def _box(ax, x, y, w, h, text, kind, *, fontsize=8.5, bold_first=True):
    ax.add_patch(FancyBboxPatch((x, y), w, h, boxstyle="round,pad=0.02,rounding_size=0.08",
                                facecolor=COLORS[kind], edgecolor="#444444", linewidth=1.0))
    lines = text.split("\n")
    if bold_first:
        ax.text(x + w / 2, y + h - 0.17, lines[0], ha="center", va="top", fontsize=fontsize + 0.5,
                fontweight="bold")
        ax.text(x + w / 2, y + h - 0.47, "\n".join(lines[1:]), ha="center", va="top",
                fontsize=fontsize, linespacing=1.35)
    else:
        ax.text(x + w / 2, y + h / 2, text, ha="center", va="center", fontsize=fontsize)
    return (x, y, w, h)


def _arrow(ax, start, end, *, label=None, rad=0.0, color="#333333", offset=(0.0, 0.12),
           ha="center", va="bottom"):
    ax.add_patch(FancyArrowPatch(start, end, arrowstyle="-|>", mutation_scale=12, linewidth=1.2,
                                 color=color, connectionstyle=f"arc3,rad={rad}"))
    if label:  # beside the arrow (offset from its midpoint), on white so no line crosses it
        mx, my = (start[0] + end[0]) / 2, (start[1] + end[1]) / 2
        ax.text(mx + offset[0], my + offset[1], label, ha=ha, va=va, fontsize=7.5, color=color,
                bbox={"facecolor": "white", "edgecolor": "none", "pad": 1.0})


def oco_gan_architecture() -> None:
    """Two style networks → one synthesis network → D with an image head and a seg. head."""
    cfg = get_preset("ade20k").model
    shapes = cfg.style_map_shapes()  # [(C, h, w), ...], two per resolution
    sizes = sorted({(h, w) for _, h, w in shapes})
    h, w = cfg.resolution
    n = cfg.num_classes

    def side(size):
        return f"{size[0]}²" if size[0] == size[1] else f"{size[0]}×{size[1]}"


    fig, ax = plt.subplots(figsize=(13, 6.4))
    ax.set_xlim(0, 13)
    ax.set_ylim(0, 6.4)
    ax.axis("off")

    # Inputs
    zu = _box(ax, 0.1, 4.55, 1.5, 0.8, "z_u ~ N(0, I)\n" f"[{cfg.z_dim}]", "input")
    lab = _box(ax, 0.1, 1.75, 1.5, 0.9, "label map s\n" f"one-hot, N = {n}", "input")
    zc = _box(ax, 0.1, 0.55, 1.5, 0.8, "z_c ~ N(0, I)\n" f"[{cfg.z_dim}]", "input")

    # Style networks
    un = _box(ax, 2.1, 4.2, 3.0, 1.5,
              "Unconditional style net\n"
              f"PixelNorm + {cfg.mapping_layers} equalised FC (lr_mul 0.01)\n"
              f"→ base map {cfg.style_channels}×{cfg.style_size[0]}×{cfg.style_size[1]}"
              " → style-map resizer", "uncond")
    co = _box(ax, 2.1, 0.75, 3.0, 1.7,
              "Conditional style net\n"
              "concat(z_c tiled, one-hot s)\n"
              "per style map: nearest resize →\n"
              f"conv3×3 → conv3×3 ({cfg.cond_hidden_channels} ch.)", "cond")

    # Style maps and synthesis
    sm = _box(ax, 5.6, 2.55, 1.9, 1.5,
              f"{len(shapes)} style maps\n"
              f"2 per resolution,\n{side(sizes[0])} to {side(sizes[-1])}\n"
              f"channels {shapes[0][0]} to {shapes[-1][0]}", "shared", fontsize=7.8)
    syn = _box(ax, 5.45, 0.2, 2.2, 1.75,
               "Shared synthesis\n"
               "const → StyledConv2d\n"
               "residual up-blocks\n"
               "(spatial modulation)\n"
               "→ to-RGB", "shared", fontsize=7.8)
    img = _box(ax, 8.05, 0.6, 1.4, 0.95, f"image\n3×{h}×{w}", "out")

    # Discriminator
    enc = _box(ax, 8.0, 2.55, 1.9, 1.5,
               "D: shared encoder\nResBlockD ×"
               f"{cfg.num_encoder_blocks}\n→ bottleneck", "disc", fontsize=7.8)
    ih = _box(ax, 10.4, 4.4, 2.5, 1.3,
              "Image head\n2 ResBlockD, conv,\n2 equalised FC → 1 logit\n"
              "loss: non-sat. + R1", "disc", fontsize=7.8)
    sh = _box(ax, 10.4, 1.85, 2.5, 1.75,
              "Segmentation head\nASPP + U-Net decoder\n(ResBlockU, encoder skips)\n"
              f"→ N+1 = {n + 1} logits per pixel\nloss: class-balanced\nN+1 CE + LabelMix",
              "disc", fontsize=7.8)

    def right(b, dy=0.5):
        return (b[0] + b[2], b[1] + b[3] * dy)

    def left(b, dy=0.5):
        return (b[0], b[1] + b[3] * dy)

    def top(b, dx=0.5):
        return (b[0] + b[2] * dx, b[1] + b[3])

    def bottom(b, dx=0.5):
        return (b[0] + b[2] * dx, b[1])

    _arrow(ax, right(zu), left(un))
    _arrow(ax, right(lab), left(co, 0.65))
    _arrow(ax, right(zc), left(co, 0.25))
    _arrow(ax, right(un), left(sm, 0.75), label="unconditional", rad=-0.15, color="#1f5f9f",
           offset=(-0.15, -0.3), ha="right", va="center")
    _arrow(ax, right(co), left(sm, 0.25), label="conditional", rad=0.15, color="#b35a00",
           offset=(-0.15, 0.3), ha="right", va="center")
    _arrow(ax, bottom(sm), top(syn))
    _arrow(ax, right(syn), left(img))
    _arrow(ax, top(img), bottom(enc), label="fake (or real)", offset=(0.12, 0.0), ha="left",
           va="center")
    _arrow(ax, right(enc, 0.75), left(ih, 0.4))
    _arrow(ax, right(enc, 0.35), left(sh, 0.6), label="multi-\nscale\nfeatures",
           offset=(0.0, -0.12), va="top")

    ax.text(0.1, 6.15, "Generator", fontsize=11, fontweight="bold")
    ax.text(8.0, 6.15, "Discriminator", fontsize=11, fontweight="bold")
    ax.plot([7.8, 7.8], [0.1, 6.3], color="#999999", linestyle=":", linewidth=1)
    ax.text(6.5, 6.15, f"ade20k preset: {h}×{w}, N = {n}", fontsize=8, ha="center",
            color="#555555")
    fig.tight_layout()
