"""Checks at whybox's public boundary: parameters, arrays, DataFrames and feature names.

Every check raises a :class:`~whybox.errors.WhyboxError` subclass whose message names the
parameter, the values allowed and the value received, and says what to do.
"""

from __future__ import annotations

import difflib
import numbers
from collections import Counter
from collections.abc import Iterable, Mapping, Sequence
from typing import Any

import numpy as np
import pandas as pd

from .errors import InvalidInputError, InvalidParameterError

__all__ = [
    "align_columns",
    "as_2d_input",
    "check_finite",
    "check_in",
    "check_int",
    "check_keywords",
    "check_nonempty",
    "check_random_state",
    "check_unique_columns",
    "feature_names_of",
    "n_rows",
]


def check_in(name: str, value: Any, allowed: Iterable[Any]) -> Any:
    """Return ``value`` if it is one of ``allowed``, else raise InvalidParameterError."""
    allowed = list(allowed)
    if not any(_same(value, a) for a in allowed):
        raise InvalidParameterError(
            f"{name}={value!r} is not supported. Expected one of: "
            + ", ".join(repr(a) for a in allowed)
            + "."
        )
    return value


def _same(value: Any, allowed: Any) -> bool:
    """``value == allowed`` as a plain bool; False where the comparison is not a bool (arrays)."""
    if value is allowed:
        return True
    try:
        return bool(value == allowed)
    except Exception:
        return False


def check_int(
    name: str, value: Any, *, minimum: int | None = None, maximum: int | None = None
) -> int:
    """Return ``value`` as an int within ``[minimum, maximum]``, else raise InvalidParameterError."""
    if isinstance(value, bool) or not isinstance(value, numbers.Integral):
        raise InvalidParameterError(
            f"{name} must be an integer, got {value!r} of type {type(value).__name__}."
        )
    value = int(value)
    if minimum is not None and value < minimum:
        raise InvalidParameterError(f"{name} must be at least {minimum}, got {value}.")
    if maximum is not None and value > maximum:
        raise InvalidParameterError(f"{name} must be at most {maximum}, got {value}.")
    return value


#: shap's keyword spellings that users type, and what whybox calls them
SHAP_SPELLINGS: dict[str, str] = {
    "nsamples": "whybox's budget= (model evaluations per row, shap's nsamples / max_evals)",
    "max_evals": "whybox's budget= (model evaluations per row, shap's nsamples / max_evals)",
    "check_additivity": (
        "whybox checks completeness on every call: read exp.completeness_gap(); an exact "
        "method whose gap is large raises or warns with the figure, so there is nothing to "
        "switch off"
    ),
    "l1_reg": "whybox's KernelShap has no l1_reg: it estimates every player (pass no l1_reg)",
    "silent": "whybox prints nothing; pass progress= a callable(done, total) to follow a run",
    "interactions": "whybox.ShapleyInteractions (or TreeShap.explain_interactions)",
    "feature_perturbation": (
        "whybox's TreeShap(..., background=None) for path-dependent values and "
        "TreeShap(..., background=rows) for interventional values"
    ),
}


