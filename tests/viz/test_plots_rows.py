"""heatmap and force plots: the drawn arrays and patches against closed forms and scipy."""

from __future__ import annotations

import matplotlib

matplotlib.use("Agg")

import itertools

import matplotlib.pyplot as plt
import numpy as np
import pandas as pd
import pytest
from matplotlib.colors import to_rgba
from scipy.cluster.hierarchy import leaves_list, linkage

from whybox.errors import InvalidParameterError
from whybox.explanation import Explanation
from whybox.viz import force, heatmap
from whybox.viz.plots import BLUE, RED


@pytest.fixture(autouse=True)
def _close_figures():
    yield
    plt.close("all")


def linear_explanation(n=25, w=(3.0, -2.0, 0.5, 1.0, -0.25, 0.1), seed=0):
    """Exact SHAP of a linear model, phi_j = w_j (x_j - mean_j); base = f(mean)."""
    rng = np.random.default_rng(seed)
    w = np.asarray(w)
    X = rng.normal(size=(n, len(w)))
    phi = w * (X - X.mean(axis=0))
    base = 0.7 + float(w @ X.mean(axis=0))
    frame = pd.DataFrame(X, columns=[f"f{j}" for j in range(len(w))])
    return Explanation(phi, base, data=frame, predictions=0.7 + X @ w), phi, base, X


# ---------------------------------------------------------------------- heatmap
def test_heatmap_matrix_is_values_in_feature_and_row_order():
    exp, phi, base, _ = linear_explanation()
    ax = heatmap(exp, max_display=4, instance_order="output")
    matrix = np.asarray(ax.images[0].get_array())
    feat = np.argsort(-np.abs(phi).mean(axis=0))
    cols = np.argsort(phi.sum(axis=1), kind="stable")
    expected = np.vstack([phi[:, feat[:3]].T, phi[:, feat[3:]].sum(axis=1)])[:, cols]
    np.testing.assert_allclose(matrix, expected)
    labels = [t.get_text() for t in ax.get_yticklabels()]
    assert labels == [f"f{j}" for j in feat[:3]] + ["Sum of 3 other features"]
    # symmetric colour scale at the 99.5th percentile of |value|
    lim = np.percentile(np.abs(expected), 99.5)
    assert ax.images[0].get_clim() == pytest.approx((-lim, lim))
    # the output line is base + sum of values, in the same row order
    top, side, _ = ax.child_axes
    np.testing.assert_allclose(top.lines[0].get_ydata(), (base + phi.sum(axis=1))[cols])
    np.testing.assert_allclose(
        sorted(r.get_width() for r in side.patches), sorted(np.abs(expected).mean(axis=1))
    )


def test_heatmap_hclust_order_matches_scipy():
    exp, phi, _, _ = linear_explanation(n=18, seed=3)
    ax = heatmap(exp)
    cols = leaves_list(linkage(phi, method="average", optimal_ordering=True))
    feat = np.argsort(-np.abs(phi).mean(axis=0))
    np.testing.assert_allclose(np.asarray(ax.images[0].get_array()), phi[cols][:, feat].T)
    assert not np.array_equal(cols, np.arange(18))  # the order was not the identity


def test_heatmap_explicit_order_and_bad_orders():
    exp, phi, _, _ = linear_explanation(n=5)
    order = np.array([4, 0, 3, 1, 2])
    ax = heatmap(exp, instance_order=order, max_display=10)
    feat = np.argsort(-np.abs(phi).mean(axis=0))
    np.testing.assert_allclose(np.asarray(ax.images[0].get_array()), phi[order][:, feat].T)
    with pytest.raises(InvalidParameterError, match=r"permutation of the 5 row indices 0\.\.4"):
        heatmap(exp, instance_order=[0, 0, 1, 2, 3])
    with pytest.raises(InvalidParameterError, match=r"one of \['hclust', 'output', 'none'\]"):
        heatmap(exp, instance_order="random")


# ---------------------------------------------------------------------- force
def test_force_segments_push_from_base_to_prediction():
    exp, phi, base, X = linear_explanation()
    i = 4
    row = phi[i]
    fx = base + row.sum()
    ax = force(exp, i, max_display=3)
    rects = ax.patches
    assert len(rects) == np.count_nonzero(row)
    red = [r for r in rects if r.get_facecolor() == to_rgba(RED)]
    blue = [r for r in rects if r.get_facecolor() == to_rgba(BLUE)]
    pos = np.sort(row[row > 0])[::-1]
    neg = np.sort(row[row < 0])
    # red: largest next to f(x), laid end to end leftwards, ending at base + sum(neg)
    np.testing.assert_allclose([r.get_width() for r in red], pos)
    np.testing.assert_allclose(red[0].get_x() + red[0].get_width(), fx)
    for a, b in itertools.pairwise(red):
        assert b.get_x() + b.get_width() == pytest.approx(a.get_x())
    assert red[-1].get_x() == pytest.approx(base + neg.sum())
    # blue: largest next to f(x), rightwards, ending at base + sum(pos)
    np.testing.assert_allclose([r.get_width() for r in blue], -neg)
    assert blue[0].get_x() == pytest.approx(fx)
    assert blue[-1].get_x() + blue[-1].get_width() == pytest.approx(base + pos.sum())
    texts = [t.get_text() for t in ax.texts]
    assert f"f(x) = {fx:.4g}" in texts and f"base value = {base:.4g}" in texts
    top3 = np.argsort(-np.abs(row))[:3]
    labels = {t for t in texts if " = " in t and not t.startswith(("f(x)", "base"))}
    assert labels == {f"f{j} = {X[i, j]:.4g}" for j in top3}


def test_force_accessor_and_bad_row():
    exp, *_ = linear_explanation(n=3)
    ax = exp.plot.force(-1, show_data=False)
    assert {t.get_text() for t in ax.texts} >= {"f0", "f1"}
    assert exp.plot.heatmap(instance_order="none").images
    with pytest.raises(InvalidParameterError, match=r"row index in \[-3, 3\)"):
        force(exp, 3)
