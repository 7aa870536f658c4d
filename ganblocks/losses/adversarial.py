r"""Adversarial losses on discriminator logits: logistic (non-saturating) and hinge.

With :math:`D` the raw logit (no sigmoid) and :math:`\operatorname{softplus}(t) = \log(1 + e^t)`:

* logistic discriminator loss:
  :math:`\mathbb{E}[\operatorname{softplus}(-D(x))] + \mathbb{E}[\operatorname{softplus}(D(G(z)))]`,
* non-saturating generator loss: :math:`\mathbb{E}[\operatorname{softplus}(-D(G(z)))]`,
* hinge discriminator loss:
  :math:`\mathbb{E}[\max(0, 1 - D(x))] + \mathbb{E}[\max(0, 1 + D(G(z)))]`,
* hinge generator loss: :math:`-\mathbb{E}[D(G(z))]`.

The real and fake expectations are separate means, so the two batches may differ in size.
Softplus is evaluated as ``logaddexp(t, 0)``, which never takes ``exp`` of a large argument and has
no linear cut-off: logits of any magnitude give finite, accurate losses and gradients.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

from ._checks import check_logits

__all__ = ["d_hinge_loss", "d_logistic_loss", "g_hinge_loss", "g_nonsaturating_loss"]


def _softplus(t: torch.Tensor) -> torch.Tensor:
    """``log(1 + e^t)`` without overflow or threshold approximation."""
    return torch.logaddexp(t, t.new_zeros(()))


def d_logistic_loss(real_logits: torch.Tensor, fake_logits: torch.Tensor) -> torch.Tensor:
    """Logistic discriminator loss ``mean(softplus(-real)) + mean(softplus(fake))``.

    This is the binary cross-entropy of ``sigmoid(D)`` against 1 for reals and 0 for fakes.

    Args:
        real_logits: Logits on real data, any shape (e.g. ``[N]`` or ``[N, 1]``).
        fake_logits: Logits on generated data, any shape; its size may differ from ``real_logits``.

    Returns:
        Scalar tensor.

    Example:
        >>> d_logistic_loss(torch.zeros(4), torch.zeros(2))  # 2 * log(2)
        tensor(1.3863)
    """
    check_logits(real_logits, "real_logits")
    check_logits(fake_logits, "fake_logits")
    return _softplus(-real_logits).mean() + _softplus(fake_logits).mean()


def g_nonsaturating_loss(fake_logits: torch.Tensor) -> torch.Tensor:
    """Non-saturating generator loss ``mean(softplus(-fake))`` (i.e. ``-log sigmoid(D(G(z)))``).

    Args:
        fake_logits: Logits on generated data, any shape.

    Returns:
        Scalar tensor.

    Example:
        >>> g_nonsaturating_loss(torch.tensor([0.0, 1e4]))  # (log 2 + 0) / 2
        tensor(0.3466)
    """
    check_logits(fake_logits, "fake_logits")
    return _softplus(-fake_logits).mean()


def d_hinge_loss(real_logits: torch.Tensor, fake_logits: torch.Tensor) -> torch.Tensor:
    """Hinge discriminator loss ``mean(relu(1 - real)) + mean(relu(1 + fake))``.

    Args:
        real_logits: Logits on real data, any shape.
        fake_logits: Logits on generated data, any shape.

    Returns:
        Scalar tensor.

    Example:
        >>> d_hinge_loss(torch.tensor([2.0, 0.0]), torch.tensor([-3.0]))  # (0 + 1) / 2 + 0
        tensor(0.5000)
    """
    check_logits(real_logits, "real_logits")
    check_logits(fake_logits, "fake_logits")
    return F.relu(1 - real_logits).mean() + F.relu(1 + fake_logits).mean()


def g_hinge_loss(fake_logits: torch.Tensor) -> torch.Tensor:
    """Hinge generator loss ``-mean(fake)``.

    Args:
        fake_logits: Logits on generated data, any shape.

    Returns:
        Scalar tensor.

    Example:
        >>> g_hinge_loss(torch.tensor([1.0, 3.0]))
        tensor(-2.)
    """
    check_logits(fake_logits, "fake_logits")
    return -fake_logits.mean()
