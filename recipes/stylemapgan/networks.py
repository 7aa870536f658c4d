"""StyleMapGAN's generator, encoder and discriminator, built from :mod:`ganblocks` blocks.

StyleMapGAN (Kim et al., CVPR 2021) replaces StyleGAN's style *vector* by a style *map*
``[N, style_dim, L, L]`` with spatial extent, so that an image can be projected into it by an
encoder and edited locally. Its three networks:

* :class:`Generator`: ``z`` → :class:`~ganblocks.nn.StyleMapMapping` (PixelNorm, ``mapping_layers``
  equalised linear layers, the last one producing ``style_dim·L·L`` numbers reshaped channel-major)
  → style map → :class:`~ganblocks.nn.StyleMapResizer` (one style map per styled layer) → a
  synthesis network: learned constant ``[C_L, L, L]``, a styled 3×3 conv, one
  :class:`~ganblocks.nn.StyleMapSynthesisBlock` per doubling, a styled 1×1 to-RGB conv with
  ``lrelu``. Every styled conv normalises its input (layer norm by default) and modulates it per
  pixel (:class:`~ganblocks.nn.StyledConv2d`).
* :class:`Encoder`: image → 1×1 conv → StyleGAN2 residual down-sampling blocks
  (:class:`~ganblocks.nn.StyleGAN2DiscriminatorBlock`) down to ``L × L`` → 3×3 conv → style map.
* :class:`Discriminator`: StyleGAN2's residual discriminator (1×1 from-RGB conv, residual blocks
  down to ``4 × 4``, :class:`~ganblocks.nn.DiscriminatorEpilogue` with minibatch std).

Widths follow the original's table (:func:`stylemapgan_channels`): 512 (``low_res_channels``) up
to ``32 × 32``, then ``16384·channel_multiplier / res``. Every network loads the original code's
state dict (``from_stylemapgan``) and writes it back (``to_stylemapgan``), see
:mod:`recipes.stylemapgan.convert`.
"""

from __future__ import annotations

from typing import Any, Dict, List, Mapping, Optional, Sequence

import torch
from torch import nn

from ganblocks.nn import (
    DiscriminatorEpilogue,
    EqualConv2d,
    StyledConv2d,
    StyleGAN2DiscriminatorBlock,
    StyleMapMapping,
    StyleMapResizer,
    StyleMapSynthesisBlock,
)
from ganblocks.nn.checks import check_choice, check_input, check_int, check_positive_float

from .layout import NORMALIZE_MODES, stylemapgan_channels

__all__ = ["NORMALIZE_MODES", "Discriminator", "Encoder", "Generator", "stylemapgan_channels"]

_NORMS = ("layer", "instance", "batch", "none")


def _check_power_of_two(value: object, name: str, *, minimum: int) -> int:
    value = check_int(value, name)
    if value < minimum or value & (value - 1):
        raise ValueError(f"{name}: expected a power of two >= {minimum}, got {value}")
    return value


class _Ported(nn.Module):
    """What every network of the recipe shares: the way back to the original's layout."""

    def to_stylemapgan(self) -> Dict[str, torch.Tensor]:
        """Our weights (and FIR kernels) under the original's key names: a state dict that loads
        into the original network of the same name."""
        from .convert import save_stylemapgan

        return save_stylemapgan(self)