def check_keywords(
    kwargs: Mapping[str, Any],
    allowed: Iterable[str],
    *,
    where: str,
    constructor: Iterable[str] = (),
    constructor_name: str | None = None,
    spellings: Mapping[str, str] | None = None,
    spellings_of: str = "Captum",
) -> None:
    """Refuse keywords a public call does not read, naming the closest valid one.

    Parameters
    ----------
    kwargs : mapping
        The keywords received (``**kwargs`` of the call).
    allowed : iterable of str
        The keywords the call reads.
    where : str
        The call, for the message, e.g. ``"KernelShap.explain"``.
    constructor : iterable of str
        Keywords that belong to the explainer's constructor instead: a message says to move
        them there.
    constructor_name : str, optional
        How the constructor is written in the message (default: ``where`` before the dot).
    spellings : mapping, optional
        Extra ``{keyword: advice}`` beside :data:`SHAP_SPELLINGS` (e.g. a peer's name).
    spellings_of : str, default "Captum"
        The library whose spelling ``spellings`` holds, named in the message.

    Raises
    ------
    InvalidParameterError
        For the first unknown keyword (all of them are listed).
    """
    allowed = list(allowed)
    unknown = [k for k in kwargs if k not in allowed]
    if not unknown:
        return
    constructor = list(constructor)
    ctor = constructor_name or where.rpartition(".")[0] or where
    advice = {**SHAP_SPELLINGS, **(spellings or {})}
    k = unknown[0]
    listed = f" (unknown: {unknown})" if len(unknown) > 1 else ""
    if k in constructor:
        raise InvalidParameterError(
            f"{where}() got {k}=, which belongs to the constructor{listed}: pass it as "
            f"{ctor}(..., {k}=...) and call {where}() without it."
        )
    if k in advice:
        source = spellings_of if k in (spellings or {}) else "shap"
        raise InvalidParameterError(
            f"{where}() does not take {k}= ({source}'s spelling){listed}: use {advice[k]}. "
            f"It takes: {sorted(allowed)}."
        )
    close = difflib.get_close_matches(k, [*allowed, *constructor], n=1, cutoff=0.6)
    hint = ""
    if close:
        c = close[0]
        hint = (
            f" Did you mean {c}=?"
            if c in allowed
            else f" Did you mean {c}=? It belongs to the constructor: {ctor}(..., {c}=...)."
        )
    raise InvalidParameterError(
        f"{where}() got an unexpected keyword {k}={listed}.{hint} It takes: {sorted(allowed)}"
        + (f"; the constructor takes: {sorted(constructor)}." if constructor else ".")
    )


def check_random_state(random_state: Any) -> np.random.Generator:
    """Turn ``None``, an int, a SeedSequence or a Generator into a numpy Generator."""
    if isinstance(random_state, (bool, np.bool_)):
        raise InvalidParameterError(
            f"random_state must be None, a non-negative int, a numpy SeedSequence or a numpy "
            f"Generator, got the bool {random_state!r}."
        )
    if random_state is None or isinstance(random_state, (numbers.Integral, np.random.SeedSequence)):
        if isinstance(random_state, numbers.Integral) and random_state < 0:
            raise InvalidParameterError(
                f"random_state must be a non-negative integer, got {random_state}."
            )
        return np.random.default_rng(random_state)
    if isinstance(random_state, np.random.Generator):
        return random_state
    raise InvalidParameterError(
        "random_state must be None, a non-negative int, a numpy SeedSequence or a numpy "
        f"Generator, got {type(random_state).__name__}."
    )


def n_rows(X: Any) -> int:
    """Number of rows of an array-like or DataFrame."""
    return int(X.shape[0]) if hasattr(X, "shape") else len(X)


def feature_names_of(X: Any) -> list[str]:
    """Column names of a DataFrame, or ``x0, x1, ...`` for an array of shape (n, p)."""
    if isinstance(X, pd.DataFrame):
        return [str(c) for c in X.columns]
    p = int(np.prod(np.shape(X)[1:])) if np.ndim(X) > 1 else 1
    return [f"x{j}" for j in range(p)]


def check_unique_columns(X: Any, name: str = "X") -> None:
    """Raise InvalidInputError when a DataFrame names a column twice.

    whybox matches columns by name (to the model's fitted names, and a background to the
    explained rows), so a repeated name is ambiguous. Names are compared as strings, as they
    are reported.
    """
    if not isinstance(X, pd.DataFrame):
        return
    counts = Counter(str(c) for c in X.columns)
    duplicated = sorted(c for c, k in counts.items() if k > 1)
    if not duplicated:
        return
    raise InvalidInputError(
        f"{name} has duplicated column names: {duplicated}. Columns are matched by name, so "
        f"each must appear once: rename or drop the repeats (e.g. "
        f"{name}.loc[:, ~{name}.columns.duplicated()])."
    )


