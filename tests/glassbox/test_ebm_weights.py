"""``sample_weight`` of the explainable boosting machines (issue 20, part 3).

Oracles: the unweighted fit (unit weights must give it to the bit), the fit on the rows left
after dropping those of weight zero (to the bit), the fit on repeated rows (integer weights;
to rounding without a validation split, approximately with one), and the closed form of one
unshrunk round with a leaf per bin (the weighted mean of y per value, by numpy).
"""

from __future__ import annotations

import numpy as np
import pytest

import whybox as wb
from whybox.glassbox import ExplainableBoostingClassifier, ExplainableBoostingRegressor

SMALL = dict(outer_bags=3, max_rounds=150, early_stopping_rounds=20, interactions=2, n_jobs=1)


def _data(n=300, seed=0, classify=True):
    rng = np.random.default_rng(seed)
    X = rng.integers(0, 12, size=(n, 4)).astype(float)  # few values: the same bins repeated
    f = np.sin(X[:, 0] / 2) + 0.3 * X[:, 1] - 0.2 * X[:, 2] * (X[:, 3] > 5)
    if classify:
        y = (f + rng.normal(scale=0.7, size=n) > f.mean()).astype(int)
    else:
        y = f + rng.normal(scale=0.3, size=n)
    return X, y


def _same_model(a, b):
    assert a.intercept_ == b.intercept_
    assert a.term_names_ == b.term_names_
    for s, t in zip(a.term_scores_, b.term_scores_, strict=True):
        np.testing.assert_array_equal(s, t)


@pytest.mark.parametrize("cls", [ExplainableBoostingClassifier, ExplainableBoostingRegressor])
def test_unit_weights_give_the_unweighted_model_bit_for_bit(cls):
    X, y = _data(classify=cls is ExplainableBoostingClassifier)
    plain = cls(**SMALL).fit(X, y)
    ones = cls(**SMALL).fit(X, y, sample_weight=np.ones(len(y)))
    _same_model(plain, ones)
    # and the weights are read: other weights give another model
    other = cls(**SMALL).fit(X, y, sample_weight=np.linspace(0.5, 2.0, len(y)))
    assert other.intercept_ != plain.intercept_


@pytest.mark.parametrize("cls", [ExplainableBoostingClassifier, ExplainableBoostingRegressor])
def test_zero_weights_drop_rows(cls):
    X, y = _data(classify=cls is ExplainableBoostingClassifier)
    w = np.ones(len(y))
    w[::4] = 0.0
    weighted = cls(**SMALL).fit(X, y, sample_weight=w)
    dropped = cls(**SMALL).fit(X[w > 0], y[w > 0])
    _same_model(weighted, dropped)


@pytest.mark.parametrize("cls", [ExplainableBoostingClassifier, ExplainableBoostingRegressor])
def test_integer_weights_equal_repeated_rows_without_a_validation_split(cls):
    # no validation split and one bag: rows and their copies see the same bins, counts and
    # random cuts, so the models differ only by the order of the histogram sums
    X, y = _data(classify=cls is ExplainableBoostingClassifier)
    w = np.random.default_rng(1).integers(1, 4, size=len(y))
    kw = dict(outer_bags=1, validation_size=0, max_rounds=100, interactions=2, n_jobs=1)
    weighted = cls(**kw).fit(X, y, sample_weight=w)
    repeated = cls(**kw).fit(np.repeat(X, w, axis=0), np.repeat(y, w))
    assert weighted.term_names_ == repeated.term_names_
    Xt, _ = _data(n=200, seed=5)
    got = weighted.explain_local(Xt).predictions
    want = repeated.explain_local(Xt).predictions
    np.testing.assert_allclose(got, want, rtol=0, atol=1e-9)


def test_integer_weights_approximate_repeated_rows_with_bagging():
    # with validation splits the bags split rows, not copies: close, not equal. (With early
    # stopping a repeated-rows fit is no reference: copies of training rows land in the
    # validation rows and it never stops; so a fixed number of rounds here.) Stated
    # tolerance: mean |probability difference| <= 0.02 on held-out rows, and closer to the
    # repeated-rows fit than the unweighted fit is (measured: 0.017 against 0.029)
    X, y = _data(n=600, seed=2)
    w = np.random.default_rng(3).integers(1, 5, size=len(y))
    kw = dict(outer_bags=6, interactions=2, early_stopping_rounds=0, max_rounds=300, n_jobs=1)
    weighted = ExplainableBoostingClassifier(**kw).fit(X, y, sample_weight=w)
    repeated = ExplainableBoostingClassifier(**kw).fit(np.repeat(X, w, axis=0), np.repeat(y, w))
    plain = ExplainableBoostingClassifier(**kw).fit(X, y)
    Xt, _ = _data(n=400, seed=7)
    p_rep = repeated.predict_proba(Xt)[:, 1]
    d_w = np.abs(weighted.predict_proba(Xt)[:, 1] - p_rep).mean()
    d_plain = np.abs(plain.predict_proba(Xt)[:, 1] - p_rep).mean()
    assert d_w <= 0.02
    assert d_w < 0.75 * d_plain


def test_one_exact_round_gives_the_weighted_mean_per_value():
    # one unshrunk round, every bin its own leaf: the prediction at each value is the
    # weighted mean of y there (closed form by numpy)
    rng = np.random.default_rng(4)
    x = rng.integers(0, 8, size=400)
    y = x * 0.5 + rng.normal(size=400)
    w = rng.uniform(0.1, 3.0, size=400)
    exact = dict(outer_bags=1, validation_size=0, learning_rate=1.0, max_rounds=1,
                 smoothing_rounds=0, interactions=0, min_samples_leaf=1, min_hessian=0.0,
                 max_leaves=64, n_jobs=1)  # fmt: skip
    m = ExplainableBoostingRegressor(**exact).fit(x[:, None], y, sample_weight=w)
    want = np.bincount(x, weights=w * y) / np.bincount(x, weights=w)
    np.testing.assert_allclose(m.predict(np.arange(8.0)[:, None]), want, rtol=1e-12, atol=1e-12)
    # the term is centred: weighted mean zero, the weighted mean of y in the intercept
    assert m.intercept_ == pytest.approx(np.average(y, weights=w), abs=1e-12)
    # bin weights are the weighted counts
    np.testing.assert_allclose(m.bin_weights_[0][1:9], np.bincount(x, weights=w), rtol=1e-12)


@pytest.mark.parametrize(
    ("weights", "match"),
    [
        (lambda n: -np.ones(n), "negative.*>= 0"),
        (lambda n: np.r_[np.nan, np.ones(n - 1)], "NaN or infinite.*weight 0"),
        (lambda n: np.ones(n - 1), "one weight per row"),
        (lambda n: np.ones((n, 2)), "one weight per row"),
        (lambda n: np.zeros(n), "zero for every row"),
        (lambda n: ["a"] * n, "could not be read as numbers"),
    ],
)
@pytest.mark.parametrize("cls", [ExplainableBoostingClassifier, ExplainableBoostingRegressor])
def test_bad_weights_are_refused_saying_what_to_do(cls, weights, match):
    X, y = _data(n=40, classify=cls is ExplainableBoostingClassifier)
    with pytest.raises(wb.WhyboxError, match=match):
        cls(**SMALL).fit(X, y, sample_weight=weights(len(y)))
