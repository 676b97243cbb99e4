"""The ContextCite surrogate: its weights equal a direct scikit-learn Lasso fit written here
on the same masks, the logit-probability transform equals the closed form, the LDS equals a
Spearman correlation computed here by ranking."""

from __future__ import annotations

import numpy as np
import pytest
from sklearn.linear_model import Lasso
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler

from whybox.errors import InvalidInputError
from whybox.games.documents import DocumentGame
from whybox.text.contextcite import (
    ablation_masks,
    context_cite,
    fit_surrogate,
    linear_datamodeling_score,
    logit_probability,
)

N = 7
DOCS = [f"source {j}" for j in range(N)]
W = np.array([1.5, -0.4, 0.0, 0.8, 0.2, -1.0, 0.05])


def score(query, documents, answer):
    x = np.array([d in documents for d in DOCS], dtype=float)
    z = -0.5 + W @ x + 0.7 * x[0] * x[3]
    return float(-np.log1p(np.exp(-z)))  # log sigmoid: a log-probability


def test_logit_probability_closed_form():
    p = np.array([1e-12, 1e-3, 0.2, 0.5, 0.9, 1 - 1e-9])
    np.testing.assert_allclose(logit_probability(np.log(p)), np.log(p) - np.log1p(-p), rtol=1e-9)
    assert logit_probability(0.0) == np.inf
    with pytest.raises(InvalidInputError, match="<= 0"):
        logit_probability([0.5])


def test_weights_equal_a_direct_lasso_fit():
    game = DocumentGame(score, "Q", DOCS, "A")
    rng = np.random.default_rng(3)
    fit = context_cite(game, rng, budget=64, n_output_tokens=4)
    X = fit.masks.astype(float)
    lp = np.array([score("Q", [d for d, k in zip(DOCS, m, strict=True) if k], "A") for m in X])
    y = lp - np.log(-np.expm1(lp))  # log(p / (1 - p))
    np.testing.assert_allclose(fit.outputs, y, rtol=1e-12)
    pipe = make_pipeline(StandardScaler(), Lasso(alpha=0.01, random_state=0))
    pipe.fit(X, y / 4)
    sc, la = pipe[0], pipe[1]
    w = 4 * la.coef_ / sc.scale_
    b = 4 * (la.intercept_ - (sc.mean_ / sc.scale_) @ la.coef_)
    np.testing.assert_allclose(fit.weights, w, rtol=1e-9, atol=1e-12)
    assert fit.bias == pytest.approx(b, rel=1e-9)
    assert game.llm_calls == len(np.unique(X, axis=0))
    # alpha=0: ordinary least squares on the 0/1 masks
    w0, b0 = fit_surrogate(fit.masks, y, alpha=0.0)
    A = np.column_stack([X, np.ones(len(X))])
    sol = np.linalg.lstsq(A, y, rcond=None)[0]
    np.testing.assert_allclose(np.append(w0, b0), sol, atol=1e-9)


def _ranks(a: np.ndarray) -> np.ndarray:
    r = np.empty(len(a))
    r[np.argsort(a, kind="stable")] = np.arange(len(a))
    return r


def test_lds_is_spearman_on_held_out_masks():
    game = DocumentGame(score, "Q", DOCS, "A")
    fit = context_cite(game, np.random.default_rng(0), budget=64, holdout=40)
    # the held-out masks are the next draws of the same stream
    rng = np.random.default_rng(0)
    ablation_masks(N, 64, rng)
    H = ablation_masks(N, 40, rng)
    lp = game.value(H)[:, 0]
    y = logit_probability(lp)
    pred = H @ fit.weights + fit.bias
    from scipy.stats import rankdata  # mean ranks of ties (repeated masks)

    ra, rb = rankdata(pred), rankdata(y)
    expected = np.corrcoef(ra, rb)[0, 1]
    assert fit.lds == pytest.approx(expected, rel=1e-12)
    assert linear_datamodeling_score(fit.weights, fit.bias, H, y) == pytest.approx(expected)
    assert fit.lds > 0.8
    # without ties the rank correlation is Pearson of ordinal ranks
    u = np.unique(H, axis=0, return_index=True)[1]
    pu, yu = pred[u], y[u]
    if len(np.unique(pu)) == len(pu):
        direct = np.corrcoef(_ranks(pu), _ranks(yu))[0, 1]
        assert linear_datamodeling_score(fit.weights, fit.bias, H[u], yu) == pytest.approx(direct)
