"""Shared fixtures: small seeded data sets, the zoo's model cache and its trained models.

Thread settings for the reproducibility runs (issue 14): ``WHYBOX_TEST_TORCH_THREADS=n`` sets
``torch.set_num_threads(n)`` before any test (BLAS and OpenMP threads follow
``OMP_NUM_THREADS`` / ``OPENBLAS_NUM_THREADS`` / ``MKL_NUM_THREADS`` as usual), so the suite can
be run twice under different settings, e.g.
``OMP_NUM_THREADS=1 WHYBOX_TEST_TORCH_THREADS=1 pytest`` and ``OMP_NUM_THREADS=2
WHYBOX_TEST_TORCH_THREADS=2 pytest``.
"""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import pandas as pd
import pytest


def pytest_configure(config):
    threads = os.environ.get("WHYBOX_TEST_TORCH_THREADS")
    if threads:
        import torch

        torch.set_num_threads(int(threads))


def pytest_report_header(config):
    keys = (
        "OMP_NUM_THREADS",
        "OPENBLAS_NUM_THREADS",
        "MKL_NUM_THREADS",
        "WHYBOX_TEST_TORCH_THREADS",
    )
    set_ = [f"{k}={os.environ[k]}" for k in keys if os.environ.get(k)]
    return "threads: " + (", ".join(set_) if set_ else "library defaults")


@pytest.fixture(scope="session")
def zoo_cache() -> Path:
    """The folder of the zoo's model cache shared by every test: the machine's cache
    (``$WHYBOX_CACHE`` or ``~/.cache/whybox``), so each toy model is trained once per machine."""
    from whybox.zoo.cache import cache_folder

    return cache_folder()


@pytest.fixture(scope="session")
def digits_cnn(zoo_cache):
    """``wb.zoo.digits_cnn(random_state=0)`` (model, data), loaded once per session."""
    pytest.importorskip("torch")
    import whybox as wb

    return wb.zoo.digits_cnn(random_state=0, cache_dir=zoo_cache)


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
