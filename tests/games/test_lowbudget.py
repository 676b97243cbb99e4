"""Small-budget KernelSHAP (sizes 1 and n - 1 enumerated, size-profile covariates, Stein
shrinkage): checked against brute-force enumeration of the Shapley formula, the closed form of
pairwise games with a size profile and spikes, the James-Stein factor by hand, and the
empirical coverage of the 95% intervals."""

from __future__ import annotations

import itertools
from math import comb, factorial

import numpy as np
import pytest

from whybox.errors import InvalidParameterError
from whybox.games._lowbudget import (
    _design,
    _fit,
    _stein_factor,
    lowbudget_min_budget,
    lowbudget_shapley,
)


class TableGame:
    """A game given by a random table over all coalitions (rugged, every order present)."""

    def __init__(self, n: int, seed: int, *, pairwise: bool = False) -> None:
        self.n_players = n
        self.player_names = [f"p{j}" for j in range(n)]
        rng = np.random.default_rng(seed)
        self.a = rng.normal(size=n)
        self.b = np.triu(rng.normal(size=(n, n)), 1)
        self.pairwise = pairwise
        self.table = rng.random(2**n)
        self.pw = 1 << np.arange(n)
        self.seen: set[int] = set()

    def value(self, coalitions: np.ndarray) -> np.ndarray:
        z = np.asarray(coalitions, dtype=bool)
        keys = z.astype(int) @ self.pw
        self.seen.update(keys.tolist())
        if self.pairwise:
            zf = z.astype(float)
            return zf @ self.a + np.einsum("mi,ij,mj->m", zf, self.b, zf)
        return self.table[keys]


def brute_force(game: TableGame) -> np.ndarray:
    """phi_j = sum_{S not j} |S|! (n - |S| - 1)! / n! (v(S + j) - v(S))."""
    n = game.n_players
    coal = np.array(list(itertools.product([False, True], repeat=n)))
    v = dict(zip(map(tuple, coal), game.value(coal), strict=True))
    phi = np.zeros(n)
    for c in coal:
        s = int(c.sum())
        for j in np.flatnonzero(~c):
            w = factorial(s) * factorial(n - s - 1) / factorial(n)
            plus = c.copy()
            plus[j] = True
            phi[j] += w * (v[tuple(plus)] - v[tuple(c)])
    return phi


def test_full_budget_is_exact_and_efficiency_always_holds():
    game = TableGame(7, 0)
    exact = brute_force(game)
    phi, std, _, info = lowbudget_shapley(game, np.random.default_rng(0), budget=2**7)
    np.testing.assert_allclose(phi[:, 0], exact, atol=1e-12)
    assert np.all(std == 0) and info["coalitions"] == 128
    for budget in (20, 30, 60):
        phi, _, v0, _ = lowbudget_shapley(game, np.random.default_rng(1), budget=budget)
        vN = game.value(np.ones((1, 7), dtype=bool))[0]
        assert phi[:, 0].sum() == pytest.approx(vN - v0[0], abs=1e-10)


@pytest.mark.parametrize("budget", [26, 40, 80])
def test_pairwise_game_is_exact_at_any_budget(budget):
    """Closed form: v(S) = sum_S a_j + sum_{j<k in S} b_jk has phi_j = a_j + sum_k b_jk / 2;
    the extremes enumerated plus paired samples fit it exactly."""
    game = TableGame(10, 3, pairwise=True)
    closed = game.a + (game.b.sum(0) + game.b.sum(1)) / 2
    phi, _, _, info = lowbudget_shapley(game, np.random.default_rng(5), budget=budget)
    np.testing.assert_allclose(phi[:, 0], closed, atol=1e-9)
    assert {1, 9} <= set(info["exact_sizes"])


@pytest.mark.parametrize("budget", [26, 31, 60])
def test_pairwise_plus_size_profile_plus_spikes_is_exact(budget):
    """v(S) = pairwise(S) + g(|S|) + c0 [S empty] + cN [S = N] with g cubic. A symmetric
    term gives every player the same share, so phi_j = a_j + sum_k b_jk / 2 +
    (g(n) + cN - g(0) - c0) / n: the size covariates and free intercept recover it."""
    n = 10
    base = TableGame(n, 8, pairwise=True)

    def g(s):
        return 0.7 * s - 0.3 * s**2 + 0.05 * s**3

    class Spiky:
        n_players, player_names = n, base.player_names

        def value(self, coalitions):
            z = np.asarray(coalitions, dtype=bool)
            s = z.sum(axis=1)
            return base.value(z) + g(s) + 5.0 * (s == 0) - 3.0 * (s == n)

    closed = base.a + (base.b.sum(0) + base.b.sum(1)) / 2 + (g(n) - 3.0 - g(0) - 5.0) / n
    phi, std, _, info = lowbudget_shapley(Spiky(), np.random.default_rng(2), budget=budget)
    np.testing.assert_allclose(phi[:, 0], closed, atol=1e-8)
    assert float(std.max()) < 1e-8 and info["shrinkage"] == [0.0]


