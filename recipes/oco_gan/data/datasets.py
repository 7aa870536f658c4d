"""Loaders for the real data sets of the recipe, in their on-disk layouts as distributed (spec §6).

=================  ==========================================================  ==========  =======
name               layout under ``root``                                       classes     size
=================  ==========================================================  ==========  =======
``cityscapes``     ``leftImg8bit/{train,val}/<city>/*_leftImg8bit.png``,       35 (0 dc)   256x512
                   ``gtFine/{train,val}/<city>/*_gtFine_labelIds.png``
``ade20k``         ``images/{training,validation}/*.jpg``,                     151 (0 dc)  256x256
                   ``annotations/{training,validation}/*.png``
``coco_stuff``     ``{train,val}_img/*.jpg``, ``{train,val}_label/*.png``      183 (0 dc)  256x256
                   (label + 1, 255 → 0)
``celebamask_hq``  ``CelebA-HQ-img/<i>.jpg``,                                  19          256x256
                   ``CelebAMask-HQ-mask-anno/<i//2000>/<i:05d>_<part>.png``
``folder``         ``images/*`` and ``labels/<stem>.png``                      given       native
=================  ==========================================================  ==========  =======

("dc": don't-care.) Only the files above are read: the archives' other files
(``*_gtFine_color.png``, ``*_instanceIds.png``, ``*_polygons.json``, ``*_inst`` folders,
``sceneCategories.txt``, ...) are ignored. Every problem with the files is an error naming the
file or folder: a missing folder, an image without its label map (or a label map without its
image), a label value outside the classes.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Dict, List, NamedTuple, Optional, Sequence, Tuple

import numpy as np

from ganblocks.data import PairedImageLabelDataset, load_label_map

from .synthetic import SyntheticScenes

__all__ = [
    "ADE20K_CLASSES",
    "ADE_INDOOR_SCENE_CATEGORIES",
    "CELEBAMASK_HQ_CLASSES",
    "CELEBAMASK_HQ_PARTS",
    "CITYSCAPES_CLASSES",
    "CITYSCAPES_EVAL_LABEL_IDS",
    "COCO_STUFF_CLASSES",
    "DATASETS",
    "DatasetInfo",
    "EvaluatedClasses",
    "SemanticDataset",
    "build_dataset",
    "dataset_options",
    "evaluated_classes",
]

IMAGE_EXTENSIONS = (".jpg", ".jpeg", ".png", ".bmp", ".webp", ".tif", ".tiff")

#: Cityscapes ``labelIds`` 0-33 (cityscapesScripts ``labels.py``) and 34 for the license plate
#: (id -1 there); 0 "unlabeled" is don't-care.
CITYSCAPES_CLASSES: Tuple[str, ...] = (
    "unlabeled", "ego vehicle", "rectification border", "out of roi", "static", "dynamic",
    "ground", "road", "sidewalk", "parking", "rail track", "building", "wall", "fence",
    "guard rail", "bridge", "tunnel", "pole", "polegroup", "traffic light", "traffic sign",
    "vegetation", "terrain", "sky", "person", "rider", "car", "truck", "bus", "caravan", "trailer",
    "train", "motorcycle", "bicycle", "license plate",
)  # fmt: skip

#: ADE20K (SceneParsing ``objectInfo150``): 0 "other" (don't-care) then 150 classes.
ADE20K_CLASSES: Tuple[str, ...] = (
    "other", "wall", "building", "sky", "floor", "tree", "ceiling", "road", "bed", "windowpane",
    "grass", "cabinet", "sidewalk", "person", "earth", "door", "table", "mountain", "plant",
    "curtain", "chair", "car", "water", "painting", "sofa", "shelf", "house", "sea", "mirror",
    "rug", "field", "armchair", "seat", "fence", "desk", "rock", "wardrobe", "lamp", "bathtub",
    "railing", "cushion", "base", "box", "column", "signboard", "chest of drawers", "counter",
    "sand", "sink", "skyscraper", "fireplace", "refrigerator", "grandstand", "path", "stairs",
    "runway", "case", "pool table", "pillow", "screen door", "stairway", "river", "bridge",
    "bookcase", "blind", "coffee table", "toilet", "flower", "book", "hill", "bench", "countertop",
    "stove", "palm", "kitchen island", "computer", "swivel chair", "boat", "bar", "arcade machine",
    "hovel", "bus", "towel", "light", "truck", "tower", "chandelier", "awning", "streetlight",
    "booth", "television receiver", "airplane", "dirt track", "apparel", "pole", "land",
    "bannister", "escalator", "ottoman", "bottle", "buffet", "poster", "stage", "van", "ship",
    "fountain", "conveyer belt", "canopy", "washer", "plaything", "swimming pool", "stool",
    "barrel", "basket", "waterfall", "tent", "bag", "minibike", "cradle", "oven", "ball", "food",
    "step", "tank", "trade name", "microwave", "pot", "animal", "bicycle", "lake", "dishwasher",
    "screen", "blanket", "sculpture", "hood", "sconce", "vase", "traffic light", "tray", "ashcan",
    "fan", "pier", "crt screen", "plate", "monitor", "bulletin board", "shower", "radiator",
    "glass", "clock", "flag",
)  # fmt: skip

#: COCO-Stuff 164k after the loader's remapping (stuffthingmaps value ``v`` → class ``v + 1``,
#: 255 → 0 "unlabeled"): the 91 thing ids (11 of them unused) and 91 stuff ids of ``labels.txt``.
COCO_STUFF_CLASSES: Tuple[str, ...] = (
    "unlabeled", "person", "bicycle", "car", "motorcycle", "airplane", "bus", "train", "truck",
    "boat", "traffic light", "fire hydrant", "street sign", "stop sign", "parking meter", "bench",
    "bird", "cat", "dog", "horse", "sheep", "cow", "elephant", "bear", "zebra", "giraffe", "hat",
    "backpack", "umbrella", "shoe", "eye glasses", "handbag", "tie", "suitcase", "frisbee", "skis",
    "snowboard", "sports ball", "kite", "baseball bat", "baseball glove", "skateboard",
    "surfboard", "tennis racket", "bottle", "plate", "wine glass", "cup", "fork", "knife", "spoon",
    "bowl", "banana", "apple", "sandwich", "orange", "broccoli", "carrot", "hot dog", "pizza",
    "donut", "cake", "chair", "couch", "potted plant", "bed", "mirror", "dining table", "window",
    "desk", "toilet", "door", "tv", "laptop", "mouse", "remote", "keyboard", "cell phone",
    "microwave", "oven", "toaster", "sink", "refrigerator", "blender", "book", "clock", "vase",
    "scissors", "teddy bear", "hair drier", "toothbrush", "hair brush", "banner", "blanket",
    "branch", "bridge", "building-other", "bush", "cabinet", "cage", "cardboard", "carpet",
    "ceiling-other", "ceiling-tile", "cloth", "clothes", "clouds", "counter", "cupboard",
    "curtain", "desk-stuff", "dirt", "door-stuff", "fence", "floor-marble", "floor-other",
    "floor-stone", "floor-tile", "floor-wood", "flower", "fog", "food-other", "fruit",
    "furniture-other", "grass", "gravel", "ground-other", "hill", "house", "leaves", "light",
    "mat", "metal", "mirror-stuff", "moss", "mountain", "mud", "napkin", "net", "paper",
    "pavement", "pillow", "plant-other", "plastic", "platform", "playingfield", "railing",
    "railroad", "river", "road", "rock", "roof", "rug", "salad", "sand", "sea", "shelf",
    "sky-other", "skyscraper", "snow", "solid-other", "stairs", "stone", "straw",
    "structural-other", "table", "tent", "textile-other", "towel", "tree", "vegetable",
    "wall-brick", "wall-concrete", "wall-other", "wall-panel", "wall-stone", "wall-tile",
    "wall-wood", "water-other", "waterdrops", "window-blind", "window-other", "wood",
)  # fmt: skip

#: CelebAMask-HQ part masks, in the order they are painted (later parts overwrite earlier):
#: part ``k`` of this tuple becomes class ``k + 1``.
CELEBAMASK_HQ_PARTS: Tuple[str, ...] = (
    "skin", "nose", "eye_g", "l_eye", "r_eye", "l_brow", "r_brow", "l_ear", "r_ear", "mouth",
    "u_lip", "l_lip", "hair", "hat", "ear_r", "neck_l", "neck", "cloth",
)  # fmt: skip
CELEBAMASK_HQ_CLASSES: Tuple[str, ...] = ("background", *CELEBAMASK_HQ_PARTS)

#: The standard CelebAMask-HQ split (that of the data set's own partition script, used by the
#: paper): an image is train if the ``orig_idx`` column of ``CelebA-HQ-to-CelebA-mapping.txt`` is
#: below 162 771, val below 182 638, test otherwise (24 183 / 2 993 / 2 824 images). These are
#: CelebA's partition boundaries applied to the 0-based ``orig_idx``.
CELEBA_PARTITION = (162_771, 182_638)

#: The Cityscapes ``labelIds`` scored by the standard evaluation (cityscapesScripts, DRN, OASIS),
#: in ``trainId`` order 0-18: road, sidewalk, building, wall, fence, pole, traffic light, traffic
#: sign, vegetation, terrain, sky, person, rider, car, truck, bus, train, motorcycle, bicycle.
CITYSCAPES_EVAL_LABEL_IDS: Tuple[int, ...] = (
    7, 8, 11, 12, 13, 17, 19, 20, 21, 22, 23, 24, 25, 26, 27, 28, 31, 32, 33,
)  # fmt: skip

#: The scene categories (names of ``sceneCategories.txt``) of the ADE-Indoor subset as SB-GAN's
#: published file lists group its images (``ade_indoor_im_info_{train,val}.txt`` of
#: azadis/SB-GAN). The OCO-GAN paper gives no list; see the data guide.
ADE_INDOOR_SCENE_CATEGORIES: Tuple[str, ...] = (
    "airport_terminal", "bathroom", "bedroom", "conference_room", "corridor", "dining_room",
    "hotel_room", "kitchen", "living_room", "office",
)  # fmt: skip


@dataclass(frozen=True)
class DatasetInfo:
    """What a data-set name stands for: classes, don't-care, default size, splits."""

    num_classes: Optional[int]
    dontcare_index: Optional[int]
    resolution: Optional[Tuple[int, int]]
    class_names: Optional[Tuple[str, ...]]
    splits: Tuple[str, ...]


