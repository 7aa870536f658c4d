"""The two steps of an OCO-GAN iteration (``OCO_GAN_SPEC.md`` §4), on an
:class:`~recipes.oco_gan.train.OCOGANTrainer` (typed as its
:class:`~recipes.oco_gan.trainer_protocol.StepTrainer` protocol).

* :func:`generator_step`: ``softplus(-D_u(G(z_u)))`` on unconditional fakes, plus the
  class-balanced N+1 loss of ``D_c(G(s, z_c))`` with target ``s + 1`` on conditional fakes
  (optionally the Gumbel-Softmax segmentation loss on unconditional fakes); then the EMA update.
* :func:`discriminator_step`: one encoder pass over ``[real_u, real_c, fake_u, fake_c,
  labelmix(real_c, fake_c)]``; the image head scores its reals (``real_u``, drawn from all
  training images as Eq. (1) samples the data; ``loss.image_head_reals=all`` adds ``real_c``)
  against the unconditional fakes (logistic loss), the segmentation head classifies real pixels
  into their class + 1 (class-balanced) and fake pixels into class 0, and LabelMix ties ``D_c``
  of the mixed image to the mix of ``D_c(real)`` and ``D_c(fake)``.
* :func:`r1_step`: every ``loss.r1_interval`` iterations, after the D step, a separate D step on
  the lazy R1 penalty of the image head on its reals (×interval), as StyleGAN2 schedules it.
* ADA's ``p`` follows the sign of the image head on its reals, or, in ``cond_only`` (no image
  head), the sign of the segmentation head's per-image real-vs-fake log-odds on real images.

Random draws come from the trainer's shared generator ``trainer.gen`` in this order: G step
``z_u``, ``z_c`` (then the Gumbel noise); D step ``z_u``, ``z_c``, the LabelMix bits. ADA draws
come from ``trainer._aug_gen`` (per step and rank).
"""

from __future__ import annotations

from typing import Any, Dict, Optional, Tuple

import torch
import torch.nn.functional as F

from ganblocks.losses import (
    class_balance_coefficients,
    d_logistic_loss,
    g_nonsaturating_loss,
    labelmix_images,
    labelmix_loss,
    labelmix_mask,
    n_plus_one_loss,
    r1_penalty,
)
from ganblocks.nn import gumbel_softmax
from ganblocks.train import DistributedContext

from .train_parts import no_grad_params
from .trainer_protocol import StepTrainer

__all__ = ["class_weights", "discriminator_step", "generator_step", "generator_step_fakes"]


def class_weights(label: torch.Tensor, num_classes: int, *, ignore_index: Optional[int],
                  ctx: DistributedContext) -> torch.Tensor:
    """Per-class balance weights ``w_c = P / (K·n_c)`` over the *global* batch (all ranks).

    The pixel counts are summed over ranks before
    :func:`~ganblocks.losses.class_balance_coefficients`, so the distributed loss equals the
    single-process one.
    """
    counts = torch.bincount(label.reshape(-1), minlength=num_classes).to(torch.float64)
    return class_balance_coefficients(ctx.all_reduce_sum_(counts), ignore_index=ignore_index)


def seg_loss(tr: StepTrainer, logits: torch.Tensor, label: torch.Tensor, *,
             real: bool) -> torch.Tensor:
    """The N+1 loss: ``real`` pixels → ``label + 1`` (class-balanced over the global batch),
    else every pixel → 0 (fake)."""
    ign = tr.cfg.model.dontcare_index
    if not real or not tr.cfg.loss.class_balance:
        return n_plus_one_loss(logits, label, real=real, ignore_index=ign, class_balance=False)
    w = class_weights(label, tr.cfg.model.num_classes, ignore_index=ign, ctx=tr.ctx)
    return n_plus_one_loss(logits, label, real=True, ignore_index=ign,
                           class_weights=w.to(logits.dtype))


