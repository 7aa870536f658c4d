"""Lazy regularisation schedule by hand (StyleGAN2: c = k / (k + 1), lr·c, β^c)."""

from __future__ import annotations

import dataclasses

import pytest

from ganblocks.losses import LazyRegularizer, lazy_adam_params


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
