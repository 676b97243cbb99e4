"""Input checks of the explainable boosting machines: tables, targets, feature names, numbers.

Split from :mod:`.gam`; every message says what was wrong and what to pass instead.
"""

from __future__ import annotations

import math
import numbers
import os
import warnings
from typing import Any

import numpy as np
import pandas as pd
from sklearn.base import BaseEstimator

from .._validation import check_finite, check_int, check_nonempty, check_unique_columns
from ..errors import InvalidInputError, InvalidParameterError


def _check_feature_names(est: BaseEstimator, X: Any, reset: bool) -> None:
    """scikit-learn's feature-name and feature-count bookkeeping, with whybox errors."""
    check_unique_columns(X)
    try:
        try:
            from sklearn.utils.validation import validate_data
        except ImportError:  # scikit-learn < 1.6
            est._check_feature_names(X, reset=reset)  # type: ignore[attr-defined]
            est._check_n_features(X, reset=reset)  # type: ignore[attr-defined]
        else:
            validate_data(est, X, reset=reset, skip_check_array=True)
    except InvalidInputError:
        raise
    except ValueError as exc:
        raise InvalidInputError(
            f"{exc} Pass the columns the model was fitted on (in any order: DataFrame "
            "columns are matched by name)."
        ) from exc


def _align_by_name(est: BaseEstimator, X: Any) -> Any:
    """A DataFrame with the fitted columns in another order, reordered by name.

    Anything else (an array, other or missing names) is returned as it is, for
    :func:`_check_feature_names` to check and report.
    """
    fitted = getattr(est, "feature_names_in_", None)
    if not isinstance(X, pd.DataFrame) or fitted is None:
        return X
    have = [str(c) for c in X.columns]
    fitted = [str(c) for c in fitted]
    if have == fitted or len(set(have)) != len(have) or set(have) != set(fitted):
        return X
    position = {c: j for j, c in enumerate(have)}
    return X.iloc[:, [position[c] for c in fitted]]


def _as_table(X: Any, name: str = "X") -> np.ndarray | pd.DataFrame:
    """A DataFrame stays a DataFrame; anything else becomes a 2-D numpy array."""
    if hasattr(X, "tocsr") or hasattr(X, "todense"):
        raise InvalidInputError(
            f"{name} is a sparse matrix; explainable boosting needs dense input. "
            "Pass X.toarray() (or a DataFrame)."
        )
    if isinstance(X, pd.DataFrame):
        table: np.ndarray | pd.DataFrame = X
    else:
        try:
            table = np.asarray(X)
        except Exception as exc:
            raise InvalidInputError(
                f"{name} could not be read as a 2-D array ({exc}). Pass a 2-D numpy array "
                "or a DataFrame."
            ) from exc
        if table.ndim != 2:
            raise InvalidInputError(
                f"Expected 2D array, got {table.ndim}D array instead (shape {table.shape}). "
                "Reshape your data with X.reshape(-1, 1) for a single feature or "
                "X.reshape(1, -1) for a single sample."
            )
        if table.dtype.kind == "c":
            raise InvalidInputError(
                f"Complex data not supported: {name} has dtype {table.dtype}. Pass real numbers."
            )
    if table.shape[1] == 0:
        raise InvalidInputError(
            f"{name} has 0 feature(s) (shape={tuple(table.shape)}) while a minimum of 1 is "
            "required. Pass at least one feature column."
        )
    check_nonempty(table, name)
    check_finite(table, name, allow_nan=True)
    return table


def _column(X: np.ndarray | pd.DataFrame, j: int) -> Any:
    return X.iloc[:, j] if isinstance(X, pd.DataFrame) else X[:, j]


def _as_target(y: Any) -> np.ndarray:
    if y is None:
        raise InvalidInputError(
            "this estimator requires y to be passed, but the target y is None. Pass one "
            "target per row of X."
        )
    arr = np.asarray(y.to_numpy() if isinstance(y, (pd.Series, pd.DataFrame)) else y)
    if arr.ndim == 2 and arr.shape[1] == 1:
        from sklearn.exceptions import DataConversionWarning

        warnings.warn(
            "A column-vector y was passed when a 1d array was expected; it is read as y.ravel().",
            DataConversionWarning,
            stacklevel=3,
        )
        arr = arr.ravel()
    if arr.ndim != 1:
        raise InvalidInputError(
            f"y must be 1-D with one target per row, got shape {arr.shape}. Multi-output "
            "targets are not supported; fit one model per output."
        )
    return arr


def _check_real(
    name: str, value: Any, *, low: float | None = None, low_open: bool = False
) -> float:
    if isinstance(value, bool) or not isinstance(value, numbers.Real) or not math.isfinite(value):
        raise InvalidParameterError(f"{name} must be a finite number, got {value!r}.")
    if low is not None and (value < low or (low_open and value == low)):
        bound = f"greater than {low}" if low_open else f"at least {low}"
        raise InvalidParameterError(f"{name} must be {bound}, got {value!r}.")
    return float(value)


def _feature_index(f: Any, names: list[str], param: str) -> int:
    if isinstance(f, str):
        if f not in names:
            raise InvalidParameterError(f"{param} names feature {f!r}, not in X. Features: {names}.")  # fmt: skip
        return names.index(f)
    if isinstance(f, numbers.Integral) and not isinstance(f, bool):
        if not -len(names) <= f < len(names):
            raise InvalidParameterError(
                f"{param} refers to feature index {f}, out of range for {len(names)} features."
            )
        return int(f) % len(names)
    raise InvalidParameterError(f"{param} entries must be feature names or indices, got {f!r}.")


def _n_jobs(n_jobs: Any, n_bags: int) -> int:
    cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()
    cores = cores or 1
    if n_jobs is None:
        return min(cores, n_bags)
    check_int("n_jobs", n_jobs)
    if n_jobs == 0:
        raise InvalidParameterError("n_jobs must be a positive int, -1 (all cores) or None; got 0.")  # fmt: skip
    return max(1, min(n_bags, n_jobs if n_jobs > 0 else cores + 1 + n_jobs))
