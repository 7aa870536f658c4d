"""
FIR resampling: ``upsample2d`` / ``downsample2d`` against ``F.interpolate``
===========================================================================

Resizing a feature map is sampling-rate conversion. Going down, frequencies above the
new Nyquist limit must be removed *before* dropping samples or they fold back as
aliases; going up, the copies of the spectrum that zero-insertion creates must be
removed *after*. :func:`~ganblocks.ops.downsample2d` and
:func:`~ganblocks.ops.upsample2d` do both with a separable FIR low-pass (here
StyleGAN2's ``[1, 3, 3, 1]``); ``F.interpolate`` with ``nearest`` or ``bilinear`` (no
antialiasing) does not.
"""

import matplotlib.pyplot as plt
import torch
import torch.nn.functional as F

from ganblocks.ops import downsample2d, setup_filter, upfirdn2d, upsample2d

f = setup_filter([1, 3, 3, 1])  # normalised outer product: a 4x4 low-pass

# %%
# A test pattern: the zone plate
# -------------------------------
# :math:`z(u, v) = \cos\big(\pi (u^2 + v^2) / S\big)` on an :math:`S \times S` grid,
# centred. Its local frequency :math:`r / S` cycles per pixel grows linearly from the
# centre (0) to the middle of each border (the Nyquist limit, 1/2), so every frequency
# is on screen at once and an alias shows up as rings where there should be none.



def zone_plate(size: int) -> tuple:
    """The pattern [1, 1, size, size] and each pixel's distance from the centre."""
    coords = torch.arange(size, dtype=torch.float32) - size / 2
    u, v = torch.meshgrid(coords, coords, indexing="xy")
    pattern = torch.cos(torch.pi * (u**2 + v**2) / size)[None, None]
    return pattern, torch.sqrt(u**2 + v**2)


S = 256
zone, radius = zone_plate(S)

# %%
# Downsampling by 2
# -----------------
# After halving the rate, local frequencies above half the original Nyquist limit
# (radius above S/4) cannot be represented. A correct downsampler makes that part nearly
# flat grey; subsampling shows it as a second, spurious zone plate.

down_fir = downsample2d(zone, f)
down_nearest = F.interpolate(zone, scale_factor=0.5, mode="nearest")
down_bilinear = F.interpolate(zone, scale_factor=0.5, mode="bilinear",
                              align_corners=False)

r = radius[::2, ::2]
outer = (r > 0.3 * S) & (r < 0.48 * S)  # beyond the new Nyquist limit
alias = {name: img[0, 0][outer].std().item()
         for name, img in [("downsample2d", down_fir), ("nearest", down_nearest),
                           ("bilinear", down_bilinear)]}

fig, axes = plt.subplots(1, 4, figsize=(12, 3.6), layout="constrained")
panels = [(zone, f"input {S}x{S}"), (down_fir, "downsample2d, [1,3,3,1]"),
          (down_nearest, "F.interpolate nearest"),
          (down_bilinear, "F.interpolate bilinear")]
for ax, (img, title) in zip(axes, panels):
    ax.imshow(img[0, 0], cmap="gray", vmin=-1, vmax=1)
    ax.set_title(title, fontsize=9)
    ax.axis("off")
for ax, name in zip(axes[1:], alias):
    ax.text(2, 10, f"alias std {alias[name]:.2f}", color="yellow", fontsize=8,
            bbox={"facecolor": "black", "alpha": 0.6})
fig.suptitle("Zone plate downsampled by 2: rings in the outer band are aliases")

print({k: round(val, 3) for k, val in alias.items()})
# The FIR filter removes most of what would alias; plain subsampling keeps all of it.
assert alias["downsample2d"] < 0.5 * alias["nearest"]
assert alias["downsample2d"] < alias["bilinear"]

# %%
# Upsampling by 2
# ---------------
# Zero-insertion followed by the low-pass (:func:`~ganblocks.ops.upsample2d`, gain
# ``up**2`` so constants are kept) against nearest-neighbour repetition. In the spectrum
# of the upsampled image, the images of the original spectrum sit in the outer half of
# the frequency plane: nearest keeps much of their energy, the FIR filter attenuates
# them.

