"""The ``oco-gan demo``, ``oco-gan train`` and ``oco-gan info`` subcommands.

Each command is a pair ``register_<name>(subparsers)`` / ``run_<name>(args) -> exit code`` that
:mod:`recipes.oco_gan.cli` finds through its command table. Heavy imports (torch, the model, the
trainer) happen inside ``run_*`` so that ``oco-gan --help`` stays fast. The training itself lives in
:mod:`recipes.oco_gan.train`, usable from code.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path
from typing import Any, List

from .cli_support import exit_process, set_cpu_threads

__all__ = ["DEMO_STEPS", "register_demo", "register_info", "register_train", "run_demo",
           "run_info", "run_train"]


#: Iterations of ``oco-gan demo`` (the grid of the training guide is from ~860 of them).
DEMO_STEPS = 900


def register_demo(sub: Any) -> None:
    p = sub.add_parser("demo", help=f"train the demo preset for {DEMO_STEPS} iterations on the "
                       "built-in synthetic scenes and write sample grids (minutes on a CPU)")
    _add_train_args(p, demo=True)


def register_train(sub: Any) -> None:
    p = sub.add_parser("train", help="train OCO-GAN (single process, or under torchrun)")
    _add_train_args(p, demo=False)


def register_info(sub: Any) -> None:
    p = sub.add_parser("info", help="parameter counts of a preset's model parts and style maps")
    p.add_argument("--preset", default="demo")
    p.add_argument("--json", action="store_true", help="print JSON instead of a table")
    p.add_argument("overrides", nargs="*", metavar="key=value")


def run_demo(args: argparse.Namespace) -> int:
    return _run_training(args, demo=True)


def run_train(args: argparse.Namespace) -> int:
    return _run_training(args, demo=False)


def _add_train_args(p: argparse.ArgumentParser, *, demo: bool) -> None:
    if not demo:
        p.add_argument("--preset", default=None,
                       help="config preset: demo, cityscapes, ade20k, coco_stuff, celebamask_hq, "
                            "folder (default: demo; on --resume: the run's own config)")
        p.add_argument("--data", default=None, metavar="PATH",
                       help="data set root (sets data.root)")
        p.add_argument("--config", default=None, metavar="FILE",
                       help="start from a saved config (JSON/YAML) instead of a preset")
        p.add_argument("--steps", type=int, default=None,
                       help="total iterations (train.steps); with --resume, train on to this")
        p.add_argument("--regime", choices=["full", "limited", "semi"], default=None,
                       help="data regime (data.regime)")
        p.add_argument("--subset", type=int, default=None,
                       help="images in the limited regime (data.subset)")
        p.add_argument("--labelled", type=int, default=None,
                       help="labelled images in the semi regime (data.labelled)")
        p.add_argument("--mode", choices=["hybrid", "uncond_only", "cond_only"], default=None,
                       help="train.mode")
        p.add_argument("--extra", action="store_true", default=None,
                       help="Cityscapes: add the unlabelled leftImg8bit/train_extra images "
                            "(data.extra; the paper's Cityscapes 25K with --regime semi)")
        p.add_argument("--minutes", type=float, default=None,
                       help="stop (with a checkpoint) after this much training time")
        p.add_argument("--init-from", default=None, metavar="RUN",
                       help="start from another run's weights (train.init_from); freeze parts "
                            "with train.freeze=...")
    p.add_argument("--out", default="runs/demo" if demo else None, required=not demo,
                   metavar="DIR", help="run directory" + (" (default: runs/demo)" if demo else ""))
    p.add_argument("--resume", action="store_true",
                   help="continue the run in --out (--steps N trains on to N iterations)")
    p.add_argument("--overwrite", action="store_true",
                   help="start over in an --out that holds a run: move the old run to "
                        "DIR.old-<date>-<time>")
    p.add_argument("--delete-old", action="store_true",
                   help="with --overwrite: delete the old run instead of moving it")
    p.add_argument("--device", choices=["auto", "cpu", "cuda"], default="auto")
    p.add_argument("--no-progress", action="store_true", help="no progress bar")
    if demo:
        p.add_argument("--steps", type=int, default=None,
                       help=f"iterations to train (default {DEMO_STEPS})")
        p.add_argument("--minutes", type=float, default=None,
                       help="train for this much time instead of a number of iterations")
    p.add_argument("overrides", nargs="*", metavar="key=value",
                   help="config overrides, e.g. train.batch_cond=8 model.channel_multiplier=0.5")


def _resolve_config(args: argparse.Namespace, base=None):
    """The config of the options: ``--config`` or ``--preset`` (else ``base``, else the demo
    preset) with the options' and ``key=value`` overrides applied."""
    from .config import OCOGANConfig, apply_overrides, get_preset

    overrides: List[str] = list(args.overrides)
    if getattr(args, "config", None):
        cfg = OCOGANConfig.load(args.config)
    elif getattr(args, "preset", None) or base is None:
        cfg = get_preset(getattr(args, "preset", None) or "demo")
    else:
        cfg = base
    for key, field in (("data", "data.root"), ("steps", "train.steps"),
                       ("regime", "data.regime"), ("subset", "data.subset"),
                       ("labelled", "data.labelled"), ("mode", "train.mode"),
                       ("extra", "data.extra"), ("init_from", "train.init_from")):
        value = getattr(args, key, None)
        if value is not None:
            overrides.insert(0, f"{field}={value}")
    return apply_overrides(cfg, overrides)


