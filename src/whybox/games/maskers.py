"""Maskers: what "absent" means for a player.

A masker holds the rows that stand in for absent features and composes, for one explained row
``x`` and a batch of feature masks, the model inputs ``x_S`` joined with each background row's
``z_{-S}``. DataFrames stay DataFrames: composed inputs keep column names and dtypes
(categoricals, strings, nullable types), so scikit-learn Pipelines with encoders work
unchanged.

* :class:`Independent` — interventional (marginal) absence over background rows
  (Janzing, Minorics and Bloebaum 2020), optionally weighted.
* :class:`Baseline` — absence as a fixed reference value (a single background row).
* :func:`kmeans` — a weighted summary of a large background.
* :func:`summarise_background` — a background used whole, or sampled only when asked, with a
  warning that measures what the sample changes.

References
----------
Janzing, D., Minorics, L. and Bloebaum, P. (2020). Feature relevance quantification in
explainable AI: a causal problem. AISTATS.
"""

from __future__ import annotations

import copy
import warnings
from collections.abc import Callable, Mapping, Sequence
from typing import Any

import numpy as np
import pandas as pd

from .._validation import as_2d_input, check_finite, check_int, check_nonempty, check_random_state
from ..errors import InvalidInputError, InvalidParameterError

__all__ = [
    "LARGE_BACKGROUND",
    "Baseline",
    "Independent",
    "Masker",
    "kmeans",
    "summarise_background",
]

#: Background rows above which explaining warns about run time (cost grows with the rows).
LARGE_BACKGROUND = 1000


class _Column:
    """One DataFrame column as a numpy array plus what is needed to rebuild its dtype."""

    def __init__(self, s: pd.Series) -> None:
        self.name = s.name
        self.dtype = s.dtype
        if isinstance(s.dtype, pd.CategoricalDtype):
            self.categories = s.cat.categories
            self.values = s.cat.codes.to_numpy()
        else:
            self.categories = None
            self.values = s.to_numpy()

    def encode(self, value: Any) -> Any:
        """Encode one value of the explained row in this column's representation."""
        if self.categories is None:
            return value
        if pd.isna(value):
            return -1
        loc = np.flatnonzero(self.categories == value)
        if loc.size == 0:  # category unseen in the background: extend the categories
            self.categories = self.categories.append(pd.Index([value]))
            self.dtype = pd.CategoricalDtype(self.categories, ordered=self.dtype.ordered)
            return len(self.categories) - 1
        return int(loc[0])

    def rebuild(self, arr: np.ndarray) -> Any:
        if self.categories is not None:
            return pd.Categorical.from_codes(arr, dtype=self.dtype)
        if isinstance(self.dtype, np.dtype):
            if self.dtype.kind == "O":  # keep object columns object (pandas would infer str)
                return pd.Series(arr, dtype=object, copy=False)
            return arr if arr.dtype == self.dtype else arr.astype(self.dtype)
        return pd.array(arr, dtype=self.dtype)


