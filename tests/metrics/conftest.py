"""Shared small cases of the metrics tests: a linear model with exact Shapley values and a
random explanation of the same scale, and a small torch network for the Quantus oracles."""

from __future__ import annotations

import warnings

import numpy as np
import pandas as pd
import pytest
from sklearn.linear_model import LinearRegression

import whybox as wb

W = np.array([3.0, -2.0, 1.0, 0.5, 0.0, 0.25])


@pytest.fixture(scope="module")
def linear_case():
    """(model, X rows, background, exact explanation, random explanation, coefficients)."""
    rng = np.random.default_rng(0)
    X = pd.DataFrame(rng.normal(size=(200, 6)), columns=list("abcdef"))
    y = X.to_numpy() @ W + 0.1 * rng.normal(size=200)
    model = LinearRegression().fit(X, y)
    bg, rows = X.iloc[:50], X.iloc[100:130]
    exp = wb.LinearShap(model, background=bg).explain(rows)
    noise = np.random.default_rng(1).normal(size=exp.values.shape) * exp.values.std()
    rnd = wb.Explanation(
        noise,
        exp.base_values,
        data=rows,
        feature_names=exp.feature_names,
        predictions=exp.predictions,
        params=exp.params,
        method="random",
    )
    return model, rows, bg, exp, rnd


@pytest.fixture(scope="module")
def torch_case():
    """A float32 MLP on 6 features (Flatten first, so it takes (n, 6), (n, 1, 6) and
    (n, 1, 1, 6) alike), 8 rows and random attributions."""
    torch = pytest.importorskip("torch")
    warnings.filterwarnings("ignore", module="quantus")
    torch.manual_seed(0)
    model = torch.nn.Sequential(
        torch.nn.Flatten(),
        torch.nn.Linear(6, 16),
        torch.nn.Tanh(),
        torch.nn.Linear(16, 2),
    ).eval()
    rng = np.random.default_rng(0)
    X = rng.normal(size=(8, 6)).astype(np.float32)
    A = rng.normal(size=(8, 6))
    return model, X, A


def grad_x_input(model, X, target=1):
    """Gradient x input of output ``target`` (the test's own explain_fn, torch.autograd)."""
    import torch

    x = torch.as_tensor(np.asarray(X, dtype=np.float32)).requires_grad_(True)
    out = model(x)[:, target].sum()
    (g,) = torch.autograd.grad(out, x)
    return (g * x).detach().numpy().astype(float)
