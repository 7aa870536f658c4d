"""ADA's draws measured one transform at a time, on non-square (2:1) images.

With a fixed ``p`` (``target=None``) and every strength but one at 0, the fraction of a large batch
of draws that the transform changes is compared with its analytic probability (ADA: ``p`` times
the strength, rotations ``1 - sqrt(1 - p)`` twice, and the chance that the drawn value is itself
the neutral one), and the drawn values with their documented ranges, per axis. Deterministic
(seeded generators); tolerances are 4.5 binomial standard errors.
"""

from __future__ import annotations

import math

import pytest
import torch

from ganblocks.augment import AdaptiveAugment

STRENGTHS = ("xflip", "rotate90", "xint", "scale", "rotate", "aniso", "xfrac",
             "brightness", "contrast", "lumaflip", "hue", "saturation", "cutout")
P = 0.4
B = 6000
H, W = 16, 32  # 2:1, like Cityscapes
EYE3 = torch.eye(3)
EYE4 = torch.eye(4)


def only(name: str, **kw) -> AdaptiveAugment:
    """Every strength 0 but ``name``'s, left at its default (ADA's bgc: 1), cutout's set to 1."""
    strengths = {k: 0.0 for k in STRENGTHS if k != name}
    if name == "cutout":
        strengths["cutout"] = 1.0
    return AdaptiveAugment(p=P, target=None, **strengths, **kw)


def draw(name: str, seed: int = 0, **kw):
    return only(name, **kw).sample(B, H, W, generator=torch.Generator().manual_seed(seed))


def assert_fraction(mask: torch.Tensor, expected: float):
    se = math.sqrt(expected * (1 - expected) / mask.numel())
    assert mask.double().mean().item() == pytest.approx(expected, abs=4.5 * se)


def changed(m: torch.Tensor, eye: torch.Tensor) -> torch.Tensor:
    return (m - eye).abs().flatten(1).amax(dim=1) > 1e-6


def test_only_the_enabled_group_is_drawn():
    d = draw("xflip")
    assert d.color is None and d.cutout_size is None and d.geometric.shape == (B, 3, 3)
    d = draw("hue")
    assert d.geometric is None and d.cutout_size is None and d.color.shape == (B, 4, 4)


def test_xflip_probability_and_value():
    g = draw("xflip").geometric
    flipped = g[:, 0, 0] == -1
    assert_fraction(flipped, P * 0.5)  # applied with p, then a fair coin
    torch.testing.assert_close(g[~flipped], EYE3.expand_as(g[~flipped]))
    torch.testing.assert_close(g[flipped, 1:, 1:], EYE3[1:, 1:].expand(int(flipped.sum()), 2, 2))


def test_rotate90_probability():
    g = draw("rotate90").geometric
    assert_fraction(changed(g, EYE3), P * 0.75)  # k in {1, 2, 3} of 4
    # only quarter turns: entries in {-1, 0, 1}
    assert set(g[:, :2, :2].round().unique().tolist()) <= {-1.0, 0.0, 1.0}
    torch.testing.assert_close(g[:, :2, :2], g[:, :2, :2].round())


def test_integer_translation_ranges_per_axis():
    """Up to xint_max = 0.125 of the size: ±4 pixels along x (W = 32), ±2 along y (H = 16)."""
    g = draw("xint").geometric
    tx, ty = g[:, 0, 2], g[:, 1, 2]
    torch.testing.assert_close(tx, tx.round())
    torch.testing.assert_close(ty, ty.round())
    assert tx.abs().max().item() == 4 and ty.abs().max().item() == 2
    # round(u·4) == 0 for |u| < 1/8, round(u·2) == 0 for |u| < 1/4 (u uniform in [-1, 1])
    assert_fraction((tx != 0) | (ty != 0), P * (1 - 0.125 * 0.25))
    assert_fraction(tx != 0, P * 0.875)
    assert_fraction(ty != 0, P * 0.75)
    torch.testing.assert_close(g[:, :2, :2], EYE3[:2, :2].expand(B, 2, 2))


