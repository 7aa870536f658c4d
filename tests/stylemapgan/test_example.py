"""The gallery example ``plot_stylemapgan_port.py``: its compact port reproduces the original's
images (it asserts so itself), and the guide's listing of it stays under 100 lines."""

from __future__ import annotations

import runpy
from pathlib import Path

import matplotlib
import pytest

ROOT = Path(__file__).resolve().parents[2]
EXAMPLE = ROOT / "examples" / "plot_stylemapgan_port.py"
GUIDE = ROOT / "docs" / "guides" / "stylemapgan.rst"


def port_lines():
    lines = EXAMPLE.read_text().splitlines()
    return lines[lines.index("# port: start") + 1:lines.index("# port: end")]


def test_the_port_is_under_100_lines_and_the_guide_shows_it():
    n = len(port_lines())
    assert n < 100
    guide = GUIDE.read_text()
    assert f"The port in {n} lines" in guide  # the heading states the current count
    assert ":start-after: # port: start" in guide and ":end-before: # port: end" in guide


def test_the_example_runs_and_matches_the_original(capsys):
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    try:
        namespace = runpy.run_path(str(EXAMPLE), run_name="__main__")
    finally:
        plt.close("all")
    out = capsys.readouterr().out
    assert out.count("relative error to the original") == 2
    # the port is user code built from the blocks alone: no recipe inside it
    assert "recipes" not in "\n".join(port_lines())
    assert set(namespace["ports"]) == {"G_layernorm_32", "G_instancenorm_32_latent16"}

    # Its converter is strict: a missing weight is named, not silently left at its init.
    from ganblocks.convert import StateDictMismatchError

    case = namespace["cases"]["G_layernorm_32"]
    state = dict(case["state"])
    del state["decoder.to_rgb.activate.bias"]
    G = namespace["StyleMapGenerator"](32, style_dim=8, latent=8, mapping_layers=3,
                                       low_res=case["ch_max"])
    with pytest.raises((StateDictMismatchError, RuntimeError), match="to_rgb"):
        namespace["load_original"](G, state)
