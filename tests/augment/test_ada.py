"""AdaptiveAugment: identity at p=0, label alignment, per-sample probabilities, p adaptation,
state_dict, and R1 through the augmentation against finite differences."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F
from augment.helpers_aug import coordinate_batch, label_from_coordinates
from testutils import requires_cuda

from ganblocks.augment import AdaptiveAugment
from ganblocks.losses import r1_penalty

GEOMETRY_ONLY = dict(brightness=0, contrast=0, lumaflip=0, hue=0, saturation=0)
COLOR_ONLY = dict(xflip=0, rotate90=0, xint=0, scale=0, rotate=0, aniso=0, xfrac=0)


def _gen(seed: int) -> torch.Generator:
    return torch.Generator().manual_seed(seed)


def test_p_zero_is_exact_identity():
    x = torch.randn(4, 3, 10, 12, generator=_gen(0))
    label = torch.randint(0, 6, (4, 10, 12), generator=_gen(1))
    y, lab = AdaptiveAugment(p=0.0, cutout=1.0)(x, label, generator=_gen(2))
    assert torch.equal(y, x) and torch.equal(lab, label)


@pytest.mark.parametrize("label_fill", [None, 0])
@pytest.mark.parametrize("seed", [0, 1, 2])
def test_geometric_labels_stay_aligned(label_fill, seed):
    """Coordinate-encoded image: each output pixel's colour says where it was read from."""
    b, h, w = 8, 16, 16
    image, label = coordinate_batch(b, h, w)
    aug = AdaptiveAugment(p=1.0, label_fill=label_fill, **GEOMETRY_ONLY)
    y, lab = aug(image, label, generator=_gen(seed))
    implied, clear = label_from_coordinates(y, w)
    check = clear if label_fill is None else clear & (lab != 0)
    assert check.float().mean() > 0.5
    assert torch.equal(implied[check], lab[check])


def test_block_colours_agree_with_augmented_labels():
    """Image coloured by its label (blocks of classes), full pipeline without colour changes."""
    g = _gen(3)
    b = 6
    coarse = torch.randint(1, 6, (b, 4, 4), generator=g)
    label = coarse.repeat_interleave(16, dim=1).repeat_interleave(16, dim=2)  # 64 × 64
    palette = torch.randn(6, 3, generator=g, dtype=torch.float64)
    image = palette[label].permute(0, 3, 1, 2)
    aug = AdaptiveAugment(p=0.8, label_fill=None, **GEOMETRY_ONLY)  # labels mirrored too
    y, lab = aug(image, label, generator=_gen(4))
    # Away from class borders (5×5 output neighbourhood of one class) colour == palette[label].
    padded = F.pad(lab.double().unsqueeze(1), (2, 2, 2, 2), value=-1.0)  # edges never interior
    hi = F.max_pool2d(padded, 5, stride=1)
    lo = -F.max_pool2d(-padded, 5, stride=1)
    interior = (hi == lo).squeeze(1)
    assert interior.float().mean() > 0.3
    expected = palette[lab].permute(0, 3, 1, 2)
    diff = (y - expected).abs().amax(dim=1)
    assert diff[interior].max().item() < 1e-6


def test_color_group_leaves_labels_alone_and_draw_is_shared():
    g = _gen(5)
    x = torch.rand(4, 3, 8, 8, generator=g) * 2 - 1
    label = torch.randint(0, 4, (4, 8, 8), generator=g)
    y, lab = AdaptiveAugment(p=1.0, **COLOR_ONLY)(x, label, generator=_gen(6))
    assert torch.equal(lab, label) and not torch.allclose(y, x)
    # One draw applied to two batches transforms them identically (the map is affine per sample,
    # geometric part linear): aug(a) + aug(b) - aug(0) == aug(a + b).
    aug = AdaptiveAugment(p=1.0)
    draw = aug.sample(4, 8, 8, generator=_gen(7))
    a, b2 = x, torch.randn(4, 3, 8, 8, generator=g)
    lhs = aug.apply(a, draw) + aug.apply(b2, draw) - aug.apply(torch.zeros_like(a), draw)
    assert torch.allclose(lhs, aug.apply(a + b2, draw), atol=1e-5)


