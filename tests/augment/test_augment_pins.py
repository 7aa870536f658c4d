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


def test_cutout_of_half_precision_images_computes_in_float32():
    """The rectangle test runs in (at least) float32: in float16, pixel centres of a 1500-wide
    image round onto each other and the erased columns would shift."""
    x = torch.ones(1, 1, 1, 1500, dtype=torch.float16)
    center, size = torch.tensor([[0.3337, 0.5]]), torch.tensor([[0.2001, 1.0]])
    y = cutout(x, center, size)
    assert y.dtype == torch.float16
    expected, _ = _cutout_by_definition(x.float(), center, size)
    assert torch.equal(y.float(), expected)


# -- geometric matrices -------------------------------------------------------------------------


def test_geometric_builders_give_the_documented_matrices():
    import math

    from ganblocks.augment import identity2d, rotate2d, rotate90, scale2d, translate2d

    t = torch.tensor
    assert torch.equal(identity2d(2), torch.eye(3).expand(2, 3, 3))
    assert torch.equal(
        translate2d(t([2.0, -1.0]), 3.0),
        t([[[1.0, 0, 2], [0, 1, 3], [0, 0, 1]], [[1.0, 0, -1], [0, 1, 3], [0, 0, 1]]]),
    )
    assert torch.equal(scale2d(2.0, t([0.5])), t([[[2.0, 0, 0], [0, 0.5, 0], [0, 0, 1]]]))
    theta = t([0.3, -1.2], dtype=torch.float64)
    c, s = theta.cos(), theta.sin()
    for i in range(2):
        expected = t([[c[i], -s[i], 0], [s[i], c[i], 0], [0, 0, 1]], dtype=torch.float64)
        torch.testing.assert_close(rotate2d(theta)[i], expected)
    quarter = {
        0: [[1, 0], [0, 1]],
        1: [[0, -1], [1, 0]],
        2: [[-1, 0], [0, -1]],
        3: [[0, 1], [-1, 0]],
    }
    ks = t([0, 1, 2, 3, -1, 4, 5, 7])
    got = rotate90(ks)
    for k, m in zip(ks.tolist(), got):
        assert m[:2, :2].tolist() == quarter[k % 4], k
        assert m[2].tolist() == [0.0, 0.0, 1.0] and m[:2, 2].tolist() == [0.0, 0.0]
        torch.testing.assert_close(m, rotate2d(k * math.pi / 2)[0], atol=1e-6, rtol=0)


def test_geometric_parameter_dtypes_and_shapes():
    from ganblocks.augment import scale2d, translate2d

    assert scale2d(torch.tensor([2, 3]), torch.tensor([1, 1])).dtype == torch.float32
    m = translate2d(2.0, torch.tensor([1.0, 2.0], dtype=torch.float64))
    assert m.dtype == torch.float64 and m.shape == (2, 3, 3)
    assert m[:, 0, 2].tolist() == [2.0, 2.0]
    with pytest.raises(ValueError, match=r"parameters: expected scalars or \[B\] tensors"):
        translate2d(torch.zeros(2, 1), 0.0)


def test_rotate90_as_a_sampling_matrix_turns_the_picture_like_rot90():
    from ganblocks.augment import rotate90
    from ganblocks.augment.sampling import warp_affine

    x = torch.arange(25.0).view(1, 1, 5, 5)
    for k in range(4):
        y = warp_affine(x, rotate90(torch.tensor([k])), padding="zeros")
        torch.testing.assert_close(y, torch.rot90(x, k, dims=(2, 3)))


# -- sampling -----------------------------------------------------------------------------------


def test_affine_coords_rejects_what_is_not_a_batch_of_3x3_matrices():
    from ganblocks.augment.sampling import affine_coords

    for bad in ([[1.0, 0, 0], [0, 1, 0], [0, 0, 1]], torch.zeros(3, 3), torch.zeros(1, 2, 3)):
        with pytest.raises(
            ValueError, match=r"matrix: expected a floating-point tensor \[B, 3, 3\]"
        ):
            affine_coords(bad, 2, 2)


def test_nearest_sample_fills_reads_below_and_right_of_the_image():
    from ganblocks.augment.sampling import nearest_sample

    label = torch.tensor([[[1, 2], [3, 4]]])
    # (x, y) = (0, 1.9) rounds to row 2 == H (outside), (1.9, 0) to column 2 == W (outside)
    coords = torch.tensor([[[[0.0, 1.9], [1.9, 0.0], [1.0, 1.4], [-0.6, 0.0]]]])
    assert nearest_sample(label, coords, label_fill=9).tolist() == [[[9, 9, 4, 9]]]


