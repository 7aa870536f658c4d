"""OASIS N+1 loss and class-balance weights: golden data, definitions, properties."""

from __future__ import annotations

import pytest
import torch
from hypothesis import given
from hypothesis import strategies as st
from testutils import load_golden, rel_err

from ganblocks.losses import class_balance_weights, n_plus_one_loss

GOLDEN = load_golden("oasis_losses")
CASES = GOLDEN["cases"]


def test_golden_has_all_cases():
    assert len(CASES) == 60 and "OASIS" in GOLDEN["source"]


@pytest.mark.parametrize("i", range(len(CASES)))
def test_golden_oasis_losses(i):
    case = CASES[i]
    ignore = 0 if case["contain_dontcare_label"] else None
    label, logits = case["label"], case["logits"]
    weights = class_balance_weights(label, case["num_classes"], ignore_index=ignore)
    assert rel_err(weights, case["weight_map"]) < 1e-6
    real = n_plus_one_loss(logits, label, real=True, ignore_index=ignore)
    fake = n_plus_one_loss(logits, label, real=False, ignore_index=ignore)
    assert rel_err(real, case["loss_real"]) < 1e-5
    assert rel_err(fake, case["loss_fake"]) < 1e-5
    # float64 evaluation is closer still (the golden values were computed in float32).
    real64 = n_plus_one_loss(logits.double(), label, real=True, ignore_index=ignore)
    assert rel_err(real64, case["loss_real"]) < 1e-6


def _reference_weights(label, num_classes, ignore):
    """Independent per-class loop (over classes, not the batch)."""
    total = label.numel()
    counts = {c: int((label == c).sum()) for c in range(num_classes) if c != ignore}
    present = [c for c, n in counts.items() if n > 0]
    out = torch.zeros(label.shape, dtype=torch.float64)
    for c in present:
        out[label == c] = total / (len(present) * counts[c])
    return out


def _reference_ce(logits, target):
    """-log softmax(logits)[target] via an explicit log-sum-exp, per pixel."""
    m = logits.max(dim=1, keepdim=True).values
    lse = (logits - m).exp().sum(dim=1).log() + m.squeeze(1)
    picked = torch.gather(logits, 1, target.unsqueeze(1)).squeeze(1)
    return lse - picked


label_maps = st.builds(
    lambda b, h, w, n, seed: (
        torch.randint(0, n, (b, h, w), generator=torch.Generator().manual_seed(seed)),
        n,
    ),
    st.integers(1, 3),
    st.integers(1, 6),
    st.integers(1, 6),
    st.integers(1, 6),
    st.integers(0, 2**31 - 1),
)


@given(data=label_maps, use_ignore=st.booleans())
def test_every_present_class_carries_equal_weight(data, use_ignore):
    label, n = data
    ignore = 0 if use_ignore else None
    w = class_balance_weights(label, n, ignore_index=ignore, dtype=torch.float64)
    assert torch.allclose(w, _reference_weights(label, n, ignore), rtol=1e-12, atol=0)
    present = [c for c in range(n) if c != ignore and bool((label == c).any())]
    for c in present:
        assert w[label == c].sum().item() == pytest.approx(label.numel() / len(present), rel=1e-12)
    if ignore is not None:
        assert bool((w[label == ignore] == 0).all())
    expected_total = label.numel() if present else 0.0
    assert w.sum().item() == pytest.approx(expected_total, rel=1e-12, abs=1e-12)


@given(data=label_maps, use_ignore=st.booleans(), balance=st.booleans(), seed=st.integers(0, 999))
def test_n_plus_one_loss_matches_definition(data, use_ignore, balance, seed):
    label, n = data
    ignore = 0 if use_ignore else None
    b, h, w = label.shape
    g = torch.Generator().manual_seed(seed)
    logits = torch.randn(b, n + 1, h, w, generator=g, dtype=torch.float64) * 3
    ce_real = _reference_ce(logits, label + 1)
    if balance:
        expected = (ce_real * _reference_weights(label, n, ignore)).sum() / label.numel()
    else:
        valid = torch.ones_like(ce_real) if ignore is None else (label != ignore).double()
        expected = (ce_real * valid).sum() / valid.sum().clamp(min=1)
    got = n_plus_one_loss(logits, label, real=True, ignore_index=ignore, class_balance=balance)
    assert got.item() == pytest.approx(expected.item(), rel=1e-10, abs=1e-12)
    expected_fake = _reference_ce(logits, torch.zeros_like(label)).mean()
    got_fake = n_plus_one_loss(
        logits, label, real=False, ignore_index=ignore, class_balance=balance
    )
    assert got_fake.item() == pytest.approx(expected_fake.item(), rel=1e-10)


def test_n_plus_one_loss_gradcheck():
    g = torch.Generator().manual_seed(0)
    label = torch.randint(0, 3, (2, 2, 3), generator=g)
    logits = torch.randn(2, 4, 2, 3, generator=g, dtype=torch.float64, requires_grad=True)
    for real in (True, False):
        assert torch.autograd.gradcheck(
            lambda t, real=real: n_plus_one_loss(t, label, real=real, ignore_index=0),
            (logits,),
            fast_mode=True,
        )


def test_all_ignored_gives_zero_not_nan():
    label = torch.zeros(1, 3, 3, dtype=torch.long)
    logits = torch.randn(1, 4, 3, 3)
    assert class_balance_weights(label, 3, ignore_index=0).abs().sum().item() == 0
    assert n_plus_one_loss(logits, label, real=True, ignore_index=0).item() == 0.0
    assert (
        n_plus_one_loss(logits, label, real=True, ignore_index=0, class_balance=False).item() == 0
    )


def test_bad_input_messages():
    label = torch.tensor([[[0, 1], [2, 1]]])
    logits = torch.zeros(1, 3, 2, 2)
    with pytest.raises(ValueError, match=r"label: expected class ids in \[0, 2\)"):
        n_plus_one_loss(logits, label, real=True)
    with pytest.raises(ValueError, match="label: expected shape"):
        n_plus_one_loss(torch.zeros(1, 4, 2, 3), label, real=True)
    with pytest.raises(TypeError, match="label"):
        class_balance_weights(label.float(), 3)
    with pytest.raises(ValueError, match="ignore_index"):
        class_balance_weights(label, 3, ignore_index=3)
    with pytest.raises(TypeError, match="real"):
        n_plus_one_loss(torch.zeros(1, 4, 2, 2), label, real=1)
    with pytest.raises(ValueError, match="num_classes"):
        class_balance_weights(label, 0)
