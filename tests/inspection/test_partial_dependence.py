"""Partial dependence and ICE against scikit-learn's partial_dependence(method="brute").

The exact tree path is checked against brute force (the model's own predictions on the
modified rows) for scikit-learn, XGBoost and LightGBM ensembles, with NaN and categoricals.
"""

from __future__ import annotations

import warnings

import numpy as np
import pandas as pd
import pytest
from sklearn.compose import make_column_transformer
from sklearn.ensemble import (
    GradientBoostingClassifier,
    GradientBoostingRegressor,
    HistGradientBoostingClassifier,
    HistGradientBoostingRegressor,
    RandomForestClassifier,
    RandomForestRegressor,
)
from sklearn.inspection import partial_dependence as sk_pd
from sklearn.linear_model import LogisticRegression
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import OneHotEncoder

import whybox as wb
from whybox.errors import InvalidParameterError

N = 240


@pytest.fixture(scope="module")
def num():
    rng = np.random.default_rng(0)
    X = rng.normal(size=(N, 4))
    X[:, 3] = rng.integers(0, 5, N)  # few unique values: the grid is the unique values
    y = (X[:, 0] + X[:, 1] ** 2 - X[:, 2] * X[:, 3] / 3 + rng.normal(size=N) > 0.5).astype(int)
    return X, y


@pytest.fixture(scope="module")
def hgb(num):
    X, y = num
    return HistGradientBoostingClassifier(max_iter=25, random_state=0).fit(X, y)


@pytest.fixture(scope="module")
def frame():
    rng = np.random.default_rng(1)
    df = pd.DataFrame(
        {
            "income": rng.normal(50, 10, N),
            "age": rng.integers(20, 70, N),
            "region": pd.Categorical(rng.choice(["north", "south", "east"], N)),
        }
    )
    y = df["income"] / 10 + (df["region"] == "south") * 2.0 - df["age"] / 30 + rng.normal(size=N)
    return df, y.to_numpy()


def ice_equal(ours, ref, atol=1e-10):
    np.testing.assert_allclose(ours, ref, rtol=0, atol=atol)


# ------------------------------------------------------------------ against scikit-learn
@pytest.mark.parametrize("method", ["brute", "tree"])
@pytest.mark.parametrize("feature", [0, 3])
def test_hgb_matches_sklearn_brute(hgb, num, method, feature):
    X, _ = num
    ours = wb.partial_dependence(hgb, X, feature, kind="both", method=method)
    ref = sk_pd(hgb, X, [feature], method="brute", kind="both", grid_resolution=20)
    assert ours.method == method
    np.testing.assert_array_equal(ours.grid, ref["grid_values"][0])
    ice_equal(ours.average, ref["average"][0])
    ice_equal(ours.individual, ref["individual"][0])
    assert ours.individual.shape == (N, len(ours.grid))
    assert ours.output == "probability of class 1"


def test_grid_resolution_and_percentiles_as_sklearn(hgb, num):
    X, _ = num
    ours = wb.partial_dependence(hgb, X, 1, grid_resolution=7, percentiles=(0.1, 0.8))
    ref = sk_pd(hgb, X, [1], method="brute", grid_resolution=7, percentiles=(0.1, 0.8))
    np.testing.assert_array_equal(ours.grid, ref["grid_values"][0])
    ice_equal(ours.average, ref["average"][0])
    assert ours.individual is None


def test_pair_matches_sklearn(hgb, num):
    X, _ = num
    for method in ("brute", "tree"):
        ours = wb.partial_dependence(hgb, X, (0, 2), kind="both", grid_resolution=6, method=method)
        ref = sk_pd(hgb, X, [(0, 2)], method="brute", kind="both", grid_resolution=6)
        assert ours.average.shape == (6, 6) and ours.individual.shape == (N, 6, 6)
        for a in range(2):
            np.testing.assert_array_equal(ours.grid[a], ref["grid_values"][a])
        ice_equal(ours.average, ref["average"][0])
        ice_equal(ours.individual, ref["individual"][0])


def test_centered_ice_is_ice_minus_first_point(hgb, num):
    X, _ = num
    ours = wb.partial_dependence(hgb, X, 0, kind="individual", centered=True)
    ref = sk_pd(hgb, X, [0], method="brute", kind="individual", grid_resolution=20)
    ice = ref["individual"][0]
    ice_equal(ours.individual, ice - ice[:, :1])
    ice_equal(ours.average, (ice - ice[:, :1]).mean(axis=0))
    assert ours.average[0] == 0.0