def test_integer_translation_moves_labels_by_whole_pixels_on_2_to_1_maps():
    """Labels encode their own position; the shift of every surviving pixel is one whole-pixel
    vector per sample, within ±4 (x) and ±2 (y)."""
    aug = only("xint", padding="zeros", label_fill=0)
    aug.p.fill_(1.0)
    n = 64
    rows = torch.arange(H).view(H, 1).expand(H, W)
    cols = torch.arange(W).view(1, W).expand(H, W)
    label = (1 + rows * W + cols).expand(n, H, W).contiguous()
    x = torch.randn(n, 3, H, W, generator=torch.Generator().manual_seed(1))
    _, out = aug(x, label, generator=torch.Generator().manual_seed(2))
    shifts = set()
    for i in range(n):
        keep = out[i] != 0
        src = out[i][keep] - 1
        dy = rows[keep] - src // W
        dx = cols[keep] - src % W
        assert dy.unique().numel() == 1 and dx.unique().numel() == 1
        shifts.add((int(dx[0]), int(dy[0])))
    assert max(abs(dx) for dx, _ in shifts) == 4
    assert max(abs(dy) for _, dy in shifts) == 2


def test_isotropic_scale():
    g = draw("scale").geometric
    applied = changed(g, EYE3)
    assert_fraction(applied, P)
    torch.testing.assert_close(g[:, 0, 0], g[:, 1, 1])
    log2s = torch.log2(g[applied, 0, 0])
    assert log2s.std().item() == pytest.approx(0.2, rel=0.1)
    assert log2s.mean().abs().item() < 0.02


def test_rotation_probability_composes_to_p():
    """Two rotations, each with probability 1 - sqrt(1 - p): some rotation with probability p."""
    g = draw("rotate").geometric
    assert_fraction(changed(g, EYE3), P)
    torch.testing.assert_close(torch.linalg.det(g[:, :2, :2]), torch.ones(B))
    # each angle uniform in [-π, π]: cos θ of the one-rotation draws averages 0
    angle = torch.atan2(g[:, 1, 0], g[:, 0, 0])
    assert angle.abs().max().item() > 3.0


def test_anisotropic_scale():
    g = draw("aniso").geometric
    applied = changed(g, EYE3)
    assert_fraction(applied, P)
    torch.testing.assert_close(g[:, 0, 0] * g[:, 1, 1], torch.ones(B))
    assert torch.log2(g[applied, 0, 0]).std().item() == pytest.approx(0.2, rel=0.1)


def test_fractional_translation_std_per_axis():
    """N(0, 0.125²) of the size: std 4 pixels along x (W = 32), 2 along y (H = 16)."""
    g = draw("xfrac").geometric
    applied = changed(g, EYE3)
    assert_fraction(applied, P)
    assert g[applied, 0, 2].std().item() == pytest.approx(0.125 * W, rel=0.1)
    assert g[applied, 1, 2].std().item() == pytest.approx(0.125 * H, rel=0.1)


@pytest.mark.parametrize(
    ("name", "fraction"),
    [("brightness", P), ("contrast", P), ("lumaflip", P * 0.5), ("hue", P), ("saturation", P)],
)
def test_colour_probabilities(name, fraction):
    c = draw(name).color
    assert_fraction(changed(c, EYE4), fraction)


def test_brightness_and_contrast_values():
    c = draw("brightness").color
    applied = changed(c, EYE4)
    shift = c[applied, 0, 3]
    torch.testing.assert_close(c[applied, 1, 3], shift)  # the same offset on every channel
    assert shift.std().item() == pytest.approx(0.2, rel=0.1)
    c = draw("contrast").color
    applied = changed(c, EYE4)
    assert torch.log2(c[applied, 0, 0]).std().item() == pytest.approx(0.5, rel=0.1)


def test_cutout_probability_and_size():
    d = draw("cutout")
    on = d.cutout_size[:, 0] > 0
    assert_fraction(on, P)
    torch.testing.assert_close(d.cutout_size[on], torch.full((int(on.sum()), 2), 0.5))
    assert d.cutout_center.min() >= 0 and d.cutout_center.max() <= 1


def test_p_adapts_with_the_documented_defaults():
    """Defaults: target 0.6, every 4 calls, p moves by n / (1000 · 500) with n the images seen."""
    aug = AdaptiveAugment()
    assert aug.probability == 0.0
    for _ in range(3):
        aug.update(torch.ones(8))  # r_t = 1 > 0.6
        assert aug.probability == 0.0
    aug.update(torch.ones(8))
    assert aug.probability == pytest.approx(32 / 500_000)
    for _ in range(4):
        aug.update(torch.tensor([1.0, 1.0, 1.0, -1.0, -1.0]))  # r_t = 0.2 < 0.6
    assert aug.probability == pytest.approx(32 / 500_000 - 20 / 500_000)
    for _ in range(4):
        aug.update(-torch.ones(100))
    assert aug.probability == 0.0  # clamped


