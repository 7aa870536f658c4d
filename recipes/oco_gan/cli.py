"""The ``oco-gan`` command line tool."""

from __future__ import annotations

import argparse
import sys
from typing import Optional, Sequence

SUBCOMMANDS = {
    "demo": "train the demo preset on the built-in synthetic scenes and write sample grids",
    "train": "train OCO-GAN on a data set (single process or under torchrun)",
    "info": "print the parameter count of each part of a preset's model",
    "generate": "generate unconditional / conditional samples from a checkpoint",
    "evaluate": "compute FID, CFID, KID and mIoU of a trained run",
    "train-segmenter": "train a compact segmentation network for mIoU on a data set",
}


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="oco-gan",
        description="OCO-GAN: one generator for unconditional and semantic image synthesis.",
    )
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    for name, help_text in SUBCOMMANDS.items():
        sub.add_parser(name, help=help_text, description=help_text)
    return parser


def main(argv: Optional[Sequence[str]] = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    if args.command is None:
        parser.print_help()
        return 0
    print(f"oco-gan {args.command}: not implemented yet in this version", file=sys.stderr)
    return 2


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
