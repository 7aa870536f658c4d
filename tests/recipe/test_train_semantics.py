"""What a run of the trainer does around its steps: config checks, the sample streams, the
checkpoint / sample / log schedules, images seen, exact resume of every state, graceful stops,
full disks, the progress figures, and what a multi-process run shares.

Fast (tiny configs, a few iterations each): these tests also serve the mutation runs of
``recipes/oco_gan/train.py`` (``tools/mutate.py``).
"""

from __future__ import annotations

import copy
import errno
import json
import signal
from typing import ClassVar

import numpy as np
import pytest
import torch
from oco_tiny import tiny_config
from PIL import Image
from testutils import requires_cuda

from ganblocks.train import DistributedContext
from recipes.oco_gan import train as train_mod
from recipes.oco_gan.config import ConfigError, OCOGANConfig
from recipes.oco_gan.model import Discriminator, Generator
from recipes.oco_gan.train import OCOGANTrainer
from recipes.oco_gan.visualize import to_uint8

IMAGES_PER_STEP = 6  # tiny_config: batch_uncond=4 + batch_cond=2 (global batch sizes)


def _trainer(path, *extra, **kwargs):
    kwargs.setdefault("progress", False)
    return OCOGANTrainer(tiny_config(*extra), path, **kwargs)


def _state(module):
    return {k: v.detach().clone() for k, v in module.state_dict().items()
            if isinstance(v, torch.Tensor)}


def _assert_equal_states(a, b):
    assert a.keys() == b.keys()
    for k in a:
        torch.testing.assert_close(a[k], b[k], rtol=0, atol=0, msg=k)


def _metrics(run):
    return [json.loads(line) for line in (run / "metrics.jsonl").read_text().splitlines()]


def _record_calls(monkeypatch, trainer, name):
    """Wrap ``trainer.<name>`` so that the trainer's step at each call is recorded."""
    steps, method = [], getattr(trainer, name)

    def wrapper(*args, **kwargs):
        steps.append(trainer.step)
        return method(*args, **kwargs)

    monkeypatch.setattr(trainer, name, wrapper)
    return steps


# -- configuration and start ---------------------------------------------------------------------
def test_an_invalid_config_is_refused_by_name_before_anything_is_written(tmp_path):
    cfg = tiny_config()
    cfg.train.checkpoint_every = 0  # set after the overrides' own checks
    run = tmp_path / "run"
    with pytest.raises(ConfigError, match=r"train\.checkpoint_every"):
        OCOGANTrainer(cfg, run, progress=False)
    assert not run.exists()
    with pytest.raises(ValueError, match="config"):
        OCOGANTrainer(None, run, progress=False)
    with pytest.raises(FileNotFoundError, match="--resume: no checkpoint at"):
        OCOGANTrainer(None, run, resume=True, progress=False)
    assert not run.exists()


def test_the_run_directory_records_config_and_history(tmp_path):
    run = tmp_path / "new" / "run"  # created with its parents
    cfg = tiny_config("train.seed=3")
    trainer = OCOGANTrainer(cfg, run, progress=False)
    assert OCOGANConfig.load(run / "config.json").to_dict() == cfg.to_dict()
    trainer.fit(steps=1)
    OCOGANTrainer(None, run, resume=True, progress=False)
    more = tiny_config("train.seed=3", "train.steps=7")  # a longer run: a change safe on resume
    resumed = OCOGANTrainer(more, run, resume=True, progress=False)
    assert resumed.cfg.train.steps == 7
    assert OCOGANConfig.load(run / "config.json").to_dict() == more.to_dict()
    events = [json.loads(line) for line in (run / "history.jsonl").read_text().splitlines()]
    assert [(e["event"], e["step"]) for e in events] == [("start", 0), ("resume", 1),
                                                         ("resume", 1)]
    assert events[1]["changes"] == {}
    assert events[2]["changes"] == {"train.steps": [cfg.train.steps, 7]}


def test_resume_drops_metrics_logged_after_the_checkpoint(tmp_path):
    _trainer(tmp_path).fit(steps=2)
    with open(tmp_path / "metrics.jsonl", "a") as f:  # step 3 was logged, then the run died
        f.write(json.dumps({"step": 3, "time": 0.0, "g/total": 1.0}) + "\n")
    resumed = OCOGANTrainer(None, tmp_path, resume=True, progress=False)
    assert [r["step"] for r in _metrics(tmp_path)] == [1, 2]
    resumed.fit(steps=3)
    assert [r["step"] for r in _metrics(tmp_path)] == [1, 2, 3]


@pytest.mark.parametrize(("mode", "per_step"), [("uncond_only", 4), ("cond_only", 2)])
def test_images_seen_count_the_branches_in_use(tmp_path, mode, per_step):
    trainer = _trainer(tmp_path, f"train.mode={mode}")
    trainer.fit(steps=2)
    assert trainer.images_seen == 2 * per_step
    assert [r["kimg"] for r in _metrics(tmp_path)] == pytest.approx(
        [per_step / 1000, 2 * per_step / 1000], abs=1e-12)


