"""The OCO-GAN generator and discriminator (``OCO_GAN_SPEC.md`` §2–3), built from ganblocks.

Generator: two style networks, one shared synthesis network.

* :class:`UnconditionalStyleNet`: ``z_u [B, z]`` → PixelNorm + equalised MLP (lr_mul 0.01) → a
  ``[B, style_channels, s_h, s_w]`` map → a *style-map resizer*
  (:class:`~ganblocks.nn.StyleMapResizer`: conv, conv, then an up-conv and a conv per doubling)
  whose every output is one style map.
* :class:`ConditionalStyleNet`: ``concat(z_c replicated, one_hot(label))`` → for each style map:
  nearest resize to its resolution → conv3×3 → lrelu → conv3×3 → lrelu, giving maps of exactly the
  same shapes as the unconditional branch.
* :class:`SynthesisNetwork`: learned constant → styled conv → one residual up-block per doubling
  (:class:`~ganblocks.nn.StyleMapSynthesisBlock`: styled up-conv, styled conv, 1×1 up-sampling
  skip, sum / √2) → styled 1×1 to-RGB.

Discriminator: a shared encoder of OASISResBlockDown (no spectral norm), an image-level head (two
more OASISResBlockDown, conv, two linear layers → one logit) and a segmentation head (ASPP + a U-Net
decoder of OASISResBlockUp with skips from the encoder, spectral norm on every ASPP and decoder
conv) → a 1×1 conv to N+1 logits per pixel.
"""

from __future__ import annotations

from typing import Dict, List, NamedTuple, Optional, Sequence, Tuple

import torch
import torch.nn.functional as F
from torch import nn

from ganblocks.nn import (
    ASPP,
    EqualConv2d,
    EqualLinear,
    OASISResBlockDown,
    OASISResBlockUp,
    StyledConv2d,
    StyleMapMapping,
    StyleMapResizer,
    StyleMapSynthesisBlock,
)
from ganblocks.ops import bias_act

from .config import ModelConfig

__all__ = [
    "ConditionalStyleNet",
    "Discriminator",
    "DiscriminatorOutput",
    "Generator",
    "SynthesisNetwork",
    "UnconditionalStyleNet",
    "count_parameters",
    "one_hot_label",
]


def one_hot_label(label: torch.Tensor, num_classes: int, *,
                  size: Optional[Tuple[int, int]] = None,
                  dtype: torch.dtype = torch.float32) -> torch.Tensor:
    """Validate a semantic map and return it one-hot: ``[B, N, H, W]``.

    Args:
        label: Integer class ids ``[B, H, W]`` in ``[0, N)`` (checked in eager mode; not
            inside ``torch.compile``, which cannot branch on data), or an already one-hot / soft
            map ``[B, N, H, W]`` (floating point).
        num_classes: N, the don't-care class included.
        size: Expected ``(H, W)``, or ``None`` to accept any size.
        dtype: Floating dtype of the result.

    Example:
        >>> one_hot_label(torch.tensor([[[0, 2], [1, 1]]]), 3)[0, :, 0, 1]
        tensor([0., 0., 1.])
    """
    if not isinstance(label, torch.Tensor):
        raise TypeError(f"label: expected a torch.Tensor, got {type(label).__name__}")
    if label.is_floating_point():
        if label.ndim != 4 or label.shape[1] != num_classes:
            raise ValueError(
                f"label: a floating-point label must be one-hot [B, {num_classes}, H, W], got "
                f"shape {tuple(label.shape)}"
            )
        out = label.to(dtype)
    else:
        if label.ndim != 3:
            raise ValueError(
                f"label: expected integer class ids [B, H, W] (or one-hot [B, N, H, W] floats), "
                f"got shape {tuple(label.shape)}"
            )
        # The range check reads the data, which a compiled full graph cannot branch on; traced
        # code skips it (the data pipeline has checked the ids already).
        if (label.numel() and not torch.compiler.is_compiling()
                and (int(label.min()) < 0 or int(label.max()) >= num_classes)):
            raise ValueError(
                f"label: class ids must be in [0, {num_classes}) (num_classes={num_classes}, "
                f"don't-care included), got values in [{int(label.min())}, {int(label.max())}]"
            )
        out = F.one_hot(label.long(), num_classes).permute(0, 3, 1, 2).to(dtype)
    if size is not None and tuple(out.shape[2:]) != tuple(size):
        raise ValueError(
            f"label: expected spatial size {tuple(size)} (the model's resolution), got "
            f"{tuple(out.shape[2:])}"
        )
    return out


