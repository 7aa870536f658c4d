r"""DiffAugment (Zhao et al. 2020): fixed differentiable augmentations for images and label maps.

Policies (comma-separated, applied in the order given), each drawn per sample:

* ``color``: brightness :math:`x + (u - 0.5)`, saturation
  :math:`(x - \bar x_\text{ch}) \cdot 2u + \bar x_\text{ch}`, contrast
  :math:`(x - \bar x) \cdot (u + 0.5) + \bar x`, with :math:`u \sim U[0, 1)` and
  :math:`\bar x_\text{ch}` the per-pixel channel mean, :math:`\bar x` the per-image mean;
* ``translation``: shift by a whole number of pixels, uniform in
  :math:`[-\lfloor r H + \tfrac12\rfloor, \lfloor r H + \tfrac12\rfloor]` (likewise in x),
  ``r = translation_ratio``, zeros padding (labels get ``label_fill``);
* ``cutout``: erase a rectangle of ``cutout_ratio`` times the size at a uniform centre (labels get
  ``label_fill`` there, see :func:`~ganblocks.augment.cutout.cutout`).

Colour never changes labels. Everything is differentiable (twice, in the image), so R1 works.
"""

from __future__ import annotations

from typing import Optional, Sequence, Tuple, Union

import torch

from ..rng import rand
from ._checks import check_image, check_label
from .cutout import cutout
from .geometric import translate2d
from .sampling import warp_affine

__all__ = ["POLICIES", "diff_augment"]

POLICIES = ("color", "translation", "cutout")


def _parse_policy(policy: Union[str, Sequence[str]]) -> list:
    if isinstance(policy, str):
        names = [p.strip() for p in policy.split(",") if p.strip()]
    elif isinstance(policy, (list, tuple)) and all(isinstance(p, str) for p in policy):
        names = [p.strip() for p in policy]
    else:
        raise TypeError(
            f"policy: expected a comma-separated string or a list of names, got {policy!r}"
        )
    unknown = [n for n in names if n not in POLICIES]
    if unknown:
        raise ValueError(
            f"policy: unknown augmentation(s) {unknown}; expected names from {POLICIES}"
        )
    return names


def diff_augment(
    x: torch.Tensor,
    policy: Union[str, Sequence[str]] = "color,translation,cutout",
    *,
    label: Optional[torch.Tensor] = None,
    generator: Optional[torch.Generator] = None,
    label_fill: int = 0,
    translation_ratio: float = 0.125,
    cutout_ratio: float = 0.5,
) -> Union[torch.Tensor, Tuple[torch.Tensor, torch.Tensor]]:
    """Apply DiffAugment's policies to images and, geometrically, to their label maps.

    Args:
        x: ``[B, C, H, W]`` images.
        policy: Comma-separated names from ``color``, ``translation``, ``cutout`` (or a list).
        label: Optional ``[B, H, W]`` integer class maps aligned with ``x``.
        generator: Optional random generator (on any device).
        label_fill: Label of pixels shifted in from outside or erased by cutout (don't-care id).
        translation_ratio: Largest shift as a fraction of the size.
        cutout_ratio: Cutout rectangle size as a fraction of the size.

    Returns:
        ``[B, C, H, W]`` augmented images, or ``(images, labels)`` when ``label`` is given.

    Example:
        >>> x, label = torch.randn(2, 3, 8, 8), torch.randint(1, 4, (2, 8, 8))
        >>> y, y_label = diff_augment(x, "translation", label=label,
        ...                           generator=torch.Generator().manual_seed(0))
        >>> y.shape, y_label.shape
        (torch.Size([2, 3, 8, 8]), torch.Size([2, 8, 8]))
    """
    check_image(x)
    label = check_label(label, x)
    names = _parse_policy(policy)
    if isinstance(label_fill, bool) or not isinstance(label_fill, int):
        raise TypeError(f"label_fill: expected an int, got {type(label_fill).__name__}")
    if not 0.0 <= translation_ratio <= 1.0:
        raise ValueError(
            f"translation_ratio: expected a value in [0, 1], got {translation_ratio!r}"
        )
    if not 0.0 <= cutout_ratio <= 1.0:
        raise ValueError(f"cutout_ratio: expected a value in [0, 1], got {cutout_ratio!r}")
    b, _, h, w = x.shape

    def uniform(*shape: int) -> torch.Tensor:
        return rand([b, *shape], generator=generator, device=x.device, dtype=torch.float32).to(
            torch.promote_types(x.dtype, torch.float32)
        )

    for name in names:
        if name == "color":
            x = x + (uniform(1, 1, 1).to(x.dtype) - 0.5)
            mean = x.mean(dim=1, keepdim=True)
            x = (x - mean) * (uniform(1, 1, 1).to(x.dtype) * 2) + mean
            mean = x.mean(dim=(1, 2, 3), keepdim=True)
            x = (x - mean) * (uniform(1, 1, 1).to(x.dtype) + 0.5) + mean
        elif name == "translation":
            sx, sy = int(w * translation_ratio + 0.5), int(h * translation_ratio + 0.5)
            shift = uniform(2)
            tx = torch.floor(shift[:, 0] * (2 * sx + 1)) - sx  # uniform integers in [-sx, sx]
            ty = torch.floor(shift[:, 1] * (2 * sy + 1)) - sy
            out = warp_affine(x, translate2d(tx, ty), label=label, padding="zeros",
                              label_fill=label_fill)  # fmt: skip
            x, label = out if label is not None else (out, None)
        else:  # cutout
            out = cutout(x, uniform(2), cutout_ratio, label=label, label_fill=label_fill)
            x, label = out if label is not None else (out, None)
    return x if label is None else (x, label)
