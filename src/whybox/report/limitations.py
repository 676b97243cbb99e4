"""The report's automatic limitations: what could make this explanation misleading.

Three checks, each a pure function returning plain records, and :func:`limitations_section`
that turns whichever found something into a report section (or returns None when none did,
so the section is omitted):

* :func:`correlated_pairs` — feature pairs with ``|r| > threshold`` (Pearson, numeric and
  boolean columns) in the reference data. Interventional (marginal) Shapley values replace a
  feature by background values independently of the features it is correlated with, so the
  model is evaluated off the data manifold and credit is split between correlated features
  (Aas et al. 2021; Janzing et al. 2020).
* :func:`out_of_range` — explained rows whose value of a feature lies outside the range seen
  in the training data (numbers), or is a category never seen there.
* :func:`wide_intervals` — features of a sampled explanation whose standard errors are large
  relative to the attributions themselves.

References
----------
Aas, K., Jullum, M. and Løland, A. (2021). Explaining individual predictions when features are
dependent: more accurate approximations to Shapley values. *Artificial Intelligence* 298.

Janzing, D., Minorics, L. and Blöbaum, P. (2020). Feature relevance quantification in
explainable AI: a causal problem. *AISTATS*.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd

from ..errors import InvalidInputError
from ..explanation import Explanation

__all__ = [
    "CORR_MAX_ROWS",
    "correlated_pairs",
    "limitations_section",
    "out_of_range",
    "wide_intervals",
]

#: the report's correlation check reads at most this many reference rows (a seeded sample)
CORR_MAX_ROWS = 100_000


def _frame(X: Any, names: list[str] | None = None) -> pd.DataFrame:
    if isinstance(X, pd.DataFrame):
        return X
    arr = np.asarray(X)
    if arr.ndim != 2:
        arr = arr.reshape(arr.shape[0], -1)
    cols = names if names is not None and len(names) == arr.shape[1] else None
    return pd.DataFrame(arr, columns=cols)


def _numeric(col: pd.Series) -> np.ndarray | None:
    """A column as floats (NaN for missing) when it is numeric or boolean, else None."""
    if isinstance(col.dtype, pd.CategoricalDtype):
        return None
    if pd.api.types.is_bool_dtype(col.dtype) or pd.api.types.is_numeric_dtype(col.dtype):
        return pd.to_numeric(col, errors="coerce").to_numpy(dtype=float, na_value=np.nan)
    return None


def correlated_pairs(X: Any, threshold: float = 0.8) -> list[dict[str, Any]]:
    """Pairs of numeric columns of ``X`` with ``|Pearson r| > threshold``.

    Parameters
    ----------
    X : DataFrame or array of shape (n, p)
        Reference data (training data, or a representative sample).
    threshold : float, default 0.8
        Absolute correlation above which a pair is reported.

    Returns
    -------
    list of dict
        ``{"a": name, "b": name, "r": correlation}``, strongest first. Rows with a missing
        value in either column are left out of that pair's correlation; constant columns are
        never reported.
    """
    frame = _frame(X)
    cols = [(str(c), _numeric(frame.iloc[:, j])) for j, c in enumerate(frame.columns)]
    cols = [(c, v) for c, v in cols if v is not None]
    out = []
    # columns without missing values: one correlation matrix, O(n p^2)
    whole = [k for k, (_, v) in enumerate(cols) if not np.isnan(v).any() and v.std() > 0]
    r_whole = (
        np.corrcoef(np.stack([cols[k][1] for k in whole])) if len(whole) > 1 else np.zeros((0, 0))
    )
    pos = {k: i for i, k in enumerate(whole)}
    for a in range(len(cols)):
        for b in range(a + 1, len(cols)):
            if a in pos and b in pos and len(cols[a][1]) >= 3:
                r = float(r_whole[pos[a], pos[b]])
            else:
                x, y = cols[a][1], cols[b][1]
                ok = ~(np.isnan(x) | np.isnan(y))
                if ok.sum() < 3 or x[ok].std() == 0 or y[ok].std() == 0:
                    continue
                r = float(np.corrcoef(x[ok], y[ok])[0, 1])
            if abs(r) > threshold:
                out.append({"a": cols[a][0], "b": cols[b][0], "r": r})
    out.sort(key=lambda d: -abs(d["r"]))
    return out


def out_of_range(exp: Explanation, X_train: Any) -> list[dict[str, Any]]:
    """Explained rows with a feature value outside the training data's range.

    Parameters
    ----------
    exp : Explanation
        A tabular Explanation with ``data`` (the explained rows).
    X_train : DataFrame or array of shape (m, p)
        The training data. A DataFrame's columns are matched to the explained features by
        name (in any order; extra columns are ignored), an array's by position.

    Raises
    ------
    InvalidInputError
        When a DataFrame lacks explained features (named), or an array has another number
        of columns.

    Returns
    -------
    list of dict
        One record per feature with at least one such row: ``{"feature", "range" (text),
        "rows" (row labels), "values" (their values, as text)}``. Numbers count as outside
        when below the training minimum or above the maximum; categories and strings when
        they never occur in the training data. Missing values are never flagged.
    """
    if exp.data is None or not exp.is_tabular:
        return []
    names = list(exp.feature_names)
    data = _frame(exp.data, names)
    train = _aligned_training(_frame(X_train, names), data)
    labels = exp.row_labels
    out = []
    for j, name in enumerate(names):
        col, ref = data.iloc[:, j], train.iloc[:, j]
        x, r = _numeric(col), _numeric(ref)
        if x is not None and r is not None:
            if np.isnan(r).all():
                continue
            lo, hi = float(np.nanmin(r)), float(np.nanmax(r))
            bad = np.flatnonzero((x < lo) | (x > hi))
            rng = f"{lo:.4g} to {hi:.4g}"
            shown = [f"{x[i]:.4g}" for i in bad]
        else:
            seen = set(ref.dropna().astype(str))
            vals = col.astype(object)
            bad = np.flatnonzero((~vals.isna() & ~vals.astype(str).isin(seen)).to_numpy())
            cats = sorted(seen)
            rng = ", ".join(cats[:8]) + (" …" if len(cats) > 8 else "")
            shown = [str(vals.iloc[i]) for i in bad]
        if bad.size:
            out.append(
                {
                    "feature": name,
                    "range": rng,
                    "rows": [labels[i] for i in bad],
                    "values": shown,
                }
            )
    return out


def _aligned_training(train: pd.DataFrame, data: pd.DataFrame) -> pd.DataFrame:
    """The training columns in the order of the explained data: by name, or by position
    for an array (whose columns carry no names)."""
    names = [str(c) for c in data.columns]
    if not isinstance(train.columns, pd.RangeIndex):
        by_name = {str(c): c for c in train.columns}
        missing = [c for c in names if c not in by_name]
        if missing:
            raise InvalidInputError(
                f"X_train lacks the explained features {missing}; the range check matches "
                "columns by name. Pass training rows with every explained feature (columns "
                "in any order)."
            )
        return train[[by_name[c] for c in names]]
    if train.shape[1] != len(names):
        raise InvalidInputError(
            f"X_train has {train.shape[1]} columns but {len(names)} features were explained; "
            "an array is matched by position, so it needs exactly the explained columns in "
            "the same order (or pass a DataFrame, matched by name)."
        )
    return train


def wide_intervals(exp: Explanation, threshold: float = 0.1) -> list[dict[str, Any]]:
    """Features whose sampling standard errors are large relative to their attributions.

    For feature ``j`` the relative error is ``mean_i(std_ij) / mean_i(|value_ij|)``; it is
    reported when above ``threshold``, together with the share of rows whose 95% interval
    ``value ± 1.96 std`` contains zero (the sign of the attribution is then uncertain).

    Parameters
    ----------
    exp : Explanation
        An Explanation; nothing is reported unless ``exp.std`` is set and non-zero.
    threshold : float, default 0.1
        Relative error above which a feature is reported.

    Returns
    -------
    list of dict
        ``{"feature", "relative_error", "sign_uncertain" (fraction of rows)}``, largest
        relative error first.
    """
    if exp.std is None or not exp.is_tabular:
        return []
    single = exp if not exp.multi_output else exp[:, :, 0]
    values = np.abs(np.asarray(single.values, dtype=float))
    std = np.asarray(single.std, dtype=float)
    if not np.any(std > 0):
        return []
    out = []
    for j, name in enumerate(single.feature_names):
        scale = values[:, j].mean()
        err = std[:, j].mean()
        rel = err / scale if scale > 0 else (np.inf if err > 0 else 0.0)
        if rel > threshold:
            crosses = float(np.mean(values[:, j] <= 1.96 * std[:, j]))
            out.append({"feature": name, "relative_error": float(rel), "sign_uncertain": crosses})
    out.sort(key=lambda d: -d["relative_error"])
    return out


def _is_interventional(exp: Explanation) -> bool:
    p = exp.params
    return p.get("masker") in ("Independent", "kmeans") or p.get("feature_perturbation") in (
        "interventional",
    )


def _rows_text(rows: list[Any], limit: int = 12) -> str:
    shown = ", ".join(str(r) for r in rows[:limit])
    return shown + (f" and {len(rows) - limit} more" if len(rows) > limit else "")


def limitations_section(
    exp: Explanation,
    X: Any = None,
    X_train: Any = None,
    *,
    corr_threshold: float = 0.8,
    interval_threshold: float = 0.1,
    others: list[Explanation] | tuple[Explanation, ...] = (),
) -> dict[str, Any] | None:
    """The limitations section, or None when no check found anything.

    Parameters
    ----------
    exp : Explanation
        The explanation the report is about.
    X : DataFrame or array, optional
        Reference data for the correlation check (default: ``X_train``, else ``exp.data``).
    X_train : DataFrame or array, optional
        Training data for the range check (default: ``X``).
    corr_threshold, interval_threshold : float
        See :func:`correlated_pairs` and :func:`wide_intervals`.
    others : list of Explanation
        Further explanations shown in the report (e.g. a sampled method compared with
        ``exp``): their intervals are checked too.
    """
    reference = X if X is not None else X_train
    train = X_train if X_train is not None else X
    items: list[dict[str, Any]] = []
    corr_source = reference if reference is not None else exp.data
    if corr_source is not None and exp.is_tabular:
        n_ref = len(corr_source)
        sampled = n_ref > CORR_MAX_ROWS
        if sampled:  # a correlation from 100,000 rows has a standard error below 0.003
            keep = np.sort(np.random.default_rng(0).choice(n_ref, CORR_MAX_ROWS, replace=False))
            corr_source = (
                corr_source.iloc[keep]
                if isinstance(corr_source, pd.DataFrame)
                else np.asarray(corr_source)[keep]
            )
        pairs = correlated_pairs(corr_source, corr_threshold)
        if pairs:
            if _is_interventional(exp):
                effect = (
                    f"This explanation ({exp.method}) is interventional: it replaces a feature by "
                    "background values independently of the features it is correlated with, so "
                    "the model is evaluated on combinations that do not occur in the data (off "
                    "the data manifold), and credit is split between correlated features in a "
                    "way that reflects how the model uses each of them, not the data. Read the "
                    "attributions of each pair together."
                )
            else:
                effect = (
                    "Attributions of correlated features depend on how the method treats "
                    "absent features: interventional SHAP evaluates the model off the data "
                    "manifold and splits credit between them; read each pair together."
                )
            if sampled:
                effect += (
                    f" (Correlations estimated on a seeded random sample of {CORR_MAX_ROWS:,} "
                    f"of the {n_ref:,} reference rows.)"
                )
            items.append(
                {
                    "title": f"Highly correlated features (|r| > {corr_threshold:g})",
                    "text": effect,
                    "header": ["feature", "feature", "correlation r"],
                    "rows": [[d["a"], d["b"], f"{d['r']:+.3f}"] for d in pairs],
                }
            )
    if train is not None:
        outside = out_of_range(exp, train)
        if outside:
            n_rows = len({r for d in outside for r in map(str, d["rows"])})
            items.append(
                {
                    "title": "Explained rows outside the training range",
                    "text": (
                        f"{n_rows} explained row{'s' if n_rows != 1 else ''} "
                        f"{'have' if n_rows != 1 else 'has'} a value the model never saw in "
                        "training. There the model extrapolates, and the explanation describes "
                        "that extrapolation: trust it less."
                    ),
                    "header": ["feature", "training range", "rows", "their values"],
                    "rows": [
                        [d["feature"], d["range"], _rows_text(d["rows"]), _rows_text(d["values"])]
                        for d in outside
                    ],
                }
            )
    for e in (exp, *others):
        wide = wide_intervals(e, interval_threshold)
        if not wide:
            continue
        budget = e.params.get("budget")
        items.append(
            {
                "title": f"Sampled estimates with wide intervals ({e.method})",
                "text": (
                    f"{e.method} estimates attributions by sampling"
                    + (f" (budget {budget} model evaluations per row)" if budget else "")
                    + ". For these features the mean standard error is more than "
                    f"{interval_threshold:.0%} of the mean |attribution|; rank them with care, "
                    "or explain again with a larger budget."
                ),
                "header": ["feature", "mean std / mean |value|", "rows whose sign is uncertain"],
                "rows": [
                    [d["feature"], f"{d['relative_error']:.0%}", f"{d['sign_uncertain']:.0%}"]
                    for d in wide
                ],
            }
        )
    if not items:
        return None
    return {
        "kind": "limitations",
        "id": "limitations",
        "title": "Limitations",
        "lead": "Checked automatically: where this explanation may mislead.",
        "blocks": items,
    }
