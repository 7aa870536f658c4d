"""The package installs what the README promises: the console script and a runnable example."""

from __future__ import annotations

import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]


def test_console_script_lists_subcommands():
    exe = shutil.which("oco-gan")
    cmd = [exe] if exe else [sys.executable, "-m", "recipes.oco_gan"]
    out = subprocess.run([*cmd, "--help"], capture_output=True, text=True, check=True).stdout
    for sub in ("demo", "train", "generate", "evaluate"):
        assert sub in out


def test_readme_starts_with_the_two_setup_commands():
    lines = (ROOT / "README.md").read_text().splitlines()
    head = "\n".join(lines[:15])
    assert "oco-gan demo" in head
    assert "pytest" in head


def test_readme_example_runs():
    text = (ROOT / "README.md").read_text()
    blocks = re.findall(r"```python\n(.*?)```", text, flags=re.S)
    assert blocks, "README has no python example"
    for code in blocks:
        namespace: dict = {}
        exec(compile(code, "README.md", "exec"), namespace)


def test_kernel_sources_are_package_data():
    import importlib.resources

    files = {p.name for p in importlib.resources.files("ganblocks._csrc").iterdir()}
    assert "__init__.py" in files


@pytest.mark.slow
def test_docs_build_without_warnings(tmp_path):
    pytest.importorskip("sphinx")
    result = subprocess.run(
        [sys.executable, "-m", "sphinx", "-W", "--keep-going", "-b", "html", "-q",
         str(ROOT / "docs"), str(tmp_path / "html")],
        capture_output=True, text=True,
    )
    assert result.returncode == 0, result.stderr[-5000:]

