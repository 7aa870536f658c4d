"""Data of the OCO-GAN recipe: the built-in scenes, real data-set loaders and data regimes.

- :class:`SyntheticScenes`: procedural outdoor scenes with label maps (no download needed).
- :func:`build_dataset`: Cityscapes, ADE20K, COCO-Stuff, CelebAMask-HQ or a folder of your own, in
  their distributed on-disk layouts.
- :func:`make_split` / :class:`SplitDataset`: full, limited and semi-supervised regimes, saved to a
  split file that a resumed run reuses (:func:`load_or_make_split`).

Every data set yields ``{"image": float32 [3, H, W] in [-1, 1], "label": int64 [H, W],
"has_label": bool, "index": int}`` and has ``num_classes`` (don't-care included),
``class_names``, ``dontcare_index`` (0 or None) and ``resolution`` ``(H, W)``.
"""

from ganblocks.data import InfiniteSampler, colorize_labels, make_palette

from .datasets import (
    ADE20K_CLASSES,
    ADE_INDOOR_SCENE_CATEGORIES,
    CELEBAMASK_HQ_CLASSES,
    CELEBAMASK_HQ_PARTS,
    CITYSCAPES_CLASSES,
    CITYSCAPES_EVAL_LABEL_IDS,
    COCO_STUFF_CLASSES,
    DATASETS,
    DatasetInfo,
    EvaluatedClasses,
    SemanticDataset,
    build_dataset,
    dataset_options,
    evaluated_classes,
)
from .regimes import (
    PAPER_PRESETS,
    REGIMES,
    RegimePreset,
    SplitDataset,
    load_or_make_split,
    load_split,
    make_split,
    resolve_sizes,
    save_split,
    seeded_order,
    split_for_dataset,
)
from .synthetic import SyntheticScenes, render_scene

__all__ = [
    "ADE20K_CLASSES",
    "ADE_INDOOR_SCENE_CATEGORIES",
    "CELEBAMASK_HQ_CLASSES",
    "CELEBAMASK_HQ_PARTS",
    "CITYSCAPES_CLASSES",
    "CITYSCAPES_EVAL_LABEL_IDS",
    "COCO_STUFF_CLASSES",
    "DATASETS",
    "PAPER_PRESETS",
    "REGIMES",
    "DatasetInfo",
    "EvaluatedClasses",
    "InfiniteSampler",
    "RegimePreset",
    "SemanticDataset",
    "SplitDataset",
    "SyntheticScenes",
    "build_dataset",
    "colorize_labels",
    "dataset_options",
    "evaluated_classes",
    "load_or_make_split",
    "load_split",
    "make_palette",
    "make_split",
    "render_scene",
    "resolve_sizes",
    "save_split",
    "seeded_order",
    "split_for_dataset",
]