class Masker:
    """Base class: background rows, their weights, and composition of masked inputs.

    Attributes
    ----------
    background : DataFrame or ndarray of shape (n_bg, p)
    weights : ndarray of shape (n_bg,), summing to one
    feature_names : list of str
    """

    background: Any
    weights: np.ndarray

    def _set_background(self, background: Any, weights: np.ndarray | None) -> None:
        bg = as_2d_input(background, name="background")
        check_nonempty(bg, name="background")
        self.background = bg
        n = bg.shape[0]
        if weights is None:
            w = np.full(n, 1.0 / n)
        else:
            w = np.asarray(weights, dtype=float).reshape(-1)
            if w.shape != (n,) or not np.all(np.isfinite(w)) or np.any(w < 0) or w.sum() <= 0:
                raise InvalidParameterError(
                    f"background weights must be {n} finite non-negative numbers with a positive "
                    "sum, one per background row."
                )
            w = w / w.sum()
        self.weights = w
        self._block: np.ndarray | None = None  # the background as one numpy block
        if isinstance(bg, pd.DataFrame):
            self._columns: list[_Column] | None = [_Column(bg[c]) for c in bg.columns]
            self.feature_names = [str(c) for c in bg.columns]
            self.row_nbytes = 8 * bg.shape[1] + 64
            dtypes = set(bg.dtypes)
            if len(dtypes) == 1:
                dtype = next(iter(dtypes))
                if isinstance(dtype, np.dtype) and dtype.kind in "biuf":
                    # one numeric dtype: compose a single 2-D block, wrapped without copies
                    self._block = bg.to_numpy(dtype=dtype)
        else:
            self._columns = None
            self.feature_names = [f"x{j}" for j in range(bg.shape[1])]
            self.row_nbytes = bg.dtype.itemsize * bg.shape[1] + 16

    @property
    def n_rows(self) -> int:
        return int(self.background.shape[0])

    def aligned_to(self, X: Any) -> Masker:
        """This masker with its background's columns in the order of DataFrame ``X``.

        Columns are matched by name; a background without exactly ``X``'s columns is refused
        (:class:`~whybox.errors.InvalidInputError` listing the missing and extra ones). An
        array ``X`` or background is positional and is returned unchanged.
        """
        bg = self.background
        if not (isinstance(X, pd.DataFrame) and isinstance(bg, pd.DataFrame)):
            return self
        self.check_compatible(X)  # the same columns, by name
        order = [bg.columns.get_loc(c) for c in X.columns]
        if order == list(range(bg.shape[1])):
            return self
        new = copy.copy(self)
        new._set_background(bg.iloc[:, order], self.weights)
        return new

    def check_compatible(self, X: Any, *, allow_nan: bool = False) -> Any:
        """Check that ``X`` has the background's columns; return it aligned to them."""
        bg = self.background
        if isinstance(bg, pd.DataFrame):
            if not isinstance(X, pd.DataFrame):
                X = np.asarray(X)
                if X.shape[1] != bg.shape[1]:
                    raise InvalidInputError(
                        f"X has {X.shape[1]} features but the background has {bg.shape[1]} "
                        f"columns ({list(bg.columns)})."
                    )
                return pd.DataFrame(X, columns=bg.columns).astype(bg.dtypes.to_dict())
            missing = [c for c in bg.columns if c not in X.columns]
            extra = [c for c in X.columns if c not in bg.columns]
            if missing or extra:
                raise InvalidInputError(
                    "the background does not have the same columns as X ("
                    + "; ".join(
                        s
                        for s in (
                            f"missing from X: {missing}" if missing else "",
                            f"not in the background: {extra}" if extra else "",
                        )
                        if s
                    )
                    + "). Use background rows with exactly X's columns."
                )
            return X[list(bg.columns)]
        if isinstance(X, pd.DataFrame):
            X = X.to_numpy()
        if X.shape[1] != bg.shape[1]:
            raise InvalidInputError(
                f"X has {X.shape[1]} features but the background has {bg.shape[1]}; they "
                "must have the same columns."
            )
        return X

    def compose(self, x: Any, masks: np.ndarray) -> Any:
        """Model inputs for one row ``x`` under each feature mask.

        Parameters
        ----------
        x : DataFrame of one row, Series, or array of shape (p,)
        masks : bool array of shape (m, p), True where the feature is present

        Returns
        -------
        DataFrame or ndarray with ``m * n_bg`` rows: coalition-major, the ``n_bg`` rows of
        coalition ``i`` at ``i * n_bg : (i + 1) * n_bg``.
        """
        m, n_bg = masks.shape[0], self.n_rows
        if self._columns is None:
            xr = np.asarray(x).reshape(-1)
            bg = self.background
            out = np.where(masks[:, None, :], xr[None, None, :], bg[None, :, :])
            return out.reshape(m * n_bg, bg.shape[1])
        if self._block is not None:
            xr = (x.to_numpy() if isinstance(x, pd.DataFrame) else np.asarray(x)).reshape(-1)
            out = np.where(masks[:, None, :], xr[None, None, :], self._block[None, :, :])
            return pd.DataFrame(
                out.reshape(m * n_bg, -1), columns=self.background.columns, copy=False
            )
        row = x.iloc[0] if isinstance(x, pd.DataFrame) else x
        cols = {}
        for j, col in enumerate(self._columns):
            xv = col.encode(row.iloc[j] if isinstance(row, pd.Series) else row[j])
            present = masks[:, j][:, None]
            if col.values.dtype.kind == "O" or xv is None:
                arr = np.empty((m, n_bg), dtype=object)
                arr[:] = col.values[None, :]
                arr[np.broadcast_to(present, (m, n_bg))] = xv
            else:
                arr = np.where(present, xv, col.values[None, :])
                if arr.dtype != col.values.dtype and col.values.dtype.kind in "iub":
                    arr = arr.astype(col.values.dtype)
            cols[col.name] = col.rebuild(arr.reshape(-1))
        return pd.DataFrame(cols)


