r"""
OCO-GAN: train, load a checkpoint, generate, segment
====================================================

The recipe's generator has two ways in: a latent :math:`z_u` (unconditional) or a label
map plus a latent :math:`z_c` (conditional); its discriminator has an image head and a
segmentation head with :math:`N + 1` outputs per pixel. This example

1. trains a very small OCO-GAN for a few steps (the ``demo`` preset shrunk to 16×16
   and a few channels, so that it runs in seconds while the docs build) and lets it
   write its checkpoint;
2. loads the checkpoint with :func:`~recipes.oco_gan.generate.load_generator`, as
   ``oco-gan generate`` does;
3. draws unconditional samples, conditional samples on label maps of the validation
   scenes, and interpolations;
4. asks the discriminator's segmentation head what label map an unconditional sample
   shows.

After 30 steps of a 70k-parameter model the samples are colour blobs. What the same code
gives after the five minutes of ``oco-gan demo`` (the 32×32 ``demo`` preset, 1.9 M
parameters, on a CPU) is this grid (rows: label map, real image, three conditional and
three unconditional samples):

.. image:: /_static/demo_samples.png
   :width: 60%
   :alt: sample grid of the demo run
"""

import tempfile
from pathlib import Path

import matplotlib.pyplot as plt
import torch

from ganblocks.data import colorize_labels
from recipes.oco_gan.config import apply_overrides, get_preset
from recipes.oco_gan.data.synthetic import PALETTE, SyntheticScenes
from recipes.oco_gan.generate import (
    generate_conditional,
    generate_unconditional,
    interpolate,
    load_generator,
)
from recipes.oco_gan.model import Discriminator
from recipes.oco_gan.train import OCOGANTrainer

# %%
# Train for a few steps; the trainer writes ``checkpoint.pt``
# -----------------------------------------------------------
# Any config field can be overridden as ``section.field=value``, as on the command line.

config = apply_overrides(get_preset("demo"), [
    "model.resolution=16,16", "model.style_size=4,4", "model.z_dim=8",
    "model.style_channels=8", "model.mapping_layers=2",
    "model.channel_multiplier=0.03125", "model.max_channels=16",
    "model.cond_hidden_channels=8", "model.d_channel_multiplier=0.0625",
    "model.d_max_channels=16", "model.d_bottleneck=4", "data.synthetic_size=64",
    "train.batch_uncond=4", "train.batch_cond=4", "train.log_every=5",
    "train.sample_every=1000", "train.checkpoint_every=1000",
])
run_dir = Path(tempfile.mkdtemp(prefix="ganblocks_oco_example_"))
trainer = OCOGANTrainer(config, run_dir, progress=False)
trainer.fit(steps=30)
print(sorted(p.name for p in run_dir.iterdir()))
assert (run_dir / "checkpoint.pt").is_file()

# %%
# Load it back
# ------------
# ``load_generator`` rebuilds the generator from the configuration saved in the
# checkpoint and loads the exponential moving average of its weights (what is
# evaluated). The discriminator is rebuilt the same way from the checkpoint's ``"D"``
# entry.

loaded = load_generator(run_dir / "checkpoint.pt")
G, cfg = loaded.G, loaded.config
state = torch.load(run_dir / "checkpoint.pt", map_location="cpu", weights_only=False)
D = Discriminator(cfg.model).eval()
D.load_state_dict(state["D"])
print(f"step {loaded.step}, EMA weights: {loaded.ema}, {cfg.model.num_classes} classes")

z = torch.randn(4, cfg.model.z_dim)
with torch.no_grad():  # the loaded G is the trainer's EMA generator, bit for bit
    assert torch.equal(G(z=z), trainer.ema.shadow.eval()(z=z))

# %%
# Unconditional samples, conditional samples, interpolations
# ----------------------------------------------------------

val = SyntheticScenes(resolution=cfg.model.resolution, split="val", size=4)
labels = torch.stack([val[i]["label"] for i in range(4)])  # [4, 16, 16] class ids
uncond = generate_unconditional(G, 8, seed=0)  # [8, 3, 16, 16] in [-1, 1]
cond = generate_conditional(G, labels, per_label=3, seed=0)  # [4, 3, 3, 16, 16]
walk = interpolate(G, 6, seed=1)  # unconditional: slerp between two z_u
walk_cond = interpolate(G, 6, seed=1, label=labels[0])  # layout fixed, z_c varies


