"""Data, models and the checker for the conformance matrix (tests/conformance/test_matrix.py).

Models are fitted once per session, lazily (a ``-k`` selection fits only what it needs), on
small synthetic data: 160 rows, 5 features whose names hold spaces (LightGBM renames them),
3 rows explained, a background of 20 rows (120 for the "background used whole" check).

The checker is ``whybox.testing`` of THIS tree, also when ``PYTHONPATH`` points whybox at
another one (``PYTHONPATH=/tmp/base/src`` runs the matrix over the code before issue 13).
"""

from __future__ import annotations

import importlib.util
import sys
from functools import cache
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest

NAMES = ["mean radius", "mean texture", "age", "income", "score"]
N_FIT, N_EXPLAIN, N_BG, N_BG_BIG = 160, 3, 20, 120
OUTPUTS = ("binary", "multiclass", "regression")
CLASSES = {"binary": 2, "multiclass": 3}
IMAGE_SHAPE = (1, 8, 8)


def load_checker() -> Any:
    """``whybox.testing`` from this checkout's src/, whichever whybox is imported."""
    here = Path(__file__).resolve().parents[2] / "src" / "whybox" / "testing.py"
    import whybox.testing as current

    if Path(current.__file__).resolve() == here:
        return current
    name = "whybox._testing_of_this_checkout"
    if name in sys.modules:
        return sys.modules[name]
    spec = importlib.util.spec_from_file_location(name, here)
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module
    spec.loader.exec_module(module)
    return module


@pytest.fixture(scope="session")
def checker() -> Any:
    return load_checker()


@pytest.fixture(scope="session", autouse=True)
def _one_thread() -> Any:
    """One thread per library: the matrix runs thousands of tiny model calls, where thread
    pools only add overhead (and spin on a shared machine)."""
    from threadpoolctl import threadpool_limits

    with threadpool_limits(1):
        try:
            import torch
        except ImportError:  # pragma: no cover - torch is a test dependency
            yield
            return
        before = torch.get_num_threads()
        torch.set_num_threads(1)
        try:
            yield
        finally:
            torch.set_num_threads(before)


# ------------------------------------------------------------------------------- data
@cache
def table(kind: str = "numeric") -> pd.DataFrame:
    """Rows of the tabular models; ``kind="mixed"`` replaces "score" by a string column."""
    rng = np.random.default_rng(0)
    X = pd.DataFrame(rng.normal(size=(N_FIT, len(NAMES))), columns=NAMES)
    if kind == "mixed":
        X["score"] = rng.choice(["north", "south", "east"], N_FIT).astype(object)
        X = X.rename(columns={"score": "region"})
    return X


def _signal(X: pd.DataFrame) -> np.ndarray:
    z = 1.2 * X["mean radius"] - 0.8 * X["age"] + 0.5 * X["mean texture"] * X["income"]
    if "region" in X:
        z = z + (X["region"] == "north") * 1.0
    else:
        z = z + 0.4 * X["score"]
    return np.asarray(z, dtype=float)


def labels(output: str, X: pd.DataFrame) -> np.ndarray:
    z = _signal(X)
    if output == "binary":
        return (z > 0).astype(int)
    if output == "multiclass":
        return np.digitize(z, np.quantile(z, [1 / 3, 2 / 3]))
    return z + 0.1 * np.random.default_rng(1).normal(size=len(z))


@cache
def images() -> np.ndarray:
    rng = np.random.default_rng(2)
    return rng.uniform(0, 1, size=(N_FIT, *IMAGE_SHAPE)).astype(np.float32)


# ----------------------------------------------------------------------------- models
def _sk_linear(output: str) -> Any:
    from sklearn.linear_model import LinearRegression, LogisticRegression

    return LinearRegression() if output == "regression" else LogisticRegression(max_iter=500)


def _fit(model: Any, output: str, X: pd.DataFrame) -> Any:
    return model.fit(X, labels(output, X))


def _torch_mlp(output: str) -> Any:
    import torch

    torch.manual_seed(0)
    k = CLASSES.get(output, 1)
    layers = [torch.nn.Linear(len(NAMES), 16), torch.nn.Tanh(), torch.nn.Linear(16, k)]
    if output == "binary":  # probabilities: class 0 is 1 - p exactly
        layers.append(torch.nn.Softmax(dim=1))
    return torch.nn.Sequential(*layers).eval()


