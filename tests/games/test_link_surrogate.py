"""The sigmoid ("link") surrogate of regression-adjusted Shapley estimation.

Oracles: brute-force enumeration of coalitions with the Shapley / Banzhaf weights (written
here, independently of the module), the closed form of the game that generated the data.
"""

from __future__ import annotations

import itertools
from math import factorial

import numpy as np
import pytest
from scipy.special import expit

from whybox.games import _link_surrogate as L


def brute_values(f, n: int, value: str = "shapley") -> np.ndarray:
    """Values of the game ``f`` (bool (n,) -> float (k,)) by summing over every coalition."""
    k = np.atleast_1d(f(np.zeros(n, dtype=bool))).shape[0]
    phi = np.zeros((n, k))
    for j in range(n):
        others = [i for i in range(n) if i != j]
        for s in range(n):
            if value == "shapley":
                w = factorial(s) * factorial(n - 1 - s) / factorial(n)
            else:
                w = 1.0 / 2 ** (n - 1)
            for S in itertools.combinations(others, s):
                z = np.zeros(n, dtype=bool)
                z[list(S)] = True
                without = np.atleast_1d(f(z))
                z[j] = True
                phi[j] += w * (np.atleast_1d(f(z)) - without)
    return phi


def sigmoid_game(a, beta):
    return lambda z: expit(a + z.astype(float) @ beta)


def test_fit_recovers_a_noiseless_sigmoid_game():
    rng = np.random.default_rng(0)
    n = 7
    a = np.array([-0.4, 1.2])
    beta = rng.normal(0.0, 1.0, (n, 2))
    Z = rng.random((300, n)) < 0.5
    t = expit(a + Z @ beta)
    a_hat, beta_hat = L.fit_link(Z, t, rng.random(300) + 0.5, ridge=0.0)
    np.testing.assert_allclose(a_hat, a, atol=1e-7)
    np.testing.assert_allclose(beta_hat, beta, atol=1e-7)


@pytest.mark.parametrize("value", ["shapley", "banzhaf"])
def test_values_of_the_fitted_surrogate_match_enumeration(value):
    rng = np.random.default_rng(1)
    n = 8
    # a game that is not a single sigmoid: the mean of two
    b1, b2 = rng.normal(0.0, 1.0, (2, n))
    Z = rng.random((200, n)) < 0.5
    t = 0.5 * (expit(0.3 + Z @ b1) + expit(-1.0 + Z @ b2))
    a, beta = L.fit_link(Z, t[:, None], np.ones(200))
    exact = brute_values(sigmoid_game(a, beta), n, value)
    np.testing.assert_allclose(L.link_values_exact(a, beta, value), exact, atol=1e-12)
    phi, var = L.link_values_mc(a[None], beta[None], rng, 2048, value)
    se = np.sqrt(var)
    assert float(se.max()) < 2e-3
    assert np.all(np.abs(phi - exact) <= 5.0 * se + 1e-12)


def test_monte_carlo_values_are_exactly_efficient_and_average_the_folds():
    rng = np.random.default_rng(2)
    n, k, F = 20, 2, 4
    a = rng.normal(0.0, 1.0, (F, k))
    beta = rng.normal(0.0, 0.5, (F, n, k))
    phi, var = L.link_values_mc(a, beta, rng, 64)
    gap = (expit(a + beta.sum(1)) - expit(a)).mean(0)
    np.testing.assert_allclose(phi.sum(0), gap, rtol=0, atol=1e-12)
    assert phi.shape == var.shape == (n, k) and np.all(var > 0)


def test_cross_fit_contract_and_efficiency():
    rng = np.random.default_rng(3)
    n, m = 20, 240
    b1 = rng.normal(0.0, 0.6, n)
    Z = rng.random((m, n)) < rng.random((m, 1))
    v = lambda Z: np.stack([expit(0.2 + Z @ b1), 0.5 * expit(Z @ -b1)], axis=1)  # noqa: E731
    ends_z = np.stack([np.zeros(n, dtype=bool), np.ones(n, dtype=bool)])
    v0 = v(ends_z)[0]
    fold = np.arange(m) % 4
    fold[:20] = -1  # enumerated coalitions: predicted by the folds' average
    out = L.cross_fit_link(Z, v(Z) - v0, v0, np.ones(m), fold, rng, ridge=1e-12)
    assert out is not None
    pred, phi_f, ends, var_phi = out
    assert pred.shape == (m, 2) and phi_f.shape == var_phi.shape == (n, 2) and ends.shape == (2, 2)
    np.testing.assert_allclose(phi_f.sum(0), ends[1] - ends[0], rtol=0, atol=1e-12)
    # the first column is a sigmoid game: the (unpenalised) surrogates reproduce it
    np.testing.assert_allclose(pred[:, 0], v(Z)[:, 0] - v0[0], atol=1e-6)
    np.testing.assert_allclose(ends[:, 0], v(ends_z)[:, 0] - v0[0], atol=1e-6)