@pytest.mark.parametrize(("extra", "corrected"), [
    ((), True), (("loss.r1_gamma=0.5", "loss.r1_interval=4"), True),
    (("loss.r1_gamma=0",), False), (("train.mode=cond_only",), False)])
def test_d_adam_is_corrected_only_for_lazy_r1(tmp_path, extra, corrected):
    """Lazy R1 every k iterations: D's Adam takes lr·c and β^c, c = k / (k + 1) (StyleGAN2's
    lazy regularisation); without R1 (γ = 0, or no image head) the plain settings."""
    trainer = _trainer(tmp_path, *extra)
    t, k = trainer.cfg.train, trainer.cfg.loss.r1_interval
    c = k / (k + 1) if corrected else 1.0
    for group in trainer.opt_d.param_groups:
        assert group["lr"] == pytest.approx(t.lr_d * c, rel=1e-12)
        assert tuple(group["betas"]) == pytest.approx((t.betas[0] ** c, t.betas[1] ** c),
                                                      rel=1e-12)
    for group in trainer.opt_g.param_groups:
        assert group["lr"] == t.lr_g and tuple(group["betas"]) == tuple(t.betas)


@pytest.mark.parametrize(("precision", "dtype"), [("none", torch.float32),
                                                  ("bf16", torch.bfloat16),
                                                  ("fp16", torch.float16)])
def test_mixed_precision_runs_d_in_the_named_dtype(tmp_path, precision, dtype):
    trainer = _trainer(tmp_path, f"train.mixed_precision={precision}", "loss.r1_gamma=0")
    seen, encode = [], trainer.D.encode

    def spy(x):
        feats = encode(x)
        seen.append(feats[-1].dtype)
        return feats

    trainer.D.encode = spy
    trainer.train_step()
    assert seen == [dtype, dtype]  # the G step's and the D step's forward passes


def test_init_from_another_run_takes_its_weights_but_not_on_resume(tmp_path):
    source = _trainer(tmp_path / "source")
    source.fit(steps=1)
    run = tmp_path / "run"
    started = _trainer(run, "train.seed=5", f"train.init_from={tmp_path / 'source'}")
    for mine, theirs in ((started.G, source.G), (started.D, source.D),
                         (started.ema.shadow, source.ema.shadow)):
        _assert_equal_states(_state(mine), _state(theirs))
    assert started.step == 0
    with torch.no_grad():
        for p in started.G.parameters():
            p.mul_(0.5)  # weights of its own, saved in its checkpoint
    started.save_checkpoint()
    resumed = OCOGANTrainer(None, run, resume=True, progress=False)
    _assert_equal_states(_state(resumed.G), _state(started.G))


def test_same_seed_same_initial_weights(tmp_path):
    a = _trainer(tmp_path / "a", "train.seed=3")
    torch.randn(100)  # whatever the global generator's state before the next run
    b = _trainer(tmp_path / "b", "train.seed=3")
    c = _trainer(tmp_path / "c", "train.seed=4")
    for name in ("G", "D"):
        _assert_equal_states(_state(getattr(a, name)), _state(getattr(b, name)))
    _assert_equal_states(_state(a.ema.shadow), _state(a.G))  # the EMA starts from G
    assert not torch.equal(a.G.synthesis.const, c.G.synthesis.const)
    assert a.step == 0 and a.images_seen == 0


def test_every_rank_starts_from_rank_0s_weights(tmp_path):
    """Under torchrun each process builds its networks, then takes rank 0's (a broadcast): G, D
    and the EMA copy of G must all start from them."""
    rank0 = _trainer(tmp_path / "rank0")
    ctx = DistributedContext()
    broadcast = []

    def from_rank0(module, src=0):  # what dist.broadcast does on a rank other than src
        assert src == 0
        source = {Generator: rank0.G, Discriminator: rank0.D}[type(module)]
        module.load_state_dict(source.state_dict())
        broadcast.append(type(module))

    ctx.broadcast_module = from_rank0
    other = _trainer(tmp_path / "other", "train.seed=7", ctx=ctx)  # a different initialisation
    assert sorted(m.__name__ for m in broadcast) == ["Discriminator", "Generator"]
    _assert_equal_states(_state(other.G), _state(rank0.G))
    _assert_equal_states(_state(other.D), _state(rank0.D))
    _assert_equal_states(_state(other.ema.shadow), _state(rank0.G))


def test_a_step_trains_in_training_mode(tmp_path):
    trainer = _trainer(tmp_path)
    trainer.G.eval()  # as a sampling or evaluation callback might leave them
    trainer.D.eval()
    trainer.train_step()
    assert trainer.G.training and trainer.D.training


