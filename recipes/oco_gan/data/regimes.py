"""Data regimes (spec §5): full, limited (a seeded subset), semi-supervised (labels for a subset).

A *split* is a small JSON-serialisable dict that says which items of a data set are used and which
of them keep their label map::

    {"format": "ganblocks-split", "version": 1, "regime": "semi", "seed": 0, "num_items": 2975,
     "subset": null, "labelled": 500, "fingerprint": "…", "indices": [...],
     "labelled_indices": [...]}

plus ``"selection"`` when the data set was opened with optional parts (``{"extra": true}``:
Cityscapes with its ``train_extra`` images; ``{"scene_categories": [...]}``: an ADE20K scene
subset such as ADE-Indoor).

It is drawn once (:func:`make_split`), saved in the run directory (:func:`save_split`, atomic) and
reused on resume (:func:`load_or_make_split`), so a run always sees the same images and labels.
:class:`SplitDataset` applies it to a data set.

The draw is a seeded ordering of the items by a keyed hash (BLAKE2b of ``"seed:index"``), which is
the same on every platform and library version; a subset of size ``k`` is the first ``k`` items of
that order, so subsets of one seed are nested (the 500 labelled images are part of the 1000
labelled images), and the labelled items of the semi-supervised regime with seed ``s`` are the
limited-regime subset of the same size and seed.

Paper presets (:data:`PAPER_PRESETS`): limited = Cityscapes "5K" (all finely annotated train
images), COCO-Stuff12K (10 %), ADE4K (20 %), CelebA-HQ 3k; semi-supervised = 500 labelled
(Cityscapes, CelebA-HQ) or 2 000 labelled (ADE20K, COCO-Stuff).
"""

from __future__ import annotations

import hashlib
import json
import os
from dataclasses import dataclass
from typing import Any, Dict, List, Optional, Sequence, Tuple, Union

import numpy as np
from torch.utils.data import Dataset

from ganblocks.data import split_key
from ganblocks.train import atomic_write

__all__ = [
    "PAPER_PRESETS",
    "REGIMES",
    "RegimePreset",
    "SplitDataset",
    "load_or_make_split",
    "load_split",
    "make_split",
    "resolve_sizes",
    "save_split",
    "seeded_order",
    "split_for_dataset",
]

REGIMES = ("full", "limited", "semi")
SPLIT_FORMAT = "ganblocks-split"
SPLIT_VERSION = 1
Size = Union[int, float]


@dataclass(frozen=True)
class RegimePreset:
    """The paper's sizes for one data set.

    Attributes:
        limited: Subset of the limited regime: a count, or a fraction of the train split.
        labelled: Number of labelled images of the semi-supervised regime.
        note: Where the numbers come from.
    """

    limited: Size
    labelled: int
    note: str


PAPER_PRESETS: Dict[str, RegimePreset] = {
    "cityscapes": RegimePreset(
        1.0,
        500,
        "limited: Cityscapes5K = all 2 975 finely annotated train images (gtFine); "
        "semi: 500 labelled among the train (and, with extra=True, train_extra) images",
    ),
    "ade20k": RegimePreset(0.2, 2000, "limited: ADE4K = 20 % of 20 210; semi: 2 000 labelled"),
    "coco_stuff": RegimePreset(
        0.1, 2000, "limited: COCO-Stuff12K = 10 % of 118 287; semi: 2 000 labelled"
    ),
    "celebamask_hq": RegimePreset(3000, 500, "limited: CelebA-HQ 3k; semi: 500 labelled"),
    "synthetic": RegimePreset(2000, 200, "not from the paper: sizes for quick experiments"),
}


def seeded_order(num_items: int, seed: int) -> np.ndarray:
    """All item indices ``0 .. num_items-1`` in a seeded order, stable across platforms.

    Example:
        >>> seeded_order(5, 0).tolist() == seeded_order(5, 0).tolist()
        True
        >>> sorted(seeded_order(5, 1).tolist())
        [0, 1, 2, 3, 4]
    """
    keys = [
        hashlib.blake2b(f"{seed}:{i}".encode(), digest_size=8).digest() for i in range(num_items)
    ]
    return np.array(sorted(range(num_items), key=keys.__getitem__), dtype=np.int64)


