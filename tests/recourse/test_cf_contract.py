"""Counterfactuals under issue 13's contract: columns matched by name (any order, LightGBM's
renamed columns), missing values left to the model, target=/desired= by label or index, the
reference sample announced, duplicated columns refused.

Oracle: the model's own ``predict_proba`` / ``predict`` on the returned rows, given to it in
the column order it was fitted on.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from sklearn.datasets import load_breast_cancer
from sklearn.ensemble import HistGradientBoostingClassifier, RandomForestClassifier

import whybox as wb
from whybox.errors import InvalidInputError, InvalidParameterError


@pytest.fixture(scope="module")
def cancer():
    X, y = load_breast_cancer(as_frame=True, return_X_y=True)
    return X.iloc[:, :6], y.to_numpy()


def _reversed(X):
    return X[X.columns[::-1]]


def _check_against_the_model(model, X, r, cls):
    """Every returned row reaches class ``cls`` per the model's own predict_proba."""
    assert len(r.counterfactuals) >= 1
    rows = r.counterfactuals[list(X.columns)]  # the model's own column order
    p = model.predict_proba(rows)[:, cls]
    np.testing.assert_allclose(r.prediction, p, rtol=0, atol=1e-12)
    assert np.all(p > 0.5) and np.all(r.valid)


def test_lightgbm_with_spaces_and_reordered_columns(cancer):
    lgb = pytest.importorskip("lightgbm")
    X, y = cancer
    m = lgb.LGBMClassifier(n_estimators=30, num_leaves=8, verbose=-1, random_state=0).fit(X, y)
    q = X.iloc[[0]]
    p_q = m.predict_proba(q)[0]
    for X_train, query in ((X, q), (_reversed(X), q), (X, _reversed(q))):
        cf = wb.Counterfactuals(m, X_train, time_budget=3.0, random_state=0)
        r = cf.explain(query, n=2)
        assert list(r.counterfactuals.columns) == list(X_train.columns)  # the user's order
        assert list(r.query.columns) == list(X_train.columns)
        assert r.query_prediction == pytest.approx(p_q[1], abs=1e-12)
        _check_against_the_model(m, X, r, cls=1)


def test_sklearn_model_with_reordered_training_rows(cancer):
    X, y = cancer
    rf = RandomForestClassifier(n_estimators=20, random_state=0).fit(X, y)
    cf = wb.Counterfactuals(rf, _reversed(X), time_budget=3.0, random_state=0)
    i = int(np.flatnonzero(rf.predict(X) == 0)[0])
    r = cf.explain(X.iloc[[i]], n=1)
    assert r.query_prediction == pytest.approx(rf.predict_proba(X.iloc[[i]])[0, 1], abs=1e-12)
    _check_against_the_model(rf, X, r, cls=1)


def test_missing_values_follow_the_model(cancer):
    X, y = cancer
    Xn = X.copy()
    Xn.iloc[::5, 1] = np.nan  # "mean texture"
    h = HistGradientBoostingClassifier(max_iter=20, random_state=0).fit(Xn, y)
    cf = wb.Counterfactuals(h, Xn, time_budget=5.0, random_state=0)
    r = cf.explain(Xn.iloc[[0]], n=2)  # row 0: texture missing, class 0 predicted
    assert np.isnan(r.query["mean texture"].iloc[0])
    assert r.counterfactuals["mean texture"].isna().all()  # stays missing, not searched
    _check_against_the_model(h, Xn, r, cls=1)
    assert r.query_prediction == pytest.approx(h.predict_proba(Xn.iloc[[0]])[0, 1], abs=1e-12)
    inf = Xn.copy()
    inf.iloc[3, 2] = np.inf
    with pytest.raises(InvalidInputError, match="infinite"):
        wb.Counterfactuals(h, inf)


def test_desired_by_label_index_or_string():
    rng = np.random.default_rng(0)
    X = pd.DataFrame({"a": rng.normal(size=300), "b": rng.normal(size=300)})
    y = np.where(X["a"] + 0.3 * X["b"] > 0, "yes", "no")
    m = RandomForestClassifier(n_estimators=20, random_state=0).fit(X, y)
    q = X.iloc[[int(np.flatnonzero(m.predict(X) == "no")[0])]]
    for desired in ("yes", 1):
        cf = wb.Counterfactuals(m, X, desired=desired, time_budget=2.0)
        r = cf.explain(q, n=1)
        assert r.desired.startswith("class yes")
        assert list(m.predict(r.counterfactuals)) == ["yes"]
    with pytest.raises(InvalidParameterError, match=r"\['no', 'yes'\]"):
        wb.Counterfactuals(m, X, desired="maybe")
    with pytest.raises(InvalidParameterError, match="one row at a time"):
        wb.Counterfactuals(m, X, target=np.array(["yes", "no"]))


def test_reference_sample_is_announced(cancer):
    X, y = cancer
    rf = RandomForestClassifier(n_estimators=5, random_state=0).fit(X, y)
    with pytest.warns(UserWarning, match=r"max_reference=100 .*max_reference=None"):
        cf = wb.Counterfactuals(rf, X, max_reference=100)
    assert len(cf._Z_ref) == 100
    import warnings

    with warnings.catch_warnings():
        warnings.simplefilter("error")
        cf = wb.Counterfactuals(rf, X, max_reference=None)
    assert len(cf._Z_ref) == len(X)


def test_duplicated_columns_are_refused(cancer):
    X, y = cancer
    rf = RandomForestClassifier(n_estimators=5, random_state=0).fit(X, y)
    D = X.copy()
    D.columns = [*X.columns[:-1], X.columns[0]]
    with pytest.raises(InvalidInputError, match=r"X_train has duplicated column names"):
        wb.Counterfactuals(rf, D)


def test_gradient_path_leaves_a_torch_model_as_it_was():
    torch = pytest.importorskip("torch")
    torch.manual_seed(0)
    net = torch.nn.Sequential(
        torch.nn.Linear(2, 8), torch.nn.BatchNorm1d(8), torch.nn.ReLU(), torch.nn.Linear(8, 2)
    )
    X = np.random.default_rng(0).normal(size=(200, 2))
    with torch.no_grad():  # fill the running statistics, then keep the model in training mode
        net(torch.as_tensor(X, dtype=torch.float32))
    before = {k: v.clone() for k, v in net.state_dict().items()}
    # the first Adam of a process imports for seconds: warm it up, or the budget is spent
    torch.optim.Adam([torch.zeros(1, requires_grad=True)])
    with pytest.warns(UserWarning, match="training mode"):
        cf = wb.Counterfactuals(net, X, method="gradient", time_budget=3.0)
        r = cf.explain(X[0], n=1)
    assert r.method == "gradient" and r.n_evals > 0
    assert net.training and all(m.training for m in net.modules())
    for k, v in net.state_dict().items():
        assert torch.equal(v, before[k]), k