class Independent(Masker):
    """Interventional absence: absent features take the values of background rows.

    Parameters
    ----------
    background : DataFrame or array of shape (n_bg, p)
        Reference data, typically a sample of the training set.
    max_samples : int, optional
        Background rows kept; a larger background is subsampled without replacement
        (seeded by ``random_state``). Default None: every row is kept (shap's Independent
        masker keeps 100 by default; whybox never drops rows unless asked).
    weights : array of shape (n_bg,), optional
        Weights of the background rows (normalised to sum to one).
    random_state : int, Generator or None, default 0
        Seed of the subsampling.
    allow_nan : bool, default False
        Accept NaN in the background (for models that handle missing values).

    Attributes
    ----------
    background : DataFrame or ndarray of shape (n_bg, p)
        The rows kept.
    weights : ndarray of shape (n_bg,)
        Their weights, summing to one.
    feature_names : list of str
        The DataFrame's columns, else ``x0, x1, ...``.

    Raises
    ------
    InvalidInputError
        If ``background`` is empty, not 2-D, or holds NaN / inf (NaN allowed with
        ``allow_nan=True``).
    InvalidParameterError
        If ``max_samples`` is not a positive integer or ``weights`` are not one finite
        non-negative number per row with a positive sum.

    Examples
    --------
    >>> X, y = wb.zoo.diabetes()
    >>> masker = wb.Independent(X, max_samples=100, random_state=0)
    >>> masker.background.shape, round(float(masker.weights.sum()), 3)
    ((100, 10), 1.0)
    >>> from sklearn.linear_model import LinearRegression
    >>> model = LinearRegression().fit(X, y)
    >>> exp = wb.KernelShap(model, masker).explain(X.iloc[:2])
    >>> # the base value is the mean prediction over the background rows
    >>> bool(np.isclose(exp.base_values[0], model.predict(masker.background).mean()))
    True
    """

    def __init__(
        self,
        background: Any,
        *,
        max_samples: int | None = None,
        weights: Any = None,
        random_state: Any = 0,
        allow_nan: bool = False,
    ) -> None:
        bg = as_2d_input(background, name="background")
        check_nonempty(bg, name="background")
        check_finite(bg, name="background", allow_nan=allow_nan)
        n = bg.shape[0]
        if max_samples is not None:
            max_samples = check_int("max_samples", max_samples, minimum=1)
        self.max_samples = max_samples
        if max_samples is not None and n > max_samples:
            rng = check_random_state(random_state)
            idx = np.sort(rng.choice(n, size=max_samples, replace=False))
            bg = bg.iloc[idx] if isinstance(bg, pd.DataFrame) else bg[idx]
            if weights is not None:
                weights = np.asarray(weights, dtype=float)[idx]
        if isinstance(bg, pd.DataFrame):
            bg = bg.reset_index(drop=True)
        self._set_background(bg, weights)