DATASETS: Dict[str, DatasetInfo] = {
    "synthetic": DatasetInfo(11, 0, (64, 64), SyntheticScenes.CLASS_NAMES, ("train", "val")),
    "cityscapes": DatasetInfo(35, 0, (256, 512), CITYSCAPES_CLASSES, ("train", "val")),
    "ade20k": DatasetInfo(151, 0, (256, 256), ADE20K_CLASSES, ("train", "val")),
    "coco_stuff": DatasetInfo(183, 0, (256, 256), COCO_STUFF_CLASSES, ("train", "val")),
    "celebamask_hq": DatasetInfo(
        19, None, (256, 256), CELEBAMASK_HQ_CLASSES, ("train", "val", "test", "all")
    ),
    "folder": DatasetInfo(None, None, None, None, ("train", "val")),
}


class SemanticDataset(PairedImageLabelDataset):
    """A real data set read from its on-disk layout (see :func:`build_dataset`).

    Adds ``name``, ``root`` and ``split`` to :class:`~ganblocks.data.PairedImageLabelDataset`.
    """

    def __init__(self, name: str, root: Path, split: str, images, labels, *,
                 selection: Optional[Dict[str, Any]] = None, **kwargs: Any) -> None:
        super().__init__(images, labels, **kwargs)
        self.name = name
        self.root = root
        self.split = split
        #: Which optional parts of the data set were selected (``{"extra": True}``,
        #: ``{"scene_categories": [...]}``); recorded in split files.
        self.selection: Dict[str, Any] = dict(selection or {})

    def __repr__(self) -> str:
        return (
            f"SemanticDataset({self.name!r}, root={os.fspath(self.root)!r}, split={self.split!r}, "
            f"items={len(self)}, labelled={int(self.labelled_mask.sum())}, "
            f"num_classes={self.num_classes}, resolution={self.resolution}, flip={self.flip})"
        )


