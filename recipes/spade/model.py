"""SPADE's generator (Park et al. 2019, ``use_vae=False``) assembled from :mod:`ganblocks.nn`.

The label map, nearest-downsampled to a small latent grid, goes through a 3×3 conv (``fc``), then
a stack of :class:`~ganblocks.nn.SPADEResBlock` (every SPADE layer reads the full label map) with
nearest 2× up-sampling between them, then ``lrelu(0.2) → conv3×3 → tanh``.

Blocks (NVlabs/SPADE names → ours), widths in units of ``ngf``:

================  ==========  =======  ==========================================
theirs            ours        widths   up-sampled before it
================  ==========  =======  ==========================================
``head_0``        ``body.0``  16 → 16  no
``G_middle_0``    ``body.1``  16 → 16  yes
``G_middle_1``    ``body.2``  16 → 16  for ``num_upsampling_layers`` more / most
``up_0``          ``body.3``  16 → 8   yes
``up_1``          ``body.4``  8 → 4    yes
``up_2``          ``body.5``  4 → 2    yes
``up_3``          ``body.6``  2 → 1    yes
``up_4``          ``body.7``  1 → 1/2  yes (most only)
================  ==========  =======  ==========================================

:class:`SPADETrunk` is the part SPADE and OASIS share (OASIS's generator subclasses it, adding 3-D
noise).
"""

from __future__ import annotations

import re
from typing import Any, Dict, Mapping, Sequence, Tuple

import torch
import torch.nn.functional as F
from torch import nn

from ganblocks.nn import SPADEResBlock

from .convert import (
    load_converted,
    opt_get,
    rename_prefixes,
    spade_layers_from_reference,
    spade_layers_to_reference,
)

__all__ = ["Generator", "SPADETrunk", "check_onehot", "latent_grid", "parse_norm_G"]

_SLOPE = 0.2
_NUM_UP = {"normal": 5, "more": 6, "most": 7}
_NORMS = {"batch": "batch", "syncbatch": "batch", "instance": "instance"}


def parse_norm_G(norm_G: str) -> Tuple[bool, str, int]:
    """Parse SPADE's ``norm_G`` (``[spectral]spade<norm><k>x<k>``) → ``(spectral, norm, k)``.

    ``syncbatch`` becomes ``'batch'`` (the same computation on one process, the same state dict).

    Example:
        >>> parse_norm_G("spectralspadesyncbatch3x3")
        (True, 'batch', 3)
    """
    m = re.fullmatch(r"(spectral)?spade([a-z]+)(\d)x(\d)", str(norm_G))
    if m is None or m[2] not in _NORMS or m[3] != m[4]:
        raise ValueError(
            f"norm_G: expected '[spectral]spade<norm><k>x<k>' with norm one of "
            f"{sorted(_NORMS)} (e.g. 'spectralspadesyncbatch3x3'), got {norm_G!r}"
        )
    return m[1] is not None, _NORMS[m[2]], int(m[3])


def check_onehot(label: object, channels: int) -> torch.Tensor:
    """Check that ``label`` is a float label map ``[B, channels, H, W]``, else raise."""
    if not isinstance(label, torch.Tensor) or not label.is_floating_point() or label.ndim != 4:
        raise ValueError(
            f"label: expected a floating-point one-hot label map [B, {channels}, H, W], got "
            f"{tuple(label.shape) if isinstance(label, torch.Tensor) else type(label).__name__}"
            + (f" of dtype {label.dtype}" if isinstance(label, torch.Tensor) else "")
        )
    if label.shape[1] != channels:
        raise ValueError(
            f"label: expected {channels} channels (one-hot classes), got {tuple(label.shape)}"
        )
    return label


def latent_grid(crop_size: int, aspect_ratio: float, num_up: int) -> Tuple[int, int]:
    """``(h, w)`` of the grid that ``num_up`` 2× up-samplings take to a ``crop_size``-wide image.

    ``w = crop_size // 2^num_up`` and ``h = round(w / aspect_ratio)``, as SPADE and OASIS do.

    Example:
        >>> latent_grid(256, 2.0, 5)
        (4, 8)
    """
    w = int(crop_size) // 2**num_up
    h = round(w / float(aspect_ratio))
    if w < 1 or h < 1:
        raise ValueError(
            f"crop_size: {crop_size} with aspect_ratio {aspect_ratio} gives a latent grid "
            f"{h}×{w}; expected at least 1×1 (crop_size >= 2^{num_up})"
        )
    return h, w


