"""Issue 13 contract in TreeShap: target (class 0 of boosted binary classifiers, lists, one
target per row), backgrounds used whole, the probability approximation measured, keywords,
columns by name. Oracles: XGBoost / LightGBM contributions, shap's TreeExplainer, the
models' own predictions, and a brute-force enumeration of Shapley values."""

from __future__ import annotations

from itertools import combinations
from math import factorial

import numpy as np
import pandas as pd
import pytest
from sklearn.ensemble import HistGradientBoostingClassifier, RandomForestClassifier

import whybox as wb
from whybox.errors import InvalidParameterError

xgb = pytest.importorskip("xgboost")
lgb = pytest.importorskip("lightgbm")
shap = pytest.importorskip("shap")


def make_data(n=400, p=5, seed=0):
    rng = np.random.default_rng(seed)
    X = pd.DataFrame(rng.normal(size=(n, p)), columns=[f"f{j}" for j in range(p)])
    z = X["f0"] * X["f1"] + np.sin(2 * X["f2"]) + 1.5 * (X["f3"] > 0.3) - X["f4"]
    y = (z + 0.5 * rng.normal(size=n) > 0.5).astype(int).to_numpy()
    return X, y


@pytest.fixture(scope="module")
def data():
    return make_data()


@pytest.fixture(scope="module")
def boosted(data):
    X, y = data
    return {
        "xgb": xgb.XGBClassifier(n_estimators=30, max_depth=3, random_state=0).fit(X, y),
        "lgb": lgb.LGBMClassifier(n_estimators=30, num_leaves=7, verbose=-1).fit(X, y),
        "hgb": HistGradientBoostingClassifier(max_iter=30, random_state=0).fit(X, y),
    }


def _contribs(name, model, rows):
    """The library's own path-dependent contributions (shap's TreeExplainer for HGB)."""
    if name == "xgb":
        out = model.get_booster().predict(xgb.DMatrix(rows), pred_contribs=True)
        return out[:, :-1], out[:, -1]
    if name == "lgb":
        out = model.booster_.predict(rows, pred_contrib=True)
        return out[:, :-1], out[:, -1]
    ex = shap.TreeExplainer(model)
    return ex.shap_values(rows), np.full(len(rows), float(np.ravel(ex.expected_value)[0]))


@pytest.mark.parametrize("name", ["xgb", "lgb", "hgb"])
def test_target_zero_of_a_boosted_binary_classifier_is_the_negated_margin(data, boosted, name):
    X, _ = data
    model, rows = boosted[name], X.iloc[:25]
    ref, ref_base = _contribs(name, model, rows)
    one = wb.TreeShap(model).explain(rows)
    np.testing.assert_allclose(one.values, ref, atol=2e-5)
    zero = wb.TreeShap(model).explain(rows, target=0)
    assert zero.output_names == ["0"]
    assert zero.params["output"] == "log-odds of class 0 (negated margin)"
    np.testing.assert_allclose(zero.values, -ref, atol=2e-5)
    np.testing.assert_allclose(zero.base_values, -ref_base, atol=2e-5)
    margin = np.log(model.predict_proba(rows)[:, 1]) - np.log(model.predict_proba(rows)[:, 0])
    np.testing.assert_allclose(zero.predictions, -margin, atol=1e-5)
    both = wb.TreeShap(model).explain(rows, target=[0, 1])
    assert both.output_names == ["0", "1"]
    np.testing.assert_allclose(both.values, np.stack([-ref, ref], axis=-1), atol=2e-5)
    assert wb.TreeShap(model).explain(rows, target="0").output_names == ["0"]


def test_probability_target_zero_is_one_minus_p(data, boosted):
    X, _ = data
    model, bg, rows = boosted["xgb"], X.iloc[200:240], X.iloc[:10]
    ref = shap.TreeExplainer(
        model, bg, feature_perturbation="interventional", model_output="probability"
    ).shap_values(rows)
    with pytest.warns(UserWarning, match="approximation"):
        zero = wb.TreeShap(model, background=bg, model_output="probability").explain(rows, target=0)
    np.testing.assert_allclose(zero.values, -ref, atol=1e-6)
    np.testing.assert_allclose(zero.predictions, model.predict_proba(rows)[:, 0], atol=1e-6)
    assert zero.params["output"].startswith("probability of class 0 (1 - p)")
    assert "approximate" in zero.params["output"] and zero.params["exact"] is False


@pytest.mark.parametrize("kind", ["numpy", "series", "tensor"])
def test_one_target_per_row_equals_one_at_a_time_runs(data, boosted, kind):
    X, y = data
    rows = X.iloc[:12]
    forest = RandomForestClassifier(n_estimators=10, max_depth=4, random_state=0).fit(X, y)
    t = np.array([0, 1, 1, 0, 0, 1, 1, 1, 0, 1, 0, 0])
    target = {"numpy": t, "series": pd.Series(t)}.get(kind)
    if kind == "tensor":
        torch = pytest.importorskip("torch")
        target = torch.as_tensor(t)
    for model in (boosted["xgb"], forest):
        explainer = wb.TreeShap(model)
        exp = explainer.explain(rows, target=target)
        assert exp.values.shape == rows.shape
        assert exp.output_names == ["per-example target"]
        assert exp.params["target"] == [str(v) for v in t]
        assert exp.meta["targets"] == [str(v) for v in t]
        for i in range(len(t)):
            single = explainer.explain(rows.iloc[[i]], target=int(t[i]))
            np.testing.assert_allclose(exp.values[i], single.values[0], atol=1e-12)
            np.testing.assert_allclose(exp.base_values[i], single.base_values[0], atol=1e-12)
            np.testing.assert_allclose(exp.predictions[i], single.predictions[0], atol=1e-12)
        assert exp[2:4].meta["targets"] == [str(v) for v in t[2:4]]
    with pytest.raises(InvalidParameterError, match="11 entries but 12 rows"):
        wb.TreeShap(forest).explain(rows, target=t[:11])


