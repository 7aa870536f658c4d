"""Intersphinx inventories for PyTorch and NumPy, written at build time with no network.

``sphinx.ext.intersphinx`` normally downloads each project's ``objects.inv``. The docs must
build offline, so this extension writes those inventories from the *installed* ``torch`` and
``numpy``: every public class, function and method is mapped to the page where the project's own
documentation puts it. Both projects generate one page per object with a stable naming scheme
(``generated/torch.nn.Conv2d.html``, ``reference/generated/numpy.stack.html``); the few objects
documented elsewhere (``torch.Tensor``, ``torch.dtype``, ``torch.utils.data``, ...) are listed in
:data:`TORCH_PAGES` / :data:`NUMPY_PAGES`.

Use it from ``conf.py``::

    intersphinx_mapping = {
        "torch": ("https://docs.pytorch.org/docs/stable/", inventory_path("torch")),
        "numpy": ("https://numpy.org/doc/stable/", inventory_path("numpy")),
    }
"""

from __future__ import annotations

import inspect
import os
import tempfile
import types
import zlib
from pathlib import Path
from typing import Callable, Dict, Iterator, List, Tuple

from sphinx.application import Sphinx

#: Objects whose page is not ``generated/<name>.html`` in the PyTorch docs.
TORCH_PAGES: Dict[str, str] = {
    "torch": "torch.html",
    "torch.Tensor": "tensors.html",
    "torch.dtype": "tensor_attributes.html",
    "torch.device": "tensor_attributes.html",
    "torch.layout": "tensor_attributes.html",
    "torch.memory_format": "tensor_attributes.html",
    "torch.Size": "size.html",
    "torch.nn": "nn.html",
    "torch.nn.functional": "nn.functional.html",
    "torch.optim": "optim.html",
    "torch.optim.Optimizer": "optim.html",
    "torch.utils.data": "data.html",
    "torch.distributed": "distributed.html",
    "torch.autograd": "autograd.html",
    "torch.autograd.Function": "autograd.html",
}
#: Objects whose page is not ``reference/generated/<name>.html`` in the NumPy docs.
NUMPY_PAGES: Dict[str, str] = {
    "numpy": "reference/index.html",
    "numpy.random": "reference/random/index.html",
    "numpy.random.Generator": "reference/random/generator.html",
    "numpy.random.default_rng": "reference/random/generator.html",
}

Entry = Tuple[str, str, str]  # (name, "py:role", relative uri)


def _public(module: types.ModuleType) -> List[str]:
    names = getattr(module, "__all__", None) or [n for n in vars(module) if not n.startswith("_")]
    return sorted({str(n) for n in names if not str(n).startswith("_")})


def _role(obj: object) -> str | None:
    if inspect.isclass(obj):
        return "py:class"
    if callable(obj):
        return "py:function"
    return None


def _members(cls: type, prefix: str) -> Iterator[Tuple[str, str]]:
    for name, value in vars(cls).items():
        if name.startswith("_"):
            continue
        role = "py:property" if isinstance(value, property) else "py:method"
        if callable(value) or isinstance(value, property) or inspect.isroutine(value):
            yield f"{prefix}.{name}", role


def _objects(modules: List[types.ModuleType], page: Callable[[str], str]) -> List[Entry]:
    """The public classes and functions of ``modules``, each on ``page(full name)``."""
    entries: List[Entry] = []
    for mod in modules:
        for name in _public(mod):
            obj = getattr(mod, name, None)
            role = _role(obj)
            if role is None or isinstance(obj, types.ModuleType):
                continue
            full = f"{mod.__name__}.{name}"
            entries.append((full, role, f"{page(full)}#{full}"))
    return entries


def torch_entries() -> List[Entry]:
    """Inventory entries of the installed PyTorch (module, class, function, method names)."""
    import torch
    import torch.distributed
    import torch.nn.functional
    import torch.optim
    import torch.utils.data

    def page(name: str) -> str:
        if name in TORCH_PAGES:
            return TORCH_PAGES[name]
        if name.startswith("torch.utils.data."):
            return "data.html"
        if name.startswith("torch.distributed."):
            return "distributed.html"
        return f"generated/{name}.html"

    entries: List[Entry] = []
    for module in ("torch", "torch.nn", "torch.nn.functional", "torch.optim", "torch.utils.data",
                   "torch.distributed", "torch.autograd"):
        entries.append((module, "py:module", f"{page(module)}#module-{module}"))
    entries += _objects([torch, torch.nn, torch.nn.functional, torch.optim, torch.utils.data,
                          torch.autograd], page)
    for member, role in _members(torch.Tensor, "torch.Tensor"):
        entries.append((member, role, f"generated/{member}.html#{member}"))
    for member, role in _members(torch.nn.Module, "torch.nn.Module"):
        entries.append((member, role, f"generated/torch.nn.Module.html#{member}"))
    return entries


def numpy_entries() -> List[Entry]:
    """Inventory entries of the installed NumPy (top level and ``numpy.random``)."""
    import numpy
    import numpy.random

    def page(name: str) -> str:
        return NUMPY_PAGES.get(name, f"reference/generated/{name}.html")

    entries: List[Entry] = [
        (m, "py:module", f"{page(m)}#module-{m}") for m in ("numpy", "numpy.random")
    ]
    entries += _objects([numpy, numpy.random], page)
    for member, role in _members(numpy.ndarray, "numpy.ndarray"):
        entries.append((member, role, f"reference/generated/{member}.html#{member}"))
    return entries


def write_inventory(path: Path, project: str, version: str, entries: List[Entry]) -> Path:
    """Write ``entries`` as a Sphinx ``objects.inv`` (format version 2) and return ``path``."""
    seen = set()
    lines = []
    for name, role, uri in entries:
        if (name, role) in seen:
            continue
        seen.add((name, role))
        lines.append(f"{name} {role} 1 {uri} -\n")
    header = (
        "# Sphinx inventory version 2\n"
        f"# Project: {project}\n"
        f"# Version: {version}\n"
        "# The remainder of this file is compressed using zlib.\n"
    )
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(f".tmp{os.getpid()}")
    tmp.write_bytes(header.encode() + zlib.compress("".join(lines).encode()))
    tmp.replace(path)  # atomic: concurrent builds never read half a file
    return path


def inventory_path(project: str) -> str:
    """Where this build's inventory of ``project`` (``"torch"`` or ``"numpy"``) is written."""
    return str(Path(tempfile.gettempdir()) / f"ganblocks-docs-{os.getuid()}" / f"{project}.inv")


def _write_all(app: Sphinx, config: object) -> None:
    import numpy
    import torch

    write_inventory(Path(inventory_path("torch")), "PyTorch", torch.__version__, torch_entries())
    write_inventory(Path(inventory_path("numpy")), "NumPy", numpy.__version__, numpy_entries())


def setup(app: Sphinx) -> dict:
    # Before intersphinx reads the files (it loads them when the builder starts).
    app.connect("config-inited", _write_all)
    return {"parallel_read_safe": True, "parallel_write_safe": True}
