"""Sampling from a trained OCO-GAN checkpoint: unconditional, conditional and interpolations.

The functions here are what ``oco-gan generate`` runs; they can be used from code as well:

* :func:`load_generator`: rebuild the generator of a checkpoint (the EMA weights by default).
* :func:`generate_unconditional`: ``num`` samples from seeded latents ``z_u``, with optional
  truncation (towards the mean base map of the mapping network).
* :func:`generate_conditional`: ``per_label`` diverse samples for each of a batch of label maps.
* :func:`interpolate`: a row of images along the great circle (slerp) between two seeded latents,
  unconditionally or on a fixed label map.
* :func:`read_label_maps`: label PNGs of class ids, checked against the model (range and size).

Every sample is a pure function of the checkpoint, the seed and the arguments: the same call gives
the same images (on the same device and torch build); the batch size changes them by float
rounding at most.

Images are returned as float tensors in ``[-1, 1]`` (the generator's output, clamped).
"""

from __future__ import annotations

import math
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Dict, List, Optional, Sequence, Tuple, Union

import numpy as np
import torch
from einops import rearrange

from .config import OCOGANConfig
from .model import Generator

__all__ = [
    "LoadedGenerator",
    "ema_generator_state",
    "generate_conditional",
    "generate_unconditional",
    "image_grid",
    "interpolate",
    "load_generator",
    "palette_for",
    "read_label_maps",
    "save_images",
    "slerp",
]

PathLike = Union[str, "os.PathLike[str]"]

#: Label maps whose aspect ratio differs from the model's by more than this (relative) are
#: rejected; closer ones of another size are resized with nearest-neighbour sampling.
ASPECT_TOLERANCE = 0.02


@dataclass
class LoadedGenerator:
    """A generator rebuilt from a checkpoint.

    Attributes:
        G: The :class:`~recipes.oco_gan.model.Generator` (eval mode, no gradients).
        config: The run's :class:`~recipes.oco_gan.config.OCOGANConfig`.
        step: Training step of the checkpoint.
        ema: Whether ``G`` holds the EMA weights.
        path: The checkpoint file.
    """

    G: Generator
    config: OCOGANConfig
    step: int
    ema: bool
    path: Path


def ema_generator_state(state: Dict[str, Any], path: PathLike) -> Dict[str, torch.Tensor]:
    """The generator's state dict inside an ``ExponentialMovingAverage`` state (``shadow.*``
    entries; ``path`` names the file in the error when there are none)."""
    prefix = "shadow."
    out = {k[len(prefix):]: v for k, v in state.items() if k.startswith(prefix)}
    if not out:
        raise ValueError(f"ckpt: {path} has a G_ema entry without 'shadow.*' generator weights")
    return out


