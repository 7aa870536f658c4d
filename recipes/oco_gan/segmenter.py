"""A compact segmentation network for the mIoU of generated images, trained on real pairs.

The paper measures mIoU with the segmentation networks of each data set's literature (DRN-D-105 for
Cityscapes, UperNet101 for ADE20K, DeepLabV2 for COCO-Stuff). ``oco-gan evaluate --segmenter``
accepts any such network exported as TorchScript. For a data set without a standard segmenter
(the built-in synthetic scenes, a folder of your own), :func:`train_segmenter` trains
:class:`CompactSegmenter`, a small U-Net, on the real labelled training pairs with class-balanced
cross-entropy (the don't-care class ignored), measures its mIoU on the real validation images
(the reference a generator's mIoU is read against) and saves it as TorchScript.

Contract of a segmenter file (ours or yours): a TorchScript module mapping images
``[B, 3, H, W]`` in ``[-1, 1]`` (RGB) to class logits ``[B, N, h, w]`` over the model's ``N``
classes, don't-care included (logits of another spatial size are resized bilinearly to the label
map). Ours also carries a JSON description (:data:`METADATA_FILE`) read by :func:`load_segmenter`.
"""

from __future__ import annotations

import contextlib
import itertools
import json
import math
import os
import time
import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Dict, Iterator, List, Optional, Tuple, Union

import torch
import torch.nn.functional as F
from torch import nn

from ganblocks.train import atomic_write

from .config import OCOGANConfig

__all__ = [
    "METADATA_FILE",
    "CompactSegmenter",
    "SegmenterReport",
    "balance_weights",
    "default_depth",
    "load_segmenter",
    "pair_batches",
    "real_dataset",
    "segment",
    "segmenter_miou",
    "train_segmenter",
]

PathLike = Union[str, "os.PathLike[str]"]

#: Name of the JSON description stored inside the TorchScript archive.
METADATA_FILE = "oco_gan_segmenter.json"

#: Rendered synthetic items up to this many pixels are kept in memory while training.
CACHE_MAX_PIXELS = 64 * 64
#: Batches whose pixel counts set the class-balance weights (they are the first trained on).
BALANCE_BATCHES = 8


# --------------------------------------------------------------------------------------------------
# The network
# --------------------------------------------------------------------------------------------------


class _ConvBlock(nn.Sequential):
    """Two 3×3 conv → batch norm → ReLU layers."""

    def __init__(self, in_ch: int, out_ch: int) -> None:
        super().__init__(
            nn.Conv2d(in_ch, out_ch, 3, padding=1, bias=False),
            nn.BatchNorm2d(out_ch),
            nn.ReLU(inplace=True),
            nn.Conv2d(out_ch, out_ch, 3, padding=1, bias=False),
            nn.BatchNorm2d(out_ch),
            nn.ReLU(inplace=True),
        )


class _Down(nn.Module):
    """2× max pool, then a conv block."""

    def __init__(self, in_ch: int, out_ch: int) -> None:
        super().__init__()
        self.block = _ConvBlock(in_ch, out_ch)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.block(F.max_pool2d(x, 2))


class _Up(nn.Module):
    """Bilinear resize to the skip's size, concatenate the skip, then a conv block."""

    def __init__(self, in_ch: int, skip_ch: int, out_ch: int) -> None:
        super().__init__()
        self.block = _ConvBlock(in_ch + skip_ch, out_ch)

    def forward(self, x: torch.Tensor, skip: torch.Tensor) -> torch.Tensor:
        size = [skip.shape[2], skip.shape[3]]
        x = F.interpolate(x, size=size, mode="bilinear", align_corners=False)
        return self.block(torch.cat([x, skip], dim=1))


def default_depth(resolution: Tuple[int, int]) -> int:
    """Number of 2× down-sampling stages: down to a 4-pixel side, between 1 and 5.

    Example:
        >>> default_depth((32, 32)), default_depth((256, 512))
        (3, 5)
    """
    return max(1, min(5, int(math.log2(max(min(resolution), 2))) - 2))


