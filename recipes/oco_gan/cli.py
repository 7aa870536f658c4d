"""The ``oco-gan`` command line tool.

Every subcommand is a row of :data:`COMMANDS`: its name, the module that implements it (a function
that adds its parser to the subparsers, and one that runs it and returns the exit code) and a
one-line help. ``oco-gan --help`` lists the table without importing any command module;
``oco-gan NAME ...`` imports only the module of ``NAME``. When that import fails, the real
traceback is shown with the command's name (:class:`CommandImportError`), never a silently
missing command. Run ``oco-gan COMMAND --help`` for the options of each.

A new command goes in its own module (``register(subparsers)``, ``run(args) -> int``; heavy imports
inside ``run``) and gets one row here.
"""

from __future__ import annotations

import argparse
import importlib
import sys
import traceback
from dataclasses import dataclass
from types import ModuleType
from typing import Callable, Dict, Optional, Sequence

# Kept importable from here (tests, older code): the training commands' constants and helpers.
from .cli_support import exit_process  # noqa: F401
from .train_cli import DEMO_STEPS, _demo_config  # noqa: F401

__all__ = ["COMMANDS", "Command", "CommandImportError", "build_parser", "main"]


@dataclass(frozen=True)
class Command:
    """A subcommand of ``oco-gan``: where it lives and its one line of help.

    Attributes:
        module: Module implementing it (imported when the command runs).
        help: The line ``oco-gan --help`` shows.
        register: Name of the module's function that adds the command's parser:
            ``register(subparsers)``.
        run: Name of the module's function that runs it: ``run(args) -> exit code``.
    """

    module: str
    help: str
    register: str = "register"
    run: str = "run"


#: Subcommand name → :class:`Command`, in the order of ``oco-gan --help``.
COMMANDS: Dict[str, Command] = {
    "demo": Command(
        "recipes.oco_gan.train_cli",
        f"train the demo preset for {DEMO_STEPS} iterations on the built-in synthetic scenes and "
        "write sample grids (minutes on a CPU)", "register_demo", "run_demo"),
    "train": Command("recipes.oco_gan.train_cli",
                     "train OCO-GAN (single process, or under torchrun)",
                     "register_train", "run_train"),
    "info": Command("recipes.oco_gan.train_cli",
                    "parameter counts of a preset's model parts and style maps",
                    "register_info", "run_info"),
    "generate": Command("recipes.oco_gan.evaluate_cli",
                        "generate unconditional / conditional samples from a checkpoint",
                        "register_generate", "run_generate"),
    "evaluate": Command("recipes.oco_gan.evaluate_cli",
                        "compute FID, CFID, KID and mIoU of a trained run",
                        "register_evaluate", "run_evaluate"),
    "train-segmenter": Command("recipes.oco_gan.evaluate_cli",
                               "train a compact segmentation network for mIoU on a data set",
                               "register_train_segmenter", "run_train_segmenter"),
    "experiment": Command("recipes.oco_gan.experiment.cli",
                          "run the paper's ablations (Table 4) end to end, resumably"),
}


class CommandImportError(ImportError):
    """The module of an ``oco-gan`` command could not be imported (the cause is chained)."""

    def __init__(self, name: str, command: Command, cause: BaseException) -> None:
        super().__init__(f"oco-gan {name}: importing its module {command.module} failed: "
                         f"{type(cause).__name__}: {cause}")
        self.command = name


def _load(name: str) -> ModuleType:
    command = COMMANDS[name]
    try:
        return importlib.import_module(command.module)
    except Exception as exc:  # any failure while importing, not only ImportError
        raise CommandImportError(name, command, exc) from exc


def _parser(loaded: Sequence[str]) -> argparse.ArgumentParser:
    """The tool's parser: the commands in ``loaded`` with their options (their modules are
    imported), every other one as its table entry (no options, no import)."""
    parser = argparse.ArgumentParser(
        prog="oco-gan",
        description="OCO-GAN: one generator for unconditional and semantic image synthesis.",
    )
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    for name, command in COMMANDS.items():
        if name in loaded:
            getattr(_load(name), command.register)(sub)
        else:
            sub.add_parser(name, help=command.help)
    return parser


def build_parser() -> argparse.ArgumentParser:
    """The full parser of ``oco-gan``: every command with its options (imports every command
    module, none of which imports torch at import time).

    Raises:
        CommandImportError: a command's module cannot be imported (the cause is chained).
    """
    return _parser(list(COMMANDS))


def _command_of(argv: Sequence[str]) -> Optional[str]:
    """The subcommand ``argv`` asks for: its first word (the tool itself has no options but
    ``-h``), when that is a command."""
    for word in argv:
        if not word.startswith("-"):
            return word if word in COMMANDS else None
    return None


def main(argv: Optional[Sequence[str]] = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    name = _command_of(argv)
    try:
        parser = _parser([name] if name is not None else [])
    except CommandImportError as exc:
        cause = exc.__cause__ if exc.__cause__ is not None else exc
        traceback.print_exception(type(cause), cause, cause.__traceback__, file=sys.stderr)
        print(f"oco-gan {name}: error: the command could not be loaded (its module "
              f"{COMMANDS[name].module} failed to import: {type(cause).__name__}: {cause})",
              file=sys.stderr)
        return 1
    # `key=value` overrides may come before, between or after options (`train a=1 --out d b=2`).
    args, extra = parser.parse_known_args(argv)
    if extra:
        if hasattr(args, "overrides") and all("=" in e and not e.startswith("-") for e in extra):
            args.overrides = [*args.overrides, *extra]
        else:
            parser.error(f"unrecognized arguments: {' '.join(extra)}")
    if args.command is None:
        parser.print_help()
        return 0
    from .config import ConfigError

    run: Callable[[argparse.Namespace], int] = getattr(_load(args.command),
                                                       COMMANDS[args.command].run)
    try:
        return run(args)
    except (ConfigError, FileNotFoundError, ValueError) as exc:
        print(f"oco-gan {args.command}: error: {exc}", file=sys.stderr)
        return 2
    except OSError as exc:  # full disk, read-only or vanished files: no traceback
        print(f"oco-gan {args.command}: error: {_os_error_text(exc)}", file=sys.stderr)
        return 2


def _os_error_text(exc: OSError) -> str:
    text = exc.strerror or str(exc)
    return f"{text}: {exc.filename}" if exc.filename is not None else text


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
