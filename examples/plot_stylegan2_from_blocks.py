r"""
StyleGAN2 built from the blocks, running NVlabs' weights
========================================================

:mod:`recipes.stylegan2` assembles StyleGAN2's generator and discriminator from
:mod:`ganblocks.nn` (:class:`~ganblocks.nn.MappingNetwork`, :class:`~ganblocks.nn.ModulatedConv2d`,
:class:`~ganblocks.nn.NoiseInjection`, :class:`~ganblocks.nn.ToRGB`, ...). Its constructors take
the arguments of NVlabs' ``networks_stylegan2.py``, and ``from_nvlabs`` maps the original
state-dict keys onto its modules, so the original weights compute the original images.

The weights here are the project's golden test data: small networks of both architectures
(``skip`` and ``resnet``) created and run with the original NVlabs code, stored as that code names
its keys, together with its inputs and outputs. A real ``network-snapshot-*.pkl`` is read with
:func:`recipes.stylegan2.nvlabs_pickle.load_nvlabs_pickle`, which rebuilds the same modules from
the pickle's constructor arguments and state without executing the source code it embeds.
"""

from collections import Counter
from pathlib import Path

import matplotlib.pyplot as plt
import torch

import recipes
from recipes.stylegan2 import Discriminator, Generator

golden = Path(recipes.__file__).resolve().parents[1] / "tests" / "golden" / "baselines.pt"
cases = [c for c in torch.load(golden, weights_only=False)["cases"]
         if c["kind"] == "nvlabs_stylegan2"]
print([(c["name"], c["generator_kwargs"]["architecture"]) for c in cases])

# %%
# Build from the original constructor arguments, load the original keys
# ----------------------------------------------------------------------

case = cases[0]
print(case["generator_kwargs"])
G = Generator.from_nvlabs(case["G_state"], **case["generator_kwargs"]).eval()
D = Discriminator.from_nvlabs(case["D_state"], **case["discriminator_kwargs"]).eval()
blocks = Counter(type(m).__name__ for m in G.modules()
                 if type(m).__module__.startswith("ganblocks"))
print("ganblocks modules in G:", dict(blocks))
assert blocks["ModulatedConv2d"] > 0 and blocks["MappingNetwork"] == 1

# %%
# The same images as the original code
# ------------------------------------
# Mapping with the stored truncation, then synthesis with constant noise; the discriminator
# scores the original images. Relative errors are float32 rounding.


def rel_err(a: torch.Tensor, b: torch.Tensor) -> float:
    return ((a - b).norm() / b.norm()).item()


fig, axes = plt.subplots(len(cases), 9, figsize=(12, 1.6 * len(cases) + 0.6))
for row, case in enumerate(cases):
    G = Generator.from_nvlabs(case["G_state"], **case["generator_kwargs"]).eval()
    D = Discriminator.from_nvlabs(case["D_state"], **case["discriminator_kwargs"]).eval()
    c = case["c"] if case["c"].numel() else None
    cutoff = None if case["truncation_cutoff"] < 0 else case["truncation_cutoff"]
    with torch.no_grad():
        ws = G.mapping(case["z"], c, truncation_psi=case["truncation_psi"],
                       truncation_cutoff=cutoff)
        img = G.synthesis(ws, noise_mode="const")
        logits = D(case["img_noise_const"], c)
    errors = {"ws": rel_err(ws, case["ws"]), "images": rel_err(img, case["img_noise_const"]),
              "D logits": rel_err(logits, case["D_logits"])}
    print(case["name"], {k: f"{v:.1e}" for k, v in errors.items()})
    assert max(errors.values()) < 1e-5
    for k in range(4):
        for col, (picture, title) in enumerate([(img[k], "ours"),
                                                (case["img_noise_const"][k], "NVlabs")]):
            ax = axes[row, 2 * k + col]
            ax.imshow(((picture.permute(1, 2, 0) + 1) / 2).clamp(0, 1))
            ax.set_title(title, fontsize=8)
            ax.axis("off")
    diff = (img - case["img_noise_const"]).abs().max(dim=1).values[0]
    shown = axes[row, 8].imshow(diff, cmap="magma")
    axes[row, 8].set_title("|ours − NVlabs|", fontsize=8)
    axes[row, 8].axis("off")
    fig.colorbar(shown, ax=axes[row, 8], fraction=0.046, format="%.0e")
    axes[row, 0].text(-0.15, 0.5, f"{case['name']}\n{case['generator_kwargs']['architecture']}",
                      transform=axes[row, 0].transAxes, ha="right", va="center", fontsize=8)
fig.suptitle("Random networks (weights perturbed away from their initialisation), 4 latents each",
             fontsize=9)
fig.tight_layout()

# %%
# And back to the original key names
# ----------------------------------
# ``to_nvlabs`` writes a state dict with NVlabs' keys, which the original code (or this one) loads.

state = G.to_nvlabs()
assert set(state) == set(cases[-1]["G_state"])
print(f"{len(state)} tensors, e.g. {sorted(state)[:3]}")