def test_multiclass_has_a_trailing_output_axis(num):
    X, _ = num
    y3 = np.digitize(X[:, 0] + X[:, 1], [-0.5, 0.5])
    m = HistGradientBoostingClassifier(max_iter=10, random_state=0).fit(X, y3)
    ref = sk_pd(m, X, [1], method="brute", kind="both", grid_resolution=20)
    for method in ("brute", "tree"):
        ours = wb.partial_dependence(m, X, 1, kind="both", method=method)
        assert ours.average.shape == (20, 3) and ours.individual.shape == (N, 20, 3)
        ice_equal(np.moveaxis(ours.average, -1, 0), ref["average"])
        ice_equal(np.moveaxis(ours.individual, -1, 0), ref["individual"])
        one = wb.partial_dependence(m, X, 1, target=2, method=method)
        ice_equal(one.average, ref["average"][2])


def test_categorical_dataframe_feature(frame):
    X, y = frame
    m = HistGradientBoostingRegressor(
        max_iter=20, categorical_features="from_dtype", random_state=0
    ).fit(X, y)
    ref = sk_pd(m, X, ["region"], method="brute", kind="both", categorical_features=["region"])
    for method in ("brute", "tree"):
        ours = wb.partial_dependence(m, X, "region", kind="both", method=method)
        assert ours.categorical and ours.method == method
        assert list(ours.grid) == list(ref["grid_values"][0]) == ["east", "north", "south"]
        ice_equal(ours.average, ref["average"][0])
        ice_equal(ours.individual, ref["individual"][0])
    # an integer column (which scikit-learn refuses) becomes float for a fractional grid
    age = wb.partial_dependence(m, X, "age", kind="both", method="brute")
    Xf = X.astype({"age": float})
    ref = sk_pd(m, Xf, ["age"], method="brute", kind="both", grid_resolution=20)
    np.testing.assert_array_equal(age.grid, ref["grid_values"][0])
    ice_equal(age.individual, ref["individual"][0])


def test_pipeline_with_string_column_uses_brute_force():
    rng = np.random.default_rng(2)
    X = pd.DataFrame({"x": rng.normal(size=N), "job": rng.choice(["clerk", "nurse", "chef"], N)})
    y = ((X["x"] > 0) ^ (X["job"] == "nurse")).astype(int)
    pipe = make_pipeline(
        make_column_transformer((OneHotEncoder(), ["job"]), remainder="passthrough"),
        LogisticRegression(),
    ).fit(X, y)
    for feat in ("job", "x"):
        ours = wb.partial_dependence(pipe, X, feat, kind="both")
        ref = sk_pd(
            pipe,
            X,
            [feat],
            method="brute",
            kind="both",
            categorical_features=["job"],
            grid_resolution=20,
        )
        assert ours.method == "brute"
        assert list(ours.grid) == list(ref["grid_values"][0])
        ice_equal(ours.individual, ref["individual"][0])
    with pytest.raises(InvalidParameterError, match="method='tree' cannot be used"):
        wb.partial_dependence(pipe, X, "x", method="tree")


def test_sample_uses_the_documented_rows(hgb, num):
    X, _ = num
    ours = wb.partial_dependence(hgb, X, 0, kind="both", sample=50, random_state=3)
    rows = np.sort(np.random.default_rng(3).choice(N, 50, replace=False))
    ref = sk_pd(hgb, X[rows], [0], method="brute", kind="both", grid_resolution=20)
    ice_equal(ours.individual, ref["individual"][0])


def test_sample_weight_as_sklearn(hgb, num):
    X, _ = num
    w = np.random.default_rng(4).random(N)
    ours = wb.partial_dependence(hgb, X, 1, sample_weight=w)
    ref = sk_pd(hgb, X, [1], method="brute", sample_weight=w, grid_resolution=20)
    ice_equal(ours.average, ref["average"][0])


# ------------------------------------------------------------------ tree path == brute
def _tree_vs_brute(model, X, feature, atol=1e-10, rtol=0.0, **kw):
    tree = wb.partial_dependence(model, X, feature, kind="both", method="tree", **kw)
    brute = wb.partial_dependence(model, X, feature, kind="both", method="brute", **kw)
    assert tree.method == "tree" and brute.method == "brute"
    grids = (tree.grid, brute.grid) if isinstance(feature, tuple) else ((tree.grid,), (brute.grid,))
    for a, b in zip(*grids, strict=True):
        assert list(a) == list(b)
    np.testing.assert_allclose(tree.individual, brute.individual, atol=atol, rtol=rtol)
    return tree


