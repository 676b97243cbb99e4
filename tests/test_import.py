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


def test_version_matches_the_package_metadata_and_the_changelog():
    """``whybox.__version__`` is the installed distribution's version and has a changelog entry."""
    import re
    from importlib.metadata import version
    from pathlib import Path

    import whybox

    assert whybox.__version__ == version("whybox")
    changelog = (Path(__file__).resolve().parents[1] / "CHANGELOG.md").read_text(encoding="utf-8")
    released = re.findall(r"^## \[(\d+\.\d+\.\d+)\] - \d{4}-\d{2}-\d{2}$", changelog, flags=re.M)
    assert released, "CHANGELOG.md has no released version heading"
    assert released[0] == whybox.__version__, (
        f"the newest release in CHANGELOG.md is {released[0]}, whybox.__version__ is "
        f"{whybox.__version__}"
    )