def test_values_outside_the_unit_interval_are_refused():
    rng = np.random.default_rng(4)
    Z = rng.random((40, 5)) < 0.5
    y = rng.random((40, 1)) * 0.5
    fold = np.arange(40) % 4
    w = np.ones(40)
    assert L.cross_fit_link(Z, y, np.array([0.7]), w, fold, rng) is None  # y + v0 > 1
    assert L.cross_fit_link(Z, y - 0.2, np.array([0.1]), w, fold, rng) is None  # < 0
    bad = y.copy()
    bad[3] = np.nan
    assert L.cross_fit_link(Z, bad, np.array([0.2]), w, fold, rng) is None
    assert L.cross_fit_link(Z, y, np.array([0.2]), w, fold, rng) is not None


def test_constant_game_gives_a_constant_surrogate():
    rng = np.random.default_rng(5)
    Z = rng.random((40, 16)) < 0.5
    fold = np.arange(40) % 4
    out = L.cross_fit_link(Z, np.zeros((40, 1)), np.array([1.0]), np.ones(40), fold, rng)
    assert out is not None
    pred, phi_f, ends, _ = out
    assert np.abs(pred).max() < 1e-11 and np.abs(phi_f).max() < 1e-11
    assert np.abs(ends).max() < 1e-11


def test_adjusted_permutation_estimate_is_unbiased(monkeypatch):
    """Antithetic permutation sampling of the residual game v - f, f cross-fitted by
    cross_fit_link and its values estimated by Monte Carlo: the mean over many seeds matches
    the exact Shapley values of v within a few standard errors."""
    monkeypatch.setattr(L, "EXACT_MAX_PLAYERS", 0)  # force the Monte Carlo values
    n, pairs, K = 6, 8, 4
    b1 = np.array([1.5, -1.0, 0.8, 0.3, -2.0, 1.0])
    b2 = np.array([-0.5, 2.0, 0.1, -1.2, 0.7, 0.4])

    def v(Z):
        Z = np.atleast_2d(Z).astype(float)
        return (0.6 * expit(-0.5 + Z @ b1) + 0.4 * expit(0.8 + Z @ b2))[:, None]

    exact = brute_values(lambda z: v(z)[0], n)
    v0 = v(np.zeros(n))[0]
    runs = []
    for seed in range(150):
        rng = np.random.default_rng(seed)
        perms = np.argsort(rng.random((pairs, n)), axis=1)
        perms = np.concatenate([perms, perms[:, ::-1]])  # antithetic pairs
        pair_fold = rng.permutation(np.arange(pairs) % K)
        ranks = np.argsort(perms, axis=1)
        # every chain's n + 1 coalitions, the empty and full ones included
        Z = (ranks[:, None, :] < np.arange(n + 1)[None, :, None]).reshape(-1, n)
        fold = np.repeat(np.tile(pair_fold, 2), n + 1)
        y = v(Z) - v0
        pred, phi_f, _, _ = L.cross_fit_link(Z, y, v0, np.ones(len(Z)), fold, rng)
        r = (y - pred).reshape(2 * pairs, n + 1)
        contrib = np.take_along_axis(np.diff(r, axis=1), ranks, axis=1)  # (2 pairs, n)
        runs.append(phi_f[:, 0] + contrib.mean(0))
    runs = np.array(runs)
    se = runs.std(0, ddof=1) / np.sqrt(len(runs))
    assert np.all(np.abs(runs.mean(0) - exact[:, 0]) <= 4.0 * se + 1e-12)
    # the adjustment helps: the spread is well below the values themselves
    assert float(runs.std(0).max()) < 0.5 * float(np.abs(exact).max())


