"""The import graph of ``ganblocks/`` and ``recipes/`` keeps the layering of the house.

Every module is read with :mod:`ast` (nothing is imported) and every import statement counts:
module level, inside functions, under ``if TYPE_CHECKING:``. Relative imports are resolved, and
``from package import name`` counts as an import of the submodule ``package.name`` when there is
one (else of the package). The rules (``docs/development.rst``, "A map of the house"):

* no import cycles, not even type-only or function-level ones (:data:`ALLOWED_CYCLES` would list
  an exception with its reason; it is empty);
* ``ganblocks`` never imports ``recipes``, and its layers point one way: ``ops`` is imported by
  ``nn`` and the packages above it, never the other way round (:data:`LAYERS`);
* code outside ``ganblocks`` imports only its public modules, never ``ganblocks.x._y``; inside
  ``ganblocks`` a private module is imported only within its own subpackage.
"""

from __future__ import annotations

import ast
from pathlib import Path
from typing import Dict, Iterator, List, Optional, Set, Tuple

ROOT = Path(__file__).resolve().parents[1]
PACKAGES = ("ganblocks", "recipes")

#: Import cycles that are accepted: frozenset of module names → the reason. Keep it empty.
ALLOWED_CYCLES: Dict[frozenset, str] = {}

#: Layers of ``ganblocks`` from the bottom: a module may import its own layer and those below.
LAYERS: Tuple[Tuple[str, ...], ...] = (
    ("ganblocks.ops", "ganblocks.rng"),
    ("ganblocks.nn",),
    ("ganblocks.losses", "ganblocks.augment", "ganblocks.metrics", "ganblocks.data",
     "ganblocks.train", "ganblocks.convert"),
)


