"""Tests of whybox.viz.plots: assertions on the drawn artists, not just "it runs"."""

from __future__ import annotations

import itertools

import matplotlib

matplotlib.use("Agg")

import matplotlib.pyplot as plt
import numpy as np
import pandas as pd
import pytest
from matplotlib.colors import to_rgba
from matplotlib.container import ErrorbarContainer
from matplotlib.patches import Rectangle

from whybox.errors import InvalidParameterError
from whybox.explanation import Explanation
from whybox.viz import bar, beeswarm, scatter, waterfall
from whybox.viz.plots import BLUE, CMAP, GREY, RED

PLOTS = {
    "bar": lambda e, **kw: bar(e, **kw),
    "waterfall": lambda e, **kw: waterfall(e, 0, **kw),
    "beeswarm": lambda e, **kw: beeswarm(e, **kw),
    "scatter": lambda e, **kw: scatter(e, 0, **kw),
}


@pytest.fixture(autouse=True)
def _close_figures():
    yield
    plt.close("all")


def linear_explanation(
    n: int = 40, weights: tuple[float, ...] = (3.0, -2.0, 0.5, 1.0, -0.25, 0.1), seed: int = 0
) -> tuple[Explanation, np.ndarray, float, np.ndarray]:
    """Exact SHAP values of a linear model: phi_j = w_j * (x_j - mean_j)."""
    rng = np.random.default_rng(seed)
    w = np.asarray(weights)
    X = rng.normal(size=(n, len(w))) * np.arange(1, len(w) + 1)
    mean = X.mean(axis=0)
    phi = w * (X - mean)
    intercept = 0.7
    base = intercept + float(w @ mean)
    names = [f"f{j}" for j in range(len(w))]
    frame = pd.DataFrame(X, columns=names)
    exp = Explanation(phi, base, data=frame, predictions=intercept + X @ w)
    return exp, phi, base, X


def bars_top_down(ax) -> list[Rectangle]:
    rects = [p for p in ax.patches if isinstance(p, Rectangle)]
    return sorted(rects, key=lambda r: -r.get_y())


def ytick_texts(ax) -> dict[float, str]:
    return {float(t.get_position()[1]): t.get_text() for t in ax.get_yticklabels() if t.get_text()}


# ---------------------------------------------------------------------- bar
def test_bar_lengths_are_mean_abs_largest_first():
    exp, phi, _, _ = linear_explanation()
    ax = bar(exp)
    mean_abs = np.abs(phi).mean(axis=0)
    expected_order = np.argsort(-mean_abs)
    rects = bars_top_down(ax)
    assert len(rects) == 6
    np.testing.assert_allclose([r.get_width() for r in rects], mean_abs[expected_order])
    labels = ytick_texts(ax)
    assert [labels[r.get_y() + r.get_height() / 2] for r in rects] == [
        f"f{j}" for j in expected_order
    ]
    # the bars start at zero
    np.testing.assert_allclose([r.get_x() for r in rects], 0.0)


def test_bar_sums_the_remaining_features():
    exp, phi, _, _ = linear_explanation()
    ax = bar(exp, max_display=3, title="importance")
    mean_abs = np.abs(phi).mean(axis=0)
    order = np.argsort(-mean_abs)
    rects = bars_top_down(ax)
    assert len(rects) == 3
    widths = [r.get_width() for r in rects]
    np.testing.assert_allclose(widths[:2], mean_abs[order[:2]])
    np.testing.assert_allclose(widths[2], mean_abs[order[2:]].sum())
    labels = ytick_texts(ax)
    assert labels[rects[-1].get_y() + rects[-1].get_height() / 2] == "Sum of 4 other features"
    assert ax.get_title() == "importance"


