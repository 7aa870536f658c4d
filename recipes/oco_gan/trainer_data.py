"""The trainer's view of the data: training images, the regime's split, fixed validation maps,
and the seeded streams that draw training items."""

from __future__ import annotations

import itertools
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Dict, List, Optional, Sequence, Tuple

import numpy as np
import torch

from ganblocks.data import InfiniteSampler, colorize_labels, make_palette

from .config import OCOGANConfig
from .data.datasets import build_dataset, dataset_options
from .data.regimes import load_or_make_split, save_split
from .data.synthetic import SyntheticScenes

__all__ = ["SampleStream", "TrainingData", "open_training_data"]

#: Items up to this many pixels are kept in memory once rendered/decoded (the small demo data).
CACHE_MAX_PIXELS = 64 * 64


@dataclass
class TrainingData:
    """Training/validation data sets with the run's split applied.

    Attributes:
        train: The training data set (no random flips: the trainer draws them).
        val: The validation data set.
        split: The regime's split dict (saved as ``split.json`` in the run directory).
        all_indices: Training items used (all of them in the ``semi`` regime).
        labelled_indices: Training items whose label maps are used.
        palette: ``[N, 3]`` uint8 colours of the classes.
    """

    train: Any
    val: Any
    split: Dict[str, Any]
    all_indices: List[int]
    labelled_indices: List[int]
    palette: np.ndarray
    cache: bool = False
    _cache: Dict[Tuple[int, bool], Dict[str, torch.Tensor]] = field(default_factory=dict)

    def get(self, index: int, *, flip: bool, with_label: bool) -> Dict[str, torch.Tensor]:
        """Training item ``index`` (optionally flipped); ``with_label=False`` zeros the label."""
        key = (index, with_label)
        item = self._cache.get(key) if self.cache else None
        if item is None:
            raw = self.train.get_item(index, flip=False, with_label=with_label)
            item = {"image": raw["image"], "label": raw["label"]}
            if self.cache:
                self._cache[key] = item
        if flip:
            return {"image": item["image"].flip(-1), "label": item["label"].flip(-1)}
        return item

    def fixed_val_batch(self, n: int) -> Tuple[torch.Tensor, torch.Tensor]:
        """The first ``n`` validation label maps ``[n, H, W]`` and images ``[n, 3, H, W]``."""
        items = [self.val.get_item(i % len(self.val), flip=False) for i in range(n)]
        return (torch.stack([it["label"] for it in items]),
                torch.stack([it["image"] for it in items]))

    def colorize(self, label: torch.Tensor) -> torch.Tensor:
        return colorize_labels(label, palette=self.palette, channels_first=True)


#: Share of a ``folder`` root's labelled images held out for validation when it has no ``val/``.
VAL_FRACTION = 0.05
VAL_MAX = 500


def hold_out_validation(dataset: Any, *, seed: int) -> Tuple[Any, Any, Dict[str, Any]]:
    """Split a ``folder`` data set without ``val/`` into train and validation items.

    A seeded draw of 5 % of the labelled images (at least 1, at most 500) is held out; with
    fewer than 2 labelled images nothing is held out and the training images serve as the
    validation set (sample grids only; a note is printed).

    Returns:
        ``(train, val, record)``; ``record`` (saved in ``split.json`` under ``validation``) names
        the held-out items.
    """
    labelled = np.flatnonzero(dataset.labelled_mask)
    if len(labelled) < 2:
        print(f"oco-gan: note: {dataset.root} has no val/ folder and too few labelled images "
              "to hold some out: training without validation (sample grids use training maps)",
              flush=True)
        return dataset, dataset, {"held_out": [], "seed": seed, "note": "no validation"}
    n_val = int(min(VAL_MAX, max(1, round(VAL_FRACTION * len(labelled)))))
    rng = np.random.default_rng(seed)
    val_idx = sorted(int(i) for i in rng.choice(labelled, size=n_val, replace=False))
    held = set(val_idx)
    train_idx = [i for i in range(len(dataset)) if i not in held]
    record = {"held_out": [dataset.item_names[i] for i in val_idx], "seed": seed,
              "fraction": VAL_FRACTION}
    return dataset.subset(train_idx), dataset.subset(val_idx), record


