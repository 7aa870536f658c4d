"""Read the ``list-table`` directives of an rST page, so that charts draw the published numbers.

``DOCS`` is the docs source folder (figure scripts run by the ``plot`` directive have no
``__file__``; they import it from here).
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Dict, List

DOCS = Path(__file__).resolve().parents[1]


def _strip(cell: str) -> str:
    return re.sub(r"``|\*\*", "", " ".join(cell.split()))


def list_tables(page: str) -> Dict[str, List[Dict[str, str]]]:
    """Every ``list-table`` (header row required) of ``docs/<page>``, keyed by its section title.

    Returns ``{section title: [row dict keyed by the header cells]}``; when one section holds
    several tables, later ones get the keys ``"title (2)"``, ``"title (3)"``, ...
    """
    lines = (DOCS / page).read_text(encoding="utf-8").splitlines()
    tables: Dict[str, List[Dict[str, str]]] = {}
    section = ""
    i = 0
    while i < len(lines):
        line = lines[i]
        if i + 1 < len(lines) and line.strip() and re.fullmatch(r"([-=~^])\1{2,}",
                                                                lines[i + 1].strip()):
            section = line.strip()
        if line.strip().startswith(".. list-table::"):
            rows: List[List[str]] = []
            i += 1
            while i < len(lines) and (not lines[i].strip() or lines[i].startswith("   ")):
                text = lines[i].strip()
                if text.startswith("* - "):
                    rows.append([text[4:]])
                elif text.startswith("- ") and rows:
                    rows[-1].append(text[2:])
                elif text and rows and not text.startswith(":"):
                    rows[-1][-1] += " " + text  # a cell continued on the next line
                i += 1
            header, body = [_strip(c) for c in rows[0]], rows[1:]
            key = section
            n = 2
            while key in tables:
                key, n = f"{section} ({n})", n + 1
            tables[key] = [dict(zip(header, (_strip(c) for c in row))) for row in body]
            continue
        i += 1
    return tables


def table(page: str, section: str) -> List[Dict[str, str]]:
    """The rows of the first ``list-table`` under ``section`` of ``docs/<page>``."""
    tables = list_tables(page)
    if section not in tables:
        raise KeyError(
            f"docs/{page}: no list-table under a section titled {section!r} "
            f"(found: {sorted(tables)}); update docs/figures to the page's new layout"
        )
    return tables[section]


def number(cell: str) -> float:
    """The first number in a cell (``'5.0x'`` → 5.0, ``'35.0 %'`` → 35.0)."""
    match = re.search(r"-?\d+(?:\.\d+)?", cell)
    if match is None:
        raise ValueError(f"no number in table cell {cell!r}")
    return float(match.group())