class UnconditionalStyleNet(nn.Module):
    """``z_u [B, z_dim]`` → list of style maps (StyleMapGAN-like mapping + style-map resizer).

    Example:
        >>> from recipes.oco_gan.config import get_preset
        >>> cfg = get_preset("demo").model
        >>> maps = UnconditionalStyleNet(cfg)(torch.randn(2, cfg.z_dim))
        >>> [tuple(m.shape[2:]) for m in maps]  # 32×32 output: two maps per resolution
        [(8, 8), (8, 8), (16, 16), (16, 16), (32, 32), (32, 32)]
        >>> [tuple(m.shape[1:]) for m in maps] == cfg.style_map_shapes()
        True
    """

    def __init__(self, config: ModelConfig) -> None:
        super().__init__()
        self.config = config
        sh, sw = config.style_size
        self.mapping = StyleMapMapping(
            config.z_dim, config.style_channels, (sh, sw), num_layers=config.mapping_layers,
            lr_mul=config.mapping_lr_mul,
        )
        # Two maps per resolution; the first map of each doubling up-samples.
        self.resizer = StyleMapResizer(
            config.style_channels, [ch for ch, _, _ in config.style_map_shapes()],
            resample_filter=config.resample_filter,
        )

    def base_map(self, z: torch.Tensor) -> torch.Tensor:
        """The mapping network's output ``[B, style_channels, s_h, s_w]``."""
        return self.mapping(z)

    def resize(self, base: torch.Tensor) -> List[torch.Tensor]:
        """All style maps from a base map (see :meth:`base_map`)."""
        return self.resizer(base)

    def forward(self, z: torch.Tensor) -> List[torch.Tensor]:
        return self.resize(self.base_map(z))


