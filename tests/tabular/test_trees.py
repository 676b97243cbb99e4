"""The tree parser reproduces each library's own raw predictions (NaN, categories, classes)."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from sklearn.ensemble import (
    ExtraTreesRegressor,
    GradientBoostingClassifier,
    GradientBoostingRegressor,
    HistGradientBoostingClassifier,
    HistGradientBoostingRegressor,
    RandomForestClassifier,
    RandomForestRegressor,
)
from sklearn.tree import DecisionTreeClassifier, DecisionTreeRegressor

from whybox.errors import InvalidParameterError, UnsupportedModelError
from whybox.tabular.trees import parse_tree_model

xgb = pytest.importorskip("xgboost")
lgb = pytest.importorskip("lightgbm")


def data(nan=False, cat=False, seed=0):
    rng = np.random.default_rng(seed)
    X = pd.DataFrame(rng.normal(size=(400, 5)), columns=list("abcde"))
    if cat:
        X["k"] = pd.Categorical(rng.choice(list("wxyz"), 400))
    if nan:
        X = X.mask(rng.random(X.shape) < 0.1)
    y = (X["a"].fillna(0) * X["b"].fillna(0) + rng.normal(size=400) > 0).astype(int)
    ym = rng.integers(0, 3, 400)
    return X, y, ym, X["a"].fillna(0) + X["c"].fillna(0) ** 2


def raw(ens, X):
    return ens.predict_raw(ens.encode(X))


@pytest.mark.parametrize("nan", [False, True])
@pytest.mark.parametrize("cat", [False, True])
@pytest.mark.parametrize("objective", ["binary:logistic", "multi:softprob", "reg:squarederror"])
def test_xgboost(objective, nan, cat):
    X, yb, ym, yr = data(nan, cat)
    y = {"binary:logistic": yb, "multi:softprob": ym, "reg:squarederror": yr}[objective]
    params = {"objective": objective, "max_depth": 4, "tree_method": "hist", "max_cat_to_onehot": 1}
    if objective.startswith("multi"):
        params["num_class"] = 3
    b = xgb.train(params, xgb.DMatrix(X, label=y, enable_categorical=True), 10)
    own = b.predict(xgb.DMatrix(X, enable_categorical=True), output_margin=True)
    # XGBoost sums leaves in float32: agreement to float32 rounding
    np.testing.assert_allclose(raw(parse_tree_model(b), X), own.reshape(400, -1), atol=1e-6)


@pytest.mark.parametrize("nan", [False, True])
@pytest.mark.parametrize("cat", [False, True])
@pytest.mark.parametrize("objective", ["binary", "multiclass", "regression"])
def test_lightgbm(objective, nan, cat):
    X, yb, ym, yr = data(nan, cat, seed=1)
    y = {"binary": yb, "multiclass": ym, "regression": yr}[objective]
    params = {
        "objective": objective,
        "num_leaves": 15,
        "verbose": -1,
        "min_data_per_group": 5,
        "cat_smooth": 1,
    }
    if objective == "multiclass":
        params["num_class"] = 3
    b = lgb.train(params, lgb.Dataset(X, label=y), 10)
    own = b.predict(X, raw_score=True)
    np.testing.assert_allclose(raw(parse_tree_model(b), X), own.reshape(400, -1), atol=1e-12)
    sk = lgb.LGBMClassifier(n_estimators=5, verbose=-1).fit(X, yb)
    np.testing.assert_allclose(
        raw(parse_tree_model(sk), X)[:, 0], sk.predict(X, raw_score=True), atol=1e-12
    )


@pytest.mark.parametrize("nan", [False, True])
@pytest.mark.parametrize(
    ("make", "kind"),
    [
        (lambda: RandomForestClassifier(10, random_state=0), "proba"),
        (lambda: RandomForestRegressor(10, random_state=0), "predict"),
        (lambda: ExtraTreesRegressor(5, random_state=0), "predict"),
        (lambda: DecisionTreeRegressor(random_state=0), "predict"),
        (lambda: DecisionTreeClassifier(max_depth=5, random_state=0), "proba"),
        (lambda: GradientBoostingClassifier(n_estimators=10, random_state=0), "decision"),
        (lambda: GradientBoostingRegressor(n_estimators=10, random_state=0), "predict"),
    ],
)
def test_sklearn(make, kind, nan):
    X, yb, _ym, yr = data(nan, seed=2)
    m = make()
    if nan and type(m).__name__.startswith("GradientBoosting"):
        X = X.fillna(0.0)  # GradientBoosting does not take NaN
    m.fit(X, yb if kind != "predict" else yr)
    own = getattr(
        m, {"proba": "predict_proba", "predict": "predict", "decision": "decision_function"}[kind]
    )
    np.testing.assert_allclose(raw(parse_tree_model(m), X), own(X).reshape(400, -1), atol=1e-12)


def test_sklearn_thresholds_compare_float32_inputs_exactly():
    # values exactly at a threshold, or one float64 ulp around it, decide like sklearn
    X, _, _, yr = data(seed=3)
    m = DecisionTreeRegressor(max_depth=6, random_state=0).fit(X, yr)
    thr = m.tree_.threshold[m.tree_.feature >= 0]
    feats = m.tree_.feature[m.tree_.feature >= 0]
    rows = np.repeat(X.to_numpy()[:1], 3 * len(thr), axis=0)
    for i, (t, f) in enumerate(zip(thr, feats, strict=True)):
        rows[3 * i, f] = t
        rows[3 * i + 1, f] = np.nextafter(t, np.inf)
        rows[3 * i + 2, f] = np.float32(t)
    Xa = pd.DataFrame(rows, columns=X.columns)
    np.testing.assert_array_equal(raw(parse_tree_model(m), Xa)[:, 0], m.predict(Xa))


@pytest.mark.parametrize("nan", [False, True])
@pytest.mark.parametrize("cat", [False, True])
def test_hist_gradient_boosting(nan, cat):
    X, yb, ym, yr = data(nan, cat, seed=4)
    for m, y in (
        (HistGradientBoostingClassifier(max_iter=10, random_state=0), yb),
        (HistGradientBoostingClassifier(max_iter=10, random_state=0), ym),
        (HistGradientBoostingRegressor(max_iter=10, random_state=0), yr),
    ):
        m.fit(X, y)
        np.testing.assert_allclose(raw(parse_tree_model(m), X), m._raw_predict(X), atol=1e-12)
        # columns given in another order are reordered by name
        Xr = X[X.columns[::-1]]
        np.testing.assert_allclose(raw(parse_tree_model(m), Xr), m._raw_predict(X), atol=1e-12)


def test_expected_value_of_forest_matches_shap():
    shap = pytest.importorskip("shap")
    X, _, _, yr = data(seed=5)
    m = RandomForestRegressor(8, max_depth=6, random_state=0).fit(X, yr)
    ens = parse_tree_model(m)
    frac = ens.cover / np.repeat(ens.cover[ens.tree_start[:-1]], np.diff(ens.tree_start))
    leaves = ens.left < 0
    expected = float((ens.value[leaves, 0] * frac[leaves]).sum())
    np.testing.assert_allclose(expected, shap.TreeExplainer(m).expected_value, rtol=1e-10)


def test_unsupported_and_unfitted():
    with pytest.raises(UnsupportedModelError, match="XGBoost"):
        parse_tree_model(object())
    with pytest.raises((InvalidParameterError, UnsupportedModelError), match="fit"):
        parse_tree_model(RandomForestRegressor())
