"""Sphinx configuration for the ganblocks documentation (built with warnings as errors).

Everything renders offline: MathJax is served from the build (``_ext/offline_mathjax.py``),
the PyTorch / NumPy intersphinx inventories are written from the installed packages
(``_ext/offline_inventories.py``), and every picture is drawn at build time: the example gallery
(``examples/``, run by sphinx-gallery on CPU) and the figures of ``figures/`` (matplotlib's
``plot`` directive).
"""

import os
import sys

DOCS = os.path.abspath(os.path.dirname(__file__))
sys.path.insert(0, os.path.dirname(DOCS))
sys.path.insert(0, os.path.join(DOCS, "_ext"))
sys.path.insert(0, os.path.join(DOCS, "figures"))

from offline_inventories import inventory_path  # noqa: E402

project = "ganblocks"
author = "ganblocks developers"
copyright = "2026, ganblocks developers"
release = "0.1.0"

extensions = [
    "build_lock",  # first: sphinx-gallery writes into the source tree, one build at a time
    "sphinx.ext.autodoc",
    "sphinx.ext.napoleon",
    "sphinx.ext.viewcode",
    "sphinx.ext.intersphinx",
    "sphinx_copybutton",
    "sphinx_gallery.gen_gallery",
    "matplotlib.sphinxext.plot_directive",
    "offline_mathjax",
    "offline_inventories",
]
autodoc_member_order = "bysource"
autodoc_typehints = "description"
autodoc_default_options = {"members": True, "show-inheritance": False}
napoleon_google_docstring = True
napoleon_numpy_docstring = False
nitpicky = False
exclude_patterns = ["_build", "auto_examples/*.ipynb", "auto_examples/*.py",
                    "auto_examples/*.zip", "auto_examples/*.json", "auto_examples/*.md5"]
suppress_warnings = ["config.cache"]

# -- Theme: furo (light/dark, offline search, right-hand table of contents) ------------------------
html_theme = "furo"
html_title = "ganblocks"
html_static_path = ["_static"]
html_css_files = ["ganblocks.css"]
html_theme_options = {"navigation_with_keys": True}
pygments_style = "friendly"
pygments_dark_style = "monokai"

# MathJax (served locally, see _ext/offline_mathjax.py): \text{...} understands \_ and friends.
mathjax3_config = {
    "loader": {"load": ["[tex]/textmacros"]},
    "tex": {"packages": {"[+]": ["textmacros"]}},
}

# -- Copy buttons: copy the code, not the prompts or the output --------------------------------
copybutton_prompt_text = r">>> |\.\.\. |\$ "
copybutton_prompt_is_regexp = True
copybutton_only_copy_prompt_lines = False

# -- Intersphinx: inventories written from the installed packages, nothing is downloaded --------
intersphinx_mapping = {
    "torch": ("https://docs.pytorch.org/docs/stable/", inventory_path("torch")),
    "numpy": ("https://numpy.org/doc/stable/", inventory_path("numpy")),
}
intersphinx_disabled_reftypes = []

# -- Example gallery: every script runs at build time (CPU, seconds) and asserts what it shows ---
# The examples' tensors are small: one thread avoids OpenMP spin-waiting when the build shares
# the machine with other work (the test suite builds the docs next to other tests).
import torch  # noqa: E402

torch.set_num_threads(1)
sphinx_gallery_conf = {
    "examples_dirs": os.path.join(os.path.dirname(DOCS), "examples"),
    "gallery_dirs": "auto_examples",
    "filename_pattern": r"plot_",
    "abort_on_example_error": True,
    "only_warn_on_example_error": False,
    "download_all_examples": False,
    "remove_config_comments": True,
    "within_subsection_order": "FileNameSortKey",
    "image_scrapers": ("matplotlib",),
    "reference_url": {"ganblocks": None},
    "show_memory": False,
    "write_computation_times": False,  # its page loads jQuery/DataTables from CDNs
    "capture_repr": ("_repr_html_", "__repr__"),
}

# -- Figures drawn by code at build time (``.. plot:: name.py function``) ------------------------
plot_basedir = os.path.join(DOCS, "figures")
plot_formats = [("png", 110)]
plot_html_show_formats = False
plot_html_show_source_link = False
plot_include_source = False
plot_pre_code = ""
