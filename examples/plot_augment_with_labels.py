r"""
ADA and DiffAugment on an image *and* its label map
===================================================

A segmenting discriminator (OASIS, OCO-GAN) sees images together with their label maps,
so an augmentation of its input must move both in the same way.
:class:`~ganblocks.augment.AdaptiveAugment` (ADA) and
:func:`~ganblocks.augment.diff_augment` (DiffAugment) take an optional ``label`` and
apply every geometric operation to it too: bilinear resampling for the image, nearest
for the labels; colour operations touch the image only; pixels that come from outside
the picture or that cutout erases get the don't-care label.

Alignment is checked below with a trick: an "image" that *is* the colourised label map.
After augmentation, decoding its colours back to class ids must give the augmented label
map.
"""

import dataclasses

import matplotlib.pyplot as plt
import torch

from ganblocks.augment import AdaptiveAugment, diff_augment
from ganblocks.data import colorize_labels
from recipes.oco_gan.data.synthetic import PALETTE, SyntheticScenes

scenes = SyntheticScenes(resolution=64, size=4)
batch = [scenes[i] for i in range(4)]
image = torch.stack([item["image"] for item in batch])  # [4, 3, 64, 64] in [-1, 1]
label = torch.stack([item["label"] for item in batch])  # [4, 64, 64], 0 = don't-care
palette = torch.tensor(PALETTE, dtype=torch.float32)


def colours(lab: torch.Tensor) -> torch.Tensor:
    """Label maps [B, H, W] -> their palette colours, images [B, 3, H, W] in [-1, 1]."""
    rgb = colorize_labels(lab, palette=PALETTE, channels_first=True).float()
    return rgb / 127.5 - 1


def decode(img: torch.Tensor) -> torch.Tensor:
    """Images [B, 3, H, W] in [-1, 1] -> id of the nearest palette colour per pixel."""
    rgb = (img + 1) * 127.5
    dist = ((rgb[:, None] - palette[None, :, :, None, None]) ** 2).sum(dim=2)
    return dist.argmin(dim=1)


def show_rows(rows, titles, suptitle):
    fig, axes = plt.subplots(len(rows), 4, figsize=(8, 2.1 * len(rows)))
    for r, (img, lab) in enumerate(rows):
        for c in range(4):
            ax = axes[r, c]
            if lab is None:
                ax.imshow(((img[c].permute(1, 2, 0) + 1) / 2).clamp(0, 1))
            else:  # the image with the label map's class borders drawn over it
                ax.imshow(((img[c].permute(1, 2, 0) + 1) / 2).clamp(0, 1))
                levels = torch.arange(0.5, 11).tolist()
                ax.contour(lab[c], levels=levels, colors="white", linewidths=0.6)
            ax.axis("off")
        axes[r, 0].set_title(titles[r], fontsize=8, loc="left")
    fig.suptitle(suptitle, fontsize=10)
    fig.tight_layout()


# %%
# ADA
# ---
# ``p=0.8`` with the default operations (flip, 90° rotations, integer and fractional
# translation, isotropic and anisotropic scale, rotation, brightness, contrast, luma
# flip, hue, saturation). White lines: borders of the augmented label map, drawn on the
# augmented image.

ada = AdaptiveAugment(p=0.8, target=None)
gen = torch.Generator().manual_seed(4)
draw = ada.sample(4, 64, 64, generator=gen)  # one draw, applied to two inputs below
aug_image, aug_label = ada.apply(image, draw, label=label)
geometry_only = dataclasses.replace(draw, color=None)
_, aug_label_again = ada.apply(colours(label), geometry_only, label=label)
show_rows([(image, label), (aug_image, aug_label), (colours(aug_label), None)],
          ["input + label borders", "ADA output + its label borders",
           "augmented label map"],
          "AdaptiveAugment(p=0.8): the label map follows every geometric operation")

assert torch.equal(aug_label, aug_label_again)  # the same draw moves labels alike

# %%
# Checked: geometry only, decoded back from colours
# -------------------------------------------------
# With colour operations off, the colourised label map goes through the bilinear image
# path and the label map through the nearest path. With only integer operations (flip,
# 90° rotation, integer translation) they agree at every pixel; with scaling and free
# rotation they agree everywhere except along class borders, where bilinear mixes two
# colours.

colour_ops = ("brightness", "contrast", "lumaflip", "hue", "saturation")
colour_off = {k: 0.0 for k in colour_ops}
exact = AdaptiveAugment(p=1.0, target=None, scale=0, rotate=0, aniso=0, xfrac=0,
                        **colour_off)
free = AdaptiveAugment(p=1.0, target=None, **colour_off)
agreement = {}
for name, pipeline in [("integer ops", exact), ("all geometric ops", free)]:
    gen = torch.Generator().manual_seed(7)
    painted, lab = pipeline(colours(label), label, generator=gen)
    valid = lab != 0  # don't-care pixels (filled from outside the picture) excluded
    agreement[name] = (decode(painted) == lab)[valid].float().mean().item()
    print(f"{name}: decoded colours equal the augmented labels at "
          f"{100 * agreement[name]:.2f}% of the pixels")
assert agreement["integer ops"] == 1.0
assert agreement["all geometric ops"] > 0.95

# %%
# DiffAugment
# -----------
# ``"color,translation,cutout"``: brightness, saturation and contrast change the image
# only; translation (zero padding, don't-care labels shifted in) and cutout move or
# erase both.

gen = torch.Generator().manual_seed(2)
d_image, d_label = diff_augment(image, "color,translation,cutout", label=label,
                                generator=gen)
show_rows([(image, label), (d_image, d_label), (colours(d_label), None)],
          ["input + label borders", "DiffAugment output + its label borders",
           "augmented label map (black = don't-care)"],
          "DiffAugment: translation and cutout applied to both")

same = torch.Generator().manual_seed(2)
painted, lab = diff_augment(colours(label), "translation,cutout", label=label,
                            generator=same)
inside = lab != 0
assert torch.equal(decode(painted)[inside], lab[inside])  # integer shifts: exact
# Pixels erased or shifted in: zero in the image, don't-care in the label map, and
# nowhere else.
ones, ones_label = diff_augment(torch.ones(4, 3, 64, 64), "translation,cutout",
                                label=torch.ones(4, 64, 64, dtype=torch.long),
                                generator=torch.Generator().manual_seed(5))
assert (ones_label == 0).any()
assert torch.equal(ones[:, 0] == 0, ones_label == 0)
