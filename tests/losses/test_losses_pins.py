"""Pins of loss semantics found unchecked by mutation runs (issue 23)."""

from __future__ import annotations

import torch

from ganblocks.losses import labelmix_mask


def test_labelmix_mask_default_class_count_is_the_largest_id_plus_one():
    """``num_classes=None`` is ``label.max() + 1``: the same mask *and* the same draws as passing
    it, so a generator shared with later draws stays in step."""
    label = torch.tensor([[[0, 3, 3], [1, 0, 3]]])
    g_default, g_explicit = torch.Generator().manual_seed(5), torch.Generator().manual_seed(5)
    default = labelmix_mask(label, generator=g_default)
    explicit = labelmix_mask(label, num_classes=4, generator=g_explicit)
    assert torch.equal(default, explicit)
    assert torch.equal(g_default.get_state(), g_explicit.get_state())
    # and one bit per class: the mask is constant on each class, replayed from randint(0, 2, [4])
    bits = torch.randint(0, 2, (4,), generator=torch.Generator().manual_seed(5))
    assert torch.equal(default[:, 0], bits.to(default.dtype)[label])


def test_lazy_regularizer_default_interval_is_stylegan2s_16():
    from ganblocks.losses import LazyRegularizer

    lazy = LazyRegularizer()
    assert lazy.interval == 16 and lazy.weight == 16.0
    assert [s for s in range(34) if lazy.is_due(s)] == [0, 16, 32]


def test_lazy_adam_params_checks_the_interval_by_name():
    import pytest

    from ganblocks.losses import lazy_adam_params

    for bad in (0, -2, 2.0, True):
        with pytest.raises(ValueError, match="interval: expected a positive int"):
            lazy_adam_params(0.002, (0.0, 0.99), bad)
    lr, (b1, b2) = lazy_adam_params(0.002, (0.5, 0.99), 1)  # c = 1 / 2
    assert lr == 0.001 and b1 == 0.5**0.5 and b2 == 0.99**0.5


def test_check_label_range_checks_a_single_pixel_too():
    import pytest

    from ganblocks.losses._checks import check_label_range

    check_label_range(torch.zeros(0, 2, 2, dtype=torch.long), 3)  # empty: nothing to check
    with pytest.raises(ValueError, match=r"label: expected class ids in \[0, 3\), got values"):
        check_label_range(torch.tensor([[[5]]]), 3)
    check_label_range(torch.tensor([[[2]]]), 3)


def test_random_draws_follow_the_generator_and_land_on_the_device():
    """rand/randn draw exactly torch.rand/randn of the generator (U[0, 1) and N(0, 1), shape and
    dtype as asked) on the generator's device, then move to ``device``; without a generator they
    draw from the global stream on ``device``."""
    import pytest

    from ganblocks import rng as _random

    cpu = torch.device("cpu")
    for draw, ref in ((_random.rand, torch.rand), (_random.randn, torch.randn)):
        got = draw([2, 3], generator=torch.Generator().manual_seed(7), device=cpu)
        assert torch.equal(got, ref(2, 3, generator=torch.Generator().manual_seed(7)))
        assert got.dtype == torch.float32 and got.device == cpu
        wide = draw(
            (4,), generator=torch.Generator().manual_seed(7), device=cpu, dtype=torch.float64
        )
        assert torch.equal(
            wide, ref(4, generator=torch.Generator().manual_seed(7), dtype=torch.float64)
        )
        torch.manual_seed(3)
        a = draw([5], generator=None, device=cpu)
        torch.manual_seed(3)
        assert torch.equal(a, ref(5))
        # a CPU generator for data on another device: drawn on the CPU, then moved
        meta = draw([2], generator=torch.Generator().manual_seed(1), device=torch.device("meta"))
        assert meta.device.type == "meta" and meta.shape == (2,)
        with pytest.raises(TypeError, match=r"generator: expected a torch\.Generator or None"):
            draw([1], generator=3, device=cpu)
    assert _random.draw_device(None, torch.device("meta")) == torch.device("meta")
    assert _random.draw_device(torch.Generator(), torch.device("meta")) == cpu
    assert (
        torch.rand(1000).max() < 1 and _random.rand([1000], generator=None, device=cpu).min() >= 0
    )
