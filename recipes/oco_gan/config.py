"""Configuration of an OCO-GAN run: dataclasses, presets, validation and (de)serialisation.

A run is described by one :class:`OCOGANConfig` made of four parts, :class:`ModelConfig`,
:class:`DataConfig`, :class:`LossConfig` and :class:`TrainConfig`. Every choice that the paper
leaves open and ``OCO_GAN_SPEC.md`` fixes (marked **[choice]** in the field docs) is a field, so a
user can change it from the command line with ``key=value`` overrides, e.g.
``model.channel_multiplier=0.5 train.batch_cond=8``.

Presets: ``demo`` (built-in synthetic scenes, small enough to train on a CPU in minutes),
``cityscapes``, ``ade20k``, ``coco_stuff``, ``celebamask_hq`` and ``folder``.
"""

from __future__ import annotations

import copy
import dataclasses
import json
import math
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Dict, List, Optional, Sequence, Tuple, Union

from ganblocks.train import atomic_write

__all__ = [
    "PRESETS",
    "DataConfig",
    "LossConfig",
    "ModelConfig",
    "OCOGANConfig",
    "TrainConfig",
    "apply_overrides",
    "get_preset",
]

#: Channels per resolution of the generator at full width (StyleMapGAN / StyleGAN2 plan).
G_CHANNELS: Dict[int, int] = {4: 512, 8: 512, 16: 512, 32: 512, 64: 512, 128: 256, 256: 128,
                              512: 64, 1024: 32}
#: Channels of the discriminator encoder's output at each resolution (OASIS plan at 256²).
D_ENCODER_CHANNELS: Dict[int, int] = {2: 512, 4: 512, 8: 512, 16: 256, 32: 256, 64: 128,
                                      128: 128, 256: 64, 512: 32}
#: Channels of the decoder's output at each resolution (OASIS plan 512, 256, 256, 128, 128, 64).
D_DECODER_CHANNELS: Dict[int, int] = {4: 512, 8: 512, 16: 256, 32: 256, 64: 128, 128: 128,
                                      256: 64, 512: 32, 1024: 16}


class ConfigError(ValueError):
    """A configuration value is invalid; the message names the field."""


def _scaled(table: Dict[int, int], res: int, multiplier: float, cap: int, floor: int = 1) -> int:
    if res not in table:
        raise ConfigError(f"resolution {res} is outside the channel table {sorted(table)}")
    return max(floor, min(cap, round(table[res] * multiplier)))


