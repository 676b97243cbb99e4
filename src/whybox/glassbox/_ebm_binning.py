"""Binning of the explainable boosting machine: quantile cuts, categories, missing values.

Every feature becomes a small integer code per row, with one layout for all features:

* bin ``0`` holds missing values (NaN, None, ``pd.NA``);
* bins ``1 .. K`` hold the observed values: for a numeric feature the ``K = len(cuts) + 1``
  intervals between the cut points, for a categorical feature the ``K`` categories seen at fit
  time (in the order of a pandas categorical dtype, else sorted);
* bin ``K + 1`` holds categories never seen at fit time (always empty for numeric features).

Numeric cut points are chosen from the data as interpret does (``max_bins`` counts all bins,
so a feature has at most ``max_bins - 2`` value bins): with at most that many distinct values, one cut between each pair of neighbouring values (at their midpoint);
otherwise cuts at the midpoints nearest to the ``k / (max_bins - 2)`` quantiles of the sorted values,
so that bins hold about the same number of rows and ties never straddle a cut.

References
----------
Nori, H., Jenkins, S., Koch, P. and Caruana, R. (2019). InterpretML: A Unified Framework for
Machine Learning Interpretability. arXiv:1909.09223.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd

from ..errors import InvalidInputError

__all__ = ["FeatureBins", "bin_matrix", "fit_feature_bins", "is_categorical_column"]

#: largest number of categories one feature may have (codes are stored as uint16)
MAX_CATEGORIES = 65_000


@dataclass
class FeatureBins:
    """How one feature is binned.

    Attributes
    ----------
    name : str
        Feature name.
    kind : {"continuous", "nominal"}
        Numeric (cut points) or categorical (one bin per category).
    cuts : ndarray of shape (n_cuts,)
        Cut points of a numeric feature at main-effect resolution (empty for categoricals).
    interaction_cuts : ndarray of shape (n_interaction_cuts,)
        Coarser cut points used by pair terms (empty for categoricals).
    categories : list of str
        Categories of a categorical feature, in bin order (bins ``1 .. K``).
    """

    name: str
    kind: str
    cuts: np.ndarray = field(default_factory=lambda: np.zeros(0))
    interaction_cuts: np.ndarray = field(default_factory=lambda: np.zeros(0))
    categories: list[str] = field(default_factory=list)

    def n_bins(self, interaction: bool = False) -> int:
        """Total number of bins: missing + observed values + unseen."""
        if self.kind == "nominal":
            return len(self.categories) + 2
        cuts = self.interaction_cuts if interaction else self.cuts
        return len(cuts) + 3

    def bin_labels(self, interaction: bool = False) -> list[str]:
        """Readable label of each bin (``"missing"``, intervals or categories, ``"unseen"``)."""
        if self.kind == "nominal":
            return ["missing", *self.categories, "unseen"]
        cuts = self.interaction_cuts if interaction else self.cuts
        edges = ["-inf", *(f"{c:.6g}" for c in cuts), "inf"]
        mids = [f"[{edges[i]}, {edges[i + 1]})" for i in range(len(edges) - 1)]
        return ["missing", *mids, "unseen"]


def is_categorical_column(values: Any) -> bool:
    """True for pandas categorical, object, string and similar non-numeric columns."""
    if isinstance(values, pd.Series):
        dtype = values.dtype
        if isinstance(dtype, pd.CategoricalDtype):
            return True
        if pd.api.types.is_bool_dtype(dtype) or pd.api.types.is_numeric_dtype(dtype):
            return False
        if dtype.kind == "O":
            return not _object_is_numeric(values.to_numpy())
        return True  # string, datetime-like and other extension types are read as categories
    arr = np.asarray(values)
    if arr.dtype.kind in "biuf":
        return False
    if arr.dtype.kind == "O":
        return not _object_is_numeric(arr)
    return True


def _object_is_numeric(arr: np.ndarray) -> bool:
    for v in arr:
        if v is None or (isinstance(v, float) and np.isnan(v)) or v is pd.NA:
            continue
        if isinstance(v, (bool, np.bool_)) or not isinstance(v, (int, float, np.number)):
            return False
    return True


def _numeric_values(values: Any, name: str) -> np.ndarray:
    if isinstance(values, pd.Series):
        try:
            return values.to_numpy(dtype=float, na_value=np.nan)
        except (TypeError, ValueError) as exc:
            raise InvalidInputError(
                f"feature {name!r} could not be read as numbers ({exc}). Declare it with "
                "categorical_features= or give it a categorical dtype."
            ) from exc
    arr = np.asarray(values)
    if arr.dtype.kind == "O":
        arr = np.array([np.nan if (v is None or v is pd.NA) else v for v in arr], dtype=float)
    return arr.astype(float, copy=False)


def _category_keys(values: Any) -> np.ndarray:
    """Category labels as an object array of str, with None for missing entries."""
    if isinstance(values, pd.Series):
        missing = values.isna().to_numpy()
        raw = values.astype(object).to_numpy()
    else:
        raw = np.asarray(values, dtype=object)
        missing = np.array(
            [v is None or v is pd.NA or (isinstance(v, float) and v != v) for v in raw]
        )
    keys = np.array([str(v) for v in raw], dtype=object)
    keys[missing] = None
    return keys


def quantile_cuts(x: np.ndarray, max_bins: int) -> np.ndarray:
    """Cut points splitting the finite values of ``x`` into at most ``max_bins`` bins.

    Parameters
    ----------
    x : ndarray of shape (n,)
        Values of one feature (NaN entries are ignored).
    max_bins : int
        Largest number of value bins.

    Returns
    -------
    ndarray of shape (n_cuts,)
        Increasing cut points, each the midpoint of two neighbouring distinct values.
    """
    x = x[~np.isnan(x)]
    if x.size == 0:
        return np.zeros(0)
    uniq, counts = np.unique(x, return_counts=True)
    if uniq.size <= 1:
        return np.zeros(0)
    mids = uniq[:-1] + (uniq[1:] - uniq[:-1]) / 2.0
    if uniq.size <= max_bins:
        return mids
    cum = np.cumsum(counts)  # rows at or below each distinct value
    targets = np.arange(1, max_bins) * (x.size / max_bins)
    # the boundary after distinct value i whose cumulative count is nearest each target
    idx = np.searchsorted(cum, targets)
    idx = np.clip(idx, 0, uniq.size - 2)
    prev = np.clip(idx - 1, 0, uniq.size - 2)
    take_prev = np.abs(cum[prev] - targets) < np.abs(cum[idx] - targets)
    idx = np.where(take_prev, prev, idx)
    return mids[np.unique(idx)]


def fit_feature_bins(
    column: Any,
    name: str,
    *,
    categorical: bool,
    max_bins: int,
    max_interaction_bins: int,
) -> FeatureBins:
    """Learn the binning of one feature from its training values."""
    if categorical:
        keys = _category_keys(column)
        present = keys[np.array([k is not None for k in keys], dtype=bool)]
        if isinstance(column, pd.Series) and isinstance(column.dtype, pd.CategoricalDtype):
            seen = set(present.tolist())
            cats = [str(c) for c in column.dtype.categories if str(c) in seen]
        else:
            cats = sorted(set(present.tolist()))
        if len(cats) > MAX_CATEGORIES:
            raise InvalidInputError(
                f"categorical feature {name!r} has {len(cats)} categories; at most "
                f"{MAX_CATEGORIES} are supported. Group rare categories first."
            )
        return FeatureBins(name=name, kind="nominal", categories=cats)
    x = _numeric_values(column, name)
    # like interpret, max_bins counts the missing and unseen bins too
    cuts = quantile_cuts(x, max_bins - 2)
    icuts = quantile_cuts(x, max_interaction_bins - 2)
    if icuts.size and cuts.size and not np.isin(icuts, cuts).all():
        # each interaction cut snapped to the nearest main cut, so every main bin lies in one
        # interaction bin (pair purification moves mass into the main terms exactly); a
        # feature with at most max_bins - 2 distinct values has every midpoint as a main cut
        hi = np.clip(np.searchsorted(cuts, icuts), 0, cuts.size - 1)
        lo = np.clip(hi - 1, 0, cuts.size - 1)
        near = np.where(np.abs(cuts[lo] - icuts) <= np.abs(cuts[hi] - icuts), lo, hi)
        icuts = np.unique(cuts[near])
    return FeatureBins(name=name, kind="continuous", cuts=cuts, interaction_cuts=icuts)


def bin_column(column: Any, spec: FeatureBins, *, interaction: bool = False) -> np.ndarray:
    """Bin codes of one feature, shape (n,), dtype uint16, in the layout of the module docstring."""
    if spec.kind == "nominal":
        keys = _category_keys(column)
        lookup = {c: i + 1 for i, c in enumerate(spec.categories)}
        unseen = len(spec.categories) + 1
        codes = np.fromiter(
            (0 if k is None else lookup.get(k, unseen) for k in keys),
            dtype=np.int64,
            count=len(keys),
        )
        return codes.astype(np.uint16)
    x = _numeric_values(column, spec.name)
    cuts = spec.interaction_cuts if interaction else spec.cuts
    codes = np.searchsorted(cuts, x, side="right") + 1
    codes[np.isnan(x)] = 0
    return codes.astype(np.uint16)


def bin_matrix(X: Any, specs: list[FeatureBins], *, interaction: bool = False) -> np.ndarray:
    """Bin codes of every feature, shape (n, p), Fortran-ordered uint16.

    ``X`` is a DataFrame whose columns are in the order of ``specs`` or a 2-D array.
    """
    n = len(X)
    out = np.empty((n, len(specs)), dtype=np.uint16, order="F")
    for j, spec in enumerate(specs):
        col = X.iloc[:, j] if isinstance(X, pd.DataFrame) else np.asarray(X)[:, j]
        out[:, j] = bin_column(col, spec, interaction=interaction)
    return out
