"""Every plot type rendered to PNG and compared with a stored baseline image.

The plots are drawn on one fixed, seeded Explanation into figures of a fixed size, at a fixed
dpi, with matplotlib's default style and its bundled DejaVu Sans font, text hinting off, and
compared by RMS difference of the pixel values (0-255), as matplotlib's own image tests do.

Regenerate the baselines after an intended change of a plot (and look at them)::

    WHYBOX_UPDATE_BASELINES=1 .venv/bin/python -m pytest tests/viz/test_baseline_images.py

Those runs write ``tests/viz/baseline/<name>.png`` and then compare against what they wrote.
"""

from __future__ import annotations

import os
import shutil
from pathlib import Path

import matplotlib

matplotlib.use("Agg")

import matplotlib.pyplot as plt
import numpy as np
import pandas as pd
import pytest
from matplotlib.testing.compare import compare_images

from whybox.explanation import Explanation
from whybox.viz import bar, beeswarm, force, heatmap, scatter, waterfall

BASELINE = Path(__file__).parent / "baseline"
UPDATE = os.environ.get("WHYBOX_UPDATE_BASELINES") == "1"
#: RMS tolerance on 0-255 pixel values: freetype / version noise in anti-aliased text stays
#: well below it; a changed bar length or colour is far above it (see the tests at the end).
TOL = 3.0
DPI = 60
SIZE = (6.4, 4.0)
RC = {
    "font.family": ["DejaVu Sans"],
    "font.size": 10.0,
    "text.hinting": "none",
    "axes.unicode_minus": True,
    "figure.dpi": DPI,
    "savefig.dpi": DPI,
    "path.simplify": False,
}


def fixed_explanation() -> Explanation:
    """Exact SHAP of a linear model on seeded data with a categorical column."""
    rng = np.random.default_rng(20240601)
    n = 40
    w = np.array([2.0, -1.5, 0.8, 0.4, -0.2, 0.1, 0.05])
    X = rng.normal(size=(n, len(w))) * [1.0, 1.5, 1.0, 2.0, 1.0, 1.0, 1.0]
    X[:, 2] = rng.integers(0, 3, size=n)  # a three-level category, coded 0..2
    phi = w * (X - X.mean(axis=0))
    base = 0.25
    data = pd.DataFrame(X, columns=["income", "debt", "purpose", "age", "tenure", "lines", "zip"])
    data["purpose"] = pd.Categorical.from_codes(X[:, 2].astype(int), ["car", "home", "other"])
    return Explanation(phi, base, data=data, predictions=base + phi.sum(axis=1))


PLOTS = {
    "bar": lambda e, ax: bar(e, ax=ax, max_display=5),
    "bar_row": lambda e, ax: bar(e[3], ax=ax),
    "waterfall": lambda e, ax: waterfall(e, 3, ax=ax, max_display=5),
    "beeswarm": lambda e, ax: beeswarm(e, ax=ax, max_display=5),
    "scatter": lambda e, ax: scatter(e, "income", ax=ax, color="purpose"),
    "scatter_category": lambda e, ax: scatter(e, "purpose", ax=ax),
    "heatmap": lambda e, ax: heatmap(e, ax=ax, max_display=5),
    "force": lambda e, ax: force(e, 3, ax=ax, max_display=4),
}


def render(name: str, path: Path, exp: Explanation | None = None) -> Path:
    """Draw plot ``name`` of ``exp`` (default: the fixed Explanation) to a PNG at ``path``."""
    exp = fixed_explanation() if exp is None else exp
    with matplotlib.rc_context():
        matplotlib.style.use("default")
        matplotlib.rcParams.update(RC)
        fig, ax = plt.subplots(figsize=SIZE)
        # heatmap draws insets to the right and above: leave them room
        if name == "heatmap":
            fig.subplots_adjust(left=0.3, right=0.72, top=0.78, bottom=0.14)
        else:
            fig.subplots_adjust(left=0.3, right=0.92, top=0.92, bottom=0.16)
        PLOTS[name](exp, ax)
        fig.savefig(path, dpi=DPI, metadata={"Software": None})
        plt.close(fig)
    return path


@pytest.mark.parametrize("name", sorted(PLOTS))
def test_plot_matches_baseline(name, tmp_path):
    actual = render(name, tmp_path / f"{name}.png")
    expected = BASELINE / f"{name}.png"
    if UPDATE:
        BASELINE.mkdir(exist_ok=True)
        shutil.copyfile(actual, expected)
    if not expected.exists():
        pytest.fail(
            f"no baseline image {expected}; generate it with "
            "WHYBOX_UPDATE_BASELINES=1 pytest tests/viz/test_baseline_images.py and look at it."
        )
    assert expected.stat().st_size < 100_000
    result = compare_images(str(expected), str(actual), tol=TOL)
    assert result is None, result


def _rms(a: Path, b: Path) -> float:
    from matplotlib.testing.compare import calculate_rms
    from PIL import Image

    return float(
        calculate_rms(
            np.asarray(Image.open(a).convert("RGB")).astype(np.int16),
            np.asarray(Image.open(b).convert("RGB")).astype(np.int16),
        )
    )


def test_a_changed_bar_fails_the_comparison(tmp_path):
    """One attribution of the plotted row changed by 15%: the waterfall must not match."""
    exp = fixed_explanation()
    values = exp.values.copy()
    values[3, 0] *= 1.15
    altered = Explanation(values, exp.base_values, data=exp.data)
    actual = render("waterfall", tmp_path / "waterfall.png", altered)
    assert compare_images(str(BASELINE / "waterfall.png"), str(actual), tol=TOL) is not None
    assert _rms(BASELINE / "waterfall.png", actual) > 2 * TOL


def test_a_changed_colour_fails_the_comparison(tmp_path, monkeypatch):
    """The bar plot drawn with a slightly different red (#e6004a for #ff0051) must not match."""
    from whybox.viz import plots

    monkeypatch.setattr(plots, "RED", "#e6004a")
    actual = render("bar", tmp_path / "bar.png")
    assert compare_images(str(BASELINE / "bar.png"), str(actual), tol=TOL) is not None


def test_a_rerender_is_within_tolerance(tmp_path):
    """Two renders of the same plot in one process are identical (RMS 0)."""
    a = render("beeswarm", tmp_path / "a.png")
    b = render("beeswarm", tmp_path / "b.png")
    assert _rms(a, b) == 0.0
