"""Functional primitives: FIR resampling, fused bias + activation, resampling convolution.

Each op has a pure-PyTorch reference path (``impl='ref'``) that is the specification, and a native
path (``impl='native'``, compiled C++/CUDA kernels) that must agree with it; ``impl=None`` picks the
native path when it is available.
"""

from . import native  # noqa: F401 (ganblocks.ops.native, the backend's API, as before the split)
from ._params import Padding, parse_padding
from .bias_act import ACTIVATIONS, ActivationSpec, bias_act
from .conv2d_resample import conv2d_resample
from .upfirdn2d import (
    downsample2d,
    filter2d,
    setup_filter,
    upfirdn2d,
    upfirdn2d_transpose,
    upfirdn2d_transpose_params,
    upsample2d,
)

__all__ = [
    "ACTIVATIONS",
    "ActivationSpec",
    "Padding",
    "bias_act",
    "conv2d_resample",
    "downsample2d",
    "filter2d",
    "parse_padding",
    "setup_filter",
    "upfirdn2d",
    "upfirdn2d_transpose",
    "upfirdn2d_transpose_params",
    "upsample2d",
]
