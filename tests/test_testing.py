"""The property suite (whybox.testing) over every Shapley estimator, and its power to fail."""

from __future__ import annotations

import numpy as np
import pytest

from whybox.games.kernel import kernel_shapley
from whybox.games.shapley import exact_shapley, permutation_shapley
from whybox.testing import (
    MobiusGame,
    additive_game,
    check_shapley_estimator,
    pairwise_game,
    random_game,
    unanimity_game,
)


def exact(game, seed):
    phi, _, _ = exact_shapley(game)
    return phi, None


def permutation(game, seed):
    phi, std, _, _ = permutation_shapley(game, np.random.default_rng(seed), budget=400)
    return phi, std


def kernel(game, seed):
    phi, std, _, _ = kernel_shapley(game, np.random.default_rng(seed), budget=120)
    return phi, std


def kernel_control_variate(game, seed):
    # n = 10, budget 600: sizes 1-3 and 7-9 enumerated, a cubic control variate, 4-6 sampled
    phi, std, _, info = kernel_shapley(game, np.random.default_rng(seed), budget=600)
    assert info["control_variate_order"] == 3
    return phi, std


def test_closed_forms_of_the_games():
    n = 5
    # by hand: v({0, 1}) for a pairwise game
    g = pairwise_game([1.0, 2.0, 0, 0, 0], np.triu(np.full((n, n), 0.5), 1))
    assert g.value(np.array([[1, 1, 0, 0, 0]], dtype=bool))[0, 0] == 3.5
    # each player is in 4 pairs of worth 0.5, half of each: a + 4 * 0.25
    np.testing.assert_allclose(g.shapley()[:, 0], [1 + 1.0, 2 + 1.0, 1.0, 1.0, 1.0])
    np.testing.assert_allclose(unanimity_game(n, (1, 4), 3.0).shapley()[:, 0], [0, 1.5, 0, 0, 1.5])
    np.testing.assert_allclose(additive_game([1.0, -2.0]).shapley()[:, 0], [1.0, -2.0])
    r = random_game(6, random_state=0, dummy=(5,), symmetric=(0, 1))
    phi, _, _ = exact_shapley(r)  # independent check of the closed form by enumeration
    np.testing.assert_allclose(phi, r.shapley(), atol=1e-12)
    assert abs(phi[5, 0]) < 1e-12 and abs(phi[0, 0] - phi[1, 0]) < 1e-12


@pytest.mark.parametrize(
    ("estimator", "is_exact", "n"),
    [
        (exact, True, 8),
        (permutation, False, 8),
        (kernel, False, 8),
        (kernel_control_variate, False, 10),
    ],
)
def test_every_estimator_passes_the_suite(estimator, is_exact, n):
    report = check_shapley_estimator(estimator, exact=is_exact, n_players=n, n_seeds=60)
    if not is_exact:
        assert 0.90 <= report["coverage"] <= 0.99


def test_sampled_estimators_are_exactly_linear_for_a_fixed_seed():
    # the same coalitions are drawn whatever the game, and both estimators are linear in v
    for n, est in ((8, permutation), (8, kernel), (10, kernel_control_variate)):
        u = pairwise_game(np.arange(n, dtype=float), np.triu(np.ones((n, n)), 1))
        v = random_game(n, random_state=3)
        pc, _ = est(u.scaled(2.0) + v, 5)
        pu, _ = est(u, 5)
        pv, _ = est(v, 5)
        np.testing.assert_allclose(pc, 2 * pu + pv, atol=1e-9)


def test_permutation_dummy_is_exactly_zero_and_pairs_are_exact():
    # antithetic pairs resolve pairwise interactions exactly: zero variance, exact values
    n = 7
    g = pairwise_game(np.linspace(-1, 1, n), np.triu(np.full((n, n), 0.3), 1))
    phi, std = permutation(g, 0)
    np.testing.assert_allclose(phi, g.shapley(), atol=1e-12)
    np.testing.assert_allclose(std, 0, atol=1e-12)


class Biased:
    def __call__(self, game, seed):
        phi, std = permutation(game, seed)
        return phi + 0.05, std


def miscalibrated(game, seed):
    phi, std = kernel(game, seed)
    return phi, std * 0.3


def overcautious(game, seed):
    # only the standard errors are wrong (three times too wide): only calibration can see it
    phi, std = kernel(game, seed)
    return phi, std * 3.0


def inefficient_exact(game, seed):
    phi, _ = exact(game, seed)
    return phi * 1.001, None


def nonlinear_exact(game, seed):
    phi, _ = exact(game, seed)
    return np.tanh(phi), None


def ignores_dummy(game, seed):
    phi, std = kernel(game, seed)
    phi = phi.copy()
    phi[-1] += 1.0
    phi[0] -= 1.0
    return phi, std


@pytest.mark.parametrize(
    ("broken", "is_exact", "match"),
    [
        (Biased(), False, "accuracy"),
        (miscalibrated, False, "calibrated|accuracy|dummy|symmetry"),
        (overcautious, False, "not calibrated"),
        (inefficient_exact, True, "accuracy|efficiency"),
        (nonlinear_exact, True, "accuracy"),
        (ignores_dummy, False, "accuracy|dummy"),
    ],
)
def test_broken_estimators_fail_the_suite(broken, is_exact, match):
    with pytest.raises(AssertionError, match=match):
        check_shapley_estimator(broken, exact=is_exact, n_seeds=60)


def test_mobius_game_counts_and_adds():
    g = MobiusGame(3, {(0,): 1.0, (0, 2): 2.0}) + MobiusGame(3, {(1,): 3.0})
    v = g.value(np.array([[1, 1, 1], [1, 0, 1], [0, 1, 0]], dtype=bool))[:, 0]
    np.testing.assert_allclose(v, [6.0, 3.0, 3.0])