def _count(value: Size, total: int, name: str) -> int:
    """Resolve a count or a fraction of ``total`` to a count in ``[1, total]``."""
    if isinstance(value, bool) or not isinstance(value, (int, float, np.integer, np.floating)):
        raise TypeError(f"{name} must be an int count or a float fraction, got {value!r}")
    if isinstance(value, (float, np.floating)):
        if not 0.0 < value <= 1.0:
            raise ValueError(f"{name} as a fraction must be in (0, 1], got {value}")
        return max(1, round(value * total))
    if not 1 <= value <= total:
        raise ValueError(f"{name} must be in [1, {total}] (the items drawn from), got {value}")
    return int(value)


def make_split(
    num_items: int,
    *,
    regime: str = "full",
    subset: Optional[Size] = None,
    labelled: Optional[Size] = None,
    seed: int = 0,
    labelled_pool: Optional[Sequence[int]] = None,
    fingerprint: Optional[str] = None,
    selection: Optional[Dict[str, Any]] = None,
) -> Dict[str, Any]:
    """Draw the items (and labelled items) of a data regime.

    Args:
        num_items: Size of the data set.
        regime: ``full`` (every item, every label), ``limited`` (a seeded subset of ``subset``
            items, all labelled) or ``semi`` (every item; labels for ``labelled`` items only).
        subset: Limited regime: a count or a fraction (float in (0, 1]) of the labelled items.
        labelled: Semi-supervised regime: a count or fraction of the labelled items to keep.
        seed: Seed of the draw.
        labelled_pool: Items that have a label map at all (default: every item); the limited
            subset and the semi-supervised labelled items are drawn from them.
        fingerprint: Optional hash of the data set's item names, checked when the split is applied.
        selection: Optional parts of the data set it was drawn from (e.g. ``{"extra": True}`` for
            Cityscapes' ``train_extra`` images, ``{"scene_categories": [...]}`` for an ADE20K
            subset); recorded as ``"selection"`` when not empty.

    Returns:
        A JSON-serialisable dict (see the module docstring); ``indices`` and
        ``labelled_indices`` are sorted lists of ints.

    Example:
        >>> s = make_split(10, regime="semi", labelled=3, seed=1)
        >>> len(s["indices"]), len(s["labelled_indices"])
        (10, 3)
        >>> make_split(10, regime="limited", subset=0.5, seed=1)["subset"]
        5
    """
    if isinstance(num_items, bool) or not isinstance(num_items, (int, np.integer)):
        raise TypeError(f"num_items must be an int, got {type(num_items).__name__}")
    if num_items < 1:
        raise ValueError(f"num_items must be >= 1, got {num_items}")
    if regime not in REGIMES:
        raise ValueError(f"regime must be one of {REGIMES}, got {regime!r}")
    if isinstance(seed, bool) or not isinstance(seed, (int, np.integer)):
        raise TypeError(f"seed must be an int, got {type(seed).__name__}")
    if regime != "limited" and subset is not None:
        raise ValueError(f"subset is only for the limited regime (regime={regime!r})")
    if regime != "semi" and labelled is not None:
        raise ValueError(f"labelled is only for the semi regime (regime={regime!r})")
    if labelled_pool is None:
        pool = np.arange(num_items)
    else:
        pool = np.unique(np.asarray(list(labelled_pool), dtype=np.int64))
        if len(pool) and (pool[0] < 0 or pool[-1] >= num_items):
            raise ValueError(f"labelled_pool must hold indices in [0, {num_items})")
        if len(pool) == 0:
            raise ValueError("labelled_pool is empty: the data set has no labelled item")
    order = seeded_order(num_items, int(seed))
    in_pool = np.zeros(num_items, dtype=bool)
    in_pool[pool] = True
    pool_order = order[in_pool[order]]  # labelled items, in seeded order

    n_subset = n_labelled = None
    if regime == "full":
        indices, labelled_idx = np.arange(num_items), pool
    elif regime == "limited":
        if subset is None:
            raise ValueError("the limited regime needs subset (a count or a fraction)")
        n_subset = _count(subset, len(pool), "subset")
        indices = labelled_idx = np.sort(pool_order[:n_subset])
    else:
        if labelled is None:
            raise ValueError("the semi regime needs labelled (a count or a fraction)")
        n_labelled = _count(labelled, len(pool), "labelled")
        indices, labelled_idx = np.arange(num_items), np.sort(pool_order[:n_labelled])
    split = {
        "format": SPLIT_FORMAT,
        "version": SPLIT_VERSION,
        "regime": regime,
        "seed": int(seed),
        "num_items": int(num_items),
        "subset": n_subset,
        "labelled": n_labelled,
        "fingerprint": fingerprint,
        "indices": [int(i) for i in indices],
        "labelled_indices": [int(i) for i in labelled_idx],
    }
    if selection:
        split["selection"] = json.loads(json.dumps(selection))  # plain JSON types
    return split


