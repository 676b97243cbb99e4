"""Partial dependence (PDP) and individual conditional expectation (ICE) curves.

:func:`partial_dependence` sets one feature (or a pair) of every row to each value of a grid,
evaluates the model and returns the curves of the rows (ICE) and their average (PDP). The grid
is built as scikit-learn builds it: ``grid_resolution`` evenly spaced values between the
``percentiles`` of the feature (``scipy.stats.mstats.mquantiles``), or the sorted unique values
when there are fewer than ``grid_resolution`` of them, or the categories of a categorical
feature. Missing values are left out of the grid.

Two ways to compute the same numbers (``method=``):

* ``"brute"``: call the model on the modified rows (any model ``wrap_model`` accepts,
  DataFrames keep their dtypes: a categorical column is set to a category of its dtype).
* ``"tree"``: for tree ensembles that :func:`~whybox.trees.parse.parse_tree_model` reads,
  one traversal per tree and row gives the row's raw output at every grid point at once
  (:mod:`whybox.inspection._partial_dependence_tree`); the raw output is then mapped to the requested output
  as the model itself does (sigmoid / softmax / exp, class selection, ``link="logit"``). The
  mapping is checked against the model's own output on the first rows.

``"auto"`` takes the tree path when the model and its output allow it, else brute force.

References
----------
Friedman, J. H. (2001). Greedy function approximation: a gradient boosting machine. Annals of
Statistics 29(5), 1189-1232.
Goldstein, A., Kapelner, A., Bleich, J. and Pitkin, E. (2015). Peeking inside the black box:
visualizing statistical learning with plots of individual conditional expectation. Journal of
Computational and Graphical Statistics 24(1), 44-65.
"""

from __future__ import annotations

import numbers
import re
import sys
import warnings
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd

from .._validation import (
    as_2d_input,
    check_in,
    check_int,
    check_keywords,
    check_nonempty,
    check_random_state,
    check_unique_columns,
)
from ..errors import InvalidInputError, InvalidParameterError, WhyboxError
from ..models import ModelFunction, wrap_model

if TYPE_CHECKING:
    from matplotlib.axes import Axes

__all__ = ["PartialDependence", "partial_dependence"]

KINDS = ("average", "individual", "both")
METHODS = ("auto", "brute", "tree")
_BATCH_ROWS = 65536  # rows per model call (results do not depend on it)


# ------------------------------------------------------------------ result type
@dataclass
class PartialDependence:
    """Partial dependence and ICE curves of one feature or a pair.

    Attributes
    ----------
    feature : str or tuple of two str
    grid : ndarray (n_grid,), or a tuple of two grids for a pair
    average : ndarray (n_grid,) or (n1, n2); a trailing output axis (…, k) for several outputs
        The (weighted) mean of the ICE curves; centred ICE curves average to a curve that
        starts at 0.
    individual : ndarray (n_rows, n_grid) or (n_rows, n1, n2) (…, k), or None
        ICE curves (``kind="individual"`` or ``"both"``), centred at the first grid point
        when ``centered=True``.
    kind : {"average", "individual", "both"}
    output : str
        What the values are, e.g. ``"probability of class 1"``.
    output_names : list of str
    categorical : bool or tuple of two bool
    centered : bool
    method : {"brute", "tree"}
        How the curves were computed.
    feature_values : ndarray or tuple of ndarrays
        The feature's values in the rows used (for rug plots).
    """

    feature: Any
    grid: Any
    average: np.ndarray
    individual: np.ndarray | None
    kind: str
    output: str
    output_names: list[str]
    categorical: Any
    centered: bool
    method: str
    feature_values: Any = field(default=None, repr=False)

    @property
    def is_pair(self) -> bool:
        return isinstance(self.feature, tuple)

    @property
    def multi_output(self) -> bool:
        return self.average.ndim == (3 if self.is_pair else 2)

    def plot(self, ax: Axes | None = None, **kwargs: Any) -> Axes:
        """PDP with ICE lines and a rug (1-D) or a contour / heatmap (pair); see
        :func:`whybox.viz.effects.plot_partial_dependence`."""
        from ..viz.effects import plot_partial_dependence

        check_plot_keywords(kwargs, plot_partial_dependence, "PartialDependence.plot")
        return plot_partial_dependence(self, ax=ax, **kwargs)

    def to_frame(self) -> pd.DataFrame:
        """One row per grid point (and output): the feature value(s) and ``average``."""
        feats = self.feature if self.is_pair else (self.feature,)
        if self.is_pair:
            g1, g2 = self.grid
            cols = {
                feats[0]: np.repeat(np.asarray(g1, dtype=object), len(g2)),
                feats[1]: np.tile(np.asarray(g2, dtype=object), len(g1)),
            }
            n_points = len(g1) * len(g2)
        else:
            cols = {feats[0]: np.asarray(self.grid, dtype=object)}
            n_points = len(self.grid)
        avg = self.average.reshape(n_points, -1)
        frames = []
        for k, name in enumerate(self.output_names):
            f = pd.DataFrame({c: v for c, v in cols.items()})
            if self.multi_output:
                f["output"] = name
            f["average"] = avg[:, k]
            frames.append(f)
        return pd.concat(frames, ignore_index=True) if len(frames) > 1 else frames[0]