# ----------------------------------------------------------------------------------------------
# file listing helpers


def _require_dir(path: Path, what: str) -> Path:
    if not path.is_dir():
        raise FileNotFoundError(f"{what}: folder not found: {path}")
    return path


def _files(folder: Path, suffixes: Sequence[str]) -> List[str]:
    """Sorted names of the plain, non-hidden files in ``folder`` ending with one of ``suffixes``."""
    out = []
    endings = tuple(s.lower() for s in suffixes)
    with os.scandir(folder) as it:
        for entry in it:
            name = entry.name
            if name.startswith(".") or not entry.is_file():
                continue
            if name.lower().endswith(endings):
                out.append(name)
    return sorted(out)


def _subdirs(folder: Path) -> List[str]:
    with os.scandir(folder) as it:
        return sorted(e.name for e in it if e.is_dir() and not e.name.startswith("."))


def _check_orphans(n_images: int, label_paths: Sequence[Path], used: set, label_dir: Path) -> None:
    orphans = sorted(os.fspath(p) for p in label_paths if p not in used)
    if orphans:
        shown = ", ".join(orphans[:3]) + (", ..." if len(orphans) > 3 else "")
        raise ValueError(
            f"mismatched counts in {label_dir}: {n_images} images but {len(label_paths)} label "
            f"maps; {len(orphans)} label maps have no image: {shown}"
        )


