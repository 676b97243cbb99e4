"""The list of docstring problems in ``src/`` that the strict build knows about.

The docs build runs with ``-W``: every warning fails it. Problems that live in the docstrings
of ``src/whybox`` (owned by the modules' authors) are listed in ``known_docstring_problems.txt``
so that the build passes while they are fixed, and ONLY those: a new problem, or a new
parameter missing from a docstring already listed, fails the build. An entry that no longer
matches anything is reported at the end of the build so it can be deleted.

Entry format, one per line (``#`` starts a comment)::

    <location substring> | <message substring>
    validation | <object> | <CODE> | <sorted, comma-separated names>

A warning is known when its location (``path:docstring of obj``, line numbers ignored)
contains the first part and its message contains the second. A numpydoc validation warning
(one per object) is known when each of its ``CODE: ... {names}`` lines is listed with exactly
the same names.
"""

from __future__ import annotations

import ast
import logging
import re
from pathlib import Path

from sphinx.util import logging as sphinx_logging

KNOWN_FILE = Path(__file__).resolve().parent / "known_docstring_problems.txt"
_VALIDATION = re.compile(r"Validation warnings while processing docstring for '([^']+)'")
_CODE_LINE = re.compile(r"^\s*([A-Z]{2}\d{2}): (.*)$")


def _names(text: str) -> str:
    """Sorted names of a numpydoc message ``... {'a', 'b'} ...`` (set order is random)."""
    match = re.search(r"\{.*\}", text)
    if not match:
        return text.strip()
    try:
        items = ast.literal_eval(match.group(0))
    except (ValueError, SyntaxError):
        return match.group(0)
    return ", ".join(sorted(str(i) for i in items))


def read_known(path: Path = KNOWN_FILE) -> tuple[list[tuple[str, str]], set[tuple[str, str, str]]]:
    """Parse the known-problems file into (location, message) pairs and validation triples."""
    plain: list[tuple[str, str]] = []
    validation: set[tuple[str, str, str]] = set()
    if not path.exists():
        return plain, validation
    for raw in path.read_text().splitlines():
        line = raw.split("  #", 1)[0].strip()
        if not line or line.startswith("#"):
            continue
        parts = [p.strip() for p in line.split(" | ")]
        if parts[0] == "validation" and len(parts) == 4:
            validation.add((parts[1], parts[2], parts[3]))
        elif len(parts) == 2:
            plain.append((parts[0], parts[1]))
        else:
            raise ValueError(f"{path.name}: cannot read the entry {raw!r}; see docs/_strict.py")
    return plain, validation


class KnownProblemsFilter(logging.Filter):
    """Drops the warnings listed in ``known_docstring_problems.txt`` before Sphinx counts them."""

    def __init__(self) -> None:
        super().__init__()
        self.plain, self.validation = read_known()
        self.used_plain: set[tuple[str, str]] = set()
        self.used_validation: set[tuple[str, str, str]] = set()

    def filter(self, record: logging.LogRecord) -> bool:
        if record.levelno < logging.WARNING:
            return True
        message = record.getMessage()
        found = _VALIDATION.search(message)
        if found:
            obj = found.group(1)
            triples = set()
            for line in message.splitlines()[1:]:
                code = _CODE_LINE.match(line)
                if code:
                    triples.add((obj, code.group(1), _names(code.group(2))))
            if triples and triples <= self.validation:
                self.used_validation |= triples
                return False
            return True
        location = getattr(record, "location", None)
        if isinstance(location, tuple):  # (docname, line)
            location = f"docs/{location[0]}.rst"
        elif location is not None and not isinstance(location, str):
            location = sphinx_logging.get_node_location(location)
        location = re.sub(r":\d+(?=:|$)", "", str(location or ""))
        # a private copy of docs/ (scripts/docs-private.sh builds .docs-NAME/) reads as docs/
        location = re.sub(r"/\.docs-[^/]+/", "/docs/", location)
        for entry in self.plain:
            if entry[0] in location and entry[1] in message:
                self.used_plain.add(entry)
                return False
        return True

    def stale(self) -> list[str]:
        """Entries that matched nothing in this build (fixed: delete them from the file)."""
        out = [f"{a} | {b}" for a, b in self.plain if (a, b) not in self.used_plain]
        out += [
            f"validation | {o} | {c} | {n}"
            for o, c, n in sorted(self.validation - self.used_validation)
        ]
        return out


_FILTER: KnownProblemsFilter | None = None


def install() -> KnownProblemsFilter:
    """Put the filter in front of Sphinx's warning handler (before its counter)."""
    global _FILTER
    if _FILTER is None:
        _FILTER = KnownProblemsFilter()
        for handler in logging.getLogger(sphinx_logging.NAMESPACE).handlers:
            if isinstance(handler, sphinx_logging.WarningStreamHandler):
                handler.filters.insert(0, _FILTER)
    return _FILTER


def report_stale(app, exception) -> None:
    """At the end of a build, list the known problems that are gone (info, not a warning)."""
    if _FILTER is None or exception is not None:
        return
    stale = _FILTER.stale()
    if stale:
        logger = sphinx_logging.getLogger(__name__)
        logger.info(
            "docs/known_docstring_problems.txt: %d entries matched nothing (fixed; delete them):\n  %s",
            len(stale),
            "\n  ".join(stale),
        )
