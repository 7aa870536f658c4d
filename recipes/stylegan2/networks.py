"""StyleGAN2 (Karras et al., 2020) generator and discriminator assembled from :mod:`ganblocks.nn`.

The constructors take the arguments of NVlabs' ``networks_stylegan2.py`` (StyleGAN2-ADA / StyleGAN3
repositories) so that a network pickle's ``init_kwargs`` build the same network, and
:mod:`recipes.stylegan2.convert` maps the original state-dict keys onto these modules.

Block ↔ ganblocks:

* mapping: :class:`~ganblocks.nn.MappingNetwork` (label embedding) +
  :class:`~ganblocks.nn.WAverageTruncation` (``w_avg``, truncation trick);
* synthesis layer: :class:`~ganblocks.nn.ModulatedConv2d` → :class:`~ganblocks.nn.NoiseInjection` →
  :func:`~ganblocks.ops.bias_act` (bias, lrelu, clamp);
* to-RGB with skip up-sampling: :class:`~ganblocks.nn.ToRGB`;
* discriminator blocks: :class:`~ganblocks.nn.StyleGAN2DiscriminatorBlock` (``resnet``, ``skip``,
  ``orig``); epilogue: :class:`~ganblocks.nn.DiscriminatorEpilogue`.
"""

from __future__ import annotations

import math
from typing import Any, Dict, List, Mapping, Optional, Sequence, Tuple

import torch
from torch import nn

from ganblocks.nn import (
    DiscriminatorEpilogue,
    EqualConv2d,
    MappingNetwork,
    ModulatedConv2d,
    NoiseInjection,
    StyleGAN2DiscriminatorBlock,
    ToRGB,
    WAverageTruncation,
)
from ganblocks.nn.checks import check_input, check_int
from ganblocks.ops import ACTIVATIONS, bias_act

__all__ = ["Discriminator", "Generator", "MappingWithTruncation", "SynthesisNetwork"]

ARCHITECTURES = ("orig", "skip", "resnet")
_SQRT_HALF = math.sqrt(0.5)


def _check_architecture(value: object) -> str:
    if value not in ARCHITECTURES:
        raise ValueError(f"architecture: expected one of {list(ARCHITECTURES)}, got {value!r}")
    return str(value)


def _check_resolution(value: object) -> int:
    res = check_int(value, "img_resolution", minimum=4)
    if res & (res - 1):
        raise ValueError(f"img_resolution: expected a power of two >= 4, got {res}")
    return res


def _merge(name: str, given: Optional[Mapping[str, Any]], allowed: Sequence[str]) -> Dict[str, Any]:
    """``given`` as a dict, rejecting keys outside ``allowed`` with a clear message."""
    out = dict(given or {})
    unknown = sorted(set(out) - set(allowed))
    if unknown:
        raise TypeError(
            f"{name}: unknown options {unknown}; expected a subset of {sorted(allowed)}"
        )
    return out


def _fp16_resolution(img_resolution: int, num_fp16_res: int) -> int:
    """Lowest resolution that runs in float16 (the ``num_fp16_res`` highest ones, at least 8)."""
    log2 = int(math.log2(img_resolution))
    return max(2 ** (log2 + 1 - check_int(num_fp16_res, "num_fp16_res", minimum=0)), 8)


def _block_dtype(use_fp16: bool, like: torch.Tensor, force_fp32: bool) -> torch.dtype:
    # As in the original: float16 only on CUDA; CPU always computes in float32.
    return torch.float16 if use_fp16 and like.is_cuda and not force_fp32 else torch.float32


# --------------------------------------------------------------------------------------------
# Generator


_MAPPING_OPTIONS = (
    "num_layers",
    "embed_features",
    "layer_features",
    "activation",
    "lr_multiplier",
    "w_avg_beta",
)