def _resume_config(args: argparse.Namespace, out: Path):
    """The config a ``--resume`` asks for: the run's own (``config.json``, else the
    checkpoint's) changed by the options and overrides. The trainer checks it against the
    checkpoint's config (:func:`~recipes.oco_gan.rundir.resume_changes`)."""
    from ganblocks.train import load_checkpoint

    from .config import OCOGANConfig

    saved = out / "config.json"
    base = (OCOGANConfig.load(saved) if saved.is_file() else
            OCOGANConfig.from_dict(load_checkpoint(out / "checkpoint.pt")["config"]))
    return _resolve_config(args, base)


def _demo_config(args: argparse.Namespace):
    """The demo preset for ``--steps`` (default :data:`DEMO_STEPS`) iterations, or without an
    iteration limit under ``--minutes``. The same on every machine: a GPU only finishes sooner."""
    from .config import apply_overrides

    if args.steps is not None:
        steps = args.steps
    else:
        steps = DEMO_STEPS if args.minutes is None else 10**9
    return apply_overrides(_resolve_config(args), [f"train.steps={steps}"])


def _run_training(args: argparse.Namespace, *, demo: bool) -> int:
    from ganblocks.train import init_distributed

    from .rundir import open_run_dir
    from .train import OCOGANTrainer

    if args.steps is not None and args.steps < 1:
        raise ValueError(f"--steps must be >= 1, got {args.steps}")
    if args.minutes is not None and not args.minutes > 0:
        raise ValueError(f"--minutes must be > 0, got {args.minutes}")
    out = Path(args.out)
    # Everything that can be checked without the run directory, before touching it.
    if args.resume:
        cfg = None
    elif demo:
        cfg = _demo_config(args)
    else:
        cfg = _resolve_config(args)
    device = None if args.device == "auto" else args.device
    ctx = init_distributed(device=device)
    run, failure = None, None
    if ctx.is_main:  # one lock per run directory, held by rank 0
        try:
            run = open_run_dir(out, resume=args.resume, overwrite=args.overwrite,
                               delete_old=args.delete_old)
        except (ValueError, OSError) as exc:
            failure = exc
    if ctx.any(failure is not None):
        if failure is not None:
            raise failure
        return 2
    try:
        if args.resume:
            cfg = _resume_config(args, out)
        set_cpu_threads(ctx)
        trainer = OCOGANTrainer(cfg, out, ctx=ctx, resume=args.resume,
                                progress=not args.no_progress)
    except BaseException:
        if run is not None:
            # A failed start leaves nothing behind (and a moved-aside run comes back).
            run.release() if args.resume else run.abort()
        raise
    try:
        return _fit_and_report(trainer, args, run, demo=demo)
    finally:
        if run is not None:
            run.release()


def _pretrained_grid(trainer):
    """The demo's grid from the shipped generator (:mod:`recipes.oco_gan.pretrained`), before
    training starts: ``samples/pretrained.png``, or ``None`` (no file, or other model settings)."""
    from .pretrained import load_demo_generator

    loaded = load_demo_generator(trainer.cfg.model)
    if loaded is None:
        print("oco-gan: no shipped demo generator for these model settings: training only")
        return None
    path = trainer.write_samples("pretrained.png", generator=loaded.G.to(trainer.device))
    print(f"oco-gan: while this trains, here is the shipped demo generator's grid (trained for "
          f"{loaded.step} iterations by the command in recipes/oco_gan/pretrained.py): {path}",
          flush=True)
    return path