def _split_dir(split: str, names: Dict[str, str], dataset: str) -> str:
    if split not in names:
        raise ValueError(f"split for {dataset} must be one of {sorted(names)}, got {split!r}")
    return names[split]


# ----------------------------------------------------------------------------------------------
# layouts


def _scan_cityscapes(root: Path, split: str, extra: bool):
    sub = _split_dir(split, {"train": "train", "val": "val"}, "cityscapes")
    img_root = _require_dir(root / "leftImg8bit" / sub, "cityscapes images")
    lab_root = _require_dir(root / "gtFine" / sub, "cityscapes labels (gtFine)")
    images: List[Path] = []
    labels: List[Optional[Path]] = []
    suffix = "_leftImg8bit.png"
    for city in _subdirs(img_root):
        for name in _files(img_root / city, [suffix]):
            image = img_root / city / name
            label = lab_root / city / (name[: -len(suffix)] + "_gtFine_labelIds.png")
            if not label.is_file():
                raise FileNotFoundError(f"image {image} has no label map: {label} not found")
            images.append(image)
            labels.append(label)
    if not images:
        raise FileNotFoundError(f"cityscapes images: no *{suffix} files in {img_root}/<city>/")
    all_labels = [
        lab_root / city / name
        for city in _subdirs(lab_root)
        for name in _files(lab_root / city, ["_gtFine_labelIds.png"])
    ]
    _check_orphans(len(images), all_labels, set(labels), lab_root)
    if extra:
        if split != "train":
            raise ValueError("extra=True (the unlabelled train_extra images) needs split='train'")
        extra_root = _require_dir(root / "leftImg8bit" / "train_extra", "cityscapes train_extra")
        for city in _subdirs(extra_root):
            for name in _files(extra_root / city, [suffix]):
                images.append(extra_root / city / name)
                labels.append(None)
    return images, labels


def _scan_flat(
    img_dir: Path, lab_dir: Path, img_suffixes: Sequence[str], dataset: str, unlabelled_ok: bool
):
    """Images in ``img_dir`` paired with ``lab_dir/<stem>.png``."""
    _require_dir(img_dir, f"{dataset} images")
    if not (unlabelled_ok and not lab_dir.exists()):
        _require_dir(lab_dir, f"{dataset} labels")
    images: List[Path] = []
    labels: List[Optional[Path]] = []
    stems: Dict[str, Path] = {}
    for name in _files(img_dir, img_suffixes):
        stem = os.path.splitext(name)[0]
        if stem in stems:
            raise ValueError(
                f"two images with the same stem {stem!r}: {stems[stem]} and {img_dir / name}"
            )
        stems[stem] = img_dir / name
        label = lab_dir / f"{stem}.png"
        if not label.is_file():
            if not unlabelled_ok:
                raise FileNotFoundError(
                    f"image {img_dir / name} has no label map: {label} not found"
                )
            label = None
        images.append(img_dir / name)
        labels.append(label)
    if not images:
        exts = "/".join(img_suffixes)
        raise FileNotFoundError(f"{dataset} images: no {exts} files in {img_dir}")
    if lab_dir.is_dir():
        all_labels = [lab_dir / n for n in _files(lab_dir, [".png"])]
        _check_orphans(len(images), all_labels, set(labels), lab_dir)
    return images, labels


