"""partial_dependence, ale, permutation_importance and global_importance under issue 13's
contract: columns matched by name (any order, LightGBM's renamed columns), target= (labels,
strings of labels, class 0 of binary margin models), per-row targets refused, duplicated
columns, NaN passed to models that take it, plot keywords.

Oracles: scikit-learn's ``partial_dependence`` and ``permutation_importance`` on the same model
with the columns in fit order; the model's own ``predict_proba`` / ``decision_function`` /
``score``; an ALE computed from the documented definition with the model's own outputs.
"""

from __future__ import annotations

import numpy as np
import pytest
from sklearn.datasets import load_breast_cancer
from sklearn.ensemble import HistGradientBoostingClassifier, RandomForestClassifier
from sklearn.inspection import partial_dependence as sk_pd
from sklearn.inspection import permutation_importance as sk_pi
from sklearn.linear_model import LogisticRegression

import whybox as wb
from whybox.errors import InvalidInputError, InvalidParameterError, ModelCallError

lgb = pytest.importorskip("lightgbm")


@pytest.fixture(scope="module")
def cancer():
    X, y = load_breast_cancer(as_frame=True, return_X_y=True)
    X = X.iloc[:, :8]  # "mean radius", "mean texture", ... (spaces)
    return X, y.to_numpy()


@pytest.fixture(scope="module")
def lgbm(cancer):
    X, y = cancer
    return lgb.LGBMClassifier(n_estimators=30, num_leaves=8, verbose=-1, random_state=0).fit(X, y)


@pytest.fixture(scope="module")
def hgb(cancer):
    X, y = cancer
    return HistGradientBoostingClassifier(max_iter=30, random_state=0).fit(X, y)


def _reversed(X):
    return X[X.columns[::-1]]


# ------------------------------------------------------------------ partial dependence
@pytest.mark.parametrize("method", ["brute", "tree"])
def test_pd_lightgbm_with_spaces_matches_sklearn_in_any_column_order(lgbm, cancer, method):
    X, _ = cancer
    ref = sk_pd(lgbm, X, ["mean radius"], method="brute", kind="both", grid_resolution=20)
    for Z in (X, _reversed(X)):
        ours = wb.partial_dependence(lgbm, Z, "mean radius", kind="both", method=method)
        assert ours.feature == "mean radius" and ours.method == method
        np.testing.assert_array_equal(ours.grid, ref["grid_values"][0])
        np.testing.assert_allclose(ours.average, ref["average"][0], rtol=0, atol=1e-10)
        np.testing.assert_allclose(ours.individual, ref["individual"][0], rtol=0, atol=1e-10)


def test_pd_pair_on_reordered_columns_matches_sklearn(hgb, cancer):
    X, _ = cancer
    ref = sk_pd(hgb, X, ("mean area", "mean texture"), method="brute", grid_resolution=5)
    ours = wb.partial_dependence(
        hgb, _reversed(X), ("mean area", "mean texture"), grid_resolution=5, method="brute"
    )
    assert ours.feature == ("mean area", "mean texture")
    np.testing.assert_allclose(ours.average, ref["average"][0], rtol=0, atol=1e-10)


def test_pd_integer_feature_is_a_position_in_the_users_order(hgb, cancer):
    X, _ = cancer
    Z = _reversed(X)
    ours = wb.partial_dependence(hgb, Z, 0, method="brute")
    assert ours.feature == Z.columns[0] == "mean concave points"
    ref = sk_pd(hgb, X, ["mean concave points"], method="brute", grid_resolution=20)
    np.testing.assert_allclose(ours.average, ref["average"][0], rtol=0, atol=1e-10)


def test_pd_target_class_0_and_its_string(hgb, cancer):
    X, _ = cancer
    ref = sk_pd(hgb, X, ["mean radius"], method="brute", grid_resolution=10)["average"][0]
    margin = sk_pd(
        hgb,
        X,
        ["mean radius"],
        method="brute",
        grid_resolution=10,
        response_method="decision_function",
    )["average"][0]
    for t in (0, "0"):
        p0 = wb.partial_dependence(hgb, X, "mean radius", grid_resolution=10, target=t)
        np.testing.assert_allclose(p0.average, 1.0 - ref, rtol=0, atol=1e-10)
        assert p0.output_names == ["0"] and "class 0" in p0.output
        lo = wb.partial_dependence(
            hgb, X, "mean radius", grid_resolution=10, target=t, link="logit"
        )
        np.testing.assert_allclose(lo.average, -margin, rtol=0, atol=1e-9)
        assert lo.output_names == ["0"] and "negated" in lo.output
    both = wb.partial_dependence(hgb, X, "mean radius", grid_resolution=10, target=[0, 1])
    assert both.output_names == ["0", "1"]
    np.testing.assert_allclose(both.average[:, 1], ref, rtol=0, atol=1e-10)


