"""Accumulated local effects (ALE) of one feature or a numeric pair, with bootstrap bands.

Numeric feature (Apley & Zhu 2020, eq. 15-16; as ``ALEPlot``): the bin edges are the minimum
and the ``k / bins`` quantiles (``k = 1..bins``, inverse empirical CDF, duplicates dropped).
A row in bin ``k`` (``(z_{k-1}, z_k]``, the first bin closed) contributes
``f(z_k, x_rest) - f(z_{k-1}, x_rest)``; the bin means are accumulated from 0 at ``z_0``,
then centred by subtracting the count-weighted mean of the bin midpoints
``(g(z_{k-1}) + g(z_k)) / 2`` (ALEPlot's centring, the mean effect over the data of the
piecewise-linear curve). ``grid`` holds the K + 1 edges, ``effect`` the values there.

Categorical feature (Apley & Zhu 2020, section 5.2; as ``ALEPlot``): categories are ordered by
similarity. The distance between two categories sums, over the other features, the
Kolmogorov-Smirnov distance between the feature's distributions within the two categories
(evaluated at 100 quantiles of the feature) for numeric features, and half the sum of absolute
differences of the category frequencies for categorical ones. The categories are then ordered
by their coordinate in a one-dimensional classical multidimensional scaling of this distance
matrix (sign fixed so that the first category of the original order has the smaller
coordinate). The effect of moving from the k-th to the (k+1)-th category averages
``f(up) - f(x)`` over rows in category k and ``f(x) - f(down)`` over rows in category k + 1;
effects are accumulated from 0 and centred by the category frequencies.

Numeric pair (second-order ALE, Apley & Zhu 2020, eq. 17-20; as ``ALEPlot``): cell means of
the second differences of f over the cell corners are accumulated over both axes; empty cells
take the value of the nearest non-empty cell (cell midpoints scaled by the feature ranges,
ties to the first in row-major order); the two first-order effects of the accumulated surface
and its count-weighted mean are then subtracted, so ``effect`` is the pure interaction.

Bootstrap (``n_bootstrap > 0``): replicate ``b`` draws ``rng.integers(0, n, n)`` with
``rng = numpy.random.default_rng(random_state)`` (rows used by the estimate, in order),
weights the rows by their draw counts and recomputes the estimate on the same grid (the model
is not called again: the per-row differences are reused). An empty bin or category step takes
its full-data value; an empty cell of a pair is filled from the nearest non-empty cell of the
replicate, as in the estimate. ``lower`` and ``upper`` are the ``(1 -+ confidence) / 2``
quantiles of the replicates.

Rows whose feature value is missing are left out.

References
----------
Apley, D. W. and Zhu, J. (2020). Visualizing the effects of predictor variables in black box
supervised learning models. Journal of the Royal Statistical Society B 82(4), 1059-1086.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd

from .._validation import (
    as_2d_input,
    check_int,
    check_nonempty,
    check_random_state,
    check_unique_columns,
)
from ..errors import InvalidInputError, InvalidParameterError
from ..models import ModelFunction, wrap_model
from .partial_dependence import (
    _categorical_flags,
    categories_of,
    check_global_target,
    check_plot_keywords,
    column,
    is_categorical_column,
    numeric_values,
    replace_columns,
    resolve_feature,
)

if TYPE_CHECKING:
    from matplotlib.axes import Axes

__all__ = ["AccumulatedLocalEffects", "ale"]

_KS_POINTS = 100  # quantiles at which the Kolmogorov-Smirnov distance is evaluated (ALEPlot)


@dataclass
class AccumulatedLocalEffects:
    """ALE of one feature or a numeric pair.

    Attributes
    ----------
    feature : str or tuple of two str
    grid : ndarray
        Numeric: the K + 1 bin edges. Categorical: the categories in ALE order. Pair: a tuple
        of the two edge arrays.
    effect : ndarray (n_grid,) or (n1, n2); a trailing output axis (…, k) for several outputs
    lower, upper : same shape as ``effect``, or None without bootstrap
    counts : ndarray
        Rows per bin (K,), per category (K,), or per cell (K1, K2).
    categorical : bool
    output : str
    output_names : list of str
    confidence : float
    n_bootstrap : int
    feature_values : ndarray or tuple of ndarrays
        The feature's values in the rows used (for rug plots).
    """

    feature: Any
    grid: Any
    effect: np.ndarray
    lower: np.ndarray | None
    upper: np.ndarray | None
    counts: np.ndarray
    categorical: bool
    output: str
    output_names: list[str]
    confidence: float
    n_bootstrap: int
    feature_values: Any = field(default=None, repr=False)

    @property
    def is_pair(self) -> bool:
        return isinstance(self.feature, tuple)

    @property
    def multi_output(self) -> bool:
        return self.effect.ndim == (3 if self.is_pair else 2)

    def plot(self, ax: Axes | None = None, **kwargs: Any) -> Axes:
        """ALE curve with its band (1-D) or a heatmap (pair); see
        :func:`whybox.viz.effects.plot_ale`."""
        from ..viz.effects import plot_ale

        check_plot_keywords(kwargs, plot_ale, "AccumulatedLocalEffects.plot")
        return plot_ale(self, ax=ax, **kwargs)

    def to_frame(self) -> pd.DataFrame:
        """One row per grid point (and output): value(s), ``effect``, ``lower``, ``upper``."""
        if self.is_pair:
            g1, g2 = self.grid
            cols = {
                self.feature[0]: np.repeat(np.asarray(g1, dtype=object), len(g2)),
                self.feature[1]: np.tile(np.asarray(g2, dtype=object), len(g1)),
            }
            n_points = len(g1) * len(g2)
        else:
            cols = {self.feature: np.asarray(self.grid, dtype=object)}
            n_points = len(self.grid)
        frames = []
        for k, name in enumerate(self.output_names):
            f = pd.DataFrame(dict(cols))
            if self.multi_output:
                f["output"] = name
            for what in ("effect", "lower", "upper"):
                arr = getattr(self, what)
                f[what] = np.nan if arr is None else arr.reshape(n_points, -1)[:, k]
            frames.append(f)
        return pd.concat(frames, ignore_index=True) if len(frames) > 1 else frames[0]


# ------------------------------------------------------------------ estimators (pure arrays)
def _weighted_means(
    index: np.ndarray, values: np.ndarray, w: np.ndarray, size: int
) -> tuple[np.ndarray, np.ndarray]:
    """Weighted means (size, k) of ``values`` (m, k) grouped by ``index`` and the weights."""
    cnt = np.bincount(index, weights=w, minlength=size)
    sums = np.zeros((size, values.shape[1]))
    np.add.at(sums, index, values * w[:, None])
    with np.errstate(invalid="ignore", divide="ignore"):
        return sums / cnt[:, None], cnt


def ale_numeric(
    delta: np.ndarray, b: np.ndarray, K: int, w: np.ndarray, fill: np.ndarray | None = None
) -> tuple[np.ndarray, np.ndarray]:
    """Centred first-order ALE (K + 1, k) from per-row differences ``delta`` (n, k) in bins
    ``b`` (n,), rows weighted by ``w``; empty bins take ``fill`` (K, k). Also the counts."""
    mean, cnt = _weighted_means(b, delta, w, K)
    empty = cnt <= 0
    if empty.any():
        mean[empty] = 0.0 if fill is None else fill[empty]
    g = np.concatenate([np.zeros((1, delta.shape[1])), np.cumsum(mean, axis=0)])
    g -= ((g[:-1] + g[1:]) / 2 * cnt[:, None]).sum(axis=0) / cnt.sum()
    return g, cnt


def ale_categorical(
    plus: np.ndarray,
    neg: np.ndarray,
    ord_plus: np.ndarray,
    ord_neg: np.ndarray,
    order_all: np.ndarray,
    K: int,
    w_plus: np.ndarray,
    w_neg: np.ndarray,
    w_all: np.ndarray,
    fill: np.ndarray | None = None,
) -> tuple[np.ndarray, np.ndarray]:
    """Centred ALE (K, k) of an ordered categorical feature.

    ``plus`` (rows of category k < K - 1 moved up: f(up) - f(x)), ``neg`` (rows of category
    k > 0 moved down: f(x) - f(down)); step k (from category k to k + 1) averages the plus
    rows of category k and the neg rows of category k + 1.
    """
    index = np.concatenate([ord_plus, ord_neg - 1])
    steps, _ = _weighted_means(
        index, np.concatenate([plus, neg]), np.concatenate([w_plus, w_neg]), K - 1
    )
    empty = np.isnan(steps).any(axis=1)
    if empty.any():
        steps[empty] = 0.0 if fill is None else fill[empty]
    g = np.concatenate([np.zeros((1, plus.shape[1])), np.cumsum(steps, axis=0)])
    cnt = np.bincount(order_all, weights=w_all, minlength=K)
    g -= (g * cnt[:, None]).sum(axis=0) / cnt.sum()
    return g, cnt


def _nearest_fill(mean: np.ndarray, empty: np.ndarray, e1: np.ndarray, e2: np.ndarray) -> None:
    """Fill empty cells of ``mean`` (K1, K2, k) with the nearest non-empty cell's value."""
    m1 = (e1[:-1] + e1[1:]) / 2 / max(e1[-1] - e1[0], 1e-300)
    m2 = (e2[:-1] + e2[1:]) / 2 / max(e2[-1] - e2[0], 1e-300)
    full = np.argwhere(~empty)
    if full.size == 0:
        mean[:] = 0.0
        return
    for i, j in np.argwhere(empty):
        d = (m1[full[:, 0]] - m1[i]) ** 2 + (m2[full[:, 1]] - m2[j]) ** 2
        a, c = full[int(np.argmin(d))]
        mean[i, j] = mean[a, c]