def test_bar_single_row_shows_signed_values_coloured_by_sign():
    exp, phi, _, _ = linear_explanation()
    ax = bar(exp[3])
    row = phi[3]
    order = np.argsort(-np.abs(row))
    rects = bars_top_down(ax)
    np.testing.assert_allclose([r.get_width() for r in rects], row[order])
    for r, v in zip(rects, row[order], strict=True):
        assert r.get_facecolor() == to_rgba(RED if v >= 0 else BLUE)
    assert {np.sign(v) for v in row} == {-1.0, 1.0}  # both colours were exercised


def test_bar_error_bars_follow_documented_formula():
    exp, phi, base, X = linear_explanation(n=25)
    std = np.abs(np.random.default_rng(1).normal(size=phi.shape)) * 0.1
    exp = Explanation(phi, base, data=pd.DataFrame(X), std=std)
    ax = bar(exp, max_display=4)
    mean_abs = np.abs(phi).mean(axis=0)
    order = np.argsort(-mean_abs)
    se = np.sqrt((std**2).mean(axis=0)) / np.sqrt(25)
    expected_half = 1.96 * np.concatenate([se[order[:3]], [np.sqrt((se[order[3:]] ** 2).sum())]])
    (errbar,) = [c for c in ax.containers if isinstance(c, ErrorbarContainer)]
    segments = errbar.lines[2][0].get_segments()
    # segments are in drawing order (bottom-up index order = our top-down order)
    half = np.array([(s[1][0] - s[0][0]) / 2 for s in segments])
    centres = np.array([(s[1][0] + s[0][0]) / 2 for s in segments])
    np.testing.assert_allclose(half, expected_half)
    np.testing.assert_allclose(
        centres, np.concatenate([mean_abs[order[:3]], [mean_abs[order[3:]].sum()]])
    )


# ---------------------------------------------------------------------- waterfall
def test_waterfall_cumulates_from_base_to_prediction():
    exp, phi, base, X = linear_explanation()
    i = 5
    ax = waterfall(exp, i, max_display=4)
    row = phi[i]
    order = np.argsort(-np.abs(row))
    rects = sorted(ax.patches, key=lambda r: r.get_y())  # bottom-up
    assert len(rects) == 4
    # bottom bar: the 3 smallest features summed, starting at E[f(X)]
    assert rects[0].get_x() == pytest.approx(base)
    assert rects[0].get_width() == pytest.approx(row[order[3:]].sum())
    # then the shown features, smallest |value| to largest
    np.testing.assert_allclose([r.get_width() for r in rects[1:]], row[order[:3]][::-1])
    # each bar starts where the previous one ended
    for prev, nxt in itertools.pairwise(rects):
        assert nxt.get_x() == pytest.approx(prev.get_x() + prev.get_width())
    top = rects[-1]
    fx = base + row.sum()
    assert top.get_x() + top.get_width() == pytest.approx(fx)
    assert fx == pytest.approx(exp.predictions[i])
    for r in rects:
        assert r.get_facecolor() == to_rgba(RED if r.get_width() >= 0 else BLUE)

    labels = ytick_texts(ax)
    assert labels[0.0] == "3 other features"
    j = order[0]
    assert labels[3.0] == f"f{j} = {X[i, j]:.4g}"
    texts = [t.get_text() for t in ax.texts]
    assert f"E[f(X)] = {base:.4g}" in texts
    assert f"f(x) = {fx:.4g}" in texts
    for v in row[order[:3]]:
        assert f"{v:+.4g}" in texts
    ax.figure.canvas.draw()


def test_waterfall_without_data_uses_names_and_all_features_fit():
    exp, phi, base, _ = linear_explanation()
    exp = Explanation(phi, base)
    ax = waterfall(exp, -1)
    rects = sorted(ax.patches, key=lambda r: r.get_y())
    assert len(rects) == 6
    assert rects[-1].get_x() + rects[-1].get_width() == pytest.approx(base + phi[-1].sum())
    assert set(ytick_texts(ax).values()) == {f"x{j}" for j in range(6)}