def test_reals_reach_d_in_the_runs_dtype_and_memory_format(tmp_path):
    trainer = _trainer(tmp_path, "train.dtype=float64", "train.channels_last=true")
    seen, encode = [], trainer.D.encode

    def spy(x):
        seen.append(x)
        return encode(x)

    trainer.D.encode = spy
    trainer.train_step()  # G step, D step and R1 step (iteration 0)
    assert len(seen) == 3
    for x in seen:
        assert x.dtype == torch.float64
        assert x.is_contiguous(memory_format=torch.channels_last)
    for net in (trainer.G, trainer.D):
        weights = [p for p in net.parameters() if p.ndim == 4 and min(p.shape[1:]) > 1]
        assert weights and all(p.is_contiguous(memory_format=torch.channels_last)
                               for p in weights)
    plain = _trainer(tmp_path / "plain")
    for net in (plain.G, plain.D):
        assert all(p.is_contiguous() for p in net.parameters())


# -- the sample streams --------------------------------------------------------------------------
def _draws(trainer, steps):
    """The ``(index, flip)`` keys of the conditional (labelled) and unconditional reals fetched in
    ``steps`` iterations, in order."""
    cond, uncond, get = [], [], trainer.data.get

    def spy(index, *, flip, with_label):
        (cond if with_label else uncond).append((index, flip))
        return get(index, flip=flip, with_label=with_label)

    trainer.data.get = spy
    for _ in range(steps):
        trainer.train_step()
    return cond, uncond


def test_sample_streams_depend_on_the_seed_and_are_independent(tmp_path):
    extra = ("train.batch_cond=4", "loss.r1_gamma=0")
    c5, u5 = _draws(_trainer(tmp_path / "a", "train.seed=5", *extra), 2)
    c6, u6 = _draws(_trainer(tmp_path / "b", "train.seed=6", *extra), 2)
    assert len(c5) == len(u5) == 8  # 2 × batch_cond and 2 × batch_uncond
    assert c5 != c6 and u5 != u6
    # Every image is labelled here (regime full): the two branches still see different orders,
    # not the same images at the same time.
    assert c5 != u5 and c6 != u6
    # Reproducible: the same seed draws the same keys.
    assert _draws(_trainer(tmp_path / "c", "train.seed=5", *extra), 2) == (c5, u5)


def test_data_flip_false_never_flips(tmp_path):
    cond, uncond = _draws(_trainer(tmp_path / "off", "data.flip=false", "loss.r1_gamma=0"), 2)
    assert not any(f for _, f in cond + uncond)
    cond, uncond = _draws(_trainer(tmp_path / "on", "loss.r1_gamma=0"), 2)
    assert {f for _, f in cond + uncond} == {False, True}


def _first_aug_draws(trainer, steps):
    """The first augmentation draw (its geometric matrices) of each of ``steps`` iterations."""
    draws, sample = {}, trainer.augment.sample

    def spy(*args, **kwargs):
        draw = sample(*args, **kwargs)
        draws.setdefault(trainer.step, draw.geometric.clone())
        return draw

    trainer.augment.sample = spy
    for _ in range(steps):
        trainer.train_step()
    return [draws[k] for k in sorted(draws)]


def test_augmentation_draws_differ_per_step_rank_and_seed(tmp_path):
    """ADA's draws are seeded by (seed, iteration, rank): reproducible without saved state, yet
    different in every iteration, on every process and for every seed."""
    extra = ("train.ada=true", "loss.r1_gamma=0")

    def run(name, *more, ctx=None, steps=1, start=0):
        trainer = _trainer(tmp_path / name, *extra, *more, ctx=ctx)
        trainer.augment.p.fill_(0.5)
        trainer.step = start  # where a resumed run would be
        return _first_aug_draws(trainer, steps)

    base = run("a", steps=3)
    assert run("b")[0].equal(base[0])  # reproducible
    later = run("c", start=126)  # a run resumed at iteration 126
    distinct = [*base, later[0], run("d", "train.seed=4")[0]]
    for i, a in enumerate(distinct):
        for b in distinct[i + 1:]:
            assert not a.equal(b)
    rank0 = run("e", ctx=_TwoRanks(0), steps=2)
    rank1 = run("e", ctx=_TwoRanks(1))
    assert not rank1[0].equal(rank0[0]) and not rank1[0].equal(rank0[1])


