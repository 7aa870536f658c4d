"""Gumbel-Softmax against the formula softmax((logits + g) / τ), g = -log(-log U), same draws."""

from __future__ import annotations

import pytest
import torch

from ganblocks.nn import GumbelSoftmax, gumbel_softmax


@pytest.mark.parametrize("tau", [0.3, 1.0, 2.5])
def test_soft_sample_matches_the_formula(tau):
    logits = torch.randn(3, 5, 2, generator=torch.Generator().manual_seed(0), dtype=torch.float64)
    u = torch.rand(logits.shape, generator=torch.Generator().manual_seed(1), dtype=torch.float64)
    expected = torch.softmax((logits - torch.log(-torch.log(u))) / tau, dim=1)
    got = gumbel_softmax(logits, tau=tau, hard=False, generator=torch.Generator().manual_seed(1))
    torch.testing.assert_close(got, expected)
    hard = GumbelSoftmax(tau)(logits, generator=torch.Generator().manual_seed(1))
    torch.testing.assert_close(hard, torch.zeros_like(hard).scatter_(
        1, expected.argmax(dim=1, keepdim=True), 1.0))


def test_temperature_is_checked_by_name():
    with pytest.raises(ValueError, match="tau"):
        gumbel_softmax(torch.zeros(2, 3), tau=0.0)
    with pytest.raises(ValueError, match="tau"):
        GumbelSoftmax(-1.0)
