"""Feature schema of :mod:`whybox.recourse.counterfactuals`: encode rows to floats and back.

Numeric features keep their values; categorical ones (pandas categoricals, strings, objects,
bools and any column listed as categorical) become the index of their category. Decoding
rebuilds rows with the columns and dtypes of the training data, so the model is always
called with inputs like the ones it was fitted on.
"""

from __future__ import annotations

import numbers
from collections.abc import Callable, Mapping, Sequence
from typing import Any

import numpy as np
import pandas as pd

from .._validation import align_columns, feature_names_of
from ..errors import InvalidInputError, InvalidParameterError

__all__ = ["Schema", "build_schema"]

NamesCheck = Callable[[str, Sequence[Any], "Schema"], list[int]]


class Schema:
    """Column kinds, categories, training ranges and scales of ``X_train``.

    Attributes
    ----------
    columns : list of str
    is_cat, is_int, ordered : ndarray of bool, shape (p,)
    categories : list of ndarray or None
        Category values per categorical feature (object arrays), None for numeric ones.
    allowed : dict of int to ndarray of bool
        Categories a categorical feature may be changed to (seen in training, or listed).
    lo, hi : ndarray of shape (p,)
        Training minimum and maximum of numeric features (NaN for categorical ones).
    scale : ndarray of shape (p,)
        Median absolute deviation of numeric features (standard deviation where the MAD is
        zero, 1 for constant columns); 1 for categorical features.
    center : ndarray of shape (p,)
        Training median of numeric features.
    """

    def __init__(self, X: Any) -> None:
        self.frame = isinstance(X, pd.DataFrame)
        self.columns = feature_names_of(X)
        self.p = len(self.columns)
        self.dtypes = list(X.dtypes) if self.frame else [np.asarray(X).dtype] * self.p
        self.is_cat = np.zeros(self.p, dtype=bool)
        self.is_int = np.zeros(self.p, dtype=bool)
        self.ordered = np.zeros(self.p, dtype=bool)
        self.pd_cat = np.zeros(self.p, dtype=bool)
        self.categories: list[np.ndarray | None] = [None] * self.p
        self.allowed: dict[int, np.ndarray] = {}
        self.lo = np.full(self.p, np.nan)
        self.hi = np.full(self.p, np.nan)
        self.scale = np.ones(self.p)
        self.center = np.zeros(self.p)

    def index(self, name: Any) -> int | None:
        """Position of a feature given by name (or integer position); None if unknown."""
        if isinstance(name, str):
            return self.columns.index(name) if name in self.columns else None
        if isinstance(name, numbers.Integral) and not isinstance(name, bool):
            return int(name) if 0 <= int(name) < self.p else None
        return self.columns.index(str(name)) if str(name) in self.columns else None

    # ---------------------------------------------------------------- columns
    def _column(self, X: Any, j: int) -> Any:
        return X.iloc[:, j] if isinstance(X, pd.DataFrame) else np.asarray(X)[:, j]

    def encode(self, X: Any, name: str) -> np.ndarray:
        """Rows (m, p) -> float codes (m, p); a missing numeric value stays NaN (the model
        decides what it means); unknown or missing categories and infinities are refused."""
        m = len(X)
        Z = np.empty((m, self.p))
        for j in range(self.p):
            col = self._column(X, j)
            if self.is_cat[j]:
                Z[:, j] = self._codes(col, j, name)
                continue
            try:
                v = np.asarray(pd.to_numeric(pd.Series(np.asarray(col, dtype=object))), float)
            except (TypeError, ValueError) as exc:
                raise InvalidInputError(
                    f"column {self.columns[j]!r} of {name} is numeric in X_train but holds "
                    f"non-numeric values here ({exc}). Pass numbers for it."
                ) from exc
            if np.isinf(v).any():
                raise InvalidInputError(
                    f"column {self.columns[j]!r} of {name} has {int(np.isinf(v).sum())} "
                    "infinite value(s); counterfactual search needs finite numbers (missing "
                    "values may be NaN). Replace them first."
                )
            Z[:, j] = v
        return Z

    def _codes(self, col: Any, j: int, name: str) -> np.ndarray:
        cats: Any = self.categories[j]
        if self.pd_cat[j] and isinstance(getattr(col, "dtype", None), pd.CategoricalDtype):
            if list(col.dtype.categories) == list(cats):
                codes = np.asarray(col.cat.codes, dtype=np.intp)
            else:
                codes = pd.Index(cats).get_indexer(np.asarray(col, dtype=object))
        else:
            codes = pd.Index(cats).get_indexer(np.asarray(col, dtype=object))
        if (codes < 0).any():
            bad = sorted({str(v) for v in np.asarray(col, dtype=object)[codes < 0]})[:10]
            raise InvalidInputError(
                f"column {self.columns[j]!r} of {name} has values {bad} that are not "
                f"categories seen in X_train ({[_plain(c) for c in cats]}). Use one of these, "
                "or list the category in categorical={...} when constructing Counterfactuals."
            )
        return codes.astype(float)

    def decode(self, Z: np.ndarray) -> Any:
        """Float codes (m, p) -> rows like ``X_train`` (a DataFrame with its dtypes, or array)."""
        if not self.frame:
            if not self.is_cat.any() and self.dtypes[0].kind in "fiu":
                return Z.astype(self.dtypes[0]) if self.dtypes[0].kind == "f" else Z.copy()
            out = np.empty(Z.shape, dtype=object if self.dtypes[0].kind == "O" else float)
            for j in range(self.p):
                out[:, j] = self._decode_column(Z[:, j], j)
            return out
        data = {}
        for j, c in enumerate(self.columns):
            data[c] = self._decode_column(Z[:, j], j)
        return pd.DataFrame(data, columns=self.columns)

    def _decode_column(self, z: np.ndarray, j: int) -> Any:
        dtype = self.dtypes[j]
        if self.is_cat[j]:
            codes = z.astype(np.intp)
            if self.pd_cat[j]:
                return pd.Categorical.from_codes(codes, dtype=dtype)
            values = self.categories[j][codes]  # type: ignore[index]
            if not self.frame:
                return values
            try:
                return pd.array(values, dtype=dtype)
            except (TypeError, ValueError):
                return values
        if not self.frame:
            return z
        if self.is_int[j] and getattr(dtype, "kind", "f") in "iu":
            return z.astype(np.int64).astype(dtype)
        return z.astype(dtype) if isinstance(dtype, np.dtype) else pd.array(z, dtype=dtype)

    def value_of(self, j: int, z: float) -> Any:
        """The original value behind code or value ``z`` of feature ``j``."""
        if self.is_cat[j]:
            return _plain(self.categories[j][int(z)])  # type: ignore[index]
        return int(z) if self.is_int[j] else float(z)

    def to_frame(self, X: Any) -> pd.DataFrame:
        """Rows as a DataFrame with the feature names (arrays get columns x0, x1, ...)."""
        if isinstance(X, pd.DataFrame):
            return X.reset_index(drop=True)
        return pd.DataFrame(np.asarray(X), columns=self.columns)

    def embed(self, Z: np.ndarray) -> np.ndarray:
        """Rows in the space where L1 distance is the proximity: scaled values, one-hot x 0.5."""
        num = np.flatnonzero(~self.is_cat)
        parts = [(Z[:, num] - self.center[num]) / self.scale[num]]
        for j in np.flatnonzero(self.is_cat):
            onehot = np.zeros((len(Z), len(self.categories[j])))  # type: ignore[arg-type]
            onehot[np.arange(len(Z)), Z[:, j].astype(np.intp)] = 0.5
            parts.append(onehot)
        return np.hstack(parts)

    def check_query(self, q: Any) -> Any:
        """Align a one-row query with the training columns (by name for DataFrames)."""
        if self.frame:
            if isinstance(q, pd.DataFrame):
                return align_columns(q, self.columns, name="x")
            arr = np.asarray(q)
            if arr.shape[1] != self.p:
                raise InvalidInputError(
                    f"x has {arr.shape[1]} values but X_train has {self.p} columns "
                    f"({self.columns}). Pass a 1-row DataFrame with these columns."
                )
            return pd.DataFrame(arr, columns=self.columns)
        if isinstance(q, pd.DataFrame):
            q = q.to_numpy()
        if q.shape[1] != self.p:
            raise InvalidInputError(
                f"x has {q.shape[1]} values but X_train has {self.p} columns. Pass a 1-D array "
                f"of length {self.p} (or a 1-row array)."
            )
        return q

    # ---------------------------------------------------------------- constraints
    def parse_ranges(self, ranges: Mapping[Any, Any], names_check: NamesCheck) -> dict:
        """``{feature: (lo, hi)}`` or ``{feature: [categories]}`` -> ``{j: (lo, hi) | mask}``."""
        out: dict[int, Any] = {}
        for name, r in ranges.items():
            (j,) = names_check("ranges", [name], self)
            if self.is_cat[j]:
                cats = list(self.categories[j])  # type: ignore[arg-type]
                listed = [r] if isinstance(r, str) else list(r)
                bad = [v for v in listed if v not in cats]
                if bad:
                    raise InvalidParameterError(
                        f"ranges[{name!r}] lists {bad}, which are not categories of "
                        f"{name!r} ({[_plain(c) for c in cats]}). For a categorical feature, "
                        "ranges lists the categories it may take."
                    )
                out[j] = np.isin(np.arange(len(cats)), [cats.index(v) for v in listed])
                continue
            if isinstance(r, (str, bytes)) or not isinstance(r, Sequence) or len(r) != 2:
                raise InvalidParameterError(
                    f"ranges[{name!r}]={r!r} is not a (lo, hi) pair. Pass two numbers (None "
                    "keeps the training bound at that end), e.g. ranges={'age': (18, 80)}."
                )
            lo, hi = (None if v is None else _number(name, v) for v in r)
            if lo is not None and hi is not None and lo > hi:
                raise InvalidParameterError(
                    f"ranges[{name!r}]=({lo:g}, {hi:g}) is contradictory: lo > hi, so no value "
                    "satisfies it. Pass (lo, hi) with lo <= hi."
                )
            if self.is_int[j] and lo is not None and hi is not None and np.ceil(lo) > hi:
                raise InvalidParameterError(
                    f"ranges[{name!r}]=({lo:g}, {hi:g}) contains no integer, but {name!r} "
                    "holds integers in X_train. Widen the range."
                )
            out[j] = (lo, hi)
        return out