def ale_pair(
    delta: np.ndarray,
    b1: np.ndarray,
    b2: np.ndarray,
    e1: np.ndarray,
    e2: np.ndarray,
    w: np.ndarray,
) -> tuple[np.ndarray, np.ndarray]:
    """Second-order ALE (K1 + 1, K2 + 1, k) from per-row second differences ``delta``."""
    K1, K2, k = len(e1) - 1, len(e2) - 1, delta.shape[1]
    mean, cnt = _weighted_means(b1 * K2 + b2, delta, w, K1 * K2)
    mean, cnt = mean.reshape(K1, K2, k), cnt.reshape(K1, K2)
    empty = cnt <= 0
    if empty.any():
        _nearest_fill(mean, empty, e1, e2)
    f = np.zeros((K1 + 1, K2 + 1, k))
    f[1:, 1:] = np.cumsum(np.cumsum(mean, axis=0), axis=1)
    bw = cnt[:, :, None]
    c1, c2 = cnt.sum(axis=1)[:, None], cnt.sum(axis=0)[:, None]
    d1 = f[1:] - f[:-1]  # (K1, K2 + 1, k)
    with np.errstate(invalid="ignore", divide="ignore"):
        a1 = np.where(c1 > 0, (bw * (d1[:, :-1] + d1[:, 1:]) / 2).sum(axis=1) / c1, 0.0)
        d2 = f[:, 1:] - f[:, :-1]  # (K1 + 1, K2, k)
        a2 = np.where(c2 > 0, (bw * (d2[:-1] + d2[1:]) / 2).sum(axis=0) / c2, 0.0)
    f1 = np.concatenate([np.zeros((1, k)), np.cumsum(a1, axis=0)])
    f2 = np.concatenate([np.zeros((1, k)), np.cumsum(a2, axis=0)])
    f = f - f1[:, None, :] - f2[None, :, :]
    corners = (f[:-1, :-1] + f[:-1, 1:] + f[1:, :-1] + f[1:, 1:]) / 4
    f -= (bw * corners).sum(axis=(0, 1)) / cnt.sum()
    return f, cnt