def rgb(t: torch.Tensor) -> torch.Tensor:
    return ((t.permute(1, 2, 0) + 1) / 2).clamp(0, 1)


def colour(label: torch.Tensor) -> torch.Tensor:
    return colorize_labels(label, palette=PALETTE)


fig, axes = plt.subplots(4, 6, figsize=(9, 6.2))
for ax in axes.flat:
    ax.axis("off")
for i in range(4):  # row i: label map i, its 3 conditional samples, 2 unconditional
    axes[i, 0].imshow(colour(labels[i]), interpolation="nearest")
    for k in range(3):
        axes[i, 1 + k].imshow(rgb(cond[i, k]), interpolation="nearest")
    for k in range(2):
        axes[i, 4 + k].imshow(rgb(uncond[2 * i + k]), interpolation="nearest")
axes[0, 0].set_title("label map", fontsize=9)
axes[0, 2].set_title("conditional samples", fontsize=9)
axes[0, 4].set_title("unconditional", fontsize=9, loc="left")
fig.tight_layout()

# %%
# Interpolations: spherical between two :math:`z_u` (top), and between two :math:`z_c`
# with the label map fixed (bottom).

fig, axes = plt.subplots(2, 6, figsize=(9, 3.2))
for k in range(6):
    axes[0, k].imshow(rgb(walk[k]), interpolation="nearest")
    axes[1, k].imshow(rgb(walk_cond[k]), interpolation="nearest")
    axes[0, k].axis("off")
    axes[1, k].axis("off")
axes[0, 0].set_title("interpolating z_u", fontsize=9, loc="left")
axes[1, 0].set_title("interpolating z_c on one label map", fontsize=9, loc="left")
fig.tight_layout()

assert torch.allclose(walk[[0, -1]], generate_unconditional(G, 2, seed=1), atol=1e-4)
assert uncond.shape == (8, 3, 16, 16) and cond.shape == (4, 3, 3, 16, 16)
assert not torch.allclose(cond[:, 0], cond[:, 1])  # different z_c, different pictures

# %%
# What the discriminator's segmentation head sees in an unconditional sample
# --------------------------------------------------------------------------
# Channel 0 of the head is "fake"; channels :math:`1 \dots N` are "real pixel of class
# :math:`c`". The argmax over the class channels is a label map for *any* image,
# including an unconditional sample that never had one; the softmax of channel 0 says
# how fake D finds each pixel.

real = torch.stack([val[i]["image"] for i in range(4)])
with torch.no_grad():
    seg_fake = D(uncond[:4], heads=("seg",)).seg  # [4, N+1, 16, 16]
    seg_real = D(real, heads=("seg",)).seg
predicted = seg_fake[:, 1:].argmax(dim=1)  # [4, 16, 16] class ids
p_fake = seg_fake.softmax(dim=1)[:, 0]
p_fake_real = seg_real.softmax(dim=1)[:, 0]

fig, axes = plt.subplots(3, 4, figsize=(7, 5.4))
for i in range(4):
    axes[0, i].imshow(rgb(uncond[i]), interpolation="nearest")
    axes[1, i].imshow(colour(predicted[i]), interpolation="nearest")
    axes[2, i].imshow(p_fake[i], cmap="magma", vmin=0, vmax=1, interpolation="nearest")
    for r in range(3):
        axes[r, i].axis("off")
axes[0, 0].set_title("unconditional sample", fontsize=9, loc="left")
axes[1, 0].set_title("D's predicted label map", fontsize=9, loc="left")
axes[2, 0].set_title("D's p(fake) per pixel", fontsize=9, loc="left")
fig.tight_layout()

print(f"mean p(fake): {p_fake.mean():.2f} on samples, "
      f"{p_fake_real.mean():.2f} on real images")
assert predicted.shape == (4, 16, 16)
assert int(predicted.min()) >= 0 and int(predicted.max()) < cfg.model.num_classes
assert p_fake.mean() > p_fake_real.mean()  # even after 30 steps D tells them apart