class CompactSegmenter(nn.Module):
    """A small U-Net: images ``[B, 3, H, W]`` in ``[-1, 1]`` → logits ``[B, N, H, W]``.

    ``depth`` stages of (2× max pool, two 3×3 conv-BN-ReLU), widths doubling from ``width`` up to
    ``max_width``, and a mirrored decoder with skip connections (bilinear up-sampling to the
    skip's size, so any ``H, W >= 2**depth`` works). Plain torch layers, scriptable with
    ``torch.jit.script``.

    Args:
        num_classes: N, the don't-care class included.
        width: Channels of the first stage.
        depth: Number of down-sampling stages.
        max_width: Cap of the channel count.

    Example:
        >>> net = CompactSegmenter(5, width=8, depth=2)
        >>> net(torch.rand(2, 3, 16, 24) * 2 - 1).shape
        torch.Size([2, 5, 16, 24])
        >>> import warnings
        >>> with warnings.catch_warnings():  # torch deprecates the TorchScript API, not the format
        ...     warnings.simplefilter("ignore", DeprecationWarning)
        ...     scripted = torch.jit.script(net.eval())
        >>> scripted(torch.zeros(1, 3, 8, 8)).shape
        torch.Size([1, 5, 8, 8])
    """

    def __init__(
        self, num_classes: int, *, width: int = 32, depth: int = 3, max_width: int = 256
    ) -> None:
        super().__init__()
        for name, value in (("num_classes", num_classes), ("width", width), ("depth", depth),
                            ("max_width", max_width)):
            if isinstance(value, bool) or not isinstance(value, int) or value < 1:
                raise ValueError(f"{name}: expected a positive integer, got {value!r}")
        widths = [min(width * 2**i, max_width) for i in range(depth + 1)]
        self.num_classes = num_classes
        self.stem = _ConvBlock(3, widths[0])
        self.down = nn.ModuleList([_Down(widths[i], widths[i + 1]) for i in range(depth)])
        self.up = nn.ModuleList(
            [_Up(widths[i + 1], widths[i], widths[i]) for i in reversed(range(depth))]
        )
        self.head = nn.Conv2d(widths[0], num_classes, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        skips: List[torch.Tensor] = []
        h = self.stem(x)
        for down in self.down:
            skips.append(h)
            h = down(h)
        for i, up in enumerate(self.up):
            h = up(h, skips[len(skips) - 1 - i])
        return self.head(h)


# --------------------------------------------------------------------------------------------------
# Data
# --------------------------------------------------------------------------------------------------


def real_dataset(
    config: OCOGANConfig, split: str, *, size: Optional[int] = None, root: Optional[str] = None
):
    """The run's real data set (``split`` = ``"train"`` or ``"val"``) at the model's resolution.

    The whole split, whatever the run's data regime (the reference set of FID and mIoU is the
    full validation split). The synthetic data set has ``data.synthetic_size`` training scenes
    and 1 000 validation scenes unless ``size`` says otherwise.

    Args:
        config: The run's config (``data.name``, ``data.root``, ``model.resolution``, ...).
        split: ``"train"`` or ``"val"``.
        size: Number of synthetic scenes (synthetic only).
        root: Data set root overriding ``data.root``.

    Example:
        >>> from recipes.oco_gan.config import get_preset
        >>> ds = real_dataset(get_preset("demo"), "val", size=4)
        >>> len(ds), ds[0]["image"].shape
        (4, torch.Size([3, 32, 32]))
    """
    from .data.datasets import build_dataset, dataset_options

    d, m = config.data, config.model
    kwargs: Dict[str, Any] = {"split": split, "resolution": tuple(m.resolution), "flip": False}
    if d.name == "synthetic":
        if size is None and split == "train":
            size = d.synthetic_size
        dataset = build_dataset("synthetic", size=size, supersample=d.synthetic_supersample,
                                **kwargs)
    else:
        root = root if root is not None else d.root
        if root is None:
            raise ValueError(f"data.root: the {d.name!r} data set needs its root folder "
                             "(--data PATH)")
        if d.name == "folder":
            kwargs.update(num_classes=m.num_classes, dontcare_index=m.dontcare_index)
        dataset = build_dataset(d.name, root, **kwargs, **dataset_options(d, split))
    if dataset.num_classes != m.num_classes:
        raise ValueError(f"model.num_classes is {m.num_classes} but the {d.name} data set has "
                         f"{dataset.num_classes} classes (don't-care included)")
    return dataset


class _Pairs(torch.utils.data.Dataset):
    """``(image, label)`` of a data set's items, unflipped; optionally cached in memory."""

    def __init__(self, dataset: Any, indices: List[int], *, cache: bool) -> None:
        self.dataset = dataset
        self.indices = indices
        self.cache: Optional[Dict[int, Tuple[torch.Tensor, torch.Tensor]]] = {} if cache else None

    def __len__(self) -> int:
        return len(self.indices)

    def __getitem__(self, i: int) -> Tuple[torch.Tensor, torch.Tensor]:
        if self.cache is not None and i in self.cache:
            return self.cache[i]
        item = self.dataset.get_item(self.indices[i], flip=False)
        pair = (item["image"], item["label"])
        if self.cache is not None:
            self.cache[i] = pair
        return pair


def _labelled_indices(dataset: Any) -> List[int]:
    mask = getattr(dataset, "labelled_mask", None)
    if mask is None:
        return list(range(len(dataset)))
    return [i for i in range(len(dataset)) if bool(mask[i])]


def pair_batches(
    dataset: Any, indices: List[int], batch: int, *, num_workers: int = 0
) -> torch.utils.data.DataLoader:
    """Batches ``(images [b, 3, H, W], labels [b, H, W])`` of ``dataset[indices]``, in order."""
    return torch.utils.data.DataLoader(_Pairs(dataset, indices, cache=False), batch_size=batch,
                                       shuffle=False, num_workers=num_workers)


def _batches(
    dataset: Any, indices: List[int], batch: int, *, seed: int, num_workers: int, cache: bool
) -> Iterator[Tuple[torch.Tensor, torch.Tensor]]:
    """Endless shuffled batches (a new seeded order every epoch)."""
    pairs = _Pairs(dataset, indices, cache=cache)
    gen = torch.Generator().manual_seed(seed)
    loader = torch.utils.data.DataLoader(
        pairs, batch_size=batch, sampler=torch.utils.data.RandomSampler(pairs, generator=gen),
        num_workers=0 if cache else num_workers, drop_last=len(pairs) >= batch,
    )
    while True:
        yield from loader


# --------------------------------------------------------------------------------------------------
# Using a segmenter
# --------------------------------------------------------------------------------------------------


@contextlib.contextmanager
def _quiet_jit() -> Iterator[None]:
    """Silence torch's deprecation notices for TorchScript (still the portable format here)."""
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", category=DeprecationWarning, module=r"torch\.jit")
        yield


def load_segmenter(
    path: PathLike, *, device: Optional[Union[str, torch.device]] = None
) -> Tuple[torch.jit.ScriptModule, Dict[str, Any]]:
    """Load a TorchScript segmenter and its description (empty for files not made by us).

    Args:
        path: The ``.pt`` file.
        device: Where to put the module.

    Returns:
        ``(module, metadata)``; the module is in eval mode.

    Raises:
        FileNotFoundError: no file at ``path``.
        ValueError: the file is not TorchScript.
    """
    path = Path(path).expanduser()
    if not path.is_file():
        raise FileNotFoundError(f"segmenter: no TorchScript file at {path}")
    extra = {METADATA_FILE: ""}
    try:
        with _quiet_jit():
            module = torch.jit.load(str(path), map_location=device or "cpu", _extra_files=extra)
    except RuntimeError as err:
        raise ValueError(
            f"segmenter: {path} is not a TorchScript module ({err.__class__.__name__}); export "
            "yours with torch.jit.script or torch.jit.trace"
        ) from err
    metadata: Dict[str, Any] = json.loads(extra[METADATA_FILE]) if extra[METADATA_FILE] else {}
    return module.eval(), metadata


def segment(module: Any, images: torch.Tensor, size: Tuple[int, int], num_classes: int):
    """Logits of ``module`` for ``images: [B, 3, H, W]`` in ``[-1, 1]``, as ``[B, N, *size]``.

    Checks the class count and resizes logits of another size bilinearly.
    """
    with torch.no_grad():
        logits = module(images.float())
    if not isinstance(logits, torch.Tensor) or logits.ndim != 4 or logits.shape[0] != len(images):
        got = tuple(logits.shape) if isinstance(logits, torch.Tensor) else type(logits).__name__
        raise ValueError(f"segmenter: expected logits [B, N, H, W] for B = {len(images)}, got "
                         f"{got}")
    if logits.shape[1] != num_classes:
        raise ValueError(
            f"segmenter: it predicts {logits.shape[1]} classes, the model has {num_classes} "
            "(don't-care included)"
        )
    if tuple(logits.shape[2:]) != tuple(size):
        logits = F.interpolate(logits.float(), size=list(size), mode="bilinear",
                               align_corners=False)
    return logits


def segmenter_miou(
    module: Any,
    dataset: Any,
    *,
    num_classes: int,
    ignore_index: Optional[int],
    batch: int = 32,
    device: Optional[Union[str, torch.device]] = None,
    indices: Optional[List[int]] = None,
    num_workers: int = 0,
    progress: bool = False,
):
    """mIoU of ``module`` on the real images of ``dataset`` (a :class:`MeanIoUResult`).

    Under ``torch.distributed`` pass each rank its own ``indices``; the confusion matrix is summed
    over ranks (a collective). ``progress`` shows a bar over the batches.
    """
    from ganblocks.metrics import MeanIoU

    metric = MeanIoU(num_classes, ignore_index=ignore_index)
    indices = _labelled_indices(dataset) if indices is None else indices
    batches = pair_batches(dataset, indices, batch, num_workers=num_workers)
    if progress:
        from tqdm import tqdm

        batches = tqdm(batches, unit="batch", dynamic_ncols=True, desc="mIoU on the real images")
    for images, labels in batches:
        logits = segment(module, images.to(device or "cpu"), tuple(labels.shape[1:]), num_classes)
        metric.update(logits.argmax(dim=1).cpu(), labels)
    return metric.compute()


# --------------------------------------------------------------------------------------------------
# Training
# --------------------------------------------------------------------------------------------------


def balance_weights(
    counts: torch.Tensor, *, ignore_index: Optional[int] = None, max_weight: float = 10.0
) -> torch.Tensor:
    """Median-frequency class weights ``w_c = median(f) / f_c``, capped at ``max_weight``.

    ``f_c`` are the pixel frequencies ``counts: [N]``; the median is over the classes present (the
    ``ignore_index`` class excluded). Classes absent from ``counts`` get weight 1; the
    ``ignore_index`` class gets 0. Rare classes (a small sun, a few rocks) weigh more, so that
    the segmenter learns them instead of never predicting them.

    Example:
        >>> balance_weights(torch.tensor([50, 400, 100, 10, 0]), ignore_index=0)
        tensor([ 0.0000,  0.2500,  1.0000, 10.0000,  1.0000])
    """
    freq = counts.to(torch.float64)
    present = freq > 0
    if ignore_index is not None:
        present[ignore_index] = False
    weight = torch.ones_like(freq)
    if present.any():
        median = freq[present].median()
        weight[present] = (median / freq[present]).clamp(max=max_weight)
    if ignore_index is not None:
        weight[ignore_index] = 0.0
    return weight.to(torch.float32)


@dataclass
class SegmenterReport:
    """What :func:`train_segmenter` did: the file, its validation mIoU and its description."""

    path: Path
    miou: float
    iou: torch.Tensor
    metadata: Dict[str, Any]
    seconds: float


def _save_torchscript(module: nn.Module, path: Path, metadata: Dict[str, Any]) -> None:
    with _quiet_jit():
        scripted = torch.jit.script(module)
    extra = {METADATA_FILE: json.dumps(metadata)}
    with _quiet_jit():
        atomic_write(path, lambda f: torch.jit.save(scripted, f, _extra_files=extra))


def check_writable_file(path: PathLike, *, name: str = "out") -> Path:
    """Fail early, naming ``name``, when file ``path`` could not be written (its folder is
    created if needed and probed with a temporary file).

    Example:
        >>> import tempfile, os
        >>> check_writable_file(tempfile.mkdtemp())
        Traceback (most recent call last):
        ...
        ValueError: out: ... is a directory, expected a file path (e.g. segmenter.pt)
    """
    import tempfile

    path = Path(path)
    if path.is_dir():
        raise ValueError(f"{name}: {path} is a directory, expected a file path "
                         "(e.g. segmenter.pt)")
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        with tempfile.NamedTemporaryFile(dir=path.parent, prefix=f".{path.name}.",
                                         suffix=".tmp"):
            pass
    except OSError as err:
        raise ValueError(f"{name}: cannot write {path} ({err.strerror or err})") from err
    return path


def _check_training_args(*, steps: object, batch: object, width: object, lr: float) -> None:
    for name, value in (("steps", steps), ("batch", batch), ("width", width)):
        if isinstance(value, bool) or not isinstance(value, int) or value < 1:
            raise ValueError(f"{name}: expected a positive integer, got {value!r}")
    if not lr > 0:
        raise ValueError(f"lr: expected a positive learning rate, got {lr!r}")


def _data_and_class_weights(stream: Iterator[Tuple[torch.Tensor, torch.Tensor]], *, steps: int,
                            config: OCOGANConfig, class_balance: bool, progress: bool
                            ) -> Tuple[Iterator[Tuple[torch.Tensor, torch.Tensor]],
                                       Optional[torch.Tensor]]:
    """The training batches (the first :data:`BALANCE_BATCHES` read ahead) and the class weights
    from those batches' pixel counts (``None`` without ``class_balance``)."""
    m = config.model
    n_first = min(steps, BALANCE_BATCHES)
    if progress:  # reading (and, for small data, caching) the first batches takes a while
        from tqdm import tqdm

        first = [next(stream) for _ in tqdm(range(n_first), unit="batch", dynamic_ncols=True,
                                            desc="reading data (class pixel counts)")]
    else:
        first = [next(stream) for _ in range(n_first)]
    weight = None
    if class_balance:
        counts = sum(torch.bincount(lab.reshape(-1), minlength=m.num_classes) for _, lab in first)
        weight = balance_weights(counts, ignore_index=m.dontcare_index)
    return itertools.chain(first, stream), weight


def _fit(net: nn.Module, data: Iterator[Tuple[torch.Tensor, torch.Tensor]], *, steps: int,
         lr: float, seed: int, dev: torch.device, weight: Optional[torch.Tensor], ignore: int,
         progress: bool) -> float:
    """``steps`` steps of Adam with a cosine decay, class-weighted cross-entropy and random
    horizontal flips (seeded by ``seed + 1``); returns the last loss."""
    opt = torch.optim.Adam(net.parameters(), lr=lr)
    sched = torch.optim.lr_scheduler.LambdaLR(
        opt, lambda s: 0.5 * (1.0 + math.cos(math.pi * min(s, steps) / steps)))
    flips = torch.Generator().manual_seed(seed + 1)
    bar = None
    if progress:
        from tqdm import tqdm

        bar = tqdm(total=steps, unit="it", dynamic_ncols=True, desc="oco-gan train-segmenter")
    net.train()
    loss_value = float("nan")
    for _ in range(steps):
        images, labels = next(data)
        flip = torch.rand(images.shape[0], generator=flips) < 0.5
        images = torch.where(flip[:, None, None, None], images.flip(-1), images)
        labels = torch.where(flip[:, None, None], labels.flip(-1), labels)
        logits = net(images.to(dev))
        loss = F.cross_entropy(logits, labels.to(dev), weight=weight, ignore_index=ignore)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        sched.step()
        loss_value = loss.item()
        if bar is not None:
            bar.update(1)
            bar.set_postfix(loss=f"{loss_value:.3f}")
    if bar is not None:
        bar.close()
    return loss_value


def train_segmenter(
    config: OCOGANConfig,
    out: PathLike,
    *,
    steps: int = 800,
    batch: int = 32,
    lr: float = 2e-3,
    width: int = 16,
    depth: Optional[int] = None,
    seed: int = 0,
    train_images: Optional[int] = None,
    class_balance: bool = True,
    device: Optional[Union[str, torch.device]] = None,
    root: Optional[str] = None,
    progress: bool = False,
) -> SegmenterReport:
    """Train :class:`CompactSegmenter` on the real labelled training pairs of ``config``'s data.

    Adam with a cosine learning-rate decay, class-balanced cross-entropy with the don't-care class
    ignored (see :func:`balance_weights`), and a random horizontal flip. Then measures the mIoU on
    the whole real validation split and saves the network (eval mode) as TorchScript to ``out``
    with its description.

    Args:
        config: Data set (``data.*``) and resolution / classes (``model.*``) to train for.
        out: Output ``.pt`` file.
        steps: Optimiser steps.
        batch: Images per step.
        lr: Initial learning rate.
        width: Channels of the first stage.
        depth: Down-sampling stages (default: :func:`default_depth` of the resolution).
        seed: Seed of the initialisation, the order and the flips.
        train_images: Use only the first this many labelled training pairs (default: all).
        class_balance: Weight the cross-entropy by :func:`balance_weights` of the class pixel
            counts of the first :data:`BALANCE_BATCHES` batches.
        device: Training device (default: CUDA when available).
        root: Data set root overriding ``data.root``.
        progress: Show a progress bar.

    Returns:
        A :class:`SegmenterReport`.
    """

    start_time = time.time()
    _check_training_args(steps=steps, batch=batch, width=width, lr=lr)
    out = check_writable_file(out)  # before, not after, the training
    dev = torch.device(device) if device is not None else torch.device(
        "cuda" if torch.cuda.is_available() else "cpu")
    m = config.model
    train = real_dataset(config, "train", root=root)
    val = real_dataset(config, "val", root=root)
    indices = _labelled_indices(train)
    if train_images is not None:
        indices = indices[:train_images]
    if not indices:
        raise ValueError("data: the training split has no labelled images to train on")
    h, w = m.resolution
    cache = config.data.name == "synthetic" and h * w <= CACHE_MAX_PIXELS
    depth = default_depth(tuple(m.resolution)) if depth is None else depth
    torch.manual_seed(seed)
    net = CompactSegmenter(m.num_classes, width=width, depth=depth).to(dev)
    stream = _batches(train, indices, min(batch, len(indices)), seed=seed,
                      num_workers=config.data.num_workers, cache=cache)
    data, weight = _data_and_class_weights(stream, steps=steps, config=config,
                                           class_balance=class_balance, progress=progress)
    loss_value = _fit(net, data, steps=steps, lr=lr, seed=seed, dev=dev,
                      weight=None if weight is None else weight.to(dev),
                      ignore=m.dontcare_index if m.dontcare_index is not None else -100,
                      progress=progress)
    net.eval()
    result = segmenter_miou(net, val, num_classes=m.num_classes, ignore_index=m.dontcare_index,
                            batch=batch, device=dev, num_workers=config.data.num_workers,
                            progress=progress)
    names = list(getattr(val, "class_names", None) or [f"class_{i}" for i in
                                                      range(m.num_classes)])
    metadata = {
        "format": "oco-gan-segmenter",
        "version": 1,
        "architecture": f"CompactSegmenter(width={width}, depth={depth})",
        "input": "images [B, 3, H, W], RGB in [-1, 1]",
        "output": "logits [B, N, H, W]",
        "num_classes": m.num_classes,
        "dontcare_index": m.dontcare_index,
        "class_names": names,
        "resolution": [h, w],
        "dataset": config.data.name,
        "train_images": len(indices),
        "val_images": len(_labelled_indices(val)),
        "steps": steps,
        "batch": batch,
        "lr": lr,
        "class_balance": class_balance,
        "seed": seed,
        "final_loss": loss_value,
        "val_miou": result.miou,
        "val_iou": {n: (None if math.isnan(v) else v) for n, v in
                    zip(names, result.iou.tolist())},
    }
    _save_torchscript(net.cpu(), out, metadata)
    return SegmenterReport(path=out, miou=result.miou, iou=result.iou, metadata=metadata,
                           seconds=time.time() - start_time)
