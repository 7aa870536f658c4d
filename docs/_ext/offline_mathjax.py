"""Serve MathJax from the built docs themselves, so formulas render with no network.

Sphinx's ``sphinx.ext.mathjax`` points at a CDN by default. The PyPI package
``sphinx-mathjax-offline`` ships MathJax 3.2.2; this extension copies the SVG-output build of it
(``tex-svg.js``, which needs no web fonts, plus the TeX extensions and accessibility components it
may load on demand) into ``_static/mathjax`` and points ``mathjax_path`` at it.
"""

from __future__ import annotations

import importlib.util
import shutil
from pathlib import Path

from sphinx.application import Sphinx

PACKAGE = "sphinx-mathjax-offline"  # the distribution's top-level folder really has hyphens
ENTRY = "tex-svg.js"
PARTS = [ENTRY, "input", "a11y", "ui", "sre", "adaptors", "output/svg", "output/svg.js"]


def mathjax_source() -> Path:
    """The MathJax folder shipped by ``sphinx-mathjax-offline`` (clear error when missing)."""
    spec = importlib.util.find_spec(PACKAGE)
    for folder in (spec.submodule_search_locations or []) if spec is not None else []:
        candidate = Path(folder) / "static" / "mathjax"
        if (candidate / ENTRY).is_file():
            return candidate
    raise RuntimeError(
        f"MathJax for offline math was not found: install it with `pip install {PACKAGE}` "
        "(it is in the project's docs and test extras)"
    )


def _copy_mathjax(app: Sphinx, exception: Exception | None) -> None:
    if exception is not None or app.builder.format != "html":
        return
    source = mathjax_source()
    target = Path(app.outdir) / "_static" / "mathjax"
    for part in PARTS:
        src, dst = source / part, target / part
        if src.is_dir():
            shutil.copytree(src, dst, dirs_exist_ok=True)
        else:
            dst.parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(src, dst)


def _point_at_local_copy(app: Sphinx, config: object) -> None:
    config.mathjax_path = f"mathjax/{ENTRY}"  # relative: served from _static


def setup(app: Sphinx) -> dict:
    mathjax_source()  # fail at start-up, not after a long build
    app.setup_extension("sphinx.ext.mathjax")
    app.connect("config-inited", _point_at_local_copy)
    app.connect("build-finished", _copy_mathjax)
    return {"parallel_read_safe": True, "parallel_write_safe": True}