class SPADETrunk(nn.Module):
    """``fc`` on the downsampled map → SPADE residual blocks with 2× nearest up-sampling → RGB.

    Args:
        label_channels: Channels ``L`` of the conditioning map (the first conv's and every SPADE
            layer's input).
        channels: Widths ``[c_0, c_1, ..., c_n]``: ``fc`` outputs ``c_0``, block ``i`` maps
            ``c_i → c_{i+1}``.
        upsample: For each block, whether to up-sample 2× before it.
        latent_size: ``(h, w)`` the map is nearest-resized to before ``fc``.
        norm: Parameter-free norm of the SPADE layers (``'batch'`` or ``'instance'``).
        spade_kernel_size: Kernel of the SPADE layers' label convs.
        spectral_norm: Spectral norm on the blocks' convs (not on ``fc`` nor ``conv_img``).
        spade_hidden: Hidden width of the SPADE layers (128 in SPADE and OASIS).

    Shapes:
        ``seg: [B, L, H, W]`` → ``[B, 3, h·2^u, w·2^u]`` in ``[-1, 1]`` (``u`` up-samplings).

    Example:
        >>> trunk = SPADETrunk(4, channels=[8, 8, 4], upsample=[False, True], latent_size=(2, 3))
        >>> trunk.output_size, trunk.trunk(torch.rand(1, 4, 16, 16)).shape
        ((4, 6), torch.Size([1, 3, 4, 6]))
    """

    def __init__(
        self,
        label_channels: int,
        *,
        channels: Sequence[int],
        upsample: Sequence[bool],
        latent_size: Tuple[int, int],
        norm: str = "batch",
        spade_kernel_size: int = 3,
        spectral_norm: bool = True,
        spade_hidden: int = 128,
    ) -> None:
        super().__init__()
        channels = [int(c) for c in channels]
        if len(upsample) != len(channels) - 1:
            raise ValueError(
                f"upsample: expected one flag per block ({len(channels) - 1}), got {list(upsample)}"
            )
        if min(latent_size) < 1:
            raise ValueError(f"latent_size: expected positive (h, w), got {latent_size}")
        self.label_channels = int(label_channels)
        self.latent_size = (int(latent_size[0]), int(latent_size[1]))
        self.upsample = tuple(bool(u) for u in upsample)
        self.fc = nn.Conv2d(self.label_channels, channels[0], 3, padding=1)
        self.body = nn.ModuleList(
            SPADEResBlock(
                cin,
                cout,
                self.label_channels,
                hidden_channels=spade_hidden,
                norm=norm,
                kernel_size=spade_kernel_size,
                spectral_norm=spectral_norm,
            )
            for cin, cout in zip(channels[:-1], channels[1:])
        )
        self.conv_img = nn.Conv2d(channels[-1], 3, 3, padding=1)

    @property
    def output_size(self) -> Tuple[int, int]:
        """``(H, W)`` of the generated images."""
        scale = 2 ** sum(self.upsample)
        return self.latent_size[0] * scale, self.latent_size[1] * scale

    def trunk(self, seg: torch.Tensor) -> torch.Tensor:
        """``seg: [B, L, H, W]`` (the full conditioning map) → images ``[B, 3, H', W']``."""
        x = self.fc(F.interpolate(seg, size=self.latent_size, mode="nearest"))
        for up, block in zip(self.upsample, self.body):
            if up:
                x = F.interpolate(x, scale_factor=2.0, mode="nearest")
            x = block(x, seg)
        return torch.tanh(self.conv_img(F.leaky_relu(x, _SLOPE)))