# -- schedules and the files of a run ------------------------------------------------------------
def test_checkpoint_sample_and_log_schedules(tmp_path, monkeypatch):
    trainer = _trainer(tmp_path, "train.checkpoint_every=2", "train.sample_every=3",
                       "train.log_every=2")
    saves = _record_calls(monkeypatch, trainer, "save_checkpoint")
    samples = _record_calls(monkeypatch, trainer, "write_samples")
    _Logger.made = []
    monkeypatch.setattr(train_mod, "MetricsLogger", _Logger)
    summary = trainer.fit(steps=5)
    assert [log.closed for log in _Logger.made] == [True]
    assert saves == [2, 4, 5]  # every 2 iterations, and at the end
    assert samples == [3, 5]
    assert torch.load(tmp_path / "checkpoint.pt", weights_only=False)["step"] == 5
    assert torch.load(tmp_path / "checkpoint.prev.pt", weights_only=False)["step"] == 4
    names = sorted(p.name for p in (tmp_path / "samples").iterdir())
    assert names == ["latest.png", "step_0000003.png", "step_0000005.png"]
    # Logged every 2 iterations and at the last; kimg = images seen / 1000.
    rows = _metrics(tmp_path)
    assert [r["step"] for r in rows] == [2, 4, 5]
    for r in rows:
        assert r["kimg"] == pytest.approx(r["step"] * IMAGES_PER_STEP / 1000, abs=1e-12)
        assert {"g/total", "d/total"} <= r.keys()
    assert summary["step"] == 5 and summary["images_seen"] == 5 * IMAGES_PER_STEP
    assert summary["interrupted"] is False
    assert summary["checkpoint"] == tmp_path / "checkpoint.pt"
    assert summary["samples"] == tmp_path / "samples" / "step_0000005.png"
    # Nothing left to do (a finished run resumed): no step, and no interrupt to report.
    again = trainer.fit(steps=5)
    assert (again["step"], again["interrupted"]) == (5, False)
    assert [r["step"] for r in _metrics(tmp_path)] == [2, 4, 5]


def test_snapshots_every_keep_every_images(tmp_path):
    trainer = _trainer(tmp_path, "train.keep_every=12")  # 12 images = every 2 iterations
    trainer.fit(steps=5)
    names = sorted(p.name for p in (tmp_path / "snapshots").iterdir())
    assert names == ["checkpoint_step0000002.pt", "checkpoint_step0000004.pt"]
    snap = torch.load(tmp_path / "snapshots" / names[0], weights_only=False)
    assert snap["step"] == 2 and snap["images_seen"] == 12
    assert not list((tmp_path / "snapshots").glob("*prev*"))  # copies keep no previous one


def test_periodic_evaluation_is_logged_at_its_step(tmp_path):
    trainer = _trainer(tmp_path, "train.eval_every=12", "train.eval_num=8", "train.eval_batch=8",
                       "train.eval_features=randconv")  # 12 images: every 2 iterations
    trainer.fit(steps=3)
    rows = _metrics(tmp_path)
    evals = [r for r in rows if "eval/fid" in r]
    assert [r["step"] for r in evals] == [2]
    assert evals[0]["eval/best_fid"] == evals[0]["eval/fid"] == trainer.selection.best
    assert torch.load(tmp_path / "best.pt", weights_only=False)["step"] == 2


def test_save_checkpoint_to_a_new_folder(tmp_path):
    trainer = _trainer(tmp_path)
    trainer.train_step()
    path = trainer.save_checkpoint(tmp_path / "kept" / "copy.pt")
    assert path == tmp_path / "kept" / "copy.pt"
    assert torch.load(path, weights_only=False)["step"] == 1
    assert sorted(p.name for p in (tmp_path / "kept").iterdir()) == ["copy.pt"]
    trainer.save_checkpoint()
    trainer.train_step()
    trainer.save_checkpoint()  # the run's own checkpoint keeps the one before
    assert torch.load(tmp_path / "checkpoint.prev.pt", weights_only=False)["step"] == 1
    assert torch.load(tmp_path / "checkpoint.pt", weights_only=False)["step"] == 2


@pytest.mark.parametrize(("height", "width", "scale"), [(16, 32, 8), (128, 128, 1)])
def test_sample_grids_enlarge_small_images(tmp_path, height, width, scale):
    """Images less than 128 pixels high are enlarged (by 128 // height, nearest neighbour)."""
    trainer = _trainer(tmp_path, f"model.resolution={height},{width}",
                       f"model.style_size=4,{4 * width // height}", "train.num_samples=2")
    grid = np.asarray(Image.open(trainer.write_samples()))
    assert grid.shape == (2 * height * scale, 8 * width * scale, 3)


def test_sample_grid_layout(tmp_path):
    trainer = _trainer(tmp_path, "train.num_samples=2")
    path = trainer.write_samples(name="grid.png")
    grid = np.asarray(Image.open(path))
    # 2 rows (fixed validation maps) × 8 columns (label, real, 3 conditional, 3 unconditional)
    # of 16×16 images, enlarged to at least 128 pixels per image: ×8, nearest neighbour.
    assert grid.shape == (2 * 128, 8 * 128, 3)
    small = grid[::8, ::8]
    assert np.array_equal(np.repeat(np.repeat(small, 8, 0), 8, 1), grid)
    for row in range(2):
        real = trainer.data.val.get_item(row, flip=False)["image"]
        tile = small[row * 16:(row + 1) * 16, 16:32]
        assert np.array_equal(tile, to_uint8(real[None])[0].permute(1, 2, 0).numpy())
    cols = [small[:, k * 16:(k + 1) * 16] for k in range(8)]
    for a in range(2, 8):  # six different samples (different latents)
        for b in range(a + 1, 8):
            assert not np.array_equal(cols[a], cols[b]), (a, b)
    assert np.array_equal(np.asarray(Image.open(tmp_path / "samples" / "latest.png")), grid)
    # Fixed latents and maps: the same EMA generator draws the same grid; the samples are the
    # EMA generator's (a change of G alone changes nothing).
    with torch.no_grad():
        for p in trainer.G.parameters():
            p.add_(1.0)
    assert np.array_equal(np.asarray(Image.open(trainer.write_samples(name="again.png"))), grid)
    with torch.no_grad():
        for p in trainer.ema.shadow.parameters():
            p.mul_(0.5)
    other = np.asarray(Image.open(trainer.write_samples(name="changed.png")))[::8, ::8]
    assert np.array_equal(other[:, :32], small[:, :32])  # label and real columns
    assert not np.array_equal(other[:, 32:], small[:, 32:])


