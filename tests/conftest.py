"""Shared fixtures: small seeded data sets."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest


@pytest.fixture
def binary_data():
    """Numeric X of shape (80, 4) and a binary 0/1 target that depends on x0 and x1."""
    rng = np.random.default_rng(0)
    X = rng.normal(size=(80, 4))
    y = (X[:, 0] + 0.5 * X[:, 1] + 0.3 * rng.normal(size=80) > 0).astype(int)
    return X, y


@pytest.fixture
def credit_frame():
    """DataFrame with two numeric, one pandas categorical and one string column, and a 0/1 y."""
    rng = np.random.default_rng(1)
    n = 80
    df = pd.DataFrame(
        {
            "income": rng.normal(50.0, 10.0, n),
            "age": rng.integers(20, 70, n).astype(float),
            "region": pd.Categorical(rng.choice(["north", "south", "east"], n)),
            "job": rng.choice(["clerk", "nurse"], n),
        }
    )
    y = ((df["income"] > 50) ^ (df["job"] == "clerk")).astype(int).to_numpy()
    return df, y