def _torch_cnn(output: str) -> Any:
    """Conv -> BatchNorm -> ReLU -> Conv -> pool -> Linear, LEFT IN TRAINING MODE (its batch
    norm then uses the batch's statistics unless the explainer evaluates it in eval mode)."""
    import torch

    torch.manual_seed(0)
    k = CLASSES.get(output, 1)
    layers = [
        torch.nn.Conv2d(1, 4, 3, padding=1),
        torch.nn.BatchNorm2d(4),
        torch.nn.ReLU(),
        torch.nn.Conv2d(4, 4, 3, padding=1),
        torch.nn.AdaptiveAvgPool2d(2),
        torch.nn.Flatten(),
        torch.nn.Linear(16, k),
    ]
    if output == "binary":
        layers.append(torch.nn.Softmax(dim=1))
    net = torch.nn.Sequential(*layers)
    with torch.no_grad():  # running statistics that differ from any batch's
        net(torch.from_numpy(images()[:64]) * 2.0 + 0.5)
    return net.train()


def _callable(output: str) -> Any:
    rng = np.random.default_rng(3)
    k = CLASSES.get(output, 1)
    W = rng.normal(size=(len(NAMES), k))

    def f(X: Any) -> np.ndarray:
        z = np.tanh(np.asarray(X, dtype=float) @ W)
        if output == "regression":
            return z[:, 0] * 3.0
        e = np.exp(2 * z - (2 * z).max(axis=1, keepdims=True))
        return e / e.sum(axis=1, keepdims=True)

    return f


@cache
def model(model_type: str, output: str) -> Any:
    """The fitted model of one matrix row (cached for the session)."""
    reg = output == "regression"
    if model_type == "linear":
        return _fit(_sk_linear(output), output, table())
    if model_type == "forest":
        from sklearn.ensemble import RandomForestClassifier, RandomForestRegressor

        cls = RandomForestRegressor if reg else RandomForestClassifier
        return _fit(cls(n_estimators=8, max_depth=4, random_state=0), output, table())
    if model_type == "hgb":
        from sklearn.ensemble import HistGradientBoostingClassifier, HistGradientBoostingRegressor

        cls = HistGradientBoostingRegressor if reg else HistGradientBoostingClassifier
        return _fit(cls(max_iter=8, max_depth=3, random_state=0), output, table())
    if model_type == "pipeline":
        from sklearn.compose import ColumnTransformer
        from sklearn.pipeline import make_pipeline
        from sklearn.preprocessing import OneHotEncoder, StandardScaler

        numeric = [c for c in table("mixed").columns if c != "region"]
        pre = ColumnTransformer(
            [("num", StandardScaler(), numeric), ("cat", OneHotEncoder(), ["region"])]
        )
        return _fit(make_pipeline(pre, _sk_linear(output)), output, table("mixed"))
    if model_type == "xgboost":
        import xgboost as xgb

        cls = xgb.XGBRegressor if reg else xgb.XGBClassifier
        return _fit(cls(n_estimators=8, max_depth=3, n_jobs=1, random_state=0), output, table())
    if model_type == "lightgbm":
        import lightgbm as lgb

        cls = lgb.LGBMRegressor if reg else lgb.LGBMClassifier
        m = cls(n_estimators=8, num_leaves=7, min_child_samples=5, verbose=-1, n_jobs=1)
        return _fit(m, output, table())
    if model_type == "catboost":
        import catboost as cb

        cls = cb.CatBoostRegressor if reg else cb.CatBoostClassifier
        m = cls(iterations=8, depth=3, verbose=0, thread_count=1, random_seed=0)
        return _fit(m, output, table())
    if model_type == "glassbox":
        import whybox as wb

        cls = wb.ExplainableBoostingRegressor if reg else wb.ExplainableBoostingClassifier
        m = cls(interactions=0, outer_bags=1, max_rounds=200, n_jobs=1, random_state=0)
        return _fit(m, output, table())
    if model_type == "torch_mlp":
        return _torch_mlp(output)
    if model_type == "torch_cnn":
        return _torch_cnn(output)
    if model_type == "callable":
        return _callable(output)
    raise KeyError(model_type)
