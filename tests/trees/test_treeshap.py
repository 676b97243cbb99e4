"""TreeShap against XGBoost's and LightGBM's own contributions and shap's TreeExplainer."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from sklearn.ensemble import (
    ExtraTreesRegressor,
    GradientBoostingClassifier,
    HistGradientBoostingClassifier,
    RandomForestClassifier,
    RandomForestRegressor,
)
from sklearn.tree import DecisionTreeRegressor

import whybox as wb
from whybox.errors import InvalidInputError, InvalidParameterError
from whybox.trees.treeshap import TreeShap

xgb = pytest.importorskip("xgboost")
lgb = pytest.importorskip("lightgbm")
shap = pytest.importorskip("shap")


def make_data(n=400, p=6, seed=0, nan=False, cat=False):
    rng = np.random.default_rng(seed)
    X = pd.DataFrame(rng.normal(size=(n, p)), columns=[f"f{j}" for j in range(p)])
    logit = X["f0"] * X["f1"] + np.sin(X["f2"]) + (X["f3"] > 0.5) - 0.5 * X["f4"]
    if cat:
        X["kind"] = pd.Categorical(rng.choice(["a", "b", "c", "d"], n))
        logit = logit + X["kind"].map({"a": 0.0, "b": 1.0, "c": -1.0, "d": 0.5}).astype(float)
    if nan:
        X = X.mask(rng.random(X.shape) < 0.1)
        logit = logit.fillna(0.0)
    y_bin = (logit + rng.normal(size=n) > 0).astype(int)
    y_multi = np.digitize(logit + rng.normal(size=n), [-0.5, 0.7])
    return X, logit.to_numpy(), y_bin.to_numpy(), y_multi


@pytest.mark.parametrize("nan", [False, True])
@pytest.mark.parametrize("cat", [False, True])
@pytest.mark.parametrize("objective", ["binary:logistic", "multi:softprob", "reg:squarederror"])
def test_xgboost_matches_pred_contribs(objective, nan, cat):
    X, logit, yb, ym = make_data(nan=nan, cat=cat)
    y = {"binary:logistic": yb, "multi:softprob": ym, "reg:squarederror": logit}[objective]
    params = {
        "objective": objective,
        "max_depth": 4,
        "seed": 0,
        "tree_method": "hist",
        "max_cat_to_onehot": 1,
    }
    if objective == "multi:softprob":
        params["num_class"] = 3
    dtrain = xgb.DMatrix(X, label=y, enable_categorical=True)
    booster = xgb.train(params, dtrain, num_boost_round=15)
    dm = xgb.DMatrix(X.iloc[:40], enable_categorical=True)
    contribs = booster.predict(dm, pred_contribs=True)
    exp = TreeShap(booster).explain(X.iloc[:40], target="all")
    if objective == "multi:softprob":  # (n, k, p + 1)
        np.testing.assert_allclose(
            exp.values, np.transpose(contribs[:, :, :-1], (0, 2, 1)), atol=1e-6
        )
        np.testing.assert_allclose(exp.base_values, contribs[:, :, -1], atol=1e-6)
    else:
        np.testing.assert_allclose(exp.values[:, :, 0], contribs[:, :-1], atol=1e-6)
        np.testing.assert_allclose(exp.base_values[:, 0], contribs[:, -1], atol=1e-6)
    assert np.abs(exp.completeness_gap()).max() < 1e-6


def test_xgboost_interactions_match_pred_interactions():
    X, _, yb, _ = make_data(nan=True)
    model = xgb.XGBClassifier(n_estimators=20, max_depth=4, random_state=0).fit(X, yb)
    inter = model.get_booster().predict(xgb.DMatrix(X.iloc[:15]), pred_interactions=True)
    exp = TreeShap(model).explain_interactions(X.iloc[:15])
    assert exp.values.shape == (15, 6, 6)
    np.testing.assert_allclose(exp.values, inter[:, :-1, :-1], atol=1e-6)
    shap_values = TreeShap(model).explain(X.iloc[:15]).values
    np.testing.assert_allclose(exp.values.sum(axis=2), shap_values, atol=1e-9)


@pytest.mark.parametrize("nan", [False, True])
@pytest.mark.parametrize("cat", [False, True])
@pytest.mark.parametrize("objective", ["binary", "multiclass", "regression"])
def test_lightgbm_matches_pred_contrib(objective, nan, cat):
    X, logit, yb, ym = make_data(nan=nan, cat=cat, seed=1)
    y = {"binary": yb, "multiclass": ym, "regression": logit}[objective]
    params = {
        "objective": objective,
        "num_leaves": 15,
        "verbose": -1,
        "seed": 0,
        "min_data_per_group": 5,
        "cat_smooth": 1,
    }
    if objective == "multiclass":
        params["num_class"] = 3
    booster = lgb.train(params, lgb.Dataset(X, label=y), num_boost_round=15)
    contrib = booster.predict(X.iloc[:40], pred_contrib=True)
    exp = TreeShap(booster).explain(X.iloc[:40], target="all")
    p = X.shape[1]
    if objective == "multiclass":
        ref = contrib.reshape(40, 3, p + 1)
        np.testing.assert_allclose(exp.values, np.transpose(ref[:, :, :-1], (0, 2, 1)), atol=1e-6)
    else:
        np.testing.assert_allclose(exp.values[:, :, 0], contrib[:, :-1], atol=1e-6)
    assert np.abs(exp.completeness_gap()).max() < 1e-6


@pytest.mark.parametrize(
    "make_model",
    [
        lambda: RandomForestRegressor(n_estimators=15, max_depth=7, random_state=0),
        lambda: ExtraTreesRegressor(n_estimators=10, random_state=0, min_samples_leaf=5),
        lambda: DecisionTreeRegressor(max_depth=9, random_state=0),
        lambda: RandomForestClassifier(n_estimators=15, max_depth=6, random_state=0),
        lambda: GradientBoostingClassifier(n_estimators=20, max_depth=3, random_state=0),
    ],
)
def test_sklearn_matches_shap_path_dependent_and_interventional(make_model):
    X, logit, yb, _ = make_data(seed=2)
    model = make_model()
    is_clf = hasattr(model, "predict_proba") or "Classifier" in type(model).__name__
    model.fit(X, yb if is_clf else logit)
    rows = X.iloc[:30]
    ref = shap.TreeExplainer(model).shap_values(rows)
    exp = TreeShap(model).explain(rows, target="all")
    ref = np.asarray(ref)
    if ref.ndim == 2:
        ref = ref[:, :, None]
    np.testing.assert_allclose(exp.values, ref, atol=1e-6)
    bg = X.iloc[100:150]
    refi = np.asarray(
        shap.TreeExplainer(model, bg, feature_perturbation="interventional").shap_values(
            rows, check_additivity=False
        )
    )
    if refi.ndim == 2:
        refi = refi[:, :, None]
    expi = TreeShap(model, background=bg, max_background=50).explain(rows, target="all")
    np.testing.assert_allclose(expi.values, refi, atol=1e-6)
    assert np.abs(expi.completeness_gap()).max() < 1e-6


def test_interventional_probability_matches_shap():
    X, _, yb, _ = make_data(seed=3)
    model = xgb.XGBClassifier(n_estimators=20, max_depth=3, random_state=0).fit(X, yb)
    bg = X.iloc[200:240]
    ref = shap.TreeExplainer(
        model, bg, feature_perturbation="interventional", model_output="probability"
    ).shap_values(X.iloc[:20])
    with pytest.warns(UserWarning, match="rescaled approximation"):
        exp = TreeShap(model, background=bg, model_output="probability").explain(X.iloc[:20])
    np.testing.assert_allclose(exp.values, ref, atol=1e-6)
    np.testing.assert_allclose(exp.predictions, model.predict_proba(X.iloc[:20])[:, 1], atol=1e-6)


def _expvalue(ens, z, S):
    """E[f(x) | x_S] by the cover-weighted recursion (Lundberg et al. 2018, Algorithm 1)."""
    total = ens.base_offset.copy()
    for t in range(ens.n_trees):

        def rec(node):
            if ens.left[node] < 0:
                return ens.value[node]
            j = ens.feature[node]
            if j in S:
                xv = z[j]
                if np.isnan(xv):
                    go = ens.missing_left[node]
                elif ens.is_categorical[node]:
                    s0 = ens.cat_start[node]
                    go = xv in ens.cat_values[s0 : s0 + ens.cat_len[node]]
                else:
                    go = xv < ens.threshold[node]
                return rec(ens.left[node] if go else ens.right[node])
            lc, rc = ens.left[node], ens.right[node]
            return (ens.cover[lc] * rec(lc) + ens.cover[rc] * rec(rc)) / ens.cover[node]

        k = ens.tree_output[t]
        v = rec(ens.tree_start[t])
        if k < 0:
            total = total + v
        else:
            total[k] += v[k]
    return total


def test_hist_gradient_boosting_categories_and_nans_against_brute_force_shapley():
    # no peer explains HGB with categorical splits: compare with the exact Shapley values of
    # the path-dependent game v(S) = E[f | x_S], computed by enumerating all coalitions
    from itertools import combinations
    from math import factorial

    X, _, yb, _ = make_data(n=300, p=5, seed=4, nan=True, cat=True)
    model = HistGradientBoostingClassifier(max_iter=6, max_depth=3, random_state=0).fit(X, yb)
    explainer = TreeShap(model)
    exp = explainer.explain(X.iloc[:3])
    ens = explainer.ensemble
    Z = ens.encode(X.iloc[:3])
    p = Z.shape[1]
    for r in range(3):
        v = {
            S: _expvalue(ens, Z[r], set(S))[0]
            for k in range(p + 1)
            for S in combinations(range(p), k)
        }
        phi = np.zeros(p)
        for j in range(p):
            for S, val in v.items():
                if j in S:
                    continue
                with_j = tuple(sorted((*S, j)))
                w = factorial(len(S)) * factorial(p - len(S) - 1) / factorial(p)
                phi[j] += w * (v[with_j] - val)
        np.testing.assert_allclose(exp.values[r], phi, atol=1e-9)
    assert np.abs(exp.completeness_gap()).max() < 1e-9
    np.testing.assert_allclose(exp.predictions, model._raw_predict(X.iloc[:3])[:, 0], atol=1e-9)


def test_auto_picks_tree_and_records_output():
    # CONTRACT 5 (behaviour change): link='identity' is the probability for every
    # classifier, which is not additive over boosted trees -- without a background there is
    # no exact method for it; link='logit' is the margin, exact with TreeSHAP
    X, _, yb, _ = make_data()
    model = xgb.XGBClassifier(n_estimators=10, max_depth=3).fit(X, yb)
    with pytest.raises(InvalidParameterError, match=r"background=.*link='logit'"):
        wb.explain(model, X.iloc[:5])
    exp = wb.explain(model, X.iloc[:5], link="logit")
    assert exp.method == "tree"
    assert exp.params["output"] == "log-odds of class 1"
    assert exp.params["method_selection"].startswith("auto -> tree")
    contribs = model.get_booster().predict(xgb.DMatrix(X.iloc[:5]), pred_contribs=True)
    np.testing.assert_allclose(exp.values, contribs[:, :-1], atol=1e-5)
    prob = wb.explain(model, X.iloc[:5], background=X.iloc[100:130])
    assert prob.method == "exact" and prob.params["output"] == "probability of class 1"
    assert "not additive over trees" in prob.params["method_selection"]
    np.testing.assert_allclose(prob.predictions, model.predict_proba(X.iloc[:5])[:, 1], atol=1e-7)


def test_bad_inputs():
    X, logit, _, _ = make_data()
    model = RandomForestRegressor(n_estimators=5, random_state=0).fit(X, logit)
    with pytest.raises(InvalidInputError, match="f5"):
        TreeShap(model).explain(X.drop(columns="f5"))
    with pytest.raises(InvalidInputError, match="6"):
        TreeShap(model).explain(X.to_numpy()[:, :4])
    with pytest.raises(InvalidParameterError, match="interventional"):
        TreeShap(model, background=X.iloc[:20]).explain_interactions(X.iloc[:2])
    with pytest.raises(InvalidParameterError, match="probability"):
        TreeShap(model, model_output="probability")
    with pytest.raises(wb.UnsupportedModelError):
        TreeShap(lambda Z: Z.sum(1))


def test_logit_link_is_the_raw_margin_of_boosted_classifiers():
    X, logit, yb, _ = make_data(seed=6)
    model = HistGradientBoostingClassifier(max_iter=10, random_state=0).fit(X, yb)
    a = wb.explain(model, X.iloc[:5], link="logit")
    b = TreeShap(model).explain(X.iloc[:5])
    np.testing.assert_array_equal(a.values, b.values)
    reg = RandomForestRegressor(n_estimators=3, random_state=0).fit(X, logit)
    with pytest.raises(InvalidParameterError, match="log-odds"):
        TreeShap(reg, link="logit")


def _distinct_path_features(ens):
    """Most distinct features on a root-to-leaf path, by plain recursion."""

    def rec(node, feats):
        if ens.left[node] < 0:
            return len(feats)
        f = feats | {int(ens.feature[node])}
        return max(rec(ens.left[node], f), rec(ens.right[node], f))

    return max(rec(int(ens.tree_start[t]), frozenset()) for t in range(ens.n_trees))


def test_quadrature_points_follow_distinct_path_features_and_are_tight():
    from whybox.trees._treeshap_path import (
        gauss_legendre_01,
        max_path_features,
        path_dependent_shap,
    )

    # deep trees on 3 features: paths split on each feature many times, so ceil(3 / 2) = 2
    # Gauss-Legendre points are exact although the depth is 12 (which would ask for 6)
    rng = np.random.default_rng(7)
    X = rng.normal(size=(800, 3))
    y = np.sin(3 * X[:, 0]) + X[:, 1] * X[:, 2] + 0.1 * rng.normal(size=800)
    model = RandomForestRegressor(n_estimators=6, max_depth=12, random_state=0).fit(X, y)
    explainer = TreeShap(model)
    ens = explainer.ensemble
    assert ens.max_depth == 12
    d = _distinct_path_features(ens)
    assert d == 3 == max_path_features(ens.left, ens.right, ens.feature, ens.tree_start)
    assert len(explainer._quadrature()[0]) == 2
    rows = X[:40]
    ref = shap.TreeExplainer(model).shap_values(rows)
    np.testing.assert_allclose(explainer.explain(rows).values, ref, atol=1e-9)
    # one point fewer is not exact: the check above can fail
    Z = ens.encode(rows)
    short = path_dependent_shap(Z, ens.layout, ens.max_depth, *gauss_legendre_01(1), 64)
    assert np.abs(short[:, :, 0] - ref).max() > 1e-4


def test_values_do_not_depend_on_block_size_or_threads():
    from whybox.trees._treeshap_path import path_dependent_shap

    X, _, _, ym = make_data(n=300, seed=8, nan=True)
    model = RandomForestClassifier(n_estimators=8, max_depth=8, random_state=0).fit(X.fillna(0), ym)
    explainer = TreeShap(model)
    ens = explainer.ensemble
    Z = ens.encode(X.iloc[:70])
    tq, wq = explainer._quadrature()
    blocks = [path_dependent_shap(Z, ens.layout, ens.max_depth, tq, wq, b) for b in (1, 7, 64)]
    for other in blocks[1:]:
        np.testing.assert_array_equal(other, blocks[0])
    one = TreeShap(model, n_jobs=1).explain(X.iloc[:70], target="all").values
    two = TreeShap(model, n_jobs=2).explain(X.iloc[:70], target="all").values
    np.testing.assert_array_equal(one, two)
    np.testing.assert_array_equal(one, blocks[0])
    ref = np.asarray(shap.TreeExplainer(model).shap_values(X.iloc[:70].to_numpy()))
    np.testing.assert_allclose(one, ref, atol=1e-9)


def test_xgboost_early_stopping_explains_the_trees_predict_uses():
    X, _, yb, _ = make_data(seed=9, nan=True)
    model = xgb.XGBClassifier(
        n_estimators=300, learning_rate=0.5, max_depth=3, early_stopping_rounds=3
    )
    model.fit(X.iloc[:250], yb[:250], eval_set=[(X.iloc[250:], yb[250:])], verbose=False)
    best = model.best_iteration
    assert best < 299 and model.get_booster().num_boosted_rounds() > best + 1
    rows = X.iloc[:30]
    exp = TreeShap(model).explain(rows)
    dm = xgb.DMatrix(rows)
    ref = model.get_booster().predict(dm, pred_contribs=True, iteration_range=(0, best + 1))
    np.testing.assert_allclose(exp.values, ref[:, :-1], atol=1e-6)
    np.testing.assert_allclose(exp.base_values, ref[:, -1], atol=1e-6)
    np.testing.assert_allclose(exp.predictions, model.predict(rows, output_margin=True), atol=1e-5)
    # arrays too (no column names), and a non-NaN missing value marker
    np.testing.assert_allclose(TreeShap(model).explain(rows.to_numpy()).values, exp.values)
    Xm = X.fillna(-999.0)
    marked = xgb.XGBRegressor(n_estimators=8, max_depth=3, missing=-999.0).fit(Xm, yb)
    own = marked.get_booster().predict(
        xgb.DMatrix(Xm.iloc[:30], missing=-999.0), pred_contribs=True
    )
    np.testing.assert_allclose(
        TreeShap(marked).explain(Xm.iloc[:30]).values, own[:, :-1], atol=1e-6
    )


def test_lightgbm_renamed_columns_are_matched_like_lightgbm():
    # LightGBM writes each space of a column name as "_"
    X, logit, _, _ = make_data(seed=10, nan=True)
    X.columns = ["f 0", "f  1", " f 2 ", "f3", "f4", "f5"]
    model = lgb.LGBMRegressor(n_estimators=15, num_leaves=7, verbose=-1).fit(X, logit)
    assert model.booster_.feature_name()[:3] == ["f_0", "f__1", "_f_2_"]
    rows = X.iloc[:25]
    ref = model.booster_.predict(rows, pred_contrib=True)
    exp = TreeShap(model).explain(rows)
    np.testing.assert_allclose(exp.values, ref[:, :-1], atol=1e-6)
    assert exp.feature_names == list(X.columns)  # the caller's names
    shuffled = TreeShap(model).explain(rows[rows.columns[::-1]])
    # CONTRACT 2: values come back in the caller's order, under the caller's names
    assert shuffled.feature_names == list(X.columns[::-1])
    np.testing.assert_allclose(shuffled.values, exp.values[:, ::-1], atol=1e-12)
    with pytest.raises(InvalidInputError, match=r"lacks the model's columns \['f__1'\]"):
        TreeShap(model).explain(rows.drop(columns="f  1"))
    with pytest.raises(InvalidInputError, match=r"not fitted on: \['extra'\]"):
        TreeShap(model).explain(rows.assign(extra=1.0))


def test_lightgbm_zero_as_missing_against_pred_contrib():
    # with zero_as_missing, zeros and NaN go the default way even where the threshold would
    # send 0.0 the other way; the model must have such splits for this test to mean anything
    rng = np.random.default_rng(11)
    X = pd.DataFrame(rng.normal(size=(600, 3)), columns=list("abc"))
    X.loc[rng.random(600) < 0.3, "a"] = 0.0
    X.loc[rng.random(600) < 0.2, "b"] = np.nan
    X.loc[rng.random(600) < 0.2, "c"] = 0.0
    y = X["a"] + (X["a"] == 0) * 2 + X["b"].fillna(-1) - 3 * (X["c"] == 0)
    params = dict(objective="regression", num_leaves=15, verbose=-1, min_data_in_leaf=5)
    booster = lgb.train(
        {**params, "zero_as_missing": True}, lgb.Dataset(X, label=y + rng.normal(size=600)), 12
    )
    contradicting = []

    def walk(nd):
        if "split_index" in nd:
            if nd["missing_type"] == "Zero" and nd["default_left"] != (0 <= float(nd["threshold"])):
                contradicting.append(nd["split_index"])
            walk(nd["left_child"])
            walk(nd["right_child"])

    for tree in booster.dump_model()["tree_info"]:
        walk(tree["tree_structure"])
    assert len(contradicting) > 10
    odd = pd.DataFrame({"a": [0.0, -0.0, np.nan, 1e-36], "b": [0.0, np.nan, 1e-40, 2.0]})
    rows = pd.concat([X.iloc[:40], odd.assign(c=[0.0, np.nan, 0.0, 1.0])])
    ref = booster.predict(rows, pred_contrib=True)
    exp = TreeShap(booster).explain(rows)
    np.testing.assert_allclose(exp.values, ref[:, :-1], atol=1e-9)
    np.testing.assert_allclose(exp.base_values, ref[:, -1], atol=1e-9)


@pytest.mark.parametrize("loss", ["RMSE", "Logloss", "MultiClass"])
def test_catboost_matches_its_own_shap_values(loss):
    import catboost as cb  # in the dev extra: these tests run, never skip

    X, logit, yb, ym = make_data(n=300, seed=12, nan=True)
    y = {"RMSE": logit, "Logloss": yb, "MultiClass": ym}[loss]
    cls = cb.CatBoostRegressor if loss == "RMSE" else cb.CatBoostClassifier
    model = cls(iterations=15, depth=4, loss_function=loss, verbose=0, random_seed=0)
    model.fit(X, y)
    rows = X.iloc[:25]
    ref = model.get_feature_importance(cb.Pool(rows), type="ShapValues")
    exp = TreeShap(model).explain(rows, target="all")
    if loss == "MultiClass":  # (n, k, p + 1)
        np.testing.assert_allclose(exp.values, np.transpose(ref[:, :, :-1], (0, 2, 1)), atol=1e-9)
        np.testing.assert_allclose(exp.base_values, ref[:, :, -1], atol=1e-9)
    else:
        np.testing.assert_allclose(exp.values[:, :, 0], ref[:, :-1], atol=1e-9)
        np.testing.assert_allclose(exp.base_values[:, 0], ref[:, -1], atol=1e-9)
    raw = model.predict(rows, prediction_type="RawFormulaVal")
    np.testing.assert_allclose(exp.predictions, np.reshape(raw, exp.predictions.shape), atol=1e-6)


def test_catboost_with_categorical_features_is_refused():
    import catboost as cb

    X, logit, _, _ = make_data(n=200, seed=13, cat=True)
    model = cb.CatBoostRegressor(iterations=3, verbose=0, cat_features=["kind"]).fit(X, logit)
    with pytest.raises(wb.UnsupportedModelError, match=r"categorical.*numerical features only"):
        TreeShap(model)