def test_background_is_used_whole_like_shap(data, boosted):
    # issue 13 item 3: 300 background rows silently became 100
    X, _ = data
    model, bg, rows = boosted["xgb"], X.iloc[50:350], X.iloc[:15]
    # shap 0.51 wraps data= in Independent(max_samples=100) and so keeps 100 of the 300 rows
    # itself: the oracle is given every row explicitly
    masker = shap.maskers.Independent(bg, max_samples=len(bg))
    ex = shap.TreeExplainer(model, data=masker, feature_perturbation="interventional")
    assert ex.data.shape[0] == 300
    exp = wb.TreeShap(model, background=bg).explain(rows)
    assert exp.params["background_rows"] == 300
    np.testing.assert_allclose(exp.values, ex.shap_values(rows), atol=1e-5)
    np.testing.assert_allclose(exp.base_values, float(ex.expected_value), atol=1e-5)


def test_max_background_warns_with_the_measured_effect(data, boosted):
    X, _ = data
    model, bg = boosted["xgb"], X.iloc[50:350]
    with pytest.warns(UserWarning, match=r"max_background=40 keeps 40 of the 300") as rec:
        explainer = wb.TreeShap(model, background=bg, max_background=40)
    exp = explainer.explain(X.iloc[:3])
    # the effect: |mean margin over the 300 rows - mean over the sample (the base value)|
    full = model.predict(bg, output_margin=True).mean()
    effect = abs(full - exp.base_values[0])
    assert effect > 1e-3
    assert f"{effect:.3g}" in str(rec[0].message)
    assert exp.params["background_effect"] == pytest.approx(effect, abs=1e-6)


def _brute_force_probability_shapley(model, x, bg):
    """Exact interventional Shapley values of v(S) = mean_b P(class 1 | x_S, bg_b)."""
    p = x.shape[1]
    v = {}
    for k in range(p + 1):
        for S in combinations(range(p), k):
            Z = bg.copy()
            for j in S:
                Z.iloc[:, j] = x.iloc[0, j]
            v[S] = model.predict_proba(Z)[:, 1].mean()
    phi = np.zeros(p)
    for j in range(p):
        for S, val in v.items():
            if j not in S:
                w = factorial(len(S)) * factorial(p - len(S) - 1) / factorial(p)
                phi[j] += w * (v[tuple(sorted((*S, j)))] - val)
    return phi


def test_probability_output_is_labelled_approximate_and_its_error_is_measured(data, boosted):
    # issue 13 item 5: shap's rescaled probability values differ from the Shapley values of
    # the probability; TreeShap says so and reports the error, measured here by brute force
    X, _ = data
    model, bg, rows = boosted["xgb"], X.iloc[200:230], X.iloc[:4]
    with pytest.warns(UserWarning, match=r"not the Shapley values of the probability") as rec:
        exp = wb.TreeShap(model, background=bg, model_output="probability").explain(rows)
    exact = _brute_force_probability_shapley(model, rows.iloc[[0]], bg)
    err = float(np.abs(exp.values[0] - exact).max())
    assert err > 1e-3  # a real approximation on this model
    # XGBoost's predict_proba is float32: agreement to its rounding
    assert exp.params["approximation_error"] == pytest.approx(err, abs=1e-6)
    assert f"{exp.params['approximation_error']:.3g}" in str(rec[0].message)
    # whybox's exact route gives the enumerated values
    ref = wb.explain(model, rows.iloc[[0]], background=bg)
    assert ref.method == "exact" and ref.params["output"] == "probability of class 1"
    np.testing.assert_allclose(ref.values[0], exact, atol=1e-6)


def test_unknown_keywords_are_refused(data, boosted):
    X, _ = data
    explainer = wb.TreeShap(boosted["xgb"])
    with pytest.raises(InvalidParameterError, match=r"check_additivity.*shap's spelling"):
        explainer.explain(X.iloc[:2], check_additivity=False)
    with pytest.raises(InvalidParameterError, match=r"tagret.*Did you mean target"):
        explainer.explain(X.iloc[:2], tagret=1)
    with pytest.raises(InvalidParameterError, match=r"background.*constructor"):
        explainer.explain_interactions(X.iloc[:2], background=X.iloc[:5])


def test_forest_log_odds_is_refused_by_treeshap_with_the_exact_route(data):
    X, y = data
    forest = RandomForestClassifier(n_estimators=5, random_state=0).fit(X, y)
    with pytest.raises(InvalidParameterError, match=r"wb.explain\(model, X, link='logit'"):
        wb.TreeShap(forest, link="logit")


def test_columns_in_another_order_give_the_same_values_per_name(data, boosted):
    X, _ = data
    rows = X.iloc[:20]
    cols = ["f3", "f0", "f4", "f2", "f1"]
    for model in boosted.values():
        a = wb.TreeShap(model).explain(rows)
        b = wb.TreeShap(model).explain(rows[cols])
        assert b.feature_names == cols
        np.testing.assert_allclose(b.values, a.values[:, [3, 0, 4, 2, 1]], atol=1e-12)
