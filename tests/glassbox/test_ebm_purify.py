"""Purified pair terms (Lengerich et al. 2020) and term importances (issue 20, part 3).

Oracles: interpret's ``interpret.utils.purify`` (the pure part of a pair tensor), the model
fitted without purification (predictions must not change), interpret's ``term_importances()``
on its own fitted shapes (the same "avg_weight" formula), and the definition of purity.
"""

from __future__ import annotations

import warnings

import numpy as np
import pandas as pd
import pytest

import whybox.glassbox.gam as gam
from whybox.glassbox import ExplainableBoostingClassifier, ExplainableBoostingRegressor
from whybox.glassbox._ebm_binning import fit_feature_bins
from whybox.glassbox._ebm_purify import main_to_interaction_bins, purify_pair
from whybox.glassbox._ebm_terms import avg_weight_importance

SMALL = dict(outer_bags=3, max_rounds=150, early_stopping_rounds=20, interactions=3, n_jobs=1)


def _data(kind, n=500, seed=0):
    rng = np.random.default_rng(seed)
    X = rng.normal(size=(n, 4))
    X[:, 3] = np.round(X[:, 3] * 2)  # few values
    X[rng.random(n) < 0.05, 1] = np.nan  # a missing bin
    f = X[:, 0] * np.nan_to_num(X[:, 1]) + np.sin(X[:, 2]) + 0.5 * X[:, 3] * (X[:, 0] > 0)
    if kind == "regression":
        return X, f + rng.normal(scale=0.3, size=n)
    if kind == "binary":
        return X, (f + rng.logistic(size=n) > 0).astype(int)
    s = np.column_stack([f, -f, X[:, 2] * X[:, 3]])
    return X, np.argmax(s + rng.gumbel(size=s.shape), axis=1)


MODELS = {
    "regression": ExplainableBoostingRegressor,
    "binary": ExplainableBoostingClassifier,
    "multiclass": ExplainableBoostingClassifier,
}


def _marginals(scores, w):
    """Weighted row and column means of a pair's scores (a class axis last, if any)."""
    s = scores if scores.ndim == 3 else scores[..., None]
    wr = np.where(w.sum(1) > 0, w.sum(1), 1.0)[:, None]
    wc = np.where(w.sum(0) > 0, w.sum(0), 1.0)[:, None]
    return np.einsum("abk,ab->ak", s, w) / wr, np.einsum("abk,ab->bk", s, w) / wc


@pytest.mark.parametrize("kind", list(MODELS))
def test_pairs_are_pure_and_predictions_unchanged(kind, monkeypatch):
    X, y = _data(kind)
    m = MODELS[kind](**SMALL).fit(X, y)
    pairs = [t for t, f in enumerate(m.term_features_) if len(f) == 2]
    assert pairs
    for t in pairs:
        rows, cols = _marginals(m.term_scores_[t], m.bin_weights_[t])
        assert np.abs(rows).max() <= 1e-10 and np.abs(cols).max() <= 1e-10
        # every bag too
        for b in range(m.bagged_scores_[t].shape[0]):
            rows, cols = _marginals(m.bagged_scores_[t][b], m.bin_weights_[t])
            assert np.abs(rows).max() <= 1e-10 and np.abs(cols).max() <= 1e-10
    # main terms keep weighted mean zero
    for t in range(len(m.bins_)):
        w = m.bin_weights_[t]
        mean = np.tensordot(m.term_scores_[t], w, axes=([0], [0])) / w.sum()
        assert np.abs(mean).max() <= 1e-10
    # the same fit without purification: the same predictions, on training rows and on new
    # rows (with missing values and values outside the training range)
    monkeypatch.setattr(gam, "purify_terms", lambda f, specs: f)
    raw = MODELS[kind](**SMALL).fit(X, y)
    X_new, _ = _data(kind, n=300, seed=9)
    X_new[:5] *= 10
    for Z in (X, X_new):
        f_pure = m.decision_function(Z) if kind != "regression" else m.predict(Z)
        f_raw = raw.decision_function(Z) if kind != "regression" else raw.predict(Z)
        np.testing.assert_allclose(f_pure, f_raw, rtol=0, atol=1e-10)
    # and purification moved something: the raw pairs were not pure
    rows, _ = _marginals(raw.term_scores_[pairs[0]], raw.bin_weights_[pairs[0]])
    assert np.abs(rows).max() > 1e-6


