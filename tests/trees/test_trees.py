"""The tree parser reproduces each library's own raw predictions: the oracle is the library.

Decisions are checked bit for bit where the library exposes leaf indices (scikit-learn
``apply``, XGBoost ``pred_leaf``) and on adversarial inputs at and around every threshold;
values agree to float64 rounding (float32 accumulation for XGBoost and CatBoost).
"""

from __future__ import annotations

import warnings

import numpy as np
import pandas as pd
import pytest
from sklearn.ensemble import (
    ExtraTreesClassifier,
    ExtraTreesRegressor,
    GradientBoostingClassifier,
    GradientBoostingRegressor,
    HistGradientBoostingClassifier,
    HistGradientBoostingRegressor,
    IsolationForest,
    RandomForestClassifier,
    RandomForestRegressor,
)
from sklearn.ensemble._iforest import _average_path_length
from sklearn.linear_model import LinearRegression
from sklearn.tree import DecisionTreeClassifier, DecisionTreeRegressor, ExtraTreeRegressor

from whybox.errors import InvalidInputError, InvalidParameterError, UnsupportedModelError
from whybox.trees.parse import SUPPORTED, TreeEnsemble, parse_tree_model

xgb = pytest.importorskip("xgboost")
lgb = pytest.importorskip("lightgbm")

N = 300


def data(nan=False, cat=False, seed=0, n=N):
    rng = np.random.default_rng(seed)
    X = pd.DataFrame(rng.normal(size=(n, 4)), columns=["a", "b", "c", "d e"])
    X["b"] = X["b"].round(1)  # repeated values: thresholds between neighbours
    if cat:
        X["k"] = pd.Categorical(rng.choice(list("vwxyz"), n))
    if nan:
        X[["a", "b", "c"]] = X[["a", "b", "c"]].mask(rng.random((n, 3)) < 0.15)
    k = X["k"].cat.codes.to_numpy() if cat else np.zeros(n)
    a, b = X["a"].fillna(0).to_numpy(), X["b"].fillna(0).to_numpy()
    yr = a + b**2 + np.isin(k, [1, 3]) * 2.0 + 0.3 * rng.normal(size=n)
    yb = (yr > np.median(yr)).astype(int)
    ym = np.digitize(yr, np.quantile(yr, [0.33, 0.66]))
    return X, yb, ym, yr


def raw(ens, X):
    return ens.predict_raw(ens.encode(X))


