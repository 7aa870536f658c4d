"""A map-style data set of image files paired with semantic label maps.

Data-set specific code only has to list the files (and say how raw label values map to class ids);
:class:`PairedImageLabelDataset` does the rest: decoding, resizing (bicubic images, nearest labels),
scaling to [-1, 1], a joint random horizontal flip, and label range checks whose errors name
the file.
"""

from __future__ import annotations

import copy
import hashlib
import os
import warnings
from typing import Any, Callable, Dict, List, Optional, Sequence, Tuple, Union

import numpy as np
import torch
from torch.utils.data import Dataset

from .transforms import (
    PathLike,
    Resolution,
    hflip_pair,
    image_to_tensor,
    load_label_map,
    load_rgb,
    parse_resolution,
    resize_image,
    resize_label,
)

__all__ = ["FlipRNG", "PairedImageLabelDataset", "fingerprint", "split_key"]

Key = Union[int, Tuple[int, bool]]


def split_key(key: Any, length: int) -> Tuple[int, Optional[bool]]:
    """Parse a data-set key: an index ``i`` or a pair ``(i, flip)`` (see :class:`InfiniteSampler`).

    Negative indices count from the end. Returns ``(index, flip or None)``.

    Example:
        >>> split_key(3, 10), split_key((-1, True), 10)
        ((3, None), (9, True))
    """
    flip = None
    if isinstance(key, (tuple, list)):
        if len(key) != 2:
            raise TypeError(f"key must be an index or a pair (index, flip), got {key!r}")
        key, flip = key
        flip = bool(flip)
    if isinstance(key, torch.Tensor) and key.numel() == 1:
        key = key.item()
    if isinstance(key, bool) or not isinstance(key, (int, np.integer)):
        raise TypeError(f"index must be an int, got {type(key).__name__}")
    index = int(key)
    if index < 0:
        index += length
    if not 0 <= index < length:
        raise IndexError(f"index {key} out of range for a data set of {length} items")
    return index, flip


def fingerprint(names: Sequence[str]) -> str:
    """Short hash of an ordered list of item names, to check that a saved split still fits.

    Example:
        >>> fingerprint(["a.png", "b.png"]) == fingerprint(["a.png", "b.png"])
        True
        >>> len(fingerprint(["a.png"]))
        16
    """
    h = hashlib.blake2b(digest_size=8)
    for name in names:
        h.update(name.encode("utf-8"))
        h.update(b"\0")
    return h.hexdigest()


class FlipRNG:
    """Coin flips for random horizontal flips, safe across DataLoader worker processes.

    A ``torch.Generator`` is created lazily in each process; its seed is ``seed`` when given, else
    ``torch.initial_seed()``, which a DataLoader sets to a distinct value in each worker.
    The object pickles without its generator, so each worker starts its own.

    Example:
        >>> a, b = FlipRNG(seed=0), FlipRNG(seed=0)
        >>> [a.coin() for _ in range(8)] == [b.coin() for _ in range(8)]
        True
    """

    def __init__(self, seed: Optional[int] = None) -> None:
        self.seed = seed
        self._gen: Optional[torch.Generator] = None
        self._pid: Optional[int] = None

    def coin(self) -> bool:
        """Return True with probability 1/2."""
        if self._gen is None or self._pid != os.getpid():
            seed = torch.initial_seed() if self.seed is None else self.seed
            self._gen = torch.Generator().manual_seed(int(seed) % (2**63))
            self._pid = os.getpid()
        return bool(torch.randint(0, 2, (1,), generator=self._gen).item())

    def __getstate__(self) -> Dict[str, Any]:
        return {"seed": self.seed}

    def __setstate__(self, state: Dict[str, Any]) -> None:
        self.__init__(state["seed"])