# ------------------------------------------------------------------ category order
def category_distances(X: Any, j: int, codes: np.ndarray, K: int) -> np.ndarray:
    """Apley & Zhu's distance (K, K) between the categories ``codes`` (n,) of feature j."""
    D = np.zeros((K, K))
    for c in range(X.shape[1]):
        if c == j:
            continue
        col = column(X, c)
        if is_categorical_column(col):
            other = pd.Series(np.asarray(col, dtype=object))
            ok = ~other.isna().to_numpy()
            levels = categories_of(other[ok])
            pos = pd.Index(levels).get_indexer(other[ok].to_numpy())
            A = np.zeros((K, len(levels)))
            np.add.at(A, (codes[ok], pos), 1.0)
            A /= np.maximum(np.bincount(codes, minlength=K), 1)[:, None]
            D += np.abs(A[:, None, :] - A[None, :, :]).sum(axis=2) / 2
        else:
            v = numeric_values(col, str(c))
            ok = ~np.isnan(v)
            if not ok.any():
                continue
            q = np.quantile(v[ok], np.linspace(0, 1, _KS_POINTS))
            F = np.zeros((K, _KS_POINTS))
            for a in range(K):
                va = np.sort(v[ok & (codes == a)])
                if va.size:
                    F[a] = np.searchsorted(va, q, side="right") / va.size
            D += np.abs(F[:, None, :] - F[None, :, :]).max(axis=2)
    return D


