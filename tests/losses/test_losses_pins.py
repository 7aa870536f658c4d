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
