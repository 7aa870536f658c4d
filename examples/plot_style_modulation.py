r"""
Spatial style modulation and SPADE
==================================

:class:`~ganblocks.nn.SpatialModulation` (StyleMapGAN, OCO-GAN) instance-normalises a
feature map and then scales and shifts it *per pixel*: :math:`\hat x \cdot \gamma +
\beta` with :math:`[\gamma; \beta]` a 3×3 convolution of a continuous **style map**.
:class:`~ganblocks.nn.SPADE` (GauGAN, OASIS) does the same with :math:`\hat x \cdot (1 +
\gamma) + \beta`, where :math:`\gamma, \beta` come from two convolutions of a one-hot
**label map**. Below: one content under two style maps, then the two layers side by
side.
"""

import matplotlib.pyplot as plt
import torch
import torch.nn.functional as F

from ganblocks.nn import SPADE, SpatialModulation

torch.manual_seed(0)
H = W = 64
C, S, L = 3, 4, 3  # content channels (drawn as RGB), style channels, label classes

# Content: rings and a diagonal ramp, one phase per channel.
yy, xx = torch.meshgrid(torch.linspace(-1, 1, H), torch.linspace(-1, 1, W),
                        indexing="ij")
r = torch.sqrt(xx**2 + yy**2)
content = torch.stack([torch.sin(8 * r + k) + 0.5 * (xx + yy) for k in range(C)])[None]


def show(ax, t: torch.Tensor, title: str) -> None:
    """Draw a [1, 3, H, W] tensor as an RGB picture (min-max scaled per channel)."""
    img = t[0].detach()
    low = img.amin(dim=(1, 2), keepdim=True)
    high = img.amax(dim=(1, 2), keepdim=True)
    ax.imshow(((img - low) / (high - low + 1e-8)).permute(1, 2, 0))
    ax.set_title(title, fontsize=9)
    ax.axis("off")


# %%
# The same content under two style maps
# -------------------------------------
# Style map A: one style vector on the left half, another on the right. Style map B: the
# same as A on the top half, a smooth radial blend of two other styles on the bottom
# half. The modulation is local (3×3), so the outputs agree wherever the style maps
# agree, one pixel away from the change.

mod = SpatialModulation(C, S)
with torch.no_grad():  # a stronger style response than the near-identity initialisation
    mod.affine.weight.mul_(3.0)
styles = torch.randn(4, S)
left = (xx < 0).float()[None, None]  # [1, 1, H, W]
style_a = left * styles[0, :, None, None] + (1 - left) * styles[1, :, None, None]
blend = (r.clamp(max=1.0))[None, None]
style_b = style_a.clone()
bottom = yy > 0
radial = (1 - blend) * styles[2, :, None, None] + blend * styles[3, :, None, None]
style_b[..., bottom] = radial[..., bottom]

out_a, out_b = mod(content, style_a), mod(content, style_b)

fig, axes = plt.subplots(1, 5, figsize=(13, 3))
show(axes[0], content, "content x")
show(axes[1], style_a[:, :3], "style map A (3 of 4 ch.)")
show(axes[2], out_a, "modulated by A")
show(axes[3], style_b[:, :3], "style map B")
show(axes[4], out_b, "modulated by B")
fig.tight_layout()

same_rows = slice(0, H // 2 - 1)  # rows where A and B agree, minus the 3x3 reach
assert torch.allclose(out_a[..., same_rows, :], out_b[..., same_rows, :], atol=1e-5)
assert (out_a[..., H // 2 + 1:, :] - out_b[..., H // 2 + 1:, :]).abs().mean() > 0.1

# Where the style is constant (the left half of A, away from the seam and the
# zero-padded border), the output is exactly an affine function of the normalised
# content, per channel.
x_hat = F.instance_norm(content)
gamma, beta = mod.gamma_beta(style_a)
inner = (slice(None), slice(None), slice(2, H - 2), slice(2, W // 2 - 2))
assert gamma[inner].std(dim=(2, 3)).max() < 1e-5
assert beta[inner].std(dim=(2, 3)).max() < 1e-5
assert torch.allclose(out_a[inner], x_hat[inner] * gamma[inner] + beta[inner],
                      atol=1e-5)

# %%
# SPADE next to spatial modulation
# --------------------------------
# Both receive the same three-region label map; spatial modulation receives a style map
# that is the label map projected to style vectors *plus* a smooth per-pixel variation
# (what OCO-GAN's conditional style network produces is a map of this kind). SPADE's γ
# can only depend on the label (and is constant inside each region away from its
# borders); the style map can vary within a region.

label = torch.zeros(1, H, W, dtype=torch.long)
label[:, :, W // 3:] = 1
label[:, H // 2:, 2 * W // 3:] = 2
onehot = F.one_hot(label, L).permute(0, 3, 1, 2).float()  # [1, L, H, W]
spade = SPADE(C, L, hidden_channels=16)
style_from_label = torch.einsum("nlhw,ls->nshw", onehot, torch.randn(L, S))
style_varying = style_from_label + 0.8 * torch.sin(3 * xx + 2 * yy)[None, None]

spade_out = spade(content, onehot)
mod_out = mod(content, style_varying)
spade_gamma = spade.gamma_beta(F.relu(spade.shared(onehot))).chunk(2, dim=1)[0]
mod_gamma = mod.gamma_beta(style_varying)[0]

fig, axes = plt.subplots(1, 5, figsize=(13, 3))
axes[0].imshow(label[0], cmap="tab10", vmin=0, vmax=9)
axes[0].set_title("label map (3 classes)", fontsize=9)
axes[0].axis("off")
axes[1].imshow(spade_gamma[0, 0].detach(), cmap="viridis")
axes[1].set_title("SPADE: γ (channel 0)", fontsize=9)
axes[1].axis("off")
show(axes[2], spade_out, "SPADE output")
axes[3].imshow(mod_gamma[0, 0].detach(), cmap="viridis")
axes[3].set_title("SpatialModulation: γ (channel 0)", fontsize=9)
axes[3].axis("off")
show(axes[4], mod_out, "SpatialModulation output")
fig.tight_layout()

region0 = (slice(None), slice(None), slice(3, H - 3), slice(3, W // 3 - 3))  # class 0
spade_spread = spade_gamma[region0].std(dim=(2, 3)).max().item()
mod_spread = mod_gamma[region0].std(dim=(2, 3)).max().item()
print(f"std of γ inside one region: SPADE {spade_spread:.2e}, "
      f"SpatialModulation {mod_spread:.3f}")
assert spade_spread < 1e-5 < 0.05 < mod_spread