def _nan_data(seed=5):
    rng = np.random.default_rng(seed)
    X = rng.normal(size=(N, 4))
    X[rng.random((N, 4)) < 0.1] = np.nan
    y = np.nan_to_num(X[:, 0]) - np.nan_to_num(X[:, 1]) ** 2 + rng.normal(size=N) * 0.3
    return X, y


@pytest.mark.parametrize(
    "make",
    [
        lambda: GradientBoostingRegressor(n_estimators=20, max_depth=3, random_state=0),
        lambda: GradientBoostingClassifier(n_estimators=20, max_depth=3, random_state=0),
        lambda: RandomForestRegressor(n_estimators=10, max_depth=5, random_state=0),
        lambda: RandomForestClassifier(n_estimators=10, max_depth=5, random_state=0),
        lambda: HistGradientBoostingRegressor(max_iter=20, random_state=0),
    ],
    ids=["gbr", "gbc", "rfr", "rfc", "hgb-nan"],
)
def test_tree_path_equals_brute_sklearn(make):
    X, y = _nan_data()
    model = make()
    if "HistGradient" not in type(model).__name__:
        X = np.nan_to_num(X)
    if hasattr(model, "predict_proba"):
        y = (y > 0).astype(int)
    model.fit(X, y)
    _tree_vs_brute(model, X, 1)
    _tree_vs_brute(model, X, (0, 2), grid_resolution=5)
    if hasattr(model, "predict_proba"):
        _tree_vs_brute(model, X, 1, link="logit", atol=1e-9)
        _tree_vs_brute(model, X, 1, target=0)


def test_gbc_exponential_loss_falls_back_to_brute(num):
    X, y = num
    m = GradientBoostingClassifier(loss="exponential", n_estimators=10, random_state=0).fit(X, y)
    ours = wb.partial_dependence(m, X, 0, kind="both")
    assert ours.method == "brute"  # probability = sigmoid(2 raw): not the logistic link
    ref = sk_pd(m, X, [0], method="brute", kind="both", grid_resolution=20)
    ice_equal(ours.individual, ref["individual"][0])


def test_tree_path_equals_brute_xgboost_nan_and_categorical():
    xgb = pytest.importorskip("xgboost")
    rng = np.random.default_rng(6)
    X = pd.DataFrame(
        {
            "a": rng.normal(size=N),
            "b": rng.normal(size=N),
            "k": pd.Categorical(rng.choice(list("pqrs"), N)),
        }
    )
    X.loc[rng.random(N) < 0.1, "a"] = np.nan
    y = (np.nan_to_num(X["a"]) + (X["k"] == "q") - X["b"] > 0).astype(int)
    m = xgb.XGBClassifier(
        n_estimators=15, max_depth=3, enable_categorical=True, tree_method="hist",
        max_cat_to_onehot=1,
    ).fit(X, y)  # fmt: skip
    # XGBoost predicts in float32; the tree path sums the same leaves in float64
    for feat in ("a", "k", ("a", "b")):
        _tree_vs_brute(m, X, feat, atol=1e-6, rtol=1e-6, grid_resolution=6)
    _tree_vs_brute(m, X, "b", atol=1e-5, rtol=1e-5, link="logit")


def test_tree_path_equals_brute_lightgbm_nan_and_categorical():
    lgb = pytest.importorskip("lightgbm")
    rng = np.random.default_rng(7)
    X = pd.DataFrame(
        {
            "a": rng.normal(size=N),
            "b": rng.normal(size=N),
            "k": pd.Categorical(rng.choice(list("pqrs"), N)),
        }
    )
    X.loc[rng.random(N) < 0.1, "b"] = np.nan
    y = np.nan_to_num(X["b"]) + 2.0 * (X["k"] == "r") + X["a"] ** 2 + 0.1 * rng.normal(size=N)
    m = lgb.LGBMRegressor(
        n_estimators=15, num_leaves=8, min_child_samples=5, min_data_per_group=5,
        cat_smooth=1, verbose=-1,
    ).fit(X, y)  # fmt: skip
    for feat in ("a", "b", "k", ("a", "k")):
        _tree_vs_brute(m, X, feat, grid_resolution=6)
    y3 = np.digitize(y, np.quantile(y, [0.33, 0.66]))
    c = lgb.LGBMClassifier(n_estimators=8, num_leaves=8, verbose=-1).fit(X, y3)
    t = _tree_vs_brute(c, X, "a", grid_resolution=6)
    assert t.average.shape == (6, 3)


