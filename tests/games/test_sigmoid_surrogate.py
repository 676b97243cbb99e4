"""KernelShap's sigmoid (link) surrogate, wired through the game's per-background outputs.

Oracles: ExactShap (enumeration) for the values, the game's own weighted mean for the
per-background outputs, and the efficiency identity.
"""

from __future__ import annotations

import numpy as np
import pytest

import whybox as wb


def _logistic(p: int = 9, seed: int = 0):
    rng = np.random.default_rng(seed)
    w = rng.normal(size=p)
    X = rng.normal(size=(40, p))

    def f(A):
        return 1.0 / (1.0 + np.exp(-(np.asarray(A) @ w + 0.3)))

    return f, X[:6], X[6:9]


def test_per_background_outputs_average_to_the_game_value():
    f, bg, X = _logistic()
    game = wb.TabularGame(f, X[0], wb.Independent(bg))
    game.keep_background = True
    Z = np.random.default_rng(1).random((20, 9)) < 0.5
    v = game.value(Z)
    Yb = game.values_by_background(Z)
    assert Yb.shape == (20, 6, 1)
    np.testing.assert_allclose(
        np.einsum("mbk,b->mk", Yb, game.masker.weights), v, rtol=0, atol=1e-15
    )
    # a coalition never evaluated is not invented
    fresh = np.zeros((1, 9), dtype=bool)
    fresh[0, :] = True
    fresh[0, 0] = False
    if not (np.packbits(Z, axis=1) == np.packbits(fresh, axis=1)).all(axis=1).any():
        assert game.values_by_background(fresh) is None


def test_sigmoid_surrogate_beats_plain_on_a_logistic_model_and_stays_efficient():
    f, bg, X = _logistic()
    exact = wb.ExactShap(f, background=bg).explain(X).values
    errs = {}
    for sur in ("none", "sigmoid", "auto"):
        e = wb.KernelShap(f, background=bg, surrogate=sur, random_state=0).explain(X, budget=64)
        errs[sur] = float(np.abs(e.values - exact).sum(1).mean())
        # efficiency: values add up to prediction minus base value, to rounding
        gap = e.values.sum(1) + e.base_values.reshape(-1) - f(X)
        assert np.abs(gap).max() < 1e-12
        if sur == "sigmoid":
            assert set(e.meta["surrogate"]) == {"sigmoid"}
    # each background row's column is exactly a sigmoid: the residual is tiny
    assert errs["sigmoid"] < 0.2 * errs["none"]
    assert errs["auto"] < 0.2 * errs["none"]


def test_sigmoid_surrogate_skips_outputs_that_are_not_probabilities():
    rng = np.random.default_rng(2)
    w = rng.normal(size=8)

    def f(A):  # a regression output: the sigmoid does not apply, plain KernelSHAP runs
        return np.tanh(np.asarray(A) @ w) * 3.0

    bg, X = rng.normal(size=(5, 8)), rng.normal(size=(2, 8))
    e = wb.KernelShap(f, background=bg, surrogate="sigmoid", random_state=0)
    plain = wb.KernelShap(f, background=bg, random_state=0)
    a, b = e.explain(X, budget=64), plain.explain(X, budget=64)
    assert set(a.meta["surrogate"]) == {"none"}
    np.testing.assert_array_equal(a.values, b.values)


def test_sigmoid_is_kernelshap_only():
    f, bg, _ = _logistic()
    with pytest.raises(wb.WhyboxError, match=r"surrogate='sigmoid'.*not one of"):
        wb.PermutationShap(f, background=bg, surrogate="sigmoid")
    with pytest.raises(wb.WhyboxError, match="'sigmoid' \\(a sigmoid per background row"):
        wb.KernelShap(f, background=bg, surrogate="logistic")


def test_auto_leaves_the_sigmoid_out_beyond_its_background_cap():
    # more background rows than AUTO_LINK_MAX_COLUMNS: no outputs kept per background row,
    # no sigmoid chosen; the values still add up and stay close to exact
    from whybox.games.kernel import AUTO_LINK_MAX_COLUMNS

    rng = np.random.default_rng(2)
    w = rng.normal(size=9)
    bg = rng.normal(size=(AUTO_LINK_MAX_COLUMNS + 4, 9))
    X = rng.normal(size=(2, 9))

    def f(A):
        return 1.0 / (1.0 + np.exp(-(np.asarray(A) @ w)))

    e = wb.KernelShap(f, background=bg, surrogate="auto", random_state=0)
    e = e.explain(X, budget=128)
    assert "sigmoid" not in set(e.meta["surrogate"])
    gap = e.values.sum(1) + e.base_values.reshape(-1) - f(X)
    assert np.abs(gap).max() < 1e-12
    exact = wb.ExactShap(f, background=bg).explain(X).values
    assert np.abs(e.values - exact).sum(1).mean() < 0.05 * np.abs(exact).sum(1).mean()
