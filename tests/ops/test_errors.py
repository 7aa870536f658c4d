"""Bad input fails early with a message that names the argument and the expected form."""

from __future__ import annotations

import pytest
import torch

from ganblocks.ops import (
    bias_act,
    downsample2d,
    filter2d,
    setup_filter,
    upfirdn2d,
    upfirdn2d_transpose,
    upsample2d,
)

X = torch.randn(1, 2, 8, 8)


@pytest.mark.parametrize(
    "call, error, match",
    [
        (lambda: upfirdn2d(X, torch.ones(2, 2, 2)), ValueError, r"^f: .*1-D .*2-D"),
        (lambda: upfirdn2d(X, torch.ones(0)), ValueError, r"^f: "),
        (lambda: upfirdn2d(X, [1, 2, 1]), TypeError, r"^f: .*setup_filter"),
        (lambda: setup_filter(torch.ones(2, 2, 2)), ValueError, r"^f: "),
        (lambda: upfirdn2d(X, None, up=-1), ValueError, r"^up: .*>= 1"),
        (lambda: upfirdn2d(X, None, down=[2, 0]), ValueError, r"^down: .*>= 1"),
        (lambda: upfirdn2d(X, None, up=[1, 2, 3]), ValueError, r"^up: "),
        (lambda: upfirdn2d(X, None, up=1.5), TypeError, r"^up: .*integer"),
        (lambda: upsample2d(X, None, up=-2), ValueError, r"^up: "),
        (lambda: downsample2d(X, None, down=-2), ValueError, r"^down: "),
        (lambda: upfirdn2d(X, None, padding=[1, 2, 3]), ValueError, r"^padding: .*length 3"),
        (lambda: filter2d(X, None, padding=[1, 2, 3]), ValueError, r"^padding: "),
        (lambda: upfirdn2d(X, None, padding=-5), ValueError, r"^padding: .*smaller than 1x1"),
        (lambda: upfirdn2d(X, torch.ones(9, 9)), ValueError, r"^padding: .*filter 9x9"),
        (lambda: upfirdn2d(X[0], None), ValueError, r"^x: .*rank 4"),
        (lambda: upfirdn2d(X.long(), None), TypeError, r"^x: .*floating"),
        (lambda: upfirdn2d(X.numpy(), None), TypeError, r"^x: .*torch.Tensor"),
        (lambda: upfirdn2d(X, None, gain="2"), TypeError, r"^gain: "),
        (lambda: upfirdn2d(X, None, impl="gpu"), ValueError, r"^impl: "),
        (lambda: bias_act(X, torch.zeros(3)), ValueError, r"^b: expected 2 elements"),
        (lambda: bias_act(X, torch.zeros(2, 1)), ValueError, r"^b: .*rank 1"),
        (lambda: bias_act(X, torch.zeros(8), dim=5), ValueError, r"^dim: "),
        (lambda: bias_act(X, act="gelu"), ValueError, r"^act: unknown activation 'gelu'"),
        (lambda: bias_act(X, clamp=-1.0), ValueError, r"^clamp: "),
        (lambda: upfirdn2d_transpose(X, None, input_size=(4, 4)), ValueError, r"^y: "),
    ],
)
def test_bad_input(call, error, match):
    with pytest.raises(error, match=match):
        call()
