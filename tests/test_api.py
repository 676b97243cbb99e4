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
    w = np.array([1.0, 2.0, 0.0, -1.0])
    exp = wb.explain(lambda Z: Z @ w, X[:5], background=X[:20])
    assert exp.method == "exact"
    assert exp.params["method_selection"].startswith("auto -> exact")
    np.testing.assert_allclose(exp.values, w * (X[:5] - X[:20].mean(0)), atol=1e-10)


def test_auto_picks_linear_for_linear_models():
    rng = np.random.default_rng(0)
    X = rng.normal(size=(60, 4))
    model = LinearRegression().fit(X, X @ [1.0, 2.0, 0.0, -1.0])
    exp = wb.explain(model, X[:5], background=X[:20])
    assert exp.method == "linear"
    assert exp.params["method_selection"].startswith("auto -> linear")
    np.testing.assert_allclose(exp.values, model.coef_ * (X[:5] - X[:20].mean(0)), atol=1e-10)


def test_explicit_method_and_unknown_method():
    X = np.random.default_rng(1).normal(size=(10, 3))
    exp = wb.explain(lambda Z: Z.sum(axis=1), X[:2], method="exact", background=X)
    assert exp.params["method_selection"] == "exact -> exact: requested"
    with pytest.raises(InvalidParameterError) as info:
        wb.explain(lambda Z: Z.sum(axis=1), X, method="magic")
    assert "magic" in str(info.value) and "exact" in str(info.value)


def test_auto_uses_kernel_above_sixteen_players():
    rng = np.random.default_rng(3)
    X = rng.normal(size=(40, 20))
    w = rng.normal(size=20)
    exp = wb.explain(lambda Z: Z @ w, X[:2], background=X[:10], budget=200)
    assert exp.method == "kernel"
    assert "20 players > 16" in exp.params["method_selection"]
    # a linear game is pairwise-free: KernelSHAP with paired sampling recovers it exactly
    np.testing.assert_allclose(exp.values, w * (X[:2] - X[:10].mean(0)), atol=1e-9)


def test_available_methods():
    assert {"exact", "permutation", "kernel", "banzhaf", "interactions", "linear"} <= set(
        wb.available_methods()
    )