def _number(name: Any, v: Any) -> float:
    if isinstance(v, bool) or not isinstance(v, numbers.Real) or np.isnan(v):
        raise InvalidParameterError(
            f"ranges[{name!r}] has the bound {v!r}; bounds must be numbers or None."
        )
    return float(v)


def _plain(v: Any) -> Any:
    return v.item() if isinstance(v, np.generic) else v


def _is_categorical_dtype(dtype: Any) -> bool:
    return (
        isinstance(dtype, pd.CategoricalDtype)
        or pd.api.types.is_bool_dtype(dtype)
        or pd.api.types.is_string_dtype(dtype)
        or pd.api.types.is_object_dtype(dtype)
    )


def build_schema(
    X: Any,
    categorical: Sequence[Any] | Mapping[Any, Sequence[Any]],
    names_check: NamesCheck,
) -> Schema:
    """Learn the schema of ``X_train`` (a DataFrame or a 2-D array)."""
    s = Schema(X)
    listed = (
        dict(categorical) if isinstance(categorical, Mapping) else {c: None for c in categorical}
    )
    listed_idx = dict(
        zip(names_check("categorical", list(listed), s), listed.values(), strict=True)
    )
    for j in range(s.p):
        col = s._column(X, j)
        dtype = s.dtypes[j]
        if s.frame and isinstance(dtype, pd.CategoricalDtype):
            s.is_cat[j] = s.pd_cat[j] = True
            s.ordered[j] = bool(dtype.ordered)
            cats = np.asarray(dtype.categories, dtype=object)
            seen = np.zeros(len(cats), dtype=bool)
            codes = np.asarray(col.cat.codes)
            if (codes < 0).any():
                raise InvalidInputError(
                    f"column {s.columns[j]!r} of X_train has {int((codes < 0).sum())} missing "
                    "value(s); counterfactual search needs complete rows. Impute or drop them."
                )
            seen[np.unique(codes)] = True
        elif j in listed_idx or (s.frame and _is_categorical_dtype(dtype)) or dtype.kind == "O":
            values = pd.Series(np.asarray(col, dtype=object))
            if j not in listed_idx and not s.frame and _numeric(values):
                _numeric_column(s, j, np.asarray(values, dtype=float))
                continue
            if values.isna().any():
                raise InvalidInputError(
                    f"column {s.columns[j]!r} of X_train has {int(values.isna().sum())} "
                    "missing value(s); counterfactual search needs complete rows. Impute or "
                    "drop them."
                )
            s.is_cat[j] = True
            uniq = list(pd.unique(values))
            try:
                uniq = sorted(uniq)
            except TypeError:
                pass
            cats = np.empty(len(uniq), dtype=object)
            cats[:] = uniq
            seen = np.ones(len(cats), dtype=bool)
        else:
            _numeric_column(s, j, np.asarray(col, dtype=float))
            continue
        extra = listed_idx.get(j)
        if extra is not None:
            extra = list(extra)
            if s.pd_cat[j]:
                bad = [v for v in extra if v not in list(cats)]
                if bad:
                    raise InvalidParameterError(
                        f"categorical[{s.columns[j]!r}] lists {bad}, which are not categories "
                        f"of the column's dtype ({list(cats)}); the model could not be called "
                        "with them. List only categories of the column."
                    )
            new = [v for v in extra if v not in list(cats)]
            if new:
                cats = np.concatenate([cats, np.asarray(new, dtype=object)])
            seen = np.isin(np.arange(len(cats)), [list(cats).index(v) for v in extra])
        s.categories[j] = cats
        s.allowed[j] = seen
    return s


def _numeric(values: pd.Series) -> bool:
    try:
        np.asarray(values, dtype=float)
    except (TypeError, ValueError):
        return False
    return True


def _numeric_column(s: Schema, j: int, v: np.ndarray) -> None:
    if np.isinf(v).any():
        raise InvalidInputError(
            f"column {s.columns[j]!r} of X_train has {int(np.isinf(v).sum())} infinite "
            "value(s); counterfactual search needs finite numbers (missing values may be "
            "NaN). Replace them first."
        )
    v = v[~np.isnan(v)]  # missing values: the model's business; ranges use the rest
    if v.size == 0:
        raise InvalidInputError(
            f"column {s.columns[j]!r} of X_train has only missing values; it has no range "
            "to search. Drop the column (and from the model) or fill it."
        )
    dtype = s.dtypes[j]
    s.is_int[j] = getattr(dtype, "kind", "f") in "iu" or bool(np.all(v == np.round(v)))
    s.lo[j], s.hi[j] = float(v.min()), float(v.max())
    med = float(np.median(v))
    mad = float(np.median(np.abs(v - med)))
    std = float(v.std())
    s.scale[j] = mad if mad > 0 else (std if std > 0 else 1.0)
    s.center[j] = med