def as_2d_input(X: Any, name: str = "X") -> np.ndarray | pd.DataFrame:
    """Accept a DataFrame, a Series, a list or an array and return a DataFrame or 2-D array.

    A 1-D array is read as one row (shape (1, p)), as scikit-learn users pass a single sample.
    A DataFrame whose column names repeat is refused: columns are matched by name.
    """
    if isinstance(X, pd.DataFrame):
        check_unique_columns(X, name=name)
        return X
    if isinstance(X, pd.Series):
        return X.to_frame().T.infer_objects()
    try:
        arr = np.asarray(X)
    except Exception as exc:  # ragged lists and the like
        raise InvalidInputError(
            f"{name} could not be read as an array ({exc}). Pass a 2-D numpy array or a "
            "pandas DataFrame with one row per example."
        ) from exc
    if arr.ndim == 0:
        raise InvalidInputError(
            f"{name} is a scalar; expected a 2-D array or DataFrame with one row per example."
        )
    if arr.ndim == 1:
        arr = arr[None, :]
    if arr.ndim != 2:
        raise InvalidInputError(
            f"{name} has {arr.ndim} dimensions (shape {arr.shape}); tabular explainers expect "
            "a 2-D array (n_rows, n_features) or a DataFrame."
        )
    return arr


def check_nonempty(X: Any, name: str = "X") -> None:
    """Raise InvalidInputError when ``X`` has no rows or no columns."""
    shape = np.shape(X) if not isinstance(X, pd.DataFrame) else X.shape
    if len(shape) == 0 or shape[0] == 0:
        raise InvalidInputError(
            f"{name} is empty (shape {tuple(shape)}): it has no rows to explain. "
            "Pass at least one row."
        )
    if len(shape) > 1 and shape[1] == 0:
        raise InvalidInputError(
            f"{name} has no columns (shape {tuple(shape)}). Pass at least one feature."
        )


def check_finite(X: Any, name: str = "X", *, allow_nan: bool = False) -> None:
    """Raise InvalidInputError if numeric entries of ``X`` are NaN (unless allowed) or infinite.

    The message names the offending columns and how many rows each affects.
    """
    if isinstance(X, pd.DataFrame):
        bad: list[str] = []
        rows_any = np.zeros(len(X), dtype=bool)
        kinds: set[str] = set()
        for j, col in enumerate(X.columns):
            s = X.iloc[:, j]  # by position: duplicated column names would give a DataFrame
            if pd.api.types.is_numeric_dtype(s.dtype) and not pd.api.types.is_bool_dtype(s.dtype):
                v = s.to_numpy(dtype=float, na_value=np.nan)
                is_inf = np.isinf(v)
                is_nan = np.isnan(v) if not allow_nan else np.zeros_like(is_inf)
            else:
                is_inf = np.zeros(len(s), dtype=bool)
                is_nan = s.isna().to_numpy() if not allow_nan else np.zeros_like(is_inf)
            mask = is_inf | is_nan
            if mask.any():
                if is_inf.any():
                    kinds.add("inf")
                if is_nan.any():
                    kinds.add("NaN")
                bad.append(f"{col!s} ({int(mask.sum())} rows)")
                rows_any |= mask
        if bad:
            _raise_nonfinite(name, bad, int(rows_any.sum()), len(X), kinds, allow_nan)
        return
    arr = np.asarray(X)
    if arr.dtype.kind not in "fc":
        if arr.dtype.kind == "O" and arr.ndim > 0:
            # object arrays (mixed types): float infinities, and missing entries (NaN, None,
            # pd.NA) unless allowed, as the DataFrame branch does
            flat = arr.reshape(arr.shape[0], -1)
            is_inf = np.zeros(flat.shape, dtype=bool)
            is_nan = np.zeros(flat.shape, dtype=bool)
            for idx, v in np.ndenumerate(flat):
                if isinstance(v, (float, np.floating)) and np.isinf(v):
                    is_inf[idx] = True
                elif not allow_nan and pd.api.types.is_scalar(v) and pd.isna(v):
                    is_nan[idx] = True
            kinds = {k for k, m in (("inf", is_inf), ("NaN", is_nan)) if m.any()}
            _report_array(name, is_inf | is_nan, kinds, allow_nan)
        return
    flat = arr.reshape(arr.shape[0], -1)
    is_inf = np.isinf(flat)
    mask = is_inf if allow_nan else ~np.isfinite(flat)
    if mask.any():
        kinds = set()
        if is_inf.any():
            kinds.add("inf")
        if (mask & ~is_inf).any():
            kinds.add("NaN")
        _report_array(name, mask, kinds, allow_nan)