class MappingWithTruncation(nn.Module):
    """``z, c`` → ``ws [N, num_ws, w_dim]``: mapping network, ``w_avg`` tracking, truncation.

    Args:
        z_dim, c_dim, w_dim: Latent, label and style sizes.
        num_ws: Number of style vectors the synthesis network consumes.
        num_layers, embed_features, layer_features, lr_multiplier, w_avg_beta: NVlabs' mapping
            options (``activation`` must be ``'lrelu'``).

    Example:
        >>> m = MappingWithTruncation(8, 0, 16, 5, num_layers=2)
        >>> m(torch.randn(3, 8), None, truncation_psi=0.7).shape
        torch.Size([3, 5, 16])
    """

    def __init__(
        self,
        z_dim: int,
        c_dim: int,
        w_dim: int,
        num_ws: int,
        *,
        num_layers: int = 8,
        embed_features: Optional[int] = None,
        layer_features: Optional[int] = None,
        activation: str = "lrelu",
        lr_multiplier: float = 0.01,
        w_avg_beta: Optional[float] = 0.998,
    ) -> None:
        super().__init__()
        if activation != "lrelu":
            raise ValueError(
                f"activation: only 'lrelu' mapping layers are built, got {activation!r}"
            )
        self.z_dim, self.c_dim, self.w_dim = z_dim, c_dim, w_dim
        self.num_ws = check_int(num_ws, "num_ws")
        self.net = MappingNetwork(
            z_dim,
            w_dim,
            num_layers=num_layers,
            lr_mul=lr_multiplier,
            hidden_dim=layer_features,
            c_dim=c_dim,
            embed_features=embed_features,
        )
        self.truncation = WAverageTruncation(
            w_dim, beta=0.998 if w_avg_beta is None else w_avg_beta
        )
        self.track_w_avg = w_avg_beta is not None

    def forward(
        self,
        z: Optional[torch.Tensor],
        c: Optional[torch.Tensor],
        truncation_psi: float = 1.0,
        truncation_cutoff: Optional[int] = None,
        update_emas: bool = False,
    ) -> torch.Tensor:
        """``z: [N, z_dim]``, ``c: [N, c_dim]`` → ``ws: [N, num_ws, w_dim]``."""
        if self.c_dim == 0:
            c = None
        w = self.net(None if z is None else z.float(), None if c is None else c.float())
        if update_emas and self.track_w_avg:
            self.truncation.update(w)
        ws = w.unsqueeze(1).repeat(1, self.num_ws, 1)
        return self.truncation(ws, truncation_psi, truncation_cutoff)


class SynthesisLayer(nn.Module):
    """Modulated 3×3 conv (optionally ×2 up) → noise → bias + lrelu·√2 (· gain), clamped."""

    def __init__(
        self,
        in_channels: int,
        out_channels: int,
        w_dim: int,
        resolution: int,
        *,
        up: int = 1,
        use_noise: bool = True,
        resample_filter: Sequence[float] = (1, 3, 3, 1),
        conv_clamp: Optional[float] = None,
        kernel_size: int = 3,
        activation: str = "lrelu",
    ) -> None:
        super().__init__()
        self.activation = activation
        self.conv_clamp = conv_clamp
        self.resolution = resolution
        # The original convolves (rather than correlates) when it up-samples.
        self.conv = ModulatedConv2d(
            in_channels,
            out_channels,
            kernel_size,
            w_dim,
            up=up,
            bias=False,
            resample_filter=resample_filter,
            flip_weight=up == 1,
            persistent_filter=True,
        )
        self.noise = NoiseInjection(resolution) if use_noise else None
        self.bias = nn.Parameter(torch.zeros(out_channels))

    def forward(
        self, x: torch.Tensor, w: torch.Tensor, *, noise_mode: str = "random", gain: float = 1.0
    ) -> torch.Tensor:
        x = self.conv(x, w)
        if self.noise is not None:
            x = self.noise(x, noise_mode=noise_mode)
        clamp = None if self.conv_clamp is None else self.conv_clamp * gain
        act_gain = ACTIVATIONS[self.activation].def_gain * gain
        return bias_act(x, self.bias.to(x.dtype), act=self.activation, gain=act_gain, clamp=clamp)


