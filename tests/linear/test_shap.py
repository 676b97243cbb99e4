"""LinearShap against shap's LinearExplainer and the closed form."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from sklearn.linear_model import LinearRegression, LogisticRegression, Ridge

import whybox as wb
from whybox.errors import InvalidParameterError, UnsupportedModelError
from whybox.linear.shap import LinearShap


@pytest.fixture(scope="module")
def data():
    rng = np.random.default_rng(0)
    X = pd.DataFrame(rng.normal(size=(300, 5)), columns=list("abcde"))
    return X, rng


def test_regression_matches_shap_linear_explainer(data):
    shap = pytest.importorskip("shap")
    X, rng = data
    model = Ridge(alpha=0.5).fit(X, X @ [1.0, -2.0, 0.5, 0.0, 3.0] + rng.normal(size=300))
    exp = LinearShap(model, background=X.iloc[:100]).explain(X.iloc[200:210])
    ref = shap.LinearExplainer(model, X.iloc[:100]).shap_values(X.iloc[200:210])
    np.testing.assert_allclose(exp.values, ref, atol=1e-10)
    np.testing.assert_allclose(exp.predictions, model.predict(X.iloc[200:210]), atol=1e-10)
    assert np.abs(exp.completeness_gap()).max() < 1e-10


def test_logistic_is_log_odds_and_matches_shap(data):
    shap = pytest.importorskip("shap")
    X, rng = data
    y = (X["a"] - X["b"] + rng.normal(size=300) > 0).astype(int)
    model = LogisticRegression().fit(X, y)
    exp = LinearShap(model, background=X.iloc[:100]).explain(X.iloc[200:205])
    ref = shap.LinearExplainer(model, X.iloc[:100]).shap_values(X.iloc[200:205])
    np.testing.assert_allclose(exp.values, ref, atol=1e-10)
    np.testing.assert_allclose(exp.predictions, model.decision_function(X.iloc[200:205]))
    assert exp.params["output"].startswith("log-odds")
    neg = LinearShap(model, background=X.iloc[:100]).explain(X.iloc[200:205], target=0)
    np.testing.assert_allclose(neg.values, -exp.values)
    # the same values as ExactShap in log-odds (an independent computation)
    ex = wb.ExactShap(model, background=X.iloc[:100], max_background=100).explain(
        X.iloc[200:205], link="logit"
    )
    np.testing.assert_allclose(exp.values, ex.values, atol=1e-9)


def test_multiclass_closed_form(data):
    X, rng = data
    y = np.digitize(X["a"] + 0.3 * rng.normal(size=300), [-0.5, 0.5])
    model = LogisticRegression().fit(X, y)
    exp = LinearShap(model, background=X).explain(X.iloc[:3])
    assert exp.values.shape == (3, 5, 3)
    expected = (X.iloc[:3].to_numpy() - X.to_numpy().mean(0))[:, :, None] * model.coef_.T
    np.testing.assert_allclose(exp.values, expected, atol=1e-12)
    one = LinearShap(model, background=X).explain(X.iloc[:3], target=2)
    np.testing.assert_allclose(one.values, expected[:, :, 2], atol=1e-12)


def test_refuses_non_linear_models_and_bad_targets(data):
    X, _ = data
    with pytest.raises(UnsupportedModelError, match="coef_"):
        LinearShap(lambda Z: Z.sum(1))
    model = LinearRegression().fit(X, X["a"])
    with pytest.raises(InvalidParameterError, match="unknown target"):
        LinearShap(model, background=X).explain(X.iloc[:2], target=3)
    # CONTRACT 3: the explained rows never stand in for a background
    with pytest.raises(InvalidParameterError, match=r"needs background=.*X_train.sample"):
        LinearShap(model)


def test_max_background_sample_warns_with_its_measured_effect():
    """A background sample is drawn only when asked, and then says how far it moves the base
    value (before: LinearShap kept max_background rows without a word)."""
    from sklearn.linear_model import LinearRegression

    rng = np.random.default_rng(3)
    X = rng.normal(size=(300, 4))
    model = LinearRegression().fit(X, X @ np.array([1.0, -2.0, 0.5, 3.0]) + 1.0)
    with pytest.warns(UserWarning, match=r"max_background=40 keeps a random sample of 40") as rec:
        exp = wb.LinearShap(model, background=X, max_background=40).explain(X[:3])
    # the base value is the mean prediction over the kept sample; the warned figure is its
    # distance from the mean prediction over all 300 rows (computed from sklearn's predict)
    full_mean = model.predict(X).mean()
    shift = abs(exp.base_values[0] - full_mean)
    assert shift > 0
    (msg,) = [str(w.message) for w in rec if "max_background" in str(w.message)]
    assert f"by {shift:.3g}" in msg
    whole = wb.LinearShap(model, background=X).explain(X[:3])
    np.testing.assert_allclose(whole.base_values, full_mean, atol=1e-10)