class _DownTrunk(_Ported):
    """The image side of the encoder and the discriminator: a 1×1 from-RGB conv and residual
    ×½ blocks from ``size`` down to ``res_to``."""

    size: int

    def _build_trunk(self, channels: Dict[int, int], res_to: int,
                     resample_filter: Sequence[float]) -> None:
        self.from_rgb = EqualConv2d(3, channels[self.size], 1, activation="lrelu")
        blocks = []
        res = self.size
        while res > res_to:
            blocks.append(StyleGAN2DiscriminatorBlock(
                channels[res], channels[res], channels[res // 2],
                resample_filter=tuple(resample_filter),
            ))
            res //= 2
        self.blocks = nn.ModuleList(blocks)

    def _features(self, img: torch.Tensor) -> torch.Tensor:
        check_input(img, "img", ndim=4, channels=3)
        if tuple(img.shape[2:]) != (self.size, self.size):
            raise ValueError(
                f"img: expected [N, 3, {self.size}, {self.size}], got {tuple(img.shape)}"
            )
        x = self.from_rgb(img)
        for block in self.blocks:
            x, _ = block(x, None)
        return x


class Generator(_Ported):
    """StyleMapGAN generator: ``z [N, style_dim]`` → image ``[N, 3, size, size]``.

    Args:
        size: Output resolution (a power of two, larger than ``latent_spatial_size``).
        style_dim: Channels of the style map, also the size of ``z`` (the original's
            ``latent_channel_size``, 64).
        latent_spatial_size: Side ``L`` of the style map (8).
        mapping_layers: Linear layers of the mapping network (the original's
            ``mapping_layer_num``, 8).
        lr_mul: Learning-rate multiplier of the mapping network (0.01).
        channel_multiplier, low_res_channels: The width table, see :func:`stylemapgan_channels`.
        norm: Normalisation before each modulation: ``'layer'`` (the original's default
            ``LayerNorm``), ``'instance'``, ``'batch'`` or ``'none'`` (see :data:`NORMALIZE_MODES`).
        small_generator: Every style map has ``style_dim`` channels (the original's
            ``--small_generator``); otherwise the maps have the synthesis' widths.
        resample_filter: FIR taps of every up-sampling (``[1, 3, 3, 1]``).

    Shapes:
        ``z: [N, style_dim]`` → ``[N, 3, size, size]``; style maps ``[N, style_dim, L, L]``.

    Example:
        >>> G = Generator(16, style_dim=8, latent_spatial_size=4, mapping_layers=2,
        ...               low_res_channels=16)
        >>> G(torch.randn(2, 8)).shape
        torch.Size([2, 3, 16, 16])
        >>> s = G.style_map(torch.randn(2, 8))  # what the encoder predicts for an image
        >>> s.shape, G.synthesis(s).shape
        (torch.Size([2, 8, 4, 4]), torch.Size([2, 3, 16, 16]))
    """

    #: Which of the original's networks this is (the converter's rule set).
    stylemapgan_kind = "generator"

    def __init__(
        self,
        size: int = 256,
        *,
        style_dim: int = 64,
        latent_spatial_size: int = 8,
        mapping_layers: int = 8,
        lr_mul: float = 0.01,
        channel_multiplier: float = 2,
        low_res_channels: int = 512,
        norm: str = "layer",
        small_generator: bool = False,
        resample_filter: Sequence[float] = (1, 3, 3, 1),
    ) -> None:
        super().__init__()
        self.size = _check_power_of_two(size, "size", minimum=4)
        self.latent_spatial_size = _check_power_of_two(
            latent_spatial_size, "latent_spatial_size", minimum=1
        )
        if self.latent_spatial_size >= self.size:
            raise ValueError(
                f"latent_spatial_size: expected less than size={self.size}, got "
                f"{self.latent_spatial_size}"
            )
        self.style_dim = check_int(style_dim, "style_dim")
        self.norm = check_choice(norm, "norm", _NORMS)
        if not isinstance(small_generator, bool):
            raise TypeError(f"small_generator: expected a bool, got {small_generator!r}")
        self.small_generator = small_generator
        self.config: Dict[str, Any] = {
            "size": self.size, "style_dim": self.style_dim,
            "latent_spatial_size": self.latent_spatial_size,
            "mapping_layers": check_int(mapping_layers, "mapping_layers"),
            "lr_mul": check_positive_float(lr_mul, "lr_mul"),
            "channel_multiplier": channel_multiplier, "low_res_channels": low_res_channels,
            "norm": self.norm, "small_generator": small_generator,
            "resample_filter": tuple(resample_filter),
        }
        L = self.latent_spatial_size
        ch = _channel_table(L, self.size, channel_multiplier, low_res_channels)
        resolutions = list(ch)
        # Style-map channels per resolution: the synthesis' widths, or style_dim throughout.
        sc = {r: self.style_dim if small_generator else ch[r] for r in resolutions}
        # The original runs every up-sampling as conv_transpose2d with the unflipped kernel.
        resample = {"resample_filter": tuple(resample_filter), "flip_weight": False}

        self.mapping = StyleMapMapping(
            self.style_dim, self.style_dim, L, num_layers=mapping_layers, lr_mul=lr_mul
        )
        self.resizer = StyleMapResizer(
            self.style_dim, [sc[r] for r in resolutions for _ in range(2)], **resample
        )
        self.const = nn.Parameter(torch.randn(1, ch[L], L, L))
        self.conv1 = StyledConv2d(ch[L], ch[L], 3, sc[L], norm=self.norm)
        self.blocks = nn.ModuleList(
            StyleMapSynthesisBlock(
                ch[r // 2], ch[r], (sc[r // 2], sc[r]), norm=self.norm, **resample
            )
            for r in resolutions[1:]
        )
        self.to_rgb = StyledConv2d(ch[self.size], 3, 1, sc[self.size], norm=self.norm)

    # -- the three stages --------------------------------------------------------------------

    def style_map(
        self,
        z: torch.Tensor,
        *,
        truncation: float = 1.0,
        mean_style_map: Optional[torch.Tensor] = None,
    ) -> torch.Tensor:
        """``z: [N, style_dim]`` → style map ``[N, style_dim, L, L]``.

        With ``truncation ψ ≠ 1``, ``mean + ψ·(map - mean)`` with ``mean_style_map``
        (``[1, style_dim, L, L]``, e.g. :meth:`mean_style_map`).
        """
        s = self.mapping(z)
        if truncation != 1:
            if mean_style_map is None:
                raise ValueError(
                    f"mean_style_map: truncation={truncation!r} needs the mean style map "
                    f"[1, {self.style_dim}, {self.latent_spatial_size}, "
                    f"{self.latent_spatial_size}] (see Generator.mean_style_map), got None"
                )
            check_input(mean_style_map, "mean_style_map", ndim=4, channels=self.style_dim)
            s = torch.lerp(mean_style_map, s, truncation)
        return s

    def mean_style_map(self, z: torch.Tensor) -> torch.Tensor:
        """Average style map of the latents ``z: [M, style_dim]`` → ``[1, style_dim, L, L]``."""
        return self.mapping(z).mean(dim=0, keepdim=True)

    def style_maps(self, style_map: torch.Tensor) -> List[torch.Tensor]:
        """Style map ``[N, style_dim, L, L]`` → one map per styled layer (``2 + 2·blocks``).

        Mixing these per layer (or per region) between two images is the original's
        ``w_plus`` editing.
        """
        self._check_style_map(style_map)
        return self.resizer(style_map)

    def render(self, maps: Sequence[torch.Tensor]) -> torch.Tensor:
        """The synthesis network: the per-layer style maps of :meth:`style_maps` → image."""
        n_maps = 2 + 2 * len(self.blocks)
        if len(maps) != n_maps:
            raise ValueError(f"maps: expected {n_maps} style maps, got {len(maps)}")
        x = self.const.expand(maps[0].shape[0], -1, -1, -1)
        x = self.conv1(x, maps[0])
        for i, block in enumerate(self.blocks):
            x = block(x, maps[2 * i + 1], maps[2 * i + 2])
        return self.to_rgb(x, maps[-1])

    def synthesis(self, style_map: torch.Tensor) -> torch.Tensor:
        """Style map ``[N, style_dim, L, L]`` → image ``[N, 3, size, size]``."""
        return self.render(self.style_maps(style_map))

    def forward(
        self,
        z: torch.Tensor,
        *,
        truncation: float = 1.0,
        mean_style_map: Optional[torch.Tensor] = None,
    ) -> torch.Tensor:
        """``z: [N, style_dim]`` → image ``[N, 3, size, size]`` (see :meth:`style_map`)."""
        return self.synthesis(
            self.style_map(z, truncation=truncation, mean_style_map=mean_style_map)
        )

    def _check_style_map(self, style_map: torch.Tensor) -> None:
        check_input(style_map, "style_map", ndim=4, channels=self.style_dim)
        L = self.latent_spatial_size
        if tuple(style_map.shape[2:]) != (L, L):
            raise ValueError(
                f"style_map: expected [N, {self.style_dim}, {L}, {L}], got "
                f"{tuple(style_map.shape)}"
            )

    # -- the original's checkpoints ------------------------------------------------------------

    @classmethod
    def from_stylemapgan(cls, state_dict: Mapping[str, torch.Tensor], **kwargs: Any) -> Generator:
        """Our generator holding the weights of the original's ``Generator`` state dict.

        Args:
            state_dict: ``Generator(...).state_dict()`` of naver-ai/StyleMapGAN (its own key
                names; ``ckpt["g_ema"]`` of a checkpoint).
            **kwargs: Our constructor's arguments; ``size``, ``style_dim``,
                ``latent_spatial_size``, ``mapping_layers``, ``small_generator`` and
                ``norm='batch'`` are read from the state dict unless given. ``normalize_mode``
                (the original's name, e.g. ``'InstanceNorm2d'``) may stand for ``norm``. The
                original's default ``LayerNorm`` cannot be told from ``InstanceNorm2d`` by the
                weights: pass the mode the checkpoint was trained with.

        Raises:
            ganblocks.convert.StateDictMismatchError: Keys or shapes that do not fit.
        """
        from .convert import generator_kwargs, load_stylemapgan

        net = cls(**generator_kwargs(state_dict, kwargs))
        load_stylemapgan(net, state_dict)
        return net


class Encoder(_DownTrunk):
    """StyleMapGAN encoder: image ``[N, 3, size, size]`` → style map ``[N, style_dim, L, L]``.

    1×1 conv + lrelu, residual down-sampling blocks to ``L × L``, 3×3 conv + lrelu to
    ``style_dim`` channels.

    Args:
        size: Input resolution (a power of two).
        style_dim: Channels of the style map (64).
        latent_spatial_size: Side ``L`` of the style map (8).
        channel_multiplier, low_res_channels: The width table, see :func:`stylemapgan_channels`.
        resample_filter: FIR taps of the down-sampling.

    Example:
        >>> E = Encoder(32, style_dim=8, latent_spatial_size=8, low_res_channels=16)
        >>> E(torch.randn(2, 3, 32, 32)).shape
        torch.Size([2, 8, 8, 8])
    """

    #: Which of the original's networks this is (the converter's rule set).
    stylemapgan_kind = "encoder"

    def __init__(
        self,
        size: int = 256,
        *,
        style_dim: int = 64,
        latent_spatial_size: int = 8,
        channel_multiplier: float = 2,
        low_res_channels: int = 512,
        resample_filter: Sequence[float] = (1, 3, 3, 1),
    ) -> None:
        super().__init__()
        self.size = _check_power_of_two(size, "size", minimum=1)
        self.latent_spatial_size = _check_power_of_two(
            latent_spatial_size, "latent_spatial_size", minimum=1
        )
        if self.latent_spatial_size > self.size:
            raise ValueError(
                f"latent_spatial_size: expected at most size={self.size}, got "
                f"{self.latent_spatial_size}"
            )
        self.style_dim = check_int(style_dim, "style_dim")
        self.config: Dict[str, Any] = {
            "size": self.size, "style_dim": self.style_dim,
            "latent_spatial_size": self.latent_spatial_size,
            "channel_multiplier": channel_multiplier, "low_res_channels": low_res_channels,
            "resample_filter": tuple(resample_filter),
        }
        ch = _channel_table(
            self.latent_spatial_size, self.size, channel_multiplier, low_res_channels
        )
        self._build_trunk(ch, self.latent_spatial_size, resample_filter)
        self.to_style = EqualConv2d(ch[self.latent_spatial_size], self.style_dim, 3,
                                    activation="lrelu")

    def forward(self, img: torch.Tensor) -> torch.Tensor:
        """``img: [N, 3, size, size]`` → style map ``[N, style_dim, L, L]``."""
        return self.to_style(self._features(img))

    @classmethod
    def from_stylemapgan(cls, state_dict: Mapping[str, torch.Tensor], **kwargs: Any) -> Encoder:
        """Our encoder holding the weights of the original's ``Encoder`` state dict.

        Args:
            state_dict: ``Encoder(...).state_dict()`` of naver-ai/StyleMapGAN (``ckpt["e_ema"]``).
            **kwargs: Our constructor's arguments; ``size``, ``style_dim`` and
                ``latent_spatial_size`` are read from the state dict unless given.
        """
        from .convert import encoder_kwargs, load_stylemapgan

        net = cls(**encoder_kwargs(state_dict, kwargs))
        load_stylemapgan(net, state_dict)
        return net


class Discriminator(_DownTrunk):
    """StyleMapGAN's (StyleGAN2's residual) discriminator: image → one logit per sample.

    1×1 conv + lrelu, residual down-sampling blocks to ``4 × 4``, then minibatch std (groups of
    ``min(4, N)``), 3×3 conv, two linear layers.

    Args:
        size: Input resolution (a power of two >= 4).
        channel_multiplier, low_res_channels: The width table, see :func:`stylemapgan_channels`.
        resample_filter: FIR taps of the down-sampling.

    Shapes:
        ``img: [N, 3, size, size]`` → ``[N, 1]`` (``N`` divisible by ``min(4, N)``).

    Example:
        >>> D = Discriminator(16, low_res_channels=16)
        >>> D(torch.randn(4, 3, 16, 16)).shape
        torch.Size([4, 1])
    """

    #: Which of the original's networks this is (the converter's rule set).
    stylemapgan_kind = "discriminator"

    def __init__(
        self,
        size: int = 256,
        *,
        channel_multiplier: float = 2,
        low_res_channels: int = 512,
        resample_filter: Sequence[float] = (1, 3, 3, 1),
    ) -> None:
        super().__init__()
        self.size = _check_power_of_two(size, "size", minimum=4)
        self.config: Dict[str, Any] = {
            "size": self.size, "channel_multiplier": channel_multiplier,
            "low_res_channels": low_res_channels, "resample_filter": tuple(resample_filter),
        }
        ch = _channel_table(4, self.size, channel_multiplier, low_res_channels)
        self._build_trunk(ch, 4, resample_filter)
        self.epilogue = DiscriminatorEpilogue(ch[4], 4, mbstd_group_size=4, mbstd_num_channels=1)

    def forward(self, img: torch.Tensor) -> torch.Tensor:
        """``img: [N, 3, size, size]`` → logits ``[N, 1]``."""
        return self.epilogue(self._features(img))

    @classmethod
    def from_stylemapgan(
        cls, state_dict: Mapping[str, torch.Tensor], **kwargs: Any
    ) -> Discriminator:
        """Our discriminator holding the weights of the original's ``Discriminator`` state dict.

        Args:
            state_dict: ``Discriminator(...).state_dict()`` of naver-ai/StyleMapGAN.
            **kwargs: Our constructor's arguments; ``size`` is read from the state dict unless
                given.
        """
        from .convert import discriminator_kwargs, load_stylemapgan

        net = cls(**discriminator_kwargs(state_dict, kwargs))
        load_stylemapgan(net, state_dict)
        return net


def _channel_table(res_min: int, res_max: int, channel_multiplier: float,
                   low_res_channels: int) -> Dict[int, int]:
    table = {}
    res = res_min
    while res <= res_max:
        table[res] = stylemapgan_channels(
            res, channel_multiplier=channel_multiplier, low_res_channels=low_res_channels
        )
        res *= 2
    return table
