"""Sample grids of every arm at its best snapshots, side by side in one picture.

Row 0 shows the label maps (the first validation maps); then one row per arm: its unconditional
samples from the snapshot its FID selects (``best.pt``) on the left, its conditional samples on
those maps from the snapshot its CFID selects (``best_cfid.pt``) on the right. Every arm draws
the same latents and noise (fixed seeds), so rows differ only by their generators. A branch an arm
does not train is left blank; an arm without a best snapshot (no curve) uses its last checkpoint.
"""

from __future__ import annotations

from pathlib import Path
from typing import Optional, Sequence

import torch
from einops import rearrange

from .plan import Arm

__all__ = ["best_snapshot", "samples_grid"]

#: Seeds of the grids' latents (unconditional) and noise (conditional).
GRID_SEED = 1234


def best_snapshot(run_dir: Path, metric: str) -> Path:
    """The checkpoint that ``metric`` (``"FID"`` or ``"CFID"``) selects in ``run_dir``, else the
    run's last checkpoint."""
    name = {"FID": "best.pt", "CFID": "best_cfid.pt"}[metric]
    path = run_dir / name
    return path if path.is_file() else run_dir / "checkpoint.pt"


def samples_grid(out: Path, arms: Sequence[Arm], *, num: int = 8,
                 path: Optional[Path] = None) -> Path:
    """Write the grid of ``arms`` (run directories ``out/arms/NAME``) to ``path`` (default
    ``out/samples.png``); ``num`` samples per branch and arm. Returns the path.

    The picture is ``(1 + len(arms))`` rows of ``2 · num`` images (enlarged 2x when small).
    """
    from ..generate import generate_conditional, generate_unconditional, load_generator, palette_for
    from ..segmenter import real_dataset
    from ..visualize import save_image_grid, to_uint8

    path = out / "samples.png" if path is None else path
    rows, labels, palette, blank = [], None, None, None
    for arm in arms:
        run = out / "arms" / arm.name
        cells = []
        for metric in ("FID", "CFID"):
            scored = metric in arm.scored
            loaded = load_generator(best_snapshot(run, metric)) if scored or blank is None \
                else None
            if labels is None:  # the first arm fixes the maps, the palette and the size
                cfg = loaded.config
                val = real_dataset(cfg, "val")
                labels = torch.stack([val.get_item(i, flip=False)["label"]
                                      for i in range(min(num, len(val)))])
                palette = palette_for(cfg)
                blank = torch.full((len(labels), 3, *labels.shape[1:]), 255, dtype=torch.uint8)
            if not scored:
                cells.append(blank)
            elif metric == "FID":
                cells.append(to_uint8(generate_unconditional(loaded.G, num=len(labels),
                                                             seed=GRID_SEED)))
            else:
                cells.append(to_uint8(generate_conditional(loaded.G, labels,
                                                           seed=GRID_SEED)[:, 0]))
        rows.append(torch.cat(cells))
    from ganblocks.data import colorize_labels

    colors = torch.as_tensor(colorize_labels(labels, palette=torch.as_tensor(palette),
                                             channels_first=True)).to(torch.uint8)
    rows.insert(0, torch.cat([blank, colors]))
    grid = rearrange(torch.stack(rows), "r n c h w -> c (r h) (n w)")
    scale = 2 if labels.shape[-1] < 64 else 1
    return save_image_grid(grid, path, scale=scale)