def _fit_and_report(trainer, args: argparse.Namespace, run, *, demo: bool = False) -> int:
    import torch

    ctx = trainer.ctx
    if ctx.is_main:
        where = ctx.device if ctx.world_size == 1 else f"{ctx.world_size} processes"
        if run is not None and run.moved_to is not None:
            print(f"oco-gan: --overwrite: the previous run is now in {run.moved_to}")
        for key, (old, new) in trainer.resume_changes.items():
            print(f"oco-gan: --resume: {key} {old!r} -> {new!r} (recorded in history.jsonl)")
        print(f"oco-gan: training preset '{trainer.cfg.preset}' on {where}; run directory "
              f"{args.out}", flush=True)
        print(_data_summary(trainer), flush=True)
    pretrained = _pretrained_grid(trainer) if demo and ctx.is_main else None
    minutes = args.minutes
    summary = trainer.fit(max_seconds=None if minutes is None else minutes * 60)
    if ctx.is_main:
        why = " after an interrupt" if summary["interrupted"] else ""
        print(f"oco-gan: stopped at step {summary['step']} ({summary['images_seen']} images, "
              f"{summary['seconds']:.0f} s){why}")
        print(f"oco-gan: checkpoint {summary['checkpoint']}")
        if summary["samples"] is not None:
            print(f"oco-gan: sample grid (label | real | 3 conditional | 3 unconditional): "
                  f"{summary['samples']}")
            print(f"oco-gan: all grids in {Path(args.out) / 'samples'}")
        if pretrained is not None:
            print(f"oco-gan: the same grid from the shipped demo generator: {pretrained}")
    if ctx.distributed:
        # Rank 0 may still be writing samples: let every rank arrive before tearing down, so no
        # process leaves while a peer's gloo/NCCL connection is still in use.
        ctx.barrier()
        torch.distributed.destroy_process_group()
        exit_process(0)
    return 0


def _data_summary(trainer) -> str:
    """One line: data set, regime, images / labelled images used, and the two batch sizes."""
    from .config import SEMI_BATCH_COND

    cfg = trainer.cfg
    d, t = cfg.data, cfg.train
    split = trainer.data.split
    parts = [d.name] + (["+ train_extra"] if d.extra else [])
    if d.scene_categories:
        parts.append(f"scenes {','.join(d.scene_categories)}")
    line = (f"oco-gan: data {' '.join(parts)}, regime {d.regime}: {len(split['indices'])} "
            f"images, {len(split['labelled_indices'])} labelled; batches: conditional "
            f"{t.batch_cond}, unconditional {t.batch_uncond}")
    if d.regime == "semi" and t.batch_cond == SEMI_BATCH_COND:
        line += (f" (conditional batch {SEMI_BATCH_COND} in the semi-supervised regime, as in the "
                 "paper; train.batch_cond=B to change)")
    return line


def run_info(args: argparse.Namespace) -> int:
    from .config import apply_overrides, get_preset
    from .model import Discriminator, Generator, part_sizes

    cfg = apply_overrides(get_preset(args.preset), args.overrides)
    G, D = Generator(cfg.model), Discriminator(cfg.model)
    sizes = part_sizes(G, D)
    shapes = cfg.model.style_map_shapes()
    if args.json:
        print(json.dumps({"preset": args.preset, "parameters": sizes,
                          "style_maps": [list(s) for s in shapes]}, indent=2))
        return 0
    h, w = cfg.model.resolution
    print(f"preset {args.preset}: {h}x{w}, {cfg.model.num_classes} classes "
          f"(don't-care included), style maps from {shapes[0][1]}x{shapes[0][2]}")
    width = max(len(k) for k in sizes)
    for k, v in sizes.items():
        print(f"  {k:<{width}}  {v:>12,d}  ({v / 1e6:7.2f} M)")
    g = sum(v for k, v in sizes.items() if k.startswith("G"))
    d = sum(v for k, v in sizes.items() if k.startswith("D"))
    print(f"  {'G total':<{width}}  {g:>12,d}  ({g / 1e6:7.2f} M)")
    print(f"  {'D total':<{width}}  {d:>12,d}  ({d / 1e6:7.2f} M)")
    print(f"  style maps ({len(shapes)}, [C, h, w]): " + ", ".join(
        f"[{c}, {hh}, {ww}]" for c, hh, ww in shapes))
    return 0