# -- resume --------------------------------------------------------------------------------------
def test_resume_restores_counters_ema_ada_and_selection(tmp_path):
    extra = ("train.ada=true", "train.ada_interval=1", "train.ada_kimg=0.1")
    first = _trainer(tmp_path, *extra)
    first.augment.p.fill_(0.5)
    first.fit(steps=2)
    first.selection.best, first.selection.best_step = 7.25, 2  # as if an evaluation ran
    first.save_checkpoint()
    saved_ada = copy.deepcopy(first.augment.state_dict())
    assert float(saved_ada["p"]) not in (0.0, 0.5)  # p moved away from its start
    saved_ema = _state(first.ema.shadow)
    assert first.ema.num_updates == 2

    second = OCOGANTrainer(None, tmp_path, resume=True, progress=False)
    assert (second.step, second.images_seen) == (2, 2 * IMAGES_PER_STEP)
    assert second.augment.state_dict().keys() == saved_ada.keys()
    for k, v in second.augment.state_dict().items():
        if isinstance(v, torch.Tensor):  # p and the running statistic of the overfitting rate
            torch.testing.assert_close(v, saved_ada[k], rtol=0, atol=0, equal_nan=True, msg=k)
        else:
            assert v == saved_ada[k], k
    _assert_equal_states(_state(second.ema.shadow), saved_ema)
    assert second.ema.num_updates == 2
    _assert_equal_states(_state(second.G), _state(first.G))
    _assert_equal_states(_state(second.D), _state(first.D))
    assert (second.selection.best, second.selection.best_step) == (7.25, 2)
    second.fit(steps=3)
    rows = _metrics(tmp_path)
    assert [r["step"] for r in rows] == [1, 2, 3]
    assert [r["kimg"] for r in rows] == pytest.approx([0.006, 0.012, 0.018], abs=1e-12)
    assert rows[-1]["ada/p"] == float(second.augment.p)


def test_resume_continues_exactly(tmp_path):
    straight = _trainer(tmp_path / "straight")
    cond, uncond = _draws(straight, 3)
    _trainer(tmp_path / "resumed").fit(steps=2)
    resumed = OCOGANTrainer(None, tmp_path / "resumed", resume=True, progress=False)
    # the third iteration draws what a straight run draws (2 labelled, 4 unconditional reals)
    assert _draws(resumed, 1) == (cond[4:], uncond[8:])
    for name in ("G", "D"):
        _assert_equal_states(_state(getattr(resumed, name)), _state(getattr(straight, name)))
    _assert_equal_states(_state(resumed.ema.shadow), _state(straight.ema.shadow))
    for opt in ("opt_g", "opt_d"):
        a, b = getattr(resumed, opt).state_dict(), getattr(straight, opt).state_dict()
        assert a["state"].keys() == b["state"].keys()
        for k in a["state"]:
            _assert_equal_states(a["state"][k], b["state"][k])


def test_resume_restores_the_fp16_loss_scale(tmp_path):
    first = _trainer(tmp_path, "train.mixed_precision=fp16")
    first.train_step()
    first.scaler.update(new_scale=1024.0)  # as after overflows backed the scale off
    first.save_checkpoint()
    resumed = OCOGANTrainer(None, tmp_path, resume=True, progress=False)
    assert resumed.scaler.is_enabled() and resumed.scaler.get_scale() == 1024.0


def test_frozen_parts_are_left_out_of_the_optimisers(tmp_path):
    trainer = _trainer(tmp_path, "train.freeze=uncond_style,d_encoder")
    frozen = {*trainer.G.uncond_style.parameters(), *trainer.D.encoder.parameters()}
    for net, opt in ((trainer.G, trainer.opt_g), (trainer.D, trainer.opt_d)):
        in_opt = {p for group in opt.param_groups for p in group["params"]}
        assert in_opt == {p for p in net.parameters() if p not in frozen}
        assert all(p.requires_grad == (p not in frozen) for p in net.parameters())


def test_resume_of_a_run_without_ada(tmp_path):
    _trainer(tmp_path).fit(steps=1)
    assert torch.load(tmp_path / "checkpoint.pt", weights_only=False)["augment"] is None
    assert OCOGANTrainer(None, tmp_path, resume=True, progress=False).augment is None


