"""GAN losses and regularisers.

* :mod:`~ganblocks.losses.adversarial`: logistic (non-saturating) and hinge losses;
* :mod:`~ganblocks.losses.oasis`: OASIS's (N+1)-class segmentation loss with class balancing;
* :mod:`~ganblocks.losses.labelmix`: LabelMix mask, image mixing and consistency loss;
* :mod:`~ganblocks.losses.regularizers`: R1 penalty and the lazy-regularisation schedule.
"""

from .adversarial import d_hinge_loss, d_logistic_loss, g_hinge_loss, g_nonsaturating_loss
from .labelmix import labelmix_images, labelmix_loss, labelmix_mask
from .oasis import class_balance_coefficients, class_balance_weights, n_plus_one_loss
from .regularizers import LazyRegularizer, lazy_adam_params, r1_penalty

__all__ = [
    "LazyRegularizer",
    "class_balance_coefficients",
    "class_balance_weights",
    "d_hinge_loss",
    "d_logistic_loss",
    "g_hinge_loss",
    "g_nonsaturating_loss",
    "labelmix_images",
    "labelmix_loss",
    "labelmix_mask",
    "lazy_adam_params",
    "n_plus_one_loss",
    "r1_penalty",
]

from .path_length import PathLengthRegularizer

__all__ += ["PathLengthRegularizer"]