@pytest.mark.parametrize("n", [5, 7])
def test_every_coalition_kernel_weighted_gives_exact_shapley(n):
    """The regression on [1, c^2, c^3, z] over all 0 < |z| < n with the Shapley kernel,
    centred plus delta / n, is the Shapley vector (so the estimator is consistent)."""
    game = TableGame(n, 3)
    coal = np.array(list(itertools.product([False, True], repeat=n)))
    size = coal.sum(1)
    Z = coal[(size > 0) & (size < n)]
    s = Z.sum(1)
    w = (n - 1) / (np.array([comb(n, int(k)) for k in s]) * s * (n - s))
    X = _design(Z)
    y = game.value(Z)[:, None]
    delta = game.value(np.ones((1, n), dtype=bool)) - game.value(np.zeros((1, n), dtype=bool))
    phi = _fit((X * w[:, None]).T @ X, (X * w[:, None]).T @ y, delta)
    np.testing.assert_allclose(phi[:, 0], brute_force(game), atol=1e-12)


def test_stein_factor_by_hand():
    """(1 - (tr S - 2 lambda_max) / |d|^2)_+ (Bock 1975): S = I_4, |d|^2 = 8 -> 1 - 2 / 8;
    S = diag(3, 1, 1): tr - 2 max = -1 -> no shrinkage; a tiny d -> 0 (the target)."""
    assert _stein_factor(np.array([2.0, 2.0, 0.0, 0.0]), np.eye(4)) == pytest.approx(0.75)
    assert _stein_factor(np.array([1.0, 0.0, 0.0]), np.diag([3.0, 1.0, 1.0])) == 1.0
    assert _stein_factor(np.full(4, 1e-3), np.eye(4)) == 0.0
    assert _stein_factor(np.zeros(4), np.zeros((4, 4))) == 1.0


def test_budget_is_respected_and_extremes_enumerated():
    game = TableGame(9, 2)
    for budget in (27, 54, 108, 216):
        game.seen.clear()
        _, _, _, info = lowbudget_shapley(game, np.random.default_rng(0), budget=budget)
        assert len(game.seen) <= budget and info["coalitions"] <= budget
        singles = {1 << j for j in range(9)} | {511 - (1 << j) for j in range(9)}
        assert singles <= game.seen


@pytest.mark.parametrize("budget", [60, 108])
def test_within_four_standard_errors_and_calibrated_from_five_n(budget):
    """95% intervals over 120 seeds x 9 players on a random-table game: measured coverage
    0.927 at 60 coalitions and 0.949 at 108 (0.50 at 27 = 3 n with 3 pooled pairs: not
    calibrated there, as documented; 0.88 at 40, 0.95 at 200); beyond 4 SE: 0.2% / 0.1%."""
    game = TableGame(9, 4)
    exact = brute_force(game)
    hits, z = [], []
    for seed in range(120):
        phi, std, _, _ = lowbudget_shapley(game, np.random.default_rng(seed), budget=budget)
        hits.append(np.abs(phi[:, 0] - exact) <= 1.96 * std[:, 0])
        z.append(np.abs(phi[:, 0] - exact) / std[:, 0])
    assert 0.9 <= float(np.mean(hits)) <= 0.99, float(np.mean(hits))
    assert float(np.mean(np.array(z) > 4)) < 0.01


def test_same_seed_same_values_and_small_budget_falls_back():
    game = TableGame(8, 1)
    a = lowbudget_shapley(game, np.random.default_rng(3), budget=40)[0]
    b = lowbudget_shapley(game, np.random.default_rng(3), budget=40)[0]
    c = lowbudget_shapley(game, np.random.default_rng(4), budget=40)[0]
    np.testing.assert_array_equal(a, b)
    assert not np.allclose(a, c)
    assert lowbudget_min_budget(8) == 18
    _, _, _, info = lowbudget_shapley(game, np.random.default_rng(0), budget=18)
    assert info["coalitions"] <= 18


def test_bad_tolerance_and_budget_are_refused():
    game = TableGame(6, 0)
    with pytest.raises(InvalidParameterError):
        lowbudget_shapley(game, np.random.default_rng(0), budget=20, tolerance=-1.0)
    with pytest.raises(InvalidParameterError):
        lowbudget_shapley(game, np.random.default_rng(0), budget=5)


def test_tolerance_stops_early():
    game = TableGame(9, 6)
    _, std, _, info = lowbudget_shapley(game, np.random.default_rng(0), budget=400, tolerance=0.2)
    assert info["converged"] and float(std.max()) < 0.2 and info["coalitions"] < 400