class Baseline(Masker):
    """Absence as a fixed reference: absent features take ``value``.

    Parameters
    ----------
    value : scalar, array of shape (p,), mapping column -> value, or one-row DataFrame
        The reference input.
    template : DataFrame or array, optional
        Inputs whose columns and dtypes the reference row should follow; needed for a scalar
        or mapping ``value`` with DataFrame inputs. Explainers pass it automatically.

    Raises
    ------
    InvalidParameterError
        If ``value`` does not fit ``template`` (a DataFrame of several rows, unknown columns,
        or a length other than the number of features).

    Examples
    --------
    For a linear model, Shapley values against a single reference row are
    ``coef * (x - reference)``:

    >>> from sklearn.linear_model import LinearRegression
    >>> X, y = wb.zoo.diabetes()
    >>> model = LinearRegression().fit(X, y)
    >>> exp = wb.ExactShap(model, wb.Baseline(X.mean())).explain(X.iloc[:2])
    >>> bool(np.allclose(exp.values, model.coef_ * (X.iloc[:2] - X.mean()).to_numpy()))
    True
    """

    def __init__(self, value: Any, template: Any = None) -> None:
        self.value = value
        if template is not None:
            self._set_background(self._row(value, template), None)

    def bound(self, template: Any) -> Baseline:
        """This baseline laid out like ``template`` (columns and dtypes)."""
        return Baseline(self.value, template)

    @staticmethod
    def _row(value: Any, template: Any) -> Any:
        if isinstance(value, pd.DataFrame):
            if len(value) != 1:
                raise InvalidParameterError("a DataFrame baseline must have exactly one row.")
            return value
        if isinstance(template, pd.DataFrame):
            row = template.iloc[:1].copy().reset_index(drop=True)
            if isinstance(value, Mapping):
                unknown = [k for k in value if k not in row.columns]
                if unknown:
                    raise InvalidParameterError(
                        f"baseline names unknown columns {unknown}; columns are "
                        f"{list(row.columns)}."
                    )
                items = value.items()
            elif np.ndim(value) == 0:
                items = ((c, value) for c in row.columns)
            else:
                vals = np.asarray(value, dtype=object).reshape(-1)
                if vals.size != row.shape[1]:
                    raise InvalidParameterError(
                        f"baseline has {vals.size} values but X has {row.shape[1]} columns."
                    )
                items = zip(row.columns, vals, strict=True)
            for c, v in items:
                row[c] = (
                    pd.Series([v], dtype=row[c].dtype)
                    if not isinstance(row[c].dtype, pd.CategoricalDtype)
                    else pd.Categorical([v], dtype=row[c].dtype)
                )
            return row
        p = np.shape(template)[1]
        vals = np.asarray(value, dtype=float)
        if vals.ndim == 0:
            vals = np.full(p, float(vals))
        if vals.reshape(-1).size != p:
            raise InvalidParameterError(f"baseline has {vals.size} values but X has {p} columns.")
        return vals.reshape(1, p)


def summarise_background(
    background: Any,
    max_background: int | None = None,
    *,
    weights: Any = None,
    random_state: Any = 0,
    allow_nan: bool = False,
    evaluate: Callable[[Any], Any] | None = None,
    remedies: Sequence[str] = ("max_background=None", "wb.kmeans(background, k=100)"),
    warn_large: bool = True,
) -> Independent:
    """The :class:`Independent` masker of a background: whole, or a sample only when asked.

    Parameters
    ----------
    background : DataFrame, array of shape (n_bg, p), or Independent
        The rows that stand for the data (an Independent masker's rows and weights).
    max_background : int, optional
        Rows to keep. None (default) keeps them all. Below ``n_bg`` a sample is drawn
        without replacement with ``random_state``, and a ``UserWarning`` names
        ``max_background`` and the measured effect: the largest, over outputs, of
        ``|weighted mean of evaluate over all rows - mean over the sample|`` (one extra call
        of ``evaluate`` on the whole background).
    weights : array of shape (n_bg,), optional
        Row weights (an Independent masker's own are used when it is given).
    random_state : int, Generator or None
        Seed of the sample.
    allow_nan : bool
        Accept NaN in the background.
    evaluate : callable, optional
        ``rows -> (m,) or (m, k)`` model outputs, to measure the effect of sampling.
    remedies : sequence of str
        How the user keeps or summarises every row, named in the warnings.
    warn_large : bool
        Warn about run time above :data:`LARGE_BACKGROUND` rows (for methods whose cost grows
        with the background rows; LIME only draws from it).

    Returns
    -------
    Independent

    Warns
    -----
    UserWarning
        When a sample is drawn (with its measured effect), and when more than
        :data:`LARGE_BACKGROUND` rows are kept (run time grows with them; the result is
        correct).
    """
    if isinstance(background, Masker):
        weights = background.weights if weights is None else weights
        background = background.background
    bg = as_2d_input(background, name="background")
    check_nonempty(bg, name="background")
    check_finite(bg, name="background", allow_nan=allow_nan)
    n = int(bg.shape[0])
    full = Independent(bg, weights=weights, allow_nan=allow_nan)
    if max_background is None or n <= check_int("max_background", max_background, minimum=1):
        masker = full
    else:
        masker = Independent(
            bg,
            max_samples=max_background,
            weights=weights,
            random_state=random_state,
            allow_nan=allow_nan,
        )
        effect = ""
        if evaluate is not None:
            full_mean = full.weights @ _as_matrix(evaluate(full.background))
            sample_mean = masker.weights @ _as_matrix(evaluate(masker.background))
            gap = float(np.max(np.abs(full_mean - sample_mean)))
            effect = (
                f"; the mean model output over the sample differs from that over all {n} rows "
                f"by {gap:.3g}, which shifts every base value by as much"
            )
        warnings.warn(
            f"max_background={max_background} keeps a random sample of {max_background} of the "
            f"{n} background rows (random_state={random_state!r}){effect}. To use every row "
            f"pass {' or '.join(remedies)}.",
            UserWarning,
            stacklevel=3,
        )
    if warn_large and masker.n_rows > LARGE_BACKGROUND:
        warnings.warn(
            f"the background has {masker.n_rows} rows: each coalition costs one model row per "
            f"background row, so run time grows with them (the result is correct). To go "
            f"faster summarise it with max_background= (a random sample) or "
            f"wb.kmeans(background, k=100) (a weighted summary).",
            UserWarning,
            stacklevel=3,
        )
    return masker