def mds_order(D: np.ndarray) -> np.ndarray:
    """Categories sorted by their 1-D classical MDS coordinate (stable; sign fixed)."""
    K = D.shape[0]
    if K < 3 or not np.any(D):
        return np.arange(K)
    J = np.eye(K) - 1.0 / K
    B = -0.5 * J @ (D**2) @ J
    vals, vecs = np.linalg.eigh(B)
    coord = vecs[:, -1] * np.sqrt(max(vals[-1], 0.0))
    nz = np.flatnonzero(np.abs(coord) > 1e-12)
    if nz.size and coord[nz[0]] > 0:
        coord = -coord
    return np.argsort(coord, kind="stable")


# ------------------------------------------------------------------ public function
def _edges(x: np.ndarray, bins: int) -> np.ndarray:
    q = np.quantile(x, np.arange(1, bins + 1) / bins, method="inverted_cdf")
    return np.unique(np.concatenate([[x.min()], q]))


def _bins(x: np.ndarray, edges: np.ndarray) -> np.ndarray:
    return np.maximum(np.searchsorted(edges, x, side="left"), 1) - 1


def _eval(mf: ModelFunction, X: Any, rows: np.ndarray, positions: list[int], vals: list) -> Any:
    return mf(replace_columns(X, rows, positions, vals))


def _take(X: Any, rows: np.ndarray) -> Any:
    return X.iloc[rows] if isinstance(X, pd.DataFrame) else np.asarray(X)[rows]


def _bands(reps: list[np.ndarray], confidence: float) -> tuple[np.ndarray, np.ndarray]:
    R = np.stack(reps)
    a = (1 - confidence) / 2
    return np.quantile(R, a, axis=0), np.quantile(R, 1 - a, axis=0)


