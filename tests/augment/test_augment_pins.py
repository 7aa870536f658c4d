"""Pins of the augmentation helpers (issue 23): argument checks by name, random flips replayed
from the documented draw, cutout against its formula written as a loop, on non-square images."""

from __future__ import annotations

import pytest
import torch

from ganblocks.augment import _checks as checks
from ganblocks.augment import cutout, random_hflip

# -- argument checks ----------------------------------------------------------------------------


def test_check_image_accepts_float_bchw_and_names_the_argument():
    x = torch.zeros(2, 3, 4, 5)
    assert checks.check_image(x) is x
    assert checks.check_image(x.double(), "real") is not None
    with pytest.raises(TypeError, match=r"real: expected a torch\.Tensor \[B, C, H, W\], got list"):
        checks.check_image([1.0], "real")
    with pytest.raises(
        TypeError, match=r"x: expected a floating-point tensor, got dtype torch\.int64"
    ):
        checks.check_image(torch.zeros(2, 3, 4, 5, dtype=torch.long))
    with pytest.raises(ValueError, match=r"x: expected shape \[B, C, H, W\], got \(3, 4, 5\)"):
        checks.check_image(torch.zeros(3, 4, 5))
    for shape in ((1, 1, 0, 3), (1, 1, 3, 0)):
        with pytest.raises(ValueError, match="x: expected a non-empty image"):
            checks.check_image(torch.zeros(shape))
    assert checks.check_image(torch.zeros(0, 1, 1, 1)).shape[0] == 0  # an empty batch is fine


def test_check_label_matches_the_image_shape():
    x = torch.zeros(2, 3, 4, 5)
    assert checks.check_label(None, x) is None
    label = torch.zeros(2, 4, 5, dtype=torch.int32)
    assert checks.check_label(label, x) is label
    assert checks.check_label(label.to(torch.uint8), x) is not None
    with pytest.raises(TypeError, match=r"label: expected an integer torch\.Tensor"):
        checks.check_label([[0]], x)
    for dtype in (torch.float32, torch.bool, torch.complex64):
        with pytest.raises(TypeError, match="label: expected an integer class map"):
            checks.check_label(torch.zeros(2, 4, 5, dtype=dtype), x)
    for shape in ((2, 5, 4), (1, 4, 5), (2, 4, 5, 1)):  # H/W swapped, batch, rank
        with pytest.raises(ValueError, match=r"label: expected shape \(2, 4, 5\)"):
            checks.check_label(torch.zeros(shape, dtype=torch.long), x)


def test_check_padding_and_label_fill():
    assert checks.check_padding("reflect") == "reflect"
    assert checks.check_padding("zeros") == "zeros"
    with pytest.raises(ValueError, match="padding: expected one of"):
        checks.check_padding("border")
    assert checks.check_label_fill(None, "reflect") is None
    assert checks.check_label_fill(255, "zeros") == 255
    assert checks.check_label_fill(0, "reflect") == 0
    with pytest.raises(ValueError, match=r"label_fill: None .* needs padding=.reflect."):
        checks.check_label_fill(None, "zeros")
    for bad in (True, 1.0, "0"):
        with pytest.raises(TypeError, match="label_fill: expected an int or None"):
            checks.check_label_fill(bad, "reflect")


def test_check_batch_matrix():
    m = torch.zeros(3, 4, 4)
    assert checks.check_batch_matrix(m, "color", 3, 4) is m
    with pytest.raises(TypeError, match=r"color: expected a floating-point tensor \[B, 4, 4\]"):
        checks.check_batch_matrix(m.long(), "color", 3, 4)
    with pytest.raises(TypeError, match="color"):
        checks.check_batch_matrix(m.tolist(), "color", 3, 4)
    for batch, size in ((2, 4), (3, 3)):
        with pytest.raises(ValueError, match=r"color: expected shape"):
            checks.check_batch_matrix(m, "color", batch, size)


# -- random flips -------------------------------------------------------------------------------


@pytest.mark.parametrize("p", [0.0, 0.3, 0.5, 1.0])
def test_random_hflip_replays_one_uniform_per_sample(p):
    """Sample ``i`` is mirrored (last axis, i.e. width) iff ``u_i < p`` with ``u = rand(B)``
    drawn from the generator; its label map is mirrored with it."""
    b = 16
    x = torch.randn(b, 2, 3, 5, generator=torch.Generator().manual_seed(1))
    label = torch.randint(0, 9, (b, 3, 5), generator=torch.Generator().manual_seed(2))
    y, lab = random_hflip(x, label=label, p=p, generator=torch.Generator().manual_seed(3))
    u = torch.rand(b, generator=torch.Generator().manual_seed(3))
    for i in range(b):
        flipped = bool(u[i] < p)
        torch.testing.assert_close(y[i], x[i].flip(-1) if flipped else x[i])
        assert torch.equal(lab[i], label[i].flip(-1) if flipped else label[i])
    # without a label: the same images
    torch.testing.assert_close(random_hflip(x, p=p, generator=torch.Generator().manual_seed(3)), y)


