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

__all__ = ["ROW_FILE", "arm_row", "best_snapshot", "samples_grid", "save_arm_row"]

#: Seeds of the grids' latents (unconditional) and noise (conditional).
GRID_SEED = 1234
#: An arm's row of the grid, kept in its run directory once the arm is finished.
ROW_FILE = "samples_row.png"


def best_snapshot(run_dir: Path, metric: str) -> Path:
    """The checkpoint that ``metric`` (``"FID"`` or ``"CFID"``) selects in ``run_dir``, else the
    run's last checkpoint."""
    name = {"FID": "best.pt", "CFID": "best_cfid.pt"}[metric]
    path = run_dir / name
    return path if path.is_file() else run_dir / "checkpoint.pt"


def _grid_labels(config, num: int) -> torch.Tensor:
    """The first ``num`` validation label maps of ``config``'s data set ``[n, H, W]``."""
    from ..segmenter import real_dataset

    val = real_dataset(config, "val")
    return torch.stack([val.get_item(i, flip=False)["label"] for i in range(min(num, len(val)))])


def _load_row(path: Path, cells: int) -> Optional[torch.Tensor]:
    import numpy as np
    from PIL import Image

    if not path.is_file():
        return None
    image = torch.from_numpy(np.asarray(Image.open(path).convert("RGB")).copy())
    if image.shape[1] % cells:
        return None  # written with another ``num``
    return rearrange(image, "h (n w) c -> n c h w", n=cells)


def arm_row(run_dir: Path, arm: Arm, *, num: int = 8) -> torch.Tensor:
    """One arm's row of the grid as uint8 ``[2 · num, 3, H, W]``: ``num`` unconditional samples
    from its best-FID snapshot, then ``num`` conditional samples on the first validation maps
    from its best-CFID snapshot (white where the arm does not score that branch).

    A row saved by :func:`save_arm_row` (``run_dir/samples_row.png``, lossless) is read back
    instead, so the grid can be drawn after :func:`~.runner.compact_arm` removed the arm's
    checkpoints.
    """
    from ..config import OCOGANConfig
    from ..generate import generate_conditional, generate_unconditional, load_generator
    from ..visualize import to_uint8

    cached = _load_row(run_dir / ROW_FILE, 2 * num)
    if cached is not None:
        return cached
    labels = _grid_labels(OCOGANConfig.load(run_dir / "config.json"), num)
    cells = []
    for metric in ("FID", "CFID"):
        if metric not in arm.scored:
            cells.append(torch.full((len(labels), 3, *labels.shape[1:]), 255,
                                    dtype=torch.uint8))
            continue
        G = load_generator(best_snapshot(run_dir, metric)).G
        if metric == "FID":
            cells.append(to_uint8(generate_unconditional(G, num=len(labels), seed=GRID_SEED)))
        else:
            cells.append(to_uint8(generate_conditional(G, labels, seed=GRID_SEED)[:, 0]))
    return torch.cat(cells)


def save_arm_row(run_dir: Path, arm: Arm, *, num: int = 8) -> Path:
    """Draw :func:`arm_row` from the arm's snapshots and keep it as ``run_dir/samples_row.png``."""
    from ..visualize import save_image_grid

    path = run_dir / ROW_FILE
    path.unlink(missing_ok=True)  # draw it afresh from the snapshots
    row = arm_row(run_dir, arm, num=num)
    return save_image_grid(rearrange(row, "n c h w -> c h (n w)"), path)


def samples_grid(out: Path, arms: Sequence[Arm], *, num: int = 8,
                 path: Optional[Path] = None) -> Path:
    """Write the grid of ``arms`` (run directories ``out/arms/NAME``) to ``path`` (default
    ``out/samples.png``); ``num`` samples per branch and arm. Returns the path.

    The picture is ``(1 + len(arms))`` rows of ``2 · num`` images (enlarged 2x when small); each
    arm's row is :func:`arm_row`.
    """
    from ganblocks.data import colorize_labels

    from ..config import OCOGANConfig
    from ..generate import palette_for
    from ..visualize import save_image_grid

    path = out / "samples.png" if path is None else path
    # The first arm fixes the maps and the palette (every arm trains on the same data).
    config = OCOGANConfig.load(out / "arms" / arms[0].name / "config.json")
    labels = _grid_labels(config, num)
    rows = [arm_row(out / "arms" / arm.name, arm, num=num) for arm in arms]
    colors = torch.as_tensor(colorize_labels(labels, palette=torch.as_tensor(palette_for(config)),
                                             channels_first=True)).to(torch.uint8)
    blank = torch.full_like(colors, 255)
    rows.insert(0, torch.cat([blank, colors]))
    grid = rearrange(torch.stack(rows), "r n c h w -> c (r h) (n w)")
    scale = 2 if labels.shape[-1] < 64 else 1
    return save_image_grid(grid, path, scale=scale)
