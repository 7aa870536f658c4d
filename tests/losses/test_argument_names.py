"""Every tensor argument of every loss is checked and named in the error.

Each case passes valid tensors for all arguments but one, which is an integer tensor (TypeError),
an empty tensor (ValueError) or not a tensor at all (TypeError); the message must name that
argument.
"""

from __future__ import annotations

import pytest
import torch

from ganblocks.losses import (
    d_hinge_loss,
    d_logistic_loss,
    g_hinge_loss,
    g_nonsaturating_loss,
    labelmix_images,
    labelmix_loss,
    labelmix_mask,
    n_plus_one_loss,
    r1_penalty,
)

IMG = (2, 3, 4, 4)
SEG = (2, 5, 4, 4)
MASK = (2, 1, 4, 4)

# (function, {argument: valid shape}) in positional order
CASES = [
    (d_logistic_loss, {"real_logits": (4,), "fake_logits": (2,)}),
    (d_hinge_loss, {"real_logits": (4,), "fake_logits": (2,)}),
    (g_nonsaturating_loss, {"fake_logits": (3,)}),
    (g_hinge_loss, {"fake_logits": (3,)}),
    (labelmix_images, {"real": IMG, "fake": IMG, "mask": MASK}),
    (labelmix_loss, {"d_mixed": SEG, "d_real": SEG, "d_fake": SEG, "mask": MASK}),
]
BAD = {
    "integer": (TypeError, lambda shape: torch.zeros(shape, dtype=torch.long)),
    "empty": (ValueError, lambda shape: torch.zeros((0,))),
    "list": (TypeError, lambda shape: [0.0] * shape[0]),
}


@pytest.mark.parametrize("bad", sorted(BAD))
@pytest.mark.parametrize(
    ("fn", "arg", "args"),
    [(fn, arg, args) for fn, args in CASES for arg in args],
    ids=[f"{fn.__name__}-{arg}" for fn, args in CASES for arg in args],
)
def test_each_tensor_argument_is_checked_by_name(fn, arg, args, bad):
    exc, make = BAD[bad]
    values = [make(shape) if name == arg else torch.zeros(shape) for name, shape in args.items()]
    with pytest.raises(exc, match=arg):
        fn(*values)


@pytest.mark.parametrize(
    ("logits", "label", "match"),
    [
        (torch.zeros(2, 5, 4, 4, dtype=torch.long), torch.zeros(2, 4, 4, dtype=torch.long),
         "logits"),
        (torch.zeros(0), torch.zeros(2, 4, 4, dtype=torch.long), "logits"),
        (torch.zeros(2, 5, 4, 4), torch.zeros(2, 4, 4), "label"),
        (torch.zeros(2, 5, 4, 4), torch.zeros(2, 1, 4, 4, dtype=torch.long), "label"),
        (torch.zeros(2, 5, 4, 4), torch.full((2, 4, 4), 4, dtype=torch.long), "label"),
        (torch.zeros(2, 5, 4), torch.zeros(2, 4, 4, dtype=torch.long), "logits"),
    ],
)
def test_n_plus_one_loss_checks_its_tensors_by_name(logits, label, match):
    with pytest.raises((TypeError, ValueError), match=match):
        n_plus_one_loss(logits, label, real=True)


def test_n_plus_one_loss_needs_at_least_one_real_class():
    with pytest.raises(ValueError, match="logits"):
        n_plus_one_loss(torch.zeros(2, 1, 4, 4), torch.zeros(2, 4, 4, dtype=torch.long),
                        real=False)


def test_labelmix_mask_accepts_a_single_class():
    label = torch.zeros(2, 3, 3, dtype=torch.long)
    assert labelmix_mask(label, num_classes=1).shape == (2, 1, 3, 3)
    with pytest.raises(TypeError, match="label"):
        labelmix_mask(label.float())


def test_r1_penalty_checks_its_tensors_by_name():
    x = torch.randn(2, 3, requires_grad=True)
    with pytest.raises(TypeError, match="logits"):
        r1_penalty([0.0, 1.0], x)
    with pytest.raises(TypeError, match="inputs"):
        r1_penalty(x.sum(dim=1), [[0.0] * 3] * 2)
    s = torch.tensor(2.0, requires_grad=True)
    with pytest.raises(ValueError, match="inputs: expected a batched tensor"):
        r1_penalty(s * 3, s)