def load_generator(
    path: PathLike,
    *,
    device: Optional[Union[str, torch.device]] = None,
    ema: bool = True,
) -> LoadedGenerator:
    """Rebuild the generator saved in an ``oco-gan train`` checkpoint.

    Args:
        path: A ``checkpoint.pt`` (a dict with ``config``, ``G``, ``G_ema``, ``step``, ...), or
            a generator exported by :func:`~recipes.oco_gan.pretrained.export_generator`
            (float16 on disk, float32 once loaded).
        device: Device for the generator (default: CPU).
        ema: Load the exponential moving average of the weights (``G_ema``, what the paper
            evaluates); ``False`` loads the raw trained weights ``G``.

    Returns:
        A :class:`LoadedGenerator`.

    Raises:
        FileNotFoundError: ``path`` does not exist.
        ValueError: ``path`` is not an OCO-GAN checkpoint.

    Example:
        >>> import tempfile, os
        >>> from recipes.oco_gan.config import apply_overrides, get_preset
        >>> cfg = apply_overrides(get_preset("demo"), ["model.channel_multiplier=0.0625"])
        >>> G = Generator(cfg.model)
        >>> ckpt = os.path.join(tempfile.mkdtemp(), "checkpoint.pt")
        >>> torch.save({"config": cfg.to_dict(), "G": G.state_dict(), "step": 7}, ckpt)
        >>> loaded = load_generator(ckpt, ema=False)
        >>> loaded.step, loaded.G(z=torch.randn(1, cfg.model.z_dim)).shape
        (7, torch.Size([1, 3, 32, 32]))
    """
    path = Path(path).expanduser()
    if not path.is_file():
        raise FileNotFoundError(f"ckpt: no checkpoint file at {path}")
    from ganblocks.train import load_checkpoint

    state = load_checkpoint(path)  # checksum verified: a damaged file is a clear error
    if not isinstance(state, dict) or "config" not in state:
        raise ValueError(f"ckpt: {path} is not an oco-gan checkpoint (no 'config' entry)")
    config = OCOGANConfig.from_dict(state["config"])
    key = "G_ema" if ema else "G"
    if state.get(key) is None:
        hint = " (pass ema=False / --no-ema to use the raw weights G)" if ema else ""
        raise ValueError(f"ckpt: {path} has no {key!r} weights{hint}")
    weights = ema_generator_state(state[key], path) if ema else state[key]
    G = Generator(config.model)
    if state.get("format") == "oco-gan-generator":
        # A generator exported for shipping (recipes.oco_gan.pretrained): stored in float16.
        weights = {k: v.float() if v.is_floating_point() else v for k, v in weights.items()}
    dtype = next(iter(weights.values())).dtype
    G = G.to(dtype)
    G.load_state_dict(weights)
    G = G.eval().requires_grad_(False)
    if device is not None:
        G = G.to(device)
    return LoadedGenerator(G=G, config=config, step=int(state.get("step", 0)), ema=ema, path=path)


def _device_dtype(G: Generator) -> Tuple[torch.device, torch.dtype]:
    p = G.synthesis.const
    return p.device, p.dtype


def _check_count(value: object, name: str, *, minimum: int = 1) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or value < minimum:
        raise ValueError(f"{name}: expected an integer >= {minimum}, got {value!r}")
    return value


def _check_truncation(psi: object) -> float:
    if isinstance(psi, bool) or not isinstance(psi, (int, float)) or not math.isfinite(psi):
        raise ValueError(f"truncation: expected a finite number (1 = none), got {psi!r}")
    return float(psi)


@torch.no_grad()
def generate_unconditional(
    G: Generator,
    num: int,
    *,
    seed: int = 0,
    truncation: float = 1.0,
    batch: int = 32,
    truncation_center: Optional[torch.Tensor] = None,
) -> torch.Tensor:
    """``num`` unconditional samples from latents drawn by a CPU generator seeded with ``seed``.

    Args:
        G: The generator.
        num: Number of samples.
        seed: Seed of the latents ``z_u: [num, z_dim]`` (drawn all at once).
        truncation: ψ; the mapping network's base map is moved to ``c + ψ·(w − c)`` with ``c``
            the mean base map (:meth:`Generator.mean_base_map`); 1 = no truncation.
        batch: Samples per forward pass (changes the result by float rounding at most: the
            modulated convolutions group by batch, ~1e-5 at the output).
        truncation_center: The centre ``c`` (computed when ``None`` and ``truncation != 1``).

    Returns:
        ``[num, 3, H, W]`` float images in ``[-1, 1]`` on ``G``'s device.

    Example:
        >>> from recipes.oco_gan.config import apply_overrides, get_preset
        >>> cfg = apply_overrides(get_preset("demo"), ["model.channel_multiplier=0.0625"])
        >>> G = Generator(cfg.model).eval()
        >>> a = generate_unconditional(G, 3, seed=1, batch=2)
        >>> b = generate_unconditional(G, 3, seed=1, batch=3)
        >>> a.shape, torch.allclose(a, b, atol=1e-4)
        (torch.Size([3, 3, 32, 32]), True)
    """
    _check_count(num, "num")
    _check_count(batch, "batch")
    psi = _check_truncation(truncation)
    device, dtype = _device_dtype(G)
    z = torch.randn(num, G.z_dim, generator=torch.Generator().manual_seed(int(seed)))
    if psi != 1.0 and truncation_center is None:
        truncation_center = G.mean_base_map()
    out = [G(z=zb.to(device, dtype), truncation=psi, truncation_center=truncation_center)
           for zb in z.split(batch)]
    return torch.cat(out).clamp(-1.0, 1.0)


