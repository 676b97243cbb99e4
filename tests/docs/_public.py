"""The public names the docs site documents: ``whybox.__all__`` and the subpackages' ``__all__``."""

from __future__ import annotations

import importlib
import inspect
from pathlib import Path

import whybox

SUBPACKAGES = ("zoo", "sae", "metrics", "viz", "llm", "testing")
ROOT = Path(__file__).resolve().parents[2]


def public_objects() -> dict[str, object]:
    """Map ``"whybox.Name"`` / ``"whybox.sub.Name"`` to the object, for every public name."""
    out: dict[str, object] = {}
    for name in whybox.__all__:
        if name.startswith("__"):
            continue
        out[f"whybox.{name}"] = getattr(whybox, name)
    for sub in SUBPACKAGES:
        mod = importlib.import_module(f"whybox.{sub}")
        for name in mod.__all__:
            out[f"whybox.{sub}.{name}"] = getattr(mod, name)
    return out


def examples_section(obj: object) -> str | None:
    """The text of the numpy-style ``Examples`` section of ``obj``'s docstring, or None."""
    doc = inspect.getdoc(obj) or ""
    lines = doc.splitlines()
    for i in range(len(lines) - 1):
        if lines[i].strip() == "Examples" and set(lines[i + 1].strip()) == {"-"}:
            body = []
            for line in lines[i + 2 :]:
                # the next numpy-style section ends it
                if (
                    body
                    and line
                    and not line.startswith(" ")
                    and line.strip() in {"References", "Notes", "See Also", "Attributes", "Methods"}
                ):
                    break
                body.append(line)
            return "\n".join(body)
    return None
