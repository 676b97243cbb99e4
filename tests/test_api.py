"""wb.explain and the method registry."""

from __future__ import annotations

import numpy as np
import pytest
from sklearn.linear_model import LinearRegression

import whybox as wb
from whybox.errors import InvalidParameterError


def test_auto_picks_exact_and_records_why():
    rng = np.random.default_rng(0)
    X = rng.normal(size=(60, 4))
    model = LinearRegression().fit(X, X @ [1.0, 2.0, 0.0, -1.0])
    exp = wb.explain(model, X[:5], background=X[:20])
    assert exp.method == "exact"
    assert exp.params["method_selection"].startswith("auto -> exact")
    np.testing.assert_allclose(exp.values, model.coef_ * (X[:5] - X[:20].mean(0)), atol=1e-10)


def test_explicit_method_and_unknown_method():
    X = np.random.default_rng(1).normal(size=(10, 3))
    exp = wb.explain(lambda Z: Z.sum(axis=1), X[:2], method="exact", background=X)
    assert exp.params["method_selection"] == "exact -> exact: requested"
    with pytest.raises(InvalidParameterError) as info:
        wb.explain(lambda Z: Z.sum(axis=1), X, method="magic")
    assert "magic" in str(info.value) and "exact" in str(info.value)


def test_auto_refuses_too_many_players_with_advice():
    X = np.zeros((3, 30))
    with pytest.raises(InvalidParameterError) as info:
        wb.explain(lambda Z: Z.sum(axis=1), X)
    assert "30 players" in str(info.value) and "groups" in str(info.value)


def test_available_methods_lists_exact():
    assert "exact" in wb.available_methods()