class _PartMasks(NamedTuple):
    """Label source of one CelebAMask-HQ image: its part masks as ``(class, path)`` pairs."""

    image_index: int
    folder: str
    parts: Tuple[Tuple[int, str], ...]

    def __str__(self) -> str:
        return f"part masks {self.image_index:05d}_*.png in {self.folder}"


def _merge_part_masks(source: _PartMasks) -> np.ndarray:
    """Paint the 0/255 part masks in order (later parts overwrite earlier); background 0."""
    out: Optional[np.ndarray] = None
    for cls, path in source.parts:
        mask = load_label_map(path) > 127
        if out is None:
            out = np.zeros(mask.shape, dtype=np.int64)
        elif mask.shape != out.shape:
            raise ValueError(f"part mask {path} is {mask.shape[::-1]}, others {out.shape[::-1]}")
        out[mask] = cls
    if out is None:
        raise ValueError(f"{source}: no part mask")
    return out


def _celeba_split_ids(root: Path, split: str) -> Optional[set]:
    if split == "all":
        return None
    mapping = root / "CelebA-HQ-to-CelebA-mapping.txt"
    if not mapping.is_file():
        raise FileNotFoundError(
            f"celebamask_hq: {mapping} not found; it ships with CelebAMask-HQ and defines the "
            "train/val/test split (use split='all' to take every image)"
        )
    lo, hi = CELEBA_PARTITION
    ids = set()
    with open(mapping, encoding="utf-8") as f:
        for line_no, line in enumerate(f, 1):
            fields = line.split()
            if not fields or not fields[0].isdigit():
                continue  # header
            try:
                idx, orig = int(fields[0]), int(fields[1])
            except (IndexError, ValueError) as err:
                raise ValueError(f"{mapping}:{line_no}: cannot parse {line.strip()!r}") from err
            part = "train" if orig < lo else "val" if orig < hi else "test"
            if part == split:
                ids.add(idx)
    return ids