def _report_array(name: str, mask: np.ndarray, kinds: set[str], allow_nan: bool) -> None:
    if not mask.any():
        return
    cols = np.flatnonzero(mask.any(axis=0))
    bad = [f"x{j} ({int(mask[:, j].sum())} rows)" for j in cols[:20]]
    if len(cols) > 20:
        bad.append(f"... and {len(cols) - 20} more columns")
    _raise_nonfinite(name, bad, int(mask.any(axis=1).sum()), mask.shape[0], kinds, allow_nan)


def _raise_nonfinite(
    name: str, bad: list[str], n_bad_rows: int, n_total: int, kinds: set[str], allow_nan: bool
) -> None:
    what = " and ".join(sorted(kinds))
    advice = (
        "Replace infinite values with finite ones."
        if allow_nan
        else "Impute or drop these rows first; if your model handles missing values itself "
        "(e.g. gradient-boosted trees), pass allow_nan=True."
    )
    raise InvalidInputError(
        f"{name} contains {what} values in {len(bad)} column(s): {', '.join(bad)}; "
        f"{n_bad_rows} of {n_total} rows are affected. {advice}"
    )


def align_columns(
    X: Any,
    expected: Sequence[str] | None,
    *,
    n_expected: int | None = None,
    name: str = "X",
) -> Any:
    """Check that ``X`` has the features the model was fitted on and put them in order.

    Parameters
    ----------
    X : DataFrame or array of shape (n, p)
        Inputs to check.
    expected : sequence of str or None
        Column names the model was fitted on (``feature_names_in_``), in order.
    n_expected : int or None
        Number of features the model expects (``n_features_in_``), when names are unknown.

    Returns
    -------
    DataFrame or array
        ``X`` itself, or a DataFrame with its columns reordered to ``expected``.
    """
    if isinstance(X, pd.DataFrame) and expected is not None:
        have = [str(c) for c in X.columns]
        expected = [str(c) for c in expected]
        duplicated = sorted({c for c in have if have.count(c) > 1})
        if duplicated:
            raise InvalidInputError(
                f"{name} has duplicated column names: {duplicated}. Each feature must appear "
                f"once; expected exactly: {expected}."
            )
        missing = [c for c in expected if c not in have]
        unexpected = [c for c in have if c not in expected]
        if missing or unexpected:
            parts = []
            if missing:
                parts.append(f"missing columns: {missing}")
            if unexpected:
                parts.append(f"unexpected columns: {unexpected}")
            raise InvalidInputError(
                f"{name} does not have the columns the model was fitted on ("
                + "; ".join(parts)
                + f"). Expected exactly: {expected}. Rename or select the columns to match."
            )
        if have != expected:
            X = X.copy()
            X.columns = have
            X = X[expected]
        return X
    p = X.shape[1] if np.ndim(X) > 1 else 1
    n_exp = len(expected) if expected is not None else n_expected
    if n_exp is not None and p != n_exp:
        raise InvalidInputError(
            f"{name} has {p} features but the model expects {n_exp}"
            + (f" ({list(expected)})" if expected is not None else "")
            + ". Pass inputs with the same features, in the same order, as at fit time."
        )
    return X
