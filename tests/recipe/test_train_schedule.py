"""What the trainer feeds where and how often: the image head's reals, the lazy R1 schedule and
D's Adam, ADA's p in every mode."""

from __future__ import annotations

import pytest
import torch
from oco_tiny import tiny_config

from recipes.oco_gan.train import OCOGANTrainer


def _image_head_real_rows(trainer, steps):
    """Runs ``steps`` iterations with labelled training images painted +1 and unlabelled ones −1,
    and returns, for every real image that reached D's image head, whether it was labelled.

    A row of the image head's input is traced back to the encoder input it came from (its
    bottleneck features are identical); reals are the rows whose input is exactly ±1.
    """
    labelled = set(trainer.data.labelled_indices)
    get = trainer.data.get

    def painted(index, *, flip, with_label):
        item = get(index, flip=flip, with_label=with_label)
        value = 1.0 if index in labelled else -1.0
        return {"image": torch.full_like(item["image"], value), "label": item["label"]}

    trainer.data.get = painted
    D, last, seen = trainer.D, {}, []
    encode, image_logits = D.encode, D.image_logits

    def spy_encode(x):
        feats = encode(x)
        last["x"], last["f"] = x, feats[-1]
        return feats

    def spy_image_logits(feats):
        for row in feats[-1]:
            k = next(i for i in range(last["f"].shape[0]) if torch.equal(last["f"][i], row))
            x = last["x"][k]
            if bool((x.abs() == 1).all()):
                seen.append(bool(x.flatten()[0] > 0))
        return image_logits(feats)

    D.encode, D.image_logits = spy_encode, spy_image_logits
    for _ in range(steps):
        trainer.train_step()
    return seen


@pytest.mark.parametrize("choice", ["uncond", "all"])
def test_labelled_share_of_the_image_heads_reals(tmp_path, choice):
    # 64 images, 6 labelled (9.4 %); 8 iterations of 8 unconditional reals = one epoch of the
    # unconditional stream, so its labelled share is exactly 6/64.
    cfg = tiny_config("data.regime=semi", "data.labelled=6", "train.batch_uncond=8",
                      "train.batch_cond=8", "loss.r1_gamma=0", f"loss.image_head_reals={choice}")
    trainer = OCOGANTrainer(cfg, tmp_path, progress=False)
    assert len(trainer.data.all_indices) == 64 and len(trainer.data.labelled_indices) == 6
    seen = _image_head_real_rows(trainer, 8)
    if choice == "uncond":  # the data distribution, as Eq. (1) samples it
        assert len(seen) == 64 and sum(seen) == 6
    else:  # the labelled batch too: (6 + 64) / 128 labelled
        assert len(seen) == 128 and sum(seen) == 70


def _count_steps(opt):
    calls = []
    step = opt.step

    def counted(*args, **kwargs):
        calls.append(1)
        return step(*args, **kwargs)

    opt.step = counted
    return calls


def _trainer(tmp_path, *extra):
    return OCOGANTrainer(tiny_config("loss.r1_interval=16", "train.batch_uncond=2",
                                     "train.batch_cond=2", *extra), tmp_path, progress=False)


def _check_adam(trainer, c):
    for group in trainer.opt_d.param_groups:
        assert group["lr"] == pytest.approx(0.002 * c, rel=1e-12)
        assert group["betas"][0] == 0.0
        assert group["betas"][1] == pytest.approx(0.99 ** c, rel=1e-12)
    for group in trainer.opt_g.param_groups:
        assert group["lr"] == 0.002 and tuple(group["betas"]) == (0.0, 0.99)


def test_lazy_r1_runs_as_its_own_d_step_with_corrected_adam(tmp_path):
    trainer = _trainer(tmp_path)
    _check_adam(trainer, 16 / 17)
    d_steps, g_steps = _count_steps(trainer.opt_d), _count_steps(trainer.opt_g)
    r1 = [("d/r1" in trainer.train_step()) for _ in range(17)]
    # R1 is due at iterations 0 and 16: 17 main D steps + 2 R1 steps.
    assert r1 == [True] + [False] * 15 + [True]
    assert len(g_steps) == 17
    assert len(d_steps) == 19
    # Adam's own count: the encoder takes part in every D step, the segmentation head's output
    # layer only in the main ones.
    state = trainer.opt_d.state
    enc = next(trainer.D.encoder.parameters())
    seg = next(trainer.D.seg_out.parameters())
    assert int(state[enc]["step"]) == 19
    assert int(state[seg]["step"]) == 17


def test_without_r1_adam_is_not_corrected(tmp_path):
    trainer = _trainer(tmp_path, "loss.r1_gamma=0")
    _check_adam(trainer, 1.0)
    d_steps = _count_steps(trainer.opt_d)
    assert not any("d/r1" in trainer.train_step() for _ in range(2))
    assert len(d_steps) == 2


@pytest.mark.parametrize("mode", ["hybrid", "uncond_only", "cond_only"])
def test_ada_p_moves_in_every_mode(tmp_path, mode):
    trainer = OCOGANTrainer(tiny_config(f"train.mode={mode}", "train.ada=true",
                                        "train.ada_interval=1", "train.ada_kimg=0.01",
                                        "train.batch_uncond=2", "train.batch_cond=2"),
                            tmp_path, progress=False)
    trainer.augment.p.fill_(0.5)
    trainer.train_step()
    # r_t is a multiple of 1/2 (two reals), never the target 0.6: p moved by ±2/10.
    assert float(trainer.augment.p) == pytest.approx(0.5 + 0.2 * float(
        torch.sign(trainer.augment.rt - 0.6)), abs=1e-6)
    assert float(trainer.augment.p) != pytest.approx(0.5)