# -- ADA ----------------------------------------------------------------------------------------


def _only(**strengths):

    names = ["xflip", "rotate90", "xint", "scale", "rotate", "aniso", "xfrac", "brightness"]
    names += ["contrast", "lumaflip", "hue", "saturation"]
    kwargs = {n: 0.0 for n in names}
    kwargs.update(strengths)
    return kwargs


def test_ada_draws_for_a_batch_of_one():
    from ganblocks.augment import AdaptiveAugment

    draw = AdaptiveAugment(p=1.0).sample(1, 8, 6, generator=torch.Generator().manual_seed(0))
    assert draw.geometric.shape == (1, 3, 3) and draw.color.shape == (1, 4, 4)


def test_ada_rotation_with_strength_above_one_saturates_instead_of_nan():
    from ganblocks.augment import AdaptiveAugment

    aug = AdaptiveAugment(p=0.75, **_only(rotate=2.0))  # strength * p = 1.5 > 1
    g = aug.sample(256, 8, 8, generator=torch.Generator().manual_seed(1)).geometric
    assert torch.isfinite(g).all()
    angle = torch.atan2(g[:, 1, 0], g[:, 0, 0])
    assert float((angle.abs() > 1e-6).float().mean()) > 0.99  # p_rot = 1: always rotated


def test_ada_both_rotations_are_symmetric_within_rotate_max():
    """Each rotation is uniform in [-rotate_max·π, rotate_max·π): with rotate_max = 0.25 the
    product of the two stays within ±π/2 and is symmetric about 0."""
    import math

    from ganblocks.augment import AdaptiveAugment

    aug = AdaptiveAugment(p=1.0, rotate_max=0.25, **_only(rotate=1.0))
    g = aug.sample(4000, 8, 8, generator=torch.Generator().manual_seed(2)).geometric
    angle = torch.atan2(g[:, 1, 0], g[:, 0, 0])
    assert float(angle.abs().max()) <= math.pi / 2 + 1e-5
    assert float(angle.max()) > 1.2 and float(angle.min()) < -1.2
    assert abs(float(angle.mean())) < 0.05


def test_ada_update_sums_its_statistics_over_ranks(monkeypatch):
    """With a process group the sign sum and count are all-reduced before p moves; a stand-in
    all_reduce that doubles them (a second rank with the same logits) doubles the step."""
    import torch.distributed as dist

    from ganblocks.augment import AdaptiveAugment

    monkeypatch.setattr(dist, "is_available", lambda: True)
    monkeypatch.setattr(dist, "is_initialized", lambda: True)
    monkeypatch.setattr(dist, "all_reduce", lambda t, *a, **k: t.mul_(2))
    synced = AdaptiveAugment(p=0.0, target=0.6, kimg=0.5, interval=1)
    synced.update(torch.ones(4))
    assert synced.probability == pytest.approx(2 * 4 / 500.0)
    local = AdaptiveAugment(p=0.0, target=0.6, kimg=0.5, interval=1, sync=False)
    local.update(torch.ones(4))
    assert local.probability == pytest.approx(4 / 500.0)


# -- DiffAugment --------------------------------------------------------------------------------


def test_diff_augment_policy_names_may_have_spaces():
    from ganblocks.augment import diff_augment

    x = torch.randn(2, 3, 8, 8, generator=torch.Generator().manual_seed(0))
    a = diff_augment(x, "color, translation", generator=torch.Generator().manual_seed(1))
    b = diff_augment(x, "color,translation", generator=torch.Generator().manual_seed(1))
    torch.testing.assert_close(a, b)


def test_diff_augment_label_fill_default_and_type():
    import inspect

    from ganblocks.augment import diff_augment

    assert inspect.signature(diff_augment).parameters["label_fill"].default == 0
    x, label = torch.zeros(8, 1, 8, 8), torch.full((8, 8, 8), 5)
    _, lab = diff_augment(x, "translation", label=label, generator=torch.Generator().manual_seed(3))
    assert set(lab.unique().tolist()) == {0, 5}
    for bad in (1.5, True, None):
        with pytest.raises(TypeError, match="label_fill: expected an int"):
            diff_augment(x, "translation", label=label, label_fill=bad)