def _validate(split: Any, where: str) -> Dict[str, Any]:
    if not isinstance(split, dict) or split.get("format") != SPLIT_FORMAT:
        raise ValueError(f"{where}: not a split (expected a dict with format {SPLIT_FORMAT!r})")
    if split.get("version") != SPLIT_VERSION:
        raise ValueError(f"{where}: unsupported split version {split.get('version')!r}")
    keys = ("regime", "seed", "num_items", "indices", "labelled_indices")
    missing = [k for k in keys if k not in split]
    if missing:
        raise ValueError(f"{where}: split lacks {missing}")
    if split["regime"] not in REGIMES:
        raise ValueError(f"{where}: unknown regime {split['regime']!r}")
    n = split["num_items"]
    for key in ("indices", "labelled_indices"):
        idx = split[key]
        if not isinstance(idx, list) or any(
            isinstance(i, bool) or not isinstance(i, int) or not 0 <= i < n for i in idx
        ):
            raise ValueError(f"{where}: {key} must be a list of ints in [0, {n})")
        if any(a >= b for a, b in zip(idx, idx[1:])):
            raise ValueError(f"{where}: {key} must be sorted and without duplicates")
    if not isinstance(split.get("selection", {}), dict):
        raise ValueError(f"{where}: selection must be a mapping")
    if not set(split["labelled_indices"]) <= set(split["indices"]):
        raise ValueError(f"{where}: labelled_indices must be a subset of indices")
    return split


def save_split(path: Union[str, os.PathLike], split: Dict[str, Any]) -> None:
    """Write ``split`` as JSON to ``path`` atomically (temporary file, fsync, rename).

    Example:
        >>> import tempfile, pathlib
        >>> p = pathlib.Path(tempfile.mkdtemp()) / "split.json"
        >>> s = make_split(4, regime="limited", subset=2)
        >>> save_split(p, s); load_split(p) == s
        True
    """
    _validate(split, "split")
    text = json.dumps(split, separators=(",", ":")) + "\n"
    atomic_write(path, lambda f: f.write(text.encode("utf-8")))


def load_split(path: Union[str, os.PathLike]) -> Dict[str, Any]:
    """Read a split written by :func:`save_split` (checked; errors name the file)."""
    path = os.fspath(path)
    if not os.path.isfile(path):
        raise FileNotFoundError(f"split file not found: {path}")
    with open(path, encoding="utf-8") as f:
        try:
            split = json.load(f)
        except json.JSONDecodeError as err:
            raise ValueError(f"{path}: not valid JSON ({err})") from err
    return _validate(split, path)