def augment(tr: StepTrainer, x: torch.Tensor, label: Optional[torch.Tensor] = None,
            draw: Any = None):
    """ADA on ``x`` (and ``label``) with a fresh or given draw: ``(x, label, draw)``."""
    if tr.augment is None:
        return x, label, None
    if draw is None:
        draw = tr.augment.sample(x.shape[0], x.shape[2], x.shape[3], device=x.device,
                                 generator=tr._aug_gen)
    if label is None:
        return tr.augment.apply(x, draw), None, draw
    x2, label2 = tr.augment.apply(x, draw, label=label)
    return x2, label2, draw


def remask(mask: torch.Tensor, label: torch.Tensor, new_label: torch.Tensor,
           num_classes: int) -> torch.Tensor:
    """Per-class bits of ``mask`` (defined through ``label``) looked up at ``new_label``."""
    bits = torch.zeros(num_classes, device=mask.device, dtype=mask.dtype)
    bits.scatter_(0, label.reshape(-1), mask.reshape(-1))
    return bits[new_label].unsqueeze(1)


def _shard_sizes(tr: StepTrainer):
    return tr.shard_u.stop - tr.shard_u.start, tr.shard_c.stop - tr.shard_c.start


def generator_step(tr: StepTrainer, label_c: Optional[torch.Tensor]) -> Dict[str, float]:
    """G step on this rank's conditional label maps ``label_c [b_c, H, W]`` (or ``None``)."""
    return generator_step_fakes(tr, label_c)[0]


def generator_step_fakes(tr: StepTrainer, label_c: Optional[torch.Tensor]
                         ) -> Tuple[Dict[str, float], torch.Tensor]:
    """:func:`generator_step`, also returning its fakes, detached: ``[n_u + n_c, 3, H, W]``,
    this rank's unconditional rows then its conditional ones (on ``label_c``)."""
    with no_grad_params(tr.D):  # D's frozen parts stay frozen afterwards
        return _generator_step(tr, label_c)


def _generator_step(tr: StepTrainer, label_c: Optional[torch.Tensor]
                    ) -> Tuple[Dict[str, float], torch.Tensor]:
    cfg, G, D = tr.cfg, tr.G, tr.D
    n_u, n_c = _shard_sizes(tr)
    z_u = tr._randn(tr.bu, cfg.model.z_dim)[tr.shard_u]
    z_c = tr._randn(tr.bc, cfg.model.z_dim)[tr.shard_c]
    logs: Dict[str, float] = {}
    with tr._autocast(), tr._phase("G step: G forward"):
        fakes = G.forward_mixed(tr._to_device(z_u) if n_u else None,
                                label_c if n_c else None,
                                tr._to_device(z_c) if n_c else None)
    with tr._autocast(), tr._phase("G step: D forward"):
        x, lab_aug = fakes, None
        if tr.augment is not None:
            parts = []
            if n_u:
                parts.append(augment(tr, fakes[:n_u])[0])
            if n_c:
                xc, lab_aug, _ = augment(tr, fakes[n_u:], label_c)
                parts.append(xc)
            x = torch.cat(parts)
        feats = D.encode(x)
        loss = fakes.new_zeros(())
        if n_u:
            img = D.image_logits([f[:n_u] for f in feats])
            loss_u = g_nonsaturating_loss(img.to(tr.dtype))
            loss = loss + cfg.loss.uncond_weight * loss_u
            logs["g/uncond"] = loss_u.item()
            if cfg.loss.uncond_seg_loss == "gumbel":
                seg_u = D.seg_logits([f[:n_u] for f in feats]).to(tr.dtype)
                soft = gumbel_softmax(seg_u[:, 1:], tau=cfg.loss.gumbel_tau, hard=True, dim=1,
                                      generator=tr.gen)
                ce = -(soft * F.log_softmax(seg_u, dim=1)[:, 1:]).sum(1).mean()
                loss = loss + cfg.loss.gumbel_weight * ce
                logs["g/uncond_gumbel_seg"] = ce.item()
        if n_c:
            seg = D.seg_logits([f[n_u:] for f in feats]).to(tr.dtype)
            target = label_c if lab_aug is None else lab_aug
            loss_c = seg_loss(tr, seg, target, real=True)
            loss = loss + cfg.loss.cond_weight * loss_c
            logs["g/cond"] = loss_c.item()
    with tr._phase("G step: backward + Adam + EMA"):
        _optimizer_step(tr, loss, G, tr.opt_g)
        tr.ema.update(G)
    logs["g/total"] = loss.item()
    return logs, fakes.detach()


