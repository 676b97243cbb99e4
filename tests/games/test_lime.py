"""Lime and SP-LIME against lime itself, closed forms and determinism."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from sklearn.datasets import load_breast_cancer
from sklearn.ensemble import RandomForestClassifier

import whybox as wb
from whybox.errors import InvalidParameterError
from whybox.games.lime import Lime, SubmodularPick, fit_surrogate, kernel_weights, submodular_pick

lime_base = pytest.importorskip("lime.lime_base")
lime_disc = pytest.importorskip("lime.discretize")


@pytest.fixture(scope="module")
def cancer():
    X, y = load_breast_cancer(return_X_y=True)
    model = RandomForestClassifier(n_estimators=30, random_state=0).fit(X, y)
    return X, model


@pytest.mark.parametrize(
    "selection", ["forward_selection", "highest_weights", "lasso_path", "none", "auto"]
)
def test_surrogate_equals_lime_base(selection):
    rng = np.random.default_rng(0)
    Z = rng.integers(0, 2, (600, 9)).astype(float)
    Z[0] = 1
    y = Z @ rng.normal(size=9) + 0.3 * Z[:, 0] * Z[:, 1] + rng.normal(size=600) * 0.1
    d = np.sqrt(((Z - Z[0]) ** 2).sum(axis=1))
    width = 0.75 * np.sqrt(9)
    k = 9 if selection == "none" else 4
    base = lime_base.LimeBase(lambda dd: np.sqrt(np.exp(-(dd**2) / width**2)), random_state=0)
    intercept, local, score, pred = base.explain_instance_with_data(
        Z, y[:, None], d, 0, k, feature_selection=selection
    )
    fit = fit_surrogate(Z, y, kernel_weights(d, width), k, selection)
    ref = dict(local)
    assert [j for j, _ in local] == sorted(ref, key=lambda j: -abs(ref[j]))
    assert sorted(ref) == sorted(fit["used"])
    for j, c in zip(fit["used"], fit["coef"], strict=True):
        assert abs(ref[j] - c) < 1e-8
    assert abs(intercept - fit["intercept"]) < 1e-8
    assert abs(score - fit["score"]) < 1e-8
    assert abs(np.ravel(pred)[0] - fit["local_prediction"]) < 1e-8


def test_quartile_edges_equal_lime_discretizer(cancer):
    X, _ = cancer
    from whybox.games.lime import _Space
    from whybox.games.maskers import Independent

    space = _Space(Independent(X, max_samples=len(X)), "quartile", [])
    disc = lime_disc.QuartileDiscretizer(X, [], [str(j) for j in range(X.shape[1])])
    for j, edges in enumerate(disc.bins(X, None)):
        np.testing.assert_allclose(space.edges[j], np.unique(edges))
    space10 = _Space(Independent(X, max_samples=len(X)), "decile", [])
    disc10 = lime_disc.DecileDiscretizer(X, [], [str(j) for j in range(X.shape[1])])
    for j, edges in enumerate(disc10.bins(X, None)):
        np.testing.assert_allclose(space10.edges[j], np.unique(edges))


def test_linear_model_recovers_scaled_coefficients():
    # f = w . x, no discretisation: the interpretable feature is (x - mean) / std, so the
    # surrogate coefficient is w_j * std_j (the local model is exact: fidelity 1)
    rng = np.random.default_rng(1)
    X = rng.normal(loc=2.0, scale=[1.0, 3.0, 0.5], size=(2000, 3))
    w = np.array([1.5, -0.5, 4.0])
    exp = Lime(
        lambda Z: Z @ w,
        background=X,
        discretize=None,
        feature_selection="none",
        ridge_alpha=0.0,
        n_features=3,
    ).explain(X[:3], budget=3000)
    scaled = (X[:3] - X.mean(0)) / X.std(0)
    np.testing.assert_allclose(exp.values, w * X.std(0) * scaled, rtol=1e-6, atol=1e-8)
    np.testing.assert_allclose(exp.meta["fidelity"], 1.0, atol=1e-10)


def test_seeded_and_backend_independent(cancer):
    X, model = cancer
    make = lambda **kw: Lime(model, background=X, n_features=5, random_state=3, **kw)  # noqa: E731
    a = make().explain(X[:4], budget=1000, target=1)
    b = make().explain(X[:4], budget=1000, target=1)
    np.testing.assert_array_equal(a.values, b.values)
    c = make(n_jobs=2).explain(X[:4], budget=1000, target=1)
    np.testing.assert_array_equal(a.values, c.values)
    other = Lime(model, background=X, n_features=5, random_state=4).explain(
        X[:4], budget=1000, target=1
    )
    assert not np.array_equal(a.values, other.values)
    assert (np.count_nonzero(a.values, axis=1) == 5).all()
    assert a.params["feature_selection"] == "auto" and a.n_evals == 1000


def test_top5_stable_across_runs(cancer):
    X, model = cancer
    tops = [
        tuple(
            tuple(np.flatnonzero(r))
            for r in Lime(model, background=X, n_features=5, random_state=0)
            .explain(X[:6], budget=2000, target=1)
            .values
        )
        for _ in range(3)
    ]
    assert len(set(tops)) == 1


def test_dataframe_with_categories_keeps_dtypes():
    rng = np.random.default_rng(2)
    df = pd.DataFrame(
        {"num": rng.normal(size=300), "cat": pd.Categorical(rng.choice(["a", "b", "c"], 300))}
    )
    seen = []

    def f(Z):
        seen.append(Z.dtypes.copy())
        return Z["num"].to_numpy() + (Z["cat"] == "b").to_numpy() * 2.0

    exp = Lime(f, background=df, n_features=2, random_state=0).explain(df.iloc[:2], budget=500)
    assert seen[-1].equals(df.dtypes)
    # x's category contributes about +2 when it is "b", about -2/3 against the others
    b_rows = df.iloc[:2]["cat"] == "b"
    assert np.all((exp.values[:, 1] > 1.0) == b_rows.to_numpy())


def test_submodular_pick_greedy_by_hand():
    W = np.array([[1.0, 0, 0], [0, 2.0, 2.0], [1.0, 1.0, 0], [0, 0, 3.0]])
    picked, coverage, imp = submodular_pick(W, 2)
    np.testing.assert_allclose(imp, np.sqrt([2.0, 3.0, 5.0]))
    # first: row 1 covers features 1, 2 (sqrt3 + sqrt5); then row 0 or 2 adds feature 0
    assert picked[0] == 1 and picked[1] in (0, 2)
    assert coverage == sorted(coverage)
    np.testing.assert_allclose(coverage[-1], imp.sum())


def test_sp_lime_explainer(cancer):
    X, model = cancer
    exp = SubmodularPick(model, background=X, n_features=4, random_state=0).explain(
        X[:8], n_picks=3, budget=800, target=1
    )
    assert exp.n_rows == 3 and len(exp.meta["picked_indices"]) == 3
    assert exp.meta["coverage"] == sorted(exp.meta["coverage"])
    with pytest.raises(InvalidParameterError, match="n_picks"):
        SubmodularPick(model, background=X).explain(X[:2], n_picks=3, budget=200, target=1)


def test_bad_parameters(cancer):
    X, model = cancer
    with pytest.raises(InvalidParameterError, match="minimum of 7"):
        Lime(model, background=X, n_features=5).explain(X[:1], budget=5)
    with pytest.raises(InvalidParameterError, match="discretize"):
        Lime(model, discretize="octile")
    with pytest.raises(InvalidParameterError, match="feature_selection"):
        Lime(model, feature_selection="best")
    with pytest.raises(InvalidParameterError, match="kernel_width"):
        Lime(model, kernel_width=-1.0)
    with pytest.raises(InvalidParameterError, match="n_features"):
        Lime(model, n_features=0)
    assert "lime" in wb.available_methods()