def test_waterfall_show_data_false_and_mixed_data_formatting():
    frame = pd.DataFrame(
        {
            "age": [31, 45],
            "ratio": [0.123456789, 2.0],
            "city": pd.Categorical(["Paris", "Oslo"]),
            "member": [True, False],
        }
    )
    values = np.array([[0.5, -0.25, 0.1, 0.05], [0.2, 0.3, -0.4, 0.0]])
    exp = Explanation(values, 1.0, data=frame)
    labels = set(ytick_texts(waterfall(exp, 0)).values())
    assert labels == {"age = 31", "ratio = 0.1235", "city = Paris", "member = True"}
    labels = set(ytick_texts(waterfall(exp, 0, show_data=False)).values())
    assert labels == {"age", "ratio", "city", "member"}


def test_waterfall_rejects_bad_row():
    exp, *_ = linear_explanation(n=3)
    with pytest.raises(InvalidParameterError, match="row index"):
        waterfall(exp, 3)


# ---------------------------------------------------------------------- beeswarm
def test_beeswarm_one_point_per_row_and_feature_at_the_values():
    exp, phi, _, X = linear_explanation(n=30)
    ax = beeswarm(exp, max_display=4)
    order = np.argsort(-np.abs(phi).mean(axis=0))
    colls = ax.collections
    assert len(colls) == 4
    for rank, coll in enumerate(colls[:3]):
        offsets = np.asarray(coll.get_offsets())
        assert offsets.shape == (30, 2)
        np.testing.assert_allclose(offsets[:, 0], phi[:, order[rank]])
        line = 3 - rank
        assert np.all(np.abs(offsets[:, 1] - line) <= 0.4)
        assert coll.get_label() == f"f{order[rank]}"
        # colour follows the data value: the largest value is the reddest point
        colours = coll.get_facecolors()
        data = X[:, order[rank]]
        np.testing.assert_allclose(colours[np.argmax(data)][:3], CMAP(1.0)[:3])
        np.testing.assert_allclose(colours[np.argmin(data)][:3], CMAP(0.0)[:3])
    other = np.asarray(colls[3].get_offsets())
    np.testing.assert_allclose(other[:, 0], phi[:, order[3:]].sum(axis=1))
    assert colls[3].get_label() == "Sum of 3 other features"
    labels = ytick_texts(ax)
    assert labels[0.0] == "Sum of 3 other features"
    assert labels[3.0] == f"f{order[0]}"
    # a colour bar was added to the figure
    assert len(ax.figure.axes) == 2


def test_beeswarm_is_deterministic_and_spreads_ties():
    values = np.zeros((20, 2))
    values[:, 0] = 1.0  # all identical: must be spread vertically
    values[:, 1] = np.linspace(-1, 1, 20)
    exp = Explanation(values, 0.0, data=np.ones((20, 2)))
    a = np.asarray(beeswarm(exp).collections[0].get_offsets()).copy()
    b = np.asarray(beeswarm(exp).collections[0].get_offsets()).copy()
    np.testing.assert_array_equal(a, b)
    assert len(np.unique(a[:, 1])) > 10


def test_beeswarm_colours_categorical_and_string_columns_by_code():
    frame = pd.DataFrame(
        {
            "grade": pd.Categorical(["b", "a", "c", "a"], categories=["a", "b", "c"]),
            "city": ["Rome", "Oslo", "Rome", "Lima"],
        }
    )
    values = np.array([[1.0, 0.1], [2.0, 0.2], [3.0, 0.3], [4.0, 0.4]])
    ax = beeswarm(Explanation(values, 0.0, data=frame), color_bar=False)
    grade, city = ax.collections
    expected = CMAP(np.array([0.5, 0.0, 1.0, 0.0]))
    np.testing.assert_allclose(grade.get_facecolors()[:, :3], expected[:, :3])
    # strings sorted: Lima=0, Oslo=1, Rome=2
    expected = CMAP(np.array([1.0, 0.5, 1.0, 0.0]))
    np.testing.assert_allclose(city.get_facecolors()[:, :3], expected[:, :3])
    assert len(ax.figure.axes) == 1  # no colour bar


