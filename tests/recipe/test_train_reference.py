"""A reference training step: the trainer's losses and gradients recomputed from the spec.

For tiny float64 configs of every mode, with ADA off and on, on an R1 step and on a plain step,
the test runs one trainer iteration and recomputes, from the *same random draws*, the G step and
the D step with its own straightforward code written from ``OCO_GAN_SPEC.md`` §4 (plain torch ops;
none of the trainer's helpers nor ``ganblocks.losses``). It checks every logged loss term and the
parameter gradients of both networks. Only the models' forward passes (``G(...)``,
``D.encode``/``image_logits``/``seg_logits``) and ADA's :meth:`apply` of the recorded draws are
shared with the trainer; which rows reach which head, the targets, the weights and the
compositions are the test's own.

The random draws are taken as follows: the latents, LabelMix bits and Gumbel noise are replayed
from a copy of the trainer's generator state, in the order the trainer documents (G step:
``z_u``, ``z_c``[, Gumbel]; D step: ``z_u``, ``z_c``, the LabelMix bits); the data batches and the
ADA transform draws are recorded as the trainer makes them.
"""

from __future__ import annotations

import copy

import pytest
import torch
from oco_tiny import tiny_config

from recipes.oco_gan.train import OCOGANTrainer

# Loss weights different from 1 and from each other, so that a dropped or swapped weight shows.
WEIGHTS = ["loss.uncond_weight=2.0", "loss.cond_weight=0.7", "loss.labelmix_weight=3.0",
           "loss.r1_gamma=0.5", "loss.r1_interval=3", "train.dtype=float64"]


# -- the spec's formulas, written out ----------------------------------------------------------


def softplus(t):
    return torch.log1p(torch.exp(t))


def cross_entropy_map(logits, target):
    """``-log softmax(logits)[target]`` per pixel: ``[B, K, H, W]``, ``[B, H, W]`` → ``[B, H, W]``.
    """
    log_p = logits - torch.logsumexp(logits, dim=1, keepdim=True)
    return -torch.gather(log_p, 1, target[:, None])[:, 0]


def balance_weights(label, num_classes, dontcare):
    """Per-pixel ``w_c = B·H·W / (K·n_c)``; don't-care weighs 0 and is not counted in K."""
    present = [c for c in range(num_classes) if c != dontcare and bool((label == c).any())]
    w = torch.zeros(num_classes, dtype=torch.float64)
    for c in present:
        w[c] = label.numel() / (len(present) * float((label == c).sum()))
    return w[label]


def seg_real_loss(logits, label, num_classes, dontcare):
    """Real pixels (or G's conditional fakes) → class ``label + 1``, class-balanced, mean over
    all pixels."""
    w = balance_weights(label, num_classes, dontcare)
    return (w * cross_entropy_map(logits, label + 1)).mean()


def seg_fake_loss(logits):
    """Fake pixels → class 0 ("fake"), unweighted, every pixel."""
    return cross_entropy_map(logits, torch.zeros_like(logits[:, 0], dtype=torch.long)).mean()


# -- running one recorded step -------------------------------------------------------------------


class Recorder:
    """Runs one trainer step recording the batches it fetches and ADA draws it samples."""

    def __init__(self, trainer):
        self.trainer = trainer
        self.fetched = {}
        self.draws = []
        fetch = trainer._fetch

        def spy_fetch(stream, *args, **kwargs):
            out = fetch(stream, *args, **kwargs)
            self.fetched["c" if stream is trainer.stream_c else "u"] = out
            return out

        trainer._fetch = spy_fetch
        # Every optimiser step: the gradients it applies and the parameters it starts from.
        self.opt_steps = {"G": [], "D": []}
        for key, opt, net in (("G", trainer.opt_g, trainer.G), ("D", trainer.opt_d, trainer.D)):
            self._spy_opt(key, opt, net)
        if trainer.augment is not None:
            sample = trainer.augment.sample

            def spy_sample(*args, **kwargs):
                draw = sample(*args, **kwargs)
                self.draws.append(draw)
                return draw

            trainer.augment.sample = spy_sample

    def _spy_opt(self, key, opt, net):
        step = opt.step

        def spy_step(*args, **kwargs):
            self.opt_steps[key].append((
                [None if p.grad is None else p.grad.clone() for p in net.parameters()],
                [p.detach().clone() for p in net.parameters()]))
            return step(*args, **kwargs)

        opt.step = spy_step

    def step(self):
        tr = self.trainer
        self.step_index = tr.step
        self.G0 = copy.deepcopy(tr.G)
        self.D0 = copy.deepcopy(tr.D)
        self.gen_state = tr.gen.get_state()
        self.fetched.clear()
        self.draws.clear()
        for calls in self.opt_steps.values():
            calls.clear()
        sign_sum = None if tr.augment is None else float(tr.augment.sign_sum)
        self.logs = tr.train_step()
        if sign_sum is not None:
            self.ada_signs = float(tr.augment.sign_sum) - sign_sum
        self.G1 = copy.deepcopy(tr.G)
        return self


