"""The EMA generator: its value after k steps, its buffers, and who uses it."""

from __future__ import annotations

import pytest
import torch
from oco_tiny import tiny_config

from recipes.oco_gan.train import OCOGANTrainer


def _params(module):
    return {k: v.detach().clone() for k, v in module.named_parameters()}


def test_ema_after_k_steps_follows_the_formula_with_rampup(tmp_path):
    decay, rampup, k = 0.8, 3, 5
    trainer = OCOGANTrainer(tiny_config("train.dtype=float64", f"train.ema_decay={decay}",
                                        f"train.ema_rampup_steps={rampup}"),
                            tmp_path, progress=False)
    history = [_params(trainer.G)]
    for _ in range(k):
        trainer.train_step()
        history.append(_params(trainer.G))  # G's weights after this iteration's G step
    # shadow_0 = θ_0; update t (t = 0, 1, ...) uses β_t = min(decay, (1 + t) / (10 + t)) during
    # the ramp-up (t < rampup), decay after it: shadow ← β_t·shadow + (1 − β_t)·θ_{t+1}.
    expected = dict(history[0])
    for t, theta in enumerate(history[1:]):
        beta = min(decay, (1 + t) / (10 + t)) if t < rampup else decay
        expected = {n: beta * expected[n] + (1 - beta) * theta[n] for n in expected}
    shadow = _params(trainer.ema.shadow)
    assert shadow.keys() == expected.keys()
    for n in expected:
        torch.testing.assert_close(shadow[n], expected[n], rtol=1e-12, atol=1e-14, msg=n)
    # An average, not G itself.
    assert any(not torch.allclose(shadow[n], history[-1][n]) for n in shadow)
    # The EMA state is saved: the update count drives the ramp-up after a resume.
    assert trainer.ema.num_updates == k


def test_ema_copies_buffers(tmp_path):
    trainer = OCOGANTrainer(tiny_config("train.dtype=float64"), tmp_path, progress=False)
    name, buf = next(iter(trainer.G.named_buffers()))
    with torch.no_grad():
        buf.mul_(1.5)  # a changed buffer of G (here a resampling filter)
    trainer.train_step()
    shadow = dict(trainer.ema.shadow.named_buffers())
    for n, b in trainer.G.named_buffers():
        assert torch.equal(shadow[n], b), n  # copied, not averaged
        assert shadow[n].data_ptr() != b.data_ptr(), n  # a copy, not shared storage
    assert torch.equal(shadow[name], buf)


def test_samples_and_loaded_generators_use_the_ema_weights(tmp_path, monkeypatch):
    from recipes.oco_gan import evaluate as evaluate_mod
    from recipes.oco_gan import generate

    trainer = OCOGANTrainer(tiny_config("train.ema_decay=0.9", "train.ema_rampup_steps=0"),
                            tmp_path, progress=False)
    trainer.fit(steps=3)
    ema_params, raw_params = _params(trainer.ema.shadow), _params(trainer.G)
    assert any(not torch.equal(ema_params[n], raw_params[n]) for n in ema_params)

    # oco-gan generate / evaluate load the checkpoint's G_ema by default.
    loaded = generate.load_generator(tmp_path / "checkpoint.pt")
    assert loaded.ema
    for n, v in loaded.G.named_parameters():
        torch.testing.assert_close(v, ema_params[n], rtol=0, atol=0, msg=n)
    raw = generate.load_generator(tmp_path / "checkpoint.pt", ema=False)
    for n, v in raw.G.named_parameters():
        torch.testing.assert_close(v, raw_params[n], rtol=0, atol=0, msg=n)

    seen = {}

    class Stop(Exception):
        pass

    def spy(path, *, device=None, ema=True):
        seen["ema"] = ema
        raise Stop

    monkeypatch.setattr(generate, "load_generator", spy)
    with pytest.raises(Stop):
        evaluate_mod.evaluate_run(tmp_path)
    assert seen == {"ema": True}

    # The training sample grids are drawn by the EMA generator, never by G.
    calls = {"G": 0, "ema": 0}
    monkeypatch.setattr(trainer.G, "forward", lambda *a, **k: calls.__setitem__("G", 1))
    shadow_forward = trainer.ema.shadow.forward

    def counted(*args, **kwargs):
        calls["ema"] += 1
        return shadow_forward(*args, **kwargs)

    monkeypatch.setattr(trainer.ema.shadow, "forward", counted)
    trainer.write_samples("check.png")
    assert calls["G"] == 0 and calls["ema"] >= 2
