"""``python -m recipes.stylegan2 {train,generate} ...``: train StyleGAN2 from ganblocks, or
generate images from a recipe checkpoint or an NVlabs network pickle."""

from __future__ import annotations

import argparse
import sys
from dataclasses import MISSING, fields
from typing import List, Optional

from .train import TrainConfig, config_from_args, train


def _bool(text: str) -> bool:
    if text.lower() in ("1", "true", "yes", "on"):
        return True
    if text.lower() in ("0", "false", "no", "off"):
        return False
    raise argparse.ArgumentTypeError(f"expected true/false, got {text!r}")


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m recipes.stylegan2", description=__doc__)
    sub = parser.add_subparsers(dest="command", required=True)
    tr = sub.add_parser("train", help="train (resumes from <out>/checkpoint.pt when present)")
    for f in fields(TrainConfig):
        default = f.default if f.default is not MISSING else None
        kind = {"bool": _bool, "int": int, "float": float}.get(
            str(f.type).split("[")[-1].strip("]'"), str
        )
        if f.name == "device":
            kind = str
        tr.add_argument(
            f"--{f.name.replace('_', '-')}",
            dest=f.name,
            type=kind,
            default=default,
            help=f"(default: {default})",
        )
    gen = sub.add_parser("generate", help="write images from a checkpoint (.pt) or NVlabs .pkl")
    gen.add_argument("--network", required=True, help="recipe checkpoint.pt or network-*.pkl")
    gen.add_argument("--out", required=True, help="output folder")
    gen.add_argument("--seeds", default="0-7", help="e.g. 0-7 or 1,5,9")
    gen.add_argument("--trunc", type=float, default=1.0, help="truncation psi")
    gen.add_argument("--noise-mode", default="const", choices=["const", "random", "none"])
    gen.add_argument("--class", dest="class_idx", type=int, default=None, help="class index")
    return parser


def main(argv: Optional[List[str]] = None) -> int:
    args = build_parser().parse_args(argv)
    if args.command == "train":
        values = {k: v for k, v in vars(args).items() if k != "command"}
        trainer = train(config_from_args(values))
        if trainer.ctx.is_main:
            print(f"trained to step {trainer.step}; checkpoint: {trainer.checkpoint_path}")
        return 0
    from .generate import generate_images, load_generator, parse_seeds

    G = load_generator(args.network)
    paths = generate_images(
        G,
        parse_seeds(args.seeds),
        args.out,
        truncation_psi=args.trunc,
        noise_mode=args.noise_mode,
        class_idx=args.class_idx,
    )
    print(f"wrote {len(paths)} images to {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
