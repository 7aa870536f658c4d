"""DiffAugment, cutout and random flips: formulas, label alignment, differentiability."""

from __future__ import annotations

import pytest
import torch
from augment.helpers_aug import coordinate_batch

from ganblocks.augment import cutout, diff_augment, random_hflip
from ganblocks.losses import r1_penalty


def _gen(seed: int) -> torch.Generator:
    return torch.Generator().manual_seed(seed)


def test_color_policy_matches_formulas_and_keeps_labels():
    x = torch.randn(3, 3, 4, 5, generator=_gen(0), dtype=torch.float64)
    label = torch.randint(0, 4, (3, 4, 5), generator=_gen(1))
    y, lab = diff_augment(x, "color", label=label, generator=_gen(2))
    assert torch.equal(lab, label)
    # Independent re-derivation with the same random stream: three [B] uniforms in order.
    g = _gen(2)
    u1, u2, u3 = (torch.rand(3, 1, 1, 1, generator=g).double() for _ in range(3))
    ref = x + (u1 - 0.5)
    m = ref.mean(dim=1, keepdim=True)
    ref = (ref - m) * (2 * u2) + m
    m = ref.mean(dim=(1, 2, 3), keepdim=True)
    ref = (ref - m) * (u3 + 0.5) + m
    assert torch.allclose(y, ref, atol=1e-12)


def test_translation_is_an_integer_shift_aligned_with_labels():
    b, h, w = 16, 16, 16
    image, label = coordinate_batch(b, h, w, offset=1.0)  # coordinates + 1, so 0 means "outside"
    y, lab = diff_augment(image, "translation", label=label, generator=_gen(3), label_fill=0)
    inside = lab != 0
    implied = (y[:, 1] - 1).round().long() * w + (y[:, 0] - 1).round().long() + 1
    assert torch.equal(implied[inside], lab[inside])
    assert bool((y[:, :2].abs().amax(dim=1)[~inside] == 0).all())  # zeros padding outside
    # Integer shifts: the image holds whole coordinates; shift within ±round(0.125 · 16) = ±2.
    assert torch.equal(y, y.round())
    shift_x = (y[:, 0, h // 2, w // 2] - 1) - w // 2
    assert shift_x.abs().max() <= 2 and shift_x.unique().numel() > 1


def test_cutout_policy_erases_and_marks_labels():
    x = torch.ones(8, 3, 16, 16)
    label = torch.full((8, 16, 16), 2)
    y, lab = diff_augment(x, "cutout", label=label, generator=_gen(4), label_fill=255)
    erased = (y == 0).all(dim=1)
    assert torch.equal(erased, lab == 255)
    per_image = erased.flatten(1).sum(dim=1)
    assert bool((per_image <= 64).all()) and per_image.max() == 64  # at most 8 × 8 pixels


def test_cutout_rectangle_and_label_none():
    x = torch.ones(1, 1, 4, 8)
    y = cutout(x, torch.tensor([[0.5, 0.5]]), torch.tensor([[0.5, 0.5]]))
    expected = torch.ones(4, 8)
    expected[1:3, 2:6] = 0
    assert torch.equal(y[0, 0], expected)
    label = torch.ones(1, 4, 8, dtype=torch.long)
    _, lab = cutout(x, torch.tensor([[0.5, 0.5]]), 0.5, label=label, label_fill=None)
    assert torch.equal(lab, label)


def test_random_hflip_flips_pairs_per_sample():
    x = torch.randn(64, 2, 3, 4, generator=_gen(5))
    label = torch.randint(0, 9, (64, 3, 4), generator=_gen(6))
    y, lab = random_hflip(x, label=label, p=0.5, generator=_gen(7))
    flipped = (y == x.flip(3)).flatten(1).all(dim=1)
    kept = (y == x).flatten(1).all(dim=1)
    assert bool((flipped | kept).all()) and 10 < int(flipped.sum()) < 54
    assert torch.equal(lab[flipped], label[flipped].flip(2)) and torch.equal(
        lab[kept & ~flipped], label[kept & ~flipped]
    )


def test_r1_through_diff_augment_matches_finite_differences():
    w = torch.randn(3 * 4 * 4, 5, generator=_gen(8), dtype=torch.float64) * 0.3

    def r1(x):
        y = diff_augment(x, generator=_gen(9))  # all three policies, same draw every call
        return r1_penalty(torch.nn.functional.softplus(y.flatten(1) @ w).sum(dim=1), x)

    x = torch.randn(2, 3, 4, 4, generator=_gen(10), dtype=torch.float64, requires_grad=True)
    assert torch.autograd.gradcheck(r1, (x,))


def test_diff_augment_bad_input():
    x = torch.zeros(1, 3, 4, 4)
    with pytest.raises(ValueError, match="policy"):
        diff_augment(x, "color,zoom")
    with pytest.raises(TypeError, match="policy"):
        diff_augment(x, 3)
    with pytest.raises(ValueError, match="translation_ratio"):
        diff_augment(x, "translation", translation_ratio=2.0)
    with pytest.raises(ValueError, match="label"):
        diff_augment(x, label=torch.zeros(2, 4, 4, dtype=torch.long))
    assert torch.equal(diff_augment(x, ""), x)