class PairedImageLabelDataset(Dataset):
    """Image files paired with label-map files, yielding aligned tensors.

    Each item is a dict::

        {"image": float32 [3, H, W] in [-1, 1], "label": int64 [H, W] (class ids in [0, N)),
         "has_label": bool, "index": int}

    An image whose label source is ``None`` is unlabelled: it yields ``has_label=False`` and an
    all-zero label map. A key may be an index or a pair ``(index, flip)`` that fixes the flip
    (used by :class:`~ganblocks.data.InfiniteSampler` for exactly reproducible flips); with a plain
    index and ``flip=True`` the flip is a fair coin.

    Args:
        images: Image file paths.
        labels: One label source per image (a path, ``None`` for unlabelled, or anything
            ``label_loader`` accepts).
        num_classes: Number of classes ``N``, don't-care included.
        resolution: Output ``(H, W)`` or an int for squares; ``None`` keeps each image's size.
        flip: Random horizontal flip of image and label together.
        class_names: ``N`` class names (default ``class_0 ...``).
        dontcare_index: Class id meaning "not annotated" (0) or ``None``.
        label_lut: Optional int array mapping raw label value ``v`` to class ``label_lut[v]``;
            ``-1`` entries (and values beyond its end) are invalid.
        label_loader: Callable mapping a label source to a raw int64 ``[h, w]`` array
            (default: :func:`load_label_map`). Must be picklable for DataLoader workers.
        item_names: One name per item (for :attr:`fingerprint`); default: the image paths.
        seed: Seed of the flip coin (default: per-process, see :class:`FlipRNG`).

    Example:
        >>> import tempfile, pathlib
        >>> from PIL import Image
        >>> d = pathlib.Path(tempfile.mkdtemp())
        >>> Image.new("RGB", (8, 4), (255, 0, 0)).save(d / "a.png")
        >>> Image.fromarray(np.ones((4, 8), np.uint8)).save(d / "a_label.png")
        >>> ds = PairedImageLabelDataset([d / "a.png"], [d / "a_label.png"], num_classes=2,
        ...                              resolution=(2, 4))
        >>> item = ds[0]
        >>> item["image"].shape, item["label"].shape, item["label"].unique().tolist()
        (torch.Size([3, 2, 4]), torch.Size([2, 4]), [1])
    """

    def __init__(
        self,
        images: Sequence[PathLike],
        labels: Sequence[Any],
        *,
        num_classes: int,
        resolution: Optional[Resolution] = None,
        flip: bool = False,
        class_names: Optional[Sequence[str]] = None,
        dontcare_index: Optional[int] = None,
        label_lut: Optional[np.ndarray] = None,
        label_loader: Optional[Callable[[Any], np.ndarray]] = None,
        item_names: Optional[Sequence[str]] = None,
        seed: Optional[int] = None,
    ) -> None:
        if len(images) != len(labels):
            raise ValueError(
                f"images and labels must have the same length, got {len(images)} and {len(labels)}"
            )
        if isinstance(num_classes, bool) or not isinstance(num_classes, (int, np.integer)):
            raise TypeError(f"num_classes must be an int, got {type(num_classes).__name__}")
        if num_classes < 1:
            raise ValueError(f"num_classes must be >= 1, got {num_classes}")
        if dontcare_index is not None and not 0 <= dontcare_index < num_classes:
            raise ValueError(f"dontcare_index must be in [0, {num_classes}) or None")
        names = list(class_names) if class_names is not None else None
        if names is not None and len(names) != num_classes:
            raise ValueError(f"class_names must have {num_classes} entries, got {len(names)}")
        self.images: List[PathLike] = list(images)
        self.labels: List[Any] = list(labels)
        self.num_classes = int(num_classes)
        self.class_names = names or [f"class_{i}" for i in range(num_classes)]
        self.dontcare_index = dontcare_index
        self.resolution = parse_resolution(resolution)
        self.flip = bool(flip)
        self.label_lut = None if label_lut is None else np.asarray(label_lut, dtype=np.int64)
        self.label_loader = label_loader or load_label_map
        self.item_names = (
            [os.fspath(p) for p in self.images] if item_names is None else list(item_names)
        )
        if len(self.item_names) != len(self.images):
            raise ValueError("item_names must have one entry per image")
        self.labelled_mask = np.array([lab is not None for lab in self.labels], dtype=bool)
        self._coin = FlipRNG(seed)
        self._warned_small = False

    def __len__(self) -> int:
        return len(self.images)

    @property
    def fingerprint(self) -> str:
        """Hash of the ordered item names (see :func:`fingerprint`)."""
        return fingerprint(self.item_names)

    def subset(self, indices: Sequence[int]) -> PairedImageLabelDataset:
        """A copy holding only items ``indices`` (in that order), e.g. a held-out validation set.

        Example:
            >>> ds = PairedImageLabelDataset(["a.png", "b.png", "c.png"], [None, "b_l.png", None],
            ...                              num_classes=2)
            >>> sub = ds.subset([2, 1])
            >>> len(sub), sub.item_names, sub.has_label(1)
            (2, ['c.png', 'b.png'], True)
        """
        idx = [split_key(int(i), len(self))[0] for i in indices]
        out = copy.copy(self)
        out.images = [self.images[i] for i in idx]
        out.labels = [self.labels[i] for i in idx]
        out.item_names = [self.item_names[i] for i in idx]
        out.labelled_mask = self.labelled_mask[np.asarray(idx, dtype=np.int64)]
        return out

    def has_label(self, index: int) -> bool:
        """Whether item ``index`` has a label map."""
        return bool(self.labelled_mask[index])

    def load_label(self, index: int) -> np.ndarray:
        """Class-id map of item ``index`` at its stored size (remapped and range-checked)."""
        source = self.labels[index]
        raw = self.label_loader(source)
        return self._remap(raw, source)

    def _remap(self, raw: np.ndarray, source: Any) -> np.ndarray:
        n = self.num_classes
        if self.label_lut is not None:
            lut = self.label_lut
            lo, hi = int(raw.min()), int(raw.max())
            if lo < 0 or hi >= len(lut):
                bad = lo if lo < 0 else hi
                raise ValueError(
                    f"label map {source}: raw value {bad} has no class (expected raw values in "
                    f"[0, {len(lut)}) for {n} classes)"
                )
            mapped = lut[raw]
            if int(mapped.min()) < 0:
                bad = int(raw[mapped < 0].flat[0])
                raise ValueError(
                    f"label map {source}: raw value {bad} has no class in a data set of {n} classes"
                )
            out = mapped
        else:
            out = raw
        lo, hi = int(out.min()), int(out.max())
        if lo < 0 or hi >= n:
            bad = lo if lo < 0 else hi
            raise ValueError(
                f"label map {source}: value {bad} is outside the class range [0, {n}) "
                f"(num_classes={n})"
            )
        return out

    def get_item(
        self, index: int, *, flip: Optional[bool] = None, with_label: bool = True
    ) -> Dict[str, Any]:
        """Item ``index``; ``flip`` overrides the random flip, ``with_label=False`` skips the label.

        Without the label (or for an unlabelled image) ``label`` is all zeros and ``has_label``
        False.
        """
        index, _ = split_key(index, len(self))
        image = load_rgb(self.images[index])
        size = self.resolution or (image.size[1], image.size[0])
        iw, ih = image.size
        if not self._warned_small and (2 * iw <= size[1] or 2 * ih <= size[0]):
            self._warned_small = True  # one warning per data set, naming the first example
            warnings.warn(
                f"image {os.fspath(self.images[index])} is {iw}x{ih} (WxH), "
                f"much smaller than the resolution {size[1]}x{size[0]} it is upscaled to (other "
                "such images are not reported)", UserWarning, stacklevel=2)
        labelled = with_label and self.labelled_mask[index]
        if labelled:
            label = self.load_label(index)
            self._check_aspect(image.size, label.shape, index)
            label = resize_label(label, size)
        else:
            label = np.zeros(size, dtype=np.int64)
        img = image_to_tensor(resize_image(image, size))
        lab = torch.from_numpy(np.ascontiguousarray(label, dtype=np.int64))
        if flip is None:
            flip = self.flip and self._coin.coin()
        if flip:
            img, lab = hflip_pair(img, lab)
        return {"image": img, "label": lab, "has_label": bool(labelled), "index": index}

    def _check_aspect(self, image_wh: Tuple[int, int], label_hw: Tuple[int, ...], index: int):
        iw, ih = image_wh
        lh, lw = label_hw
        if abs(iw * lh - ih * lw) > 0.02 * max(iw * lh, ih * lw):
            raise ValueError(
                f"image {os.fspath(self.images[index])} is {iw}x{ih} (WxH) but its label map "
                f"{self.labels[index]} is {lw}x{lh}: different aspect ratios, wrong pairing?"
            )

    def __getitem__(self, key: Key) -> Dict[str, Any]:
        index, flip = split_key(key, len(self))
        return self.get_item(index, flip=flip)

    def validate(self) -> None:
        """Decode every label map and check its values (slow: reads every file once).

        Raises:
            ValueError: naming the first label file with a value outside ``[0, num_classes)``.
        """
        for i in np.flatnonzero(self.labelled_mask):
            self.load_label(int(i))

    def __repr__(self) -> str:
        return (
            f"{type(self).__name__}(items={len(self)}, labelled={int(self.labelled_mask.sum())}, "
            f"num_classes={self.num_classes}, resolution={self.resolution}, flip={self.flip})"
        )