# -- stopping ------------------------------------------------------------------------------------
def test_an_interrupt_stops_after_the_step_with_a_checkpoint(tmp_path, monkeypatch):
    trainer = _trainer(tmp_path)
    step = trainer.train_step

    def step_then_signal():
        logs = step()
        if trainer.step == 2:
            signal.raise_signal(signal.SIGINT)  # Ctrl-C during iteration 2
        return logs

    monkeypatch.setattr(trainer, "train_step", step_then_signal)
    summary = trainer.fit(steps=10)
    assert summary["interrupted"] is True
    assert summary["step"] == 2 and summary["images_seen"] == 2 * IMAGES_PER_STEP
    assert torch.load(tmp_path / "checkpoint.pt", weights_only=False)["step"] == 2
    assert [r["step"] for r in _metrics(tmp_path)] == [1, 2]
    assert (tmp_path / "samples" / "step_0000002.png").is_file()


class _Logger(train_mod.MetricsLogger):
    made: ClassVar[list] = []

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self.closed = False
        _Logger.made.append(self)

    def close(self):
        self.closed = True
        super().close()


@pytest.mark.parametrize("fail_at", [1, 2])
def test_a_full_disk_names_the_step_and_the_intact_checkpoint(tmp_path, monkeypatch, fail_at):
    trainer = _trainer(tmp_path, "train.checkpoint_every=1")
    save = trainer.save_checkpoint

    def save_until_full(*args, **kwargs):
        if trainer.step >= fail_at:
            raise OSError(errno.ENOSPC, "No space left on device")
        return save(*args, **kwargs)

    monkeypatch.setattr(trainer, "save_checkpoint", save_until_full)
    _Logger.made = []
    monkeypatch.setattr(train_mod, "MetricsLogger", _Logger)  # TensorBoard needs its close()
    with pytest.raises(OSError, match=f"no space left on device at step {fail_at}") as info:
        trainer.fit(steps=4)
    assert info.value.errno == errno.ENOSPC
    if fail_at == 1:
        assert "no checkpoint was written yet" in str(info.value)
    else:
        assert f"the last checkpoint {tmp_path / 'checkpoint.pt'} is intact" in str(info.value)
        assert torch.load(tmp_path / "checkpoint.pt", weights_only=False)["step"] == 1
    assert [log.closed for log in _Logger.made] == [True]  # metrics flushed and closed


# -- progress, timing ----------------------------------------------------------------------------
class _Clock:
    """``time.time``/``perf_counter`` that read ``start`` once, then ``start + jump`` forever."""

    def __init__(self, jump):
        self.jump, self.calls = jump, 0

    def time(self):
        self.calls += 1
        return 1000.0 if self.calls == 1 else 1000.0 + self.jump

    perf_counter = time


class _Bar:
    """Records what the progress bar would show."""

    made: ClassVar[list] = []

    def __init__(self, *, total=None, initial=0, desc=None, **_):
        self.total, self.n, self.desc, self.postfix, self.closed = total, initial, desc, {}, False
        self.initial = initial
        _Bar.made.append(self)

    def update(self, k):
        self.n += k

    def set_postfix(self, **kw):
        self.postfix = kw

    def close(self):
        self.closed = True


@pytest.fixture
def bar(monkeypatch):
    import tqdm

    _Bar.made = []
    monkeypatch.setattr(tqdm, "tqdm", _Bar)
    return _Bar.made


def test_progress_counts_and_images_per_second_after_resume(tmp_path, monkeypatch, bar):
    _trainer(tmp_path).fit(steps=2)
    resumed = OCOGANTrainer(None, tmp_path, resume=True, progress=True)
    monkeypatch.setattr(train_mod, "time", _Clock(jump=4.0))  # the run takes 4 s
    summary = resumed.fit(steps=5)
    (b,) = bar
    assert (b.initial, b.total, b.n, b.closed) == (2, 5, 5, True)
    assert b.desc == "oco-gan train"
    # 3 iterations of 6 images in 4 s: 4.5 images/s (this run's, not the resumed ones)
    assert float(b.postfix["img_s"]) == 4.5
    last = _metrics(tmp_path)[-1]
    assert float(b.postfix["d"]) == pytest.approx(last["d/total"], abs=1e-3)
    assert float(b.postfix["g"]) == pytest.approx(last["g/total"], abs=1e-3)
    assert summary["seconds"] == 4.0


def test_a_time_limited_run_stops_after_the_step_that_ran_out(tmp_path, monkeypatch, bar):
    trainer = _trainer(tmp_path, "train.steps=50", progress=True)
    monkeypatch.setattr(train_mod, "time", _Clock(jump=90.0))
    summary = trainer.fit(max_seconds=60)  # 90 s after the start, the limit is passed
    (b,) = bar
    assert b.total is None and b.desc == "oco-gan train (1 min)"
    assert summary["step"] == 1 and summary["interrupted"] is False
    assert torch.load(tmp_path / "checkpoint.pt", weights_only=False)["step"] == 1
    monkeypatch.setattr(train_mod, "time", _Clock(jump=30.0))
    assert trainer.fit(steps=3, max_seconds=60)["step"] == 3  # within the limit: all steps
    assert bar[1].total == 3 and bar[1].desc == "oco-gan train"