def test_diff_augment_translation_range_is_per_axis():
    """On a 16 x 4 image with ratio 0.25 the shifts are integers up to 4 rows and 1 column."""
    from ganblocks.augment import diff_augment

    b = 64
    rows = torch.arange(16.0).view(16, 1) * 10 + torch.arange(4.0).view(1, 4)
    x = rows.expand(b, 1, 16, 4).contiguous() + 1000.0  # + 1000: nothing reads as zero padding
    y = diff_augment(
        x, "translation", translation_ratio=0.25, generator=torch.Generator().manual_seed(4)
    )
    v = y[:, 0, 8, 2] - 1000.0  # what the centre pixel reads
    dy, dx = (v // 10 - 8).abs(), (v % 10 - 2).abs()
    assert int(dy.max()) == 4 and int(dx.max()) == 1


def test_rotate90_rounds_near_integer_turns():
    from ganblocks.augment.geometric import rotate90

    # Quarter-turn counts from float arithmetic land a hair off the integer, either side.
    near = torch.tensor([1 - 1e-9, 2 + 1e-9, 3 - 1e-9, -1 - 1e-9, 4 - 1e-9], dtype=torch.float64)
    exact = torch.tensor([1.0, 2.0, 3.0, -1.0, 4.0], dtype=torch.float64)
    assert torch.equal(rotate90(near), rotate90(exact))
    # A quarter turn maps the x axis onto the y axis.
    assert rotate90(near)[0, :2, 0].tolist() == [0.0, 1.0]


def test_ada_ranges_default_to_the_papers_values():
    # Karras et al. 2020 (StyleGAN2-ADA), appendix: the ranges of the "bgc" pipeline's
    # parameters (translation 0.125 of the image, log2 scale sd 0.2, any rotation, log2
    # anisotropy sd 0.2, fractional translation sd 0.125, brightness sd 0.2, log2 contrast sd 0.5,
    # any hue rotation, log2 saturation sd 1).
    from ganblocks.augment import AdaptiveAugment

    assert AdaptiveAugment().ranges == {
        "xint_max": 0.125, "scale_std": 0.2, "rotate_max": 1.0, "aniso_std": 0.2,
        "xfrac_std": 0.125, "brightness_std": 0.2, "contrast_std": 0.5, "hue_max": 1.0,
        "saturation_std": 1.0, "cutout_size": 0.5,
    }


def test_diff_augment_translation_covers_the_rounded_shift_range(monkeypatch):
    # DiffAugment (Zhao et al. 2020): integer shifts uniform in [-s, s] with s = the ratio of the
    # side rounded half up: 12 x 0.125 = 1.5 -> 2 pixels across, 20 x 0.125 = 2.5 -> 3 down.
    from ganblocks.augment import diffaugment as da

    seen = []
    real = da.translate2d

    def record(tx, ty):
        seen.append((tx.clone(), ty.clone()))
        return real(tx, ty)

    monkeypatch.setattr(da, "translate2d", record)
    gen = torch.Generator().manual_seed(0)
    x = torch.randn(200, 1, 20, 12)
    da.diff_augment(x, "translation", translation_ratio=0.125, generator=gen)
    (tx, ty), = seen
    assert set(tx.tolist()) == {-2.0, -1.0, 0.0, 1.0, 2.0}
    assert set(ty.tolist()) == {-3.0, -2.0, -1.0, 0.0, 1.0, 2.0, 3.0}


def test_diff_augment_takes_any_cutout_ratio_up_to_one():
    from ganblocks.augment import diff_augment

    x = torch.randn(2, 3, 8, 8)
    assert diff_augment(x, "cutout", cutout_ratio=0.75).shape == x.shape
    assert diff_augment(x, "cutout", cutout_ratio=1.0).shape == x.shape
    with pytest.raises(ValueError, match="cutout_ratio"):
        diff_augment(x, "cutout", cutout_ratio=1.5)


@pytest.mark.parametrize("dtype", [torch.float16, torch.bfloat16])
def test_diff_augment_draws_do_not_depend_on_the_image_precision(dtype):
    """The draws are made and used in at least float32: a half-precision batch is shifted and cut
    exactly like its float32 copy with the same generator (draws rounded to 8 or 11 bits would
    move many shifts by a pixel and could reach s + 1)."""
    from ganblocks.augment import diff_augment

    b, h, w = 256, 8, 32
    pos = torch.arange(h * w).view(1, h, w)
    x = (pos % 97 + 1).to(torch.float32).expand(b, 1, h, w).contiguous()  # exact in both dtypes
    label = pos.expand(b, h, w).contiguous() + 1  # + 1: the fill 0 marks shifted-in pixels
    kw = dict(translation_ratio=0.5, cutout_ratio=0.25)
    y32, l32 = diff_augment(x, "translation,cutout", label=label,
                            generator=torch.Generator().manual_seed(5), **kw)  # fmt: skip
    y16, l16 = diff_augment(x.to(dtype), "translation,cutout", label=label,
                            generator=torch.Generator().manual_seed(5), **kw)  # fmt: skip
    assert y16.dtype == dtype
    assert torch.equal(l16, l32)
    assert torch.equal(y16.float(), y32)
    # Every pixel kept reads from its own image at a shift within [-16, 16] x [-4, 4].
    kept = l32 > 0
    src = l32[kept] - 1
    dst = pos.expand(b, h, w)[kept]
    dy, dx = dst // w - src // w, dst % w - src % w
    assert int(dx.abs().max()) <= 16 and int(dy.abs().max()) <= 4


def test_diff_augment_skips_blank_policy_entries():
    """Entries are stripped before the blank ones are dropped: a trailing ", " or a list with
    padded names means the same policy as the clean spelling."""
    from ganblocks.augment import diff_augment

    x = torch.randn(3, 3, 8, 8, generator=torch.Generator().manual_seed(0))

    def run(policy):
        return diff_augment(x, policy, generator=torch.Generator().manual_seed(1))

    clean = run("color,translation")
    for spelling in ("color, ,translation", "color,translation, ", [" color", "translation "]):
        torch.testing.assert_close(run(spelling), clean, rtol=0, atol=0)
    with pytest.raises(ValueError, match="policy"):
        run(["color", " zoom "])


def test_diff_augment_checks_the_images():
    from ganblocks.augment import diff_augment

    with pytest.raises(TypeError, match=r"x: expected a torch\.Tensor"):
        diff_augment([[0.0]], "")
    with pytest.raises(TypeError, match="x: expected a floating-point tensor"):
        diff_augment(torch.zeros(1, 3, 4, 4, dtype=torch.uint8), "")
    with pytest.raises(ValueError, match=r"x: expected shape \[B, C, H, W\]"):
        diff_augment(torch.zeros(3, 4, 4), "")
    with pytest.raises(ValueError, match="x: expected a non-empty image"):
        diff_augment(torch.zeros(1, 3, 0, 4), "")


@pytest.mark.parametrize("std", [1.0, 0.5])
def test_ada_saturation_factors_are_log_normal(std):
    """ADA scales the chroma by 2 ** N(0, std): the factor, read off the colour matrix as the gain
    of a vector orthogonal to the grey axis, is positive with log2 mean 0 and sd ``std``."""
    from ganblocks.augment import AdaptiveAugment

    aug = AdaptiveAugment(p=1.0, saturation_std=std, **_only(saturation=1.0))
    c = aug.sample(4000, 8, 8, generator=torch.Generator().manual_seed(6)).color
    chroma = torch.tensor([1.0, -1.0, 0.0, 0.0])
    out = c @ chroma
    factor = out[:, 0]
    torch.testing.assert_close(out, factor[:, None] * chroma)  # an eigenvector of every matrix
    assert float(factor.min()) > 0
    log2 = torch.log2(factor)
    assert abs(float(log2.mean())) < 0.06 * std
    assert float(log2.std()) == pytest.approx(std, rel=0.05)


def test_diff_augment_policy_parsing_and_its_messages():
    from ganblocks.augment import POLICIES, diff_augment
    from ganblocks.augment.diffaugment import _parse_policy

    assert POLICIES == ("color", "translation", "cutout")
    assert _parse_policy("cutout, color") == ["cutout", "color"]
    assert _parse_policy(("translation", " cutout")) == ["translation", "cutout"]
    assert _parse_policy("") == [] and _parse_policy([]) == [] and _parse_policy(" , ") == []
    for bad in (3, None, ["color", 3], {"color"}, b"color"):
        with pytest.raises(TypeError, match=r"^policy: expected a comma-separated string or a "
                                            r"list of names, got "):
            _parse_policy(bad)
    with pytest.raises(ValueError, match=r"^policy: unknown augmentation\(s\) \['zoom', 'Color'\]"
                                         r"; expected names from \('color', 'translation', "
                                         r"'cutout'\)$"):
        _parse_policy("color,zoom,Color")
    x = torch.randn(2, 3, 4, 4)
    assert diff_augment(x, "") is x and diff_augment(x, []) is x
    label = torch.zeros(2, 4, 4, dtype=torch.long)
    same_x, same_label = diff_augment(x, " ", label=label)
    assert same_x is x and same_label is label


def test_diff_augment_default_policy_and_order_of_application():
    from ganblocks.augment import diff_augment

    x = torch.randn(4, 3, 8, 8, generator=torch.Generator().manual_seed(0))

    def run(*policy):
        return diff_augment(x, *policy, generator=torch.Generator().manual_seed(2))

    assert torch.equal(run(), run("color,translation,cutout"))
    assert not torch.equal(run(), run("color,translation"))
    assert not torch.equal(run("color,translation"), run("translation,color"))
    assert not torch.equal(run("translation"), x)


def test_diff_augment_ratio_bounds_and_messages():
    from ganblocks.augment import diff_augment

    x = torch.randn(2, 3, 8, 8)
    for ratio in (0.0, 1.0):
        assert diff_augment(x, "translation", translation_ratio=ratio).shape == x.shape
    assert torch.equal(diff_augment(x, "translation", translation_ratio=0.0), x)
    cut = diff_augment(x, "cutout", cutout_ratio=0.0)
    assert torch.equal(cut, x)
    for bad in (-0.01, 1.01):
        with pytest.raises(ValueError, match=rf"^translation_ratio: expected a value in \[0, 1\], "
                                             rf"got {bad}$"):
            diff_augment(x, "translation", translation_ratio=bad)
        with pytest.raises(ValueError, match=rf"^cutout_ratio: expected a value in \[0, 1\], "
                                             rf"got {bad}$"):
            diff_augment(x, "cutout", cutout_ratio=bad)
    with pytest.raises(TypeError, match=r"^label_fill: expected an int, got float$"):
        diff_augment(x, "cutout", label_fill=0.0)


def test_diff_augment_translation_and_cutout_draws_written_out():
    """translation: one [B, 2] uniform draw, tx from column 0 (along the width), ty from column
    1; cutout: one [B, 2] uniform draw of the centres (x, y) - with the float64 images taking
    float64 copies of float32 draws."""
    from ganblocks.augment import cutout, diff_augment
    from ganblocks.augment.geometric import translate2d
    from ganblocks.augment.sampling import warp_affine

    x = torch.randn(5, 2, 12, 16, generator=torch.Generator().manual_seed(3), dtype=torch.float64)
    label = torch.randint(1, 5, (5, 12, 16), generator=torch.Generator().manual_seed(4))
    y, lab = diff_augment(x, "translation,cutout", label=label, label_fill=7,
                          translation_ratio=0.25, cutout_ratio=0.5,
                          generator=torch.Generator().manual_seed(1))
    g = torch.Generator().manual_seed(1)
    shift = torch.rand(5, 2, generator=g).double()
    tx = torch.floor(shift[:, 0] * 9) - 4  # s = int(16 * 0.25 + 0.5) = 4
    ty = torch.floor(shift[:, 1] * 7) - 3  # s = int(12 * 0.25 + 0.5) = 3
    ex, el = warp_affine(x, translate2d(tx, ty), label=label, padding="zeros", label_fill=7)
    ex, el = cutout(ex, torch.rand(5, 2, generator=g).double(), 0.5, label=el, label_fill=7)
    assert y.dtype == torch.float64
    assert torch.equal(y, ex) and torch.equal(lab, el)


@pytest.mark.parametrize("dtype", [torch.float16, torch.bfloat16])
def test_diff_augment_color_of_half_precision_images_stays_in_their_dtype(dtype):
    """Colour draws are made in float32 and cast to the image's dtype before use: a half-precision
    batch stays half precision, with the formula evaluated in that precision."""
    from ganblocks.augment import diff_augment

    x = torch.randn(3, 3, 4, 5, generator=torch.Generator().manual_seed(0)).to(dtype)
    y = diff_augment(x, "color", generator=torch.Generator().manual_seed(2))
    assert y.dtype == dtype
    g = torch.Generator().manual_seed(2)
    u1, u2, u3 = (torch.rand(3, 1, 1, 1, generator=g).to(dtype) for _ in range(3))
    ref = x + (u1 - 0.5)
    m = ref.mean(dim=1, keepdim=True)
    ref = (ref - m) * (u2 * 2) + m
    m = ref.mean(dim=(1, 2, 3), keepdim=True)
    ref = (ref - m) * (u3 + 0.5) + m
    assert torch.equal(y, ref)
