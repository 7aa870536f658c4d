r"""
LabelMix and the N+1 loss on a toy label map
============================================

OASIS's discriminator is a segmenter with :math:`N + 1` outputs per pixel: "fake", or
"real pixel of class :math:`c`". It is trained with a class-balanced cross-entropy
(:func:`~ganblocks.losses.n_plus_one_loss`, weights from
:func:`~ganblocks.losses.class_balance_weights`) and regularised by LabelMix
(:func:`~ganblocks.losses.labelmix_mask`, :func:`~ganblocks.losses.labelmix_images`,
:func:`~ganblocks.losses.labelmix_loss`): mix a real and a fake image along class
regions and ask the discriminator's output on the mix to be the same mix of its outputs.

The scene is a toy one: sky, road and a small car, so the classes are very unbalanced.
"""

import matplotlib.pyplot as plt
import torch
import torch.nn.functional as F
from torch import nn

from ganblocks.losses import (
    class_balance_weights,
    labelmix_images,
    labelmix_loss,
    labelmix_mask,
    n_plus_one_loss,
)

torch.manual_seed(0)
B, H, W, N = 4, 32, 32, 3
CLASSES = ["sky", "road", "car"]

label = torch.zeros(B, H, W, dtype=torch.long)  # sky
label[:, H // 2:] = 1  # road
for b in range(B):  # a small car somewhere on the road
    x0 = 4 + 6 * b
    label[b, H // 2 - 3: H // 2 + 4, x0: x0 + 8] = 2

real_colors = torch.tensor([[0.3, 0.6, 1.0], [0.35, 0.35, 0.35], [0.9, 0.1, 0.1]])
fake_colors = torch.tensor([[0.6, 0.7, 0.9], [0.5, 0.45, 0.4], [0.7, 0.4, 0.6]])


def render(colors: torch.Tensor, noise: float) -> torch.Tensor:
    """An image [B, 3, H, W] in [-1, 1]: one colour per class plus pixel noise."""
    img = colors[label].permute(0, 3, 1, 2) * 2 - 1
    return img + noise * torch.randn_like(img)


real, fake = render(real_colors, 0.05), render(fake_colors, 0.15)

# %%
# A small segmenting discriminator, trained for a few steps
# ---------------------------------------------------------
# Three convolutions to ``N + 1 = 4`` logit maps; loss = real N+1 loss + fake N+1 loss +
# λ · LabelMix, as in OASIS's discriminator step (λ = 10 there; 5 here for this toy
# problem).

D = nn.Sequential(nn.Conv2d(3, 16, 3, padding=1), nn.LeakyReLU(0.2),
                  nn.Conv2d(16, 16, 3, padding=1), nn.LeakyReLU(0.2),
                  nn.Conv2d(16, N + 1, 3, padding=1))
opt = torch.optim.Adam(D.parameters(), lr=2e-3, betas=(0.0, 0.99))
gen = torch.Generator().manual_seed(1)
losses = []
for _ in range(40):
    mask = labelmix_mask(label, num_classes=N, generator=gen)
    mixed = labelmix_images(real, fake, mask)
    d_real, d_fake, d_mixed = D(real), D(fake), D(mixed)
    loss = (n_plus_one_loss(d_real, label, real=True)
            + n_plus_one_loss(d_fake, label, real=False)
            + 5.0 * labelmix_loss(d_mixed, d_real, d_fake, mask))
    opt.zero_grad()
    loss.backward()
    opt.step()
    losses.append(loss.item())
print(f"D loss: {losses[0]:.3f} at the first step, {losses[-1]:.3f} at the last")
assert losses[-1] < 0.5 * losses[0]

# %%
# The mask, the mixed image and LabelMix's per-pixel loss
# -------------------------------------------------------
# One coin per class: every pixel of a class takes the real image (mask 1) or the fake
# one.

mask = labelmix_mask(label, num_classes=N, generator=torch.Generator().manual_seed(3))
mixed = labelmix_images(real, fake, mask)
with torch.no_grad():
    d_real, d_fake, d_mixed = D(real), D(fake), D(mixed)
    target = mask * d_real + (1 - mask) * d_fake
    lm_map = (d_mixed - target).square().mean(dim=1)  # [B, H, W]: LabelMix per pixel

for c in range(N):  # the mask is constant on each class region ...
    assert mask[:, 0][label == c].unique().numel() == 1
# ... and selects real or fake
assert torch.equal(mixed, torch.where(mask.bool(), real, fake))
assert torch.isclose(lm_map.mean(), labelmix_loss(d_mixed, d_real, d_fake, mask))


def picture(t: torch.Tensor) -> torch.Tensor:
    return ((t[0].permute(1, 2, 0) + 1) / 2).clamp(0, 1)


fig, axes = plt.subplots(1, 5, figsize=(13, 3))
axes[0].imshow(label[0], cmap="tab10", vmin=0, vmax=9)
axes[0].set_title("label map: " + ", ".join(f"{i}={n}" for i, n in enumerate(CLASSES)),
                  fontsize=8)
axes[1].imshow(picture(real))
axes[1].set_title("real", fontsize=9)
axes[2].imshow(picture(fake))
axes[2].set_title("fake", fontsize=9)
axes[3].imshow(mask[0, 0], cmap="gray", vmin=0, vmax=1)
axes[3].set_title("LabelMix mask (white = real)", fontsize=9)
axes[4].imshow(picture(mixed))
axes[4].set_title("mixed image", fontsize=9)
for ax in axes:
    ax.axis("off")
fig.tight_layout()

# %%
# The N+1 loss, pixel by pixel
# ----------------------------
# For real images each pixel's cross-entropy against "real, class :math:`y`" is weighted
# by :math:`w_c = BHW / (K n_c)`: the car, a few percent of the pixels, weighs as much
# in total as the sky. For fakes every pixel targets "fake" with weight 1. The loss is
# the mean of the weighted map; below it is rebuilt from the counts by hand and compared
# with the library.

counts = torch.bincount(label.flatten(), minlength=N).double()
by_hand = (B * H * W / (N * counts)).float()[label]  # all N classes are present: K = N
weights = class_balance_weights(label, N)
assert torch.allclose(weights, by_hand)
for c in range(N):  # every class carries the same total weight
    assert torch.isclose(weights[label == c].sum(), torch.tensor(B * H * W / N))

ce_real = F.cross_entropy(d_real, label + 1, reduction="none")  # [B, H, W]
ce_fake = F.cross_entropy(d_fake, torch.zeros_like(label), reduction="none")
real_map, fake_map = weights * ce_real, ce_fake
assert torch.isclose(real_map.mean(), n_plus_one_loss(d_real, label, real=True),
                     atol=1e-6)
assert torch.isclose(fake_map.mean(), n_plus_one_loss(d_fake, label, real=False),
                     atol=1e-6)
print("class weights:", {n: round(by_hand[label == c][0].item(), 2)
                         for c, n in enumerate(CLASSES)})

fig, axes = plt.subplots(1, 4, figsize=(12, 3.2))
panels = [(weights[0], "class-balance weight", "viridis"),
          (real_map[0], "weighted CE, real image", "magma"),
          (fake_map[0], "CE vs 'fake', fake image", "magma"),
          (lm_map[0], "LabelMix squared error", "magma")]
for ax, (img, title, cmap) in zip(axes, panels):
    shown = ax.imshow(img, cmap=cmap)
    fig.colorbar(shown, ax=ax, fraction=0.046)
    ax.set_title(title, fontsize=9)
    ax.axis("off")
fig.tight_layout()
# Where is the trained D least sure? On class borders, where its 3x3 fields see two
# classes.
border = (F.max_pool2d(label[:, None].float(), 3, 1, 1) != -F.max_pool2d(
    -label[:, None].float(), 3, 1, 1))[:, 0]
assert ce_real[border].mean() > ce_real[~border].mean()
