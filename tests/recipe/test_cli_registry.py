"""The ``oco-gan`` command table: help without imports, every entry resolves, and a command whose
module fails to import shows the real error (not a missing command or "unrecognized arguments")."""

from __future__ import annotations

import argparse
import importlib
import json
import subprocess
import sys

import pytest

from recipes.oco_gan import cli
from recipes.oco_gan.cli import COMMANDS, Command, CommandImportError, build_parser, main


def _subcommands(parser: argparse.ArgumentParser) -> dict:
    (action,) = [a for a in parser._actions if isinstance(a, argparse._SubParsersAction)]
    return action.choices


def test_every_entry_resolves_to_its_register_and_run():
    parser = build_parser()
    assert list(_subcommands(parser)) == list(COMMANDS)
    for name, command in COMMANDS.items():
        module = importlib.import_module(command.module)
        assert callable(getattr(module, command.register)), name
        assert callable(getattr(module, command.run)), name
        assert _subcommands(parser)[name].prog == f"oco-gan {name}"
    # The table's one-line help is what the modules register: `oco-gan --help` reads the same
    # without importing them as with every command loaded.
    assert cli._parser([]).format_help() == parser.format_help()


def test_help_imports_no_command_module():
    # (cli itself imports train_cli, the home of demo / train / info, for DEMO_STEPS)
    modules = sorted({c.module for c in COMMANDS.values()} - {"recipes.oco_gan.train_cli"})
    assert len(modules) >= 2
    code = ("import sys\nfrom recipes.oco_gan.cli import main\ntry:\n    main(['--help'])\n"
            "except SystemExit:\n    pass\n"
            f"print([m for m in [*{modules!r}, 'torch'] if m in sys.modules])")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         check=True).stdout
    for name in COMMANDS:
        assert name in out
    assert out.strip().splitlines()[-1] == "[]"


@pytest.mark.parametrize("source, real_error", [
    ("import ganblocks_no_such_dependency\n", "No module named 'ganblocks_no_such_dependency'"),
    ("raise RuntimeError('broken at import time')\n", "RuntimeError: broken at import time"),
])
def test_a_broken_command_module_shows_the_real_error(source, real_error, tmp_path, monkeypatch,
                                                      capsys):
    (tmp_path / "broken_evaluate_cli.py").write_text(
        "def register_evaluate(sub):\n    sub.add_parser('evaluate')\n" + source)
    monkeypatch.syspath_prepend(str(tmp_path))
    monkeypatch.delitem(sys.modules, "broken_evaluate_cli", raising=False)
    monkeypatch.setitem(COMMANDS, "evaluate",
                        Command("broken_evaluate_cli", COMMANDS["evaluate"].help,
                                "register_evaluate", "run_evaluate"))
    assert main(["evaluate", "--run", "x"]) == 1
    err = capsys.readouterr().err
    assert "Traceback" in err and real_error in err, err
    assert "oco-gan evaluate: error: the command could not be loaded" in err
    assert "broken_evaluate_cli" in err
    assert "unrecognized arguments" not in err and "not available" not in err
    # The other commands do not depend on it, and the listing still names it.
    assert main(["info", "--json"]) == 0
    assert json.loads(capsys.readouterr().out)["preset"] == "demo"
    assert main([]) == 0  # no command: the listing
    assert "evaluate" in capsys.readouterr().out
    # Building the full parser from code raises, with the cause chained.
    with pytest.raises(CommandImportError, match="oco-gan evaluate: importing its module "
                                                 "broken_evaluate_cli failed") as info:
        build_parser()
    assert real_error.split(": ")[-1] in str(info.value.__cause__)


def test_an_unknown_command_is_a_usage_error(capsys):
    with pytest.raises(SystemExit) as exit_info:
        main(["evalute", "--run", "x"])
    assert exit_info.value.code == 2
    assert "invalid choice: 'evalute'" in capsys.readouterr().err