class SynthesisBlock(nn.Module):
    """One resolution of the synthesis network (``orig`` / ``skip`` / ``resnet``)."""

    def __init__(
        self,
        in_channels: int,
        out_channels: int,
        w_dim: int,
        resolution: int,
        img_channels: int,
        is_last: bool,
        *,
        architecture: str = "skip",
        resample_filter: Sequence[float] = (1, 3, 3, 1),
        conv_clamp: Optional[float] = 256,
        use_fp16: bool = False,
        layer_kwargs: Optional[Dict[str, Any]] = None,
    ) -> None:
        super().__init__()
        self.in_channels, self.resolution = in_channels, resolution
        self.architecture, self.use_fp16 = architecture, use_fp16
        layer = dict(layer_kwargs or {}, resample_filter=resample_filter, conv_clamp=conv_clamp)
        self.num_conv = 1 if in_channels == 0 else 2
        if in_channels == 0:
            self.const = nn.Parameter(torch.randn(out_channels, resolution, resolution))
        else:
            self.conv0 = SynthesisLayer(in_channels, out_channels, w_dim, resolution, up=2, **layer)
        self.conv1 = SynthesisLayer(out_channels, out_channels, w_dim, resolution, **layer)
        self.torgb: Optional[ToRGB] = None
        if is_last or architecture == "skip":
            self.torgb = ToRGB(
                out_channels,
                img_channels,
                w_dim,
                conv_clamp=conv_clamp,
                resample_filter=resample_filter,
                persistent_filter=True,
            )
        self.num_torgb = int(self.torgb is not None)
        self.skip: Optional[EqualConv2d] = None
        if in_channels != 0 and architecture == "resnet":
            self.skip = EqualConv2d(
                in_channels,
                out_channels,
                1,
                bias=False,
                up=2,
                resample_filter=resample_filter,
                persistent_filter=True,
            )

    def forward(
        self,
        x: Optional[torch.Tensor],
        img: Optional[torch.Tensor],
        ws: torch.Tensor,
        *,
        noise_mode: str = "random",
        force_fp32: bool = False,
    ) -> Tuple[torch.Tensor, Optional[torch.Tensor]]:
        dtype = _block_dtype(self.use_fp16, ws, force_fp32)
        w_iter = iter(ws.unbind(dim=1))
        if x is None:
            x = self.const.to(dtype).unsqueeze(0).expand(ws.shape[0], -1, -1, -1)
        x = x.to(dtype)
        if self.in_channels == 0:
            x = self.conv1(x, next(w_iter), noise_mode=noise_mode)
        elif self.skip is not None:
            y = self.skip(x, gain=_SQRT_HALF)
            x = self.conv0(x, next(w_iter), noise_mode=noise_mode)
            x = y + self.conv1(x, next(w_iter), noise_mode=noise_mode, gain=_SQRT_HALF)
        else:
            x = self.conv0(x, next(w_iter), noise_mode=noise_mode)
            x = self.conv1(x, next(w_iter), noise_mode=noise_mode)
        if self.torgb is not None:
            img = self.torgb(x, next(w_iter), skip=img).float()
        return x, img