def edge_rows(ens, X, max_rows=3000, seed=0):
    """Rows whose value on a split feature sits at, just below and just above the threshold,
    in float64 and float32 (the exact half-way points of float32 rounding included)."""
    rng = np.random.default_rng(seed)
    finite = np.abs(ens.threshold) < 1e30  # not the "all values vs missing" splits at +-inf
    nodes = np.flatnonzero((ens.left >= 0) & ~ens.is_categorical & finite)
    nodes = rng.permutation(nodes)[: max_rows // 8]
    rows = X.iloc[rng.integers(0, len(X), len(nodes) * 8)].copy()
    for i, node in enumerate(nodes):
        t = ens.threshold[node]
        lo, t64 = np.nextafter(t, -np.inf), t
        t32 = np.float32(lo)
        up32, dn32 = np.nextafter(t32, np.float32(np.inf)), np.nextafter(t32, np.float32(-np.inf))
        vals = [lo, t64, np.nextafter(lo, -np.inf), float(t32), float(up32), float(dn32)]
        vals += [(float(t32) + float(up32)) / 2, (float(t32) + float(dn32)) / 2]
        j = ens.feature[node]
        if ens.feature_names is not None:  # LightGBM writes "d e" as "d_e"
            cols = [c.replace(" ", "_") for c in rows.columns]
            j = cols.index(ens.feature_names[j].replace(" ", "_"))
        for a, v in enumerate(vals):
            rows.iat[8 * i + a, j] = v
    return rows


def check_structure(ens: TreeEnsemble):
    """Parents before children, every node reachable, internal values = cover-weighted means."""
    assert ens.left.dtype == np.int64 and ens.value.shape == (len(ens.left), ens.n_outputs)
    for t in range(ens.n_trees):
        s, e = ens.tree_start[t], ens.tree_start[t + 1]
        inner = np.flatnonzero(ens.left[s:e] >= 0) + s
        assert (ens.left[inner] > inner).all() and (ens.right[inner] > inner).all()
        children = np.concatenate([ens.left[inner], ens.right[inner]])
        assert len(np.unique(children)) == e - s - 1  # a tree: every non-root node once
        leaves = np.flatnonzero(ens.left[s:e] < 0) + s
        c = ens.cover[leaves]
        additive = ens.cover[ens.left[inner]] + ens.cover[ens.right[inner]]
        if c.sum() > 0 and np.allclose(ens.cover[inner], additive, rtol=1e-4):
            # the root value is the cover-weighted mean of the leaves
            mean = (ens.value[leaves] * c[:, None]).sum(0) / c.sum()
            np.testing.assert_allclose(ens.value[s], mean, rtol=1e-4, atol=1e-8)
    assert ens.max_depth >= 0 and len(ens.cat_values) >= 1


def assert_same(got, own, rtol=0.0, atol=1e-12):
    own = np.asarray(own, np.float64).reshape(len(got), -1)
    np.testing.assert_allclose(got, own, rtol=rtol, atol=atol)


# ------------------------------------------------------------------ scikit-learn
CLF = ["binary", "multi"]
SK_MODELS = [
    (lambda: DecisionTreeRegressor(random_state=0), "predict", ["reg"]),
    (lambda: DecisionTreeClassifier(max_depth=6, random_state=0), "predict_proba", CLF),
    (lambda: ExtraTreeRegressor(random_state=0), "predict", ["reg"]),
    (lambda: RandomForestClassifier(10, max_depth=8, random_state=0), "predict_proba", CLF),
    (lambda: RandomForestRegressor(10, max_depth=8, random_state=0), "predict", ["reg"]),
    (lambda: ExtraTreesClassifier(8, max_depth=8, random_state=0), "predict_proba", CLF),
    (lambda: ExtraTreesRegressor(8, max_depth=8, random_state=0), "predict", ["reg"]),
    (lambda: GradientBoostingClassifier(n_estimators=15, random_state=0), "decision_function", CLF),
    (lambda: GradientBoostingRegressor(n_estimators=15, random_state=0), "predict", ["reg"]),
]  # fmt: skip
SK_CASES = [(make, method, t) for make, method, targets in SK_MODELS for t in targets]


@pytest.mark.parametrize(
    ("make", "method", "target"),
    SK_CASES,
    ids=[f"{make().__class__.__name__}-{t}" for make, _, t in SK_CASES],
)
def test_sklearn_matches_own_predictions(make, method, target):
    m = make()
    # NaN where the estimator supports it (trees and forests; not GradientBoosting)
    nan = not type(m).__name__.startswith("GradientBoosting")
    X, yb, ym, yr = data(nan=nan, seed=1)
    m.fit(X, {"binary": yb, "multi": ym, "reg": yr}[target])
    ens = parse_tree_model(m)
    check_structure(ens)
    own = getattr(m, method)
    assert_same(raw(ens, X), own(X))
    E = edge_rows(ens, X)
    assert_same(raw(ens, E), own(E))
    if method == "predict_proba":
        assert ens.n_outputs == len(m.classes_) and (ens.tree_output == -1).all()
    assert ens.input_dtype == "float32"
    # the same leaves as scikit-learn, for every tree
    leaves = ens.apply(ens.encode(E)) - ens.tree_start[:-1]
    trees = np.ravel(m.estimators_) if hasattr(m, "estimators_") else [m]
    for t, tree in enumerate(trees):
        Et = E if hasattr(tree, "feature_names_in_") else E.to_numpy()
        np.testing.assert_array_equal(leaves[:, t], tree.apply(Et))
    # columns in another order are put back in the model's order by name
    assert_same(raw(ens, X[X.columns[::-1]]), own(X))


def test_sklearn_thresholds_are_exact_on_float32_ties():
    # values at, between and around float32 neighbours of every threshold decide as sklearn
    X, _, _, yr = data(seed=3)
    m = DecisionTreeRegressor(max_depth=8, random_state=0).fit(X, yr)
    ens = parse_tree_model(m)
    E = edge_rows(ens, X, max_rows=8 * int((ens.left >= 0).sum()))
    assert len(E) == 8 * int((ens.left >= 0).sum())
    np.testing.assert_array_equal(raw(ens, E)[:, 0], m.predict(E))


def test_sklearn_nan_routing_when_trained_without_nan():
    X, yb, _, _ = data(seed=4)
    m = RandomForestClassifier(6, max_depth=6, random_state=0).fit(X, yb)
    Xn = X.mask(np.random.default_rng(0).random(X.shape) < 0.3)
    assert_same(raw(parse_tree_model(m), Xn), m.predict_proba(Xn))


def test_sklearn_multi_output_regression_and_gb_init_zero():
    X, _, _, yr = data(seed=5)
    Y = np.c_[yr, -2 * yr + X["c"]]
    m = RandomForestRegressor(5, max_depth=5, random_state=0).fit(X, Y)
    ens = parse_tree_model(m)
    assert ens.n_outputs == 2 and ens.output_names == ["prediction 0", "prediction 1"]
    assert_same(raw(ens, X), m.predict(X))
    g = GradientBoostingRegressor(n_estimators=5, init="zero").fit(X, yr)
    np.testing.assert_array_equal(parse_tree_model(g).base_offset, [0.0])
    assert_same(raw(parse_tree_model(g), X), g.predict(X))
    custom = GradientBoostingRegressor(n_estimators=3, init=LinearRegression()).fit(X, yr)
    with pytest.raises(UnsupportedModelError, match="init"):
        parse_tree_model(custom)


def test_sklearn_gb_links():
    X, yb, ym, _ = data(seed=6)
    b = parse_tree_model(GradientBoostingClassifier(n_estimators=3).fit(X, yb))
    m = parse_tree_model(GradientBoostingClassifier(n_estimators=3).fit(X, ym))
    e = parse_tree_model(GradientBoostingClassifier(n_estimators=3, loss="exponential").fit(X, yb))
    assert (b.link, b.n_outputs, b.output_names) == ("logistic", 1, ["1"])
    assert (m.link, m.n_outputs) == ("softmax", 3)
    assert e.link == "identity" and "sigmoid(2 raw)" in e.raw_output


def test_isolation_forest_path_length():
    X, *_ = data(nan=False, seed=7)
    for max_features in (1.0, 0.6):
        m = IsolationForest(n_estimators=12, max_features=max_features, random_state=0).fit(X)
        ens = parse_tree_model(m)
        check_structure(ens)
        c = _average_path_length([m._max_samples])[0]
        for Z in (X, edge_rows(ens, X)):
            score = -(2 ** (-raw(ens, Z)[:, 0] / c))
            np.testing.assert_allclose(score, m.score_samples(Z), rtol=1e-12)


def test_forest_expected_value_matches_shap():
    shap = pytest.importorskip("shap")
    X, yb, _, yr = data(seed=8)
    for m in (
        RandomForestRegressor(8, max_depth=6, random_state=0).fit(X, yr),
        RandomForestClassifier(8, max_depth=6, random_state=0).fit(X, yb),
    ):
        ens = parse_tree_model(m)
        roots = ens.value[ens.tree_start[:-1]].sum(axis=0) + ens.base_offset
        np.testing.assert_allclose(
            roots, np.atleast_1d(shap.TreeExplainer(m).expected_value), rtol=1e-10
        )


# ------------------------------------------------------------------ HistGradientBoosting
@pytest.mark.parametrize("nan", [False, True])
@pytest.mark.parametrize("cat", [False, True])
def test_hist_gradient_boosting(nan, cat):
    X, yb, ym, yr = data(nan, cat, seed=9)
    for m, y in (
        (HistGradientBoostingClassifier(max_iter=10, random_state=0), yb),
        (HistGradientBoostingClassifier(max_iter=8, random_state=0), ym),
        (HistGradientBoostingRegressor(max_iter=10, random_state=0), yr),
    ):
        m.fit(X, y)
        ens = parse_tree_model(m)
        check_structure(ens)
        assert ens.input_dtype == "float64"
        assert_same(raw(ens, X), m._raw_predict(X))
        E = edge_rows(ens, X)
        assert_same(raw(ens, E), m._raw_predict(E))
        assert_same(raw(ens, X[X.columns[::-1]]), m._raw_predict(X))
        if cat:
            assert ens.is_categorical.any()
            # unseen and missing categories follow the missing direction, as in HGB
            U = X.copy()
            U["k"] = pd.Categorical(np.resize(["q", None, "w", "v"], len(X)))
            assert_same(raw(ens, U), m._raw_predict(U))


def test_hgb_numeric_categorical_columns_and_poisson_link():
    rng = np.random.default_rng(10)
    X = np.c_[rng.choice([3.0, 7.0, -1.0, 12.5], N), rng.normal(size=N)]
    y = np.exp(np.isin(X[:, 0], [7.0, 12.5]) + 0.3 * X[:, 1])
    m = HistGradientBoostingRegressor(
        loss="poisson", max_iter=10, categorical_features=[0], random_state=0
    ).fit(X, y)
    ens = parse_tree_model(m)
    assert ens.link == "exp" and ens.is_categorical.any()
    Q = np.r_[X, [[5.0, 0.1], [np.nan, 0.2], [-1.0, np.nan]]]
    assert_same(raw(ens, Q), m._raw_predict(Q))
    np.testing.assert_allclose(np.exp(raw(ens, Q)[:, 0]), m.predict(Q), rtol=1e-12)


# ------------------------------------------------------------------ XGBoost
def xgb_fit(X, y, objective, rounds=12, **extra):
    params = {"objective": objective, "max_depth": 4, "tree_method": "hist", "max_cat_to_onehot": 1}
    if objective.startswith("multi"):
        params["num_class"] = 3
    params.update(extra)
    return xgb.train(params, xgb.DMatrix(X, label=y, enable_categorical=True), rounds)


def xgb_margin(b, X):
    return b.predict(xgb.DMatrix(X, enable_categorical=True), output_margin=True)


@pytest.mark.parametrize("nan", [False, True])
@pytest.mark.parametrize("cat", [False, True])
@pytest.mark.parametrize("objective", ["binary:logistic", "multi:softprob", "reg:squarederror"])
def test_xgboost(objective, nan, cat):
    X, yb, ym, yr = data(nan, cat, seed=11)
    y = {"binary:logistic": yb, "multi:softprob": ym, "reg:squarederror": yr}[objective]
    b = xgb_fit(X, y, objective)
    ens = parse_tree_model(b)
    check_structure(ens)
    assert ens.input_dtype == "float32" and ens.is_categorical.any() == cat
    E = pd.concat([X, edge_rows(ens, X)])
    own = xgb_margin(b, E).reshape(len(E), -1)
    # the very same leaves as XGBoost's pred_leaf (node ids are kept) ...
    leaves = ens.apply(ens.encode(E)) - ens.tree_start[:-1]
    pred_leaf = b.predict(xgb.DMatrix(E, enable_categorical=True), pred_leaf=True)
    np.testing.assert_array_equal(leaves, pred_leaf.reshape(len(E), -1))
    # ... and the same margins: XGBoost adds float32 leaves in float32
    assert_same(raw(ens, E), own, rtol=1e-6, atol=1e-6)
    acc = np.tile(ens.base_offset.astype(np.float32), (len(E), 1))
    glob = ens.apply(ens.encode(E))
    for t in range(ens.n_trees):
        k = ens.tree_output[t]
        acc[:, k] += ens.value[glob[:, t], k].astype(np.float32)
    np.testing.assert_array_equal(acc, own)
    assert_same(raw(ens, E[E.columns[::-1]]), own, rtol=1e-6, atol=1e-6)


def test_xgboost_categorical_codes_recoding_and_unknown_categories():
    X, _, _, yr = data(cat=True, seed=12)
    b = xgb_fit(X, yr, "reg:squarederror", max_depth=5)
    ens = parse_tree_model(b)
    # listed categories go left after the swap; the layout keeps them sorted
    s, n = ens.cat_start[ens.is_categorical], ens.cat_len[ens.is_categorical]
    assert all(np.all(np.diff(ens.cat_values[a : a + c]) > 0) for a, c in zip(s, n, strict=True))
    # another category order in the DataFrame: XGBoost re-codes by value, so do we
    R = X.copy()
    R["k"] = pd.Categorical(X["k"].astype(str), categories=list("zyxwvu"))
    assert_same(raw(ens, R), xgb_margin(b, X), rtol=1e-6, atol=1e-6)
    # numeric codes: truncation, invalid (negative, huge) and missing codes as XGBoost
    names, types = list(X.columns), ["float"] * 4 + ["c"]
    A = np.c_[X.drop(columns="k").to_numpy(), X["k"].cat.codes.to_numpy(float)]
    A[:8, 4] = [-0.5, 2.7, 4.999, 5.0, -3.0, 1e9, np.nan, 0.2]
    dm = xgb.DMatrix(A, feature_names=names, feature_types=types, enable_categorical=True)
    assert_same(raw(ens, A), b.predict(dm, output_margin=True), rtol=1e-6, atol=1e-6)
    U = X.copy()
    U["k"] = pd.Categorical(np.resize(["v", "q"], len(X)))
    with pytest.raises(InvalidInputError, match="'q'"):
        ens.encode(U)


@pytest.mark.parametrize(
    ("objective", "link"),
    [
        ("binary:logitraw", "identity"),
        ("reg:logistic", "logistic"),
        ("count:poisson", "exp"),
        ("reg:gamma", "exp"),
        ("reg:tweedie", "exp"),
        ("reg:absoluteerror", "identity"),
        ("reg:pseudohubererror", "identity"),
        ("multi:softmax", "softmax"),
    ],
)
def test_xgboost_base_score_per_objective(objective, link):
    X, yb, ym, yr = data(seed=13)
    y = ym if objective.startswith("multi") else yb if "logi" in objective else np.abs(yr) + 0.1
    b = xgb_fit(X, y, objective, rounds=5)
    ens = parse_tree_model(b)
    assert ens.link == link
    assert_same(raw(ens, X), xgb_margin(b, X).reshape(N, -1), rtol=1e-6, atol=1e-6)


def test_xgboost_sklearn_api_dart_parallel_trees_missing_and_vector_leaves():
    X, _, ym, yr = data(nan=True, seed=14)
    clf = xgb.XGBClassifier(n_estimators=8, max_depth=3, missing=-999.0).fit(X.fillna(-999.0), ym)
    ens = parse_tree_model(clf)
    assert ens.output_names == ["0", "1", "2"] and ens.link == "softmax"
    own = clf.predict(X.fillna(-999.0), output_margin=True)
    assert_same(raw(ens, X.fillna(-999.0)), own, rtol=1e-6, atol=1e-6)
    for params in (
        {"booster": "dart", "rate_drop": 0.3, "skip_drop": 0.0, "num_parallel_tree": 2},
        {"num_parallel_tree": 3, "subsample": 0.7},
        {"multi_strategy": "multi_output_tree"},
        {"multi_strategy": "one_output_per_tree"},
    ):
        Y = np.c_[yr, X["c"].fillna(0)] if "multi_strategy" in params else yr
        params |= {"max_depth": 3, "tree_method": "hist"}
        b = xgb.train(params, xgb.DMatrix(X, label=Y), 6)
        ens = parse_tree_model(b)
        check_structure(ens)
        own = b.predict(xgb.DMatrix(X), output_margin=True).reshape(N, -1)
        assert_same(raw(ens, X), own, rtol=1e-5, atol=1e-5)


def test_xgboost_pruned_trees_drop_deleted_nodes():
    # tree_method="exact" prunes after growing: the JSON keeps the deleted, unreachable nodes
    X, _, _, yr = data(seed=28)
    b = xgb.train(
        {"tree_method": "exact", "max_depth": 6, "gamma": 3.0}, xgb.DMatrix(X, label=yr), 8
    )
    ens = parse_tree_model(b)
    check_structure(ens)
    dump = b.get_dump(dump_format="json")  # lists the reachable nodes only
    assert ens.n_trees == len(dump) and len(ens.left) == sum(d.count("nodeid") for d in dump)
    assert_same(raw(ens, X), xgb_margin(b, X).reshape(N, -1), rtol=1e-6, atol=1e-6)
    bias = b.predict(xgb.DMatrix(X.iloc[:2]), pred_contribs=True)[0, -1]
    np.testing.assert_allclose(
        ens.base_offset[0] + ens.value[ens.tree_start[:-1], 0].sum(), bias, rtol=1e-5
    )


def test_xgboost_early_stopping_uses_best_iteration_like_predict():
    X, yb, _, _ = data(seed=15)
    clf = xgb.XGBClassifier(n_estimators=200, learning_rate=0.5, early_stopping_rounds=3)
    clf.fit(X[:200], yb[:200], eval_set=[(X[200:], yb[200:])], verbose=False)
    assert clf.best_iteration < 199
    ens = parse_tree_model(clf)
    assert ens.n_trees == clf.best_iteration + 1
    assert_same(raw(ens, X), clf.predict(X, output_margin=True), rtol=1e-6, atol=1e-6)


def test_xgboost_expected_value_matches_pred_contribs_bias():
    X, yb, _, _ = data(nan=True, seed=16)
    b = xgb_fit(X, yb, "binary:logistic")
    ens = parse_tree_model(b)
    bias = b.predict(xgb.DMatrix(X.iloc[:3]), pred_contribs=True)[:, -1]
    roots = ens.base_offset[0] + ens.value[ens.tree_start[:-1], 0].sum()
    np.testing.assert_allclose(roots, bias, rtol=1e-5)


# ------------------------------------------------------------------ LightGBM
def lgb_fit(X, y, objective, rounds=12, **extra):
    params = dict(objective=objective, num_leaves=15, verbose=-1, min_data_in_leaf=5)
    params |= dict(min_data_per_group=5, cat_smooth=1, **extra)
    if objective == "multiclass":
        params["num_class"] = 3
    return lgb.train(params, lgb.Dataset(X, label=y), rounds)


@pytest.mark.parametrize("nan", [False, True])
@pytest.mark.parametrize("cat", [False, True])
@pytest.mark.parametrize("objective", ["binary", "multiclass", "regression"])
def test_lightgbm(objective, nan, cat):
    X, yb, ym, yr = data(nan, cat, seed=17)
    y = {"binary": yb, "multiclass": ym, "regression": yr}[objective]
    b = lgb_fit(X, y, objective)
    ens = parse_tree_model(b)
    check_structure(ens)
    assert ens.is_categorical.any() == cat
    E = pd.concat([X, edge_rows(ens, X)])
    # LightGBM sums float64 leaves in tree order, as predict_raw does: equal to the last bit
    assert_same(raw(ens, E), b.predict(E, raw_score=True), atol=0.0)
    assert_same(raw(ens, E[E.columns[::-1]]), b.predict(E, raw_score=True), atol=0.0)
    # covers: the expected value is LightGBM's own pred_contrib bias
    bias = b.predict(X.iloc[:2], pred_contrib=True).reshape(2, ens.n_outputs, -1)[0, :, -1]
    roots = ens.value[ens.tree_start[:-1]]
    np.testing.assert_allclose(
        [roots[ens.tree_output == k, k].sum() for k in range(ens.n_outputs)], bias, rtol=1e-9
    )


def test_lightgbm_sklearn_api_and_names_with_spaces():
    X, yb, ym, _ = data(cat=True, nan=True, seed=18)
    for y in (yb, ym):
        m = lgb.LGBMClassifier(n_estimators=6, num_leaves=7, verbose=-1).fit(X, y)
        ens = parse_tree_model(m)
        assert ens.feature_names == ["a", "b", "c", "d_e", "k"]
        assert_same(raw(ens, X), m.predict(X, raw_score=True), atol=0.0)


@pytest.mark.parametrize("use_missing", [True, False])
def test_lightgbm_missing_types_none_zero_nan(use_missing):
    rng = np.random.default_rng(19)
    X = pd.DataFrame(rng.normal(size=(600, 3)), columns=list("abc"))
    X.loc[rng.random(600) < 0.3, "a"] = 0.0
    X.loc[rng.random(600) < 0.2, "b"] = np.nan
    y = X["a"].fillna(0) + (X["a"] == 0) * 2 + X["b"].fillna(-1) + rng.normal(size=600) * 0.1
    for zero in (False, True):
        b = lgb_fit(X, y, "regression", zero_as_missing=zero, use_missing=use_missing)
        ens = parse_tree_model(b)
        odd = {"a": [0.0, -0.0, 1e-36, -1e-36, 1e-30, np.nan]}
        odd |= {"b": [np.nan, 0.0, 1e-40, np.nan, 0.0, -0.0], "c": [0.0] * 6}
        Q = pd.concat([X, pd.DataFrame(odd)])
        Q = pd.concat([Q, edge_rows(ens, X)])
        assert_same(raw(ens, Q), b.predict(Q, raw_score=True), atol=0.0)
        assert bool(ens.categorical_encoding.zero_as_missing) == (zero and use_missing)


def test_lightgbm_categorical_codes_like_lightgbm():
    rng = np.random.default_rng(20)
    k = rng.integers(0, 6, 800).astype(float)
    X = np.c_[k, rng.normal(size=800)]
    y = np.array([0.0, 3, 1, 4, 2, 5])[k.astype(int)] + 0.1 * X[:, 1]
    for nan_frac in (0.0, 0.1):
        Xt = X.copy()
        Xt[rng.random(800) < nan_frac, 0] = np.nan
        params = dict(objective="regression", num_leaves=8, verbose=-1, min_data_per_group=5)
        params |= dict(cat_smooth=1, max_cat_to_onehot=1)
        b = lgb.train(params, lgb.Dataset(Xt, label=y, categorical_feature=[0]), 5)
        ens = parse_tree_model(b)
        assert ens.is_categorical.any()
        odd = [0, np.nan, -0.5, -0.99, -1, 0.7, 1.9, 2, 5, 6, 99, 1e10, -1e10, 2.0**31, 1e-40]
        Q = np.c_[odd, np.zeros(len(odd))]
        assert_same(raw(ens, Q), b.predict(Q, raw_score=True), atol=0.0)


def test_lightgbm_pandas_categories_recoded_like_lightgbm():
    X, _, _, yr = data(cat=True, seed=21)
    X["o"] = pd.Categorical(np.resize(["p", "q", "r"], N), ordered=True)  # numeric codes
    b = lgb_fit(X, yr, "regression")
    ens = parse_tree_model(b)
    R = X.copy()
    R["k"] = pd.Categorical(np.resize(["z", "u", None, "v"], N), categories=list("zyxwvu"))
    assert_same(raw(ens, R), b.predict(R, raw_score=True), atol=0.0)
    with pytest.raises(InvalidInputError, match="categorical"):
        ens.encode(X.assign(k=X["k"].astype(str)))


def test_lightgbm_rf_mode_and_linear_trees():
    X, yb, _, yr = data(seed=22)
    b = lgb_fit(X, yb, "binary", rounds=6, boosting="rf", bagging_fraction=0.7, bagging_freq=1)
    ens = parse_tree_model(b)
    # rf mode averages the trees: LightGBM's raw_score (and pred_contrib) is the SUM, and its
    # probability sigmoid(sum / n_trees); the layout's raw output is the average, so that the
    # logistic link holds
    assert_same(6 * raw(ens, X), b.predict(X, raw_score=True), atol=1e-12)
    assert_same(1 / (1 + np.exp(-raw(ens, X))), b.predict(X), atol=1e-12)
    linear = lgb_fit(X, yr, "regression", rounds=3, linear_tree=True)
    with pytest.raises(UnsupportedModelError, match="linear"):
        parse_tree_model(linear)


# ------------------------------------------------------------------ CatBoost (optional)
@pytest.mark.parametrize("loss", ["RMSE", "Logloss", "MultiClass"])
def test_catboost(loss):
    import catboost as cb  # in the dev extra: these tests run, never skip

    X, yb, ym, yr = data(nan=True, seed=23)
    y = {"RMSE": yr, "Logloss": yb, "MultiClass": ym}[loss]
    cls = cb.CatBoostRegressor if loss == "RMSE" else cb.CatBoostClassifier
    for nan_mode in ("Min", "Max"):
        params = dict(iterations=12, depth=4, loss_function=loss, nan_mode=nan_mode)
        m = cls(**params, verbose=0, random_seed=0, thread_count=1).fit(X, y)
        ens = parse_tree_model(m)
        check_structure(ens)
        E = pd.concat([X, edge_rows(ens, X)])
        own = m.predict(E, prediction_type="RawFormulaVal")
        assert_same(raw(ens, E), own, rtol=1e-6, atol=1e-6)
    assert ens.link == {"RMSE": "identity", "Logloss": "logistic", "MultiClass": "softmax"}[loss]


def test_catboost_categorical_features_unsupported():
    import catboost as cb

    X, _, _, yr = data(cat=True, seed=24)
    m = cb.CatBoostRegressor(iterations=3, verbose=0, cat_features=["k"]).fit(X, yr)
    assert m.get_cat_feature_indices() == [4]  # the model really has a categorical feature
    with pytest.raises(UnsupportedModelError, match=r"categorical.*CTR splits.*ShapValues"):
        parse_tree_model(m)


# ------------------------------------------------------------------ errors
def test_unsupported_and_unfitted_models():
    with pytest.raises(UnsupportedModelError) as info:
        parse_tree_model(LinearRegression())
    for name in ("XGBoost", "LightGBM", "HistGradientBoosting", "RandomForest", "CatBoost"):
        assert name in str(info.value) and name in SUPPORTED
    unfitted = [RandomForestRegressor(), HistGradientBoostingClassifier()]
    for m in [*unfitted, xgb.XGBRegressor(), lgb.LGBMRegressor()]:
        with pytest.raises(InvalidParameterError, match="not fitted"):
            parse_tree_model(m)
    X, _, _, yr = data(seed=25)
    lin = xgb.train({"booster": "gblinear"}, xgb.DMatrix(X, label=yr), 2)
    with pytest.raises(UnsupportedModelError, match="gblinear"):
        parse_tree_model(lin)


def test_encode_errors_name_the_columns():
    X, _, _, yr = data(seed=26)
    ens = parse_tree_model(DecisionTreeRegressor(max_depth=3).fit(X, yr))
    with pytest.raises(InvalidInputError, match=r"\['b'\]"):
        ens.encode(X.drop(columns="b"))
    with pytest.raises(InvalidInputError, match="5 features"):
        ens.encode(np.zeros((2, 5)))
    with pytest.raises(InvalidInputError, match="not numbers"):
        ens.encode(X.assign(a="x"))
    # extra columns are ignored, arrays are read positionally
    np.testing.assert_array_equal(ens.encode(X.assign(extra=1.0)), ens.encode(X.to_numpy()))


def test_large_xgboost_model_parses_whole():
    """500 trees of depth 6 (the benchmark's size: its parse time is in bench_tree)."""
    rng = np.random.default_rng(27)
    X = rng.normal(size=(4000, 20))
    y = X[:, 0] * X[:, 1] + np.sin(X[:, 2]) + rng.normal(size=4000)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        b = xgb.train({"max_depth": 6, "eta": 0.1, "nthread": 2}, xgb.DMatrix(X, label=y), 500)
    ens = parse_tree_model(b)
    assert ens.n_trees == 500 and ens.max_depth == 6
    assert_same(
        raw(ens, X[:500]), b.predict(xgb.DMatrix(X[:500]), output_margin=True), rtol=1e-6, atol=1e-5
    )


def test_lightgbm_mixed_zero_and_nan_missing_types_are_refused():
    # one training run gives each feature one missing type; a model whose splits on a
    # feature mix 'Zero' and 'NaN' (e.g. continued training) is refused, not approximated
    rng = np.random.default_rng(28)
    X = pd.DataFrame(rng.normal(size=(400, 2)), columns=["a", "b"])
    X.loc[rng.random(400) < 0.2, "a"] = np.nan
    b = lgb_fit(X, X["a"].fillna(0) + X["b"], "regression", rounds=3)
    dump = b.dump_model()
    assert dump["tree_info"][0]["tree_structure"]["missing_type"] in ("NaN", "None")

    def mark(nd, missing_type):
        if "split_index" in nd:
            if nd["split_feature"] == 0:
                nd["missing_type"] = missing_type
            mark(nd["left_child"], missing_type)
            mark(nd["right_child"], missing_type)

    mark(dump["tree_info"][0]["tree_structure"], "NaN")
    mark(dump["tree_info"][1]["tree_structure"], "Zero")
    b.dump_model = lambda *args, **kw: dump
    with pytest.raises(UnsupportedModelError, match=r"mixes the 'Zero' and 'NaN'.*\[0\]"):
        parse_tree_model(b)


def test_lightgbm_invalid_dump_json_is_refused_with_advice():
    lgb = pytest.importorskip("lightgbm")
    rng = np.random.default_rng(0)
    X = pd.DataFrame(rng.normal(size=(200, 2)), columns=["a\tb", "c"])
    y = X.iloc[:, 0] + X.iloc[:, 1]
    model = lgb.LGBMRegressor(n_estimators=3, verbose=-1).fit(X, y)
    try:  # the oracle: does this LightGBM write invalid JSON for a tab in a name?
        model.booster_.dump_model()
    except ValueError:
        with pytest.raises(UnsupportedModelError, match="tab"):
            parse_tree_model(model)
    else:  # a fixed LightGBM: the model parses and predicts as LightGBM does
        ens = parse_tree_model(model)
        np.testing.assert_allclose(
            ens.predict_raw(ens.encode(X))[:, 0], model.predict(X, raw_score=True), atol=1e-10
        )