def test_beeswarm_without_data_is_grey():
    _, phi, base, _ = linear_explanation(n=10)
    ax = beeswarm(Explanation(phi, base))
    for coll in ax.collections:
        np.testing.assert_allclose(coll.get_facecolors()[:, :3], [to_rgba(GREY)[:3]] * 10)
    assert len(ax.figure.axes) == 1


# ---------------------------------------------------------------------- scatter
def test_scatter_offsets_are_data_and_values():
    exp, phi, _, X = linear_explanation()
    ax = scatter(exp, "f1")
    offsets = np.asarray(ax.collections[0].get_offsets())
    np.testing.assert_allclose(offsets[:, 0], X[:, 1])
    np.testing.assert_allclose(offsets[:, 1], phi[:, 1])
    assert ax.get_xlabel() == "f1"
    # by index too
    offsets = np.asarray(scatter(exp, 2).collections[0].get_offsets())
    np.testing.assert_allclose(offsets, np.c_[X[:, 2], phi[:, 2]])


def test_scatter_categorical_positions_and_labels():
    frame = pd.DataFrame(
        {
            "grade": pd.Categorical(["b", "a", "c", "a"], categories=["c", "b", "a"]),
            "city": ["Rome", "Oslo", "Rome", "Lima"],
            "x": [1.0, 2.0, 3.0, np.nan],
        }
    )
    values = np.arange(12, dtype=float).reshape(4, 3)
    exp = Explanation(values, 0.0, data=frame)
    ax = scatter(exp, "grade")
    offsets = np.asarray(ax.collections[0].get_offsets())
    np.testing.assert_allclose(offsets[:, 0], [1, 2, 0, 2])
    np.testing.assert_allclose(offsets[:, 1], values[:, 0])
    assert [t.get_text() for t in ax.get_xticklabels()] == ["c", "b", "a"]

    ax = scatter(exp, "city")
    np.testing.assert_allclose(np.asarray(ax.collections[0].get_offsets())[:, 0], [2, 1, 2, 0])
    assert [t.get_text() for t in ax.get_xticklabels()] == ["Lima", "Oslo", "Rome"]
    ax.figure.canvas.draw()


def test_scatter_colour_by_another_feature():
    exp, _, _, X = linear_explanation()
    ax = scatter(exp, "f0", color="f3")
    coll = ax.collections[0]
    np.testing.assert_allclose(coll.get_array(), X[:, 3])
    assert len(ax.figure.axes) == 2
    ax.figure.canvas.draw()


def test_scatter_needs_data_and_a_known_feature():
    exp, phi, base, _ = linear_explanation()
    with pytest.raises(InvalidParameterError, match="no data"):
        scatter(Explanation(phi, base), 0)
    with pytest.raises(InvalidParameterError, match="Known features"):
        scatter(exp, "nope")
    with pytest.raises(InvalidParameterError, match="out of range"):
        scatter(exp, 6)
    with pytest.raises(InvalidParameterError, match="color"):
        scatter(exp, 0, color="nope")


# ---------------------------------------------------------------------- shared rules
def multi_output_explanation() -> tuple[Explanation, np.ndarray]:
    rng = np.random.default_rng(3)
    values = rng.normal(size=(15, 4, 2))
    data = rng.normal(size=(15, 4))
    exp = Explanation(values, np.zeros((15, 2)), data=data, output_names=["no", "yes"])
    return exp, values