def ale(
    model: Any,
    X: Any,
    feature: Any,
    *,
    bins: int = 20,
    target: Any = None,
    link: str | None = None,
    categorical: Any = None,
    n_bootstrap: int = 0,
    confidence: float = 0.95,
    random_state: Any = 0,
) -> AccumulatedLocalEffects:
    """Accumulated local effects of a feature (numeric or categorical) or a numeric pair.

    Parameters
    ----------
    model : object
        Any model :func:`whybox.wrap_model` accepts.
    X : DataFrame or array (n, p)
        The data the effects are averaged over, every row (nothing is subsampled). A
        DataFrame's columns are matched to the model's fitted feature names by name, in any
        order (LightGBM's renaming of spaces to underscores included); an array is positional
        (the model's order). Rows whose own feature value is missing are left out; missing
        values in the other columns go to the model as they are (for models that handle NaN,
        such as XGBoost, LightGBM and HistGradientBoosting; other models refuse them with
        their own error).
    feature : str, int, or a pair of them
        Column name or position in X (the user's order); a pair of numeric features gives
        the second-order ALE. Results are named by X's column names.
    bins : int, default 20
        Number of quantile bins of a numeric feature (fewer when quantiles coincide).
    target, link
        Output selection and scale, as in :func:`whybox.wrap_model`: a class label or index
        (``"0"`` for the label 0), a list of them, or ``"all"``; class 0 of a binary margin
        model is the negated margin. ``output_names`` name the class. One target for all
        rows: a per-row array is refused.
    categorical : None, bool, or list of column names / positions
        Features to treat as categorical; None: pandas categorical, string, object and bool
        columns.
    n_bootstrap : int, default 0
        Bootstrap replicates for the confidence band (0: no band).
    confidence : float, default 0.95
        Level of the bootstrap confidence band.
    random_state : int, Generator or None, default 0
        Seeds the bootstrap.

    Returns
    -------
    AccumulatedLocalEffects
        ``grid`` (the K + 1 bin edges, or the categories), ``effect`` of shape (n_grid,),
        (n1, n2) for a pair, with a trailing output axis for several outputs, the band
        ``lower`` / ``upper`` (None without bootstrap) and ``counts`` per bin.

    Raises
    ------
    InvalidParameterError
        For a feature not in X, a categorical feature in a pair, bad ``bins``,
        ``n_bootstrap`` or ``confidence``, an unknown ``target``.
    InvalidInputError
        For an empty X, or a feature with a single value.

    References
    ----------
    Apley, D. W. and Zhu, J. (2020). Visualizing the effects of predictor variables in black
    box supervised learning models. Journal of the Royal Statistical Society B 82(4).

    Examples
    --------
    The ALE of a linear model rises with the feature's coefficient:

    >>> from sklearn.linear_model import LinearRegression
    >>> X, y = wb.zoo.diabetes()
    >>> model = LinearRegression().fit(X, y)
    >>> eff = wb.ale(model, X, "bmi", bins=10)
    >>> eff.grid.shape, eff.effect.shape  # 11 bin edges, the effect at each
    ((11,), (11,))
    >>> slope = np.diff(eff.effect) / np.diff(eff.grid)
    >>> bool(np.allclose(slope, model.coef_[list(X.columns).index("bmi")]))
    True
    """
    bins = check_int("bins", bins, minimum=1)
    n_bootstrap = check_int("n_bootstrap", n_bootstrap, minimum=0)
    if isinstance(confidence, bool) or not isinstance(confidence, (int, float)):
        raise InvalidParameterError(f"confidence must be a number in (0, 1), got {confidence!r}.")
    if not 0 < confidence < 1:
        raise InvalidParameterError(f"confidence must be in (0, 1), got {confidence}.")
    target = check_global_target(target, "ale")
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
    if pair and any(flags):
        bad = [nm for nm, f in zip(names, flags, strict=True) if f]
        raise InvalidParameterError(
            f"second-order ALE needs two numeric features; {bad} is categorical. Use the "
            "1-D ALE of a categorical feature, or partial_dependence for a mixed pair."
        )
    rng = check_random_state(random_state)
    common = {
        "output": mf.output_description,
        "output_names": list(mf.output_names),
        "confidence": float(confidence),
        "n_bootstrap": n_bootstrap,
    }
    if pair:
        res = _ale_pair(mf, X, names, positions, bins, n_bootstrap, confidence, rng)
    elif flags[0]:
        res = _ale_cat(mf, X, names[0], positions[0], n_bootstrap, confidence, rng)
    else:
        res = _ale_num(mf, X, names[0], positions[0], bins, n_bootstrap, confidence, rng)
    grid, effect, lower, upper, counts, values = res
    if mf.single_output:
        effect = effect[..., 0]
        lower = None if lower is None else lower[..., 0]
        upper = None if upper is None else upper[..., 0]
    return AccumulatedLocalEffects(
        feature=tuple(names) if pair else names[0],
        grid=grid,
        effect=effect,
        lower=lower,
        upper=upper,
        counts=counts,
        categorical=bool(flags[0]) and not pair,
        feature_values=values,
        **common,
    )


def _numeric_rows(X: Any, j: int, name: str) -> tuple[np.ndarray, np.ndarray]:
    x = numeric_values(column(X, j), name)
    keep = np.flatnonzero(~np.isnan(x))
    if keep.size == 0:
        raise InvalidInputError(f"feature {name!r} has only missing values; ALE needs values.")
    return x, keep


def _ale_num(mf, X, name, j, bins, B, confidence, rng):
    x, keep = _numeric_rows(X, j, name)
    Xk, x = _take(X, keep), x[keep]
    edges = _edges(x, bins)
    if len(edges) < 2:
        raise InvalidInputError(
            f"feature {name!r} takes a single value ({edges[0]:.6g}) in X, so it has no "
            "local effects to accumulate."
        )
    K, n = len(edges) - 1, len(x)
    b = _bins(x, edges)
    raw_vals = column(Xk, j)
    lo = np.asarray(raw_vals.to_numpy() if hasattr(raw_vals, "to_numpy") else raw_vals)
    lo_vals, hi_vals = _edge_values(lo, edges, b)
    out = _eval(
        mf, Xk, np.concatenate([np.arange(n)] * 2), [j], [np.concatenate([lo_vals, hi_vals])]
    )
    delta = out[n:] - out[:n]
    ones = np.ones(n)
    g, cnt = ale_numeric(delta, b, K, ones)
    lower = upper = None
    if B:
        full, _ = _weighted_means(b, delta, ones, K)
        reps = [ale_numeric(delta, b, K, _draw(rng, n), full)[0] for _ in range(B)]
        lower, upper = _bands(reps, confidence)
    return edges, g, lower, upper, cnt, x


