"""Images from a trained generator: our checkpoints or NVlabs network pickles."""

from __future__ import annotations

from pathlib import Path
from typing import Optional, Sequence, Union

import numpy as np
import torch
from PIL import Image

from ganblocks.train import load_checkpoint

from .networks import Generator
from .nvlabs_pickle import load_nvlabs_pickle

__all__ = ["generate_images", "load_generator", "parse_seeds", "to_uint8"]


def load_generator(path: Union[str, Path]) -> Generator:
    """``G_ema`` of a recipe checkpoint (``.pt``) or of an NVlabs pickle (``.pkl``), eval mode."""
    path = Path(path)
    if path.suffix == ".pkl":
        nets = load_nvlabs_pickle(path)
        G = nets.get("G_ema", nets.get("G"))
        if G is None:
            raise ValueError(f"path: {path} holds no generator")
        return G  # type: ignore[return-value]
    state = load_checkpoint(path)
    if "generator_kwargs" not in state or "G_ema" not in state:
        raise ValueError(f"path: {path} is not a StyleGAN2 recipe checkpoint (no G_ema)")
    G = Generator(**state["generator_kwargs"])
    ema = {
        k.removeprefix("shadow."): v for k, v in state["G_ema"].items() if k.startswith("shadow.")
    }
    G.load_state_dict(ema)
    return G.eval()


def parse_seeds(text: str) -> list:
    """``'0-3,7'`` → ``[0, 1, 2, 3, 7]``."""
    seeds = []
    for part in text.split(","):
        lo, _, hi = part.partition("-")
        try:
            seeds.extend(range(int(lo), int(hi or lo) + 1))
        except ValueError:
            raise ValueError(f"seeds: expected e.g. '0-7' or '1,5,9', got {text!r}") from None
    return seeds


def to_uint8(images: torch.Tensor) -> np.ndarray:
    """``[N, C, H, W]`` in ``[-1, 1]`` → ``uint8 [N, H, W, C]``."""
    x = (images.detach().float().cpu() * 127.5 + 128).clamp(0, 255).to(torch.uint8)
    return x.permute(0, 2, 3, 1).numpy()


@torch.no_grad()
def generate_images(
    G: Generator,
    seeds: Sequence[int],
    out_dir: Union[str, Path],
    *,
    truncation_psi: float = 1.0,
    noise_mode: str = "const",
    class_idx: Optional[int] = None,
) -> list:
    """Write ``seed{seed:04d}.png`` per seed (``z`` drawn from ``numpy.random.RandomState(seed)``,
    as NVlabs' ``gen_images.py`` does); returns the paths."""
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    device = next(G.parameters()).device
    c = None
    if G.c_dim > 0:
        if class_idx is None or not 0 <= class_idx < G.c_dim:
            raise ValueError(f"class_idx: a conditional generator needs a class in [0, {G.c_dim})")
        c = torch.zeros(1, G.c_dim, device=device)
        c[0, class_idx] = 1
    paths = []
    for seed in seeds:
        z = torch.from_numpy(np.random.RandomState(seed).randn(1, G.z_dim)).float().to(device)
        img = G(z, c, truncation_psi=truncation_psi, noise_mode=noise_mode)
        arr = to_uint8(img)[0]
        path = out / f"seed{seed:04d}.png"
        Image.fromarray(arr[..., 0] if arr.shape[-1] == 1 else arr).save(path)
        paths.append(path)
    return paths