def test_combined_columns_are_the_weighted_mixture(monkeypatch):
    """One surrogate per background row, returned as the game of their weighted mean."""
    rng = np.random.default_rng(6)
    n, m, k = 10, 160, 3
    Z = rng.random((m, n)) < rng.random((m, 1))
    betas = rng.normal(0.0, 1.0, (n, k))
    per_row = lambda Z: expit(Z.astype(float) @ betas + np.array([-1.0, 0.0, 1.0]))  # noqa: E731
    v0 = per_row(np.zeros((1, n), dtype=bool))[0]
    cw = np.array([[0.2], [0.3], [0.5]])
    fold = np.arange(m) % 4
    cols = L.cross_fit_link(Z, per_row(Z) - v0, v0, np.ones(m), fold, rng)
    mixed = L.cross_fit_link(Z, per_row(Z) - v0, v0, np.ones(m), fold, rng, combine=cw)
    assert cols is not None and mixed is not None
    for c, mx in zip(cols[:3], mixed[:3], strict=True):
        np.testing.assert_allclose(c @ cw, mx, atol=1e-12)
    # the Monte Carlo values of the mixture: exactly efficient, near the exact ones
    monkeypatch.setattr(L, "EXACT_MAX_PLAYERS", 0)
    out = L.cross_fit_link(Z, per_row(Z) - v0, v0, np.ones(m), fold, rng, combine=cw)
    assert out is not None
    _, phi, ends, var = out
    np.testing.assert_allclose(phi.sum(0), ends[1] - ends[0], rtol=0, atol=1e-12)
    assert np.all(np.abs(phi - mixed[1]) <= 5.0 * np.sqrt(var) + 1e-12)


@pytest.mark.parametrize("scale", [1.0, 400.0])
def test_exact_values_of_a_mixture_of_many_columns(scale):
    """Several columns reduced by ``mix`` in one enumeration (odd n: unequal halves), against
    brute force on the mixture game; ``scale`` 400 takes the plain-sigmoid path."""
    rng = np.random.default_rng(3)
    n, k = 5, 6
    a = rng.normal(0.0, 1.0, k) * scale
    beta = rng.normal(0.0, 1.0, (n, k)) * scale
    mix = rng.random((k, 2))
    exact = brute_values(lambda z: expit(a + z.astype(float) @ beta) @ mix, n)
    np.testing.assert_allclose(L.link_values_exact(a, beta, "shapley", mix), exact, atol=1e-12)


def test_batched_fit_is_stationary_for_every_column():
    """Every column of one batched fit (a flat one, a noisy one, a near-step one) solves its
    own penalised likelihood equations: X' W (t - mu) = ridge * beta, intercept unpenalised."""
    rng = np.random.default_rng(4)
    n, m, ridge = 6, 400, 1e-3
    Z = rng.random((m, n)) < 0.5
    t = np.stack(
        [
            np.full(m, 0.3),
            np.clip(expit(Z @ rng.normal(0.0, 1.0, n) - 1.0) + rng.normal(0, 0.1, m), 0, 1),
            expit(8.0 * (Z[:, 0].astype(float) - 0.5) + Z @ rng.normal(0.0, 0.3, n)),
        ],
        axis=1,
    )
    w = rng.random(m)
    a, beta = L.fit_link(Z, t, w, ridge=ridge)
    assert np.allclose(beta[:, 0], 0.0) and np.isclose(expit(a[0]), 0.3)
    X = np.concatenate([np.ones((m, 1)), Z.astype(float)], axis=1)
    for c in (1, 2):
        mu = expit(X @ np.concatenate([[a[c]], beta[:, c]]))
        grad = X.T @ (w / w.sum() * (t[:, c] - mu))
        np.testing.assert_allclose(grad, np.concatenate([[0.0], ridge * beta[:, c]]), atol=1e-10)


def test_cross_fit_held_out_prediction_ignores_its_own_value():
    # all folds are fitted in one batched Newton run stopped early: a coalition's held-out
    # prediction must still not move when its own value changes (cross-fitting)
    rng = np.random.default_rng(5)
    n, m = 8, 160
    b1 = rng.normal(0.0, 1.5, n)
    Z = rng.random((m, n)) < 0.5
    y = expit(-0.3 + Z @ b1)[:, None]
    fold = np.arange(m) % 3
    pred = L.cross_fit_link(Z, y - 0.4, np.array([0.4]), np.ones(m), fold, rng)[0]
    y2 = y.copy()
    y2[7] = 0.999 - y2[7]
    pred2 = L.cross_fit_link(Z, y2 - 0.4, np.array([0.4]), np.ones(m), fold, rng)[0]
    assert pred2[7, 0] == pytest.approx(pred[7, 0], abs=1e-13)
    assert np.abs(pred2 - pred)[fold != fold[7]].max() > 1e-4
