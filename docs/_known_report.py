"""Print docs/known_docstring_problems.txt as a to-do list by source file and line.

Usage (from the repository root): ``.venv/bin/python docs/_known_report.py``. One line per
object: ``- path:line (object): problem; problem``, sorted by path, for the owners of ``src/``.
"""

from __future__ import annotations

import importlib
import inspect
import re
import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
sys.path.insert(0, str(HERE))

from _strict import read_known  # noqa: E402

CODES = {
    "PR01": "not documented",
    "PR02": "documented but not in the signature",
    "GL08": "no docstring",
    "SS01": "no summary",
}


def resolve(name: str) -> object:
    """The object a dotted name refers to (the longest importable module, then attributes)."""
    parts = name.split(".")
    for i in range(len(parts), 0, -1):
        try:
            obj = importlib.import_module(".".join(parts[:i]))
        except ImportError:
            continue
        try:
            for attr in parts[i:]:
                obj = getattr(obj, attr)
        except AttributeError:
            return None
        return obj
    return None


def where(name: str) -> str:
    """``path:line`` of an object's source (relative to the repository), else its name."""
    try:
        obj = inspect.unwrap(resolve(name))
        path = Path(inspect.getsourcefile(obj)).resolve()
        _, line = inspect.getsourcelines(obj)
    except (TypeError, OSError, ValueError):
        return name
    try:
        path = path.relative_to(ROOT)
    except ValueError:
        pass
    return f"{path}:{line}"


def main() -> None:
    plain, validation = read_known()
    rows: dict[tuple[str, str], list[str]] = {}
    for loc, msg in plain:
        found = re.search(r"docstring of ([\w.]+)", loc)
        obj = found.group(1) if found else loc
        key = where(obj) if found else loc
        rows.setdefault((key, obj), []).append(
            msg.replace("reference target not found", "unresolved")
        )
    for obj, code, names in sorted(validation):
        rows.setdefault((where(obj), obj), []).append(f"{code} {CODES.get(code, code)}: {names}")
    for (key, obj), msgs in sorted(rows.items()):
        print(f"- {key} ({obj}): " + "; ".join(dict.fromkeys(msgs)))


if __name__ == "__main__":
    main()
