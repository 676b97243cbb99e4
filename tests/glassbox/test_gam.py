"""ExplainableBoosting*: scikit-learn conformance, closed forms of the boosting steps, exact
explanations, bad input.

Oracles: scikit-learn's estimator checks and DecisionTreeRegressor (one boosting step with two
leaves is a depth-1 tree), group means (one unshrunk round with enough leaves), the geometric
shrinkage of the learning rate, the Newton step of the log-loss, and hand lookups of the
fitted tables.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from sklearn.tree import DecisionTreeRegressor
from sklearn.utils.estimator_checks import parametrize_with_checks

import whybox as wb
from whybox.errors import InvalidInputError, InvalidParameterError
from whybox.glassbox import ExplainableBoostingClassifier, ExplainableBoostingRegressor
from whybox.glassbox._ebm_binning import quantile_cuts

SMALL = dict(
    outer_bags=2,
    max_rounds=20,
    early_stopping_rounds=5,
    smoothing_rounds=2,
    interaction_smoothing_rounds=2,
    interactions=2,
    n_jobs=1,
)
# one unshrunk round, every bin its own leaf, no bagging: the closed forms below
EXACT = dict(
    outer_bags=1,
    validation_size=0,
    learning_rate=1.0,
    max_rounds=1,
    smoothing_rounds=0,
    interaction_smoothing_rounds=0,
    interactions=0,
    min_samples_leaf=1,
    min_hessian=0.0,
    max_leaves=64,
    n_jobs=1,
)


#: integer weights approximate repeated rows only: the bags' train / validation splits and the
#: quantile bins see each row once (test_ebm_weights.py bounds the difference and checks the
#: exact cases: unit weights, zero weights, no validation split)
WEIGHT_CHECKS = {
    "check_sample_weight_equivalence_on_dense_data": "weights approximate repetition",
    "check_sample_weight_equivalence_on_sparse_data": "weights approximate repetition",
}

#: these checks fit on y = X[:, 0].astype(int): several classes of a single row, which the
#: multiclass EBM refuses on purpose (issue 20, Bad input; test_ebm_multiclass.py)
ONE_ROW_CLASS_CHECKS = dict.fromkeys(
    [
        "check_dont_overwrite_parameters",
        "check_f_contiguous_array_estimator",
        "check_methods_sample_order_invariance",
        "check_methods_subset_invariance",
        "check_dict_unchanged",
        "check_fit2d_predict1d",
    ],
    "sklearn's target has classes of a single row, refused by the multiclass EBM",
)


@parametrize_with_checks(
    [ExplainableBoostingClassifier(**SMALL), ExplainableBoostingRegressor(**SMALL)],
    expected_failed_checks=lambda est: (
        {**WEIGHT_CHECKS, **ONE_ROW_CLASS_CHECKS}
        if isinstance(est, ExplainableBoostingClassifier)
        else WEIGHT_CHECKS
    ),
)
def test_sklearn_estimator_checks(estimator, check):
    check(estimator)


def test_public_names():
    assert wb.ExplainableBoostingClassifier is ExplainableBoostingClassifier
    assert wb.ExplainableBoostingRegressor is ExplainableBoostingRegressor
    assert wb.glassbox.ExplainableBoostingClassifier is ExplainableBoostingClassifier


# --------------------------------------------------------------------------- binning
def test_cuts_are_midpoints_of_distinct_values():
    x = np.array([3.0, 1.0, 1.0, 2.0, 7.0, np.nan, 2.0])
    np.testing.assert_array_equal(quantile_cuts(x, 10), [1.5, 2.5, 5.0])


def test_quantile_cuts_give_bins_of_about_equal_counts():
    x = np.random.default_rng(0).normal(size=10_000)
    cuts = quantile_cuts(x, 20)
    assert len(cuts) == 19
    counts = np.bincount(np.searchsorted(cuts, x, side="right"), minlength=20)
    assert counts.min() >= 495 and counts.max() <= 505


def test_bins_match_interpret_for_features_with_few_values():
    interpret = pytest.importorskip("interpret.glassbox")
    rng = np.random.default_rng(1)
    X = pd.DataFrame(
        {"k": rng.integers(0, 9, 400), "r": rng.normal(size=400).round(1), "s": rng.random(400)}
    )
    y = (X["k"] + X["r"] > 4).astype(int)
    kw = dict(outer_bags=1, interactions=0, max_rounds=5, max_bins=256)
    ours = ExplainableBoostingClassifier(**kw, n_jobs=1).fit(X, y)
    ref = interpret.ExplainableBoostingClassifier(**kw).fit(X, y)
    for j in range(2):  # k and r have fewer distinct values than bins
        np.testing.assert_allclose(ours.bins_[j].cuts, ref.bins_[j][0], rtol=0, atol=1e-12)
    assert len(ours.bins_[2].cuts) == len(ref.bins_[2][0]) == 253  # max_bins counts 3 extra


# ------------------------------------------------------------------ boosting closed forms
def _one_feature(n=400, seed=0, k=6):
    rng = np.random.default_rng(seed)
    x = rng.integers(0, k, n).astype(float)
    y = np.sin(x) + 0.3 * rng.normal(size=n)
    return x[:, None], y


def test_one_round_with_enough_leaves_gives_group_means():
    X, y = _one_feature()
    m = ExplainableBoostingRegressor(**EXACT).fit(X, y)
    means = pd.Series(y).groupby(X[:, 0]).mean()
    np.testing.assert_allclose(m.predict(X), means.loc[X[:, 0]].to_numpy(), atol=1e-12)
    assert m.intercept_ == pytest.approx(y.mean(), abs=1e-12)  # centred terms


def test_two_leaves_is_a_depth_one_tree():
    rng = np.random.default_rng(2)
    x = rng.normal(size=(300, 1))
    y = np.where(x[:, 0] > 0.4, 2.0, -1.0) + rng.normal(size=300)
    m = ExplainableBoostingRegressor(**{**EXACT, "max_leaves": 2, "min_samples_leaf": 4}).fit(x, y)
    tree = DecisionTreeRegressor(max_depth=1, min_samples_leaf=4).fit(x, y)
    np.testing.assert_allclose(m.predict(x), tree.predict(x), atol=1e-10)


def test_learning_rate_shrinks_geometrically():
    X, y = _one_feature(seed=3)
    lr, rounds = 0.1, 7
    m = ExplainableBoostingRegressor(**{**EXACT, "learning_rate": lr, "max_rounds": rounds})
    m.fit(X, y)
    means = pd.Series(y).groupby(X[:, 0]).mean().loc[X[:, 0]].to_numpy()
    expected = y.mean() + (1 - (1 - lr) ** rounds) * (means - y.mean())
    np.testing.assert_allclose(m.predict(X), expected, atol=1e-12)


def test_classifier_step_is_the_newton_step_of_the_log_loss():
    rng = np.random.default_rng(4)
    x = rng.integers(0, 4, 600).astype(float)
    y = (rng.random(600) < 0.2 + 0.15 * x).astype(int)
    m = ExplainableBoostingClassifier(**EXACT).fit(x[:, None], y)
    p0 = y.mean()
    ybar = pd.Series(y).groupby(x).mean().loc[x].to_numpy()
    expected = np.log(p0 / (1 - p0)) + (ybar - p0) / (p0 * (1 - p0))
    np.testing.assert_allclose(m.decision_function(x[:, None]), expected, atol=1e-10)
    proba = m.predict_proba(x[:, None])
    np.testing.assert_allclose(proba[:, 1], 1 / (1 + np.exp(-expected)), atol=1e-10)
    np.testing.assert_array_equal(m.predict(x[:, None]), (expected > 0).astype(int))


def test_pair_term_fits_cell_means_of_an_interaction():
    rng = np.random.default_rng(5)
    X = rng.integers(0, 2, (800, 2)).astype(float)
    y = 3.0 * (X[:, 0] == X[:, 1]) + 0.1 * rng.normal(size=800)  # XOR: no main effect
    kw = {**EXACT, "max_rounds": 1, "interactions": [(0, 1)], "max_leaves": 2}
    m = ExplainableBoostingRegressor(**kw).fit(X, y)
    cells = pd.Series(y).groupby([X[:, 0], X[:, 1]]).transform("mean").to_numpy()
    np.testing.assert_allclose(m.predict(X), cells, atol=1e-10)
    assert m.term_names_ == ["x0", "x1", "x0 & x1"]


def test_missing_values_get_their_own_bin():
    X, y = _one_feature(seed=6)
    X[::7, 0] = np.nan
    y = y + 5.0 * np.isnan(X[:, 0])
    m = ExplainableBoostingRegressor(**EXACT).fit(X, y)
    miss = np.isnan(X[:, 0])
    np.testing.assert_allclose(m.predict(X)[miss], y[miss].mean(), atol=1e-12)
    # a model fitted without missing values gives a missing value the average (zero) score
    m2 = ExplainableBoostingRegressor(**EXACT).fit(X[~miss], y[~miss])
    assert m2.term_contributions(np.array([[np.nan]]))[0, 0] == 0.0


def test_categorical_columns_unseen_categories_and_declared_categoricals():
    rng = np.random.default_rng(7)
    cat = rng.choice(["red", "green", "blue"], 500)
    effect = pd.Series({"red": 1.0, "green": -2.0, "blue": 0.5})
    y = effect.loc[cat].to_numpy() + 0.2 * rng.normal(size=500)
    means = pd.Series(y).groupby(cat).mean()
    for col in (pd.Categorical(cat), cat.astype(object), pd.array(cat, dtype="string")):
        X = pd.DataFrame({"colour": col})
        m = ExplainableBoostingRegressor(**EXACT).fit(X, y)
        assert m.feature_types_in_ == ["nominal"]
        np.testing.assert_allclose(m.predict(X), means.loc[cat].to_numpy(), atol=1e-12)
        unseen = pd.DataFrame({"colour": pd.Series(["purple"], dtype=X["colour"].dtype)})
        assert m.term_contributions(unseen)[0, 0] == 0.0
    codes = pd.DataFrame({"code": pd.Series(cat).map({"red": 30, "green": 10, "blue": 20})})
    m = ExplainableBoostingRegressor(**EXACT, categorical_features=["code"]).fit(codes, y)
    assert m.bins_[0].categories == ["10", "20", "30"]
    np.testing.assert_allclose(m.predict(codes), means.loc[cat].to_numpy(), atol=1e-12)


# ------------------------------------------------------------------ explanations
@pytest.fixture(scope="module")
def credit_model():
    data = wb.zoo.credit(n=1500, random_state=0)
    kw = dict(outer_bags=3, max_rounds=300, interactions=3, n_jobs=1, random_state=0)
    return ExplainableBoostingClassifier(**kw).fit(data.X, data.y), data


def test_local_explanation_is_exact(credit_model):
    m, data = credit_model
    X = data.X.iloc[:200]
    exp = m.explain_local(X)
    assert exp.values.shape == (200, len(m.term_names_))
    assert exp.feature_names == m.term_names_ and sum(" & " in t for t in m.term_names_) == 3
    assert np.abs(exp.completeness_gap()).max() < 1e-8
    np.testing.assert_allclose(exp.predictions, m.decision_function(X), atol=1e-12)
    p1 = m.predict_proba(X)[:, 1]
    np.testing.assert_allclose(exp.predictions, np.log(p1 / (1 - p1)), atol=1e-8)
    # each value is the term's table entry at the row's bins, looked up by hand here
    j = list(data.X.columns).index("income")
    cuts = m.bins_[j].cuts
    bins = np.searchsorted(cuts, X["income"].to_numpy(), side="right") + 1
    np.testing.assert_array_equal(exp[:, "income"].values[:, 0], m.term_scores_[j][bins])
    j = list(data.X.columns).index("loan_purpose")
    cats = m.bins_[j].categories
    bins = [cats.index(str(v)) + 1 for v in X["loan_purpose"]]
    np.testing.assert_array_equal(exp[:, "loan_purpose"].values[:, 0], m.term_scores_[j][bins])
    a, c = m.term_features_[-1]
    t = len(m.term_names_) - 1
    ba = np.searchsorted(m.bins_[a].interaction_cuts, X.iloc[:, a].to_numpy(float), "right") + 1
    bc = np.searchsorted(m.bins_[c].interaction_cuts, X.iloc[:, c].to_numpy(float), "right") + 1
    if m.bins_[a].kind == "continuous" and m.bins_[c].kind == "continuous":
        np.testing.assert_array_equal(exp.values[:, t], m.term_scores_[t][ba, bc])
    assert exp.params["output"] == "log-odds of class 1"


def test_local_explanation_slices_plots_and_saves(credit_model, tmp_path):
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    m, data = credit_model
    exp = m.explain_local(data.X.iloc[:30])
    pair = m.term_names_[-1]
    sub = exp[:, pair]
    np.testing.assert_array_equal(sub.values[:, 0], exp.values[:, -1])
    assert sub.data[pair].isna().all()
    assert (exp.data["income"] == data.X["income"].iloc[:30]).all()
    plt.close(exp.plot.beeswarm().figure)
    back = wb.load(exp.save(tmp_path / "ebm.whybox"))
    np.testing.assert_array_equal(back.values, exp.values)
    assert back.feature_names == exp.feature_names
    arr = m.explain_local(data.X.iloc[:5].to_numpy(dtype=object))
    np.testing.assert_allclose(arr.values, exp.values[:5], atol=0)


def test_global_explanation_terms_importance_and_error_bars(credit_model):
    m, data = credit_model
    g = m.explain_global()
    assert g.term_names == m.term_names_ and len(g) == len(m.term_names_)
    # importance = mean |contribution| over the training rows
    local = m.explain_local(data.X)
    np.testing.assert_allclose(g.importance().to_numpy(), np.abs(local.values).mean(0), atol=1e-12)
    t = g["income"]
    np.testing.assert_allclose(t.scores, m.bagged_scores_[0].mean(axis=0), atol=1e-12)
    np.testing.assert_allclose(t.std, m.bagged_scores_[0].std(axis=0), atol=1e-12)
    assert t.std[1:-1].max() > 0  # the bags differ
    assert (t.weights.sum(), t.weights[0]) == (len(data.X), 0)  # no missing incomes
    assert g.to_explanation().values.shape == (1, len(g))
    assert g[-1].is_pair and g[-1].scores.ndim == 2
    frame = g["loan_purpose"].to_frame()
    cats = [str(c) for c in data.X["loan_purpose"].cat.categories]
    assert list(frame["bin"]) == ["missing", *cats, "unseen"]
    with pytest.raises(InvalidParameterError, match="unknown term 'nope'"):
        g["nope"]


def test_plots_draw_every_kind_of_term(credit_model):
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    m, _ = credit_model
    g = m.explain_global()
    for name in ("income", "loan_purpose", g.term_names[-1]):
        ax = g.plot(name)
        assert ax.get_title() == name
        plt.close(ax.figure)
    pair = g[g.term_names[-1]]
    assert pair.is_pair
    ax = g.plot(pair.name)
    # a pair's axes are its two features, labelled with their bins (not bin indices)
    assert (ax.get_xlabel(), ax.get_ylabel()) == pair.features
    kept_a = [lab for lab, w in zip(pair.bin_labels[0], pair.weights.sum(1) > 0, strict=True) if w]
    assert ax.get_xticklabels()[0].get_text() == kept_a[0]
    plt.close(ax.figure)


def test_results_do_not_depend_on_n_jobs_and_follow_random_state():
    data = wb.zoo.credit(n=600, random_state=1)
    kw = dict(outer_bags=3, max_rounds=60, interactions=2, random_state=3)
    a = ExplainableBoostingClassifier(**kw, n_jobs=1).fit(data.X, data.y)
    b = ExplainableBoostingClassifier(**kw, n_jobs=3).fit(data.X, data.y)
    c = ExplainableBoostingClassifier(**{**kw, "random_state": 4}, n_jobs=1).fit(data.X, data.y)
    assert a.term_names_ == b.term_names_
    for sa, sb in zip(a.term_scores_, b.term_scores_, strict=True):
        np.testing.assert_array_equal(sa, sb)
    assert not np.array_equal(a.decision_function(data.X), c.decision_function(data.X))


def test_fast_picks_the_true_interaction():
    rng = np.random.default_rng(8)
    X = rng.normal(size=(1500, 5))
    y = X[:, 0] + X[:, 2] + 2.0 * np.sign(X[:, 1]) * np.sign(X[:, 3]) + 0.3 * rng.normal(size=1500)
    kw = dict(outer_bags=2, max_rounds=200, interactions=1, n_jobs=1, learning_rate=0.1)
    m = ExplainableBoostingRegressor(**kw).fit(X, y)
    assert m.term_features_[-1] == (1, 3)


def test_interactions_string_means_a_multiple_of_the_feature_count():
    data = wb.zoo.credit(n=400, random_state=2)
    kw = dict(outer_bags=1, max_rounds=5, early_stopping_rounds=0, n_jobs=1)
    m = ExplainableBoostingClassifier(**kw, interactions="0.5x").fit(data.X, data.y)
    assert len(m.term_names_) == 9 + 5  # ceil(0.5 * 9) pairs
    m = ExplainableBoostingClassifier(**kw, interactions=0.25).fit(data.X, data.y)
    assert len(m.term_names_) == 9 + 3
    assert ExplainableBoostingClassifier().interactions == "3x"
    assert ExplainableBoostingRegressor().interactions == "5x"


# ------------------------------------------------------------------ bad input
@pytest.fixture(scope="module")
def small_fit():
    X = pd.DataFrame({"a": np.arange(40.0), "b": np.tile([0.0, 1.0], 20)})
    y = (X["a"] > 20).astype(int)
    return ExplainableBoostingClassifier(**SMALL).fit(X, y), X, y


def test_one_class_is_refused():
    X = np.arange(20.0).reshape(10, 2)
    with pytest.raises(InvalidInputError, match=r"y has only one class \(\[1\]\); a classifier"):
        ExplainableBoostingClassifier(**SMALL).fit(X, np.ones(10, dtype=int))


def test_multiclass_is_fitted_and_a_class_of_one_row_refused_clearly():
    # multiclass itself: test_ebm_multiclass.py
    X = np.arange(30.0).reshape(15, 2)
    m = ExplainableBoostingClassifier(**SMALL).fit(X, np.arange(15) % 3)
    assert m.predict_proba(X).shape == (15, 3)
    y = np.arange(15) % 2
    y[4] = 2
    with pytest.raises(InvalidInputError, match=r"\[2\] of y have a single row"):
        ExplainableBoostingClassifier(**SMALL).fit(X, y)


def test_missing_values_in_x_are_accepted_infinity_refused(small_fit):
    m, X, y = small_fit
    Xn = X.copy()
    Xn.loc[3, "a"] = np.nan
    ExplainableBoostingClassifier(**SMALL).fit(Xn, y)
    Xi = X.copy()
    Xi.loc[[3, 5], "b"] = np.inf
    with pytest.raises(InvalidInputError, match=r"X contains inf values in 1 column\(s\): b"):
        ExplainableBoostingClassifier(**SMALL).fit(Xi, y)
    with pytest.raises(InvalidInputError, match="Replace infinite values"):
        m.predict(Xi)


def test_bad_targets():
    X = np.arange(20.0).reshape(10, 2)
    with pytest.raises(InvalidInputError, match="y contains 1 NaN or infinite values"):
        ExplainableBoostingRegressor(**SMALL).fit(X, np.r_[np.arange(9.0), np.nan])
    with pytest.raises(InvalidInputError, match="X has 10 rows but y has 9 entries"):
        ExplainableBoostingRegressor(**SMALL).fit(X, np.arange(9.0))
    with pytest.raises(
        InvalidInputError, match=r"Unknown label type.*ExplainableBoostingRegressor"
    ):
        ExplainableBoostingClassifier(**SMALL).fit(X, np.linspace(0, 1, 10))


def test_mismatched_columns_at_predict_time(small_fit):
    m, X, _ = small_fit
    with pytest.raises(InvalidInputError, match="Feature names seen at fit time, yet now missing"):
        m.predict(X[["a"]])
    # columns in another order are matched by name (tests/glassbox/test_ebm_columns.py)
    np.testing.assert_array_equal(m.predict(X[["b", "a"]]), m.predict(X))
    with pytest.raises(InvalidInputError, match=r"X has 3 features, but .* is expecting 2"):
        m.predict(np.zeros((2, 3)))
    with pytest.raises(InvalidInputError, match="sparse matrix; explainable boosting needs dense"):
        import scipy.sparse

        m.predict(scipy.sparse.csr_matrix(np.zeros((2, 2))))


@pytest.mark.parametrize(
    ("params", "message"),
    [
        ({"learning_rate": 0.0}, "learning_rate must be greater than 0.0, got 0.0"),
        ({"max_bins": 2}, "max_bins must be at least 3, got 2"),
        ({"outer_bags": 0}, "outer_bags must be at least 1, got 0"),
        ({"max_leaves": 1}, "max_leaves must be at least 2, got 1"),
        ({"interactions": "many"}, 'a string like "3x"'),
        ({"interactions": -1}, "interactions must be a count >= 0"),
        ({"interactions": [("a", "a")]}, "pairs a feature with itself"),
        ({"interactions": [("a", "zzz")]}, "interactions names feature 'zzz', not in X"),
        ({"validation_size": -0.1}, "validation_size must be a fraction in"),
        ({"validation_size": 2.5}, "it is a count of rows and must be an integer"),
        ({"n_jobs": 0}, "n_jobs must be a positive int, -1"),
        ({"categorical_features": ["q"]}, "categorical_features names feature 'q', not in X"),
        ({"categorical_features": "yes"}, "categorical_features must be 'auto', None"),
        ({"reg_lambda": float("nan")}, "reg_lambda must be a finite number"),
    ],
)
def test_bad_hyper_parameters(small_fit, params, message):
    _, X, y = small_fit
    with pytest.raises(InvalidParameterError, match=message):
        ExplainableBoostingClassifier(**{**SMALL, **params}).fit(X, y)
