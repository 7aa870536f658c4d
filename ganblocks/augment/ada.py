r"""Adaptive discriminator augmentation (ADA, Karras et al. 2020) that keeps label maps aligned.

Every operation is applied to every sample independently with probability :math:`p` times its
strength (rotations: :math:`1 - \sqrt{1 - p}` each, twice), in this order:

* geometric (one combined affine transform, one resampling pass): x-flip, 90° rotation, integer
  translation (up to ``xint_max`` of the size), isotropic scaling (:math:`2^{\mathcal N(0,
  \sigma^2)}`), rotation (uniform up to ``rotate_max``·π), anisotropic scaling, rotation again,
  fractional translation (:math:`\mathcal N(0, \sigma^2)` of the size);
* colour (one combined ``[4, 4]`` matrix): brightness, contrast, luma flip, hue rotation,
  saturation (see :mod:`ganblocks.augment.color`);
* cutout (off by default, as in ADA's ``bgc`` pipeline).

The defaults are ADA's ``bgc`` strengths and ranges. Differences from the reference
implementation, by choice: the image is resampled once, bilinearly at its own resolution, with
reflect padding (no 2× oversampling with wavelet filters), so strong minification aliases a
little; the sampler (:mod:`ganblocks.augment.sampling`) is twice differentiable, so R1 can be taken
through the augmentation. A label map passed along gets the *same* geometric transform with nearest
sampling; pixels read from outside the image get ``label_fill`` (or, with ``label_fill=None``, the
mirrored label), cutout pixels get ``label_fill`` (untouched with ``label_fill=None``); colour
operations leave labels alone.

The probability is tuned from the discriminator's outputs on reals: :meth:`AdaptiveAugment.update`
accumulates :math:`\operatorname{sign} D(x)`; every ``interval`` calls it forms
:math:`r_t = \mathbb{E}[\operatorname{sign} D(x)]` over the images seen since the last adjustment
and sets

.. math:: p \leftarrow \operatorname{clamp}\Bigl(p + \operatorname{sign}(r_t - \text{target})
          \cdot \frac{n}{1000 \cdot \text{kimg}},\ 0,\ 1\Bigr),

where :math:`n` is the number of images seen (``batch · interval``), so :math:`p` can go from 0 to
1 in ``kimg`` thousand images. Under ``torch.distributed`` the statistics are summed over ranks
first. ``p`` and the running statistics live in the module's ``state_dict``.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any, Dict, Optional, Tuple, Union

import torch
from torch import nn

from ..rng import rand, randn
from ._checks import check_image, check_label, check_label_fill, check_padding
from .color import (
    apply_color_matrix,
    brightness_matrix,
    contrast_matrix,
    hue_rotation_matrix,
    luma_flip_matrix,
    saturation_matrix,
)
from .cutout import cutout
from .geometric import identity2d, rotate2d, rotate90, scale2d, translate2d
from .sampling import warp_affine

__all__ = ["AdaptiveAugment", "AugmentDraw"]


@dataclass
class AugmentDraw:
    """One random draw of :class:`AdaptiveAugment`, reusable on several batches of the same size.

    Attributes:
        geometric: ``[B, 3, 3]`` sampling matrices, or ``None`` if the geometric group is off.
        color: ``[B, 4, 4]`` colour matrices, or ``None`` if the colour group is off.
        cutout_center: ``[B, 2]`` cutout centres (fractions of the size), or ``None``.
        cutout_size: ``[B, 2]`` cutout sizes (0 where not applied), or ``None``.
    """

    geometric: Optional[torch.Tensor] = None
    color: Optional[torch.Tensor] = None
    cutout_center: Optional[torch.Tensor] = None
    cutout_size: Optional[torch.Tensor] = None


_STRENGTHS = (
    "xflip", "rotate90", "xint", "scale", "rotate", "aniso", "xfrac",
    "brightness", "contrast", "lumaflip", "hue", "saturation", "cutout",
)  # fmt: skip
_GEOMETRIC = _STRENGTHS[:7]
_COLOR = _STRENGTHS[7:12]


class AdaptiveAugment(nn.Module):
    """ADA pipeline for discriminator inputs, with an adaptive probability ``p``.

    Args:
        p: Initial probability (also the fixed one when ``target`` is ``None``).
        target: Target of ``r_t = E[sign D(x_real)]``; ``None`` keeps ``p`` fixed.
        kimg: Thousands of images over which ``p`` can move from 0 to 1.
        interval: Adjust ``p`` every ``interval`` calls of :meth:`update`.
        xflip, rotate90, xint, scale, rotate, aniso, xfrac: Strengths (probability multipliers) of
            the geometric operations; 0 disables one.
        brightness, contrast, lumaflip, hue, saturation: Strengths of the colour operations.
        cutout: Strength of cutout (0 = off).
        xint_max: Largest integer translation, as a fraction of the size.
        scale_std: Standard deviation of ``log2`` of the isotropic scale.
        rotate_max: Largest rotation, as a fraction of π.
        aniso_std: Standard deviation of ``log2`` of the anisotropic scale.
        xfrac_std: Standard deviation of the fractional translation, as a fraction of the size.
        brightness_std: Standard deviation of the brightness offset.
        contrast_std: Standard deviation of ``log2`` of the contrast factor.
        hue_max: Largest hue rotation, as a fraction of π.
        saturation_std: Standard deviation of ``log2`` of the saturation factor.
        cutout_size: Cutout rectangle size, as a fraction of the image size.
        padding: Image padding of the geometric transform, ``'reflect'`` or ``'zeros'``.
        label_fill: Label of pixels read from outside the image and of cutout pixels (a don't-care
            id), or ``None`` to mirror the label like the image (needs ``padding='reflect'``).
        sync: Sum the :meth:`update` statistics over ``torch.distributed`` ranks when initialised.

    Shapes: ``x: [B, C, H, W]`` (``C`` in ``{1, 3}`` when a colour operation is on),
    ``label: [B, H, W]`` integer.

    Example:
        >>> aug = AdaptiveAugment(p=0.5)
        >>> x, label = torch.randn(4, 3, 16, 16), torch.randint(0, 5, (4, 16, 16))
        >>> y, y_label = aug(x, label, generator=torch.Generator().manual_seed(0))
        >>> y.shape, y_label.shape
        (torch.Size([4, 3, 16, 16]), torch.Size([4, 16, 16]))
        >>> aug.update(torch.ones(4))  # D is over-confident on reals: p will go up
        >>> sorted(aug.state_dict())
        ['_extra_state', 'count', 'p', 'rt', 'sign_sum']
    """

    p: torch.Tensor
    sign_sum: torch.Tensor
    count: torch.Tensor
    rt: torch.Tensor

    def __init__(
        self,
        *,
        p: float = 0.0,
        target: Optional[float] = 0.6,
        kimg: float = 500.0,
        interval: int = 4,
        xflip: float = 1.0,
        rotate90: float = 1.0,
        xint: float = 1.0,
        scale: float = 1.0,
        rotate: float = 1.0,
        aniso: float = 1.0,
        xfrac: float = 1.0,
        brightness: float = 1.0,
        contrast: float = 1.0,
        lumaflip: float = 1.0,
        hue: float = 1.0,
        saturation: float = 1.0,
        cutout: float = 0.0,
        xint_max: float = 0.125,
        scale_std: float = 0.2,
        rotate_max: float = 1.0,
        aniso_std: float = 0.2,
        xfrac_std: float = 0.125,
        brightness_std: float = 0.2,
        contrast_std: float = 0.5,
        hue_max: float = 1.0,
        saturation_std: float = 1.0,
        cutout_size: float = 0.5,
        padding: str = "reflect",
        label_fill: Optional[int] = 0,
        sync: bool = True,
    ) -> None:
        super().__init__()
        if not 0.0 <= p <= 1.0:
            raise ValueError(f"p: expected a probability in [0, 1], got {p!r}")
        if target is not None and not 0.0 <= target <= 1.0:
            raise ValueError(f"target: expected a value in [0, 1] or None, got {target!r}")
        if not kimg > 0:
            raise ValueError(
                f"kimg: expected a positive number of thousands of images, got {kimg!r}"
            )
        if isinstance(interval, bool) or not isinstance(interval, int) or interval < 1:
            raise ValueError(f"interval: expected a positive int, got {interval!r}")
        self.strengths: Dict[str, float] = {}
        loc = locals()
        for name in _STRENGTHS:
            value = float(loc[name])
            if value < 0:
                raise ValueError(f"{name}: expected a non-negative strength, got {value!r}")
            self.strengths[name] = value
        for name in (
            "xint_max",
            "scale_std",
            "rotate_max",
            "aniso_std",
            "xfrac_std",
            "brightness_std",
            "contrast_std",
            "hue_max",
            "saturation_std",
            "cutout_size",
        ):
            if float(loc[name]) < 0:
                raise ValueError(f"{name}: expected a non-negative value, got {loc[name]!r}")
        self.ranges = {
            "xint_max": float(xint_max), "scale_std": float(scale_std),
            "rotate_max": float(rotate_max), "aniso_std": float(aniso_std),
            "xfrac_std": float(xfrac_std), "brightness_std": float(brightness_std),
            "contrast_std": float(contrast_std), "hue_max": float(hue_max),
            "saturation_std": float(saturation_std), "cutout_size": float(cutout_size),
        }  # fmt: skip
        self.padding = check_padding(padding)
        self.label_fill = check_label_fill(label_fill, padding)
        self.target = None if target is None else float(target)
        self.kimg = float(kimg)
        self.interval = interval
        self.sync = bool(sync)
        self._steps = 0
        self.register_buffer("p", torch.tensor(float(p)))
        self.register_buffer("sign_sum", torch.zeros((), dtype=torch.float64))
        self.register_buffer("count", torch.zeros((), dtype=torch.float64))
        self.register_buffer("rt", torch.tensor(float("nan")))

    # -- state ------------------------------------------------------------------------------
    @property
    def probability(self) -> float:
        """The current ``p`` as a Python float (a host sync on GPU)."""
        return float(self.p)

    def get_extra_state(self) -> Any:
        """Calls of :meth:`update` since the last adjustment (saved in the ``state_dict``)."""
        return {"steps": self._steps}

    def set_extra_state(self, state: Any) -> None:
        """Restore :meth:`get_extra_state`."""
        self._steps = int(state["steps"])

    def extra_repr(self) -> str:
        on = [k for k, v in self.strengths.items() if v > 0]
        return (
            f"target={self.target}, kimg={self.kimg}, interval={self.interval}, "
            f"padding={self.padding!r}, label_fill={self.label_fill}, ops={on}"
        )

    # -- adaptation ---------------------------------------------------------------------------
    @torch.no_grad()
    def update(self, real_logits: torch.Tensor) -> None:
        """Accumulate ``sign(real_logits)`` (one logit per real image) and adjust ``p`` on schedule.

        Args:
            real_logits: Discriminator logits on the real images of one step, ``[B]`` or
                ``[B, 1]``.
        """
        if not isinstance(real_logits, torch.Tensor) or not real_logits.is_floating_point():
            raise TypeError("real_logits: expected a floating-point tensor [B] or [B, 1]")
        if self.target is None:
            return
        logits = real_logits.detach().to(self.sign_sum.device)
        self.sign_sum += logits.sign().sum(dtype=torch.float64)
        self.count += logits.numel()
        self._steps += 1
        if self._steps < self.interval:
            return
        stats = torch.stack([self.sign_sum, self.count])
        if self.sync and torch.distributed.is_available() and torch.distributed.is_initialized():
            torch.distributed.all_reduce(stats)
        rt = stats[0] / stats[1].clamp(min=1)
        step = torch.sign(rt - self.target) * stats[1] / (1000.0 * self.kimg)
        self.p.copy_((self.p + step).clamp(0.0, 1.0))
        self.rt.copy_(rt)
        self.sign_sum.zero_()
        self.count.zero_()
        self._steps = 0

    # -- augmentation -------------------------------------------------------------------------
    def sample(
        self,
        batch_size: int,
        height: int,
        width: int,
        *,
        device: Optional[Union[str, torch.device]] = None,
        generator: Optional[torch.Generator] = None,
    ) -> AugmentDraw:
        """Draw the per-sample transforms for a batch (use :meth:`apply` to run them).

        One draw can be applied to several batches (e.g. real, fake and LabelMix images) so that
        they are transformed identically.

        Args:
            batch_size: ``B``.
            height: ``H`` of the images (integer translations are whole pixels).
            width: ``W`` of the images.
            device: Device of the returned matrices (default: that of ``p``).
            generator: Optional random generator (on any device).

        Returns:
            An :class:`AugmentDraw`.
        """
        if isinstance(batch_size, bool) or not isinstance(batch_size, int) or batch_size < 1:
            raise ValueError(f"batch_size: expected a positive int, got {batch_size!r}")
        dev = torch.device(device) if device is not None else self.p.device
        b, s, r = batch_size, self.strengths, self.ranges
        p = self.p.to(dev, torch.float32)

        def uniform(*shape: int) -> torch.Tensor:
            return rand([b, *shape], generator=generator, device=dev)

        def normal(*shape: int) -> torch.Tensor:
            return randn([b, *shape], generator=generator, device=dev)

        def gate(prob: torch.Tensor, value: torch.Tensor, neutral: float) -> torch.Tensor:
            keep = uniform() < prob
            keep = keep.view(b, *([1] * (value.ndim - 1)))
            return torch.where(keep, value, torch.full_like(value, neutral))

        draw = AugmentDraw()
        if any(s[k] > 0 for k in _GEOMETRIC):
            g = identity2d(b, device=dev)
            if s["xflip"] > 0:
                i = gate(s["xflip"] * p, torch.floor(uniform() * 2), 0.0)
                g = g @ scale2d(1 - 2 * i, torch.ones_like(i))
            if s["rotate90"] > 0:
                k = gate(s["rotate90"] * p, torch.floor(uniform() * 4), 0.0)
                g = g @ rotate90(k)
            if s["xint"] > 0:
                t = gate(s["xint"] * p, (uniform(2) * 2 - 1) * r["xint_max"], 0.0)
                g = g @ translate2d(torch.round(t[:, 0] * width), torch.round(t[:, 1] * height))
            if s["scale"] > 0:
                z = gate(s["scale"] * p, torch.exp2(normal() * r["scale_std"]), 1.0)
                g = g @ scale2d(z, z)
            p_rot = 1 - torch.sqrt((1 - s["rotate"] * p).clamp(0, 1))
            if s["rotate"] > 0:
                theta = gate(p_rot, (uniform() * 2 - 1) * math.pi * r["rotate_max"], 0.0)
                g = g @ rotate2d(theta)
            if s["aniso"] > 0:
                z = gate(s["aniso"] * p, torch.exp2(normal() * r["aniso_std"]), 1.0)
                g = g @ scale2d(z, 1 / z)
            if s["rotate"] > 0:
                theta = gate(p_rot, (uniform() * 2 - 1) * math.pi * r["rotate_max"], 0.0)
                g = g @ rotate2d(theta)
            if s["xfrac"] > 0:
                t = gate(s["xfrac"] * p, normal(2) * r["xfrac_std"], 0.0)
                g = g @ translate2d(t[:, 0] * width, t[:, 1] * height)
            draw.geometric = g
        if any(s[k] > 0 for k in _COLOR):
            c = torch.eye(4, device=dev).expand(b, 4, 4)
            if s["brightness"] > 0:
                shift = gate(s["brightness"] * p, normal() * r["brightness_std"], 0.0)
                c = brightness_matrix(shift) @ c
            if s["contrast"] > 0:
                factor = gate(s["contrast"] * p, torch.exp2(normal() * r["contrast_std"]), 1.0)
                c = contrast_matrix(factor) @ c
            if s["lumaflip"] > 0:
                i = gate(s["lumaflip"] * p, torch.floor(uniform() * 2), 0.0)
                c = luma_flip_matrix(i) @ c
            if s["hue"] > 0:
                theta = gate(s["hue"] * p, (uniform() * 2 - 1) * math.pi * r["hue_max"], 0.0)
                c = hue_rotation_matrix(theta) @ c
            if s["saturation"] > 0:
                factor = gate(s["saturation"] * p, torch.exp2(normal() * r["saturation_std"]), 1.0)
                c = saturation_matrix(factor) @ c
            draw.color = c
        if s["cutout"] > 0:
            draw.cutout_center = uniform(2)
            size = torch.full((b, 2), r["cutout_size"], device=dev)
            draw.cutout_size = gate(s["cutout"] * p, size, 0.0)
        return draw

    def apply(
        self, x: torch.Tensor, draw: AugmentDraw, *, label: Optional[torch.Tensor] = None
    ) -> Union[torch.Tensor, Tuple[torch.Tensor, torch.Tensor]]:
        """Run a :class:`AugmentDraw` on images (and label maps).

        Args:
            x: ``[B, C, H, W]`` images.
            draw: Transforms from :meth:`sample` with the same ``B``.
            label: Optional ``[B, H, W]`` integer class maps aligned with ``x``.

        Returns:
            ``[B, C, H, W]`` augmented images, or ``(images, labels)`` when ``label`` is given.
        """
        check_image(x)
        label = check_label(label, x)
        if not isinstance(draw, AugmentDraw):
            raise TypeError(f"draw: expected an AugmentDraw, got {type(draw).__name__}")
        for name in ("geometric", "color", "cutout_center", "cutout_size"):
            t = getattr(draw, name)
            if t is not None and t.shape[0] != x.shape[0]:
                raise ValueError(
                    f"draw: its {name} has batch size {t.shape[0]}, x has {x.shape[0]}"
                )
        if draw.geometric is not None:
            warped = warp_affine(
                x, draw.geometric, label=label, padding=self.padding, label_fill=self.label_fill
            )
            x, label = warped if label is not None else (warped, None)
        if draw.color is not None:
            x = apply_color_matrix(x, draw.color)
        if draw.cutout_center is not None and draw.cutout_size is not None:
            fill = self.label_fill
            erased = cutout(x, draw.cutout_center, draw.cutout_size, label=label, label_fill=fill)
            x, label = erased if label is not None else (erased, None)
        return x if label is None else (x, label)

    def forward(
        self,
        x: torch.Tensor,
        label: Optional[torch.Tensor] = None,
        *,
        generator: Optional[torch.Generator] = None,
    ) -> Union[torch.Tensor, Tuple[torch.Tensor, torch.Tensor]]:
        """Augment a batch with a fresh draw: :meth:`apply` of :meth:`sample`.

        Args:
            x: ``[B, C, H, W]`` images.
            label: Optional ``[B, H, W]`` integer class maps aligned with ``x``.
            generator: Optional random generator (on any device).

        Returns:
            ``[B, C, H, W]`` augmented images, or ``(images, labels)`` when ``label`` is given.
        """
        check_image(x)
        b, _, h, w = x.shape
        draw = self.sample(b, h, w, device=x.device, generator=generator)
        return self.apply(x, draw, label=label)