@pytest.mark.parametrize("name", sorted(PLOTS))
def test_multi_output_requires_output(name):
    exp, _ = multi_output_explanation()
    with pytest.raises(InvalidParameterError) as info:
        PLOTS[name](exp)
    msg = str(info.value)
    assert "'no'" in msg and "'yes'" in msg and "output=" in msg
    ax = PLOTS[name](exp, output="yes")
    ax.figure.canvas.draw()
    ax = PLOTS[name](exp, output=0)
    with pytest.raises(InvalidParameterError, match="unknown output"):
        PLOTS[name](exp, output="maybe")


def test_multi_output_selects_the_right_output():
    exp, values = multi_output_explanation()
    ax = bar(exp, output="yes")
    mean_abs = np.abs(values[..., 1]).mean(axis=0)
    np.testing.assert_allclose([r.get_width() for r in bars_top_down(ax)], np.sort(mean_abs)[::-1])
    offsets = np.asarray(scatter(exp, 2, output=0).collections[0].get_offsets())
    np.testing.assert_allclose(offsets[:, 1], values[:, 2, 0])


def test_single_output_rejects_a_foreign_output():
    exp, *_ = linear_explanation()
    bar(exp, output=0)
    with pytest.raises(InvalidParameterError, match="single output"):
        bar(exp, output="yes")


@pytest.mark.parametrize("name", sorted(PLOTS))
def test_non_tabular_explanation_is_rejected(name):
    exp = Explanation(np.zeros((3, 4, 4)), 0.0, data=np.zeros((3, 4, 4)))
    with pytest.raises(InvalidParameterError, match="tabular"):
        PLOTS[name](exp)
    ragged = Explanation([np.zeros(2), np.zeros(3)], 0.0)
    with pytest.raises(InvalidParameterError, match="ragged"):
        PLOTS[name](ragged)


@pytest.mark.parametrize("bad", [0, -1, 2.5, True, "3"])
def test_max_display_is_validated(bad):
    exp, *_ = linear_explanation()
    for fn in (bar, beeswarm):
        with pytest.raises(InvalidParameterError, match="max_display"):
            fn(exp, max_display=bad)
    with pytest.raises(InvalidParameterError, match="max_display"):
        waterfall(exp, 0, max_display=bad)


def test_odd_feature_names_render_literally():
    names = ["<script>alert(1)</script>", "price in $ and $USD", "a_b^{c}", "$x$"]
    rng = np.random.default_rng(0)
    values = rng.normal(size=(8, 4))
    frame = pd.DataFrame(rng.normal(size=(8, 4)), columns=names)
    exp = Explanation(values, 0.5, data=frame)
    for ax in (
        bar(exp, title="$ cost $"),
        bar(exp[0]),
        waterfall(exp, 1),
        beeswarm(exp),
        scatter(exp, names[0], color=names[3]),
        scatter(exp, "$x$"),
    ):
        ax.figure.canvas.draw()
    shown = set(ytick_texts(bar(exp)).values())
    assert shown == set(names)
    ax = bar(exp)
    ax.figure.canvas.draw()
    for t in ax.get_yticklabels():
        assert not t.get_parse_math()


def test_plot_accessor_and_given_axes():
    exp, *_ = linear_explanation()
    fig, axes = plt.subplots(2, 2)
    assert exp.plot.bar(ax=axes[0, 0]) is axes[0, 0]
    assert exp.plot.waterfall(2, ax=axes[0, 1]) is axes[0, 1]
    assert exp.plot.beeswarm(ax=axes[1, 0]) is axes[1, 0]
    assert exp.plot.scatter("f0", ax=axes[1, 1]) is axes[1, 1]
    fig.canvas.draw()


def test_missing_values_read_na_in_labels():
    """A NaN data value (a missing entry, an EBM pair term) is labelled NA, not 'nan'."""
    import pandas as pd

    from whybox.viz.plots import _fmt_data

    assert [_fmt_data(v) for v in (float("nan"), np.float32("nan"), None, pd.NA)] == ["NA"] * 4
    assert [_fmt_data(v) for v in (1.23456, 3, True, "a")] == ["1.235", "3", "True", "a"]