def test_tree_path_grid_at_thresholds_is_exact(hgb, num):
    """Grid points exactly at split thresholds and beyond the data go the model's way."""
    X, _ = num
    from whybox.trees.parse import parse_tree_model

    ens = parse_tree_model(hgb)
    on_0 = ens.threshold[(ens.feature == 0) & (ens.left >= 0)]
    grid = np.unique(np.r_[np.nextafter(on_0, -np.inf), on_0, -5.0, 5.0])
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)
        tree = wb.partial_dependence(hgb, X, 0, grid=grid, kind="both", method="tree")
        ref = sk_pd(hgb, X, [0], method="brute", kind="both", custom_values={0: grid})
    ice_equal(tree.individual, ref["individual"][0])


# ------------------------------------------------------------------ bad input
def test_unknown_feature_lists_the_columns(frame):
    X, y = frame
    m = HistGradientBoostingRegressor(max_iter=5, categorical_features="from_dtype").fit(X, y)
    with pytest.raises(InvalidParameterError) as e:
        wb.partial_dependence(m, X, "salary")
    msg = str(e.value)
    assert "'salary' is not a column of X" in msg and "['income', 'age', 'region']" in msg
    with pytest.raises(InvalidParameterError, match="out of range: X has 3 columns"):
        wb.partial_dependence(m, X, 7)
    with pytest.raises(InvalidParameterError, match="the same feature twice"):
        wb.partial_dependence(m, X, ("age", "age"))


def test_bad_kind_method_and_resolution(hgb, num):
    X, _ = num
    with pytest.raises(InvalidParameterError, match=r"kind='mean' is not supported.*'average'"):
        wb.partial_dependence(hgb, X, 0, kind="mean")
    with pytest.raises(InvalidParameterError, match=r"method='fast' is not supported"):
        wb.partial_dependence(hgb, X, 0, method="fast")
    with pytest.raises(InvalidParameterError, match="grid_resolution must be at least 2"):
        wb.partial_dependence(hgb, X, 0, grid_resolution=1)
    with pytest.raises(InvalidParameterError, match="0 <= low < high <= 1"):
        wb.partial_dependence(hgb, X, 0, percentiles=(0.9, 0.1))
    with pytest.raises(InvalidParameterError, match="grid must be a tuple of two grids"):
        wb.partial_dependence(hgb, X, (0, 1), grid=np.zeros(3))


def test_unknown_target_class(hgb, num):
    X, _ = num
    with pytest.raises(
        InvalidParameterError, match=r"unknown target 'yes': this model has classes \[0, 1\]"
    ):
        wb.partial_dependence(hgb, X, 0, target="yes")


def test_extrapolating_grid_warns_with_both_ranges(hgb, num):
    X, _ = num
    lo, hi = X[:, 0].min(), X[:, 0].max()
    with pytest.warns(UserWarning) as rec:
        wb.partial_dependence(hgb, X, 0, grid=[lo - 1.0, 0.0, hi])
    msg = str(rec[0].message)
    assert "'x0'" in msg and "extrapolate" in msg
    assert f"[{lo - 1.0:.6g}, {hi:.6g}]" in msg and f"data range is [{lo:.6g}, {hi:.6g}]" in msg
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        wb.partial_dependence(hgb, X, 0, grid=[lo, hi])  # inside the range: no warning


def test_bad_category_in_grid(frame):
    X, y = frame
    m = HistGradientBoostingRegressor(max_iter=5, categorical_features="from_dtype").fit(X, y)
    with pytest.raises(InvalidParameterError, match=r"'west'.*not categories of its dtype"):
        wb.partial_dependence(m, X, "region", grid=["north", "west"])


# ------------------------------------------------------------------ result object and plot
def test_to_frame_and_plot_draw_the_values(hgb, num):
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    X, _ = num
    r = wb.partial_dependence(hgb, X, 0, kind="both")
    f = r.to_frame()
    assert list(f.columns) == ["x0", "average"]
    np.testing.assert_array_equal(f["average"].to_numpy(), r.average)
    ax = r.plot()
    avg = [ln for ln in ax.get_lines() if ln.get_label() == "average"]
    ice = [ln for ln in ax.get_lines() if ln.get_label() == "_ice"]
    np.testing.assert_array_equal(avg[0].get_ydata(), r.average)
    np.testing.assert_array_equal(avg[0].get_xdata(), r.grid)
    assert len(ice) == 200  # max_ice
    np.testing.assert_array_equal(ice[5].get_ydata(), r.individual[5])
    pair = wb.partial_dependence(hgb, X, (0, 1), grid_resolution=5)
    ax2 = pair.plot()
    assert ax2.get_xlabel() == "x0" and ax2.get_ylabel() == "x1"
    plt.close("all")