def resolve_sizes(
    name: Optional[str],
    regime: str,
    *,
    subset: Optional[Size] = None,
    labelled: Optional[Size] = None,
) -> Tuple[Optional[Size], Optional[Size]]:
    """Fill ``subset`` / ``labelled`` left ``None`` with the paper's preset for data set ``name``.

    Example:
        >>> resolve_sizes("ade20k", "limited"), resolve_sizes("cityscapes", "semi")
        ((0.2, None), (None, 500))
        >>> resolve_sizes("ade20k", "semi", labelled=100)
        (None, 100)
    """
    if regime not in REGIMES:
        raise ValueError(f"regime must be one of {REGIMES}, got {regime!r}")
    preset = PAPER_PRESETS.get(name) if name is not None else None
    if regime == "limited" and subset is None:
        if preset is None:
            raise ValueError(f"the limited regime on {name!r} needs subset (no paper preset)")
        subset = preset.limited
    if regime == "semi" and labelled is None:
        if preset is None:
            raise ValueError(f"the semi regime on {name!r} needs labelled (no paper preset)")
        labelled = preset.labelled
    return (subset if regime == "limited" else None), (labelled if regime == "semi" else None)


def _pool_and_fingerprint(dataset: Any) -> Tuple[Optional[List[int]], Optional[str]]:
    mask = getattr(dataset, "labelled_mask", None)
    pool = None if mask is None else [int(i) for i in np.flatnonzero(mask)]
    fp = getattr(dataset, "fingerprint", None)
    return pool, (fp if isinstance(fp, str) else None)


def _selection(dataset: Any) -> Dict[str, Any]:
    selection = getattr(dataset, "selection", None)
    return dict(selection) if isinstance(selection, dict) else {}


def split_for_dataset(
    dataset: Any,
    *,
    regime: str = "full",
    subset: Optional[Size] = None,
    labelled: Optional[Size] = None,
    seed: int = 0,
    name: Optional[str] = None,
) -> Dict[str, Any]:
    """:func:`make_split` for a data set: its size, labelled items, fingerprint, paper presets.

    ``name`` (default: ``dataset.name``, else ``synthetic`` for :class:`SyntheticScenes`) selects
    the :data:`PAPER_PRESETS` entry used when ``subset`` / ``labelled`` is ``None``.

    Example:
        >>> from recipes.oco_gan.data import SyntheticScenes
        >>> s = split_for_dataset(SyntheticScenes(size=50), regime="semi", labelled=5)
        >>> len(s["indices"]), len(s["labelled_indices"])
        (50, 5)
    """
    if name is None:
        name = getattr(dataset, "name", None)
        if name is None and type(dataset).__name__ == "SyntheticScenes":
            name = "synthetic"
    subset, labelled = resolve_sizes(name, regime, subset=subset, labelled=labelled)
    pool, fp = _pool_and_fingerprint(dataset)
    return make_split(
        len(dataset),
        regime=regime,
        subset=subset,
        labelled=labelled,
        seed=seed,
        labelled_pool=pool,
        fingerprint=fp,
        selection=_selection(dataset),
    )


def load_or_make_split(
    path: Union[str, os.PathLike],
    dataset: Any,
    *,
    regime: str = "full",
    subset: Optional[Size] = None,
    labelled: Optional[Size] = None,
    seed: int = 0,
    name: Optional[str] = None,
) -> Dict[str, Any]:
    """Reuse the split saved at ``path`` (a resumed run), else draw one and save it there.

    A saved split must fit the request: same regime and seed, the same sizes once resolved, and
    the same data set (size and fingerprint); otherwise a ValueError says what differs.

    Example:
        >>> import tempfile, pathlib
        >>> from recipes.oco_gan.data import SyntheticScenes
        >>> p = pathlib.Path(tempfile.mkdtemp()) / "split.json"
        >>> ds = SyntheticScenes(size=20)
        >>> a = load_or_make_split(p, ds, regime="limited", subset=5, seed=3)
        >>> load_or_make_split(p, ds, regime="limited", subset=5, seed=3) == a
        True
    """
    wanted = split_for_dataset(
        dataset, regime=regime, subset=subset, labelled=labelled, seed=seed, name=name
    )
    if not os.path.exists(path):
        save_split(path, wanted)
        return wanted
    saved = load_split(path)
    if saved.get("selection", {}) != wanted.get("selection", {}):
        raise ValueError(
            f"{os.fspath(path)}: the saved split was drawn from the data set with selection "
            f"{saved.get('selection', {})!r} but this run opens it with "
            f"{wanted.get('selection', {})!r} (data.extra / data.scene_categories); use the saved "
            "settings or start a new run directory"
        )
    for key in ("regime", "seed", "subset", "labelled", "num_items", "fingerprint"):
        if saved.get(key) != wanted.get(key):
            raise ValueError(
                f"{os.fspath(path)}: the saved split has {key}={saved.get(key)!r} but this run "
                f"asks for {key}={wanted.get(key)!r}; use the saved settings or start a new run "
                "directory"
            )
    return saved


