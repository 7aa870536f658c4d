"""LabelMix: golden loss, mask properties (binary, constant per class, shared by the batch)."""

from __future__ import annotations

import pytest
import torch
from hypothesis import given
from hypothesis import strategies as st
from testutils import load_golden, rel_err

from ganblocks.losses import labelmix_images, labelmix_loss, labelmix_mask

CASES = load_golden("oasis_losses")["cases"]


def test_golden_labelmix_loss():
    for case in CASES:
        got = labelmix_loss(case["d_mixed"], case["d_real"], case["d_fake"], case["labelmix_mask"])
        assert rel_err(got, case["labelmix_loss"]) < 1e-5


@given(
    b=st.integers(1, 3),
    h=st.integers(1, 6),
    w=st.integers(1, 6),
    n=st.integers(1, 8),
    seed=st.integers(0, 2**31 - 1),
)
def test_mask_is_binary_and_constant_per_class_across_batch(b, h, w, n, seed):
    label = torch.randint(0, n, (b, h, w), generator=torch.Generator().manual_seed(seed))
    mask = labelmix_mask(label, generator=torch.Generator().manual_seed(seed + 1))
    assert mask.shape == (b, 1, h, w) and mask.dtype == torch.float32
    assert bool(((mask == 0) | (mask == 1)).all())
    for c in label.unique():
        values = mask[:, 0][label == c]  # every sample's pixels of class c
        assert bool((values == values[0]).all())


def test_mask_bits_are_fair_and_independent():
    # Classes 0 and 1 (the pair that an in-place rewrite would merge) must get independent fair
    # bits: over 400 draws P(m0 = 1), P(m1 = 1) and P(m0 = m1) are all close to 1/2.
    label = torch.tensor([[[0, 1, 2]]])
    g = torch.Generator().manual_seed(0)
    draws = torch.stack([labelmix_mask(label, generator=g)[0, 0, 0] for _ in range(400)])
    freq = draws.mean(dim=0)
    assert bool(((freq > 0.4) & (freq < 0.6)).all())
    same01 = (draws[:, 0] == draws[:, 1]).float().mean().item()
    assert 0.4 < same01 < 0.6


def test_mask_reproducible_with_generator():
    label = torch.randint(0, 5, (2, 4, 4), generator=torch.Generator().manual_seed(3))
    a = labelmix_mask(label, generator=torch.Generator().manual_seed(7))
    b = labelmix_mask(label, generator=torch.Generator().manual_seed(7))
    assert torch.equal(a, b)


def test_mix_images_and_loss_definition():
    g = torch.Generator().manual_seed(1)
    label = torch.randint(0, 4, (2, 5, 5), generator=g)
    mask = labelmix_mask(label, generator=g, num_classes=4)
    real, fake = torch.randn(2, 3, 5, 5, generator=g), torch.randn(2, 3, 5, 5, generator=g)
    mixed = labelmix_images(real, fake, mask)
    on = mask.expand_as(real) == 1
    assert torch.equal(mixed[on], real[on]) and torch.equal(mixed[~on], fake[~on])
    d_mixed, d_real, d_fake = (torch.randn(2, 5, 5, 5, generator=g) for _ in range(3))
    target = torch.where(mask.expand_as(d_real) == 1, d_real, d_fake)
    expected = ((d_mixed - target) ** 2).sum() / d_mixed.numel()
    assert labelmix_loss(d_mixed, d_real, d_fake, mask).item() == pytest.approx(expected.item())


def test_labelmix_loss_differentiable():
    g = torch.Generator().manual_seed(2)
    mask = (torch.rand(1, 1, 2, 3, generator=g) > 0.5).double()
    args = [
        torch.randn(1, 2, 2, 3, generator=g, dtype=torch.float64, requires_grad=True)
        for _ in range(3)
    ]
    assert torch.autograd.gradcheck(lambda a, b, c: labelmix_loss(a, b, c, mask), args)


def test_labelmix_bad_input():
    with pytest.raises(ValueError, match="num_classes"):
        labelmix_mask(torch.zeros(1, 2, 2, dtype=torch.long), num_classes=0)
    with pytest.raises(ValueError, match="label"):
        labelmix_mask(torch.full((1, 2, 2), 3), num_classes=2)
    with pytest.raises(ValueError, match="d_mixed, d_real, d_fake"):
        labelmix_loss(
            torch.zeros(1, 2, 2, 2),
            torch.zeros(1, 2, 2, 2),
            torch.zeros(1, 3, 2, 2),
            torch.zeros(1, 1, 2, 2),
        )
