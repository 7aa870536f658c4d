"""The built HTML docs: offline (no script or style from the network), math with a local
renderer, every image present, a figure on every gallery page, links into PyTorch's docs."""

from __future__ import annotations

import os
import subprocess
import sys
from html.parser import HTMLParser
from pathlib import Path
from typing import Dict, List, Tuple

import pytest

ROOT = Path(__file__).resolve().parents[2]
pytestmark = pytest.mark.slow


class _Page(HTMLParser):
    """Collects the URLs a page loads and whether it holds math."""

    def __init__(self) -> None:
        super().__init__()
        self.loads: List[Tuple[str, str]] = []  # (tag, url)
        self.links: List[str] = []
        self.images: List[str] = []
        self.math = 0

    def handle_starttag(self, tag: str, attrs: List[Tuple[str, str | None]]) -> None:
        a: Dict[str, str] = {k: v or "" for k, v in attrs}
        if tag == "script" and a.get("src"):
            self.loads.append((tag, a["src"]))
        if tag == "link" and a.get("href") and a.get("rel") in ("stylesheet", "preload"):
            self.loads.append((tag, a["href"]))
        if tag in ("img", "iframe", "embed", "source") and a.get("src"):
            self.loads.append((tag, a["src"]))
            if tag == "img":
                self.images.append(a["src"])
        if tag == "a" and a.get("href"):
            self.links.append(a["href"])
        if "math" in a.get("class", "").split():
            self.math += 1


@pytest.fixture(scope="module")
def html(tmp_path_factory) -> Path:
    pytest.importorskip("sphinx_gallery")
    out = tmp_path_factory.mktemp("docs_html")
    env = dict(os.environ, PYTHONPATH=os.pathsep.join(
        [str(ROOT), *filter(None, [os.environ.get("PYTHONPATH")])]))
    result = subprocess.run(
        [sys.executable, "-m", "sphinx", "-W", "--keep-going", "-b", "html", "-q",
         str(ROOT / "docs"), str(out)], capture_output=True, text=True, env=env,
    )
    assert result.returncode == 0, result.stderr[-5000:]
    return out


@pytest.fixture(scope="module")
def pages(html) -> Dict[Path, _Page]:
    parsed = {}
    for path in sorted(html.rglob("*.html")):
        if path.relative_to(html).parts[0] == "_modules":
            continue  # highlighted source, same template
        page = _Page()
        page.feed(path.read_text(encoding="utf-8"))
        parsed[path] = page
    return parsed


def _is_remote(url: str) -> bool:
    return url.startswith(("http:", "https:", "//"))


def test_no_page_loads_anything_from_the_network(pages, html):
    remote = {str(p.relative_to(html)): [u for _, u in page.loads if _is_remote(u)]
              for p, page in pages.items()}
    assert not {k: v for k, v in remote.items() if v}


def test_every_page_with_math_loads_the_local_mathjax(pages, html):
    with_math = {p: page for p, page in pages.items() if page.math}
    assert len(with_math) >= 5  # the API pages and the gallery have formulas
    for path, page in with_math.items():
        scripts = [u.split("?")[0] for tag, u in page.loads if tag == "script"]
        local = [u for u in scripts if u.endswith("mathjax/tex-svg.js")]
        assert local, f"{path.relative_to(html)} has math but no local MathJax"
        assert (path.parent / local[0]).resolve().is_file()
    assert (html / "_static" / "mathjax" / "input" / "tex" / "extensions").is_dir()


def test_every_image_exists(pages, html):
    missing = []
    for path, page in pages.items():
        for src in page.images:
            if src.startswith("data:"):
                continue
            target = (path.parent / src.split("#")[0].split("?")[0]).resolve()
            if not target.is_file():
                missing.append(f"{path.relative_to(html)}: {src}")
    assert not missing


def test_every_example_is_in_the_gallery_with_its_figures(pages, html):
    examples = sorted((ROOT / "examples").glob("plot_*.py"))
    assert len(examples) >= 8
    for script in examples:
        page = pages[html / "auto_examples" / f"{script.stem}.html"]
        figures = [s for s in page.images if "sphx_glr_" in s and "thumb" not in s]
        assert figures, f"{script.name} made no figure"


def test_pictures_drawn_at_build_time(pages, html):
    recipe = pages[html / "api" / "recipe.html"]
    assert any("oco_gan_architecture" in s or "architecture" in s for s in recipe.images)
    performance = pages[html / "performance.html"]
    assert sum("performance" in s for s in performance.images) >= 3
    train = pages[html / "guides" / "train.html"]
    assert any("training_curves" in s for s in train.images)


def test_api_pages_link_into_pytorch_docs(pages, html):
    links = pages[html / "api" / "nn.html"].links
    assert "https://docs.pytorch.org/docs/stable/tensors.html#torch.Tensor" in links


def test_theme_search_and_copy_buttons_work_offline(pages, html):
    index = pages[html / "index.html"]
    scripts = [u for tag, u in index.loads if tag == "script"]
    assert any("furo" in u for u in scripts)
    assert any("copybutton" in u for u in scripts)
    assert (html / "searchindex.js").is_file()
    assert any("source" in link for link in pages[html / "api" / "ops.html"].links)  # [source]
