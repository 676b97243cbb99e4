"""Issue 13 contract in wb.explain: no background stands in for the data, auto picks the
method exact for the output and says why, and torch's reason names what it integrates from."""

from __future__ import annotations

import numpy as np
import pytest
from sklearn.ensemble import GradientBoostingRegressor
from sklearn.svm import SVR

import whybox as wb
from whybox.errors import InvalidParameterError


def test_a_model_agnostic_choice_needs_a_background():
    # issue 13 item 3: wb.explain(svr, X.iloc[[0]]) returned all zeros (the row was its own
    # background)
    rng = np.random.default_rng(0)
    X = rng.normal(size=(60, 4))
    model = SVR().fit(X, X[:, 0] - X[:, 1])
    with pytest.raises(InvalidParameterError, match=r"need background=.*X_train.sample"):
        wb.explain(model, X[:1])
    exp = wb.explain(model, X[:1], background=X[20:])
    assert exp.method == "exact"
    assert np.abs(exp.values).max() > 1e-3
    np.testing.assert_allclose(exp.predictions, model.predict(X[:1]), atol=1e-12)


def test_auto_tree_choice_for_a_regressor_says_why():
    rng = np.random.default_rng(1)
    X = rng.normal(size=(80, 3))
    model = GradientBoostingRegressor(n_estimators=10, random_state=0).fit(X, X[:, 0] ** 2)
    exp = wb.explain(model, X[:3])
    assert exp.method == "tree" and exp.params["output"] == "prediction"
    assert "exact TreeSHAP of its prediction" in exp.params["method_selection"]
    np.testing.assert_allclose(exp.predictions, model.predict(X[:3]), atol=1e-9)


def test_torch_reason_without_background_names_the_zero_baseline():
    torch = pytest.importorskip("torch")
    torch.manual_seed(0)
    net = torch.nn.Sequential(torch.nn.Linear(3, 2)).eval()
    exp = wb.explain(net, torch.randn(2, 3), target=0)
    assert "zero baseline" in exp.params["method_selection"]
    assert "over a background" not in exp.params["method_selection"]
