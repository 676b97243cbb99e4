"""PermutationShap, KernelShap, Banzhaf and ShapleyInteractions on real models."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from sklearn.datasets import load_wine
from sklearn.ensemble import GradientBoostingClassifier
from sklearn.linear_model import LinearRegression

import whybox as wb
from whybox.errors import InvalidParameterError
from whybox.games.banzhaf import exact_banzhaf, msr_banzhaf
from whybox.games.interactions import exact_interactions
from whybox.testing import check_explainer, pairwise_game, unanimity_game


@pytest.fixture(scope="module")
def wine():
    X, y = load_wine(return_X_y=True, as_frame=True)
    X = X.iloc[:, :9]
    model = GradientBoostingClassifier(random_state=0, n_estimators=25).fit(X, y)
    bg = X.iloc[::6].iloc[:25]
    exact = wb.ExactShap(model, background=bg).explain(X.iloc[:4], target=0)
    return model, X, bg, exact


@pytest.mark.parametrize("cls", [wb.PermutationShap, wb.KernelShap])
def test_sampled_values_are_within_four_standard_errors_of_exact(wine, cls):
    model, X, bg, exact = wine
    exp = cls(model, background=bg, random_state=0).explain(X.iloc[:4], target=0, budget=300)
    assert exp.std is not None and np.all(exp.std >= 0)
    assert np.all(np.abs(exp.values - exact.values) <= 4 * exp.std + 1e-9)
    assert np.abs(exp.completeness_gap()).max() < 1e-10  # efficiency is exact
    assert exp.n_evals <= 300
    np.testing.assert_allclose(exp.base_values, exact.base_values, atol=1e-12)


def test_kernel_with_every_coalition_is_exact(wine):
    model, X, bg, exact = wine
    exp = wb.KernelShap(model, background=bg).explain(X.iloc[:4], target=0, budget=2**9)
    np.testing.assert_allclose(exp.values, exact.values, atol=1e-10)
    np.testing.assert_allclose(exp.std, 0.0)


@pytest.mark.parametrize("cls", [wb.PermutationShap, wb.KernelShap])
def test_conformance_and_seeding(wine, cls):
    model, X, bg, _ = wine
    exp = check_explainer(
        lambda: cls(model, background=bg, random_state=3),
        X.iloc[5:8],
        explain_kwargs={"target": 0, "budget": 200},
    )
    other = cls(model, background=bg, random_state=4).explain(X.iloc[5:8], target=0, budget=200)
    assert not np.array_equal(other.values, exp.values)


@pytest.mark.parametrize("cls", [wb.PermutationShap, wb.KernelShap])
def test_tolerance_stops_early(wine, cls):
    model, X, bg, _ = wine
    full = cls(model, background=bg).explain(X.iloc[:2], target=0, budget=500)
    quick = cls(model, background=bg).explain(X.iloc[:2], target=0, budget=500, tolerance=0.01)
    assert quick.n_evals < full.n_evals
    assert quick.std.max() < 0.01
    assert all(quick.meta["converged"])


@pytest.mark.parametrize(
    ("cls", "minimum"), [(wb.PermutationShap, 2 + 4 * 8), (wb.KernelShap, 2 * 9 + 2)]
)
def test_budget_below_minimum_says_the_minimum(wine, cls, minimum):
    model, X, bg, _ = wine
    with pytest.raises(InvalidParameterError) as info:
        cls(model, background=bg).explain(X.iloc[:1], budget=minimum - 1)
    assert f"minimum of {minimum}" in str(info.value)
    cls(model, background=bg).explain(X.iloc[:1], target=0, budget=minimum)


def test_processes_give_identical_values(wine):
    model, X, bg, _ = wine
    a = wb.KernelShap(model, background=bg).explain(X.iloc[:4], target=0, budget=150)
    b = wb.KernelShap(model, background=bg, n_jobs=2).explain(X.iloc[:4], target=0, budget=150)
    np.testing.assert_array_equal(a.values, b.values)
    np.testing.assert_array_equal(a.std, b.std)


def test_banzhaf_closed_forms():
    n = 5
    # unanimity game on 3 players: each gets 1 / 2^(3-1)
    beta, _ = exact_banzhaf(unanimity_game(n, (0, 1, 2), 1.0))
    np.testing.assert_allclose(beta[:, 0], [0.25, 0.25, 0.25, 0, 0], atol=1e-15)
    # pairwise games: Banzhaf = Shapley = a_i + sum_j B_ij / 2
    g = pairwise_game([1.0, 0, -1, 2, 0.5], np.triu(np.full((n, n), 0.4), 1))
    beta, _ = exact_banzhaf(g)
    np.testing.assert_allclose(beta, g.shapley(), atol=1e-12)
    est, std, _ = msr_banzhaf(
        unanimity_game(n, (0, 1, 2), 1.0), np.random.default_rng(0), budget=4000
    )
    assert np.all(np.abs(est[:, 0] - [0.25, 0.25, 0.25, 0, 0]) <= 4 * std[:, 0] + 1e-12)


def test_banzhaf_explainer_on_linear_model():
    rng = np.random.default_rng(0)
    X = rng.normal(size=(80, 6))
    model = LinearRegression().fit(X, X @ [1.0, -2.0, 0.0, 3.0, 0.5, -1.0])
    exact = model.coef_ * (X[40:43] - X[:30].mean(0))
    exp = wb.Banzhaf(model, background=X[:30]).explain(X[40:43])
    np.testing.assert_allclose(exp.values, exact, atol=1e-10)
    exp2 = wb.Banzhaf(model, background=X[:30]).explain(X[40:43], budget=40)  # MSR
    assert exp2.params["efficient"] is False and exp2.std.max() > 0
    assert np.all(np.abs(exp2.values - exact) <= 4 * exp2.std + 1e-9)


def test_interactions_of_a_product_closed_form():
    # f = x0 * x1 + x2 with one background row b: I_01 = (x0 - b0)(x1 - b1), split in halves
    b = np.array([[0.5, -1.0, 2.0]])
    X = np.array([[2.0, 3.0, 1.0], [-1.0, 0.0, 4.0]])
    f = lambda Z: Z[:, 0] * Z[:, 1] + Z[:, 2]  # noqa: E731
    exp = wb.ShapleyInteractions(f, background=b).explain(X)
    assert exp.values.shape == (2, 3, 3)
    inter = (X[:, 0] - b[0, 0]) * (X[:, 1] - b[0, 1])
    np.testing.assert_allclose(exp.values[:, 0, 1], inter / 2, atol=1e-12)
    np.testing.assert_allclose(exp.values[:, 0, 2], 0.0, atol=1e-12)
    shap_values = wb.ExactShap(f, background=b).explain(X).values
    np.testing.assert_allclose(exp.values.sum(axis=2), shap_values, atol=1e-12)
    assert np.abs(exp.completeness_gap()).max() < 1e-12
    assert exp.feature_names[1] == "x0 × x1"


def test_sampled_interactions_cover_exact(wine):
    _model, X, _bg, _ = wine
    small = X.iloc[:, :6]
    m = GradientBoostingClassifier(random_state=0, n_estimators=20).fit(small, load_wine().target)
    exact = wb.ShapleyInteractions(m, background=small.iloc[:15]).explain(small.iloc[:1], target=0)
    sampled = wb.ShapleyInteractions(m, background=small.iloc[:15], random_state=1).explain(
        small.iloc[:1], target=0, budget=40
    )
    assert exact.params["budget"] is None and np.nanmax(sampled.std) > 0
    ok = np.abs(sampled.values - exact.values) <= 4 * np.nan_to_num(sampled.std, nan=np.inf) + 1e-9
    assert ok.mean() >= 0.95
    np.testing.assert_allclose(
        sampled.values.sum(axis=(1, 2)), exact.values.sum(axis=(1, 2)), atol=1e-10
    )


def test_exact_interactions_of_pairwise_game():
    n = 5
    rng = np.random.default_rng(2)
    B = np.triu(rng.normal(size=(n, n)), 1)
    g = pairwise_game(rng.normal(size=n), B)
    Phi, _ = exact_interactions(g)
    iu = np.triu_indices(n, 1)
    np.testing.assert_allclose(Phi[:, :, 0][iu], B[iu] / 2, atol=1e-12)
    np.testing.assert_allclose(Phi.sum(axis=1), g.shapley(), atol=1e-12)


def test_kernel_on_dataframe_with_groups():
    rng = np.random.default_rng(5)
    X = pd.DataFrame(rng.normal(size=(60, 6)), columns=list("abcdef"))
    f = lambda Z: np.asarray(Z, float) @ np.arange(1.0, 7.0)  # noqa: E731
    exp = wb.KernelShap(f, background=X.iloc[:20], groups={"ab": ["a", "b"]}).explain(
        X.iloc[30:32], budget=100
    )
    direct = np.arange(1.0, 7.0) * (X.iloc[30:32].to_numpy() - X.iloc[:20].to_numpy().mean(0))
    np.testing.assert_allclose(exp.values[:, 0], direct[:, :2].sum(1), atol=1e-9)
    np.testing.assert_allclose(exp.values[:, 1:], direct[:, 2:], atol=1e-9)


@pytest.mark.parametrize(("n", "budgets"), [(8, range(18, 24)), (12, range(26, 31))])
def test_kernel_budgets_just_above_the_minimum_run_and_add_up(n, budgets):
    # the pooled stratum once reused the control variate's name for its permutation and
    # raised a ValueError at these budgets (found by TokenShap on 8- and 12-word texts)
    from whybox.games.kernel import kernel_shapley

    rng0 = np.random.default_rng(0)
    a, B = rng0.normal(size=n), np.triu(rng0.normal(size=(n, n)), 1)
    game = pairwise_game(a, B)
    for budget in budgets:
        phi, std, v0, info = kernel_shapley(game, np.random.default_rng(1), budget=budget)
        full = game.value(np.ones((1, n), dtype=bool))[0]
        np.testing.assert_allclose(phi.sum(0), full - v0, rtol=1e-10, atol=1e-10)
        assert np.all(np.isfinite(std)) and info["coalitions"] <= budget
        assert phi.shape[0] == n and np.isfinite(phi).all()


@pytest.mark.parametrize(("n", "s"), [(13, 3), (12, 6), (70, 5)])
def test_kernel_stratum_draws_as_the_row_by_row_loop(n, s):
    # the vectorised without-replacement draws (batch keys, first occurrences, seen keys;
    # bytes keys beyond 64 players) against the plain loop: draw a batch, add each row whose
    # bits were not drawn before, until enough; densely sampled strata pick from the unseen
    from math import comb

    from whybox.games.kernel import _Stratum

    middle = 2 * s == n
    n_pairs = comb(n, s) // 2 if middle else comb(n, s)
    st, rng, ref_rng = _Stratum(n, s), np.random.default_rng(4), np.random.default_rng(4)
    seen, ref = set(), []
    for k in (5, 40, min(2 * n_pairs // 3, 300)):  # the last is dense for 12 and 13 players
        st.extend(rng, k)
        k = min(k, n_pairs)
        if k > n_pairs // 3:
            pool = st.all_pairs()
            unseen = [i for i, row in enumerate(pool) if row.tobytes() not in seen]
            for i in ref_rng.choice(np.array(unseen), size=k - len(ref), replace=False):
                seen.add(pool[i].tobytes())
                ref.append(pool[i])
        while len(ref) < k:
            order = np.argsort(ref_rng.random((2 * (k - len(ref)) + 4, n)), axis=1)
            for perm in order:
                row = np.zeros(n, dtype=bool)
                row[perm[:s]] = True
                if middle and not row[0]:
                    row = ~row
                if row.tobytes() not in seen and len(ref) < k:
                    seen.add(row.tobytes())
                    ref.append(row)
        np.testing.assert_array_equal(np.array(st.sampled), np.array(ref))
    assert rng.bit_generator.state == ref_rng.bit_generator.state


def test_kernel_is_exact_on_pairwise_games_plus_a_cubic_size_profile():
    # the size covariates [1, c**2, c**3] absorb a cubic function of |S| (its Shapley value
    # is (g(n) - g(0)) / n for every player, by symmetry), paired sampling the pairwise
    # part: exact at a budget far below 2**n. Reference: Shapley values of the pairwise game
    # (main effect plus half of each interaction) and the profile's share, by hand.
    from whybox.games.kernel import kernel_shapley

    n = 13
    r = np.random.default_rng(3)
    a, B = r.normal(size=n), np.triu(r.normal(size=(n, n)), 1)

    def profile(s):
        return 0.7 * s - 0.09 * s**2 + 0.004 * s**3

    class Game:
        n_players = n

        def value(self, Z):
            Zf = np.asarray(Z, dtype=float)
            pair = Zf @ a + np.einsum("mi,ij,mj->m", Zf, B, Zf)
            return pair + profile(Zf.sum(axis=1))

    exact = a + (B.sum(axis=1) + B.sum(axis=0)) / 2 + (profile(n) - profile(0)) / n
    for budget in (60, 128, 300):
        phi, std, _, info = kernel_shapley(Game(), np.random.default_rng(0), budget=budget)
        np.testing.assert_allclose(phi[:, 0], exact, atol=1e-9)
        assert std.max() < 1e-6
    # at 128 the sizes 1 and 12 are enumerated first (4+ pairs left per other stratum)
    _, _, _, info = kernel_shapley(Game(), np.random.default_rng(0), budget=128)
    assert {1, n - 1} <= set(info["exact_sizes"])