def test_cutout_marks_labels():
    x = torch.ones(16, 3, 8, 8)
    label = torch.full((16, 8, 8), 3)
    aug = AdaptiveAugment(p=1.0, cutout=1.0, label_fill=-1, **GEOMETRY_ONLY, **COLOR_ONLY)
    y, lab = aug(x, label, generator=_gen(8))
    erased = (y == 0).all(dim=1)
    assert erased.any() and torch.equal(erased, lab == -1)
    assert 8 <= int(erased[0].sum()) <= 25  # about a quarter of 64 pixels, clipped at borders


def test_probability_is_per_sample():
    n = 4000
    aug = AdaptiveAugment(p=0.5, **GEOMETRY_ONLY, xflip=1, rotate90=0, xint=0, scale=0, rotate=0,
                          aniso=0, xfrac=0)  # fmt: skip
    draw = aug.sample(n, 8, 8, generator=_gen(9))
    flipped = (draw.geometric[:, 0, 0] < 0).float().mean().item()
    assert abs(flipped - 0.25) < 0.03  # applied with p = 0.5, then a fair flip bit
    aug.p.fill_(0.0)
    assert torch.equal(aug.sample(n, 8, 8, generator=_gen(9)).geometric[:, 0, 0], torch.ones(n))
    # Isotropic scaling alone: applied to about p·n samples.
    aug = AdaptiveAugment(p=0.3, **GEOMETRY_ONLY, xflip=0, rotate90=0, xint=0, scale=1, rotate=0,
                          aniso=0, xfrac=0)  # fmt: skip
    scaled = (aug.sample(n, 8, 8, generator=_gen(10)).geometric[:, 0, 0] != 1).float().mean()
    assert abs(scaled.item() - 0.3) < 0.03


def test_p_moves_toward_target():
    batch, interval, kimg = 8, 4, 0.1
    step = batch * interval / (kimg * 1000)  # 0.32
    aug = AdaptiveAugment(p=0.5, kimg=kimg, interval=interval)
    over = torch.full((batch, 1), 2.0)  # D sure that reals are real: r_t = 1 > 0.6
    for _ in range(interval - 1):
        aug.update(over)
        assert aug.probability == 0.5
    aug.update(over)
    assert aug.probability == pytest.approx(0.5 + step) and aug.rt.item() == 1.0
    for _ in range(interval * 3):
        aug.update(over)
    assert aug.probability == 1.0  # clamped
    under = -torch.ones(batch)  # r_t = -1 < 0.6
    for _ in range(interval):
        aug.update(under)
    assert aug.probability == pytest.approx(1.0 - step)
    for _ in range(interval * 5):
        aug.update(under)
    assert aug.probability == 0.0
    # r_t just above / below the target with mixed signs: 7 of 8 positive → 0.75 > 0.6.
    mixed = torch.tensor([1.0] * 7 + [-1.0])
    for _ in range(interval):
        aug.update(mixed)
    assert aug.probability == pytest.approx(step) and aug.rt.item() == pytest.approx(0.75)
    fixed = AdaptiveAugment(p=0.2, target=None)
    for _ in range(10):
        fixed.update(over)
    assert fixed.probability == pytest.approx(0.2)


def test_state_dict_round_trip_resumes_exactly():
    a = AdaptiveAugment(p=0.1, kimg=0.05, interval=3)
    logits = torch.tensor([1.0, 1.0, -1.0, 1.0])
    for _ in range(4):  # one adjustment, then one pending call
        a.update(logits)
    state = a.state_dict()
    assert set(state) == {"p", "sign_sum", "count", "rt", "_extra_state"}
    b = AdaptiveAugment(kimg=0.05, interval=3)
    b.load_state_dict(state)
    assert b.probability == a.probability
    for _ in range(2):
        a.update(logits)
        b.update(logits)
    assert b.probability == a.probability and b.probability != pytest.approx(0.1 + 4 * 4 / 50)
    x = torch.randn(2, 3, 8, 8)
    assert torch.equal(a(x, generator=_gen(0)), b(x, generator=_gen(0)))


