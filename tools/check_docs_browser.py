"""Open every page of the built docs in headless Chromium and check what a reader would see.

Not part of the test run (it needs a browser: ``apt-get install chromium``). It builds the docs
(unless ``--html`` points at a build), then for every HTML page:

* fails on console errors and uncaught exceptions;
* fails on any request that leaves the machine (only ``file:`` and ``data:`` URLs are allowed);
* fails on images that did not load (``naturalWidth == 0``) and on empty gallery figures;
* waits for MathJax and fails on math left as raw TeX (an element of class ``math`` without a
  rendered ``mjx-container``, or ``\\(``/``\\[`` delimiters left in the text);
* saves a full-page screenshot under ``--out`` (``<page path>.png``), light and, with ``--dark``,
  dark theme.

Chromium is driven over the DevTools protocol on a pipe (``--remote-debugging-pipe``), with the
standard library only.

Usage::

    python tools/check_docs_browser.py           # build into a temp dir, check, screenshot
    python tools/check_docs_browser.py --html /tmp/docs --out /tmp/shots --pages index api/nn
"""

from __future__ import annotations

import argparse
import base64
import contextlib
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any, Dict, List, Optional

ROOT = Path(__file__).resolve().parents[1]
BROWSERS = ("chromium", "chromium-browser", "google-chrome", "chrome")

# Runs in the page after load: wait for MathJax, then report what a reader would notice.
INSPECT = r"""
(async () => {
  if (window.MathJax && MathJax.startup && MathJax.startup.promise) {
    await MathJax.startup.promise;
  }
  await new Promise(r => setTimeout(r, 50));
  const images = Array.from(document.images);
  const broken = images.filter(i => !(i.complete && i.naturalWidth > 0))
                       .map(i => i.getAttribute('src'));
  const math = Array.from(document.querySelectorAll('.math'));
  const rawMath = math.filter(m => !m.querySelector('mjx-container'))
                      .map(m => m.textContent.slice(0, 80));
  const main = document.querySelector('article') || document.body;
  const text = main.innerText;
  const delimiters = (text.match(/\\\(|\\\[/g) || []).length;
  return JSON.stringify({
    title: document.title, images: images.length, broken: broken, math: math.length,
    rawMath: rawMath, delimiters: delimiters,
    height: Math.ceil(document.documentElement.scrollHeight),
    mathjax: !!(window.MathJax && MathJax.version),
  });
})()
"""


class DevTools:
    """A DevTools-protocol session with a Chromium started with ``--remote-debugging-pipe``."""

    def __init__(self, browser: str, width: int) -> None:
        to_child_r, self._to_child = os.pipe()
        self._from_child, from_child_w = os.pipe()
        self._profile = tempfile.mkdtemp(prefix="ganblocks_chromium_")
        args = [browser, "--headless=new", "--remote-debugging-pipe", "--no-sandbox",
                "--disable-gpu", "--no-first-run", "--no-default-browser-check",
                "--disable-extensions", "--disable-background-networking",
                "--disable-component-update", "--disable-sync", "--hide-scrollbars",
                "--allow-file-access-from-files", f"--user-data-dir={self._profile}",
                f"--window-size={width},900", "about:blank"]

        def wire_fds() -> None:  # Chromium reads commands on fd 3 and writes replies on fd 4
            high_r, high_w = os.dup(to_child_r), os.dup(from_child_w)  # neither is 3 or 4 now
            os.dup2(high_r, 3)
            os.dup2(high_w, 4)

        self._log = open(Path(self._profile) / "chromium.log", "wb")  # noqa: SIM115
        self.proc = subprocess.Popen(args, preexec_fn=wire_fds, stdout=self._log,
                                     stderr=subprocess.STDOUT, close_fds=False)
        os.close(to_child_r)
        os.close(from_child_w)
        self._buffer = b""
        self._next_id = 0
        self.events: List[Dict[str, Any]] = []

    def _read_message(self, timeout: float) -> Dict[str, Any]:
        deadline = time.time() + timeout
        while b"\0" not in self._buffer:
            if time.time() > deadline:
                raise TimeoutError("no answer from Chromium")
            chunk = os.read(self._from_child, 1 << 20)
            if not chunk:
                log = (Path(self._profile) / "chromium.log").read_text(errors="replace")
                raise RuntimeError(f"Chromium closed the DevTools pipe; its log:\n{log[-3000:]}")
            self._buffer += chunk
        raw, self._buffer = self._buffer.split(b"\0", 1)
        return json.loads(raw)

    def call(self, method: str, session: Optional[str] = None, timeout: float = 60.0,
             **params: Any) -> Dict[str, Any]:
        self._next_id += 1
        message: Dict[str, Any] = {"id": self._next_id, "method": method, "params": params}
        if session:
            message["sessionId"] = session
        os.write(self._to_child, json.dumps(message).encode() + b"\0")
        while True:
            reply = self._read_message(timeout)
            if reply.get("id") == self._next_id:
                if "error" in reply:
                    raise RuntimeError(f"{method}: {reply['error']}")
                return reply.get("result", {})
            self.events.append(reply)

    def wait_for(self, method: str, timeout: float = 60.0) -> Dict[str, Any]:
        for i, event in enumerate(self.events):
            if event.get("method") == method:
                return self.events.pop(i)
        while True:
            event = self._read_message(timeout)
            if event.get("method") == method:
                return event
            self.events.append(event)

    def close(self) -> None:
        with contextlib.suppress(Exception):  # closing anyway
            self.call("Browser.close", timeout=10)
        try:
            self.proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            self.proc.kill()
        self._log.close()
        shutil.rmtree(self._profile, ignore_errors=True)