@torch.no_grad()
def generate_conditional(
    G: Generator,
    labels: torch.Tensor,
    *,
    per_label: int = 1,
    seed: int = 0,
    batch: int = 32,
) -> torch.Tensor:
    """``per_label`` samples for each label map, with latents ``z_c`` drawn from ``seed``.

    Args:
        G: The generator.
        labels: Integer class ids ``[L, H, W]`` in ``[0, N)`` at the model's resolution.
        per_label: Samples per label map (each with its own ``z_c``).
        seed: Seed of the latents ``z_c: [L, per_label, z_dim]`` (drawn all at once).
        batch: Samples per forward pass (changes the result by float rounding at most).

    Returns:
        ``[L, per_label, 3, H, W]`` float images in ``[-1, 1]`` on ``G``'s device.

    Example:
        >>> from recipes.oco_gan.config import apply_overrides, get_preset
        >>> cfg = apply_overrides(get_preset("demo"), ["model.channel_multiplier=0.0625"])
        >>> G = Generator(cfg.model).eval()
        >>> labels = torch.randint(0, cfg.model.num_classes, (2, 32, 32))
        >>> generate_conditional(G, labels, per_label=3).shape
        torch.Size([2, 3, 3, 32, 32])
    """
    _check_count(per_label, "per_label")
    _check_count(batch, "batch")
    if not isinstance(labels, torch.Tensor) or labels.ndim != 3 or labels.is_floating_point():
        raise ValueError(
            f"labels: expected integer class ids [L, H, W], got "
            f"{tuple(labels.shape) if isinstance(labels, torch.Tensor) else type(labels)}"
        )
    device, dtype = _device_dtype(G)
    n = labels.shape[0]
    gen = torch.Generator().manual_seed(int(seed))
    z = torch.randn(n, per_label, G.z_dim, generator=gen)
    flat_z = rearrange(z, "l k d -> (l k) d")
    flat_labels = labels.repeat_interleave(per_label, dim=0)
    out = [G(label=lb.to(device), z=zb.to(device, dtype))
           for lb, zb in zip(flat_labels.split(batch), flat_z.split(batch))]
    images = torch.cat(out).clamp(-1.0, 1.0)
    return rearrange(images, "(l k) c h w -> l k c h w", l=n)