def test_update_with_distributed_world_of_one(tmp_path):
    import torch.distributed as dist

    if not dist.is_available():
        pytest.skip("torch.distributed is not available in this build")
    dist.init_process_group(
        "gloo", init_method=f"file://{tmp_path / 'store'}", rank=0, world_size=1
    )
    try:
        aug = AdaptiveAugment(p=0.5, kimg=0.01, interval=1)
        aug.update(torch.ones(5))
        assert aug.probability == pytest.approx(1.0)  # 0.5 + 5 / 10, clamped
    finally:
        dist.destroy_process_group()


def _tiny_discriminator():
    """Two-layer MLP on the flattened image (matmuls only: cheap, and smooth with curvature)."""
    g = _gen(11)
    w1 = torch.randn(3 * 5 * 5, 6, generator=g, dtype=torch.float64) * 0.3
    w2 = torch.randn(6, generator=g, dtype=torch.float64)

    def d(x):
        return F.softplus(x.flatten(1) @ w1) @ w2

    return d


@pytest.mark.parametrize("padding", ["reflect", "zeros"])
def test_r1_through_ada_matches_finite_differences(padding):
    """gradcheck of x ↦ R1(D(aug(x))) in float64 with a fixed draw checks the double backward."""
    aug = AdaptiveAugment(p=0.8, cutout=1.0, padding=padding)
    d = _tiny_discriminator()

    x = torch.randn(2, 3, 5, 5, generator=_gen(13), dtype=torch.float64, requires_grad=True)
    draw = aug.sample(2, 5, 5, generator=_gen(12))  # one fixed draw for every evaluation

    def r1(x):
        return r1_penalty(d(aug.apply(x, draw)), x)

    with torch.no_grad():
        assert not torch.allclose(aug.apply(x, draw), x)  # augmentation really active
        assert not torch.equal(draw.geometric, torch.eye(3).expand(2, 3, 3))
    # Exhaustive Jacobian check with reflect padding; the random-projection mode with zeros.
    assert torch.autograd.gradcheck(r1, (x,), fast_mode=padding == "zeros")


def test_ada_bad_input():
    with pytest.raises(ValueError, match="p"):
        AdaptiveAugment(p=1.5)
    with pytest.raises(ValueError, match="label_fill"):
        AdaptiveAugment(padding="zeros", label_fill=None)
    with pytest.raises(ValueError, match="xflip"):
        AdaptiveAugment(xflip=-1)
    with pytest.raises(ValueError, match="interval"):
        AdaptiveAugment(interval=0)
    with pytest.raises(ValueError, match="1 or 3 channels"):
        AdaptiveAugment(p=0.5)(torch.zeros(2, 2, 4, 4))
    aug = AdaptiveAugment(p=0.5)
    with pytest.raises(ValueError, match="draw"):
        aug.apply(torch.zeros(3, 3, 4, 4), aug.sample(2, 4, 4))
    with pytest.raises(TypeError, match="real_logits"):
        aug.update(torch.ones(3, dtype=torch.long))


@requires_cuda
def test_ada_on_cuda_with_cpu_generator():
    aug = AdaptiveAugment(p=0.7, cutout=1.0).cuda()
    x = torch.randn(4, 3, 16, 16, device="cuda", requires_grad=True)
    label = torch.randint(0, 5, (4, 16, 16), device="cuda")
    y, lab = aug(x, label, generator=_gen(0))
    y_cpu, lab_cpu = AdaptiveAugment(p=0.7, cutout=1.0)(
        x.detach().cpu(), label.cpu(), generator=_gen(0)
    )
    assert torch.allclose(y.cpu(), y_cpu, atol=1e-5) and torch.equal(lab.cpu(), lab_cpu)
    penalty = r1_penalty(y.square().mean(dim=(1, 2, 3)), x)
    penalty.sum().backward()
    aug.update(torch.ones(4, device="cuda"))
