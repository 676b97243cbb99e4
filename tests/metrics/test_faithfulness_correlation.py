"""Faithfulness correlation (Bhatt et al. 2020) against Quantus with the same subsets, a
closed form for additive models, and good-vs-random ranking."""

from __future__ import annotations

import numpy as np
import pytest
from scipy.stats import pearsonr

import whybox as wb
from tests.oracles import import_without_torchvision
from whybox import metrics
from whybox.errors import InvalidParameterError


def _quantus_draws(seed, n_runs, n, p, size):
    """The subsets Quantus draws: per run, per row, np.random.choice without replacement."""
    np.random.seed(seed)  # noqa: NPY002 - Quantus draws from numpy's global generator
    idx = np.stack(
        [
            np.stack([np.random.choice(p, size, replace=False) for _ in range(n)])  # noqa: NPY002
            for _ in range(n_runs)
        ]
    )
    return idx.transpose(1, 0, 2)  # (n, n_runs, size)


def test_matches_quantus_with_the_same_subsets(torch_case):
    quantus = import_without_torchvision("quantus")
    model, X, A = torch_case
    n, p = X.shape
    y = np.ones(n, dtype=int)
    np.random.seed(7)  # noqa: NPY002
    ref = quantus.FaithfulnessCorrelation(
        nr_runs=30,
        subset_size=2,
        perturb_baseline=0.0,
        abs=False,
        normalise=False,
        return_aggregate=False,
        disable_warnings=True,
    )(model=model, x_batch=X[:, None, :], y_batch=y, a_batch=A[:, None, :], device="cpu")
    subsets = _quantus_draws(7, 30, n, p, 2)
    ours = metrics.faithfulness_correlation(
        A, model, X, background=wb.Baseline(0.0), target=1, subsets=subsets
    )
    np.testing.assert_allclose(ours, ref, atol=1e-5)
    # the same subsets as a boolean mask
    mask = np.zeros((n, 30, p), dtype=bool)
    np.put_along_axis(mask, subsets, True, axis=2)
    same = metrics.faithfulness_correlation(
        A, model, X, background=wb.Baseline(0.0), target=1, subsets=mask
    )
    np.testing.assert_array_equal(same, ours)


def test_hand_computation_with_background(linear_case):
    model, rows, bg, _, rnd = linear_case
    x = rows.to_numpy()
    mu = bg.to_numpy().mean(axis=0)
    rng = np.random.default_rng(3)
    subsets = np.stack([np.stack([rng.permutation(6)[:2] for _ in range(20)]) for _ in range(30)])
    got = metrics.faithfulness_correlation(rnd, model, rows, background=bg, subsets=subsets)
    for i in (0, 7, 29):
        drops = [(model.coef_[s] * (x[i, s] - mu[s])).sum() for s in subsets[i]]
        sums = [rnd.values[i, s].sum() for s in subsets[i]]
        assert got[i] == pytest.approx(pearsonr(sums, drops)[0], abs=1e-12)


def test_exact_shapley_is_perfect_and_beats_random(linear_case):
    model, rows, bg, exp, rnd = linear_case
    good = metrics.faithfulness_correlation(exp, model, rows, background=bg, random_state=0)
    bad = metrics.faithfulness_correlation(rnd, model, rows, background=bg, random_state=0)
    # additive model, interventional removal: the drop is exactly the sum of the values
    np.testing.assert_allclose(good, 1.0, atol=1e-12)
    assert np.nanmean(bad) < 0.5


def test_seeded_and_batch_independent(linear_case):
    model, rows, bg, _, rnd = linear_case
    a = metrics.faithfulness_correlation(rnd, model, rows, background=bg, random_state=4)
    b = metrics.faithfulness_correlation(rnd, model, rows, background=bg, random_state=4)
    c = metrics.faithfulness_correlation(rnd, model, rows, background=bg, random_state=5)
    part = metrics.faithfulness_correlation(
        rnd[10:12], model, rows.iloc[10:12], background=bg, random_state=4
    )
    np.testing.assert_array_equal(a, b)
    # the model (LinearRegression, BLAS) sees other batch shapes: equal to rounding
    np.testing.assert_allclose(a[10:12], part, rtol=0, atol=1e-12)
    assert not np.allclose(a, c)


def test_errors(linear_case):
    model, rows, bg, exp, _ = linear_case
    with pytest.raises(InvalidParameterError, match="subset_size must be at most 5"):
        metrics.faithfulness_correlation(exp, model, rows, background=bg, subset_size=6)
    with pytest.raises(InvalidParameterError, match="n_samples must be at least 2"):
        metrics.faithfulness_correlation(exp, model, rows, background=bg, n_samples=1)
    with pytest.raises(InvalidParameterError, match=r"player indices of shape \(30, n_samples"):
        metrics.faithfulness_correlation(exp, model, rows, background=bg, subsets=np.zeros((2, 3)))
    with pytest.raises(InvalidParameterError, match=r"outside 0\.\.5"):
        metrics.faithfulness_correlation(
            exp, model, rows, background=bg, subsets=np.full((30, 4, 2), 6)
        )
    one = rows[["a"]]
    with pytest.raises(InvalidParameterError, match="at least two features"):
        metrics.faithfulness_correlation(
            exp.values[:, :1], lambda Z: np.asarray(Z).sum(axis=1), one, background=0.0
        )


def test_misaligned_attributions_fail_the_check(linear_case):
    """The exact-equals-1 check can fail: the right values on the wrong rows score low."""
    model, rows, bg, exp, _ = linear_case
    shifted = np.roll(exp.values, 1, axis=0)
    got = metrics.faithfulness_correlation(shifted, model, rows, background=bg)
    assert np.nanmean(got) < 0.9
