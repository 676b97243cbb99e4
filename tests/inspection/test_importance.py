"""Permutation importance against scikit-learn and a hand computation; mean |SHAP| importance
against numpy."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from sklearn.ensemble import (
    GradientBoostingClassifier,
    GradientBoostingRegressor,
    HistGradientBoostingClassifier,
)
from sklearn.inspection import permutation_importance as sk_pi
from sklearn.metrics import accuracy_score, roc_auc_score

import whybox as wb
from whybox.errors import InvalidInputError, InvalidParameterError

N = 300


@pytest.fixture(scope="module")
def clf():
    rng = np.random.default_rng(0)
    X = pd.DataFrame(rng.normal(size=(N, 5)), columns=list("abcde"))
    y = (2 * X["a"] + X["b"] - 0.5 * X["c"] + 0.5 * rng.normal(size=N) > 0).astype(int)
    model = GradientBoostingClassifier(n_estimators=20, max_depth=3, random_state=0).fit(X, y)
    return model, X, y.to_numpy()


def test_agrees_with_sklearn_within_standard_deviations(clf):
    model, X, y = clf
    ours = wb.permutation_importance(model, X, y, n_repeats=10, random_state=0)
    ref = sk_pi(model, X, y, n_repeats=10, random_state=0)
    diff = np.abs(ours.importances_mean - ref.importances_mean)
    assert np.all(diff <= ours.importances_std + ref.importances_std + 1e-12)
    assert ours.importances.shape == (5, 10)
    assert list(np.argsort(-ours.importances_mean)[:3]) == list(
        np.argsort(-ref.importances_mean)[:3]
    )
    assert ours.baseline_score == pytest.approx(model.score(X, y))


def test_regression_scorer_name_agrees_with_sklearn():
    rng = np.random.default_rng(1)
    X = rng.normal(size=(N, 4))
    y = 3 * X[:, 0] + X[:, 1] ** 2 + 0.3 * rng.normal(size=N)
    m = GradientBoostingRegressor(n_estimators=20, max_depth=3, random_state=0).fit(X, y)
    ours = wb.permutation_importance(m, X, y, scoring="neg_mean_squared_error", n_repeats=8)
    ref = sk_pi(m, X, y, scoring="neg_mean_squared_error", n_repeats=8, random_state=0)
    diff = np.abs(ours.importances_mean - ref.importances_mean)
    assert np.all(diff <= ours.importances_std + ref.importances_std + 1e-12)
    assert (
        ours.feature_names == ["x0", "x1", "x2", "x3"] and ours.scoring == "neg_mean_squared_error"
    )


def test_equals_the_documented_permutations(clf):
    model, X, y = clf
    ours = wb.permutation_importance(model, X, y, n_repeats=3, random_state=7)
    rngs = np.random.default_rng(7).spawn(5)
    base = accuracy_score(y, model.predict(X))
    for j in range(5):
        for r in range(3):
            Xp = X.copy()
            Xp.iloc[:, j] = X.iloc[:, j].to_numpy()[rngs[j].permutation(N)]
            assert ours.importances[j, r] == base - accuracy_score(y, model.predict(Xp))
    np.testing.assert_allclose(ours.importances_std, ours.importances.std(axis=1))
    from scipy.stats import t

    half = t.ppf(0.975, 2) * ours.importances.std(axis=1, ddof=1) / np.sqrt(3)
    np.testing.assert_allclose(ours.upper - ours.lower, 2 * half)


def test_groups_are_permuted_together(clf):
    model, X, y = clf
    ours = wb.permutation_importance(
        model, X, y, groups={"ab": ["a", "b"]}, n_repeats=2, random_state=1
    )
    assert ours.feature_names == ["ab", "c", "d", "e"]
    rng = np.random.default_rng(1).spawn(4)[0]
    base = accuracy_score(y, model.predict(X))
    for r in range(2):
        perm = rng.permutation(N)
        Xp = X.copy()
        Xp[["a", "b"]] = X[["a", "b"]].to_numpy()[perm]
        assert ours.importances[0, r] == base - accuracy_score(y, model.predict(Xp))
    with pytest.raises(InvalidParameterError, match=r"unknown feature\(s\) \['z'\]"):
        wb.permutation_importance(model, X, y, groups={"g": ["a", "z"]})


def test_n_jobs_does_not_change_results(clf):
    model, X, y = clf
    one = wb.permutation_importance(model, X, y, n_repeats=2, random_state=3)
    two = wb.permutation_importance(model, X, y, n_repeats=2, random_state=3, n_jobs=2)
    np.testing.assert_array_equal(one.importances, two.importances)


def test_callable_model_and_custom_scorer(clf):
    model, X, y = clf

    def auc(est, X, y):
        return roc_auc_score(y, est.predict(X))

    fn = wb.permutation_importance(
        lambda Z: model.predict_proba(Z), X, y, target=1, scoring=auc, n_repeats=2
    )
    ref = wb.permutation_importance(model, X, y, scoring="roc_auc", n_repeats=2)
    np.testing.assert_allclose(fn.importances, ref.importances, atol=1e-12)
    # a probability model scored through the classifier adapter: accuracy by default
    xgb = pytest.importorskip("xgboost")
    b = xgb.train({"objective": "binary:logistic"}, xgb.DMatrix(X, label=y), 10)
    imp = wb.permutation_importance(b, X, y, n_repeats=2)
    p = b.predict(xgb.DMatrix(X))
    assert imp.baseline_score == accuracy_score(y, (p > 0.5).astype(int))


def test_dataframe_dtypes_are_kept():
    rng = np.random.default_rng(2)
    X = pd.DataFrame({"x": rng.normal(size=N), "k": pd.Categorical(rng.choice(list("pq"), N))})
    y = (X["x"] > 0).astype(int).to_numpy()
    m = HistGradientBoostingClassifier(
        max_iter=5, categorical_features="from_dtype", random_state=0
    ).fit(X, y)
    seen = []

    def scorer(est, Xp, yp):
        seen.append(Xp.dtypes["k"])
        return accuracy_score(yp, est.predict(Xp))

    wb.permutation_importance(m, X, y, scoring=scorer, n_repeats=1)
    assert all(isinstance(d, pd.CategoricalDtype) for d in seen) and len(seen) == 3


def test_bad_input(clf):
    model, X, y = clf
    with pytest.raises(InvalidInputError, match="y has 10 entries but X has 300 rows"):
        wb.permutation_importance(model, X, y[:10])
    with pytest.raises(InvalidParameterError, match="scoring='accuracyy' is not usable"):
        wb.permutation_importance(model, X, y, scoring="accuracyy")
    with pytest.raises(InvalidParameterError, match="n_repeats must be at least 1"):
        wb.permutation_importance(model, X, y, n_repeats=0)


# ------------------------------------------------------------------ SHAP-based importance
def _exp(multi=False):
    rng = np.random.default_rng(5)
    shape = (50, 4, 2) if multi else (50, 4)
    scale = np.array([3.0, 1.0, 0.1, 0.5])
    return wb.Explanation(
        rng.normal(size=shape) * (scale[:, None] if multi else scale),
        base_values=np.zeros((50, 2)) if multi else 0.0,
        feature_names=list("pqrs"),
        output_names=["no", "yes"] if multi else ["y"],
        params={"output": "probability"},
    )


def test_global_importance_matches_numpy_bootstrap():
    exp = _exp()
    imp = wb.global_importance(exp, n_bootstrap=200, confidence=0.9, random_state=11)
    V = np.abs(exp.values)
    np.testing.assert_allclose(imp.importances_mean, V.mean(axis=0), rtol=1e-15)
    rng = np.random.default_rng(11)
    reps = np.array([V[rng.integers(0, 50, 50)].mean(axis=0) for _ in range(200)])
    np.testing.assert_allclose(imp.lower, np.quantile(reps, 0.05, axis=0), atol=1e-12)
    np.testing.assert_allclose(imp.upper, np.quantile(reps, 0.95, axis=0), atol=1e-12)
    np.testing.assert_allclose(imp.importances_std, reps.std(axis=0, ddof=1), atol=1e-12)
    assert imp.method == "mean_abs" and imp.importances is None
    normal = wb.global_importance(exp, n_bootstrap=0)
    se = V.std(axis=0, ddof=1) / np.sqrt(50)
    np.testing.assert_allclose(normal.upper - normal.importances_mean, 1.959963984540054 * se)


def test_global_importance_from_tree_shap_and_per_output():
    rng = np.random.default_rng(6)
    X = rng.normal(size=(120, 3))
    y = np.digitize(X[:, 0] - X[:, 1], [-0.5, 0.5])
    m = HistGradientBoostingClassifier(max_iter=5, random_state=0).fit(X, y)
    exp = wb.TreeShap(m).explain(X[:40])
    imp = wb.global_importance(exp, n_bootstrap=50)
    assert imp.importances_mean.shape == (3, 3)
    np.testing.assert_allclose(imp.importances_mean, np.abs(exp.values).mean(axis=0))
    one = wb.global_importance(exp, output=2, n_bootstrap=50)
    np.testing.assert_allclose(one.importances_mean, np.abs(exp.values[:, :, 2]).mean(axis=0))
    np.testing.assert_allclose(one.lower, imp.lower[:, 2])  # same draws, one column of them
    with pytest.raises(InvalidParameterError, match="output='maybe' is not one of"):
        wb.global_importance(exp, output="maybe")
    with pytest.raises(InvalidParameterError, match="needs a whybox Explanation"):
        wb.global_importance(np.zeros((3, 3)))


def test_importance_plot_and_frame(clf):
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    imp = wb.global_importance(_exp(), n_bootstrap=20)
    ax = imp.plot(max_display=3)
    widths = [p.get_width() for p in ax.patches]
    top = np.sort(imp.importances_mean)[::-1][:3]
    np.testing.assert_allclose(sorted(widths, reverse=True), top)
    labels = [t.get_text() for t in ax.get_yticklabels()]
    assert labels == ["p", "q", "s"]  # largest on top (y positions descending)
    f = imp.to_frame()
    np.testing.assert_array_equal(f["mean"].to_numpy(), imp.importances_mean)
    multi = wb.global_importance(_exp(multi=True), n_bootstrap=5)
    with pytest.raises(InvalidParameterError, match="has 2 outputs"):
        multi.plot()
    assert multi.plot(output="yes") is not None
    assert set(multi.to_frame()["output"]) == {"no", "yes"}
    plt.close("all")
