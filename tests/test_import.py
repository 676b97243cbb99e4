"""`import whybox` stays light: no torch, transformers or dask."""

from __future__ import annotations

import subprocess
import sys


def test_import_does_not_pull_heavy_dependencies():
    code = (
        "import sys, whybox as wb\n"
        "wb.Explanation; wb.ExactShap; wb.explain; wb.zoo.credit\n"
        "heavy = [m for m in ('torch', 'transformers', 'dask', 'distributed', 'shap', 'lime',"
        " 'captum', 'xgboost', 'lightgbm') if m in sys.modules]\n"
        "print(','.join(heavy))\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == ""


def test_unknown_attribute_raises_attribute_error():
    import whybox

    try:
        whybox.NoSuchThing  # noqa: B018
    except AttributeError as exc:
        assert "NoSuchThing" in str(exc)
    else:  # pragma: no cover
        raise AssertionError("expected AttributeError")


def test_all_lists_exactly_the_lazy_names():
    import whybox

    assert set(whybox.__all__) == set(whybox._LAZY) | {"__version__"}
    for name in whybox.__all__:
        assert getattr(whybox, name) is not None