def _as_matrix(values: Any) -> np.ndarray:
    v = np.asarray(values, dtype=float)
    return v[:, None] if v.ndim == 1 else v.reshape(v.shape[0], -1)


def kmeans(
    background: Any, k: int = 10, *, random_state: Any = 0, allow_nan: bool = False
) -> Independent:
    """A weighted ``k``-row summary of a background, as an :class:`Independent` masker.

    The rows are clustered by k-means on standardised numeric columns and one-hot encoded
    categorical / string columns; each cluster is represented by its real row nearest to the
    centroid (so every value, category and integer stays valid), weighted by the cluster's
    share of the rows. Explaining against ``k`` weighted rows costs ``k`` model rows per
    coalition instead of one per background row.

    Parameters
    ----------
    background : DataFrame or array of shape (n, p)
        The rows to summarise.
    k : int, default 10
        Number of representative rows; ``k >= n`` keeps every row, unweighted.
    random_state : int, Generator or None, default 0
        Seed of the k-means initialisation.
    allow_nan : bool, default False
        Accept NaN in the background (for models that handle missing values).

    Returns
    -------
    Independent
        With ``k`` background rows (shape (k, p)) and their weights (shape (k,)).

    Raises
    ------
    InvalidInputError
        If ``background`` is empty or holds NaN / inf (NaN allowed with ``allow_nan=True``).
    InvalidParameterError
        If ``k`` is not a positive integer.

    Examples
    --------
    >>> X, y = wb.zoo.diabetes()
    >>> bg = wb.kmeans(X, k=10, random_state=0)
    >>> bg.background.shape, round(float(bg.weights.sum()), 3)
    ((10, 10), 1.0)
    >>> len(bg.background.merge(X))  # each one a real row of X, not a centroid
    10

    References
    ----------
    Lundberg and Lee (2017), NeurIPS (the k-means background summary of shap's KernelSHAP).
    """
    from sklearn.cluster import KMeans

    bg = as_2d_input(background, name="background")
    check_nonempty(bg, name="background")
    check_finite(bg, name="background", allow_nan=allow_nan)
    k = check_int("k", k, minimum=1)
    n = bg.shape[0]
    if k >= n:
        return Independent(bg, max_samples=n, allow_nan=allow_nan)
    if isinstance(bg, pd.DataFrame):
        parts = []
        for c in bg.columns:
            s = bg[c]
            if pd.api.types.is_numeric_dtype(s.dtype) and not pd.api.types.is_bool_dtype(s.dtype):
                parts.append(s.to_numpy(dtype=float, na_value=np.nan)[:, None])
            else:
                parts.append(pd.get_dummies(s.astype(str), dtype=float).to_numpy())
        M = np.concatenate(parts, axis=1)
    else:
        M = np.asarray(bg, dtype=float)
    M = np.nan_to_num(M - np.nanmean(M, axis=0), nan=0.0)
    scale = M.std(axis=0)
    M = M / np.where(scale > 0, scale, 1.0)
    seed = int(check_random_state(random_state).integers(2**31 - 1))
    km = KMeans(n_clusters=k, n_init=4, random_state=seed).fit(M)
    reps, weights = [], []
    for c in range(k):
        members = np.flatnonzero(km.labels_ == c)
        if members.size == 0:
            continue
        d = ((M[members] - km.cluster_centers_[c]) ** 2).sum(axis=1)
        reps.append(members[np.argmin(d)])
        weights.append(members.size)
    rows = np.array(reps)
    chosen = bg.iloc[rows].reset_index(drop=True) if isinstance(bg, pd.DataFrame) else bg[rows]
    return Independent(
        chosen, max_samples=len(rows), weights=np.array(weights, float), allow_nan=allow_nan
    )