def find_browser(name: Optional[str]) -> str:
    for candidate in ([name] if name else BROWSERS):
        path = shutil.which(candidate)
        if path:
            return path
    raise SystemExit("no Chromium found: apt-get install chromium (or pass --browser PATH)")


def build_docs(out: Path) -> None:
    env = dict(os.environ, PYTHONPATH=os.pathsep.join([str(ROOT), os.environ.get("PYTHONPATH",
                                                                                  "")]))
    cmd = [sys.executable, "-m", "sphinx", "-W", "--keep-going", "-b", "html", "-q",
           str(ROOT / "docs"), str(out)]
    print("building:", " ".join(cmd), flush=True)
    subprocess.run(cmd, check=True, env=env)


def check_page(tools: DevTools, page: Path, html_root: Path, shots: Path, width: int,
               dark: bool) -> List[str]:
    """Load one page, return its problems (empty list: fine), save its screenshot(s)."""
    target = tools.call("Target.createTarget", url="about:blank")["targetId"]
    session = tools.call("Target.attachToTarget", targetId=target, flatten=True)["sessionId"]
    for domain in ("Page", "Runtime", "Network", "Log"):
        tools.call(f"{domain}.enable", session=session)
    tools.events.clear()
    tools.call("Page.navigate", session=session, url=page.as_uri())
    tools.wait_for("Page.loadEventFired")
    report = json.loads(tools.call("Runtime.evaluate", session=session, expression=INSPECT,
                                   awaitPromise=True, returnByValue=True)["result"]["value"])
    rel = page.relative_to(html_root)
    problems = []
    for event in tools.events:
        method, params = event.get("method"), event.get("params", {})
        if event.get("sessionId") not in (None, session):
            continue
        if method == "Runtime.exceptionThrown":
            problems.append(f"uncaught exception: {params['exceptionDetails'].get('text')}")
        elif method == "Runtime.consoleAPICalled" and params.get("type") in ("error", "assert"):
            args = " ".join(str(a.get("value", a.get("description", ""))) for a in params["args"])
            problems.append(f"console.{params['type']}: {args[:200]}")
        elif method == "Log.entryAdded" and params["entry"].get("level") == "error":
            problems.append(f"browser error: {params['entry'].get('text', '')[:200]} "
                            f"({params['entry'].get('url', '')})")
        elif method == "Network.requestWillBeSent":
            url = params["request"]["url"]
            if not url.startswith(("file:", "data:", "about:", "blob:")):
                problems.append(f"network request: {url}")
    if report["broken"]:
        problems.append(f"images that did not load: {report['broken']}")
    if report["rawMath"]:
        problems.append(f"math not rendered: {report['rawMath'][:3]}")
    if report["delimiters"]:
        problems.append(f"{report['delimiters']} raw TeX delimiters in the text")
    if report["math"] and not report["mathjax"]:
        problems.append("page has math but MathJax did not load")
    gallery_example = str(rel).startswith("auto_examples/plot_")
    if gallery_example and report["images"] == 0:
        problems.append("gallery example without figures")

    height = min(max(report["height"], 600), 16000)
    for theme in ("light", "dark") if dark else ("light",):
        tools.call("Runtime.evaluate", session=session,
                   expression=f"document.body.dataset.theme = '{theme}'")
        tools.call("Emulation.setDeviceMetricsOverride", session=session, width=width,
                   height=height, deviceScaleFactor=1, mobile=False)
        time.sleep(0.2)
        shot = tools.call("Page.captureScreenshot", session=session, format="png",
                          captureBeyondViewport=True)
        suffix = "" if theme == "light" else ".dark"
        path = shots / rel.with_suffix(f"{suffix}.png")
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(base64.b64decode(shot["data"]))
    tools.call("Target.closeTarget", targetId=target)
    status = "ok " if not problems else "BAD"
    print(f"{status} {rel} (images {report['images']}, math {report['math']})", flush=True)
    for problem in problems:
        print(f"      {problem}", flush=True)
    return problems


def main(argv: Optional[List[str]] = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--html", type=Path, default=None,
                        help="an existing HTML build (default: build the docs into a temp dir)")
    parser.add_argument("--out", type=Path, default=Path("docs_screenshots"),
                        help="screenshot folder (default: docs_screenshots)")
    parser.add_argument("--pages", nargs="*", default=None,
                        help="only these pages, e.g. index api/nn (default: every page)")
    parser.add_argument("--browser", default=None, help="browser executable")
    parser.add_argument("--width", type=int, default=1280, help="viewport width")
    parser.add_argument("--dark", action="store_true", help="also screenshot the dark theme")
    args = parser.parse_args(argv)

    html = args.html
    if html is None:
        html = Path(tempfile.mkdtemp(prefix="ganblocks_docs_"))
        build_docs(html)
    html = html.resolve()
    if args.pages:
        pages = [html / f"{p.removesuffix('.html')}.html" for p in args.pages]
    else:
        skip = {"genindex.html", "search.html", "py-modindex.html"}
        pages = sorted(p for p in html.rglob("*.html")
                       if not p.relative_to(html).parts[0].startswith("_") and p.name not in skip)
        pages += [html / "search.html"]  # the offline search page loads its index by script
    missing = [str(p) for p in pages if not p.is_file()]
    if missing:
        raise SystemExit(f"--pages: not in the build: {missing}")
    tools = DevTools(find_browser(args.browser), args.width)
    failures: Dict[str, List[str]] = {}
    try:
        for page in pages:
            problems = check_page(tools, page, html, args.out, args.width, args.dark)
            if problems:
                failures[str(page.relative_to(html))] = problems
    finally:
        tools.close()
    print(f"{len(pages) - len(failures)} passed, {len(failures)} failed "
          f"(screenshots in {args.out.resolve()})")
    return 1 if failures else 0


if __name__ == "__main__":
    raise SystemExit(main())
