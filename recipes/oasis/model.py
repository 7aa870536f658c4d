"""OASIS (Schönfeld et al. 2021) generator and discriminator assembled from :mod:`ganblocks.nn`.

Generator: the SPADE trunk (:class:`recipes.spade.SPADETrunk`: ``fc`` on the label map
nearest-downsampled to the latent grid, six :class:`~ganblocks.nn.SPADEResBlock` with 2× nearest
up-sampling between them, ``lrelu → conv3×3 → tanh``) fed with ``[z; label]``
(:class:`~ganblocks.nn.Noise3d`: one ``z`` per image replicated over every pixel), spectral norm on
the residual blocks' convs, batch or instance parameter-free norm in the SPADE layers. Widths
``channels_G · [16, 16, 16, 8, 4, 2, 1]``.

Discriminator: a residual U-Net. Encoder ``body_down``: :class:`~ganblocks.nn.OASISResBlockDown`
(the first without pre-activation), each halving the resolution; decoder ``body_up``:
:class:`~ganblocks.nn.OASISResBlockUp`, each doubling it, fed from the second on with
``[encoder skip; x]``; a 1×1 conv to ``N + 1`` per-pixel logits (class 0 = fake). Every conv of the
residual blocks is spectral-normed and their learned shortcuts have a bias. OASIS hard-codes the
widths (``[3, 128, 128, 256, 256, 512, 512]`` and 64 before the last conv); :meth:`Discriminator.
from_oasis` reads them from the state dict.

Key names: our sub-modules carry OASIS's names (``fc``, ``body.i.conv_0``, ``body_down.i``, ...);
only the inside of the SPADE layers (:mod:`recipes.spade.convert`), the legacy spectral-norm
layout and the ``nn.Sequential`` indices of the D blocks differ (rules of a
:class:`ganblocks.convert.StateDictConverter`), which :meth:`Generator.to_oasis` and
:meth:`Discriminator.to_oasis` undo.
"""

from __future__ import annotations

from typing import Any, Dict, List, Mapping, Optional, Sequence

import torch
from torch import nn

from ganblocks.convert import Rule, StateDictConverter
from ganblocks.nn import (
    Noise3d,
    OASISResBlockDown,
    OASISResBlockUp,
    spectral_norm_from_legacy,
    spectral_norm_to_legacy,
)
from recipes.spade.convert import (
    load_converted,
    opt_get,
    spade_layers_from_reference,
    spade_layers_to_reference,
)
from recipes.spade.model import SPADETrunk, check_onehot, latent_grid

__all__ = ["Discriminator", "Generator"]

_NORMS = {"batch": "batch", "syncbatch": "batch", "instance": "instance"}
_NUM_RES_BLOCKS = 6  # OASIS builds 6 generator blocks and 7 D widths; other counts cannot run


def _norm(value: str) -> str:
    if value not in _NORMS:
        raise ValueError(f"param_free_norm: expected one of {sorted(_NORMS)}, got {value!r}")
    return _NORMS[value]