@pytest.mark.parametrize("func", [wb.partial_dependence, wb.ale], ids=["partial_dependence", "ale"])
def test_per_row_target_is_refused_with_the_alternative(hgb, cancer, func):
    X, _ = cancer
    with pytest.raises(InvalidParameterError, match=r"one target per row.*target=list"):
        func(hgb, X, "mean radius", target=np.zeros(len(X), dtype=int))


def test_duplicated_columns_are_refused(hgb, cancer):
    X, y = cancer
    D = X.copy()
    D.columns = [*X.columns[:-1], X.columns[0]]
    for call in (
        lambda: wb.partial_dependence(hgb, D, "mean texture"),
        lambda: wb.ale(hgb, D, "mean texture"),
        lambda: wb.permutation_importance(hgb, D, y, n_repeats=1),
    ):
        with pytest.raises(InvalidInputError, match=r"duplicated column names: \['mean radius'\]"):
            call()


def test_missing_column_is_named(lgbm, cancer):
    X, _ = cancer
    with pytest.raises(InvalidInputError, match=r"missing columns: \['mean_area'\]"):
        wb.partial_dependence(lgbm, X.drop(columns="mean area"), "mean radius")


# ------------------------------------------------------------------ ALE
def ref_ale(f, X, col, K):
    """The documented first-order ALE (module docstring of whybox.inspection.ale)."""
    x = X[col].to_numpy()
    z = np.unique(
        np.concatenate([[x.min()], np.quantile(x, np.arange(1, K + 1) / K, method="inverted_cdf")])
    )
    b = np.maximum(np.searchsorted(z, x, side="left"), 1) - 1
    lo, hi = X.copy(), X.copy()
    lo[col], hi[col] = z[b], z[b + 1]
    delta = f(hi) - f(lo)
    means = np.array([delta[b == k].mean() for k in range(len(z) - 1)])
    counts = np.bincount(b, minlength=len(z) - 1)
    g = np.concatenate([[0.0], np.cumsum(means)])
    return z, g - ((g[:-1] + g[1:]) / 2 * counts).sum() / counts.sum()


def test_ale_lightgbm_with_spaces_in_any_column_order(lgbm, cancer):
    X, _ = cancer
    z, ref = ref_ale(lambda Z: lgbm.predict_proba(Z)[:, 1], X, "mean texture", 10)
    for Z in (X, _reversed(X)):
        ours = wb.ale(lgbm, Z, "mean texture", bins=10)
        assert ours.feature == "mean texture"
        np.testing.assert_array_equal(ours.grid, z)
        np.testing.assert_allclose(ours.effect, ref, rtol=0, atol=1e-12)


def test_ale_target_class_0_of_a_margin_model(hgb, cancer):
    X, _ = cancer
    _, ref = ref_ale(lambda Z: hgb.decision_function(Z), X, "mean area", 8)
    ours = wb.ale(hgb, _reversed(X), "mean area", bins=8, target="0", link="logit")
    np.testing.assert_allclose(ours.effect, -ref, rtol=0, atol=1e-9)
    assert ours.output_names == ["0"] and "negated" in ours.output


# ------------------------------------------------------------------ permutation importance
def test_permutation_importance_any_column_order_sklearn(cancer):
    X, y = cancer
    rf = RandomForestClassifier(n_estimators=20, random_state=0).fit(X, y)
    normal = wb.permutation_importance(rf, X, y, n_repeats=5, random_state=0)
    rev = wb.permutation_importance(rf, _reversed(X), y, n_repeats=5, random_state=0)
    assert rev.feature_names == list(X.columns[::-1])
    assert rev.baseline_score == pytest.approx(rf.score(X, y))
    per_name = dict(zip(normal.feature_names, normal.importances, strict=True))
    for name, imp in zip(rev.feature_names, rev.importances, strict=True):
        np.testing.assert_array_equal(imp, per_name[name])
    ref = sk_pi(rf, X, y, n_repeats=5, random_state=0)
    diff = np.abs(normal.importances_mean - ref.importances_mean)
    assert np.all(diff <= normal.importances_std + ref.importances_std + 1e-12)