def _optimizer_step(tr: StepTrainer, loss: torch.Tensor, module: torch.nn.Module,
                    opt: torch.optim.Optimizer) -> None:
    """Backward of ``loss``, gradients summed over ranks, one step of ``opt``."""
    opt.zero_grad(set_to_none=True)
    tr.scaler.scale(loss).backward()
    tr.ctx.sync_gradients(module.parameters())
    tr.scaler.step(opt)
    tr.scaler.update()


def _rows(feats, *parts: slice):
    """The rows ``parts`` (concatenated, in order) of every feature map of ``feats``."""
    return [torch.cat([f[p] for p in parts]) for f in feats]


def seg_realness(seg: torch.Tensor) -> torch.Tensor:
    """Per-image real-vs-fake log-odds of the segmentation head, ``[B]``: the mean over pixels
    of ``logsumexp(D_c[1:]) − D_c[0]`` (what drives ADA when there is no image head)."""
    return (torch.logsumexp(seg[:, 1:], dim=1) - seg[:, 0]).flatten(1).mean(1)


def discriminator_step(tr: StepTrainer, real_c: Optional[torch.Tensor],
                       label_c: Optional[torch.Tensor], *,
                       fakes: Optional[torch.Tensor] = None) -> Dict[str, float]:
    """D step on this rank's labelled reals ``real_c``/``label_c`` (the maps of the G step)
    and a fresh batch of unconditional reals; then, when due, the lazy R1 step.

    The fakes are a fresh G forward, or ``fakes`` (``[n_u + n_c, 3, H, W]``, the G step's:
    ``train.d_fakes=reuse``)."""
    cfg, G, D = tr.cfg, tr.G, tr.D
    zd = cfg.model.z_dim
    n_u, n_c = _shard_sizes(tr)
    logs: Dict[str, float] = {}
    real_u = None
    with tr._phase("data"):
        if n_u:
            real_u, _ = tr._fetch(tr.stream_u, tr.bu, tr.shard_u, with_label=False)
    if fakes is None:
        z_u = tr._randn(tr.bu, zd)[tr.shard_u]
        z_c = tr._randn(tr.bc, zd)[tr.shard_c]
        with torch.no_grad(), tr._autocast(), tr._phase("D step: G forward (no grad)"):
            fakes = G.forward_mixed(tr._to_device(z_u) if n_u else None, label_c,
                                    tr._to_device(z_c) if n_c else None)
    elif fakes.shape[0] != n_u + n_c:
        raise ValueError(f"fakes: expected {n_u + n_c} images (this rank's {n_u} unconditional "
                         f"+ {n_c} conditional), got shape {tuple(fakes.shape)}")
    fakes = fakes.detach().to(tr.dtype)
    fake_u, fake_c = fakes[:n_u], fakes[n_u:]

    # One encoder batch: [real_u | real_c | fake_u | fake_c | mixed] (absent parts are empty).
    batch, seg_labels = [], None
    if n_u:
        batch += [augment(tr, real_u)[0]]
    if n_c:
        mask = labelmix_mask(label_c, num_classes=cfg.model.num_classes, generator=tr.gen)
        mixed = labelmix_images(real_c, fake_c, mask)
        rc, lab, draw = augment(tr, real_c, label_c)
        fc, _, _ = augment(tr, fake_c, label_c, draw)
        mx, _, _ = augment(tr, mixed, label_c, draw)
        if draw is not None:  # the mask follows the (geometrically transformed) labels
            mask = remask(mask, label_c, lab, cfg.model.num_classes)
        seg_labels = lab
        batch += [rc]
    if n_u:
        batch += [augment(tr, fake_u)[0]]
    if n_c:
        batch += [fc, mx]
    r_u, r_c = slice(0, n_u), slice(n_u, n_u + n_c)
    f_u, f_c = slice(n_u + n_c, 2 * n_u + n_c), slice(2 * n_u + n_c, 2 * n_u + 3 * n_c)
    with_labelled = cfg.loss.image_head_reals == "all"

    with tr._autocast(), tr._phase("D step: D forward"):
        feats = D.encode(torch.cat(batch))
        loss = feats[-1].new_zeros(()).to(tr.dtype)
        if n_u:
            # The image head's reals (the unconditional batch, drawn from all training images;
            # with image_head_reals=all the labelled batch too) against the unconditional fakes.
            reals = (r_u, r_c) if with_labelled else (r_u,)
            img = D.image_logits(_rows(feats, *reals, f_u)).to(tr.dtype)
            real_logits, fake_logits = img[:-n_u], img[-n_u:]
            loss_u = d_logistic_loss(real_logits, fake_logits)
            loss = loss + cfg.loss.uncond_weight * loss_u
            logs["d/uncond"] = loss_u.item()
            logs["d/real_logit"] = real_logits.mean().item()
            logs["d/fake_logit"] = fake_logits.mean().item()
            if tr.augment is not None:
                tr.augment.update(real_logits.detach())  # summed over ranks
        if n_c:
            seg = D.seg_logits(_rows(feats, r_c, f_c)).to(tr.dtype)
            seg_real, seg_fake, seg_mix = seg[:n_c], seg[n_c:2 * n_c], seg[2 * n_c:]
            loss_real = seg_loss(tr, seg_real, seg_labels, real=True)
            loss_fake = seg_loss(tr, seg_fake, seg_labels, real=False)
            loss_lm = labelmix_loss(seg_mix, seg_real, seg_fake, mask)
            loss = loss + cfg.loss.cond_weight * (loss_real + loss_fake) \
                + cfg.loss.labelmix_weight * loss_lm
            logs.update({"d/cond_real": loss_real.item(), "d/cond_fake": loss_fake.item(),
                         "d/labelmix": loss_lm.item()})
            if tr.augment is not None and not n_u:
                # No image head (cond_only): ADA follows the segmentation head's real pixels.
                tr.augment.update(seg_realness(seg_real.detach()))

    with tr._phase("D step: backward + Adam"):
        _optimizer_step(tr, loss, D, tr.opt_d)
    logs["d/total"] = loss.item()

    if tr._r1_enabled and tr.step % cfg.loss.r1_interval == 0:
        reals = [real_u] + ([real_c] if with_labelled and n_c else [])
        logs.update(r1_step(tr, torch.cat(reals)))
    return logs


def r1_step(tr: StepTrainer, reals: torch.Tensor) -> Dict[str, float]:
    """The lazy R1 step (StyleGAN2's schedule): a D step of its own on
    ``(γ/2)·E‖∇_x D_u(x)‖² × interval`` over the image head's reals ``reals``.

    It runs every ``loss.r1_interval`` iterations after the main D step, with the same Adam
    (whose lr and betas are corrected for the extra steps, see
    :func:`~ganblocks.losses.lazy_adam_params`). A regulariser, so not scaled by the
    unconditional loss weight.
    """
    cfg, D = tr.cfg, tr.D
    with tr._phase("D step: R1"):
        reals = reals.detach().requires_grad_(True)
        with tr._autocast():
            logits = D.image_logits(D.encode(augment(tr, reals)[0])).to(tr.dtype)
        penalty = r1_penalty(logits, reals).mean()
        loss = (cfg.loss.r1_gamma / 2) * penalty * cfg.loss.r1_interval
        _optimizer_step(tr, loss, D, tr.opt_d)
    return {"d/r1": penalty.item()}