class _Ticks:
    """A ``perf_counter`` that advances by exactly one second per reading, or not at all."""

    def __init__(self, tick):
        self.now, self.tick = 5.0, tick

    def perf_counter(self):
        self.now += self.tick
        return self.now


def test_phase_timings_accumulate_the_clock(tmp_path, monkeypatch):
    trainer = _trainer(tmp_path, "loss.r1_gamma=0")  # the same phases in every iteration
    trainer.timings = {}
    monkeypatch.setattr(train_mod, "time", _Ticks(0.0))
    trainer.train_step()  # a clock that does not move: no time spent anywhere
    assert "data" in trainer.timings and set(trainer.timings.values()) == {0.0}
    trainer.timings = {}
    monkeypatch.setattr(train_mod, "time", _Ticks(1.0))
    trainer.train_step()
    once = dict(trainer.timings)
    assert once.keys() == {"data", "G step: G forward", "G step: D forward",
                           "G step: backward + Adam + EMA", "D step: G forward (no grad)",
                           "D step: D forward", "D step: backward + Adam"}
    assert all(v >= 1.0 and v == int(v) for v in once.values()), once
    trainer.train_step()  # a second, identical iteration doubles every phase's time
    assert trainer.timings == {k: 2 * v for k, v in once.items()}


# -- several processes ---------------------------------------------------------------------------
class _TwoRanks(DistributedContext):
    """Rank ``rank`` of 2, whose partner process computes the same values plus 1 (for logged
    values) or the same values (gradients, pixel counts)."""

    def __init__(self, rank=0):
        super().__init__(rank=rank, world_size=2)

    def barrier(self):
        pass

    def all_reduce_mean_(self, tensor):
        return tensor.add_(0.5)  # (x + (x + 1)) / 2

    def all_reduce_sum_(self, tensor):
        return tensor.mul_(2)

    def any(self, flag):
        return bool(flag)

    def sync_gradients(self, params):
        pass

    def broadcast_module(self, module, src=0):
        pass


def test_logged_losses_are_the_mean_over_processes(tmp_path, monkeypatch):
    trainer = _trainer(tmp_path, ctx=_TwoRanks())
    mine, step = [], trainer.train_step
    monkeypatch.setattr(trainer, "train_step", lambda: mine.append(step()) or mine[-1])
    trainer.fit(steps=2)
    rows = _metrics(tmp_path)
    assert [r["step"] for r in rows] == [1, 2]
    for r, logs in zip(rows, mine):
        assert logs.keys() <= r.keys()
        for k, v in logs.items():
            assert r[k] == pytest.approx(v + 0.5, rel=1e-12, abs=1e-12), k
        # images seen count the global batch of both processes
        assert r["kimg"] == pytest.approx(r["step"] * IMAGES_PER_STEP / 1000, abs=1e-12)


def test_only_rank_0_writes_files(tmp_path):
    _trainer(tmp_path, ctx=_TwoRanks(0))
    before = sorted(p.name for p in tmp_path.iterdir())
    other = _trainer(tmp_path, ctx=_TwoRanks(1))
    other.train_step()
    assert other.write_samples() is None and other.save_checkpoint() is None
    assert sorted(p.name for p in tmp_path.iterdir()) == before
    assert not (tmp_path / "samples").exists() and not (tmp_path / "checkpoint.pt").exists()


def test_every_process_stops_when_one_is_interrupted(tmp_path):
    """A SIGINT that reaches only another process stops this one at the same step."""

    class PartnerInterrupted(_TwoRanks):
        def any(self, flag):
            return bool(flag) or trainer.step >= 2

    trainer = _trainer(tmp_path, ctx=PartnerInterrupted())
    summary = trainer.fit(steps=10)
    assert summary["interrupted"] is True and summary["step"] == 2
    assert torch.load(tmp_path / "checkpoint.pt", weights_only=False)["step"] == 2


def test_each_process_takes_its_shard_of_the_global_batch(tmp_path):
    extra = ("train.batch_cond=4", "loss.r1_gamma=0")
    whole = _draws(_trainer(tmp_path / "one", *extra), 2)
    shared_run = tmp_path / "two"
    first = _draws(_trainer(shared_run, *extra, ctx=_TwoRanks(0)), 2)
    second = _draws(_trainer(shared_run, *extra, ctx=_TwoRanks(1)), 2)
    for branch, per in ((0, 2), (1, 2)):  # per process: 2 conditional, 2 unconditional
        for it in range(2):
            batch = whole[branch][it * 2 * per:(it + 1) * 2 * per]
            assert first[branch][it * per:(it + 1) * per] == batch[:per]
            assert second[branch][it * per:(it + 1) * per] == batch[per:]