def test_random_hflip_default_probability_is_one_half():
    x = torch.arange(5.0).view(1, 1, 1, 5).expand(4000, 1, 1, 5)
    y = random_hflip(x, generator=torch.Generator().manual_seed(0))
    frac = float((y[:, 0, 0, 0] == 4.0).float().mean())
    assert abs(frac - 0.5) < 0.04


@pytest.mark.parametrize("p", [-0.1, 1.5])
def test_random_hflip_rejects_bad_probabilities(p):
    with pytest.raises(ValueError, match="p: expected a probability in"):
        random_hflip(torch.zeros(1, 1, 2, 2), p=p)


def test_random_hflip_checks_its_inputs():
    with pytest.raises(ValueError, match="label: expected shape"):
        random_hflip(torch.zeros(1, 1, 2, 3), label=torch.zeros(1, 3, 2, dtype=torch.long))
    with pytest.raises(TypeError, match="x: expected a floating-point"):
        random_hflip(torch.zeros(1, 1, 2, 3, dtype=torch.long))


# -- cutout -------------------------------------------------------------------------------------


def _cutout_by_definition(x, center, size):
    """Pixel (i, j) erased iff |(j + .5) / W - c_x| < s_x / 2 and |(i + .5) / H - c_y| < s_y / 2."""
    b, _, h, w = x.shape
    out = x.clone()
    erased = torch.zeros(b, h, w, dtype=torch.bool)
    for n in range(b):
        cx, cy = float(center[n, 0]), float(center[n, 1])
        sx, sy = float(size[n, 0]), float(size[n, 1])
        for i in range(h):
            for j in range(w):
                if abs((j + 0.5) / w - cx) < sx / 2 and abs((i + 0.5) / h - cy) < sy / 2:
                    out[n, :, i, j] = 0
                    erased[n, i, j] = True
    return out, erased


def test_cutout_matches_its_formula_on_non_square_images():
    gen = torch.Generator().manual_seed(4)
    x = torch.rand(3, 2, 7, 10, generator=gen, dtype=torch.float64) + 1.0
    center = torch.tensor([[0.2, 0.7], [0.5, 0.5], [0.9, 0.1]], dtype=torch.float64)
    size = torch.tensor([[0.5, 0.3], [0.25, 0.8], [0.6, 0.6]], dtype=torch.float64)
    label = torch.randint(1, 5, (3, 7, 10), generator=gen)
    y, lab = cutout(x, center, size, label=label, label_fill=255)
    expected, erased = _cutout_by_definition(x, center, size)
    assert y.dtype == torch.float64
    torch.testing.assert_close(y, expected)
    assert erased.any() and not erased.all()
    assert torch.equal(lab, torch.where(erased, torch.full_like(label, 255), label))
    # label_fill=None leaves the label alone; the default fill is 0
    _, same = cutout(x, center, size, label=label, label_fill=None)
    assert torch.equal(same, label)
    _, zero = cutout(x, center, size, label=label)
    assert torch.equal(zero, torch.where(erased, torch.zeros_like(label), label))


def test_cutout_size_forms_and_the_strict_border():
    x = torch.ones(2, 1, 4, 6)
    center = torch.tensor([[0.5, 0.5], [0.25, 0.75]])
    per_sample = torch.tensor([0.5, 0.25])
    y = cutout(x, center, per_sample)  # [B]: the same fraction on both axes
    expected, _ = _cutout_by_definition(x, center, per_sample.view(2, 1).expand(2, 2))
    torch.testing.assert_close(y, expected)
    y = cutout(x, center, 0.5)  # a number: every sample, both axes
    expected, _ = _cutout_by_definition(x, center, torch.full((2, 2), 0.5))
    torch.testing.assert_close(y, expected)
    # a pixel centre exactly at distance s / 2 is kept (strict inequality)
    two = torch.ones(1, 1, 1, 2)  # pixel centres 0.25 and 0.75
    torch.testing.assert_close(cutout(two, torch.tensor([[0.5, 0.5]]), 0.5), two)
    with pytest.raises(ValueError, match=r"size: expected a number, \[B\] or \[B, 2\]"):
        cutout(x, center, torch.ones(3))
    with pytest.raises(ValueError, match=r"center: expected a number, \[B\] or \[B, 2\]"):
        cutout(x, torch.ones(2, 3), 0.5)
    with pytest.raises(TypeError, match="label_fill: expected an int or None"):
        cutout(x, center, 0.5, label=torch.zeros(2, 4, 6, dtype=torch.long), label_fill=True)
