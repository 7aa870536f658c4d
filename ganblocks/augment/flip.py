"""Random horizontal flip of images together with their label maps (data augmentation)."""

from __future__ import annotations

from typing import Optional, Tuple, Union

import torch

from ..rng import rand
from ._checks import check_image, check_label

__all__ = ["random_hflip"]


def random_hflip(
    x: torch.Tensor,
    *,
    label: Optional[torch.Tensor] = None,
    p: float = 0.5,
    generator: Optional[torch.Generator] = None,
) -> Union[torch.Tensor, Tuple[torch.Tensor, torch.Tensor]]:
    """Mirror each sample left–right with probability ``p``, its label map with it.

    Args:
        x: ``[B, C, H, W]`` images.
        label: Optional ``[B, H, W]`` integer class maps.
        p: Flip probability per sample.
        generator: Optional random generator (on any device).

    Returns:
        ``[B, C, H, W]`` images, or ``(images, labels)`` when ``label`` is given.

    Example:
        >>> x = torch.arange(3.0).view(1, 1, 1, 3)
        >>> random_hflip(x, label=torch.tensor([[[0, 1, 2]]]), p=1.0)
        (tensor([[[[2., 1., 0.]]]]), tensor([[[2, 1, 0]]]))
    """
    check_image(x)
    label = check_label(label, x)
    if not 0.0 <= p <= 1.0:
        raise ValueError(f"p: expected a probability in [0, 1], got {p!r}")
    flip = rand([x.shape[0]], generator=generator, device=x.device) < p  # [B]
    out = torch.where(flip.view(-1, 1, 1, 1), x.flip(3), x)
    if label is None:
        return out
    return out, torch.where(flip.view(-1, 1, 1), label.flip(2), label)