def test_permutation_importance_lightgbm_reversed_columns_scores_the_right_model(lgbm, cancer):
    X, y = cancer
    rev = wb.permutation_importance(lgbm, _reversed(X), y, n_repeats=3, scoring="roc_auc")
    from sklearn.metrics import roc_auc_score

    assert rev.baseline_score == pytest.approx(roc_auc_score(y, lgbm.predict_proba(X)[:, 1]))
    normal = wb.permutation_importance(lgbm, X, y, n_repeats=3, scoring="roc_auc")
    per_name = dict(zip(normal.feature_names, normal.importances_mean, strict=True))
    np.testing.assert_array_equal(rev.importances_mean, [per_name[c] for c in rev.feature_names])


def test_permutation_importance_groups_in_any_column_order(cancer):
    X, y = cancer
    rf = RandomForestClassifier(n_estimators=10, random_state=0).fit(X, y)
    groups = {"size": ["mean radius", "mean area", "mean perimeter"]}
    a = wb.permutation_importance(rf, X, y, groups=groups, n_repeats=2)
    b = wb.permutation_importance(rf, _reversed(X), y, groups=groups, n_repeats=2)
    per_name = dict(zip(a.feature_names, a.importances_mean, strict=True))
    assert sorted(b.feature_names) == sorted(a.feature_names)
    np.testing.assert_array_equal(b.importances_mean, [per_name[c] for c in b.feature_names])


def test_permutation_importance_target_class_0(hgb, cancer):
    X, y = cancer
    imp = wb.permutation_importance(hgb, _reversed(X), y, target="0", n_repeats=1)
    from sklearn.metrics import r2_score

    # a selected output is scored as a regression of y on it: here P(class 0)
    assert imp.baseline_score == pytest.approx(r2_score(y, hgb.predict_proba(X)[:, 0]))
    assert "class 0" in imp.output


def test_global_importance_of_a_reordered_explanation(hgb, cancer):
    X, _ = cancer
    a = wb.global_importance(wb.explain(hgb, X.iloc[:40], link="logit"), n_bootstrap=0)
    b = wb.global_importance(wb.explain(hgb, _reversed(X).iloc[:40], link="logit"), n_bootstrap=0)
    assert b.feature_names == list(X.columns[::-1])
    per_name = dict(zip(a.feature_names, a.importances_mean, strict=True))
    np.testing.assert_allclose(
        b.importances_mean, [per_name[c] for c in b.feature_names], rtol=0, atol=1e-12
    )


# ------------------------------------------------------------------ NaN
def test_nan_follows_the_model(cancer):
    X, y = cancer
    Xn = X.copy()
    Xn.iloc[::7, 1] = np.nan  # "mean texture"
    hgb = HistGradientBoostingClassifier(max_iter=20, random_state=0).fit(Xn, y)
    pd_ = wb.partial_dependence(hgb, Xn, "mean radius", grid_resolution=5, method="brute")
    for g, v in zip(pd_.grid, pd_.average, strict=True):  # the model's own predict_proba
        Z = Xn.copy()
        Z["mean radius"] = g
        assert v == pytest.approx(hgb.predict_proba(Z)[:, 1].mean(), abs=1e-12)
    a = wb.ale(hgb, Xn, "mean texture", bins=5)  # rows without a value are left out
    assert int(a.counts.sum()) == int(Xn["mean texture"].notna().sum())
    imp = wb.permutation_importance(hgb, Xn, y, n_repeats=1)
    assert imp.baseline_score == pytest.approx(hgb.score(Xn, y))
    lr = LogisticRegression(max_iter=5000).fit(X, y)
    with pytest.raises((ModelCallError, InvalidInputError), match="NaN"):
        wb.partial_dependence(lr, Xn, "mean radius")


# ------------------------------------------------------------------ keywords
def test_plot_refuses_an_unknown_keyword(hgb, cancer):
    X, y = cancer
    pdp = wb.partial_dependence(hgb, X, "mean radius", grid_resolution=5)
    with pytest.raises(InvalidParameterError, match="Did you mean rug="):
        pdp.plot(rugg=False)
    with pytest.raises(InvalidParameterError, match="Did you mean rug="):
        wb.ale(hgb, X, "mean radius", bins=4).plot(rugs=False)
    imp = wb.permutation_importance(hgb, X, y, n_repeats=1)
    with pytest.raises(InvalidParameterError, match="Did you mean max_display="):
        imp.plot(max_dispaly=3)