class Generator(SPADETrunk):
    """SPADE generator without the VAE encoder: ``G(label_onehot)`` → image.

    Build it from SPADE's options with :meth:`from_opt`, or with the original's weights with
    :meth:`from_spade`; :meth:`to_spade` gives the state dict back under the original key names.

    Args:
        semantic_nc: Label channels (classes, plus don't-care and instance-edge channels when the
            data set has them: SPADE's ``semantic_nc``).
        ngf: Base width.
        crop_size: Output width.
        aspect_ratio: Width / height.
        num_upsampling_layers: ``'normal'`` (5), ``'more'`` (6) or ``'most'`` (7 up-samplings).
        norm: Parameter-free norm in the SPADE layers, ``'batch'`` or ``'instance'``.
        spade_kernel_size: Kernel of the SPADE layers' convs.
        spectral_norm: Spectral norm on the residual blocks' convs.

    Shapes:
        ``label: [B, semantic_nc, H, W]`` → ``[B, 3, crop_size / aspect_ratio, crop_size]``.

    Example:
        >>> G = Generator(semantic_nc=5, ngf=2, crop_size=64).eval()
        >>> G(torch.zeros(1, 5, 64, 64)).shape
        torch.Size([1, 3, 64, 64])
    """

    def __init__(
        self,
        *,
        semantic_nc: int,
        ngf: int = 64,
        crop_size: int = 256,
        aspect_ratio: float = 1.0,
        num_upsampling_layers: str = "normal",
        norm: str = "batch",
        spade_kernel_size: int = 3,
        spectral_norm: bool = True,
    ) -> None:
        if num_upsampling_layers not in _NUM_UP:
            raise ValueError(
                f"num_upsampling_layers: expected one of {sorted(_NUM_UP)}, "
                f"got {num_upsampling_layers!r}"
            )
        h, w = latent_grid(crop_size, aspect_ratio, _NUM_UP[num_upsampling_layers])
        nf = int(ngf)
        widths = [16 * nf] * 4 + [8 * nf, 4 * nf, 2 * nf, nf]
        upsample = [False, True, num_upsampling_layers != "normal", True, True, True, True]
        if num_upsampling_layers == "most":
            widths.append(nf // 2)
            upsample.append(True)
        super().__init__(
            semantic_nc,
            channels=widths,
            upsample=upsample,
            latent_size=(h, w),
            norm=norm,
            spade_kernel_size=spade_kernel_size,
            spectral_norm=spectral_norm,
        )
        self.semantic_nc = int(semantic_nc)
        self.num_upsampling_layers = num_upsampling_layers

    def forward(self, label: torch.Tensor) -> torch.Tensor:
        """``label: [B, semantic_nc, H, W]`` (one-hot, float) → images ``[B, 3, H', W']``."""
        return self.trunk(check_onehot(label, self.semantic_nc))

    # ---- the original implementation's options and key names ----

    @classmethod
    def from_opt(cls, opt: Any) -> Generator:
        """A generator with SPADE's options (dict or ``argparse.Namespace``, ``use_vae`` False)."""
        if opt_get(opt, "use_vae", False):
            raise ValueError("opt: use_vae=True (the VAE encoder) is not supported; expected False")
        spectral, norm, k = parse_norm_G(opt_get(opt, "norm_G", "spectralspadesyncbatch3x3"))
        return cls(
            semantic_nc=opt_get(opt, "semantic_nc"),
            ngf=opt_get(opt, "ngf", 64),
            crop_size=opt_get(opt, "crop_size"),
            aspect_ratio=opt_get(opt, "aspect_ratio", 1.0),
            num_upsampling_layers=opt_get(opt, "num_upsampling_layers", "normal"),
            norm=norm,
            spade_kernel_size=k,
            spectral_norm=spectral,
        )

    def _block_names(self) -> Dict[str, str]:
        names = ["head_0", "G_middle_0", "G_middle_1"] + [f"up_{i}" for i in range(5)]
        return {f"body.{i}": names[i] for i in range(len(self.body))}

    @classmethod
    def from_spade(cls, state_dict: Mapping[str, torch.Tensor], opt: Any) -> Generator:
        """Our generator holding the weights of NVlabs/SPADE's ``SPADEGenerator`` state dict.

        Args:
            state_dict: ``SPADEGenerator(opt).state_dict()`` (its own key names).
            opt: The options it was built with (``semantic_nc, ngf, crop_size, aspect_ratio,
                num_upsampling_layers, norm_G``, ``use_vae=False``).
        """
        G = cls.from_opt(opt)
        theirs = {v: k for k, v in G._block_names().items()}
        sd = rename_prefixes(state_dict, theirs)
        sd = spade_layers_from_reference(sd, norm_key="param_free_norm")
        load_converted(G, sd, "SPADE generator")
        return G

    def to_spade(self) -> Dict[str, torch.Tensor]:
        """Our state dict under NVlabs/SPADE's key names (loads into their ``SPADEGenerator``)."""
        sd = spade_layers_to_reference(self.state_dict(), norm_key="param_free_norm")
        return rename_prefixes(sd, self._block_names())

