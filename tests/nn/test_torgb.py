"""ToRGB: a linear map of the features (no demodulation), plus the FIR-up-sampled skip image."""

from __future__ import annotations

import math

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from ganblocks.nn import ToRGB
from ganblocks.ops import upsample2d


def _reference(layer, x, w):
    # Explicit per-sample 1x1 conv: rgb[n,o] = Σ_i W[o,i]/sqrt(C) · s[n,i] · x[n,i] + b[o].
    s = layer.conv.affine(w)
    weight = layer.conv.weight[:, :, 0, 0] / math.sqrt(x.shape[1])
    return torch.einsum("oi,ni,nihw->nohw", weight, s, x) + layer.bias.view(1, -1, 1, 1)


@settings(max_examples=10)
@given(
    n=st.integers(1, 3),
    c=st.integers(1, 6),
    out=st.integers(1, 4),
    res=st.sampled_from([2, 4, 8]),
    seed=st.integers(0, 2**16),
)
def test_matches_explicit_modulation_and_skip(n, c, out, res, seed):
    torch.manual_seed(seed)
    layer = ToRGB(c, out, 5).double()
    with torch.no_grad():
        layer.bias.normal_()
    x, w = torch.randn(n, c, res, res, dtype=torch.float64), torch.randn(n, 5, dtype=torch.float64)
    torch.testing.assert_close(layer(x, w), _reference(layer, x, w))
    skip = torch.randn(n, out, res // 2, res // 2, dtype=torch.float64)
    expected = _reference(layer, x, w) + upsample2d(skip, layer.upsample.resample_filter)
    torch.testing.assert_close(layer(x, w, skip), expected)


def test_linear_in_x_and_clamped():
    torch.manual_seed(0)
    layer = ToRGB(4, 3, 8, conv_clamp=0.5)
    x, w = torch.randn(2, 4, 4, 4) * 100, torch.randn(2, 8)
    assert layer(x, w).abs().max() <= 0.5
    free = ToRGB(4, 3, 8)
    torch.testing.assert_close(free(2 * x, w), 2 * free(x, w))  # bias 0 at init: linear


def test_persistent_filter_and_errors():
    assert "upsample.resample_filter" in ToRGB(4, 3, 8, persistent_filter=True).state_dict()
    assert "upsample.resample_filter" not in ToRGB(4, 3, 8).state_dict()
    with pytest.raises(ValueError, match="skip"):
        ToRGB(4, 3, 8)(torch.randn(1, 4, 8, 8), torch.randn(1, 8), torch.randn(1, 3, 8, 8))


def _upsample_121(skip: torch.Tensor) -> torch.Tensor:
    # StyleGAN2's skip up-sampling written out: zero insertion, pad (2, 1) per axis, and the
    # normalised [1, 3, 3, 1] ⊗ [1, 3, 3, 1] kernel times the up-sampling gain 4.
    n, c, h, w = skip.shape
    up = skip.new_zeros(n, c, 2 * h, 2 * w)
    up[:, :, ::2, ::2] = skip
    taps = skip.new_tensor([1.0, 3.0, 3.0, 1.0])
    kernel = (torch.outer(taps, taps) / 64 * 4).expand(c, 1, 4, 4)
    return torch.nn.functional.conv2d(torch.nn.functional.pad(up, (2, 1, 2, 1)), kernel, groups=c)


def test_default_skip_filter_is_stylegan2s_1331():
    torch.manual_seed(1)
    layer = ToRGB(4, 3, 8).double()
    # Non-square: height and width of x and skip are checked and up-sampled axis by axis.
    x, w = torch.randn(2, 4, 8, 12, dtype=torch.float64), torch.randn(2, 8, dtype=torch.float64)
    skip = torch.randn(2, 3, 4, 6, dtype=torch.float64)
    torch.testing.assert_close(layer(x, w, skip) - layer(x, w), _upsample_121(skip))
    with pytest.raises(ValueError, match=r"skip: expected \[2, 3, 4, 6\]"):
        layer(x, w, skip.transpose(2, 3))


def test_arguments_are_checked_and_normalised():
    np = pytest.importorskip("numpy")
    layer = ToRGB(4, np.int64(3), 8, conv_clamp=np.float32(0.5))
    assert type(layer.out_channels) is int and layer.out_channels == 3
    assert type(layer.conv_clamp) is float and layer.conv_clamp == 0.5
    with pytest.raises(TypeError, match="out_channels"):
        ToRGB(4, 3.0, 8)
    for bad in (0.0, -1.0):
        with pytest.raises(ValueError, match="conv_clamp"):
            ToRGB(4, 3, 8, conv_clamp=bad)
    with pytest.raises(ValueError, match="skip"):
        ToRGB(4, 3, 8)(torch.randn(1, 4, 8, 8), torch.randn(1, 8), torch.randn(2, 3, 4, 4))
