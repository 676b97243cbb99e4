"""Every public name's docstring carries a short ``Examples`` section, and every example runs.

The examples are doctests: the output they show is what the call prints, so a changed default
or a renamed keyword fails here (and the API reference, which renders these sections, never
shows code that no longer runs). Names still without an example are listed in
``docs/known_missing_examples.txt``; the list only shrinks: a listed name that gained an
example fails the test until its line is deleted.
"""

from __future__ import annotations

import doctest
import inspect

import numpy as np
import pytest

import whybox

from ._public import ROOT, examples_section, public_objects

KNOWN_MISSING = ROOT / "docs" / "known_missing_examples.txt"
OBJECTS = public_objects()
WITH_EXAMPLES = sorted(n for n, o in OBJECTS.items() if examples_section(o) is not None)


def _known_missing() -> set[str]:
    lines = KNOWN_MISSING.read_text(encoding="utf-8").splitlines()
    return {ln.strip() for ln in lines if ln.strip() and not ln.startswith("#")}


def _documentable(obj: object) -> bool:
    """Classes, functions and callable objects carry docstrings; constants (tuples, floats,
    strings, mappings) cannot: they are described in their module's documentation."""
    return inspect.isclass(obj) or inspect.isroutine(obj) or callable(obj)


def test_every_public_name_has_an_example_or_is_listed():
    missing = {n for n, o in OBJECTS.items() if _documentable(o) and examples_section(o) is None}
    known = _known_missing()
    new = sorted(missing - known)
    stale = sorted(known - missing)
    assert not new, f"public names without an Examples section (add one): {new}"
    assert not stale, (
        f"{KNOWN_MISSING.name} lists names that have an example now or are not public: "
        f"{stale}; delete those lines"
    )


@pytest.mark.parametrize("name", WITH_EXAMPLES)
def test_docstring_example_runs(name):
    text = examples_section(OBJECTS[name])
    parser = doctest.DocTestParser()
    test = parser.get_doctest(text, {"wb": whybox, "np": np}, name, None, 0)
    assert test.examples, f"{name}: the Examples section has no '>>>' line"
    runner = doctest.DocTestRunner(
        optionflags=doctest.ELLIPSIS | doctest.NORMALIZE_WHITESPACE, verbose=False
    )
    out: list[str] = []
    runner.run(test, out=out.append, clear_globs=True)
    assert runner.failures == 0, "".join(out)