# ------------------------------------------------------------------ shared helpers
def check_plot_keywords(kwargs: dict[str, Any], fn: Any, where: str) -> None:
    """Refuse a keyword the plotting function ``fn`` does not take (InvalidParameterError)."""
    import inspect

    params = inspect.signature(fn).parameters
    allowed = [k for k, v in list(params.items())[1:] if v.kind is v.KEYWORD_ONLY or k == "ax"]
    check_keywords(kwargs, allowed, where=where)


def is_per_row_target(target: Any) -> bool:
    """A 1-D numpy array, pandas Series or torch tensor: one target per row (CONTRACT §1)."""
    if isinstance(target, (np.ndarray, pd.Series)):
        return np.ndim(target) == 1
    return type(target).__module__.startswith("torch") and np.ndim(target) == 1


def check_global_target(target: Any, where: str) -> Any:
    """``target`` for a method that summarises over rows: one output (or a list) for all rows.

    A 0-d array becomes its scalar; a per-row target (1-D array, Series or tensor) is refused,
    as the method has no single row to give it to.
    """
    if isinstance(target, np.ndarray) and target.ndim == 0:
        return target.item()
    if is_per_row_target(target):
        raise InvalidParameterError(
            f"{where} summarises over the rows, so target= names the output(s) for all rows: "
            "a class label or index (e.g. target=0 or target='0'), a list of them, or 'all'. "
            f"It got a 1-D {type(target).__name__} of {len(target)} entries, which whybox reads "
            "as one target per row (for per-row explanations such as wb.explain). Pass "
            "target=list(...) to explain several outputs."
        )
    return target


def resolve_feature(X: Any, feature: Any, what: str = "feature") -> tuple[str, int]:
    """Name and column position of ``feature`` (a column name or an integer position)."""
    names = [str(c) for c in X.columns] if isinstance(X, pd.DataFrame) else None
    p = X.shape[1]
    if isinstance(feature, (bool, np.bool_)):
        raise InvalidParameterError(
            f"{what}={feature!r} is a bool; pass a column name or an integer column position."
        )
    if isinstance(feature, numbers.Integral):
        j = int(feature)
        if not -p <= j < p:
            raise InvalidParameterError(
                f"{what}={j} is out of range: X has {p} columns (positions 0 to {p - 1})."
            )
        j %= p
        return (names[j] if names else f"x{j}"), j
    if isinstance(feature, str):
        if names is not None and feature in names:
            return feature, names.index(feature)
        if names is None and re.fullmatch(r"x\d+", feature) and int(feature[1:]) < p:
            return feature, int(feature[1:])
        listed = names if names is not None else [f"x{j}" for j in range(p)]
        raise InvalidParameterError(
            f"{what} {feature!r} is not a column of X. X's columns are: {listed}. Pass one "
            "of these names or an integer column position."
        )
    raise InvalidParameterError(
        f"{what} must be a column name or an integer position, got {type(feature).__name__} "
        f"{feature!r}."
    )