def reference_step(rec, cfg, *, ada):
    """The G step and D step of ``rec``'s iteration, recomputed: ``(logs, g_grads, d_grads)``."""
    m, loss_cfg, t = cfg.model, cfg.loss, cfg.train
    n_cls, dc, zd = m.num_classes, m.dontcare_index, m.z_dim
    use_u, use_c = t.mode != "cond_only", t.mode != "uncond_only"
    bu, bc = (t.batch_uncond if use_u else 0), (t.batch_cond if use_c else 0)
    gen = torch.Generator()
    gen.set_state(rec.gen_state)
    draws = list(rec.draws)
    aug = rec.trainer.augment

    def augment(x, label=None):
        """Apply the next recorded draw (images and, when given, their label maps together)."""
        if not ada:
            return x if label is None else (x, label)
        draw = draws.pop(0)
        return aug.apply(x, draw) if label is None else aug.apply(x, draw, label=label)

    def augment_with(draw, x):
        return x if draw is None else aug.apply(x, draw)

    real_c, label_c = rec.fetched.get("c", (None, None))
    logs = {}
    G, D = copy.deepcopy(rec.G0), copy.deepcopy(rec.D0)  # D is one copy through both steps

    # ---- G step -----------------------------------------------------------------------------
    z_u = torch.randn(bu, zd, generator=gen).double()
    z_c = torch.randn(bc, zd, generator=gen).double()
    D.requires_grad_(False)
    loss_g = torch.zeros((), dtype=torch.float64)
    if use_u:
        fake_u = augment(G(z=z_u))
    if use_c:
        fake_c, target_c = augment(G(label=label_c, z=z_c), label_c)
    if use_u:
        feats_u = D.encode(fake_u)
        lu = softplus(-D.image_logits(feats_u)).mean()
        logs["g/uncond"] = lu
        loss_g = loss_g + loss_cfg.uncond_weight * lu
        if loss_cfg.uncond_seg_loss == "gumbel":
            seg_u = D.seg_logits(feats_u)
            logits = seg_u[:, 1:]  # class logits only: a label map is a real class
            u = torch.rand(logits.shape, generator=gen, dtype=logits.dtype)
            soft = torch.softmax((logits - torch.log(-torch.log(u))) / loss_cfg.gumbel_tau, dim=1)
            hard = torch.nn.functional.one_hot(soft.argmax(1), n_cls).permute(0, 3, 1, 2)
            sample = hard.to(soft.dtype) - soft.detach() + soft  # straight-through
            log_p = seg_u - torch.logsumexp(seg_u, dim=1, keepdim=True)
            ce = -(sample * log_p[:, 1:]).sum(1).mean()
            logs["g/uncond_gumbel_seg"] = ce
            loss_g = loss_g + loss_cfg.gumbel_weight * ce
    if use_c:
        seg_c = D.seg_logits(D.encode(fake_c))
        lc = seg_real_loss(seg_c, target_c, n_cls, dc)
        logs["g/cond"] = lc
        loss_g = loss_g + loss_cfg.cond_weight * lc
    logs["g/total"] = loss_g
    g_grads = torch.autograd.grad(loss_g, list(G.parameters()), allow_unused=True)
    D.requires_grad_(True)

    # ---- D step (fakes from the G after its step) --------------------------------------------
    G1 = rec.G1
    real_u = rec.fetched["u"][0] if use_u else None
    z_u = torch.randn(bu, zd, generator=gen).double()
    z_c = torch.randn(bc, zd, generator=gen).double()
    with torch.no_grad():
        fake_u = G1(z=z_u) if use_u else None
        fake_c = G1(label=label_c, z=z_c) if use_c else None
    loss_d = torch.zeros((), dtype=torch.float64)
    rows = {}
    if use_u:
        rows["real_u"] = augment(real_u)
    if use_c:
        bits = torch.randint(0, 2, (n_cls,), generator=gen)
        mask = bits[label_c][:, None].to(torch.float64)
        mixed = mask * real_c + (1 - mask) * fake_c
        draw = draws.pop(0) if ada else None
        if draw is not None:
            rows["real_c"], label_d = aug.apply(real_c, draw, label=label_c)
        else:
            rows["real_c"], label_d = real_c, label_c
        rows["fake_c"] = augment_with(draw, fake_c)
        rows["mixed"] = augment_with(draw, mixed)
        mask_d = bits[label_d][:, None].to(torch.float64)  # the mask follows the moved labels
    if use_u:
        rows["fake_u"] = augment(fake_u)
    names = list(rows)
    feats = D.encode(torch.cat([rows[k] for k in names]))
    sizes = [rows[k].shape[0] for k in names]

    def part(name, fs):
        start = sum(sizes[:names.index(name)])
        return [f[start:start + rows[name].shape[0]] for f in fs]

    with_labelled = use_c and loss_cfg.image_head_reals == "all"
    if use_u:
        # The image head: the unconditional reals (drawn from all training images; with
        # image_head_reals=all the labelled reals too) against the unconditional fakes.
        reals = [part("real_u", feats)] + ([part("real_c", feats)] if with_labelled else [])
        real_feats = [torch.cat(fs) for fs in zip(*reals)]
        real_logits = D.image_logits(real_feats)
        fake_logits = D.image_logits(part("fake_u", feats))
        lu = softplus(-real_logits).mean() + softplus(fake_logits).mean()
        logs.update({"d/uncond": lu, "d/real_logit": real_logits.mean(),
                     "d/fake_logit": fake_logits.mean()})
        loss_d = loss_d + loss_cfg.uncond_weight * lu
        ada_signs = real_logits.sign().sum()
    if use_c:
        seg_feats = [torch.cat(fs) for fs in zip(part("real_c", feats), part("fake_c", feats),
                                                  part("mixed", feats))]
        seg = D.seg_logits(seg_feats)  # one pass of the segmentation head, as the trainer
        s_real, s_fake, s_mix = seg[:bc], seg[bc:2 * bc], seg[2 * bc:]
        l_real = seg_real_loss(s_real, label_d, n_cls, dc)
        l_fake = seg_fake_loss(s_fake)
        l_lm = (s_mix - (mask_d * s_real + (1 - mask_d) * s_fake)).square().mean()
        logs.update({"d/cond_real": l_real, "d/cond_fake": l_fake, "d/labelmix": l_lm})
        loss_d = loss_d + loss_cfg.cond_weight * (l_real + l_fake) \
            + loss_cfg.labelmix_weight * l_lm
        if not use_u:  # no image head: ADA follows D_c's real-vs-fake log-odds on real images
            odds = torch.logsumexp(s_real[:, 1:], dim=1) - s_real[:, 0]
            ada_signs = odds.mean(dim=(1, 2)).sign().sum()
    logs["d/total"] = loss_d
    d_grads = [torch.autograd.grad(loss_d, list(D.parameters()), allow_unused=True)]
    if use_u and loss_cfg.r1_gamma > 0 and rec.step_index % loss_cfg.r1_interval == 0:
        # The lazy R1 step: a D step of its own, on D as the main D step left it.
        with torch.no_grad():
            for p, value in zip(D.parameters(), rec.opt_steps["D"][1][1]):
                p.copy_(value)
        reals = [real_u] + ([real_c] if with_labelled else [])
        x = torch.cat(reals).detach().requires_grad_()
        logits = D.image_logits(D.encode(augment(x)))
        (grad,) = torch.autograd.grad(logits.sum(), x, create_graph=True)
        penalty = grad.square().sum(dim=(1, 2, 3)).mean()
        logs["d/r1"] = penalty
        # (γ/2)·E‖∇D_u‖², every `interval` iterations, multiplied by the interval.
        loss_r1 = loss_cfg.r1_gamma / 2 * penalty * loss_cfg.r1_interval
        d_grads.append(torch.autograd.grad(loss_r1, list(D.parameters()), allow_unused=True))
    assert not draws, f"{len(draws)} ADA draws were not used by the reference"
    logs = {k: float(v.detach()) for k, v in logs.items()}
    if ada:
        logs["ada/signs"] = float(ada_signs.detach())
    return logs, [g_grads], d_grads