class Generator(SPADETrunk):
    """OASIS generator: ``G(label_onehot, z=None)`` → image in ``[-1, 1]``.

    Args:
        semantic_nc: Label channels ``N`` (the don't-care class included when the data has one).
        channels_G: Base width (widths ``channels_G · [16, 16, 16, 8, 4, 2, 1]``).
        z_dim: Noise channels of the 3-D noise.
        noise_3d: Concatenate 3-D noise to the label map (OASIS's ``not no_3dnoise``).
        crop_size: Output width.
        aspect_ratio: Width / height.
        norm: SPADE layers' parameter-free norm, ``'batch'`` or ``'instance'``.
        spade_kernel_size: Kernel of the SPADE layers' convs.
        spectral_norm: Spectral norm on the residual blocks' convs.

    Shapes:
        ``label: [B, N, H, W]`` (one-hot, float), ``z: [B, z_dim]`` (or per-pixel
        ``[B, z_dim, H, W]``; drawn from ``N(0, I)`` when ``None``) →
        ``[B, 3, crop_size / aspect_ratio, crop_size]``.

    Example:
        >>> G = Generator(semantic_nc=4, channels_G=1, z_dim=2, crop_size=64).eval()
        >>> G(torch.zeros(2, 4, 64, 64), torch.randn(2, 2)).shape
        torch.Size([2, 3, 64, 64])
    """

    def __init__(
        self,
        *,
        semantic_nc: int,
        channels_G: int = 64,
        z_dim: int = 64,
        noise_3d: bool = True,
        crop_size: int = 256,
        aspect_ratio: float = 1.0,
        norm: str = "batch",
        spade_kernel_size: int = 3,
        spectral_norm: bool = True,
    ) -> None:
        n = _NUM_RES_BLOCKS
        h, w = latent_grid(crop_size, aspect_ratio, n - 1)
        ch = int(channels_G)
        label_channels = int(semantic_nc) + (int(z_dim) if noise_3d else 0)
        super().__init__(
            label_channels,
            channels=[16 * ch] * 3 + [8 * ch, 4 * ch, 2 * ch, ch],
            upsample=[False] + [True] * (n - 1),
            latent_size=(h, w),
            norm=_norm(norm),
            spade_kernel_size=spade_kernel_size,
            spectral_norm=spectral_norm,
        )
        self.semantic_nc = int(semantic_nc)
        self.noise: Optional[Noise3d] = Noise3d(z_dim) if noise_3d else None

    def forward(self, label: torch.Tensor, z: Optional[torch.Tensor] = None) -> torch.Tensor:
        """``label: [B, N, H, W]``, ``z: [B, z_dim] | None`` → images ``[B, 3, H', W']``."""
        seg = check_onehot(label, self.semantic_nc)
        if self.noise is not None:
            seg = self.noise(seg, z)
        elif z is not None:
            raise ValueError("z: this generator has no 3-D noise (no_3dnoise=True); pass z=None")
        return self.trunk(seg)

    @classmethod
    def from_opt(cls, opt: Any) -> Generator:
        """A generator with OASIS's options (a dict or ``argparse.Namespace``)."""
        blocks = opt_get(opt, "num_res_blocks", _NUM_RES_BLOCKS)
        if blocks != _NUM_RES_BLOCKS:
            raise ValueError(
                f"opt: num_res_blocks={blocks}; OASIS's generator only runs with "
                f"{_NUM_RES_BLOCKS} (its widths list has {_NUM_RES_BLOCKS} blocks)"
            )
        return cls(
            semantic_nc=opt_get(opt, "semantic_nc"),
            channels_G=opt_get(opt, "channels_G", 64),
            z_dim=opt_get(opt, "z_dim", 64),
            noise_3d=not opt_get(opt, "no_3dnoise", False),
            crop_size=opt_get(opt, "crop_size"),
            aspect_ratio=opt_get(opt, "aspect_ratio", 1.0),
            norm=opt_get(opt, "param_free_norm", "syncbatch"),
            spade_kernel_size=opt_get(opt, "spade_ks", 3),
            spectral_norm=not opt_get(opt, "no_spectral_norm", False),
        )

    @classmethod
    def from_oasis(cls, state_dict: Mapping[str, torch.Tensor], opt: Any) -> Generator:
        """Our generator holding the weights of an ``OASIS_Generator`` state dict.

        Args:
            state_dict: ``OASIS_Generator(opt).state_dict()`` (OASIS's key names).
            opt: Its options (``semantic_nc, channels_G, z_dim, no_3dnoise, crop_size,
                aspect_ratio, param_free_norm, spade_ks, no_spectral_norm``).
        """
        G = cls.from_opt(opt)
        load_converted(G, spade_layers_from_reference(state_dict, norm_key="first_norm"),
                       "OASIS generator")
        return G

    def to_oasis(self) -> Dict[str, torch.Tensor]:
        """Our state dict under OASIS's key names (loads into ``OASIS_Generator``)."""
        return spade_layers_to_reference(self.state_dict(), norm_key="first_norm")


# OASIS wraps each D conv in an nn.Sequential after its activation / up-sampling: the conv's
# index there is 0 (first encoder block), 1 (other encoder blocks' conv1, every conv2) or 2
# (decoder conv1). OASIS key → ours; the other keys keep their names.
_D_KEYS = StateDictConverter(
    [
        Rule("body_down.0.conv1.0.{rest:.+}", "body_down.0.conv1.{rest}"),
        Rule(r"body_down.{i:[1-9]\d*}.conv1.1.{rest:.+}", "body_down.{i}.conv1.{rest}"),
        Rule(r"body_up.{i:\d+}.conv1.2.{rest:.+}", "body_up.{i}.conv1.{rest}"),
        Rule(r"{block:body_(?:down|up)\.\d+}.conv2.1.{rest:.+}", "{block}.conv2.{rest}"),
        Rule(r"{block:body_(?:down|up)\.\d+}.conv_s.{rest:.+}", "{block}.shortcut.{rest}"),
    ],
    passthrough=True,
)


