"""Lazy exports of ``whybox`` keep the real signature of the object in their home module."""

from __future__ import annotations

import importlib
import inspect

import pytest

import whybox as wb


def _signature(obj):
    try:
        return inspect.signature(obj)
    except (TypeError, ValueError) as exc:  # e.g. a builtin without a signature
        return type(exc)


@pytest.mark.parametrize("name", sorted(wb._LAZY))
def test_lazy_export_has_the_signature_of_its_home_object(name):
    home = getattr(importlib.import_module(wb._LAZY[name]), name)
    assert _signature(getattr(wb, name)) == _signature(home)


def test_report_signature_is_the_report_function():
    from whybox.report.builder import report

    sig = inspect.signature(wb.report)
    assert sig == inspect.signature(report)
    assert "model" in sig.parameters and "X_train" in sig.parameters
    assert str(sig) != "(*args, **kwargs)"


def test_a_public_name_that_is_also_a_submodule_stays_the_function():
    """``whybox.llm.describe`` is the function even when another name of its module is read
    first (importing ``whybox.llm.describe`` binds the package attribute to the module)."""
    import subprocess
    import sys

    code = "import whybox.llm as L\nL.Description\nprint(type(L.describe).__name__)\n"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "function"