def assert_grads_match(got, want, names, what):
    for name, g, w in zip(names, got, want):
        if w is None or not bool(w.abs().max() > 0):
            assert g is None or not bool(g.abs().max() > 0), f"{what} {name}: unexpected gradient"
            continue
        assert g is not None, f"{what} {name}: no gradient"
        scale = float(w.abs().max())
        err = float((g - w).abs().max())
        assert err <= 1e-8 * scale, f"{what} {name}: max error {err:.3g} (scale {scale:.3g})"


def check_step(trainer, *, ada, steps_before=0):
    for _ in range(steps_before):
        trainer.train_step()
    if ada:
        trainer.augment.p.fill_(0.8)  # p = 0 would make every transform the identity
    rec = Recorder(trainer).step()
    want, g_grads, d_grads = reference_step(rec, trainer.cfg, ada=ada)
    got = {k: v for k, v in rec.logs.items() if k != "ada/p"}
    if ada:
        got["ada/signs"] = rec.ada_signs  # the statistic that drives p
    assert got.keys() == want.keys()
    for k in want:
        assert got[k] == pytest.approx(want[k], rel=1e-9, abs=1e-12), k
    # One G step; one D step, plus the R1 step when it is due.
    for key, net, grads in (("G", trainer.G, g_grads), ("D", trainer.D, d_grads)):
        assert len(rec.opt_steps[key]) == len(grads), key
        names = [n for n, _ in net.named_parameters()]
        for (got_grads, _), want_grads in zip(rec.opt_steps[key], grads):
            assert_grads_match(got_grads, want_grads, names, key)
    return rec


