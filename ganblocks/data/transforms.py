"""Loading, resizing and flipping image/label-map pairs so that they stay aligned.

Images are resized with bicubic interpolation and scaled to [-1, 1]; label maps are resized with
nearest-neighbour interpolation (class ids must never be blended). A horizontal flip is applied to
both or to neither.
"""

from __future__ import annotations

import os
from typing import Optional, Sequence, Tuple, Union

import einops
import numpy as np
import torch
from PIL import Image

__all__ = [
    "hflip_pair",
    "image_to_tensor",
    "load_label_map",
    "load_rgb",
    "parse_resolution",
    "resize_image",
    "resize_label",
]

PathLike = Union[str, "os.PathLike[str]"]
Resolution = Union[int, Sequence[int]]


def parse_resolution(resolution: Optional[Resolution], *, name: str = "resolution"):
    """Normalise a resolution argument to ``(H, W)`` (or ``None``).

    Args:
        resolution: ``None``, an int ``S`` (meaning ``S x S``) or a pair ``(H, W)`` of positive
            ints.
        name: Argument name used in error messages.

    Returns:
        ``(H, W)`` as a tuple of ints, or ``None``.

    Example:
        >>> parse_resolution(64), parse_resolution((32, 64)), parse_resolution(None)
        ((64, 64), (32, 64), None)
    """
    if resolution is None:
        return None
    if isinstance(resolution, (int, np.integer)) and not isinstance(resolution, bool):
        hw = (int(resolution), int(resolution))
    elif (
        isinstance(resolution, (tuple, list))
        and len(resolution) == 2
        and all(isinstance(v, (int, np.integer)) and not isinstance(v, bool) for v in resolution)
    ):
        hw = (int(resolution[0]), int(resolution[1]))
    else:
        raise TypeError(f"{name} must be an int or a pair (H, W) of ints, got {resolution!r}")
    if min(hw) < 1:
        raise ValueError(f"{name} must be positive, got {hw}")
    return hw


def _to_8bit(img: Image.Image) -> Image.Image:
    """8-bit grey from a 16/32-bit integer or float single-channel image, scaled by its depth."""
    arr = np.asarray(img)
    if img.mode == "F":  # floats: [0, 1] when they fit, else already 0-255
        top = 1.0 if float(np.nanmax(arr, initial=0.0)) <= 1.0 else 255.0
    elif img.mode.startswith("I;16"):
        top = 65535.0
    else:  # "I": 32-bit storage; 16-bit data when every value fits
        top = 65535.0 if int(arr.max(initial=0)) <= 65535 else float(2**32 - 1)
    out = np.rint(np.clip(arr.astype(np.float64), 0, top) * (255.0 / top)).astype(np.uint8)
    return Image.fromarray(out, mode="L")


def load_rgb(path: PathLike) -> Image.Image:
    """Open an image file as 8-bit RGB (grey and palette images are converted).

    High bit depths are scaled, not clipped: a 16-bit PNG's value ``v`` becomes
    ``round(v · 255 / 65535)`` (16-bit grey; Pillow keeps the high byte of 16-bit colour).

    Raises:
        FileNotFoundError: naming ``path`` when it does not exist.
        ValueError: naming ``path`` when it cannot be decoded.

    Example:
        >>> import os, tempfile
        >>> path = os.path.join(tempfile.mkdtemp(), "grey.png")
        >>> Image.new("L", (4, 2), 7).save(path)
        >>> img = load_rgb(path)
        >>> img.mode, img.size, img.getpixel((0, 0))
        ('RGB', (4, 2), (7, 7, 7))
        >>> Image.fromarray(np.full((2, 4), 32896, np.uint16)).save(path)  # 16-bit grey
        >>> load_rgb(path).getpixel((0, 0))
        (128, 128, 128)
    """
    if not os.path.isfile(path):
        raise FileNotFoundError(f"image file not found: {os.fspath(path)}")
    try:
        with Image.open(path) as img:
            if img.mode in ("I", "F") or img.mode.startswith("I;16"):
                return _to_8bit(img).convert("RGB")
            return img.convert("RGB")
    except OSError as err:
        raise ValueError(f"cannot read image {os.fspath(path)}: {err}") from err


