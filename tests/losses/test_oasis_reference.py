"""OASIS's N+1 loss against per-pixel loops written from the spec (OCO_GAN_SPEC §4).

Real pixels of class ``c`` target channel ``c + 1`` with weight ``w_c = B·H·W / (K·n_c)`` (K
classes present, a don't-care class weighs 0 and is not counted in K), or the caller's
``class_weights[c]``; fake pixels target channel 0, unweighted; every mean is over all ``B·H·W``
pixels, except the unbalanced real loss with a don't-care class (mean over the other pixels).
"""

from __future__ import annotations

import math

import pytest
import torch

from ganblocks.losses import class_balance_coefficients, n_plus_one_loss

B, N, H, W = 2, 4, 3, 5


def draws(seed=0):
    gen = torch.Generator().manual_seed(seed)
    logits = torch.randn(B, N + 1, H, W, generator=gen, dtype=torch.float64) * 2
    label = torch.randint(0, N - 1, (B, H, W), generator=gen)  # class N - 1 absent
    return logits, label


def pixel_ce(logits, b, c, i, j):
    column = logits[b, :, i, j]
    return -(column[c] - torch.logsumexp(column, 0)).item()


def loop_loss(logits, label, weight_of_class, *, target_fake=False, denominator=None):
    total = 0.0
    for b in range(B):
        for i in range(H):
            for j in range(W):
                c = int(label[b, i, j])
                if target_fake:
                    total += pixel_ce(logits, b, 0, i, j)
                else:
                    total += weight_of_class(c) * pixel_ce(logits, b, c + 1, i, j)
    return total / (denominator or B * H * W)


def spec_weights(label, ignore_index=None):
    counts = torch.bincount(label.flatten(), minlength=N).tolist()
    present = [c for c in range(N) if counts[c] > 0 and c != ignore_index]
    return {c: (B * H * W / (len(present) * counts[c]) if c in present else 0.0)
            for c in range(N)}


@pytest.mark.parametrize("ignore_index", [None, 0])
def test_balanced_real_loss(ignore_index):
    logits, label = draws(1)
    w = spec_weights(label, ignore_index)
    expected = loop_loss(logits, label, w.__getitem__)
    got = n_plus_one_loss(logits, label, real=True, ignore_index=ignore_index)
    assert got.item() == pytest.approx(expected, rel=1e-10)


def test_fake_loss_targets_channel_zero_unweighted():
    logits, label = draws(2)
    expected = loop_loss(logits, label, None, target_fake=True)
    for ignore_index in (None, 1):
        got = n_plus_one_loss(logits, label, real=False, ignore_index=ignore_index)
        assert got.item() == pytest.approx(expected, rel=1e-10)


def test_given_class_weights_replace_the_batch_balance():
    logits, label = draws(3)
    cw = torch.tensor([0.5, 2.0, 0.0, 7.0], dtype=torch.float64)
    expected = loop_loss(logits, label, lambda c: cw[c].item())
    got = n_plus_one_loss(logits, label, real=True, class_weights=cw)
    assert got.item() == pytest.approx(expected, rel=1e-10)
    with pytest.raises(ValueError, match="class_weights"):
        n_plus_one_loss(logits, label, real=True, class_weights=torch.ones(N + 1))


def test_unbalanced_real_loss_means_over_cared_pixels():
    logits, label = draws(4)
    expected = loop_loss(logits, label, lambda c: 1.0)
    assert n_plus_one_loss(logits, label, real=True, class_balance=False).item() == (
        pytest.approx(expected, rel=1e-10))
    cared = int((label != 1).sum())
    expected = loop_loss(logits, label, lambda c: float(c != 1), denominator=cared)
    got = n_plus_one_loss(logits, label, real=True, class_balance=False, ignore_index=1)
    assert got.item() == pytest.approx(expected, rel=1e-10)


def test_class_balance_coefficients_by_hand():
    counts = torch.tensor([5, 3, 0, 2])
    torch.testing.assert_close(
        class_balance_coefficients(counts),
        torch.tensor([10 / 15, 10 / 9, 0.0, 10 / 6], dtype=torch.float64),
    )
    # the don't-care class: weight 0, not counted in K, its pixels still in the total
    torch.testing.assert_close(
        class_balance_coefficients(counts, ignore_index=0),
        torch.tensor([0.0, 10 / 6, 0.0, 10 / 4], dtype=torch.float64),
    )
    assert class_balance_coefficients(torch.tensor([4, 0]), ignore_index=0).tolist() == [0, 0]


def test_uniform_logits_give_log_of_channel_count():
    logits = torch.zeros(B, N + 1, H, W, dtype=torch.float64)
    _, label = draws(5)
    for real in (True, False):
        assert n_plus_one_loss(logits, label, real=real).item() == pytest.approx(math.log(N + 1))