class Discriminator(nn.Module):
    """OASIS's residual U-Net discriminator: ``D(img)`` → per-pixel ``N + 1`` logits.

    Args:
        semantic_nc: Classes ``N``; the output has ``N + 1`` channels (channel 0 = fake).
        channels: Encoder widths ``[c_0 (image channels), c_1, ..., c_n]`` (OASIS:
            ``[3, 128, 128, 256, 256, 512, 512]``); the decoder mirrors them.
        last_channels: Width of the last decoder block (OASIS: 64).
        spectral_norm: Spectral norm on every conv of the residual blocks.

    Shapes:
        ``img: [B, c_0, H, W]`` with ``H, W`` multiples of ``2^n`` → ``[B, N + 1, H, W]``.

    Example:
        >>> D = Discriminator(semantic_nc=4, channels=[3, 4, 4, 8], last_channels=4).eval()
        >>> D(torch.randn(2, 3, 32, 32)).shape
        torch.Size([2, 5, 32, 32])
    """

    def __init__(
        self,
        *,
        semantic_nc: int,
        channels: Sequence[int] = (3, 128, 128, 256, 256, 512, 512),
        last_channels: int = 64,
        spectral_norm: bool = True,
    ) -> None:
        super().__init__()
        ch = [int(c) for c in channels]
        if len(ch) < 3 or min(ch) < 1:
            raise ValueError(f"channels: expected at least 3 positive widths, got {list(channels)}")
        self.channels = tuple(ch)
        self.semantic_nc = int(semantic_nc)
        n = len(ch) - 1
        sn = bool(spectral_norm)
        self.body_down = nn.ModuleList(
            OASISResBlockDown(ch[i], ch[i + 1], spectral_norm=sn, equalized=False,
                              preactivate=i > 0, shortcut_bias=True)
            for i in range(n)
        )
        # decoder block i maps [skip; x] (2·c_{n-i} channels, c_n for the first) → c_{n-1-i}
        ins = [ch[n]] + [2 * ch[n - i] for i in range(1, n)]
        outs = [ch[n - 1 - i] for i in range(n - 1)] + [int(last_channels)]
        self.body_up = nn.ModuleList(
            OASISResBlockUp(cin, cout, spectral_norm=sn, shortcut_bias=True)
            for cin, cout in zip(ins, outs)
        )
        self.layer_up_last = nn.Conv2d(int(last_channels), self.semantic_nc + 1, 1)

    def forward(self, img: torch.Tensor) -> torch.Tensor:
        """``img: [B, c_0, H, W]`` → logits ``[B, N + 1, H, W]``."""
        n = len(self.body_down)
        if (
            not isinstance(img, torch.Tensor)
            or img.ndim != 4
            or img.shape[1] != self.channels[0]
            or img.shape[2] % 2**n
            or img.shape[3] % 2**n
        ):
            raise ValueError(
                f"img: expected [B, {self.channels[0]}, H, W] with H and W multiples of {2**n}, "
                f"got "
                f"{tuple(img.shape) if isinstance(img, torch.Tensor) else type(img).__name__}"
            )
        skips: List[torch.Tensor] = []
        x = img
        for block in self.body_down:
            x = block(x)
            skips.append(x)
        x = self.body_up[0](x)
        for i in range(1, n):
            x = self.body_up[i](torch.cat([skips[-i - 1], x], dim=1))
        return self.layer_up_last(x)

    @classmethod
    def from_oasis(cls, state_dict: Mapping[str, torch.Tensor], opt: Any) -> Discriminator:
        """Our discriminator holding the weights of an ``OASIS_Discriminator`` state dict.

        The widths, hard-coded in OASIS, are read from the state dict (each encoder block's first
        conv, and the last conv's input); ``opt`` gives ``semantic_nc``, ``num_res_blocks`` and
        ``no_spectral_norm``.
        """
        n = int(opt_get(opt, "num_res_blocks", _NUM_RES_BLOCKS))
        sn = not opt_get(opt, "no_spectral_norm", False)
        sd = spectral_norm_from_legacy(_D_KEYS.convert(state_dict))
        weight = "conv1.parametrizations.weight.original" if sn else "conv1.weight"
        try:
            widths = [sd[f"body_down.0.{weight}"].shape[1]]
            widths += [sd[f"body_down.{i}.{weight}"].shape[0] for i in range(n)]
            last = sd["layer_up_last.weight"].shape[1]
        except KeyError as err:
            raise ValueError(
                f"state_dict: no {err} after translating OASIS's key names: not an "
                f"OASIS_Discriminator with num_res_blocks={n} and no_spectral_norm={not sn}?"
            ) from None
        D = cls(semantic_nc=opt_get(opt, "semantic_nc"), channels=widths, last_channels=last,
                spectral_norm=sn)
        load_converted(D, sd, "OASIS discriminator")
        return D

    def to_oasis(self) -> Dict[str, torch.Tensor]:
        """Our state dict under OASIS's key names (loads into ``OASIS_Discriminator``)."""
        return _D_KEYS.invert(spectral_norm_to_legacy(self.state_dict()))