def load_label_map(path: PathLike) -> np.ndarray:
    """Read a single-channel label map (PNG of mode L, P, I or I;16) as raw integer values.

    Palette ("P") images give their palette indices. RGB(A) files are accepted only when every
    pixel is grey (R == G == B), which is how some data sets store masks.

    Returns:
        int64 array ``[H, W]``.

    Raises:
        FileNotFoundError: naming ``path`` when it does not exist.
        ValueError: naming ``path`` when it holds colour (not class ids) or cannot be decoded.

    Example:
        >>> import os, tempfile
        >>> path = os.path.join(tempfile.mkdtemp(), "label.png")
        >>> Image.fromarray(np.array([[0, 3], [255, 1]], np.uint8)).save(path)
        >>> load_label_map(path)
        array([[  0,   3],
               [255,   1]])
    """
    if not os.path.isfile(path):
        raise FileNotFoundError(f"label file not found: {os.fspath(path)}")
    try:
        with Image.open(path) as img:
            img.load()
            mode = img.mode
            arr = np.asarray(img)
    except OSError as err:
        raise ValueError(f"cannot read label map {os.fspath(path)}: {err}") from err
    if arr.ndim == 3:
        if mode not in ("RGB", "RGBA") or not (
            np.array_equal(arr[..., 0], arr[..., 1]) and np.array_equal(arr[..., 0], arr[..., 2])
        ):
            raise ValueError(
                f"label map {os.fspath(path)} has colour channels (mode {mode}); expected a "
                "single-channel PNG of class ids (mode L, P or I)"
            )
        arr = arr[..., 0]
    if arr.dtype == bool:
        arr = arr.astype(np.uint8)
    return arr.astype(np.int64)


def resize_image(image: Image.Image, size: Tuple[int, int]) -> Image.Image:
    """Bicubic resize of a PIL image to ``size = (H, W)`` (no-op if already that size).

    Example:
        >>> resize_image(Image.new("RGB", (64, 32)), (16, 32)).size  # PIL sizes are (W, H)
        (32, 16)
    """
    h, w = size
    if image.size == (w, h):
        return image
    return image.resize((w, h), resample=Image.Resampling.BICUBIC)


def resize_label(label: np.ndarray, size: Tuple[int, int]) -> np.ndarray:
    """Nearest-neighbour resize of an integer label map ``[H, W]`` to ``size = (H', W')``.

    Example:
        >>> resize_label(np.array([[0, 1], [2, 3]]), (4, 4))[::2, ::2].tolist()
        [[0, 1], [2, 3]]
    """
    h, w = size
    if label.shape == (h, w):
        return label
    lo, hi = int(label.min()), int(label.max())
    if lo < -(2**31) or hi >= 2**31:
        raise ValueError(f"label values out of int32 range: [{lo}, {hi}]")
    img = Image.fromarray(np.ascontiguousarray(label, dtype=np.int32))  # mode "I"
    img = img.resize((w, h), resample=Image.Resampling.NEAREST)
    return np.asarray(img).astype(np.int64)


def image_to_tensor(image: Union[Image.Image, np.ndarray]) -> torch.Tensor:
    """8-bit RGB image (PIL or uint8 ``[H, W, 3]``) to float32 ``[3, H, W]`` in [-1, 1].

    Example:
        >>> image_to_tensor(np.full((2, 2, 3), 255, np.uint8)).unique().tolist()
        [1.0]
    """
    arr = np.asarray(image)
    if arr.ndim != 3 or arr.shape[2] != 3 or arr.dtype != np.uint8:
        raise ValueError(f"image must be uint8 [H, W, 3], got {arr.dtype} {arr.shape}")
    chw = einops.rearrange(arr, "h w c -> c h w")
    return torch.from_numpy(np.ascontiguousarray(chw)).float().div_(127.5).sub_(1.0)


def hflip_pair(image: torch.Tensor, label: torch.Tensor) -> Tuple[torch.Tensor, torch.Tensor]:
    """Mirror an image ``[..., C, H, W]`` and its label map ``[..., H, W]`` left-right together.

    Example:
        >>> img, lab = hflip_pair(torch.arange(4.).view(1, 2, 2), torch.tensor([[0, 1], [2, 3]]))
        >>> img[0].tolist(), lab.tolist()
        ([[1.0, 0.0], [3.0, 2.0]], [[1, 0], [3, 2]])
    """
    if image.shape[-1] != label.shape[-1] or image.shape[-2] != label.shape[-2]:
        raise ValueError(
            f"image [..., C, H, W] and label [..., H, W] sizes differ: "
            f"{tuple(image.shape)} vs {tuple(label.shape)}"
        )
    return image.flip(-1), label.flip(-1)
