"""ExplainableBoosting*: DataFrame columns matched by name, and target= on the EBM's terms.

Oracles: the model's own outputs on the columns in fit order; ``predict_proba`` (the log-odds
of class 0 is ``log(p0 / p1)``, the negated decision function); one-target-at-a-time runs for
per-row targets; scikit-learn's feature-name messages for unseen / missing columns.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from whybox.errors import InvalidInputError, InvalidParameterError
from whybox.glassbox import ExplainableBoostingClassifier, ExplainableBoostingRegressor

SMALL = dict(outer_bags=2, max_rounds=30, early_stopping_rounds=5, interactions=1, n_jobs=1)


@pytest.fixture(scope="module")
def data():
    rng = np.random.default_rng(0)
    X = pd.DataFrame(
        {
            "age": rng.integers(18, 80, 300),
            "income": rng.normal(50, 10, 300),
            "city": pd.Categorical(rng.choice(["a", "b", "c"], 300)),
            "score": rng.random(300),
        }
    )
    logit = 0.05 * (X["age"] - 50) + 0.1 * (X["income"] - 50) + (X["city"] == "b") * 1.0
    y = (logit + rng.logistic(size=300) > 0).astype(int)
    return X, y.to_numpy(), logit.to_numpy()


@pytest.fixture(scope="module")
def clf(data):
    X, y, _ = data
    return ExplainableBoostingClassifier(**SMALL).fit(X, y)


@pytest.fixture(scope="module")
def reg(data):
    X, _, logit = data
    return ExplainableBoostingRegressor(**SMALL).fit(X, logit)


def _shuffled(X):
    return X[["score", "city", "age", "income"]]


@pytest.mark.parametrize("method", ["predict", "predict_proba", "decision_function"])
def test_classifier_reorders_columns_by_name(clf, data, method):
    X = data[0]
    np.testing.assert_array_equal(
        getattr(clf, method)(_shuffled(X)), getattr(clf, method)(X), strict=True
    )


def test_regressor_reorders_columns_by_name(reg, data):
    X = data[0]
    np.testing.assert_array_equal(reg.predict(_shuffled(X)), reg.predict(X))
    e = reg.explain_local(_shuffled(X).iloc[:20])
    np.testing.assert_allclose(e.predictions, reg.predict(X.iloc[:20]), rtol=0, atol=1e-12)


def test_explain_local_on_reordered_columns_equals_fit_order(clf, data):
    X = data[0]
    shuffled = _shuffled(X).iloc[:30]
    a, b = clf.explain_local(X.iloc[:30]), clf.explain_local(shuffled)
    # values per name equal the fit-order run, returned in the caller's column order (the
    # main terms; pair terms stay last), as every whybox explainer returns them
    n_main = X.shape[1]
    assert b.feature_names[:n_main] == list(shuffled.columns)
    assert sorted(b.feature_names) == sorted(a.feature_names)
    assert list(b.data.columns[:n_main]) == list(shuffled.columns)
    for name in a.feature_names:
        np.testing.assert_array_equal(
            b.values[:, b.feature_names.index(name)], a.values[:, a.feature_names.index(name)]
        )
    np.testing.assert_allclose(b.predictions, clf.decision_function(X.iloc[:30]), atol=1e-12)


def test_unseen_missing_and_duplicated_columns_are_refused(clf, data):
    X = data[0]
    with pytest.raises(InvalidInputError, match="Feature names unseen at fit time"):
        clf.predict(X.rename(columns={"age": "years"}))
    with pytest.raises(InvalidInputError, match="Feature names seen at fit time, yet now missing"):
        clf.predict(X.drop(columns="score"))
    dup = X.copy()
    dup.columns = ["age", "income", "city", "age"]
    with pytest.raises(InvalidInputError, match=r"duplicated column names: \['age'\]"):
        clf.predict_proba(dup)
    with pytest.raises(InvalidInputError, match="duplicated column names"):
        ExplainableBoostingClassifier(**SMALL).fit(dup, data[1])


def test_numpy_input_is_positional():
    rng = np.random.default_rng(1)
    A = rng.normal(size=(200, 3))
    y = (A[:, 0] > 0).astype(int)
    m = ExplainableBoostingClassifier(**SMALL).fit(A, y)
    np.testing.assert_array_equal(m.predict_proba(A[:, [0, 1, 2]]), m.predict_proba(A))
    assert not np.array_equal(m.predict_proba(A[:, ::-1]), m.predict_proba(A))


# ------------------------------------------------------------------ target=
def test_target_class_0_is_the_negated_log_odds(clf, data):
    X = data[0].iloc[:25]
    p = clf.predict_proba(X)
    for t in (0, "0"):
        e = clf.explain_local(X, target=t)
        np.testing.assert_allclose(e.predictions, np.log(p[:, 0] / p[:, 1]), atol=1e-9)
        np.testing.assert_allclose(
            e.values.sum(axis=1) + e.base_values, np.log(p[:, 0] / p[:, 1]), atol=1e-9
        )
        assert e.output_names == ["0"]
        assert "class 0" in e.params["output"] and "negated" in e.params["output"]
    e1 = clf.explain_local(X, target=1)
    np.testing.assert_allclose(e1.predictions, np.log(p[:, 1] / p[:, 0]), atol=1e-9)
    assert e1.output_names == ["1"]
    np.testing.assert_array_equal(clf.explain_local(X, target=0).values, -e1.values)


def test_target_labels_match_before_indices():
    rng = np.random.default_rng(2)
    X = pd.DataFrame({"a": rng.normal(size=200), "b": rng.normal(size=200)})
    y = np.where(X["a"] > 0, "yes", "no")
    m = ExplainableBoostingClassifier(**SMALL).fit(X, y)
    p = m.predict_proba(X.iloc[:5])
    e = m.explain_local(X.iloc[:5], target="no")
    np.testing.assert_allclose(e.predictions, np.log(p[:, 0] / p[:, 1]), atol=1e-9)
    np.testing.assert_array_equal(m.explain_local(X.iloc[:5], target=0).values, e.values)
    with pytest.raises(InvalidParameterError, match=r"\['no', 'yes'\]"):
        m.explain_local(X.iloc[:5], target="maybe")


def test_several_targets_and_per_row_targets(clf, data):
    X = data[0].iloc[:12]
    both = clf.explain_local(X, target=[0, 1])
    assert both.values.shape == (12, len(clf.term_names_), 2)
    assert both.output_names == ["0", "1"]
    np.testing.assert_array_equal(both.values[..., 0], clf.explain_local(X, target=0).values)
    np.testing.assert_array_equal(
        clf.explain_local(X, target="all").values, both.values, strict=True
    )
    per = np.arange(12) % 2
    e = clf.explain_local(X, target=per)
    assert e.values.shape == (12, len(clf.term_names_))
    assert e.output_names == ["per-example target"]
    assert e.params["target"] == [str(t) for t in per] == e.meta["targets"]
    for i in range(12):  # each row as a one-row, one-target run
        one = clf.explain_local(X.iloc[[i]], target=int(per[i]))
        np.testing.assert_array_equal(e.values[i], one.values[0])
        assert e.base_values[i] == one.base_values[0]
    assert e[3:5].meta["targets"] == e.meta["targets"][3:5]
    with pytest.raises(InvalidParameterError, match="one entry per explained row"):
        clf.explain_local(X, target=np.zeros(5, dtype=int))


def test_regressor_target(reg, data):
    X = data[0].iloc[:5]
    e = reg.explain_local(X, target="prediction")
    np.testing.assert_allclose(e.predictions, reg.predict(X), atol=1e-12)
    with pytest.raises(InvalidParameterError, match="prediction"):
        reg.explain_local(X, target=1)