def _scan_celebamask_hq(root: Path, split: str):
    _split_dir(split, {s: s for s in DATASETS["celebamask_hq"].splits}, "celebamask_hq")
    img_dir = _require_dir(root / "CelebA-HQ-img", "celebamask_hq images")
    mask_root = _require_dir(root / "CelebAMask-HQ-mask-anno", "celebamask_hq part masks")
    wanted = _celeba_split_ids(root, split)
    part_class = {p: k + 1 for k, p in enumerate(CELEBAMASK_HQ_PARTS)}
    masks: Dict[int, Dict[int, str]] = {}
    for sub in _subdirs(mask_root):
        for name in _files(mask_root / sub, [".png"]):
            prefix, _, part = name[:-4].partition("_")
            if not prefix.isdigit() or part not in part_class:
                continue
            masks.setdefault(int(prefix), {})[part_class[part]] = os.fspath(mask_root / sub / name)
    image_ids = {}
    for name in _files(img_dir, [".jpg"]):
        stem = name[:-4]
        if stem.isdigit():
            image_ids[int(stem)] = img_dir / name
    images, labels = [], []
    for idx in sorted(image_ids):
        if wanted is not None and idx not in wanted:
            continue
        if idx not in masks:
            raise FileNotFoundError(
                f"image {image_ids[idx]} has no label map: no part masks {idx:05d}_<part>.png in "
                f"{mask_root / str(idx // 2000)}"
            )
        parts = tuple(sorted(masks[idx].items()))
        images.append(image_ids[idx])
        labels.append(_PartMasks(idx, os.fspath(mask_root / str(idx // 2000)), parts))
    if not images:
        raise FileNotFoundError(f"celebamask_hq images: no <i>.jpg files for split {split!r} in "
                                f"{img_dir}")
    orphans = sorted(i for i in masks if i not in image_ids)
    if orphans:
        shown = ", ".join(f"{i:05d}" for i in orphans[:3]) + (", ..." if len(orphans) > 3 else "")
        raise ValueError(
            f"mismatched counts in {mask_root}: {len(image_ids)} images but part masks for "
            f"{len(masks)}; masks without an image: {shown}"
        )
    return images, labels


def _read_scene_categories(path: Path) -> Dict[str, str]:
    """``sceneCategories.txt`` of ADE20K: one ``<image stem> <scene>`` pair per line."""
    if not path.is_file():
        raise FileNotFoundError(
            f"ade20k scene_categories: {path} not found; it ships with ADEChallengeData2016 and "
            "names the scene of every image"
        )
    scenes: Dict[str, str] = {}
    with open(path, encoding="utf-8") as f:
        for line_no, line in enumerate(f, 1):
            fields = line.split()
            if not fields:
                continue
            if len(fields) != 2:
                raise ValueError(f"{path}:{line_no}: expected '<image stem> <scene category>', "
                                 f"got {line.strip()!r}")
            scenes[fields[0]] = fields[1]
    return scenes


def _filter_scenes(images: List[Path], labels: List[Any], root: Path,
                   categories: Sequence[str]) -> Tuple[List[Path], List[Any]]:
    """Keep the ADE20K items whose scene (``root/sceneCategories.txt``) is in ``categories``."""
    path = root / "sceneCategories.txt"
    scenes = _read_scene_categories(path)
    wanted = set(categories)
    known = set(scenes.values())
    unknown = sorted(wanted - known)
    if unknown:
        raise ValueError(f"scene_categories: {unknown} not in {path} (its {len(known)} categories "
                         f"include {sorted(known)[:5]})")
    kept_images, kept_labels = [], []
    for image, label in zip(images, labels):
        scene = scenes.get(image.stem)
        if scene is None:
            raise ValueError(f"image {image} has no scene category in {path}")
        if scene in wanted:
            kept_images.append(image)
            kept_labels.append(label)
    if not kept_images:
        raise FileNotFoundError(f"ade20k images: none of scene categories {sorted(wanted)} in "
                                f"{images[0].parent}")
    return kept_images, kept_labels


def _coco_lut() -> np.ndarray:
    lut = np.full(256, -1, dtype=np.int64)
    lut[:182] = np.arange(1, 183)  # stuffthingmaps ids 0..181 → classes 1..182
    lut[255] = 0  # unlabeled → don't-care
    return lut


# ----------------------------------------------------------------------------------------------


def build_dataset(
    name: str,
    root: Optional[os.PathLike] = None,
    *,
    split: str = "train",
    resolution=None,
    flip: bool = False,
    num_classes: Optional[int] = None,
    class_names: Optional[Sequence[str]] = None,
    dontcare_index: Optional[int] = None,
    extra: bool = False,
    scene_categories: Optional[Sequence[str]] = None,
    allow_unlabelled: bool = False,
    size: Optional[int] = None,
    seed: Optional[int] = None,
    supersample: Optional[int] = None,
):
    """Open data set ``name`` stored under ``root`` in its distributed layout (module docstring).

    Args:
        name: ``cityscapes``, ``ade20k``, ``coco_stuff``, ``celebamask_hq``, ``folder`` or
            ``synthetic`` (the built-in :class:`SyntheticScenes`; ``root`` unused).
        root: Data set root folder.
        split: ``train`` or ``val`` (CelebAMask-HQ also ``test`` and ``all``; its split follows
            CelebA's official partition through ``CelebA-HQ-to-CelebA-mapping.txt``). A ``folder``
            root may hold ``train/`` and ``val/`` each with ``images/`` and ``labels/``; without
            them its ``images/`` and ``labels/`` are the train split.
        resolution: Output ``(H, W)`` or an int; ``None``: the data set's standard size (256x512
            Cityscapes, 256x256 ADE20K, COCO-Stuff and CelebAMask-HQ, 64x64 synthetic; each
            image's own size for ``folder``).
        flip: Random horizontal flip of image and label together.
        num_classes: Number of classes of a ``folder`` data set (required there).
        class_names: Class names of a ``folder`` data set (optional).
        dontcare_index: Don't-care class of a ``folder`` data set (0 or ``None``, the default).
        extra: Cityscapes only: add the 19 998 coarse ``leftImg8bit/train_extra`` images as
            unlabelled items (the paper's "Cityscapes 25K" of the semi-supervised regime).
        scene_categories: ADE20K only: keep the images whose scene in ``sceneCategories.txt``
            is one of these (e.g. :data:`ADE_INDOOR_SCENE_CATEGORIES` for ADE-Indoor).
        allow_unlabelled: ``folder`` only: images without a label map become unlabelled items
            instead of an error.
        size: ``synthetic`` only: number of scenes.
        supersample: ``synthetic`` only: samples per pixel side (see
            :class:`~recipes.oco_gan.data.synthetic.SyntheticScenes`; default 1).
        seed: Seed of the random flips (default: per process) or, for ``synthetic``, of the scenes
            (default 0).

    Returns:
        The data set, a :class:`SemanticDataset` (or :class:`SyntheticScenes`) whose items are
        dicts with ``image`` (float32 ``[3, H, W]`` in [-1, 1]), ``label`` (int64 ``[H, W]``),
        ``has_label`` and ``index``, and which has ``num_classes``, ``class_names``,
        ``dontcare_index`` and ``resolution`` attributes.

    Raises:
        FileNotFoundError: a folder of the layout is missing, or an image has no label map.
        ValueError: label maps without images, a label value outside the classes (when read).

    Example:
        >>> ds = build_dataset("synthetic", split="val", resolution=32, size=4)
        >>> len(ds), ds.num_classes, ds[0]["image"].shape
        (4, 11, torch.Size([3, 32, 32]))
    """
    if name not in DATASETS:
        raise ValueError(f"name must be one of {sorted(DATASETS)}, got {name!r}")
    info = DATASETS[name]
    if name != "folder":
        given = {"class_names": class_names, "dontcare_index": dontcare_index}
        for key, value in given.items():
            if value is not None:
                raise ValueError(f"{key} is fixed for {name}; it can only be set for 'folder'")
        if num_classes is not None and num_classes != info.num_classes:
            raise ValueError(
                f"{name} has {info.num_classes} classes, got num_classes={num_classes}"
            )
    if extra and name != "cityscapes":
        raise ValueError("extra=True is only for cityscapes (its train_extra images)")
    if scene_categories is not None:
        if name != "ade20k":
            raise ValueError("scene_categories is only for ade20k (its sceneCategories.txt)")
        if isinstance(scene_categories, str) or not all(
            isinstance(c, str) and c for c in scene_categories
        ) or not scene_categories:
            raise ValueError("scene_categories: expected a non-empty list of scene names, got "
                             f"{scene_categories!r}")
    if allow_unlabelled and name != "folder":
        raise ValueError("allow_unlabelled=True is only for the folder data set")
    if size is not None and name != "synthetic":
        raise ValueError("size is only for the synthetic data set")
    if supersample is not None and name != "synthetic":
        raise ValueError("supersample is only for the synthetic data set")
    if split not in info.splits:
        raise ValueError(f"split for {name} must be one of {list(info.splits)}, got {split!r}")
    if resolution is None:
        resolution = info.resolution

    if name == "synthetic":
        if root is not None:
            raise ValueError("the synthetic data set has no root; pass root=None")
        return SyntheticScenes(
            resolution=resolution, split=split, size=size, seed=seed or 0, flip=flip,
            supersample=1 if supersample is None else supersample,
        )

    if root is None:
        raise ValueError(f"root (the {name} data set folder) is required")
    root = Path(root).expanduser()
    _require_dir(root, f"{name} root")
    kwargs: Dict[str, Any] = {}
    if name == "cityscapes":
        images, labels = _scan_cityscapes(root, split, extra)
        if extra:
            kwargs["selection"] = {"extra": True}
    elif name == "ade20k":
        sub = _split_dir(split, {"train": "training", "val": "validation"}, name)
        images, labels = _scan_flat(
            root / "images" / sub, root / "annotations" / sub, [".jpg"], name, False
        )
        if scene_categories is not None:
            images, labels = _filter_scenes(images, labels, root, scene_categories)
            kwargs["selection"] = {"scene_categories": sorted(set(scene_categories))}
    elif name == "coco_stuff":
        images, labels = _scan_flat(
            root / f"{split}_img", root / f"{split}_label", [".jpg"], name, False
        )
        kwargs["label_lut"] = _coco_lut()
    elif name == "celebamask_hq":
        images, labels = _scan_celebamask_hq(root, split)
        kwargs["label_loader"] = _merge_part_masks
    else:  # folder
        if num_classes is None:
            raise ValueError("num_classes is required for the folder data set")
        base = root / split if (root / split).is_dir() else root
        if base is root and split != "train":
            raise FileNotFoundError(
                f"folder split {split!r}: {root / split} not found (a folder root without split "
                "sub-folders only has the train split)"
            )
        images, labels = _scan_flat(
            base / "images", base / "labels", IMAGE_EXTENSIONS, name, allow_unlabelled
        )
        info = DatasetInfo(num_classes, dontcare_index, None, None, info.splits)
        kwargs["class_names"] = class_names
    return SemanticDataset(
        name,
        root,
        split,
        images,
        labels,
        num_classes=info.num_classes,
        resolution=resolution,
        flip=flip,
        class_names=kwargs.pop("class_names", info.class_names),
        dontcare_index=info.dontcare_index,
        item_names=[os.path.relpath(p, root) for p in images],
        seed=seed,
        **kwargs,
    )


def dataset_options(data: Any, split: str) -> Dict[str, Any]:
    """The :func:`build_dataset` options a run's data config adds for ``split``.

    ``data`` is a :class:`~recipes.oco_gan.config.DataConfig` (or any object with its
    ``extra`` and ``scene_categories`` attributes): Cityscapes' ``train_extra`` images join the
    train split only; a scene-category subset of ADE20K applies to both splits (the paper's
    ADE-Indoor is evaluated on the 433 validation images of its scenes).

    Example:
        >>> from types import SimpleNamespace
        >>> dataset_options(SimpleNamespace(extra=True, scene_categories=None), "train")
        {'extra': True}
        >>> dataset_options(SimpleNamespace(extra=True, scene_categories=None), "val")
        {}
    """
    out: Dict[str, Any] = {}
    if getattr(data, "extra", False) and split == "train":
        out["extra"] = True
    categories = getattr(data, "scene_categories", None)
    if categories:
        out["scene_categories"] = tuple(categories)
    return out


class EvaluatedClasses(NamedTuple):
    """Which classes an mIoU is averaged over (see :func:`evaluated_classes`)."""

    #: Name of the protocol, recorded with the results.
    protocol: str
    #: The evaluated class ids of the data set's label maps, in report order.
    label_ids: Tuple[int, ...]
    #: Their names.
    names: Tuple[str, ...]


def evaluated_classes(
    name: str,
    num_classes: int,
    dontcare_index: Optional[int],
    *,
    protocol: str = "standard",
    class_names: Optional[Sequence[str]] = None,
) -> EvaluatedClasses:
    """The classes that the mIoU of data set ``name`` is averaged over.

    ``protocol="standard"``: Cityscapes scores the 19 ``trainIds``
    (:data:`CITYSCAPES_EVAL_LABEL_IDS`, as cityscapesScripts, DRN and OASIS do); ADE20K its 150
    classes without 0 "other"; COCO-Stuff its 182 classes without 0 "unlabeled"; any other data
    set every class but the don't-care one. ``protocol="all"``: every class but the don't-care
    one, for Cityscapes too (its 34 ``labelIds``).

    Example:
        >>> ev = evaluated_classes("cityscapes", 35, 0)
        >>> ev.protocol, len(ev.label_ids), ev.names[:3]
        ('cityscapes-19-trainids', 19, ('road', 'sidewalk', 'building'))
        >>> ev = evaluated_classes("ade20k", 151, 0)
        >>> ev.protocol, len(ev.label_ids), ev.names[0]
        ('ade20k-150', 150, 'wall')
    """
    if protocol not in ("standard", "all"):
        raise ValueError(f"protocol: expected 'standard' or 'all', got {protocol!r}")
    names = tuple(class_names) if class_names is not None else None
    if names is None and name in DATASETS and DATASETS[name].class_names is not None:
        names = DATASETS[name].class_names
    if names is None or len(names) != num_classes:
        names = tuple(f"class_{i}" for i in range(num_classes))
    if protocol == "standard" and name == "cityscapes":
        if num_classes != len(CITYSCAPES_CLASSES):
            raise ValueError(f"cityscapes has {len(CITYSCAPES_CLASSES)} classes, got "
                             f"num_classes={num_classes}")
        ids = CITYSCAPES_EVAL_LABEL_IDS
        tag = "cityscapes-19-trainids"
    else:
        ids = tuple(c for c in range(num_classes) if c != dontcare_index)
        std = {"ade20k": "ade20k-150", "coco_stuff": "coco-stuff-182"}
        tag = std.get(name, "all-but-dontcare") if protocol == "standard" else "all-but-dontcare"
    return EvaluatedClasses(tag, ids, tuple(names[i] for i in ids))
