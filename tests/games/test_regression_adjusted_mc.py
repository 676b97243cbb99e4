"""Regression-adjusted permutation sampling and MSR Banzhaf against brute-force enumeration.

Both estimators are exactly unbiased (each sample is independent of the surrogate that
corrects it, by cross-fitting), so the mean over many seeds must sit within four standard
errors of the mean of the enumerated values.
"""

from __future__ import annotations

import numpy as np
import pytest
from sklearn.datasets import load_wine
from sklearn.svm import SVC

import whybox as wb
from whybox.errors import InvalidParameterError
from whybox.games._regression_adjusted import adjusted_banzhaf, adjusted_permutation_shapley

from .test_regression_adjusted import (
    FnGame,
    brute_banzhaf,
    brute_shapley,
    one_leaf_game,
    sigmoid_game,
)

N = 8
SIG = sigmoid_game(N, seed=2)
EXACT = {"shapley": brute_shapley(N, SIG), "banzhaf": brute_banzhaf(N, SIG)}
ESTIMATORS = {"shapley": adjusted_permutation_shapley, "banzhaf": adjusted_banzhaf}


@pytest.mark.parametrize("value", ["shapley", "banzhaf"])
@pytest.mark.parametrize("surrogate", ["tree", "kernel", "linear", "none"])
def test_unbiased_over_seeds(value, surrogate):
    game = FnGame(N, SIG)
    est = np.array(
        [
            ESTIMATORS[value](game, np.random.default_rng(s), budget=120, surrogate=surrogate)[0][
                :, 0
            ]
            for s in range(150)
        ]
    )
    se = est.std(axis=0, ddof=1) / np.sqrt(len(est))
    assert np.all(np.abs(est.mean(axis=0) - EXACT[value]) <= 4 * se + 1e-12)


@pytest.mark.parametrize("value", ["shapley", "banzhaf"])
def test_standard_errors_are_calibrated_and_efficiency_exact(value):
    game = FnGame(N, SIG)
    v = SIG(np.array([np.zeros(N), np.ones(N)], dtype=bool))
    hits = []
    for s in range(60):
        phi, std, v0, info = ESTIMATORS[value](game, np.random.default_rng(s), budget=150)
        assert info["surrogate"] in ("none", "linear", "kernel", "tree")
        hits.append(np.abs(phi[:, 0] - EXACT[value]) <= 1.96 * std[:, 0])
        if value == "shapley":
            assert abs(phi.sum() - (v[1] - v[0])) < 1e-10
        np.testing.assert_allclose(v0, v[:1], atol=1e-15)
    assert 0.88 <= np.mean(hits) <= 0.995, np.mean(hits)


@pytest.mark.parametrize("value", ["shapley", "banzhaf"])
def test_adjustment_cuts_the_error_on_a_game_that_is_a_tree(value):
    n = 10
    exact = (brute_shapley if value == "shapley" else brute_banzhaf)(n, one_leaf_game)
    game = FnGame(n, one_leaf_game)
    err = {}
    for s in ("none", "tree", "auto"):
        phi, _, _, info = ESTIMATORS[value](game, np.random.default_rng(0), budget=400, surrogate=s)
        err[s] = np.abs(phi[:, 0] - exact).sum()
        if s != "none":
            assert info["surrogate"] == "tree"
    assert err["tree"] < 1e-4
    assert err["none"] > 1e-2


@pytest.mark.parametrize("value", ["shapley", "banzhaf"])
def test_linear_game_exact_and_constant_game_zero(value):
    n = 9
    w = np.linspace(-1, 2, n)
    game = FnGame(n, lambda Z: Z.astype(float) @ w - 3.0)
    phi, _, _, _ = ESTIMATORS[value](game, np.random.default_rng(0), budget=200, surrogate="linear")
    np.testing.assert_allclose(phi[:, 0], w, atol=1e-9)
    const = FnGame(n, lambda Z: np.full(len(Z), -1.5))
    for s in ("auto", "tree", "kernel", "linear", "none"):
        phi, std, _, _ = ESTIMATORS[value](const, np.random.default_rng(0), budget=200, surrogate=s)
        np.testing.assert_allclose(phi, 0.0, atol=1e-15)
        np.testing.assert_allclose(std, 0.0, atol=1e-15)


@pytest.fixture(scope="module")
def wine_svc():
    X, y = load_wine(return_X_y=True)
    X = X[:, :8]
    m = SVC(probability=True, random_state=0).fit((X - X.mean(0)) / X.std(0), y)
    mu, sd = X.mean(0), X.std(0)
    return (lambda A: m.predict_proba((A - mu) / sd)[:, 1]), X[::9][:12], X[100:103]


@pytest.mark.parametrize("cls", [wb.PermutationShap, wb.Banzhaf, wb.KernelShap])
def test_explainers_record_the_surrogate_and_stay_close_to_exact(wine_svc, cls):
    f, bg, X = wine_svc
    exp = cls(f, background=bg, random_state=0, surrogate="auto").explain(X, budget=200)
    assert exp.params["surrogate"] == "auto"
    default = cls(f, background=bg).explain(X[:1], budget=200).params["surrogate"]
    assert default == "none"  # opt-in everywhere (time per row and SE coverage: see KernelShap)
    assert set(exp.meta["surrogate"]) <= {"none", "linear", "kernel", "tree"}
    if cls is wb.Banzhaf:
        ref = wb.Banzhaf(f, background=bg).explain(X, budget=2**8).values  # exact: 2**8 <= budget
    else:
        ref = wb.ExactShap(f, background=bg).explain(X).values
        assert np.abs(exp.completeness_gap()).max() < 1e-10
    # 5 SE: the residual game's standard error leaves out the (small) sampling variation of
    # the cross-fitted surrogates themselves; measured coverage of +-1.96 SE is ~0.9-0.93
    assert np.all(np.abs(exp.values - ref) <= 5 * exp.std + 1e-9)
    plain = cls(f, background=bg, random_state=0, surrogate="none").explain(X, budget=200)
    assert plain.params["surrogate"] == "none"


@pytest.mark.parametrize("cls", [wb.PermutationShap, wb.Banzhaf, wb.KernelShap])
def test_unknown_surrogate_and_small_budget_are_refused(wine_svc, cls):
    f, bg, X = wine_svc
    with pytest.raises(InvalidParameterError, match="surrogate='xgboost' is not one of"):
        cls(f, background=bg, surrogate="xgboost")
    with pytest.raises(InvalidParameterError, match="budget=10 is below the minimum"):
        cls(f, background=bg).explain(X, budget=10)


def test_the_unbiasedness_check_catches_an_in_sample_surrogate():
    # the same check as test_unbiased_over_seeds, on the estimator without cross-fitting
    # (the surrogate fitted on the very coalitions whose residuals are averaged): it fails,
    # so the check has the power to see the bias that cross-fitting removes
    from whybox.games._regression_adjusted import fit_surrogate

    est = []
    for s in range(150):
        rng = np.random.default_rng(s)
        Z1 = rng.random((60, N)) < 0.5
        Z = np.concatenate([Z1, ~Z1])
        y = SIG(Z)[:, None]
        model = fit_surrogate(Z, y, np.ones(len(Z)), "tree")
        r = y - model.predict(Z)
        g = (2.0 * Z1 - 1.0) * (r[:60] - r[60:])
        est.append(model.banzhaf(N)[:, 0] + g.mean(axis=0))
    est = np.array(est)
    se = est.std(axis=0, ddof=1) / np.sqrt(len(est))
    assert not np.all(np.abs(est.mean(axis=0) - EXACT["banzhaf"]) <= 4 * se + 1e-12)