small, _ = zone_plate(S // 2)  # 128x128, up to its own Nyquist limit at the border
up_fir = upsample2d(small, f)
up_nearest = F.interpolate(small, scale_factor=2, mode="nearest")


def high_band_energy(img: torch.Tensor) -> float:
    """Share of spectral energy at |frequency| above half the Nyquist limit (x or y)."""
    spec = torch.fft.fftshift(torch.fft.fft2(img[0, 0])).abs() ** 2
    k = torch.arange(img.shape[-1]) - img.shape[-1] // 2
    ky, kx = torch.meshgrid(k, k, indexing="ij")
    high = (kx.abs() > img.shape[-1] // 4) | (ky.abs() > img.shape[-1] // 4)
    return (spec[high].sum() / spec.sum()).item()


energy = {"upsample2d": high_band_energy(up_fir),
          "nearest": high_band_energy(up_nearest)}
fig, axes = plt.subplots(1, 4, figsize=(12, 3.4))
for col, (img, name) in enumerate([(up_fir, "upsample2d"), (up_nearest, "nearest")]):
    axes[2 * col].imshow(img[0, 0, :64, :64], cmap="gray", vmin=-1, vmax=1)
    axes[2 * col].set_title(f"{name} (top-left 64x64)", fontsize=9)
    spectrum = torch.fft.fftshift(torch.fft.fft2(img[0, 0])).abs()
    axes[2 * col + 1].imshow(torch.log1p(spectrum), cmap="magma")
    q = img.shape[-1] // 4  # the outer band lies outside this dashed square
    square = plt.Rectangle((q, q), 2 * q, 2 * q, fill=False, color="cyan",
                           linestyle="--", linewidth=1)
    axes[2 * col + 1].add_patch(square)
    axes[2 * col + 1].set_title(
        f"log spectrum: {100 * energy[name]:.1f}% in outer band", fontsize=9)
for ax in axes:
    ax.axis("off")
fig.tight_layout()

print({k: round(val, 4) for k, val in energy.items()})
assert energy["upsample2d"] < 0.5 * energy["nearest"]
# A normalised filter with gain up**2 keeps constants exactly (away from the zero
# padding).
ones_up = upsample2d(torch.ones(1, 1, 8, 8), f)
assert torch.allclose(ones_up[..., 2:-2, 2:-2], torch.ones(12, 12))

# %%
# The padding and size rules
# --------------------------
# :func:`~ganblocks.ops.upfirdn2d` upsamples (inserts ``up - 1`` zeros after each
# sample), pads by ``[p0, p1]`` (negative values crop), convolves with the ``fw``-tap
# filter ("valid" mode) and keeps every ``down``-th sample, so the output length is
#
# .. math::
#
#    W_\text{out} = \left\lfloor
#    \frac{W \cdot \text{up} + p_0 + p_1 - f_w}{\text{down}} \right\rfloor + 1 .
#
# ``upsample2d`` picks :math:`p_0 = \lfloor (f_w + \text{up} - 1) / 2 \rfloor` and
# :math:`p_1 = \lfloor (f_w - \text{up}) / 2 \rfloor`, which centres the filter and
# gives exactly :math:`W \cdot \text{up}` outputs. Drawn for 4 samples, ``up=2`` and the
# 4-tap filter:

W, up, fw = 4, 2, 4
p0, p1 = (fw + up - 1) // 2, (fw - up) // 2
row = torch.tensor([[[[1.0, -1.0, 2.0, 0.5]]]])  # [1, 1, 1, W]
taps = torch.tensor([[1.0, 3.0, 3.0, 1.0]]) / 8  # [1, fw]: a 1-D filter along x only
out = upfirdn2d(row, taps, up=[up, 1], padding=[p0, p1, 0, 0], gain=up)
w_out = (W * up + p0 + p1 - fw) // 1 + 1
assert out.shape[-1] == w_out == W * up
# The same thing through upsample2d (its gain is up per axis: up in x, 1 in y here).
assert torch.allclose(out, upsample2d(row, taps, up=[up, 1]))

fig, ax = plt.subplots(figsize=(10, 3.6))
zero_stuffed = [val for x in row.flatten().tolist() for val in (x, 0.0)]
stuffed = [0.0] * p0 + zero_stuffed + [0.0] * p1
kinds = ["pad"] * p0 + ["sample", "zero"] * W + ["pad"] * p1
colors = {"pad": "#bbbbbb", "sample": "#1f77b4", "zero": "#ff7f0e"}
for i, (val, kind) in enumerate(zip(stuffed, kinds)):
    ax.add_patch(plt.Rectangle((i, 2), 0.9, 0.9, color=colors[kind]))
    ax.text(i + 0.45, 2.45, f"{val:g}", ha="center", va="center", fontsize=8,
            color="white")
for j, val in enumerate(out.flatten().tolist()):
    ax.add_patch(plt.Rectangle((j + (fw - 1) / 2, 0), 0.9, 0.9, color="#2ca02c"))
    ax.text(j + (fw - 1) / 2 + 0.45, 0.45, f"{val:.2f}", ha="center", va="center",
            fontsize=7, color="white")
for k in range(fw):  # the first filter position
    ax.add_patch(plt.Rectangle((k, 1.2), 0.9, 0.5, color="#9467bd", alpha=0.7))
    ax.text(k + 0.45, 1.45, f"{taps[0, k].item() * 8:g}/8", ha="center", va="center",
            fontsize=7)
ax.annotate("", xy=((fw - 1) / 2 + 0.45, 0.9), xytext=((fw - 1) / 2 + 0.45, 1.2),
            arrowprops={"arrowstyle": "->"})
ax.text(-0.2, 3.2, f"zero-stuffed (up={up}) and padded: p0={p0}, p1={p1} "
        f"→ {len(stuffed)} = W·up + p0 + p1", fontsize=9)
ax.text(-0.2, -0.45, f"output: ({len(stuffed)} − fw) + 1 = {w_out} = W·up samples "
        "(each = filter · 4 inputs under it, × gain up)", fontsize=9)
for kind, color in colors.items():
    ax.plot([], [], "s", color=color, label=kind)
ax.plot([], [], "s", color="#9467bd", label="filter taps")
ax.plot([], [], "s", color="#2ca02c", label="output")
ax.legend(loc="upper right", fontsize=8, ncol=5, frameon=False)
ax.set_xlim(-0.5, len(stuffed) + 0.5)
ax.set_ylim(-0.8, 4.2)
ax.axis("off")
fig.tight_layout()