def open_training_data(config: OCOGANConfig, run_dir: Path, *, is_main: bool = True,
                       barrier: Optional[Callable[[], None]] = None) -> TrainingData:
    """Open the configured data set and apply (or draw and save) the regime's split.

    Rank 0 draws the split and writes ``run_dir/split.json``; the other ranks wait at ``barrier``
    and read it, so every process uses the same images.
    """
    d, m = config.data, config.model
    holdout = None
    kwargs: Dict[str, Any] = {"resolution": tuple(m.resolution), "flip": False}
    if d.name == "synthetic":
        kwargs["supersample"] = d.synthetic_supersample
        train = build_dataset("synthetic", split="train", size=d.synthetic_size, **kwargs)
        # The whole validation split (as ``real_dataset`` and ``oco-gan evaluate`` read it), so
        # that the curves' FID / CFID (train.eval_num reals) and the evaluation share their reals.
        size = max(SyntheticScenes.DEFAULT_SIZES["val"], config.train.num_samples)
        val = build_dataset("synthetic", split="val", size=size, **kwargs)
    else:
        if d.root is None:
            raise ValueError(f"data.root: the {d.name!r} data set needs its root folder "
                             "(--data PATH)")
        extra: Dict[str, Any] = {}
        if d.name == "folder":
            extra["num_classes"] = m.num_classes
            extra["dontcare_index"] = m.dontcare_index
            extra["allow_unlabelled"] = d.allow_unlabelled
        train = build_dataset(d.name, d.root, split="train", **kwargs, **extra,
                              **dataset_options(d, "train"))
        if d.name == "folder" and not (Path(d.root).expanduser() / "val").is_dir():
            train, val, holdout = hold_out_validation(train, seed=d.split_seed)
        else:
            val = build_dataset(d.name, d.root, split="val", **kwargs, **extra,
                                **dataset_options(d, "val"))
    if train.num_classes != m.num_classes:
        raise ValueError(f"model.num_classes is {m.num_classes} but the {d.name} data set has "
                         f"{train.num_classes} classes (don't-care included)")
    path = Path(run_dir) / "split.json"
    split = None
    if is_main:
        split = load_or_make_split(path, train, regime=d.regime, subset=d.subset,
                                   labelled=d.labelled, seed=d.split_seed,
                                   name=None if d.name == "folder" else d.name)
    if barrier is not None:
        barrier()
    if split is None:
        split = load_or_make_split(path, train, regime=d.regime, subset=d.subset,
                                   labelled=d.labelled, seed=d.split_seed,
                                   name=None if d.name == "folder" else d.name)
    if holdout is not None and is_main and split.get("validation") != holdout:
        split["validation"] = holdout  # the held-out items, recorded beside the regime's draw
        save_split(path, split)
    palette = getattr(train, "palette", None)
    if palette is None:
        palette = make_palette(m.num_classes)
    h, w = m.resolution
    return TrainingData(
        train=train, val=val, split=split,
        all_indices=[int(i) for i in split["indices"]],
        labelled_indices=[int(i) for i in split["labelled_indices"]],
        palette=np.asarray(palette, dtype=np.uint8),
        cache=d.name == "synthetic" and h * w <= CACHE_MAX_PIXELS,
    )


class SampleStream:
    """The global stream of ``(item, flip)`` keys of one pool of training items.

    Every process reads the same stream (an :class:`~ganblocks.data.InfiniteSampler` of the whole
    pool) and takes its contiguous shard of each global batch, so the samples of a global batch do
    not depend on the number of processes. The state is the number of keys consumed.
    """

    def __init__(self, pool: Sequence[int], *, seed: int) -> None:
        self.pool = list(pool)
        self.seed = seed
        self.consumed = 0
        self._it = iter(InfiniteSampler(self.pool, seed=seed, flip=True))

    def next(self, n: int) -> list:
        self.consumed += n
        return list(itertools.islice(self._it, n))

    def state_dict(self) -> Dict[str, int]:
        return {"consumed": self.consumed, "num_items": len(self.pool)}

    def load_state_dict(self, state: Dict[str, int]) -> None:
        if state["num_items"] != len(self.pool):
            raise ValueError(f"checkpoint: its sample stream covers {state['num_items']} items, "
                             f"this data set split has {len(self.pool)}")
        self.consumed = int(state["consumed"])
        self._it = iter(InfiniteSampler(self.pool, seed=self.seed, start=self.consumed,
                                        flip=True))