@requires_cuda
def test_a_run_on_a_gpu_keeps_its_tensors_there(tmp_path):
    """Batches, latents and the sample grid's inputs go to the run's device (on a CPU a missing
    ``.to(device)`` cannot be told from a present one)."""
    trainer = _trainer(tmp_path, "train.ada=true",
                       ctx=DistributedContext(device=torch.device("cuda", 0)))
    assert all(p.is_cuda for p in trainer.G.parameters())
    seen, encode = [], trainer.D.encode

    def spy(x):
        seen.append(x.device.type)
        return encode(x)

    trainer.D.encode = spy
    summary = trainer.fit(steps=2)
    assert set(seen) == {"cuda"}
    assert summary["samples"].is_file()


# -- the D step's fakes (train.d_fakes) ----------------------------------------------------------
def _count_g_forwards(monkeypatch, trainer):
    outputs = []
    forward = trainer.G.forward_mixed

    def wrapper(*args, **kwargs):
        out = forward(*args, **kwargs)
        outputs.append(out.detach().clone())
        return out

    monkeypatch.setattr(trainer.G, "forward_mixed", wrapper)
    return outputs


def _d_inputs(monkeypatch, trainer):
    inputs = []
    encode = trainer.D.encode

    def wrapper(x, *args, **kwargs):
        inputs.append(x.detach().clone())
        return encode(x, *args, **kwargs)

    monkeypatch.setattr(trainer.D, "encode", wrapper)
    return inputs


@pytest.mark.parametrize("mode", ["hybrid", "uncond_only", "cond_only"])
def test_d_fakes_reuse_trains_d_on_the_g_steps_own_fakes(tmp_path, monkeypatch, mode):
    tr = _trainer(tmp_path / "run", "train.d_fakes=reuse", f"train.mode={mode}",
                  "loss.labelmix_weight=0")
    outputs = _count_g_forwards(monkeypatch, tr)
    inputs = _d_inputs(monkeypatch, tr)
    tr.train_step()
    # One G forward per iteration; the G step's D input is the fakes, the D step's batch is
    # [real_u | real_c | fake_u | fake_c | mixed] with the same fakes in its fake rows (a third
    # D input is step 0's lazy R1 on the reals).
    assert len(outputs) == 1 and len(inputs) == (3 if mode != "cond_only" else 2)
    fakes = outputs[0]
    n_u, n_c = tr.bu if mode != "cond_only" else 0, tr.bc if mode != "uncond_only" else 0
    assert fakes.shape[0] == n_u + n_c
    torch.testing.assert_close(inputs[0], fakes, rtol=0, atol=0)
    d_batch = inputs[1]
    torch.testing.assert_close(d_batch[n_u + n_c:2 * n_u + 2 * n_c], fakes, rtol=0, atol=0)


def test_d_fakes_fresh_draws_new_fakes_for_the_d_step(tmp_path, monkeypatch):
    tr = _trainer(tmp_path / "run")
    assert tr.cfg.train.d_fakes == "fresh"
    outputs = _count_g_forwards(monkeypatch, tr)
    inputs = _d_inputs(monkeypatch, tr)
    tr.train_step()
    assert len(outputs) == 2
    n = tr.bu + tr.bc
    torch.testing.assert_close(inputs[1][n:2 * n], outputs[1], rtol=0, atol=0)
    assert not torch.equal(outputs[0], outputs[1])


def test_d_fakes_reuse_resumes_exactly_and_differs_from_fresh(tmp_path):
    a = _trainer(tmp_path / "a", "train.d_fakes=reuse")
    for _ in range(3):
        a.train_step()
    a.save_checkpoint()
    b = OCOGANTrainer(None, tmp_path / "a", resume=True, progress=False)
    assert b.cfg.train.d_fakes == "reuse"
    a.train_step()
    b.train_step()
    _assert_equal_states(_state(a.G), _state(b.G))
    _assert_equal_states(_state(a.D), _state(b.D))
    c = _trainer(tmp_path / "c")  # the same seed with fresh fakes: another trajectory
    for _ in range(4):
        c.train_step()
    da, dc = _state(a.D), _state(c.D)
    assert any(not torch.equal(da[k], dc[k]) for k in da)


def test_d_fakes_refuses_unknown_values_and_wrong_shapes(tmp_path):
    with pytest.raises(ConfigError, match=r"train\.d_fakes"):
        tiny_config("train.d_fakes=stale")
    tr = _trainer(tmp_path / "run")
    real_c, label_c = tr._fetch(tr.stream_c, tr.bc, tr.shard_c, with_label=True)
    wrong = torch.zeros(tr.bu + tr.bc + 1, 3, *tr.cfg.model.resolution)
    with pytest.raises(ValueError, match="fakes: expected"):
        tr.discriminator_step(real_c, label_c, fakes=wrong)
