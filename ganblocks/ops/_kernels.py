"""What the Python side knows about the compiled kernels of ``csrc/``.

The dtypes they take on each device, the dtype they compute in, the layout they treat as
channels-last, and the launch limits of the CUDA kernels (kept equal to
``csrc/cuda_common.cuh``; a test compares them). Used by the dispatch, the self-check and each
op's native path.
"""

from __future__ import annotations

import torch

__all__ = [
    "CPU_DTYPES",
    "CUDA_DTYPES",
    "CUDA_MAX_BLOCKS_1D",
    "CUDA_MAX_GRID_Y",
    "CUDA_MAX_GRID_Z",
    "is_channels_last",
    "opmath",
    "supported",
]

CPU_DTYPES = (torch.float32, torch.float64, torch.bfloat16, torch.float16)
CUDA_DTYPES = (torch.float16, torch.bfloat16, torch.float32, torch.float64)

# Launch limits of the CUDA kernels: beyond them a kernel strides over its grid or (tiled
# kernels) hands over to the generic one.
CUDA_MAX_BLOCKS_1D = 4096
CUDA_MAX_GRID_Z = 4096
CUDA_MAX_GRID_Y = 65535


def supported(x: torch.Tensor) -> bool:
    """Whether the kernels take ``x``'s device type and dtype (built or not)."""
    kind = x.device.type
    if kind == "cpu":
        return x.dtype in CPU_DTYPES
    if kind == "cuda":
        return x.dtype in CUDA_DTYPES
    return False


def opmath(dtype: torch.dtype) -> torch.dtype:
    """The dtype the kernels compute in (and take filter taps and bias gradients in)."""
    return torch.float64 if dtype == torch.float64 else torch.float32


def is_channels_last(x: torch.Tensor) -> bool:
    """The layout test of the kernels: NHWC-dense and not also NCHW-dense."""
    return (
        x.dim() == 4
        and not x.is_contiguous()
        and x.is_contiguous(memory_format=torch.channels_last)
    )