class ConditionalStyleNet(nn.Module):
    """``(one-hot label, z_c)`` → list of style maps with the unconditional branch's shapes.

    Example:
        >>> from recipes.oco_gan.config import get_preset
        >>> cfg = get_preset("demo").model
        >>> net = ConditionalStyleNet(cfg)
        >>> label = torch.randint(0, cfg.num_classes, (2, 32, 32))
        >>> maps = net(one_hot_label(label, cfg.num_classes), torch.randn(2, cfg.z_dim))
        >>> [tuple(m.shape[1:]) for m in maps] == cfg.style_map_shapes()
        True
    """

    def __init__(self, config: ModelConfig) -> None:
        super().__init__()
        self.config = config
        in_ch = config.z_dim + config.num_classes
        hidden = config.cond_hidden_channels
        self.shapes = config.style_map_shapes()
        self.shared = config.cond_shared_first_conv
        n_first = len(self.shapes) // 2 if self.shared else len(self.shapes)
        self.first = nn.ModuleList(
            EqualConv2d(in_ch, hidden, 3, activation="lrelu") for _ in range(n_first)
        )
        self.second = nn.ModuleList(
            EqualConv2d(hidden, ch, 3, activation="lrelu") for ch, _, _ in self.shapes
        )

    def forward(self, onehot: torch.Tensor, z: torch.Tensor) -> List[torch.Tensor]:
        """``onehot: [B, N, H, W]``, ``z: [B, z_dim]`` or ``[B, z_dim, H, W]``."""
        maps = []
        cache: Dict[Tuple[int, int], torch.Tensor] = {}
        for k, (_, h, w) in enumerate(self.shapes):
            if (h, w) not in cache:
                s = F.interpolate(onehot, size=(h, w), mode="nearest")
                if z.ndim == 2:
                    zz = z[:, :, None, None].expand(-1, -1, h, w).to(s.dtype)
                else:
                    zz = F.interpolate(z.to(s.dtype), size=(h, w), mode="nearest")
                cache[(h, w)] = torch.cat([zz, s], dim=1)
            first = self.first[k // 2 if self.shared else k]
            maps.append(self.second[k](first(cache[(h, w)])))
        return maps


#: The synthesis block is the library's (kept under its old name for code that imported it).
SynthesisBlock = StyleMapSynthesisBlock


class SynthesisNetwork(nn.Module):
    """Renders an image ``[B, 3, H, W]`` from the list of style maps of either branch.

    Example:
        >>> from recipes.oco_gan.config import get_preset
        >>> cfg = get_preset("demo").model
        >>> styles = UnconditionalStyleNet(cfg)(torch.randn(2, 64))
        >>> SynthesisNetwork(cfg)(styles).shape
        torch.Size([2, 3, 32, 32])
    """

    def __init__(self, config: ModelConfig) -> None:
        super().__init__()
        self.config = config
        shapes = config.style_map_shapes()
        c0, sh, sw = shapes[0]
        self.const = nn.Parameter(torch.randn(c0, sh, sw))
        self.first = StyledConv2d(c0, c0, 3, c0)
        blocks = []
        for i in range(1, config.num_doublings + 1):
            c_in, c_out = shapes[2 * i - 1][0], shapes[2 * i][0]
            # Both up-samplings of a block (styled up-conv and skip) use the configured filter.
            blocks.append(StyleMapSynthesisBlock(c_in, c_out,
                                                 resample_filter=config.resample_filter))
        self.blocks = nn.ModuleList(blocks)
        c_last = shapes[-1][0]
        self.to_rgb = StyledConv2d(c_last, 3, 1, c_last, activation=config.to_rgb_activation)

    def forward(self, styles: Sequence[torch.Tensor]) -> torch.Tensor:
        if len(styles) != 2 * len(self.blocks) + 2:
            raise ValueError(f"styles: expected {2 * len(self.blocks) + 2} style maps, got "
                             f"{len(styles)}")
        x = self.const.to(styles[0].dtype).expand(styles[0].shape[0], -1, -1, -1)
        x = self.first(x, styles[0])
        for i, block in enumerate(self.blocks, start=1):
            x = block(x, styles[2 * i - 1], styles[2 * i])
        return self.to_rgb(x, styles[-1])


class Generator(nn.Module):
    """OCO-GAN generator: unconditional and conditional style networks + shared synthesis.

    * ``G(z=z_u)``: unconditional samples from ``z_u [B, z_dim]``.
    * ``G(label=s, z=z_c)``: conditional samples on ``s`` (``[B, H, W]`` integer ids or
      ``[B, N, H, W]`` one-hot); ``z_c`` is optional (``[B, z_dim]`` replicated over the image, or a
      per-pixel ``[B, z_dim, H, W]``) and redrawn on every call when omitted.
    * :meth:`forward_mixed`: both kinds in one synthesis pass (the trainer's path).

    Images are ``[B, 3, H, W]``, unbounded (the to-RGB layer is linear): clamp to ``[-1, 1]`` for
    display and metrics.

    Example:
        >>> from recipes.oco_gan.config import get_preset
        >>> cfg = get_preset("demo").model
        >>> G = Generator(cfg)
        >>> G(z=torch.randn(2, cfg.z_dim)).shape
        torch.Size([2, 3, 32, 32])
        >>> G(label=torch.randint(0, cfg.num_classes, (2, 32, 32))).shape
        torch.Size([2, 3, 32, 32])
    """

    def __init__(self, config: ModelConfig) -> None:
        super().__init__()
        config.validate()
        self.config = config
        self.uncond_style = UnconditionalStyleNet(config)
        self.cond_style = ConditionalStyleNet(config)
        self.synthesis = SynthesisNetwork(config)

    @property
    def z_dim(self) -> int:
        return self.config.z_dim

    def _check_z(self, z: torch.Tensor, name: str, *, spatial_ok: bool) -> torch.Tensor:
        if not isinstance(z, torch.Tensor) or not z.is_floating_point():
            raise TypeError(f"{name}: expected a floating-point tensor")
        if z.ndim == 2 and z.shape[1] == self.z_dim:
            return z
        if spatial_ok and z.ndim == 4 and z.shape[1] == self.z_dim:
            return z
        form = f"[B, {self.z_dim}]" + (f" or [B, {self.z_dim}, H, W]" if spatial_ok else "")
        raise ValueError(f"{name}: expected {form}, got shape {tuple(z.shape)}")

    def _device_dtype(self) -> Tuple[torch.device, torch.dtype]:
        p = self.synthesis.const
        return p.device, p.dtype

    def style_maps(self, *, z: Optional[torch.Tensor] = None,
                   label: Optional[torch.Tensor] = None,
                   truncation: float = 1.0,
                   truncation_center: Optional[torch.Tensor] = None,
                   generator: Optional[torch.Generator] = None) -> List[torch.Tensor]:
        """Style maps of the unconditional (``label=None``) or conditional branch.

        Returns a list of ``2 + 2·num_doublings`` maps ``[B, C_k, h_k, w_k]``, identical in shape
        for both branches (see :meth:`ModelConfig.style_map_shapes`).
        """
        if label is None:
            if z is None:
                raise ValueError("z: the unconditional branch needs z [B, z_dim] (or pass label)")
            z = self._check_z(z, "z", spatial_ok=False)
            base = self.uncond_style.base_map(z)
            if truncation != 1.0:
                center = (self.mean_base_map() if truncation_center is None
                          else truncation_center).to(base.dtype)
                base = center + truncation * (base - center)
            return self.uncond_style.resize(base)
        device, dtype = self._device_dtype()
        onehot = one_hot_label(label, self.config.num_classes, size=self.config.resolution,
                               dtype=dtype).to(device)
        if z is None:
            # Drawn on the generator's device (a CPU generator serves a CUDA model), then moved.
            where = device if generator is None else generator.device
            z = torch.randn(onehot.shape[0], self.z_dim, device=where, dtype=dtype,
                            generator=generator).to(device)
        z = self._check_z(z, "z", spatial_ok=True)
        if z.shape[0] != onehot.shape[0]:
            raise ValueError(f"z: batch size {z.shape[0]} differs from label's {onehot.shape[0]}")
        if z.ndim == 4 and tuple(z.shape[2:]) != tuple(self.config.resolution):
            raise ValueError(f"z: a per-pixel z_c must be [B, {self.z_dim}, "
                             f"{self.config.resolution[0]}, {self.config.resolution[1]}], got "
                             f"{tuple(z.shape)}")
        return self.cond_style(onehot, z)

    def forward(self, z: Optional[torch.Tensor] = None, *,
                label: Optional[torch.Tensor] = None,
                truncation: float = 1.0,
                truncation_center: Optional[torch.Tensor] = None,
                generator: Optional[torch.Generator] = None) -> torch.Tensor:
        styles = self.style_maps(z=z, label=label, truncation=truncation,
                                 truncation_center=truncation_center, generator=generator)
        return self.synthesis(styles)

    def forward_mixed(self, z_u: Optional[torch.Tensor], label: Optional[torch.Tensor],
                      z_c: Optional[torch.Tensor] = None, *,
                      generator: Optional[torch.Generator] = None) -> torch.Tensor:
        """Render ``B_u`` unconditional then ``B_c`` conditional samples in one synthesis pass.

        Equals ``torch.cat([G(z=z_u), G(label=label, z=z_c)])``; either part may be ``None``.
        Returns ``[B_u + B_c, 3, H, W]``.
        """
        parts = []
        if z_u is not None:
            parts.append(self.style_maps(z=z_u))
        if label is not None:
            parts.append(self.style_maps(label=label, z=z_c, generator=generator))
        if not parts:
            raise ValueError("forward_mixed: pass z_u, label or both")
        styles = [torch.cat(maps) for maps in zip(*parts)] if len(parts) == 2 else parts[0]
        return self.synthesis(styles)

    @torch.no_grad()
    def mean_base_map(self, num: int = 4096, seed: int = 0) -> torch.Tensor:
        """Mean of the mapping network's output over ``num`` latents (truncation centre)."""
        device, dtype = self._device_dtype()
        gen = torch.Generator(device="cpu").manual_seed(seed)
        z = torch.randn(num, self.z_dim, generator=gen).to(device=device, dtype=dtype)
        return self.uncond_style.base_map(z).mean(dim=0, keepdim=True)


class DiscriminatorOutput(NamedTuple):
    """Outputs of :class:`Discriminator`: ``image [B]`` logits, ``seg [B, N+1, H, W]`` logits
    (class 0 = fake, real class c ↦ c + 1); a head that was not asked for is ``None``."""

    image: Optional[torch.Tensor]
    seg: Optional[torch.Tensor]


class Discriminator(nn.Module):
    """Shared encoder with an image-level head and an ASPP + U-Net segmentation head.

    Example:
        >>> from recipes.oco_gan.config import get_preset
        >>> cfg = get_preset("demo").model
        >>> out = Discriminator(cfg)(torch.randn(2, 3, 32, 32))
        >>> out.image.shape, out.seg.shape
        (torch.Size([2]), torch.Size([2, 12, 32, 32]))
    """

    def __init__(self, config: ModelConfig) -> None:
        super().__init__()
        config.validate()
        self.config = config
        h = config.resolution[0]
        n_blocks = config.num_encoder_blocks
        eq, sn = config.d_equalized, config.d_encoder_spectral_norm
        enc, in_ch = [], 3
        self.encoder_channels: List[int] = []
        for k in range(1, n_blocks + 1):
            ch = config.d_encoder_channels(h // 2**k)
            # Table 10's ablation: spectral norm in the shared encoder (on plain convs, as OASIS's
            # encoder: spectral norm and equalised LR are exclusive); nothing else changes.
            enc.append(OASISResBlockDown(in_ch, ch, equalized=eq and not sn, spectral_norm=sn,
                                 preactivate=k > 1))
            self.encoder_channels.append(ch)
            in_ch = ch
        self.encoder = nn.ModuleList(enc)

        # Image-level head (StyleGAN2-like epilogue on the bottleneck).
        cb = in_ch
        bh = h // 2**n_blocks
        bw = config.resolution[1] // 2**n_blocks
        down = config.d_head_downsample
        self.head_blocks = nn.ModuleList(
            OASISResBlockDown(cb, cb, downsample=down, equalized=eq) for _ in range(2)
        )
        if down:
            bh, bw = max(bh // 4, 1), max(bw // 4, 1)
        self.head_conv = EqualConv2d(cb, cb, 3, activation="lrelu")
        self.head_fc = EqualLinear(cb * bh * bw, cb, activation="lrelu")
        self.head_out = EqualLinear(cb, 1)

        # Segmentation head: ASPP on the bottleneck, then the U-Net decoder.
        self.aspp = ASPP(cb, cb, rates=config.aspp_rates,
                         image_pooling=config.aspp_image_pooling, spectral_norm=True)
        ups, in_ch = [], cb
        for k in range(n_blocks, 0, -1):
            out_ch = config.d_decoder_channels(h // 2 ** (k - 1))
            skip = self.encoder_channels[k - 1] if k < n_blocks else 0
            ups.append(OASISResBlockUp(in_ch + skip, out_ch, spectral_norm=True))
            in_ch = out_ch
        self.decoder = nn.ModuleList(ups)
        # [choice] No spectral norm on the final 1×1 conv (OASIS has none);
        # model.seg_out_spectral_norm=true adds it.
        self.seg_out = nn.Conv2d(in_ch, config.num_classes + 1, 1)
        if config.seg_out_spectral_norm:
            self.seg_out = nn.utils.parametrizations.spectral_norm(self.seg_out)

    def encode(self, x: torch.Tensor) -> List[torch.Tensor]:
        """Encoder features, from ``H/2`` down to the bottleneck."""
        h, w = self.config.resolution
        if not isinstance(x, torch.Tensor) or x.ndim != 4 or x.shape[1] != 3 \
                or tuple(x.shape[2:]) != (h, w):
            shape = tuple(x.shape) if isinstance(x, torch.Tensor) else type(x).__name__
            raise ValueError(f"x: expected images [B, 3, {h}, {w}], got {shape}")
        feats = []
        for block in self.encoder:
            x = block(x)
            feats.append(x)
        return feats

    def image_logits(self, feats: Sequence[torch.Tensor]) -> torch.Tensor:
        """Image-level real/fake logits ``[B]`` from :meth:`encode`'s features."""
        x = feats[-1]
        for block in self.head_blocks:
            x = block(x)
        x = self.head_conv(bias_act(x, act="lrelu"))
        x = self.head_fc(x.flatten(1))
        return self.head_out(x).squeeze(1)

    def seg_logits(self, feats: Sequence[torch.Tensor]) -> torch.Tensor:
        """Per-pixel N+1 logits ``[B, N+1, H, W]`` from :meth:`encode`'s features.

        ASPP runs on the bottleneck; [choice] its concatenated branches are projected back to the
        bottleneck's width at the bottleneck's size, and the decoder's first OASISResBlockUp does
        the upsampling the paper's App. B mentions ("concatenated and upsampled").
        """
        x = self.aspp(feats[-1])
        n = len(self.decoder)
        for i, block in enumerate(self.decoder):
            if i > 0:
                x = torch.cat([x, feats[n - 1 - i]], dim=1)
            x = block(x)
        return self.seg_out(x)

    def forward(self, x: torch.Tensor, *,
                heads: Sequence[str] = ("image", "seg")) -> DiscriminatorOutput:
        """Run the encoder once and the requested heads (``'image'``, ``'seg'``)."""
        unknown = set(heads) - {"image", "seg"}
        if unknown:
            raise ValueError(f"heads: unknown head(s) {sorted(unknown)}; expected 'image', 'seg'")
        feats = self.encode(x)
        return DiscriminatorOutput(
            image=self.image_logits(feats) if "image" in heads else None,
            seg=self.seg_logits(feats) if "seg" in heads else None,
        )


def count_parameters(module: nn.Module) -> int:
    """Number of scalar parameters of ``module``."""
    return sum(p.numel() for p in module.parameters())


def part_sizes(G: Generator, D: Discriminator) -> Dict[str, int]:
    """Parameter counts of the model's parts, as printed by ``oco-gan info``."""
    return {
        "G unconditional style net": count_parameters(G.uncond_style),
        "G conditional style net": count_parameters(G.cond_style),
        "G synthesis": count_parameters(G.synthesis),
        "D encoder": count_parameters(D.encoder),
        "D image head": sum(count_parameters(m) for m in
                            (D.head_blocks, D.head_conv, D.head_fc, D.head_out)),
        "D segmentation head (ASPP + decoder)": sum(count_parameters(m) for m in
                                                    (D.aspp, D.decoder, D.seg_out)),
    }