def test_labelled_reals_on_the_image_head_switch(tmp_path):
    trainer = OCOGANTrainer(tiny_config(*WEIGHTS, "loss.image_head_reals=all", "train.ada=true"),
                            tmp_path, progress=False)
    check_step(trainer, ada=True)


@pytest.mark.parametrize("ada", [False, True], ids=["plain", "ada"])
@pytest.mark.parametrize("r1_step", [True, False], ids=["r1", "no_r1"])
@pytest.mark.parametrize("mode", ["hybrid", "uncond_only", "cond_only"])
def test_training_step_matches_the_reference(tmp_path, mode, ada, r1_step):
    trainer = OCOGANTrainer(tiny_config(*WEIGHTS, f"train.mode={mode}", f"train.ada={ada}"),
                            tmp_path, progress=False)
    rec = check_step(trainer, ada=ada, steps_before=0 if r1_step else 1)
    assert ("d/r1" in rec.logs) == (r1_step and mode != "cond_only")


def test_gumbel_generator_loss_matches_the_reference(tmp_path):
    trainer = OCOGANTrainer(tiny_config(*WEIGHTS, "loss.uncond_seg_loss=gumbel",
                                        "loss.gumbel_tau=0.5", "loss.gumbel_weight=0.3"),
                            tmp_path, progress=False)
    rec = check_step(trainer, ada=False, steps_before=1)
    assert "g/uncond_gumbel_seg" in rec.logs


def test_reference_batches_hold_dontcare_and_several_classes(tmp_path):
    """The checks above are only as strong as their batches: don't-care pixels and several
    classes must be present for the class weights and don't-care handling to matter."""
    trainer = OCOGANTrainer(tiny_config(*WEIGHTS), tmp_path, progress=False)
    rec = Recorder(trainer).step()
    label = rec.fetched["c"][1]
    dc = trainer.cfg.model.dontcare_index
    assert bool((label == dc).any())
    assert len(set(label.unique().tolist()) - {dc}) >= 3
