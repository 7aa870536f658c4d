"""Helpers for tests and examples of :mod:`recipes.stylegan2`; nothing here is used in training.

:mod:`recipes.stylegan2.testing.nvlabs_pickle` writes pickles with the structure of NVlabs'
``network-snapshot-*.pkl`` without any NVlabs code, so that the loader
(:func:`~recipes.stylegan2.load_nvlabs_pickle`) can be tested and demonstrated anywhere.
Its names are re-exported here.
"""

from .nvlabs_pickle import *  # noqa: F403
from .nvlabs_pickle import __all__  # noqa: F401
