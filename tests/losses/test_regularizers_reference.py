"""Lazy regularisation schedule by hand (StyleGAN2: c = k / (k + 1), lr·c, β^c)."""

from __future__ import annotations

import dataclasses

import pytest
import torch

from ganblocks.losses import LazyRegularizer, lazy_adam_params, r1_penalty


@pytest.mark.parametrize("interval", [1, 4, 16])
def test_lazy_adam_params_correct_both_betas(interval):
    c = interval / (interval + 1)
    lr, (b1, b2) = lazy_adam_params(0.003, (0.5, 0.9), interval)
    assert lr == pytest.approx(0.003 * c)
    assert b1 == pytest.approx(0.5**c) and b2 == pytest.approx(0.9**c)
    assert LazyRegularizer(interval).adam_params(0.003, (0.5, 0.9)) == (lr, (b1, b2))


def test_lazy_regularizer_is_immutable_and_weighted_by_its_interval():
    lazy = LazyRegularizer(interval=3)
    with pytest.raises(dataclasses.FrozenInstanceError):
        lazy.interval = 5
    assert lazy.weight == 3.0
    assert [s for s in range(10) if lazy.is_due(s)] == [0, 3, 6, 9]


def test_r1_penalty_of_one_value_per_sample():
    """Inputs [B] (one scalar per sample) are batched inputs too: ‖d(x²)/dx‖² = 4x²."""
    x = torch.tensor([1.0, -2.0, 0.5], requires_grad=True)
    torch.testing.assert_close(r1_penalty(x**2, x), 4 * x.detach() ** 2)