class SplitDataset(Dataset):
    """A data set seen through a split: only its items, labels only for its labelled items.

    Position ``i`` of this data set is item ``split["indices"][i]`` of the wrapped one. Items that
    are not labelled in the split yield ``has_label=False`` and an all-zero label map (their label
    file is not even read). ``"index"`` in the items stays the wrapped data set's index.
    :attr:`labelled_positions` lists the positions with labels, e.g. for a conditional sampler.

    Attributes ``num_classes``, ``class_names``, ``dontcare_index``, ``resolution`` (and
    ``palette``, ``name`` when present) are those of the wrapped data set.

    Example:
        >>> from recipes.oco_gan.data import SyntheticScenes
        >>> base = SyntheticScenes(resolution=16, size=10)
        >>> ds = SplitDataset(base, make_split(10, regime="semi", labelled=2))
        >>> len(ds), len(ds.labelled_positions), sum(ds[i]["has_label"] for i in range(10))
        (10, 2, 2)
    """

    def __init__(self, dataset: Any, split: Dict[str, Any]) -> None:
        _validate(split, "split")
        if split["num_items"] != len(dataset):
            raise ValueError(
                f"split was drawn for {split['num_items']} items but the data set has "
                f"{len(dataset)}: a different data set or split?"
            )
        fp = getattr(dataset, "fingerprint", None)
        if split.get("fingerprint") and isinstance(fp, str) and fp != split["fingerprint"]:
            raise ValueError(
                "split fingerprint differs from the data set's: its files changed since the "
                "split was drawn"
            )
        mask = getattr(dataset, "labelled_mask", None)
        if mask is not None:
            bad = [i for i in split["labelled_indices"] if not mask[i]]
            if bad:
                raise ValueError(f"split labels items that have no label map, e.g. item {bad[0]}")
        self.dataset = dataset
        self.split = split
        self.indices: List[int] = list(split["indices"])
        labelled = set(split["labelled_indices"])
        self.labelled_mask = np.array([i in labelled for i in self.indices], dtype=bool)
        self.labelled_positions: List[int] = [int(i) for i in np.flatnonzero(self.labelled_mask)]
        for attr in ("num_classes", "class_names", "dontcare_index", "resolution"):
            setattr(self, attr, getattr(dataset, attr))
        for attr in ("palette", "name"):
            if hasattr(dataset, attr):
                setattr(self, attr, getattr(dataset, attr))

    def __len__(self) -> int:
        return len(self.indices)

    def has_label(self, position: int) -> bool:
        """Whether position ``position`` keeps its label in this split."""
        return bool(self.labelled_mask[position])

    def __getitem__(self, key) -> Dict[str, Any]:
        pos, flip = split_key(key, len(self))
        item_index = self.indices[pos]
        with_label = bool(self.labelled_mask[pos])
        get_item = getattr(self.dataset, "get_item", None)
        if get_item is not None:
            item = get_item(item_index, flip=flip, with_label=with_label)
        else:
            item = dict(self.dataset[item_index if flip is None else (item_index, flip)])
        if not with_label:
            item["label"] = item["label"].new_zeros(item["label"].shape)
            item["has_label"] = False
        return item

    def __repr__(self) -> str:
        return (
            f"SplitDataset(regime={self.split['regime']!r}, items={len(self)}, "
            f"labelled={len(self.labelled_positions)}, dataset={self.dataset!r})"
        )
