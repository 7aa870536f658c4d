"""The docs' build-time helpers: offline inventories, offline MathJax, tables read by the charts."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

DOCS = Path(__file__).resolve().parents[2] / "docs"
pytest.importorskip("sphinx")
sys.path[:0] = [str(DOCS / "_ext"), str(DOCS / "figures")]

import offline_inventories  # noqa: E402
from _tables import list_tables, number, table  # noqa: E402
from sphinx.util.inventory import InventoryFile  # noqa: E402


def _load(path: Path, base: str):
    with path.open("rb") as stream:
        return InventoryFile.load(stream, base, lambda a, b: a + b)


def _uri(inventory, role: str, name: str) -> str:
    data = getattr(inventory, "data", inventory)  # a _Inventory object or a plain dict
    entry = data[role][name]
    return entry.uri if hasattr(entry, "uri") else entry[2]


def test_torch_inventory_maps_objects_to_their_pages(tmp_path):
    import torch

    path = offline_inventories.write_inventory(
        tmp_path / "torch.inv", "PyTorch", torch.__version__, offline_inventories.torch_entries()
    )
    inv = _load(path, "https://docs.pytorch.org/docs/stable/")
    base = "https://docs.pytorch.org/docs/stable/"
    assert _uri(inv, "py:class", "torch.Tensor") == base + "tensors.html#torch.Tensor"
    assert _uri(inv, "py:class", "torch.nn.Conv2d") == (
        base + "generated/torch.nn.Conv2d.html#torch.nn.Conv2d")
    assert _uri(inv, "py:function", "torch.nn.functional.interpolate") == (
        base + "generated/torch.nn.functional.interpolate.html#torch.nn.functional.interpolate")
    assert _uri(inv, "py:method", "torch.nn.Module.state_dict") == (
        base + "generated/torch.nn.Module.html#torch.nn.Module.state_dict")
    assert _uri(inv, "py:class", "torch.utils.data.DataLoader") == (
        base + "data.html#torch.utils.data.DataLoader")
    # Every public class of torch.nn is in it (the inventory follows the installed torch).
    data = getattr(inv, "data", inv)
    public = [n for n in dir(torch.nn) if not n.startswith("_")
              and isinstance(getattr(torch.nn, n), type)]
    assert public and all(f"torch.nn.{n}" in data["py:class"] for n in public)


def test_numpy_inventory(tmp_path):
    import numpy

    path = offline_inventories.write_inventory(
        tmp_path / "numpy.inv", "NumPy", numpy.__version__, offline_inventories.numpy_entries()
    )
    inv = _load(path, "https://numpy.org/doc/stable/")
    assert _uri(inv, "py:class", "numpy.ndarray") == (
        "https://numpy.org/doc/stable/reference/generated/numpy.ndarray.html#numpy.ndarray")
    assert _uri(inv, "py:class", "numpy.random.Generator").endswith(
        "reference/random/generator.html#numpy.random.Generator")


def test_write_inventory_keeps_the_first_of_duplicate_names(tmp_path):
    entries = [("a.b", "py:function", "x.html#a.b"), ("a.b", "py:function", "y.html#a.b")]
    inv = _load(offline_inventories.write_inventory(tmp_path / "i.inv", "P", "1", entries), "u/")
    assert _uri(inv, "py:function", "a.b") == "u/x.html#a.b"


def test_mathjax_is_shipped_by_a_python_package():
    pytest.importorskip("matplotlib")  # the docs extras are installed together
    import offline_mathjax

    source = offline_mathjax.mathjax_source()
    for part in offline_mathjax.PARTS:
        assert (source / part).exists(), part
    head = (source / offline_mathjax.ENTRY).read_text(encoding="utf-8", errors="replace")[:5000]
    assert "MathJax" in head or "webpack" in head


def test_performance_tables_parse_and_agree_with_their_ratio_column():
    """The charts draw the page's tables: the parsed ref/native times reproduce its ratios."""
    rows = table("performance.rst", "Ops: reference path against native kernels")
    assert len(rows) >= 4
    for row in rows:
        ratio = number(row["ref (ms)"]) / number(row["native (ms)"])
        assert ratio == pytest.approx(number(row["ref / native"]), abs=0.051), row
    phases = table("performance.rst", "OCO-GAN training step")
    total = sum(number(r["ms"]) for r in phases)
    for r in phases:  # the share column is each phase's part of the total
        assert 100 * number(r["ms"]) / total == pytest.approx(number(r["share"]), abs=0.11)


def test_list_tables_reads_multiline_cells(tmp_path, monkeypatch):
    import _tables

    (tmp_path / "page.rst").write_text(
        "Title\n=====\n\nSection A\n---------\n\n.. list-table::\n   :header-rows: 1\n\n"
        "   * - name\n     - value\n   * - ``x``\n     - 1.5 and\n       more\n",
        encoding="utf-8",
    )
    monkeypatch.setattr(_tables, "DOCS", tmp_path)
    assert list_tables("page.rst") == {"Section A": [{"name": "x", "value": "1.5 and more"}]}
    with pytest.raises(KeyError, match="no list-table under a section titled 'B'"):
        table("page.rst", "B")
    with pytest.raises(ValueError, match="no number"):
        number("n/a")
