r"""LabelMix (OASIS): mix a real and a fake image along class regions, ask D to be consistent.

One Bernoulli(½) bit per class gives a binary mask :math:`M` that is constant on every class region
of the label map (the bits are shared by the whole batch). With
:math:`x_\text{mix} = M \odot x_\text{real} + (1 - M) \odot x_\text{fake}` the consistency loss is

.. math::

    \mathcal{L}_\text{LM} = \operatorname{MSE}\bigl(D(x_\text{mix}),\;
        M \odot D(x_\text{real}) + (1 - M) \odot D(x_\text{fake})\bigr),

the mean of the squared difference over all elements of the ``[B, N+1, H, W]`` logit maps.
"""

from __future__ import annotations

from typing import Optional

import torch

from ..rng import draw_device
from ._checks import check_label_map, check_label_range, check_logits

__all__ = ["labelmix_images", "labelmix_loss", "labelmix_mask"]


def labelmix_mask(
    label: torch.Tensor,
    *,
    num_classes: Optional[int] = None,
    generator: Optional[torch.Generator] = None,
    dtype: torch.dtype = torch.float32,
) -> torch.Tensor:
    """Binary LabelMix mask: one fair coin per class, shared across the batch.

    Every pixel of class ``c`` (in every sample) gets the same bit ``m_c ~ Bernoulli(1/2)``, drawn
    independently per class. (OASIS's reference rewrites its map in place class by class, which can
    merge the bits of classes 0 and 1; here every class has its own bit.)

    Args:
        label: Integer class map ``[B, H, W]`` with values in ``[0, num_classes)``.
        num_classes: Number of class ids; ``None`` uses ``label.max() + 1`` (a host sync).
        generator: Optional random generator (on any device) for reproducible masks.
        dtype: Floating dtype of the mask.

    Returns:
        ``[B, 1, H, W]`` tensor of zeros and ones on ``label``'s device.

    Example:
        >>> label = torch.tensor([[[0, 0, 2], [2, 1, 1]]])
        >>> m = labelmix_mask(label, generator=torch.Generator().manual_seed(0))
        >>> m.shape
        torch.Size([1, 1, 2, 3])
        >>> bool(m[0, 0, 0, 0] == m[0, 0, 0, 1]) and bool(m[0, 0, 0, 2] == m[0, 0, 1, 0])
        True
    """
    check_label_map(label)
    if num_classes is None:
        num_classes = int(label.max()) + 1 if label.numel() else 1
    elif isinstance(num_classes, bool) or not isinstance(num_classes, int) or num_classes < 1:
        raise ValueError(f"num_classes: expected a positive int or None, got {num_classes!r}")
    check_label_range(label, num_classes)
    where = draw_device(generator, label.device)
    bits = torch.randint(0, 2, (num_classes,), generator=generator, device=where)
    return bits.to(label.device, dtype)[label].unsqueeze(1)


def labelmix_images(real: torch.Tensor, fake: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """``mask · real + (1 − mask) · fake``.

    Args:
        real: ``[B, C, H, W]`` real images.
        fake: ``[B, C, H, W]`` fake images.
        mask: ``[B, 1, H, W]`` mask from :func:`labelmix_mask` (broadcast over channels).

    Returns:
        ``[B, C, H, W]`` mixed images.

    Example:
        >>> mask = torch.tensor([[[[1.0, 0.0]]]])
        >>> labelmix_images(torch.ones(1, 1, 1, 2), torch.zeros(1, 1, 1, 2), mask)
        tensor([[[[1., 0.]]]])
    """
    check_logits(real, "real")
    check_logits(fake, "fake")
    check_logits(mask, "mask")
    if real.shape != fake.shape:
        raise ValueError(
            f"fake: expected shape {tuple(real.shape)} like real, got {tuple(fake.shape)}"
        )
    return mask * real + (1 - mask) * fake


def labelmix_loss(
    d_mixed: torch.Tensor, d_real: torch.Tensor, d_fake: torch.Tensor, mask: torch.Tensor
) -> torch.Tensor:
    """LabelMix consistency loss ``MSE(d_mixed, mask·d_real + (1 − mask)·d_fake)``.

    Args:
        d_mixed: ``[B, N+1, H, W]`` discriminator output on the mixed images.
        d_real: ``[B, N+1, H, W]`` discriminator output on the real images.
        d_fake: ``[B, N+1, H, W]`` discriminator output on the fake images.
        mask: ``[B, 1, H, W]`` mask used to mix the images.

    Returns:
        Scalar tensor (mean over all elements).

    Example:
        >>> mask = torch.tensor([[[[1.0, 0.0]]]])
        >>> d_real, d_fake = torch.ones(1, 2, 1, 2), -torch.ones(1, 2, 1, 2)
        >>> labelmix_loss(torch.zeros(1, 2, 1, 2), d_real, d_fake, mask)
        tensor(1.)
    """
    for name, t in (("d_mixed", d_mixed), ("d_real", d_real), ("d_fake", d_fake), ("mask", mask)):
        check_logits(t, name)
    if not d_mixed.shape == d_real.shape == d_fake.shape:
        raise ValueError(
            "d_mixed, d_real, d_fake: expected equal shapes, got "
            f"{tuple(d_mixed.shape)}, {tuple(d_real.shape)}, {tuple(d_fake.shape)}"
        )
    target = mask * d_real + (1 - mask) * d_fake
    return (d_mixed - target).square().mean()