def column(X: Any, j: int) -> Any:
    """Column ``j`` of X: a Series for DataFrames, a 1-D array otherwise."""
    return X.iloc[:, j] if isinstance(X, pd.DataFrame) else np.asarray(X)[:, j]


def is_categorical_column(col: Any) -> bool:
    """pandas categorical, string, object and bool columns are categorical."""
    dt = col.dtype
    if isinstance(dt, pd.CategoricalDtype) or pd.api.types.is_bool_dtype(dt):
        return True
    return not pd.api.types.is_numeric_dtype(dt)


def numeric_values(col: Any, name: str) -> np.ndarray:
    """A numeric column as float64 (NaN for missing)."""
    try:
        if isinstance(col, pd.Series):
            return col.to_numpy(dtype=np.float64, na_value=np.nan)
        return np.asarray(col, dtype=np.float64)
    except (TypeError, ValueError):
        raise InvalidInputError(
            f"feature {name!r} holds values that are not numbers; mark it categorical "
            f"(categorical=[{name!r}]) or pass numbers."
        ) from None


def categories_of(col: Any) -> np.ndarray:
    """Observed categories: in dtype order for pandas categoricals, else sorted; no missing."""
    if isinstance(col, pd.Series) and isinstance(col.dtype, pd.CategoricalDtype):
        present = set(col.dropna().unique().tolist())
        return np.asarray([c for c in col.dtype.categories if c in present], dtype=object)
    values = pd.Series(np.asarray(col, dtype=object) if not isinstance(col, pd.Series) else col)
    values = values[~values.isna()]
    uniq = values.unique()
    try:
        return np.asarray(sorted(uniq.tolist()), dtype=object)
    except TypeError:  # mixed types: first-seen order
        return np.asarray(uniq.tolist(), dtype=object)


def _column_like(col: Any, values: np.ndarray) -> Any:
    """``values`` with the dtype of ``col`` where that is lossless."""
    dt = col.dtype
    if isinstance(dt, pd.CategoricalDtype):
        return pd.Categorical(values, dtype=dt)
    if isinstance(col, pd.Series) and isinstance(dt, pd.api.extensions.ExtensionDtype):
        try:
            return pd.array(values, dtype=dt)
        except (TypeError, ValueError):
            return values
    if dt.kind in "iub":
        try:
            v = np.asarray(values, dtype=np.float64)
        except (TypeError, ValueError):
            return np.asarray(values, dtype=object)
        if np.all(np.isfinite(v)) and np.all(v == np.round(v)):
            return v.astype(dt)
        return v
    if dt.kind == "f":
        try:
            return np.asarray(values, dtype=dt)
        except (TypeError, ValueError):
            return np.asarray(values, dtype=object)
    return np.asarray(values, dtype=object)


def replace_columns(X: Any, rows: np.ndarray, positions: list[int], values: list[Any]) -> Any:
    """Rows ``rows`` of X with column ``positions[a]`` set to ``values[a]`` (length len(rows)).

    DataFrames keep every column's dtype (a categorical column gets a categorical of the same
    dtype); arrays are upcast only when the new values need it.
    """
    if isinstance(X, pd.DataFrame):
        out = X.iloc[rows]
        for j, v in zip(positions, values, strict=True):
            out.isetitem(j, _column_like(X.iloc[:, j], np.asarray(v, dtype=object)))
        return out
    arr = np.asarray(X)
    new = [
        _column_like(arr[:, j], np.asarray(v, dtype=object))
        for j, v in zip(positions, values, strict=True)
    ]
    dtype = np.result_type(arr.dtype, *[np.asarray(v).dtype for v in new])
    out = arr[rows].astype(dtype, copy=True)
    for j, v in zip(positions, new, strict=True):
        out[:, j] = v
    return out