def slerp(a: torch.Tensor, b: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
    """Spherical interpolation between rows ``a, b: [D]`` at ``t: [T]`` → ``[T, D]``.

    Follows the great circle between the directions of ``a`` and ``b`` and interpolates the norm
    linearly (Gaussian latents keep a typical norm); falls back to linear interpolation when the
    two are (anti)parallel.

    Example:
        >>> a, b = torch.tensor([1.0, 0.0]), torch.tensor([0.0, 1.0])
        >>> slerp(a, b, torch.tensor([0.0, 0.5, 1.0]))
        tensor([[1.0000, 0.0000],
                [0.7071, 0.7071],
                [0.0000, 1.0000]])
    """
    t = t.to(a.dtype).reshape(-1, 1)
    na, nb = a.norm(), b.norm()
    ua, ub = a / na.clamp_min(1e-12), b / nb.clamp_min(1e-12)
    omega = torch.arccos((ua * ub).sum().clamp(-1.0, 1.0))
    norm = (1 - t) * na + t * nb
    if float(torch.sin(omega).abs()) < 1e-6:
        return (1 - t) * a + t * b
    direction = (torch.sin((1 - t) * omega) * ua + torch.sin(t * omega) * ub) / torch.sin(omega)
    return direction * norm


@torch.no_grad()
def interpolate(
    G: Generator,
    steps: int,
    *,
    seed: int = 0,
    label: Optional[torch.Tensor] = None,
    truncation: float = 1.0,
    truncation_center: Optional[torch.Tensor] = None,
) -> torch.Tensor:
    """``steps`` images along the slerp between two latents drawn from ``seed``.

    Without ``label``: unconditional samples from ``z_u`` (truncation applies). With ``label``
    (``[H, W]`` class ids): conditional samples of that map, interpolating ``z_c``, so the layout
    stays and the appearance changes.

    Args:
        G: The generator.
        steps: Number of images (>= 2), the two ends included.
        seed: Seed of the two end latents ``[2, z_dim]``.
        label: Optional label map ``[H, W]``.
        truncation: ψ of the unconditional branch (see :func:`generate_unconditional`).
        truncation_center: Its centre (computed when needed and ``None``).

    Returns:
        ``[steps, 3, H, W]`` float images in ``[-1, 1]``.

    Example:
        >>> from recipes.oco_gan.config import apply_overrides, get_preset
        >>> cfg = apply_overrides(get_preset("demo"), ["model.channel_multiplier=0.0625"])
        >>> G = Generator(cfg.model).eval()
        >>> row = interpolate(G, 5, seed=3)
        >>> ends = generate_unconditional(G, 2, seed=3)  # the same two latents
        >>> row.shape, torch.allclose(row[[0, -1]], ends, atol=1e-3)  # batch-size rounding
        (torch.Size([5, 3, 32, 32]), True)
    """
    _check_count(steps, "steps", minimum=2)
    psi = _check_truncation(truncation)
    device, dtype = _device_dtype(G)
    ends = torch.randn(2, G.z_dim, generator=torch.Generator().manual_seed(int(seed)))
    z = slerp(ends[0], ends[1], torch.linspace(0.0, 1.0, steps))
    z[0], z[-1] = ends[0], ends[1]  # exact ends (no rounding of the slerp)
    z = z.to(device, dtype)
    if label is None:
        if psi != 1.0 and truncation_center is None:
            truncation_center = G.mean_base_map()
        out = G(z=z, truncation=psi, truncation_center=truncation_center)
    else:
        if not isinstance(label, torch.Tensor) or label.ndim != 2:
            raise ValueError("label: expected one integer label map [H, W]")
        out = G(label=label.to(device).expand(steps, -1, -1), z=z)
    return out.clamp(-1.0, 1.0)


# --------------------------------------------------------------------------------------------------
# Label maps in, images out
# --------------------------------------------------------------------------------------------------

LABEL_SUFFIXES = (".png",)


def _label_files(path: Path) -> List[Path]:
    if path.is_dir():
        files = sorted(p for p in path.iterdir() if p.suffix.lower() in LABEL_SUFFIXES)
        if not files:
            raise FileNotFoundError(f"labels: the folder {path} holds no .png label maps")
        return files
    if not path.is_file():
        raise FileNotFoundError(f"labels: no label PNG or folder at {path}")
    return [path]


def read_label_maps(
    path: PathLike,
    *,
    num_classes: int,
    resolution: Tuple[int, int],
) -> Tuple[List[Path], torch.Tensor]:
    """Read one label PNG, or every ``.png`` of a folder (sorted by name), as class ids.

    Each file must hold the model's class ids ``0 … N−1`` (don't-care included) as a
    single-channel PNG (mode L, P or I; grey RGB is accepted), not the raw ids of a data set's
    files (e.g. Cityscapes' ``labelIds``). A map of the model's size is used as it is; a map of
    another size with the same aspect ratio (within 2 %) is resized with nearest-neighbour
    sampling; another aspect ratio is an error.

    Args:
        path: A ``.png`` file or a folder of them.
        num_classes: N.
        resolution: The model's ``(H, W)``.

    Returns:
        ``(files, labels)`` with ``labels: int64 [L, H, W]``.

    Raises:
        FileNotFoundError: nothing to read at ``path``.
        ValueError: naming the file, for out-of-range values, a wrong aspect ratio or a colour
            image.

    Example:
        >>> import os, tempfile
        >>> from PIL import Image
        >>> folder = tempfile.mkdtemp()
        >>> Image.fromarray(np.full((8, 8), 2, np.uint8)).save(os.path.join(folder, "a.png"))
        >>> files, labels = read_label_maps(folder, num_classes=3, resolution=(16, 16))
        >>> [f.name for f in files], labels.shape, labels.unique().tolist()
        (['a.png'], torch.Size([1, 16, 16]), [2])
    """
    from ganblocks.data import load_label_map, resize_label

    files = _label_files(Path(path).expanduser())
    h, w = (int(s) for s in resolution)
    out = []
    for file in files:
        raw = load_label_map(file)
        lo, hi = int(raw.min()), int(raw.max())
        if lo < 0 or hi >= num_classes:
            raise ValueError(
                f"labels: {file} has class ids in [{lo}, {hi}], but the model has "
                f"{num_classes} classes (expected values in [0, {num_classes - 1}], don't-care "
                "included; raw data-set ids must be mapped to the model's classes first)"
            )
        lh, lw = raw.shape
        if (lh, lw) != (h, w):
            if abs(lw * h - lh * w) > ASPECT_TOLERANCE * max(lw * h, lh * w):
                raise ValueError(
                    f"labels: {file} is {lw}x{lh} (WxH) but the model generates {w}x{h}: "
                    "a different aspect ratio (only a rescale of the same shape is accepted)"
                )
            raw = resize_label(raw, (h, w))
        out.append(torch.from_numpy(np.ascontiguousarray(raw, dtype=np.int64)))
    return files, torch.stack(out)


def palette_for(config: OCOGANConfig) -> np.ndarray:
    """Class colours ``[N, 3]`` uint8 for the run's data set (its own palette when it has one)."""
    from ganblocks.data import make_palette

    if config.data.name == "synthetic":
        from .data.synthetic import SyntheticScenes

        palette = np.asarray(SyntheticScenes.PALETTE, dtype=np.uint8)
        if len(palette) == config.model.num_classes:
            return palette
    return make_palette(config.model.num_classes)


def image_grid(images: torch.Tensor) -> torch.Tensor:
    """Tile ``images: [rows, cols, 3, H, W]`` (uint8) into one uint8 ``[3, rows·H, cols·W]``."""
    return rearrange(images, "r c ch h w -> ch (r h) (c w)")


def square_grid(images: torch.Tensor) -> torch.Tensor:
    """Tile ``images: [n, 3, H, W]`` (uint8) into a near-square grid (blank cells at the end)."""
    n = images.shape[0]
    cols = math.ceil(math.sqrt(n))
    rows = math.ceil(n / cols)
    pad = images.new_zeros((rows * cols - n, *images.shape[1:]))
    cells = torch.cat([images, pad])
    return rearrange(cells, "(r c) ch h w -> ch (r h) (c w)", r=rows, c=cols)


def save_images(images: torch.Tensor, folder: PathLike, names: Sequence[str]) -> List[Path]:
    """Save ``images: [n, 3, H, W]`` (floats in ``[-1, 1]``) as 8-bit PNGs ``folder/name.png``."""
    from PIL import Image

    from .visualize import to_uint8

    if images.shape[0] != len(names):
        raise ValueError(f"names: expected {images.shape[0]} names, got {len(names)}")
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    arrays = rearrange(to_uint8(images).cpu(), "n c h w -> n h w c").numpy()
    paths = []
    for array, name in zip(arrays, names):
        path = folder / f"{name}.png"
        Image.fromarray(array).save(path)
        paths.append(path)
    return paths