def _edge_values(raw: np.ndarray, edges: np.ndarray, b: np.ndarray) -> tuple:
    """Lower and upper edges of each row's bin, in the column's own number type."""
    lo, hi = edges[b], edges[b + 1]
    if raw.dtype.kind in "iu":
        return lo.astype(raw.dtype), hi.astype(raw.dtype)
    return lo, hi


def _draw(rng: np.random.Generator, n: int) -> np.ndarray:
    return np.bincount(rng.integers(0, n, n), minlength=n).astype(float)


def _ale_cat(mf, X, name, j, B, confidence, rng):
    col = column(X, j)
    ser = pd.Series(np.asarray(col, dtype=object)) if not isinstance(col, pd.Series) else col
    keep = np.flatnonzero(~ser.isna().to_numpy())
    if keep.size == 0:
        raise InvalidInputError(f"feature {name!r} has only missing values; ALE needs values.")
    Xk = _take(X, keep)
    levels = categories_of(column(Xk, j))
    K = len(levels)
    values = np.asarray(column(Xk, j), dtype=object)
    codes = pd.Index(list(levels)).get_indexer(values)
    if K < 2:
        raise InvalidInputError(
            f"feature {name!r} has a single category ({levels[0]!r}) in X, so it has no "
            "local effects to accumulate."
        )
    order = mds_order(category_distances(Xk, j, codes, K))
    rank = np.empty(K, np.int64)
    rank[order] = np.arange(K)
    ords = rank[codes]
    ordered = levels[order]
    n = len(codes)
    up, down = np.flatnonzero(ords < K - 1), np.flatnonzero(ords > 0)
    rows = np.concatenate([np.arange(n), up, down])
    vals = np.concatenate([values, ordered[ords[up] + 1], ordered[ords[down] - 1]])
    out = _eval(mf, Xk, rows, [j], [vals])
    f0, fu, fd = out[:n], out[n : n + len(up)], out[n + len(up) :]
    plus, neg = fu - f0[up], f0[down] - fd
    ones = np.ones(n)
    args = (plus, neg, ords[up], ords[down], ords, K)
    g, cnt = ale_categorical(*args, ones[up], ones[down], ones)
    lower = upper = None
    if B:
        steps = np.diff(g, axis=0)
        reps = []
        for _ in range(B):
            w = _draw(rng, n)
            reps.append(ale_categorical(*args, w[up], w[down], w, steps)[0])
        lower, upper = _bands(reps, confidence)
    return ordered, g, lower, upper, cnt, values


def _ale_pair(mf, X, names, positions, bins, B, confidence, rng):
    x1, k1 = _numeric_rows(X, positions[0], names[0])
    x2, k2 = _numeric_rows(X, positions[1], names[1])
    keep = np.intersect1d(k1, k2)
    Xk, x1, x2 = _take(X, keep), x1[keep], x2[keep]
    e1, e2 = _edges(x1, bins), _edges(x2, bins)
    for e, nm in ((e1, names[0]), (e2, names[1])):
        if len(e) < 2:
            raise InvalidInputError(
                f"feature {nm!r} takes a single value in X, so it has no local effects."
            )
    n = len(x1)
    b1, b2 = _bins(x1, e1), _bins(x2, e2)
    r1 = np.asarray(column(Xk, positions[0]))
    r2 = np.asarray(column(Xk, positions[1]))
    lo1, hi1 = _edge_values(r1, e1, b1)
    lo2, hi2 = _edge_values(r2, e2, b2)
    rows = np.concatenate([np.arange(n)] * 4)
    v1 = np.concatenate([lo1, lo1, hi1, hi1])
    v2 = np.concatenate([lo2, hi2, lo2, hi2])
    out = _eval(mf, Xk, rows, positions, [v1, v2]).reshape(4, n, -1)
    delta = (out[3] - out[2]) - (out[1] - out[0])
    f, cnt = ale_pair(delta, b1, b2, e1, e2, np.ones(n))
    lower = upper = None
    if B:
        reps = [ale_pair(delta, b1, b2, e1, e2, _draw(rng, n))[0] for _ in range(B)]
        lower, upper = _bands(reps, confidence)
    return (e1, e2), f, lower, upper, cnt, (x1, x2)
