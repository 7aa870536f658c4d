"""Stage-wise training: frozen parts do not move; a run starts from another run's weights."""

from __future__ import annotations

import pytest
import torch
from oco_tiny import tiny_config

from recipes.oco_gan.config import ConfigError
from recipes.oco_gan.train import OCOGANTrainer
from recipes.oco_gan.train_parts import PARTS, part_modules


def _snapshot(trainer):
    return {name: [p.detach().clone() for m in part_modules(trainer.G, trainer.D, name)
                   for p in m.parameters()] for name in PARTS}


def _moved(before, after):
    return {name for name in PARTS
            if any(not torch.equal(a, b) for a, b in zip(before[name], after[name]))}


@pytest.mark.parametrize("frozen", [("uncond_style", "d_image_head"),
                                    ("synthesis", "d_encoder"),
                                    ("cond_style", "d_seg_head")])
def test_frozen_parts_do_not_move(tmp_path, frozen):
    trainer = OCOGANTrainer(tiny_config("train.freeze=" + ",".join(frozen),
                                        "train.batch_uncond=2", "train.batch_cond=2"),
                            tmp_path, progress=False)
    before = _snapshot(trainer)
    for _ in range(2):  # an R1 step and a plain one
        trainer.train_step()
    assert _moved(before, _snapshot(trainer)) == set(PARTS) - set(frozen)
    # Frozen parameters are not in the optimisers, and stay frozen after the G step's toggle.
    in_opt = {id(p) for opt in (trainer.opt_g, trainer.opt_d)
              for g in opt.param_groups for p in g["params"]}
    for name in frozen:
        for m in part_modules(trainer.G, trainer.D, name):
            assert all(not p.requires_grad and id(p) not in in_opt for p in m.parameters())


def test_init_from_another_run_then_train_one_branch(tmp_path):
    first = OCOGANTrainer(tiny_config("train.mode=uncond_only"), tmp_path / "a", progress=False)
    first.fit(steps=2)
    second = OCOGANTrainer(
        tiny_config("train.mode=cond_only", f"train.init_from={tmp_path / 'a'}",
                    "train.freeze=uncond_style,synthesis,d_encoder"),
        tmp_path / "b", progress=False)
    assert second.step == 0
    for net in ("G", "D"):
        a, b = getattr(first, net).state_dict(), getattr(second, net).state_dict()
        for k in a:
            torch.testing.assert_close(b[k], a[k], rtol=0, atol=0, msg=k)
    for k, v in first.ema.shadow.state_dict().items():
        torch.testing.assert_close(second.ema.shadow.state_dict()[k], v, rtol=0, atol=0)
    before = _snapshot(second)
    second.train_step()
    moved = _moved(before, _snapshot(second))
    # cond_only trains the conditional style net and the segmentation head; the image head
    # (unused) and the frozen parts keep the first run's weights.
    assert moved == {"cond_style", "d_seg_head"}


def test_freeze_and_init_from_errors(tmp_path):
    with pytest.raises(ConfigError, match=r"train\.freeze: unknown part"):
        tiny_config("train.freeze=encoder")
    with pytest.raises(ConfigError, match="freezes every part of G"):
        tiny_config("train.freeze=uncond_style,cond_style,synthesis")
    with pytest.raises(FileNotFoundError, match=r"train\.init_from: no checkpoint"):
        OCOGANTrainer(tiny_config(f"train.init_from={tmp_path / 'nowhere'}"), tmp_path / "r",
                      progress=False)


def _protocol_members(proto) -> set:
    names = set()
    for cls in proto.__mro__:
        if cls in (object,) or cls.__module__ == "typing":
            continue
        names |= set(vars(cls).get("__annotations__", {}))
        names |= {n for n, v in vars(cls).items()
                  if not n.startswith("__") and (callable(v) or isinstance(v, property))}
    return names


def _trainer_attributes_used(module) -> set:
    """Attributes the module reads of its trainer (``tr.x``, ``trainer.x``, ``self.trainer.x``)."""
    import ast
    import inspect

    used = set()
    for node in ast.walk(ast.parse(inspect.getsource(module))):
        if not isinstance(node, ast.Attribute):
            continue
        owner = node.value
        if (isinstance(owner, ast.Name) and owner.id in ("tr", "trainer")) or (
                isinstance(owner, ast.Attribute) and owner.attr == "trainer"
                and isinstance(owner.value, ast.Name) and owner.value.id == "self"):
            used.add(node.attr)
    return used


def test_the_trainer_satisfies_the_protocols_its_parts_are_typed_with(tmp_path):
    from recipes.oco_gan import train_select, train_steps
    from recipes.oco_gan.trainer_protocol import SelectionTrainer, StepTrainer

    # Each protocol lists everything its module uses of the trainer ...
    for module, proto in ((train_steps, StepTrainer), (train_select, SelectionTrainer)):
        used = _trainer_attributes_used(module)
        assert len(used) > 10, used
        assert used <= _protocol_members(proto), used - _protocol_members(proto)
    # ... and the trainer has all of it (with ADA on, so that ``augment`` is a real one).
    trainer = OCOGANTrainer(tiny_config("train.ada=true"), tmp_path, progress=False)
    trainer.train_step()  # sets the per-step ``_aug_gen``
    for proto in (StepTrainer, SelectionTrainer):
        assert isinstance(trainer, proto)
        missing = [n for n in _protocol_members(proto) if not hasattr(trainer, n)]
        assert not missing and not isinstance(object(), proto), missing