def test_cutout_is_off_by_default():
    aug = AdaptiveAugment(p=1.0, target=None)
    assert aug.sample(4, H, W).cutout_size is None


@pytest.mark.parametrize(
    ("name", "nonneutral"),
    [("xflip", 0.5), ("rotate90", 0.75), ("xint", 1 - 0.125 * 0.25), ("scale", 1.0),
     ("rotate", 1.0), ("aniso", 1.0), ("xfrac", 1.0), ("brightness", 1.0), ("contrast", 1.0),
     ("lumaflip", 0.5), ("hue", 1.0), ("saturation", 1.0), ("cutout", 1.0)],
)
def test_strength_multiplies_the_probability(name, nonneutral):
    """Strength 0.5: each transform applies with probability 0.5·p (rotations: two draws of
    1 - sqrt(1 - 0.5·p), so 0.5·p together)."""
    strengths = {k: 0.0 for k in STRENGTHS}
    strengths[name] = 0.5
    d = AdaptiveAugment(p=P, target=None, **strengths).sample(
        B, H, W, generator=torch.Generator().manual_seed(11)
    )
    if name == "cutout":
        applied = d.cutout_size[:, 0] > 0
    elif d.geometric is not None:
        applied = changed(d.geometric, EYE3)
    else:
        applied = changed(d.color, EYE4)
    assert_fraction(applied, 0.5 * P * nonneutral)


def test_both_rotations_span_the_full_circle():
    """Composite angle of the rotated draws: uniform on the circle when each of the two draws is
    uniform in [-π, π] (mean cosine 0); a narrow first draw would pull it towards 1."""
    g = draw("rotate", seed=12).geometric
    applied = changed(g, EYE3)
    angle = torch.atan2(g[applied, 1, 0], g[applied, 0, 0])
    assert angle.cos().mean().abs().item() < 0.06
    assert angle.sin().mean().abs().item() < 0.06


def test_hue_angle_spans_the_full_circle():
    """A rotation by θ about the luma axis v = (1, 1, 1)/√3 has trace 1 + 2 cos θ and
    M[2, 1] - M[1, 2] = 2 sin θ / √3; hue_max = 1 makes θ uniform in [-π, π]."""
    c = draw("hue", seed=13).color
    m = c[changed(c, EYE4), :3, :3]
    cos = (m.diagonal(dim1=1, dim2=2).sum(dim=1) - 1) / 2
    sin = (m[:, 2, 1] - m[:, 1, 2]) * math.sqrt(3) / 2
    torch.testing.assert_close(cos.square() + sin.square(), torch.ones_like(cos))
    assert cos.mean().abs().item() < 0.06 and sin.mean().abs().item() < 0.06


def test_fractional_translation_axes_are_independent():
    g = draw("xfrac", seed=14).geometric
    applied = changed(g, EYE3)
    t = torch.stack([g[applied, 0, 2] / W, g[applied, 1, 2] / H])
    assert torch.corrcoef(t)[0, 1].abs().item() < 0.1


def test_ada_forward_checks_its_images_by_name():
    with pytest.raises(ValueError, match=r"x: expected shape \[B, C, H, W\]"):
        AdaptiveAugment(p=0.5)(torch.randn(3, 8, 8))
    with pytest.raises(TypeError, match="x: expected a floating-point"):
        AdaptiveAugment(p=0.5)(torch.zeros(1, 3, 8, 8, dtype=torch.long))


def test_ada_apply_checks_its_images_by_name():
    aug = AdaptiveAugment(p=1.0, target=None)
    draw = aug.sample(2, 8, 8, generator=torch.Generator().manual_seed(0))
    with pytest.raises(TypeError, match="x: expected a floating-point"):
        aug.apply(torch.zeros(2, 3, 8, 8, dtype=torch.long), draw)
    with pytest.raises(TypeError, match=r"x: expected a torch\.Tensor"):
        aug.apply([[0.0]], draw)