@dataclass
class ModelConfig:
    """Generator and discriminator architecture (spec §2–3)."""

    #: Output size ``(H, W)``; ``W = H`` or ``W = 2H`` (Cityscapes).
    resolution: Tuple[int, int] = (256, 256)
    #: Number of semantic classes N, the don't-care class included.
    num_classes: int = 151
    #: Index of the don't-care class (0 in every preset) or ``None``.
    dontcare_index: Optional[int] = 0
    #: Base size ``(s_h, s_w)`` of the style maps (8×8, or 8×16 for 2:1 images).
    style_size: Tuple[int, int] = (8, 8)
    #: Dimension of the latents z_u and z_c.
    z_dim: int = 64
    #: Channels of the unconditional mapping network's output map.
    style_channels: int = 64
    mapping_layers: int = 8
    mapping_lr_mul: float = 0.01
    #: Multiplies every generator width of :data:`G_CHANNELS`.
    channel_multiplier: float = 1.0
    max_channels: int = 512
    #: [choice] Hidden width of the conditional style network's per-map conv pair.
    cond_hidden_channels: int = 128
    #: [choice] Share the first conv of the conditional style net between the maps of one
    #: resolution (an optimisation the spec allows; outputs keep their shapes).
    cond_shared_first_conv: bool = False
    #: [choice] Activation of the to-RGB layer (``linear`` as StyleGAN2's to-RGB).
    to_rgb_activation: str = "linear"
    #: FIR filter of every up/down-sampling step.
    resample_filter: Tuple[int, ...] = (1, 3, 3, 1)
    #: Multiplies every discriminator width.
    d_channel_multiplier: float = 1.0
    d_max_channels: int = 512
    #: Resolution of the encoder's bottleneck (its height; 4 → 4×4, or 4×8 for 2:1 images).
    d_bottleneck: int = 4
    #: [choice] Equalised-LR convs in the encoder and image head (D trains with lr 0.002).
    d_equalized: bool = True
    #: Spectral norm in the shared encoder (the paper's Table 10: it hurts; off). Only the
    #: encoder changes: its convs become plain convs with spectral norm (the two are exclusive);
    #: the heads stay as they are.
    d_encoder_spectral_norm: bool = False
    #: [choice] The image head's two extra ResBlockD downsample further.
    d_head_downsample: bool = False
    #: [choice] ASPP dilation rates (1 = the 1×1 branch); DeepLab's 6/12/18 would only touch
    #: padding on a 4×4 map.
    aspp_rates: Tuple[int, ...] = (1, 2, 3)
    aspp_image_pooling: bool = True
    #: [choice] Spectral norm on the segmentation head's final 1×1 conv (OASIS has none).
    seg_out_spectral_norm: bool = False

    def g_channels(self, res: int) -> int:
        """Generator channels at (height) resolution ``res``."""
        return _scaled(G_CHANNELS, res, self.channel_multiplier, self.max_channels)

    def d_encoder_channels(self, res: int) -> int:
        return _scaled(D_ENCODER_CHANNELS, res, self.d_channel_multiplier, self.d_max_channels)

    def d_decoder_channels(self, res: int) -> int:
        return _scaled(D_DECODER_CHANNELS, res, self.d_channel_multiplier, self.d_max_channels)

    @property
    def num_doublings(self) -> int:
        """Number of 2× upsampling blocks from the style-map size to the output size."""
        return round(math.log2(self.resolution[0] / self.style_size[0]))

    @property
    def num_encoder_blocks(self) -> int:
        return round(math.log2(self.resolution[0] / self.d_bottleneck))

    def style_map_shapes(self) -> List[Tuple[int, int, int]]:
        """``(C, h, w)`` of every style map, in the order the synthesis network uses them."""
        sh, sw = self.style_size
        shapes = [(self.g_channels(sh), sh, sw)] * 2
        for i in range(1, self.num_doublings + 1):
            h, w = sh * 2**i, sw * 2**i
            shapes += [(self.g_channels(h), h, w)] * 2
        return shapes

    def validate(self) -> None:
        h, w = _pair(self.resolution, "model.resolution")
        sh, sw = _pair(self.style_size, "model.style_size")
        if h < 1 or w < 1 or sh < 1 or sw < 1:
            raise ConfigError("model.resolution and model.style_size must be positive")
        ratio = h / sh
        if h % sh or w % sw or ratio != w / sw or ratio < 1 or not _is_pow2(int(ratio)):
            raise ConfigError(
                f"model.resolution {h}x{w} must be a power-of-two multiple of model.style_size "
                f"{sh}x{sw} (same factor for height and width)"
            )
        if self.num_classes < 2:
            raise ConfigError(f"model.num_classes must be >= 2 (N includes don't-care), got "
                              f"{self.num_classes}")
        if self.dontcare_index is not None and not 0 <= self.dontcare_index < self.num_classes:
            raise ConfigError(f"model.dontcare_index must be None or in [0, {self.num_classes}), "
                              f"got {self.dontcare_index}")
        for name in ("z_dim", "style_channels", "mapping_layers", "max_channels",
                     "cond_hidden_channels", "d_max_channels"):
            if getattr(self, name) < 1:
                raise ConfigError(f"model.{name} must be >= 1, got {getattr(self, name)}")
        for name in ("channel_multiplier", "d_channel_multiplier", "mapping_lr_mul"):
            if not getattr(self, name) > 0:
                raise ConfigError(f"model.{name} must be > 0, got {getattr(self, name)}")
        b = self.d_bottleneck
        if b < 1 or h % b or not _is_pow2(h // b) or h // b < 2:
            raise ConfigError(f"model.d_bottleneck {b} must divide model.resolution height {h} by "
                              "a power of two >= 2")
        if h > 1024:
            raise ConfigError(f"model.resolution height {h} is beyond the channel tables (<= 1024)")
        if self.to_rgb_activation not in ("linear", "tanh"):
            raise ConfigError("model.to_rgb_activation must be 'linear' or 'tanh'")
        if not self.aspp_rates or any(r < 1 for r in self.aspp_rates):
            raise ConfigError(f"model.aspp_rates must be integers >= 1, got {self.aspp_rates}")


@dataclass
class DataConfig:
    """Where the images come from and which of them are used (spec §5–6)."""

    #: ``synthetic`` (built-in SyntheticScenes), ``cityscapes``, ``ade20k``, ``coco_stuff``,
    #: ``celebamask_hq`` or ``folder``.
    name: str = "synthetic"
    #: Data set root (not used by ``synthetic``).
    root: Optional[str] = None
    #: ``full``, ``limited`` (a seeded subset) or ``semi`` (all images, labels for a subset).
    regime: str = "full"
    #: Size of the subset in the ``limited`` regime (``None``: the paper's preset size).
    subset: Optional[int] = None
    #: Number of labelled images in the ``semi`` regime (``None``: the paper's preset size).
    labelled: Optional[int] = None
    #: Seed of the subset draw (saved to the run directory's split file).
    split_seed: int = 0
    #: Random horizontal flip of image and label together.
    flip: bool = True
    #: Number of images of the built-in synthetic data set (train split).
    synthetic_size: int = 20000
    #: Built-in synthetic data set: each pixel is the mean of ``k × k`` samples of the scene
    #: (rendered at k times the resolution), as a camera integrates a pixel's area; 1 samples
    #: the textures once per pixel (aliased, with pixel-sized speckle).
    synthetic_supersample: int = 1
    num_workers: int = 0
    #: Cityscapes only: add the 19 998 unlabelled ``leftImg8bit/train_extra`` images to the train
    #: split (the paper's "Cityscapes 25K" of its semi-supervised tables; ``--extra``).
    extra: bool = False
    #: ADE20K only: keep the images (train and val) whose scene in ``sceneCategories.txt`` is
    #: one of these, e.g. the paper's ADE-Indoor (see the data guide).
    scene_categories: Optional[Tuple[str, ...]] = None
    #: Number of classes of the data set, don't-care included (``None``: ``model.num_classes``).
    #: Setting it sets ``model.num_classes``; the two must agree.
    num_classes: Optional[int] = None
    #: ``folder`` only: images without a label map are unlabelled items (semi regime) instead
    #: of an error.
    allow_unlabelled: bool = False

    def validate(self) -> None:
        names = ("synthetic", "cityscapes", "ade20k", "coco_stuff", "celebamask_hq", "folder")
        if self.name not in names:
            raise ConfigError(f"data.name must be one of {names}, got {self.name!r}")
        if self.regime not in ("full", "limited", "semi"):
            raise ConfigError(f"data.regime must be 'full', 'limited' or 'semi', got "
                              f"{self.regime!r}")
        for name in ("subset", "labelled"):
            v = getattr(self, name)
            if v is not None and v < 1:
                raise ConfigError(f"data.{name} must be None or >= 1, got {v}")
        if self.num_workers < 0:
            raise ConfigError("data.num_workers must be >= 0")
        if self.synthetic_supersample < 1:
            raise ConfigError(f"data.synthetic_supersample must be >= 1, got "
                              f"{self.synthetic_supersample}")
        if self.synthetic_supersample != 1 and self.name != "synthetic":
            raise ConfigError(f"data.synthetic_supersample is only for data.name=synthetic, got "
                              f"{self.name!r}")
        if self.extra and self.name != "cityscapes":
            raise ConfigError(f"data.extra (Cityscapes' train_extra images) is only for "
                              f"data.name=cityscapes, got {self.name!r}")
        if self.scene_categories is not None:
            if self.name != "ade20k":
                raise ConfigError(f"data.scene_categories (ADE20K's sceneCategories.txt) is only "
                                  f"for data.name=ade20k, got {self.name!r}")
            if not self.scene_categories or not all(self.scene_categories):
                raise ConfigError("data.scene_categories must be None or a non-empty list of "
                                  f"scene names, got {self.scene_categories!r}")
        if self.allow_unlabelled and self.name != "folder":
            raise ConfigError(f"data.allow_unlabelled is only for the folder data set, not "
                              f"{self.name!r}")


@dataclass
class LossConfig:
    """Loss weights and regularisers (spec §4)."""

    #: Weight of the unconditional terms of G and D (2 for ADE20K and COCO-Stuff, App. C.1).
    uncond_weight: float = 1.0
    #: Weight of the conditional (N+1) terms.
    cond_weight: float = 1.0
    #: LabelMix consistency weight λ (10; 5 for Cityscapes).
    labelmix_weight: float = 10.0
    #: [choice] R1 strength γ on the image head, ``(γ/2)·E‖∇D_u‖²``.
    r1_gamma: float = 10.0
    #: Lazy regularisation interval k: R1 runs as a D step of its own every k iterations (after
    #: the main D step), its loss multiplied by k; D's Adam lr and betas are corrected for the
    #: extra steps (lr·k/(k+1), β^(k/(k+1))), as in StyleGAN2.
    r1_interval: int = 16
    #: Class-balanced N+1 loss on real pixels.
    class_balance: bool = True
    #: [choice] Reals of D's image head (and of R1): ``uncond`` = the unconditional batch, drawn
    #: uniformly from all training images (Eq. (1) samples the data distribution); ``all`` = also
    #: the labelled batch (over-samples labelled images in the semi-supervised regime).
    image_head_reals: str = "uncond"
    #: [choice] ``none`` or ``gumbel``: also apply the N+1 generator loss to unconditional fakes,
    #: with their label map a straight-through Gumbel-Softmax sample of D's class logits.
    #: An interpretation of the paper's appendix C.6 "w/ GS" (its text is missing).
    uncond_seg_loss: str = "none"
    gumbel_tau: float = 1.0
    gumbel_weight: float = 1.0

    def validate(self) -> None:
        if self.uncond_seg_loss not in ("none", "gumbel"):
            raise ConfigError(f"loss.uncond_seg_loss must be 'none' or 'gumbel', got "
                              f"{self.uncond_seg_loss!r}")
        if self.r1_interval < 1:
            raise ConfigError("loss.r1_interval must be >= 1")
        if self.image_head_reals not in ("uncond", "all"):
            raise ConfigError(f"loss.image_head_reals must be 'uncond' or 'all', got "
                              f"{self.image_head_reals!r}")
        for name in ("uncond_weight", "cond_weight", "labelmix_weight", "r1_gamma",
                     "gumbel_weight"):
            if getattr(self, name) < 0:
                raise ConfigError(f"loss.{name} must be >= 0")
        if not self.gumbel_tau > 0:
            raise ConfigError("loss.gumbel_tau must be > 0")


@dataclass
class TrainConfig:
    """Optimisation and bookkeeping (spec §5)."""

    #: ``hybrid`` (default), ``uncond_only`` or ``cond_only`` (the paper's Table 4 ablations).
    mode: str = "hybrid"
    #: Global conditional batch (16; 32 COCO-Stuff; 4 in the semi-supervised setting).
    batch_cond: int = 16
    #: Global unconditional batch.
    batch_uncond: int = 32
    lr_g: float = 0.002
    lr_d: float = 0.002
    betas: Tuple[float, float] = (0.0, 0.99)
    #: EMA decay of G's parameters per step.
    ema_decay: float = 0.999
    #: EMA ramp-up: the effective decay is ``min(decay, (1 + step) / (10 + step))`` while
    #: ``step < ema_rampup_steps`` (so the EMA does not freeze the initial weights).
    ema_rampup_steps: int = 2000
    #: Total number of iterations (one G step then one D step each).
    steps: int = 100000
    #: [choice] Fakes of the D step: ``fresh`` (a G forward of its own on new latents, as
    #: StyleGAN2 does) or ``reuse`` (the G step's fakes, detached, as pix2pix and CycleGAN do:
    #: one G forward per iteration instead of two; D then sees the generator of one Adam step
    #: before).
    d_fakes: str = "fresh"
    #: Adaptive discriminator augmentation (paper Table 5).
    ada: bool = False
    ada_target: float = 0.6
    ada_kimg: float = 500.0
    ada_interval: int = 4
    #: ``none``, ``bf16`` or ``fp16`` autocast.
    mixed_precision: str = "none"
    #: Parameter dtype: ``float32``, or ``float64`` for exactness checks (e.g. comparing a
    #: distributed run with a single-process one beyond float32 rounding).
    dtype: str = "float32"
    channels_last: bool = False
    seed: int = 0
    log_every: int = 10
    sample_every: int = 500
    checkpoint_every: int = 1000
    #: Number of fixed latents / label maps in sample grids.
    num_samples: int = 8
    #: Periodic model selection: every this many training images, the FID of the EMA generator
    #: on a fixed subset goes to the metrics and, when it improves, the checkpoint to
    #: ``best.pt`` (0: off).
    eval_every: int = 0
    #: Size of that subset: the first validation images, and as many samples from fixed latents.
    eval_num: int = 2048
    #: Images per forward pass of the periodic FID.
    eval_batch: int = 32
    #: Feature network of the periodic FID: ``inception`` (needs its weights file, see
    #: ``oco-gan evaluate``) or ``randconv`` (quick checks only, not comparable with the paper).
    eval_features: str = "inception"
    #: Weights file of the Inception network (else searched as ``oco-gan evaluate`` does).
    eval_fid_weights: Optional[str] = None
    #: Periodic evaluation also measures the CFID of conditional samples on the subset's label
    #: maps (when the conditional branch trains; its best checkpoint goes to ``best_cfid.pt``).
    eval_cfid: bool = True
    #: With a TorchScript segmenter (``oco-gan train-segmenter``) the periodic evaluation also
    #: measures the mIoU of the conditional samples (``None``: no mIoU).
    eval_segmenter: Optional[str] = None
    #: Keep a copy of the checkpoint every this many training images in ``snapshots/`` (0: off).
    keep_every: int = 0
    #: Parts kept frozen (stage-wise training, the paper's Table 4 text): any of
    #: ``uncond_style``, ``cond_style``, ``synthesis``, ``d_encoder``, ``d_image_head``,
    #: ``d_seg_head`` (comma-separated on the command line).
    freeze: Tuple[str, ...] = ()
    #: Start from another run's weights (G, D, G_ema, but not its optimiser state or step),
    #: given as its run directory or ``checkpoint.pt`` (``oco-gan train --init-from RUN``).
    init_from: Optional[str] = None

    def validate(self) -> None:
        if self.d_fakes not in ("fresh", "reuse"):
            raise ConfigError(f"train.d_fakes must be 'fresh' or 'reuse', got {self.d_fakes!r}")
        if self.mode not in ("hybrid", "uncond_only", "cond_only"):
            raise ConfigError(f"train.mode must be 'hybrid', 'uncond_only' or 'cond_only', got "
                              f"{self.mode!r}")
        if self.mode != "uncond_only" and self.batch_cond < 1:
            raise ConfigError("train.batch_cond must be >= 1 unless train.mode=uncond_only")
        if self.mode != "cond_only" and self.batch_uncond < 1:
            raise ConfigError("train.batch_uncond must be >= 1 unless train.mode=cond_only")
        if self.mixed_precision not in ("none", "bf16", "fp16"):
            raise ConfigError("train.mixed_precision must be 'none', 'bf16' or 'fp16'")
        if self.dtype not in ("float32", "float64"):
            raise ConfigError("train.dtype must be 'float32' or 'float64'")
        if not 0 <= self.ema_decay < 1:
            raise ConfigError("train.ema_decay must be in [0, 1)")
        if not (0 <= self.betas[0] < 1 and 0 <= self.betas[1] < 1):
            raise ConfigError("train.betas must be in [0, 1)")
        for name in ("steps", "log_every", "sample_every", "checkpoint_every", "num_samples",
                     "ada_interval"):
            if getattr(self, name) < 1:
                raise ConfigError(f"train.{name} must be >= 1")
        for name in ("eval_every", "keep_every"):
            if getattr(self, name) < 0:
                raise ConfigError(f"train.{name} must be >= 0 (0: off)")
        for name in ("eval_num", "eval_batch"):
            if getattr(self, name) < 2:
                raise ConfigError(f"train.{name} must be >= 2")
        if self.eval_features not in ("inception", "randconv"):
            raise ConfigError(f"train.eval_features must be 'inception' or 'randconv', got "
                              f"{self.eval_features!r}")
        parts = ("uncond_style", "cond_style", "synthesis", "d_encoder", "d_image_head",
                 "d_seg_head")
        unknown = [p for p in self.freeze if p not in parts]
        if unknown:
            raise ConfigError(f"train.freeze: unknown part(s) {unknown}; expected some of {parts}")
        for net, names in (("G", parts[:3]), ("D", parts[3:])):
            if set(names) <= set(self.freeze):
                raise ConfigError(f"train.freeze: freezes every part of {net} ({', '.join(names)})"
                                  "; nothing would train")


@dataclass
class OCOGANConfig:
    """A complete OCO-GAN run."""

    preset: str = "custom"
    model: ModelConfig = field(default_factory=ModelConfig)
    data: DataConfig = field(default_factory=DataConfig)
    loss: LossConfig = field(default_factory=LossConfig)
    train: TrainConfig = field(default_factory=TrainConfig)

    def validate(self) -> OCOGANConfig:
        """Check every field; raise :class:`ConfigError` naming the first bad one."""
        self.model.validate()
        self.data.validate()
        self.loss.validate()
        self.train.validate()
        if self.data.num_classes is not None and self.data.num_classes != self.model.num_classes:
            raise ConfigError(f"data.num_classes ({self.data.num_classes}) and model.num_classes "
                              f"({self.model.num_classes}) differ: set one of them")
        return self

    # -- (de)serialisation ------------------------------------------------------------------
    def to_dict(self) -> Dict[str, Any]:
        return _to_plain(dataclasses.asdict(self))

    @classmethod
    def from_dict(cls, data: Dict[str, Any]) -> OCOGANConfig:
        """Build a config from :meth:`to_dict` output; unknown keys are an error."""
        kwargs: Dict[str, Any] = {}
        for f in dataclasses.fields(cls):
            if f.name not in data:
                continue
            value = data[f.name]
            if f.name == "preset":
                kwargs[f.name] = str(value)
            else:
                kwargs[f.name] = _build(_SECTIONS[f.name], value, f.name)
        unknown = set(data) - {f.name for f in dataclasses.fields(cls)}
        if unknown:
            raise ConfigError(f"unknown config section(s) {sorted(unknown)}")
        return cls(**kwargs).validate()

    def save(self, path: Union[str, os.PathLike]) -> None:
        """Write the config as JSON (``.json``) or YAML (``.yaml``/``.yml``), atomically."""
        path = Path(path)
        if path.suffix in (".yaml", ".yml"):
            import yaml

            text = yaml.safe_dump(self.to_dict(), sort_keys=False)
        else:
            text = json.dumps(self.to_dict(), indent=2) + "\n"
        atomic_write(path, lambda f: f.write(text.encode("utf-8")))

    @classmethod
    def load(cls, path: Union[str, os.PathLike]) -> OCOGANConfig:
        path = Path(path)
        text = path.read_text()
        if path.suffix in (".yaml", ".yml"):
            import yaml

            data = yaml.safe_load(text)
        else:
            data = json.loads(text)
        return cls.from_dict(data)


_SECTIONS = {"model": ModelConfig, "data": DataConfig, "loss": LossConfig, "train": TrainConfig}


def _is_pow2(n: int) -> bool:
    return n >= 1 and n & (n - 1) == 0


def _pair(value: Sequence[int], name: str) -> Tuple[int, int]:
    if len(value) != 2:
        raise ConfigError(f"{name} must be a pair (height, width), got {value!r}")
    return int(value[0]), int(value[1])


def _to_plain(obj: Any) -> Any:
    if isinstance(obj, dict):
        return {k: _to_plain(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [_to_plain(v) for v in obj]
    return obj


def _coerce(value: Any, annotation: str, name: str) -> Any:
    """Convert a JSON/YAML/command-line value to the field's annotated type."""
    ann = annotation.replace(" ", "")
    optional = ann.startswith("Optional[")
    if optional:
        ann = ann[len("Optional["):-1]
        if value is None or (isinstance(value, str) and value.lower() in ("none", "null")):
            return None
    try:
        if ann.startswith("Tuple["):
            inner = ann[len("Tuple["):-1].split(",")[0]
            if isinstance(value, str):
                text = value if inner == "str" else value.replace("x", ",")  # 256x512
                value = [v.strip() for v in text.strip("()[] ").split(",") if v.strip()]
            cast = {"float": float, "str": str}.get(inner, int)
            return tuple(cast(v) for v in value)
        if ann == "bool":
            if isinstance(value, str):
                if value.lower() not in ("true", "false", "1", "0", "yes", "no"):
                    raise ValueError(value)
                return value.lower() in ("true", "1", "yes")
            return bool(value)
        if ann == "int":
            if isinstance(value, float) and not value.is_integer():
                raise ValueError(value)
            return int(value)
        if ann == "float":
            return float(value)
        if ann == "str":
            return str(value)
    except (TypeError, ValueError) as exc:
        raise ConfigError(f"{name}: cannot read {value!r} as {annotation}") from exc
    return value


def _build(cls: type, data: Dict[str, Any], section: str) -> Any:
    if not isinstance(data, dict):
        raise ConfigError(f"{section}: expected a mapping, got {type(data).__name__}")
    fields = {f.name: f for f in dataclasses.fields(cls)}
    unknown = set(data) - set(fields)
    if unknown:
        raise ConfigError(f"{section}: unknown field(s) {sorted(unknown)}; known: {sorted(fields)}")
    return cls(**{k: _coerce(v, str(fields[k].type), f"{section}.{k}") for k, v in data.items()})


#: Conditional batch of the semi-supervised regime (paper App. C.1: 4 for every data set).
SEMI_BATCH_COND = 4


def apply_overrides(config: OCOGANConfig, overrides: Sequence[str]) -> OCOGANConfig:
    """Return a copy of ``config`` with ``section.field=value`` overrides applied and validated.

    Switching to the semi-supervised regime (``data.regime=semi`` on a config that was not
    ``semi``) also sets ``train.batch_cond`` to :data:`SEMI_BATCH_COND` (4, the paper's), unless
    the same overrides set ``train.batch_cond`` explicitly.

    Example:
        >>> cfg = apply_overrides(get_preset("demo"), ["train.batch_cond=4", "model.z_dim=32"])
        >>> cfg.train.batch_cond, cfg.model.z_dim
        (4, 32)
        >>> apply_overrides(get_preset("cityscapes"), ["data.regime=semi"]).train.batch_cond
        4
        >>> apply_overrides(get_preset("cityscapes"),
        ...                 ["data.regime=semi", "train.batch_cond=16"]).train.batch_cond
        16
    """
    config = copy.deepcopy(config)
    regime_before = config.data.regime
    keys = set()
    for item in overrides:
        if "=" not in item:
            raise ConfigError(f"override {item!r}: expected section.field=value")
        key, value = item.split("=", 1)
        parts = key.strip().split(".")
        if len(parts) != 2 or parts[0] not in _SECTIONS:
            raise ConfigError(f"override {item!r}: key must be one of "
                              f"{sorted(_SECTIONS)} followed by .field")
        section = getattr(config, parts[0])
        fields = {f.name: f for f in dataclasses.fields(section)}
        if parts[1] not in fields:
            raise ConfigError(f"override {item!r}: {parts[0]} has no field {parts[1]!r}; known: "
                              f"{sorted(fields)}")
        setattr(section, parts[1], _coerce(value, str(fields[parts[1]].type), key))
        keys.add(f"{parts[0]}.{parts[1]}")
        if key.strip() == "data.num_classes" and config.data.num_classes is not None:
            config.model.num_classes = config.data.num_classes  # the data set decides
    if (config.data.regime == "semi" and regime_before != "semi"
            and "train.batch_cond" not in keys):
        # The paper (App. C.1) reduces the conditional batch to 4 in its semi-supervised setting.
        config.train.batch_cond = SEMI_BATCH_COND
    return config.validate()


# -- presets ----------------------------------------------------------------------------------


def _demo() -> OCOGANConfig:
    from .data.synthetic import SyntheticScenes

    return OCOGANConfig(
        preset="demo",
        model=ModelConfig(
            resolution=(32, 32), num_classes=len(SyntheticScenes.CLASS_NAMES), style_size=(8, 8),
            z_dim=64, style_channels=32, mapping_layers=4, channel_multiplier=0.125,
            max_channels=64, cond_hidden_channels=32, d_channel_multiplier=0.125,
            d_max_channels=128, d_bottleneck=4,
        ),
        data=DataConfig(name="synthetic", synthetic_size=5000),
        train=TrainConfig(
            batch_cond=8, batch_uncond=16, ema_decay=0.995, ema_rampup_steps=200, steps=100000,
            log_every=10, sample_every=100, checkpoint_every=200, num_samples=8,
        ),
    )


def _dataset(name: str, h: int, w: int, n: int, *, uncond_weight: float = 1.0,
             labelmix: float = 10.0, batch_cond: int = 16) -> OCOGANConfig:
    return OCOGANConfig(
        preset=name,
        model=ModelConfig(resolution=(h, w), num_classes=n, style_size=(8, 8 * w // h)),
        data=DataConfig(name=name),
        loss=LossConfig(uncond_weight=uncond_weight, labelmix_weight=labelmix),
        train=TrainConfig(batch_cond=batch_cond, batch_uncond=32),
    )


PRESETS = {
    "demo": _demo,
    "cityscapes": lambda: _dataset("cityscapes", 256, 512, 35, labelmix=5.0),
    "ade20k": lambda: _dataset("ade20k", 256, 256, 151, uncond_weight=2.0),
    "coco_stuff": lambda: _dataset("coco_stuff", 256, 256, 183, uncond_weight=2.0,
                                   batch_cond=32),
    "celebamask_hq": lambda: _dataset("celebamask_hq", 256, 256, 19),
    "folder": lambda: _dataset("folder", 256, 256, 2),
}


def get_preset(name: str) -> OCOGANConfig:
    """A fresh copy of preset ``name`` (``demo``, ``cityscapes``, ``ade20k``, ``coco_stuff``,
    ``celebamask_hq``, ``folder``).

    Example:
        >>> get_preset("cityscapes").model.style_size
        (8, 16)
    """
    if name not in PRESETS:
        raise ConfigError(f"preset must be one of {sorted(PRESETS)}, got {name!r}")
    return PRESETS[name]().validate()
