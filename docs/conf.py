"""Sphinx configuration for the ganblocks documentation (built with warnings as errors)."""

import os
import sys

sys.path.insert(0, os.path.abspath(".."))

project = "ganblocks"
author = "ganblocks developers"
copyright = "2026, ganblocks developers"
release = "0.1.0"

extensions = [
    "sphinx.ext.autodoc",
    "sphinx.ext.napoleon",
    "sphinx.ext.mathjax",
    "sphinx.ext.viewcode",
]
autodoc_member_order = "bysource"
autodoc_typehints = "description"
autodoc_default_options = {"members": True, "show-inheritance": False}
napoleon_google_docstring = True
napoleon_numpy_docstring = False
nitpicky = False
exclude_patterns = ["_build"]
html_theme = "alabaster"
html_static_path = ["_static"]
suppress_warnings = ["config.cache"]