def evaluate_points(
    mf: ModelFunction, X: Any, positions: list[int], points: list[np.ndarray]
) -> np.ndarray:
    """Model outputs (n, G, k) of every row of X with columns ``positions`` set to each of
    the G grid points (``points[a][g]`` is feature a's value at point g)."""
    n, G = len(X), len(points[0])
    out = np.empty((n, G, mf.n_outputs))
    per = max(1, _BATCH_ROWS // max(n, 1))
    base = np.arange(n)
    for g0 in range(0, G, per):
        g1 = min(G, g0 + per)
        m = g1 - g0
        vals = [np.repeat(np.asarray(pt, dtype=object)[g0:g1], n) for pt in points]
        Xr = replace_columns(X, np.tile(base, m), positions, vals)
        out[:, g0:g1] = mf(Xr).reshape(m, n, -1).transpose(1, 0, 2)
    return out


def sklearn_grid(
    values: Any,
    categorical: bool,
    grid_resolution: int,
    percentiles: tuple[float, float],
    name: str,
) -> np.ndarray:
    """scikit-learn's grid: categories, unique values if fewer than ``grid_resolution``, else
    ``linspace`` between the ``mquantiles`` at ``percentiles`` (missing values dropped)."""
    if categorical:
        return categories_of(values)
    v = numeric_values(values, name)
    v = v[~np.isnan(v)]
    if v.size == 0:
        raise InvalidInputError(f"feature {name!r} has only missing values; no grid can be built.")
    uniques = np.unique(v)
    if uniques.shape[0] < grid_resolution:
        return uniques
    from scipy.stats.mstats import mquantiles

    lo, hi = mquantiles(v, prob=percentiles, axis=0)
    if np.allclose(lo, hi):
        raise InvalidParameterError(
            f"percentiles={tuple(percentiles)} of feature {name!r} are too close to each other "
            f"({lo} and {hi}) to build a grid; choose percentiles further apart, or pass grid=."
        )
    return np.linspace(lo, hi, num=grid_resolution, endpoint=True)


def _check_percentiles(percentiles: Any) -> tuple[float, float]:
    try:
        lo, hi = (float(p) for p in percentiles)
    except (TypeError, ValueError):
        raise InvalidParameterError(
            f"percentiles must be two numbers in [0, 1], e.g. (0.05, 0.95); got {percentiles!r}."
        ) from None
    if not (0 <= lo < hi <= 1):
        raise InvalidParameterError(
            f"percentiles must satisfy 0 <= low < high <= 1, got {percentiles!r}."
        )
    return lo, hi


def _user_grid(grid: Any, col: Any, categorical: bool, name: str) -> np.ndarray:
    arr = np.asarray(grid, dtype=object if categorical else None)
    if arr.ndim != 1 or arr.size == 0:
        raise InvalidParameterError(
            f"grid for feature {name!r} must be a non-empty 1-D sequence of values, got shape "
            f"{arr.shape}."
        )
    if categorical:
        known = categories_of(col)
        if isinstance(col.dtype, pd.CategoricalDtype):
            allowed = list(col.dtype.categories)
            bad = [g for g in arr.tolist() if g not in allowed]
            if bad:
                raise InvalidParameterError(
                    f"grid for categorical feature {name!r} has values {bad} that are not "
                    f"categories of its dtype ({allowed}). Use categories of the column."
                )
        unseen = [g for g in arr.tolist() if g not in set(known.tolist())]
        if unseen:
            warnings.warn(
                f"grid for feature {name!r} has categories not seen in X: {unseen}; the model "
                "is evaluated on them anyway.",
                UserWarning,
                stacklevel=3,
            )
        return arr
    try:
        g = np.asarray(grid, dtype=np.float64)
    except (TypeError, ValueError):
        raise InvalidParameterError(
            f"grid for numeric feature {name!r} must hold numbers, got {grid!r}; for categories "
            f"mark the feature categorical (categorical=[{name!r}])."
        ) from None
    if np.isnan(g).any():
        raise InvalidParameterError(f"grid for feature {name!r} contains NaN; pass numbers.")
    v = numeric_values(col, name)
    v = v[~np.isnan(v)]
    if v.size and (g.min() < v.min() or g.max() > v.max()):
        warnings.warn(
            f"the grid of feature {name!r} spans [{g.min():.6g}, {g.max():.6g}] but the data "
            f"range is [{v.min():.6g}, {v.max():.6g}]: the curves extrapolate outside the "
            "data, where the model has seen no examples.",
            UserWarning,
            stacklevel=3,
        )
    return np.asarray(grid) if np.asarray(grid).dtype.kind in "iuf" else g


def _grids_for(
    cols: list[Any],
    names: list[str],
    flags: list[bool],
    grid: Any,
    grid_resolution: int,
    percentiles: tuple[float, float],
    pair: bool,
) -> list[np.ndarray]:
    """The grid of each explained feature (one, or two for a pair): scikit-learn's grid
    (:func:`sklearn_grid`) when ``grid`` is None, else the user's grid(s), checked against
    the column. ``cols[a]`` holds every value of feature ``a`` (the serial and the Dask
    paths both build their grids here)."""
    grids = []
    for a, (col, name, flag) in enumerate(zip(cols, names, flags, strict=True)):
        if grid is None:
            grids.append(sklearn_grid(col, flag, grid_resolution, percentiles, name))
        else:
            if pair and (not isinstance(grid, (tuple, list)) or len(grid) != 2):
                raise InvalidParameterError(
                    "for a pair of features, grid must be a tuple of two grids (one per feature)."
                )
            grids.append(_user_grid(grid[a] if pair else grid, col, flag, name))
    return grids


def _categorical_flags(X: Any, positions: list[int], names: list[str], categorical: Any) -> list:
    if categorical is None:
        return [is_categorical_column(column(X, j)) for j in positions]
    if isinstance(categorical, (bool, np.bool_)):
        return [bool(categorical)] * len(positions)
    if isinstance(categorical, (str, numbers.Integral)):
        categorical = [categorical]
    try:
        flagged = {resolve_feature(X, c, "categorical")[1] for c in categorical}
    except TypeError:
        raise InvalidParameterError(
            "categorical must be None (from the dtypes), a bool, or a list of column names / "
            f"positions; got {categorical!r}."
        ) from None
    del names  # positions identify the features
    return [j in flagged or is_categorical_column(column(X, j)) for j in positions]


# ------------------------------------------------------------------ tree path
def _output_map(ens: Any, mf: ModelFunction) -> Any:
    """Function (…, K) raw ensemble output -> (…, k) outputs of ``mf``; None if not exact."""
    from scipy.special import expit, softmax

    K, total = ens.n_outputs, mf._n_outputs_total
    raw_name = str(ens.raw_output)
    full = None
    if mf.kind == "probability":
        if ens.link == "logistic" and K == 1 and total == 2:

            def full(r: np.ndarray) -> np.ndarray:
                s = expit(r[..., 0])
                return np.stack([1.0 - s, s], axis=-1)

        elif ens.link == "softmax" and K == total and K > 1:

            def full(r: np.ndarray) -> np.ndarray:
                return softmax(r, axis=-1)

        elif ens.link == "identity" and raw_name.startswith("probability") and K == total:

            def full(r: np.ndarray) -> np.ndarray:
                return r

    elif mf.kind in ("regression", "decision") and K == total:
        if mf.kind == "decision" or (
            ens.link == "identity" and raw_name.startswith(("prediction", "raw"))
        ):

            def full(r: np.ndarray) -> np.ndarray:
                return r

        elif ens.link == "exp":

            def full(r: np.ndarray) -> np.ndarray:
                return np.exp(r)

    if full is None:
        return None
    idx = list(mf.output_indices)

    def mapping(r: np.ndarray) -> np.ndarray:
        sel = full(r)[..., idx]
        if mf.link == "logit":  # as ModelFunction.__call__
            p = np.clip(sel, 1e-15, 1 - 1e-15)
            sel = np.log(p) - np.log1p(-p)
        return sel

    return mapping


def _ensemble_column(ens: Any, X: Any, j: int) -> int | None:
    if ens.feature_names is None or not isinstance(X, pd.DataFrame):
        return j
    name = str(X.columns[j])
    for cand in (name, name.replace(" ", "_")):  # LightGBM writes each space as "_"
        if cand in ens.feature_names:
            return ens.feature_names.index(cand)
    return None


def tree_curves(
    model: Any, mf: ModelFunction, X: Any, positions: list[int], points: list[np.ndarray]
) -> tuple[np.ndarray | None, str]:
    """ICE (n, G, k) through the exact tree path, or (None, reason) when it does not apply."""
    from ..trees.parse import parse_tree_model

    try:
        ens = parse_tree_model(model)
    except WhyboxError as exc:
        return None, f"the model is not a supported tree ensemble ({type(exc).__name__})"
    mapping = _output_map(ens, mf)
    if mapping is None:
        return None, (
            f"the requested output ({mf.output_description}) is not an exact function of the "
            f"ensemble's raw output ({ens.raw_output}, link {ens.link})"
        )
    cols = [_ensemble_column(ens, X, j) for j in positions]
    if any(c is None for c in cols):
        return None, "the feature is not one of the ensemble's columns"
    from ._partial_dependence_tree import ensemble_ice

    try:
        Z = ens.encode(X)
        G = len(points[0])
        grid_rows = replace_columns(X, np.zeros(G, np.int64), positions, points)
        Gz = ens.encode(grid_rows)[:, cols]
    except WhyboxError as exc:
        return None, f"the inputs could not be encoded for the trees ({exc})"
    m = min(len(X), 256)
    own = mf(X.iloc[:m] if isinstance(X, pd.DataFrame) else X[:m])
    mine = mapping(ens.predict_raw(Z[:m]))
    scale = max(1.0, float(np.abs(own).max()))
    if own.shape != mine.shape or np.abs(own - mine).max() > 1e-5 * scale:
        return None, "the parsed trees do not reproduce the model's output on these rows"
    return mapping(ensemble_ice(ens, Z, Gz, np.asarray(cols, np.int64))), ""


# ------------------------------------------------------------------ public function
def partial_dependence(
    model: Any,
    X: Any,
    feature: Any,
    *,
    grid: Any = None,
    grid_resolution: int = 20,
    percentiles: tuple[float, float] = (0.05, 0.95),
    kind: str = "average",
    centered: bool = False,
    target: Any = None,
    link: str | None = None,
    categorical: Any = None,
    method: str = "auto",
    sample: int | None = None,
    sample_weight: Any = None,
    random_state: Any = 0,
    client: Any = None,
) -> PartialDependence:
    """Partial dependence (average) and ICE (individual) curves of a feature or a pair.

    Parameters
    ----------
    model : object
        Any model :func:`whybox.wrap_model` accepts.
    X : DataFrame or array (n, p)
        Rows whose curves are computed, all of them (``sample=`` is the only way to use
        fewer); DataFrames keep their dtypes when a column is set. A DataFrame's columns are
        matched to the model's fitted feature names by name, in any order (LightGBM's
        renaming of spaces to underscores included); an array is positional (the model's
        order). Missing values (NaN) are passed to the model as they are, for models that
        handle them (XGBoost, LightGBM, HistGradientBoosting); other models refuse them with
        their own error. They never enter the grid.
    feature : str, int, or a pair of them
        Column name or position in X (the user's order); a tuple/list of two gives the 2-D
        partial dependence. Results are named by X's column names.
    grid : array-like, or a pair of array-likes for a pair, optional
        Values to set the feature to. A numeric grid reaching outside the data range warns.
    grid_resolution : int, default 20
        Grid size when ``grid`` is None (scikit-learn's rule, see the module docstring).
    percentiles : (float, float), default (0.05, 0.95)
        Quantile range of the default numeric grid.
    kind : {"average", "individual", "both"}
        ``"average"`` keeps only the PDP; the others also keep the ICE curves.
    centered : bool, default False
        Subtract each ICE curve's value at the first grid point (then the PDP starts at 0).
    target, link
        Output selection and scale, as in :func:`whybox.wrap_model` (``link=None`` is
        ``"identity"``): a class label or index (``"0"`` for the label 0), a list of them, or
        ``"all"``; class 0 of a binary margin model is the negated margin. ``output_names``
        name the class. One target for all rows: a per-row array is refused.
    categorical : None, bool, or list of column names / positions
        Features to treat as categorical (grid = their categories). None: pandas categorical,
        string, object and bool columns.
    method : {"auto", "brute", "tree"}
        ``"tree"``: the exact tree path (raises when it does not apply); ``"brute"``: model
        calls; ``"auto"``: the tree path when it applies.
    sample : int, optional
        Use this many rows of X drawn without replacement (``random_state``), in X's order.
        None (the default) uses every row.
    sample_weight : array (n,), optional
        Weights of the rows in the average.
    random_state : int, Generator or None
        Seeds ``sample``.
    client : distributed.Client, optional
        Compute the ICE curves partition by partition on this Dask cluster (a Dask DataFrame
        or Array as ``X`` selects the default client by itself); results are bit-identical
        to the serial ones.

    Returns
    -------
    PartialDependence
        ``grid`` of shape (n_grid,) (a tuple of two for a pair), ``average`` of shape
        (n_grid,) or (n1, n2), ``individual`` of shape (n_rows, n_grid) or None, with a
        trailing output axis for several outputs; ``output`` says what the values are.

    Raises
    ------
    InvalidParameterError
        For a feature that is not a column of X (the message lists the columns), a bad
        ``kind``, ``method``, ``grid_resolution`` or ``percentiles``, an unknown ``target``.
    InvalidInputError
        For an empty X.

    References
    ----------
    Friedman, J. H. (2001). Greedy function approximation: a gradient boosting machine.
    Annals of Statistics 29(5).
    Goldstein, A., Kapelner, A., Bleich, J. and Pitkin, E. (2015). Peeking inside the black
    box: visualizing statistical learning with plots of individual conditional expectation.
    Journal of Computational and Graphical Statistics 24(1).

    Examples
    --------
    The partial dependence of a linear model is a line with the feature's coefficient as
    its slope:

    >>> from sklearn.linear_model import LinearRegression
    >>> X, y = wb.zoo.diabetes()
    >>> model = LinearRegression().fit(X, y)
    >>> pdp = wb.partial_dependence(model, X, "bmi", grid_resolution=5)
    >>> pdp.grid.shape, pdp.average.shape, pdp.output
    ((5,), (5,), 'prediction')
    >>> slope = np.diff(pdp.average) / np.diff(pdp.grid)
    >>> bool(np.allclose(slope, model.coef_[list(X.columns).index("bmi")]))
    True
    """
    from .._dask_explain import is_dask_collection

    if client is not None or is_dask_collection(X):
        from .._dask_inspect import partial_dependence_dask

        return partial_dependence_dask(
            sys.modules[__name__],
            model,
            X,
            feature,
            client=client,
            grid=grid,
            grid_resolution=grid_resolution,
            percentiles=percentiles,
            kind=kind,
            centered=centered,
            target=target,
            link=link,
            categorical=categorical,
            method=method,
            sample=sample,
            sample_weight=sample_weight,
            random_state=random_state,
        )
    check_in("kind", kind, KINDS)
    check_in("method", method, METHODS)
    grid_resolution = check_int("grid_resolution", grid_resolution, minimum=2)
    percentiles = _check_percentiles(percentiles)
    target = check_global_target(target, "partial_dependence")
    X = as_2d_input(X)
    check_nonempty(X)
    check_unique_columns(X)
    mf = wrap_model(model, target=target, link="identity" if link is None else link, X=X)
    X = mf.prepare(X)  # checks the columns; keeps X's order (the model call matches names)
    pair = isinstance(feature, (tuple, list))
    feats = list(feature) if pair else [feature]
    if pair and len(feats) != 2:
        raise InvalidParameterError(
            f"feature must be one column or a pair of two, got {len(feats)}: {feature!r}."
        )
    resolved = [resolve_feature(X, f) for f in feats]
    names, positions = [r[0] for r in resolved], [r[1] for r in resolved]
    if pair and positions[0] == positions[1]:
        raise InvalidParameterError(f"the pair names the same feature twice: {feature!r}.")
    flags = _categorical_flags(X, positions, names, categorical)

    n = len(X)
    weights = None
    if sample_weight is not None:
        weights = np.asarray(sample_weight, dtype=float).reshape(-1)
        if weights.shape[0] != n or not np.all(np.isfinite(weights)) or (weights < 0).any():
            raise InvalidParameterError(
                f"sample_weight must hold {n} finite non-negative numbers, one per row of X."
            )
        if weights.sum() <= 0:
            raise InvalidParameterError("sample_weight sums to 0; give some row a weight.")
    if sample is not None:
        sample = check_int("sample", sample, minimum=1)
        if sample < n:
            rows = np.sort(check_random_state(random_state).choice(n, sample, replace=False))
            X = X.iloc[rows] if isinstance(X, pd.DataFrame) else np.asarray(X)[rows]
            weights = None if weights is None else weights[rows]
            n = sample

    cols = [column(X, j) for j in positions]
    grids = _grids_for(cols, names, flags, grid, grid_resolution, percentiles, pair)
    if pair:
        mesh = np.meshgrid(
            np.arange(len(grids[0])), np.arange(len(grids[1])), indexing="ij"
        )  # first feature varies slowest, as sklearn's cartesian product
        points = [np.asarray(grids[a], dtype=object)[mesh[a].ravel()] for a in range(2)]
    else:
        points = [np.asarray(grids[0], dtype=object)]

    ice, used = None, "brute"
    if method in ("auto", "tree"):
        ice, reason = tree_curves(model, mf, X, positions, points)
        if ice is None and method == "tree":
            raise InvalidParameterError(
                f"method='tree' cannot be used: {reason}. Use method='brute' or 'auto'."
            )
        used = "tree" if ice is not None else "brute"
    if ice is None:
        ice = evaluate_points(mf, X, positions, points)
    if centered:
        ice = ice - ice[:, :1, :]
    average = np.average(ice, axis=0, weights=weights)
    shape = (len(grids[0]), len(grids[1])) if pair else (len(grids[0]),)
    k = mf.n_outputs
    average = average.reshape(*shape, k)
    ice = ice.reshape(n, *shape, k)
    if mf.single_output:
        average, ice = average[..., 0], ice[..., 0]
    values = [
        column(X, j).to_numpy() if isinstance(X, pd.DataFrame) else column(X, j) for j in positions
    ]
    return PartialDependence(
        feature=tuple(names) if pair else names[0],
        grid=tuple(grids) if pair else grids[0],
        average=average,
        individual=None if kind == "average" else ice,
        kind=kind,
        output=mf.output_description,
        output_names=list(mf.output_names),
        categorical=tuple(flags) if pair else flags[0],
        centered=bool(centered),
        method=used,
        feature_values=tuple(values) if pair else values[0],
    )
