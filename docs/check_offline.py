"""Fail when the built site loads anything from the network (it must read offline).

Usage: ``python docs/check_offline.py [docs/_build/html]``. Scans every ``.html`` file for
``<script src>``, ``<link href>``, ``<img src>``, ``<iframe src>``, ``<source src>`` and
``<video/audio src>`` pointing to another host (``http://``, ``https://`` or ``//``), and every
``.css`` file for ``@import`` and ``url(...)`` of another host. Plain links (``<a href>``) to
other sites are allowed: following them is the reader's choice, not a load.
"""

from __future__ import annotations

import re
import sys
from pathlib import Path

_TAG = re.compile(
    r"<(script|link|img|iframe|source|video|audio|embed)\b[^>]*?\b(src|href)\s*=\s*[\"']"
    r"((?:https?:)?//[^\"']+)",
    re.IGNORECASE,
)
_CSS = re.compile(r"(?:@import\s+(?:url\()?|url\()\s*[\"']?((?:https?:)?//[^\"')\s]+)", re.I)


def external_loads(root: Path) -> list[str]:
    """``file: url`` for each resource of the built site that would be fetched from the web."""
    found = []
    for path in sorted(root.rglob("*.html")):
        for match in _TAG.finditer(path.read_text(errors="replace")):
            found.append(f"{path.relative_to(root)}: <{match.group(1)}> {match.group(3)}")
    for path in sorted(root.rglob("*.css")):
        for match in _CSS.finditer(path.read_text(errors="replace")):
            found.append(f"{path.relative_to(root)}: {match.group(1)}")
    return found


def main(argv: list[str]) -> int:
    root = Path(argv[1] if len(argv) > 1 else Path(__file__).parent / "_build" / "html")
    if not (root / "index.html").is_file():
        print(f"{root}: no index.html; build the site first (make -C docs html).")
        return 2
    found = external_loads(root)
    for line in found:
        print(line)
    if found:
        print(f"{len(found)} external loads: the site would not read offline.")
        return 1
    print(f"{root}: no external loads.")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
