"""3-D noise: a latent vector broadcast over the label map's grid and concatenated to it.

OASIS (Schönfeld et al. 2021) makes its SPADE generator stochastic by replicating one ``z`` per
image over every pixel of the one-hot label map and concatenating it in front of the label
channels; the generator's first convolution and every SPADE layer then see ``[z; label]``. Changing
``z`` changes the whole image; a per-pixel ``z [N, Z, H, W]`` lets one resample a region only.
"""

from __future__ import annotations

from typing import Optional

import torch
from torch import nn

from .checks import check_input, check_int

__all__ = ["Noise3d", "concat_noise_3d"]


def concat_noise_3d(label: torch.Tensor, z: torch.Tensor) -> torch.Tensor:
    """Concatenate noise in front of the label channels: ``[z; label]``.

    Args:
        label: ``[N, L, H, W]``.
        z: ``[N, Z]`` (replicated over ``H × W``) or a per-pixel ``[N, Z, H, W]``.

    Returns:
        ``[N, Z + L, H, W]``: channels ``0 … Z−1`` are the noise, the rest the label unchanged.

    Example:
        >>> concat_noise_3d(torch.zeros(2, 5, 4, 4), torch.ones(2, 3)).shape
        torch.Size([2, 8, 4, 4])
    """
    check_input(label, "label", ndim=4)
    if not isinstance(z, torch.Tensor) or not z.is_floating_point() or z.ndim not in (2, 4):
        raise ValueError(
            f"z: expected a floating-point tensor [N, Z] or [N, Z, H, W], got "
            f"{tuple(z.shape) if isinstance(z, torch.Tensor) else type(z).__name__}"
        )
    if z.shape[0] != label.shape[0]:
        raise ValueError(
            f"z: expected batch size {label.shape[0]} (that of label), got {tuple(z.shape)}"
        )
    if z.ndim == 2:
        z = z[:, :, None, None].expand(-1, -1, *label.shape[2:])
    elif z.shape[2:] != label.shape[2:]:
        raise ValueError(
            f"z: a per-pixel z must have the label's grid {tuple(label.shape[2:])}, "
            f"got {tuple(z.shape)}"
        )
    return torch.cat([z.to(label.dtype), label], dim=1)


class Noise3d(nn.Module):
    """Draw (or take) ``z ~ N(0, I)`` and concatenate it in front of the label map.

    Args:
        z_dim: Noise channels ``Z``.

    Shapes:
        ``label: [N, L, H, W]``, ``z: [N, Z]`` or ``[N, Z, H, W]`` (drawn with
        :func:`torch.randn` in ``label``'s dtype and device when ``None``) → ``[N, Z + L, H, W]``.

    Example:
        >>> noise = Noise3d(8)
        >>> noise(torch.zeros(2, 5, 16, 16)).shape
        torch.Size([2, 13, 16, 16])
    """

    def __init__(self, z_dim: int) -> None:
        super().__init__()
        self.z_dim = check_int(z_dim, "z_dim")

    def sample(
        self, batch_size: int, *, like: torch.Tensor, generator: Optional[torch.Generator] = None
    ) -> torch.Tensor:
        """Draw ``z: [batch_size, Z]`` in ``like``'s dtype and device."""
        return torch.randn(
            check_int(batch_size, "batch_size"),
            self.z_dim,
            dtype=like.dtype,
            device=like.device,
            generator=generator,
        )

    def forward(
        self,
        label: torch.Tensor,
        z: Optional[torch.Tensor] = None,
        *,
        generator: Optional[torch.Generator] = None,
    ) -> torch.Tensor:
        """``label: [N, L, H, W]``, ``z: [N, Z] | [N, Z, H, W] | None`` → ``[N, Z + L, H, W]``."""
        check_input(label, "label", ndim=4)
        if z is None:
            z = self.sample(label.shape[0], like=label, generator=generator)
        elif isinstance(z, torch.Tensor) and z.ndim >= 2 and z.shape[1] != self.z_dim:
            raise ValueError(f"z: expected {self.z_dim} channels along dim 1, got {tuple(z.shape)}")
        return concat_noise_3d(label, z)

    def extra_repr(self) -> str:
        return f"{self.z_dim}"