@pytest.mark.parametrize("multiclass", [False, True])
def test_pure_part_matches_interpret_purify(multiclass):
    interpret_utils = pytest.importorskip("interpret.utils")
    rng = np.random.default_rng(3)
    W = rng.integers(0, 5, size=(6, 7)).astype(float)
    W[2] = 0.0  # an empty row
    S = rng.normal(size=(6, 7, 3) if multiclass else (6, 7))
    pure, row, col = purify_pair(S, W, multiclass=multiclass)
    # the moved functions add back up to the input
    np.testing.assert_allclose(pure + row[:, None] + col[None, :], S, atol=1e-12)
    ref, _impurities, _icpt = interpret_utils.purify(S, W, is_randomized=False)
    ref = np.asarray(ref)
    if multiclass:  # interpret also makes the class scores sum to zero (a softmax no-op)
        pure = pure - pure.mean(axis=-1, keepdims=True)
    seen = (W.sum(1) > 0)[:, None] & (W.sum(0) > 0)[None, :]
    np.testing.assert_allclose(pure[seen], ref[seen], atol=1e-9)


def test_interaction_cuts_are_main_cuts_and_main_bins_map_into_them():
    x = np.random.default_rng(0).normal(size=5000)  # more distinct values than main bins
    spec = fit_feature_bins(x, "x", categorical=False, max_bins=256, max_interaction_bins=32)
    assert np.isin(spec.interaction_cuts, spec.cuts).all()
    z = np.random.default_rng(1).normal(size=20000) * 1.5
    main = np.searchsorted(spec.cuts, z, side="right") + 1
    inter = np.searchsorted(spec.interaction_cuts, z, side="right") + 1
    np.testing.assert_array_equal(main_to_interaction_bins(spec)[main], inter)


def test_term_importances_formula_matches_interpret_on_its_own_shapes():
    # interpret's term_importances() of its own fitted multiclass model (pairs, class axis)
    interpret = pytest.importorskip("interpret.glassbox")
    X, y = _data("multiclass", n=300)
    ref = interpret.ExplainableBoostingClassifier(
        outer_bags=1, interactions=2, max_rounds=100, n_jobs=1
    )
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # interpret: multiclass pairs are not plotted
        ref.fit(pd.DataFrame(X), y)
    pairs = zip(ref.term_scores_, ref.bin_weights_, strict=True)
    ours = [avg_weight_importance(s, w) for s, w in pairs]
    np.testing.assert_allclose(ours, ref.term_importances(), rtol=1e-12)


def test_term_importances_rank_the_main_terms_like_interpret():
    interpret = pytest.importorskip("interpret.glassbox")
    X, y = _data("binary", n=800)
    kw = dict(outer_bags=2, interactions=0, n_jobs=1)
    ours = ExplainableBoostingClassifier(**kw).fit(X, y).term_importances()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # interpret: missing values are not plotted
        ref = interpret.ExplainableBoostingClassifier(**kw).fit(X, y)
    want = ref.term_importances()
    pairs = zip(ref.term_scores_, ref.bin_weights_, strict=True)
    np.testing.assert_allclose([avg_weight_importance(s, w) for s, w in pairs], want, rtol=1e-12)
    # different fits, the same picture: the two strong terms first, in the same order, and
    # the importances proportional (measured: correlation 0.99)
    assert list(np.argsort(-ours)[:2]) == list(np.argsort(-want)[:2])
    assert np.corrcoef(ours, want)[0, 1] >= 0.95