def _module_name(path: Path) -> str:
    parts = list(path.relative_to(ROOT).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


def _modules() -> Dict[str, Path]:
    """Module name → file, for every module of the two packages."""
    found = {}
    for package in PACKAGES:
        for path in sorted((ROOT / package).rglob("*.py")):
            if "__pycache__" not in path.parts:
                found[_module_name(path)] = path
    return found


def _imports(name: str, path: Path, modules: Dict[str, Path]) -> Iterator[Tuple[str, int]]:
    """``(imported module, line)`` for every import in ``path`` of a module of the two packages."""
    is_package = path.name == "__init__.py"
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"), filename=str(path))):
        if isinstance(node, ast.Import):
            for alias in node.names:
                target = _known(alias.name, modules)
                if target is not None:
                    yield target, node.lineno
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = name.split(".")
                if not is_package:
                    base = base[:-1]
                base = base[:len(base) - (node.level - 1)]
                source = ".".join(base + ([node.module] if node.module else []))
            else:
                source = node.module or ""
            for alias in node.names:
                target = _known(f"{source}.{alias.name}", modules) if alias.name != "*" else None
                target = target if target == f"{source}.{alias.name}" else _known(source, modules)
                if target is not None:
                    yield target, node.lineno


def _known(dotted: str, modules: Dict[str, Path]) -> Optional[str]:
    """The longest prefix of ``dotted`` that is one of our modules (``None``: not ours)."""
    parts = dotted.split(".")
    for end in range(len(parts), 0, -1):
        candidate = ".".join(parts[:end])
        if candidate in modules:
            return candidate
    return None


def _graph() -> Dict[str, Dict[str, int]]:
    """Module → {imported module: line of the first such import}."""
    modules = _modules()
    graph: Dict[str, Dict[str, int]] = {}
    for name, path in modules.items():
        edges = graph.setdefault(name, {})
        for target, line in _imports(name, path, modules):
            if target != name:
                edges.setdefault(target, line)
    return graph


def _cycles(graph: Dict[str, Dict[str, int]]) -> List[List[str]]:
    """The strongly connected components of more than one module (Tarjan, iterative)."""
    index: Dict[str, int] = {}
    low: Dict[str, int] = {}
    stack: List[str] = []
    on_stack: Set[str] = set()
    out: List[List[str]] = []
    counter = 0
    for root in sorted(graph):
        if root in index:
            continue
        work = [(root, iter(sorted(graph[root])))]
        index[root] = low[root] = counter
        counter += 1
        stack.append(root)
        on_stack.add(root)
        while work:
            node, children = work[-1]
            child = next(children, None)
            if child is not None:
                if child not in index:
                    index[child] = low[child] = counter
                    counter += 1
                    stack.append(child)
                    on_stack.add(child)
                    work.append((child, iter(sorted(graph.get(child, {})))))
                elif child in on_stack:
                    low[node] = min(low[node], index[child])
                continue
            work.pop()
            if work:
                parent = work[-1][0]
                low[parent] = min(low[parent], low[node])
            if low[node] == index[node]:
                component = []
                while True:
                    member = stack.pop()
                    on_stack.discard(member)
                    component.append(member)
                    if member == node:
                        break
                if len(component) > 1:
                    out.append(sorted(component))
    return out


def _describe(component: List[str], graph: Dict[str, Dict[str, int]]) -> str:
    """One cycle through the component, with the line of each import: ``a:12 -> b:3 -> a``."""
    members = set(component)
    start = component[0]
    path, seen = [start], {start}
    node = start
    while True:
        nxt = sorted(t for t in graph[node] if t in members)
        closing = start in nxt and len(path) > 1
        step = start if closing else next((t for t in nxt if t not in seen), nxt[0])
        path.append(step)
        if step in seen:
            break
        seen.add(step)
        node = step
    hops = [f"{a}:{graph[a][b]}" for a, b in zip(path, path[1:])]
    return " -> ".join([*hops, path[-1]])


def _layer(module: str) -> Optional[int]:
    for level, names in enumerate(LAYERS):
        if any(module == n or module.startswith(n + ".") for n in names):
            return level
    return None


def test_the_graph_is_read():
    graph = _graph()
    assert len(graph) > 100
    # a relative import, a function-level import and a TYPE_CHECKING import are all seen
    assert "ganblocks.nn.equalized" in graph
    assert "recipes.oco_gan.train_steps" in graph["recipes.oco_gan.train"]
    assert "recipes.oco_gan.train_select" in graph["recipes.oco_gan.experiment.runner"]
    assert "recipes.oco_gan.cli" in graph["recipes.oco_gan.experiment.procs"]


def test_the_cycle_finder_finds_cycles():
    graph = {"a": {"b": 1}, "b": {"c": 2}, "c": {"a": 3, "d": 4}, "d": {}, "e": {"e": 5}}
    assert _cycles(graph) == [["a", "b", "c"]]
    assert _describe(["a", "b", "c"], graph) == "a:1 -> b:2 -> c:3 -> a"


def test_no_import_cycles():
    graph = _graph()
    found = [c for c in _cycles(graph) if frozenset(c) not in ALLOWED_CYCLES]
    assert not found, "import cycles (every import counts, type-only and lazy ones too):\n" + \
        "\n".join(_describe(c, graph) for c in found)
    stale = [sorted(c) for c in ALLOWED_CYCLES if sorted(c) not in _cycles(graph)]
    assert not stale, f"ALLOWED_CYCLES lists cycles that are gone: {stale}"


def test_ganblocks_never_imports_recipes_and_its_layers_point_down():
    graph = _graph()
    wrong = []
    for module, edges in sorted(graph.items()):
        if not module.startswith("ganblocks"):
            continue
        for target, line in sorted(edges.items()):
            if target.startswith("recipes"):
                wrong.append(f"{module}:{line} imports {target} (the library never knows a recipe)")
            elif _layer(module) is not None and _layer(target) is not None \
                    and _layer(target) > _layer(module):
                wrong.append(f"{module}:{line} imports {target}, a layer above it")
    assert not wrong, "\n".join(wrong)


def test_nothing_outside_ganblocks_imports_its_private_modules():
    graph = _graph()
    wrong = [f"{module}:{line} imports {target}"
             for module, edges in sorted(graph.items()) if not module.startswith("ganblocks")
             for target, line in sorted(edges.items())
             if target.startswith("ganblocks.") and any(
                 part.startswith("_") for part in target.split(".")[1:])]
    assert not wrong, "private ganblocks modules used outside ganblocks (make what is needed " \
        "public):\n" + "\n".join(wrong)


def test_private_modules_stay_inside_their_subpackage():
    graph = _graph()
    wrong = []
    for module, edges in sorted(graph.items()):
        if not module.startswith("ganblocks."):
            continue
        for target, line in sorted(edges.items()):
            parts = target.split(".")
            private = next((i for i, p in enumerate(parts) if p.startswith("_") and i > 0), None)
            if private is None:
                continue
            owner = ".".join(parts[:private])  # the subpackage the private module belongs to
            if module != owner and not module.startswith(owner + "."):
                wrong.append(f"{module}:{line} imports {target}, private to {owner}")
    assert not wrong, "private modules used outside their subpackage (make what is needed " \
        "public):\n" + "\n".join(wrong)