class SynthesisNetwork(nn.Module):
    """``ws [N, num_ws, w_dim]`` → images ``[N, img_channels, R, R]`` (blocks ``b4 … bR``)."""

    def __init__(
        self,
        w_dim: int,
        img_resolution: int,
        img_channels: int,
        *,
        channel_base: int = 32768,
        channel_max: int = 512,
        num_fp16_res: int = 4,
        architecture: str = "skip",
        resample_filter: Sequence[float] = (1, 3, 3, 1),
        conv_clamp: Optional[float] = 256,
        layer_kwargs: Optional[Dict[str, Any]] = None,
    ) -> None:
        super().__init__()
        self.w_dim = check_int(w_dim, "w_dim")
        self.img_resolution = _check_resolution(img_resolution)
        self.img_channels = check_int(img_channels, "img_channels")
        architecture = _check_architecture(architecture)
        log2 = int(math.log2(self.img_resolution))
        self.block_resolutions = [2**i for i in range(2, log2 + 1)]
        channels = {r: min(channel_base // r, channel_max) for r in self.block_resolutions}
        fp16_res = _fp16_resolution(self.img_resolution, num_fp16_res)
        self.num_ws = 0
        for res in self.block_resolutions:
            block = SynthesisBlock(
                channels[res // 2] if res > 4 else 0,
                channels[res],
                self.w_dim,
                res,
                self.img_channels,
                res == self.img_resolution,
                architecture=architecture,
                resample_filter=resample_filter,
                conv_clamp=conv_clamp,
                use_fp16=res >= fp16_res,
                layer_kwargs=layer_kwargs,
            )
            self.num_ws += block.num_conv + (block.num_torgb if res == self.img_resolution else 0)
            setattr(self, f"b{res}", block)

    def blocks(self) -> List[SynthesisBlock]:
        """The blocks from 4×4 up."""
        return [getattr(self, f"b{res}") for res in self.block_resolutions]

    def forward(
        self, ws: torch.Tensor, *, noise_mode: str = "random", force_fp32: bool = False
    ) -> torch.Tensor:
        """``ws: [N, num_ws, w_dim]`` → ``[N, img_channels, R, R]``."""
        check_input(ws, "ws", ndim=3, channels=self.num_ws)
        if ws.shape[2] != self.w_dim:
            raise ValueError(
                f"ws: expected [N, {self.num_ws}, {self.w_dim}], got {tuple(ws.shape)}"
            )
        ws = ws.float()
        x = img = None
        w_idx = 0
        for block in self.blocks():
            cur = ws.narrow(1, w_idx, block.num_conv + block.num_torgb)
            w_idx += block.num_conv
            x, img = block(x, img, cur, noise_mode=noise_mode, force_fp32=force_fp32)
        assert img is not None
        return img


_SYNTHESIS_OPTIONS = (
    "channel_base",
    "channel_max",
    "num_fp16_res",
    "conv_clamp",
    "architecture",
    "resample_filter",
    "use_noise",
    "kernel_size",
    "activation",
    "fp16_channels_last",
    "fused_modconv_default",
)


class Generator(nn.Module):
    """StyleGAN2 generator: ``G(z, c) = synthesis(mapping(z, c))``.

    Args:
        z_dim: Latent size (NVlabs default 512).
        c_dim: Label size, 0 = unconditional.
        w_dim: Style size.
        img_resolution: Output side, a power of two >= 4.
        img_channels: Output channels.
        mapping_kwargs: NVlabs' mapping options (``num_layers``, ``embed_features``,
            ``layer_features``, ``lr_multiplier``, ``w_avg_beta``).
        synthesis_kwargs: The synthesis options as one dict (StyleGAN2-ADA's form); they may also
            be given as keywords (StyleGAN3's form): ``channel_base`` (32768), ``channel_max``
            (512), ``num_fp16_res`` (4; float16 runs on CUDA only), ``conv_clamp`` (256),
            ``architecture`` (``'skip'``, or ``'orig'``, ``'resnet'``), ``resample_filter``,
            ``use_noise``. ``fp16_channels_last`` and ``fused_modconv_default`` are accepted for
            compatibility (memory layout / route choices that do not change the result).

    Shapes:
        ``z: [N, z_dim]``, ``c: [N, c_dim]`` → ``[N, img_channels, R, R]`` (values around
        ``[-1, 1]``).

    Example:
        >>> G = Generator(16, 0, 24, 16, 3, mapping_kwargs={'num_layers': 2}, channel_base=256,
        ...               channel_max=32)
        >>> G(torch.randn(2, 16), None, noise_mode='const').shape
        torch.Size([2, 3, 16, 16])
        >>> G.num_ws
        6
    """

    def __init__(
        self,
        z_dim: int,
        c_dim: int,
        w_dim: int,
        img_resolution: int,
        img_channels: int,
        *,
        mapping_kwargs: Optional[Mapping[str, Any]] = None,
        synthesis_kwargs: Optional[Mapping[str, Any]] = None,
        **kwargs: Any,
    ) -> None:
        super().__init__()
        syn = _merge(
            "synthesis_kwargs", {**dict(synthesis_kwargs or {}), **kwargs}, _SYNTHESIS_OPTIONS
        )
        mapping = _merge("mapping_kwargs", mapping_kwargs, _MAPPING_OPTIONS)
        self.init_kwargs: Dict[str, Any] = dict(
            z_dim=z_dim,
            c_dim=c_dim,
            w_dim=w_dim,
            img_resolution=img_resolution,
            img_channels=img_channels,
            mapping_kwargs=dict(mapping),
            **syn,
        )
        self.z_dim = check_int(z_dim, "z_dim", minimum=0)
        self.c_dim = check_int(c_dim, "c_dim", minimum=0)
        self.w_dim = check_int(w_dim, "w_dim")
        self.img_resolution = _check_resolution(img_resolution)
        self.img_channels = check_int(img_channels, "img_channels")
        syn.pop("fp16_channels_last", None)
        syn.pop("fused_modconv_default", None)
        layer = {k: syn.pop(k) for k in ("use_noise", "kernel_size", "activation") if k in syn}
        self.synthesis = SynthesisNetwork(
            self.w_dim, self.img_resolution, self.img_channels, layer_kwargs=layer, **syn
        )
        self.num_ws = self.synthesis.num_ws
        self.mapping = MappingWithTruncation(
            self.z_dim, self.c_dim, self.w_dim, self.num_ws, **mapping
        )

    def forward(
        self,
        z: torch.Tensor,
        c: Optional[torch.Tensor] = None,
        truncation_psi: float = 1.0,
        truncation_cutoff: Optional[int] = None,
        update_emas: bool = False,
        *,
        noise_mode: str = "random",
        force_fp32: bool = False,
    ) -> torch.Tensor:
        """``z: [N, z_dim]``, ``c: [N, c_dim]`` → images ``[N, img_channels, R, R]``."""
        ws = self.mapping(
            z,
            c,
            truncation_psi=truncation_psi,
            truncation_cutoff=truncation_cutoff,
            update_emas=update_emas,
        )
        return self.synthesis(ws, noise_mode=noise_mode, force_fp32=force_fp32)

    @classmethod
    def from_nvlabs(
        cls, state_dict: Mapping[str, torch.Tensor], **generator_kwargs: Any
    ) -> Generator:
        """Build from NVlabs' constructor arguments and load an original ``state_dict``.

        Example:
            >>> kwargs = dict(z_dim=8, c_dim=0, w_dim=8, img_resolution=8, img_channels=3,
            ...               mapping_kwargs={'num_layers': 2}, channel_base=64, channel_max=16)
            >>> G = Generator(**kwargs)
            >>> G2 = Generator.from_nvlabs(G.to_nvlabs(), **kwargs)
            >>> z = torch.randn(2, 8)
            >>> torch.equal(G(z, None, noise_mode='const'), G2(z, None, noise_mode='const'))
            True
        """
        from .convert import load_nvlabs_state_dict

        model = cls(**generator_kwargs)
        load_nvlabs_state_dict(model, state_dict, prefix_kind="G")
        return model

    def to_nvlabs(self) -> Dict[str, torch.Tensor]:
        """This generator's ``state_dict`` under the original key names (for NVlabs' code)."""
        from .convert import to_nvlabs_state_dict

        return to_nvlabs_state_dict(self, prefix_kind="G")


# --------------------------------------------------------------------------------------------
# Discriminator


#: The library's block, under the name the converter and older code know.
DiscriminatorBlock = StyleGAN2DiscriminatorBlock


class _Epilogue(DiscriminatorEpilogue):
    """:class:`~ganblocks.nn.DiscriminatorEpilogue` plus the ``skip`` architecture's fromRGB."""

    def __init__(
        self, in_channels: int, img_channels: int, architecture: str, activation: str, **kw: Any
    ) -> None:
        super().__init__(in_channels, 4, **kw)
        self.fromrgb = (
            EqualConv2d(img_channels, in_channels, 1, activation=activation)
            if architecture == "skip"
            else None
        )

    def forward(  # type: ignore[override]
        self, x: torch.Tensor, img: Optional[torch.Tensor], cmap: Optional[torch.Tensor]
    ) -> torch.Tensor:
        x = x.float()
        if self.fromrgb is not None:
            assert img is not None
            x = x + self.fromrgb(img.float())
        return super().forward(x, cmap)


_D_BLOCK_OPTIONS = ("activation", "resample_filter", "fp16_channels_last", "freeze_layers")
_D_EPILOGUE_OPTIONS = ("mbstd_group_size", "mbstd_num_channels", "activation")


class Discriminator(nn.Module):
    """StyleGAN2 discriminator: blocks ``bR … b8`` → epilogue ``b4`` (projection on labels).

    Args:
        c_dim: Label size, 0 = unconditional.
        img_resolution: Input side, a power of two >= 4.
        img_channels: Input channels.
        architecture: ``'resnet'`` (default), ``'skip'`` or ``'orig'``.
        channel_base, channel_max: ``min(channel_base // res, channel_max)`` channels at ``res``.
        num_fp16_res: Float16 for the highest resolutions (CUDA only).
        conv_clamp: Clamp of conv outputs, ``None`` disables.
        cmap_dim: Label embedding size; ``None`` is the channels at 4×4.
        block_kwargs: ``activation``, ``resample_filter`` (``fp16_channels_last``,
            ``freeze_layers`` accepted; freezing is the trainer's business).
        mapping_kwargs: Options of the label mapping (as :class:`Generator`'s).
        epilogue_kwargs: ``mbstd_group_size``, ``mbstd_num_channels``, ``activation``.

    Shapes:
        ``img: [N, img_channels, R, R]``, ``c: [N, c_dim]`` → logits ``[N, 1]``.

    Example:
        >>> D = Discriminator(0, 16, 3, channel_base=256, channel_max=32)
        >>> D(torch.randn(4, 3, 16, 16), None).shape
        torch.Size([4, 1])
    """

    def __init__(
        self,
        c_dim: int,
        img_resolution: int,
        img_channels: int,
        *,
        architecture: str = "resnet",
        channel_base: int = 32768,
        channel_max: int = 512,
        num_fp16_res: int = 4,
        conv_clamp: Optional[float] = 256,
        cmap_dim: Optional[int] = None,
        block_kwargs: Optional[Mapping[str, Any]] = None,
        mapping_kwargs: Optional[Mapping[str, Any]] = None,
        epilogue_kwargs: Optional[Mapping[str, Any]] = None,
    ) -> None:
        super().__init__()
        block = _merge("block_kwargs", block_kwargs, _D_BLOCK_OPTIONS)
        mapping = _merge("mapping_kwargs", mapping_kwargs, _MAPPING_OPTIONS)
        epilogue = _merge("epilogue_kwargs", epilogue_kwargs, _D_EPILOGUE_OPTIONS)
        self.init_kwargs: Dict[str, Any] = dict(
            c_dim=c_dim,
            img_resolution=img_resolution,
            img_channels=img_channels,
            architecture=architecture,
            channel_base=channel_base,
            channel_max=channel_max,
            num_fp16_res=num_fp16_res,
            conv_clamp=conv_clamp,
            cmap_dim=cmap_dim,
            block_kwargs=dict(block),
            mapping_kwargs=dict(mapping),
            epilogue_kwargs=dict(epilogue),
        )
        self.c_dim = check_int(c_dim, "c_dim", minimum=0)
        self.img_resolution = _check_resolution(img_resolution)
        self.img_channels = check_int(img_channels, "img_channels")
        architecture = _check_architecture(architecture)
        block.pop("fp16_channels_last", None)
        block.pop("freeze_layers", None)
        log2 = int(math.log2(self.img_resolution))
        self.block_resolutions = [2**i for i in range(log2, 2, -1)]
        channels = {r: min(channel_base // r, channel_max) for r in [*self.block_resolutions, 4]}
        fp16_res = _fp16_resolution(self.img_resolution, num_fp16_res)
        if cmap_dim is None:
            cmap_dim = channels[4]
        self.cmap_dim = 0 if self.c_dim == 0 else check_int(cmap_dim, "cmap_dim")
        for res in self.block_resolutions:
            setattr(
                self,
                f"b{res}",
                StyleGAN2DiscriminatorBlock(
                    channels[res] if res < self.img_resolution else 0,
                    channels[res],
                    channels[res // 2],
                    img_channels=self.img_channels,
                    architecture=architecture,
                    conv_clamp=conv_clamp,
                    use_fp16=res >= fp16_res,
                    persistent_filter=True,  # NVlabs' checkpoints store the filters
                    **block,
                ),
            )
        self.mapping: Optional[MappingNetwork] = None
        if self.c_dim > 0:
            mapping.pop("w_avg_beta", None)
            if mapping.pop("activation", "lrelu") != "lrelu":
                raise ValueError("mapping_kwargs: only 'lrelu' mapping layers are built")
            self.mapping = MappingNetwork(
                0,
                self.cmap_dim,
                num_layers=mapping.get("num_layers", 8),
                lr_mul=mapping.get("lr_multiplier", 0.01),
                hidden_dim=mapping.get("layer_features"),
                c_dim=self.c_dim,
                embed_features=mapping.get("embed_features"),
            )
        self.b4 = _Epilogue(
            channels[4],
            self.img_channels,
            architecture,
            epilogue.pop("activation", "lrelu"),
            cmap_dim=self.cmap_dim,
            conv_clamp=conv_clamp,
            **epilogue,
        )

    def blocks(self) -> List[StyleGAN2DiscriminatorBlock]:
        """The blocks from the input resolution down to 8×8."""
        return [getattr(self, f"b{res}") for res in self.block_resolutions]

    def forward(
        self, img: torch.Tensor, c: Optional[torch.Tensor] = None, *, force_fp32: bool = False
    ) -> torch.Tensor:
        """``img: [N, img_channels, R, R]``, ``c: [N, c_dim]`` → ``[N, 1]``."""
        check_input(img, "img", ndim=4, channels=self.img_channels)
        if tuple(img.shape[2:]) != (self.img_resolution, self.img_resolution):
            raise ValueError(
                f"img: expected {self.img_resolution}x{self.img_resolution} images, "
                f"got {tuple(img.shape)}"
            )
        x = None
        for block in self.blocks():
            x, img = block(x, img, force_fp32=force_fp32)
        cmap = None
        if self.mapping is not None:
            if c is None:
                raise ValueError(f"c: expected labels [N, {self.c_dim}], got None")
            cmap = self.mapping(None, c.float())
        assert x is not None
        return self.b4(x, img, cmap)

    @classmethod
    def from_nvlabs(
        cls, state_dict: Mapping[str, torch.Tensor], **discriminator_kwargs: Any
    ) -> Discriminator:
        """Build from NVlabs' constructor arguments and load an original ``state_dict``."""
        from .convert import load_nvlabs_state_dict

        model = cls(**discriminator_kwargs)
        load_nvlabs_state_dict(model, state_dict, prefix_kind="D")
        return model

    def to_nvlabs(self) -> Dict[str, torch.Tensor]:
        """This discriminator's ``state_dict`` under the original key names."""
        from .convert import to_nvlabs_state_dict

        return to_nvlabs_state_dict(self, prefix_kind="D")
