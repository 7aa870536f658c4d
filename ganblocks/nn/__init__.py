"""Layers: equalised-LR linear/conv, FIR resampling, style modulation, mapping networks, residual
blocks, ASPP, minibatch std, SPADE and Gumbel-Softmax.

Every block is a small ``nn.Module`` with keyword-only options, a docstring with tensor shapes, and
no knowledge of any particular GAN; see the API page for the conventions (equalised learning rate,
fused bias + activation, FIR resampling).
"""

from .aspp import ASPP
from .equalized import EqualConv2d, EqualLinear, PixelNorm
from .gumbel import GumbelSoftmax, gumbel_softmax
from .mapping import MappingNetwork, StyleMapMapping
from .minibatch_std import MinibatchStd
from .modulation import ModulatedConv2d, SpatialModulation, StyledConv2d, modulated_conv2d
from .resample import Blur, Downsample2d, Upsample2d
from .resblocks import OASISResBlockDown, OASISResBlockUp, ResBlockD, ResBlockU
from .spade import SPADE
from .stylemap import StyleMapResizer, StyleMapSynthesisBlock

__all__ = [
    "ASPP",
    "SPADE",
    "Blur",
    "Downsample2d",
    "EqualConv2d",
    "EqualLinear",
    "GumbelSoftmax",
    "MappingNetwork",
    "MinibatchStd",
    "ModulatedConv2d",
    "OASISResBlockDown",
    "OASISResBlockUp",
    "PixelNorm",
    "ResBlockD",
    "ResBlockU",
    "SpatialModulation",
    "StyleMapMapping",
    "StyleMapResizer",
    "StyleMapSynthesisBlock",
    "StyledConv2d",
    "Upsample2d",
    "gumbel_softmax",
    "modulated_conv2d",
]

from .discriminator_block import StyleGAN2DiscriminatorBlock
from .epilogue import DiscriminatorEpilogue
from .noise import NoiseInjection
from .noise3d import Noise3d, concat_noise_3d
from .spade_resblock import SPADEResBlock
from .spectral_norm import (
    spectral_norm_from_legacy,
    spectral_norm_to_legacy,
    spectral_sigma,
)
from .torgb import ToRGB
from .truncation import WAverageTruncation

__all__ += [
    "DiscriminatorEpilogue",
    "Noise3d",
    "NoiseInjection",
    "SPADEResBlock",
    "StyleGAN2DiscriminatorBlock",
    "ToRGB",
    "WAverageTruncation",
    "concat_noise_3d",
    "spectral_norm_from_legacy",
    "spectral_norm_to_legacy",
    "spectral_sigma",
]
