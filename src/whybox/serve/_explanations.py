"""JSON views of one saved Explanation: the data behind the dashboard's explanation pages.

Every function reads an :class:`~whybox.Explanation` (and nothing else) and returns a JSON-able
dict of bounded size: at most ``MAX_FEATURES`` features, ``MAX_ROWS_PAGE`` rows per page,
``MAX_TOKENS`` tokens per text row and a ``MAX_PIXELS``-side heatmap per image. Strings are
returned as they are; escaping them is the page's job (it inserts every string as text).
Non-finite numbers become ``None``.

The global importance is the mean absolute attribution per feature (Lundberg & Lee 2017's
summary bar; for text, per token string over all rows); the "beeswarm" gives, for the most
important features, one point per row (a deterministic, evenly spaced subsample of rows)
at its attribution, coloured by the rank of the feature's value among the rows.

References
----------
Lundberg, S. M. & Lee, S.-I. (2017). A unified approach to interpreting model predictions.
NeurIPS.
"""

from __future__ import annotations

import math
import numbers
from typing import Any

import numpy as np
import pandas as pd

from whybox.errors import InvalidParameterError
from whybox.explanation import Explanation

__all__ = [
    "MAX_FEATURES",
    "MAX_PIXELS",
    "MAX_ROWS_PAGE",
    "MAX_TOKENS",
    "beeswarm",
    "clean",
    "compare",
    "grid",
    "row",
    "rows",
    "scatter",
    "summary",
]

MAX_FEATURES = 200
MAX_ROWS_PAGE = 500
MAX_TOKENS = 4096
MAX_PIXELS = 128
MAX_BEESWARM_ROWS = 2000
_MAX_STR = 200


def clean(obj: Any) -> Any:
    """``obj`` with numpy scalars made plain and NaN/inf made None (strict JSON)."""
    if obj is None or isinstance(obj, (bool, str)):
        return obj
    if isinstance(obj, np.bool_):
        return bool(obj)
    if isinstance(obj, numbers.Integral):
        return int(obj)
    if isinstance(obj, numbers.Real):
        f = float(obj)
        return f if math.isfinite(f) else None
    if isinstance(obj, dict):
        return {str(k): clean(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [clean(v) for v in obj]
    if isinstance(obj, np.ndarray):
        return clean(obj.tolist())
    return _short(repr(obj))


def _short(s: Any, n: int = _MAX_STR) -> str:
    s = str(s)
    return s if len(s) <= n else s[: n - 1] + "…"


def view_of(exp: Explanation) -> str:
    if "grid_shape" in exp.meta:
        return "grid"
    if exp.is_ragged:
        return "text"
    if len(exp.feature_shape) in (2, 3):
        return "image"
    return "tabular" if exp.is_tabular else "array"


def output_index(exp: Explanation, output: int) -> int | None:
    """Checked output index (None for a single-output Explanation)."""
    if not exp.multi_output:
        if output not in (0, -1):
            raise InvalidParameterError(
                f"output={output}: this explanation explains one output; use output=0."
            )
        return None
    if not -exp.n_outputs <= output < exp.n_outputs:
        raise InvalidParameterError(
            f"output={output} is out of range: this explanation explains {exp.n_outputs} "
            f"outputs (0 to {exp.n_outputs - 1})."
        )
    return output % exp.n_outputs


def _row_vals(exp: Explanation, i: int, o: int | None) -> np.ndarray:
    v = exp.row_values(i)
    return v if o is None else v[:, o]


def _matrix(exp: Explanation, o: int | None) -> np.ndarray:
    """(n, p) attributions of a rectangular Explanation for one output."""
    v = np.asarray(exp.values, dtype=float)
    if o is not None:
        v = v[..., o]
    return v.reshape(v.shape[0], -1)


def _pick(arr: np.ndarray | None, i: int, o: int | None) -> float | None:
    if arr is None:
        return None
    a = arr[i]
    return float(a if o is None else a[o])


def _prediction(exp: Explanation, i: int, o: int | None) -> float | None:
    return _pick(exp.predictions, i, o)


def summary(exp: Explanation, output: int = 0, top: int = 30) -> dict[str, Any]:
    """What the explanation page shows first: identity, outputs and the global importance."""
    o = output_index(exp, output)
    view = view_of(exp)
    out: dict[str, Any] = {
        "method": exp.method,
        "view": view,
        "n_rows": exp.n_rows,
        "n_outputs": exp.n_outputs,
        "output_names": exp.output_names,
        "output": output,
        "params": clean(exp.params),
        "n_evals": exp.n_evals,
        "random_state": clean(exp.random_state),
        "has_predictions": exp.predictions is not None,
        "has_data": exp.data is not None,
        "has_std": exp.std is not None,
    }
    if view == "text":
        agg: dict[str, list[float]] = {}
        for i in range(exp.n_rows):
            for name, v in zip(exp.row_feature_names(i), _row_vals(exp, i, o), strict=True):
                agg.setdefault(name, []).append(abs(float(v)))
        names = list(agg)
        imp = np.array([np.mean(agg[n]) for n in names]) if names else np.zeros(0)
        out["importance_of"] = "mean |attribution| per token string, over all its occurrences"
    else:
        m = _matrix(exp, o)
        names = list(exp.feature_names)
        imp = np.abs(m).mean(axis=0) if m.shape[0] else np.zeros(m.shape[1])
        out["n_features"] = len(names)
        out["feature_shape"] = list(exp.feature_shape)
        out["importance_of"] = "mean |attribution| over rows"
    if view == "image":
        m = np.abs(np.asarray(exp.values, dtype=float))
        if o is not None:
            m = m[..., o]
        heat = m.mean(axis=0)
        layout = _layout_of(exp)
        heat = (
            heat.sum(axis=0)
            if layout == "first"
            else heat.sum(axis=-1)
            if layout == "last"
            else heat
        )
        out["importance_map"] = _downsample(heat, MAX_PIXELS)
    order = np.argsort(-imp, kind="stable")[:top]
    out["importance"] = [{"feature": _short(names[j]), "value": imp[j]} for j in order]
    if exp.predictions is not None:
        gap = np.asarray(exp.completeness_gap(), dtype=float)
        if o is not None and gap.ndim == 2:
            gap = gap[:, o]
        out["completeness_gap_max"] = float(np.nanmax(np.abs(gap))) if gap.size else None
    if view == "tabular":
        out["feature_names"] = [_short(n) for n in exp.feature_names[:MAX_FEATURES]]
    return clean(out)


def _value_rank(col: Any) -> np.ndarray | None:
    """Values of one data column as ranks in [0, 1] (None when not numeric)."""
    try:
        x = pd.to_numeric(pd.Series(col), errors="coerce").to_numpy(dtype=float)
    except (TypeError, ValueError):
        return None
    ok = np.isfinite(x)
    if not ok.any():
        return None
    r = np.full(x.shape, np.nan)
    r[ok] = pd.Series(x[ok]).rank(pct=True).to_numpy()
    return r


def sample_rows(n: int, m: int) -> np.ndarray:
    """``m`` evenly spaced row indices of ``n`` (all rows when n <= m)."""
    if n <= m:
        return np.arange(n)
    return np.unique(np.linspace(0, n - 1, m).round().astype(int))


def beeswarm(
    exp: Explanation, output: int = 0, max_features: int = 15, max_rows: int = 500
) -> dict[str, Any]:
    """Per feature (most important first) the attribution of each sampled row and the rank
    of its feature value (for the colour). Tabular Explanations only."""
    o = output_index(exp, output)
    if view_of(exp) not in ("tabular", "array", "grid"):
        raise InvalidParameterError(
            "the beeswarm needs a rectangular explanation (one value per feature and row); "
            "this one is " + view_of(exp) + "."
        )
    m = _matrix(exp, o)
    rows_ = sample_rows(m.shape[0], max_rows)
    order = np.argsort(-np.abs(m).mean(axis=0), kind="stable")[:max_features]
    feats = []
    data = exp.data if exp.is_tabular else None
    for j in order:
        colour = None
        if data is not None:
            col = (
                data.iloc[:, j]
                if isinstance(data, pd.DataFrame)
                else np.asarray(data).reshape(exp.n_rows, -1)[:, j]
            )
            ranks = _value_rank(col)
            colour = None if ranks is None else ranks[rows_]
        feats.append({
            "feature": _short(exp.feature_names[j]),
            "values": m[rows_, j],
            "colour": colour,
        })  # fmt: skip
    return clean({"rows": rows_, "n_rows": m.shape[0], "features": feats})


def scatter(
    exp: Explanation, feature: str, output: int = 0, max_rows: int = 1000
) -> dict[str, Any]:
    """Dependence data of one feature (shap's scatter plot): for each sampled row the
    feature's value and its attribution. Values are numbers when the column is numeric,
    else category strings. Tabular Explanations with data only."""
    o = output_index(exp, output)
    if not exp.is_tabular or exp.data is None:
        raise InvalidParameterError(
            "the dependence plot needs a tabular explanation saved with its data (data=X)."
        )
    if feature not in exp.feature_names:
        raise InvalidParameterError(
            f"feature {_short(feature)!r} is not a feature of this explanation; use one of "
            f"its feature_names (e.g. {_short(exp.feature_names[0])!r})."
        )
    j = list(exp.feature_names).index(feature)
    rows_ = sample_rows(exp.n_rows, max_rows)
    col = (
        exp.data.iloc[:, j]
        if isinstance(exp.data, pd.DataFrame)
        else pd.Series(np.asarray(exp.data).reshape(exp.n_rows, -1)[:, j])
    )
    numeric = pd.api.types.is_numeric_dtype(col) and not pd.api.types.is_bool_dtype(col)
    x = col.iloc[rows_]
    xs = x.to_numpy(dtype=float) if numeric else [_short(v, 60) for v in x.astype(str)]
    return clean({
        "feature": _short(feature), "numeric": bool(numeric), "rows": rows_,
        "x": xs, "y": _matrix(exp, o)[rows_, j], "n_rows": exp.n_rows,
    })  # fmt: skip


def _row_text(exp: Explanation, i: int) -> str:
    if exp.is_ragged:
        return "".join(exp.row_feature_names(i))
    return ""


SORTS = ("row", "prediction", "total", "abs_total")


def rows(
    exp: Explanation,
    output: int = 0,
    offset: int = 0,
    limit: int = 50,
    sort: str = "row",
    descending: bool = False,
    q: str | None = None,
    feature: str | None = None,
) -> dict[str, Any]:
    """A page of rows: label, prediction, total attribution and the top features.

    ``sort`` is ``"row"``, ``"prediction"``, ``"total"`` (sum of attributions),
    ``"abs_total"`` or ``"feature"`` (the attribution of ``feature``); ``q`` keeps rows whose
    label, text or feature values contain it (case-insensitive).
    """
    o = output_index(exp, output)
    n = exp.n_rows
    labels = exp.row_labels
    totals = np.array([float(np.sum(_row_vals(exp, i, o))) for i in range(n)])
    keep = np.arange(n)
    if q:
        needle = q.casefold()

        def hit(i: int) -> bool:
            if needle in str(labels[i]).casefold() or needle in _row_text(exp, i).casefold():
                return True
            d = exp.row_data(i) if exp.is_tabular else None
            return d is not None and any(needle in str(x).casefold() for x in d)

        keep = np.array([i for i in range(n) if hit(i)], dtype=int)
    if sort == "row":
        key = keep.astype(float)
    elif sort == "prediction":
        if exp.predictions is None:
            raise InvalidParameterError(
                "sort='prediction': this explanation has no predictions; sort by 'total'."
            )
        p = exp.predictions if o is None else exp.predictions[:, o]
        key = np.asarray(p, dtype=float)[keep]
    elif sort == "total":
        key = totals[keep]
    elif sort == "abs_total":
        key = np.abs(totals[keep])
    elif sort == "feature":
        if exp.is_ragged or feature not in exp.feature_names:
            raise InvalidParameterError(
                f"sort='feature' needs feature= one of the feature names, got {feature!r}."
            )
        key = _matrix(exp, o)[keep, list(exp.feature_names).index(feature)]
    else:
        raise InvalidParameterError(f"sort={sort!r}: use one of {[*SORTS, 'feature']}.")
    key = np.where(np.isnan(key), -np.inf if descending else np.inf, key)
    order = keep[np.lexsort((keep, -key if descending else key))]
    page = order[offset : offset + limit]
    items = []
    for i in page:
        i = int(i)
        v = _row_vals(exp, i, o)
        names = exp.row_feature_names(i)
        top = np.argsort(-np.abs(v), kind="stable")[:3]
        item = {
            "row": i,
            "label": _short(labels[i]),
            "prediction": _prediction(exp, i, o),
            "base_value": _pick(exp.base_values, i, o),
            "total": totals[i],
            "top": [{"feature": _short(names[j]), "value": v[j]} for j in top],
        }
        if exp.is_ragged:
            item["text"] = _short(_row_text(exp, i), 300)
        items.append(item)
    return clean({"total": len(keep), "n_rows": n, "offset": offset, "items": items})


def _data_text(x: Any) -> str:
    """A feature value as short text (floats to 4 significant digits)."""
    if isinstance(x, (float, np.floating)):
        return f"{float(x):.4g}"
    return _short(x, 80)


def _downsample(a: np.ndarray, side: int) -> np.ndarray:
    """Block-mean ``a`` (h, w[, c]) so that neither side exceeds ``side``."""
    h, w = a.shape[:2]
    f = max(1, math.ceil(max(h, w) / side))
    if f == 1:
        return a
    hh, ww = h // f * f, w // f * f
    a = a[:hh, :ww]
    return a.reshape(hh // f, f, ww // f, f, *a.shape[2:]).mean(axis=(1, 3))


def row(exp: Explanation, i: int, output: int = 0, max_features: int = 20) -> dict[str, Any]:
    """One row: a waterfall (base value, the largest attributions, the rest lumped, the
    prediction), plus its tokens (text) or heatmap and image (images)."""
    o = output_index(exp, output)
    if not 0 <= i < exp.n_rows:
        raise InvalidParameterError(
            f"row {i} is out of range: this explanation has {exp.n_rows} rows (0 to "
            f"{exp.n_rows - 1})."
        )
    view = view_of(exp)
    v = _row_vals(exp, i, o)
    names = exp.row_feature_names(i)
    base = _pick(exp.base_values, i, o)
    data = exp.row_data(i) if view == "tabular" else None
    order = np.argsort(-np.abs(v), kind="stable")
    shown, rest = order[:max_features], order[max_features:]
    steps = [
        {
            "feature": _short(names[j]),
            "value": v[j],
            "data": None if data is None else _data_text(data[j]),
        }
        for j in shown
    ]
    out: dict[str, Any] = {
        "row": i,
        "label": _short(exp.row_labels[i]),
        "view": view,
        "base_value": base,
        "prediction": _prediction(exp, i, o),
        "sum": float(np.sum(v)),
        "steps": steps,
        "rest": {"n": len(rest), "value": float(np.sum(v[rest])) if len(rest) else 0.0},
    }
    if view == "text":
        k = min(len(names), MAX_TOKENS)
        out["tokens"] = names[:k]
        out["values"] = v[:k]
        out["truncated"] = len(names) > k
    elif view == "image":
        out.update(_image_row(exp, i, o))
    return clean(out)


def _layout_of(exp: Explanation) -> str:
    from whybox.viz.images import _layout

    return _layout(exp, exp.feature_shape)


def _image_row(exp: Explanation, i: int, o: int | None) -> dict[str, Any]:
    from whybox.viz.images import _display_image

    shape = exp.feature_shape
    v = np.asarray(exp.values[i], dtype=float)
    if o is not None:
        v = v[..., o]
    layout = _layout_of(exp)
    heat = v.sum(axis=0) if layout == "first" else v.sum(axis=-1) if layout == "last" else v
    out: dict[str, Any] = {"heatmap": _downsample(heat, MAX_PIXELS)}
    img = _display_image(exp, i, shape)
    out["image"] = None if img is None else np.round(_downsample(img, MAX_PIXELS), 3)
    seg = exp.meta.get("segments")
    if isinstance(seg, list):
        s = np.asarray(seg)
        if s.ndim == 3 and s.shape[0] == exp.n_rows and s.shape[1:] == heat.shape:
            out["segments"] = _downsample(s[i].astype(float), MAX_PIXELS).round().astype(int)
    return out


def grid(exp: Explanation, output: int = 0) -> dict[str, Any]:
    """A patching result's grid: a matrix with row and column labels (rows x columns), the
    axes named; a 3-axis grid has (layer, position) rows and head columns."""
    o = output_index(exp, output)
    shape = exp.meta.get("grid_shape")
    axes = exp.meta.get("grid_axes")
    index = exp.meta.get("grid_index")
    if not shape or not axes or not index:
        raise InvalidParameterError(
            "this explanation has no patching grid (meta['grid_shape']); grids come from "
            "activation_patching, attribution_patching and path_patching."
        )
    v = np.asarray(exp.values, dtype=float)
    v = v[0] if o is None else v[0, ..., o]
    v = v.reshape(shape)
    fmt = {"layer": "L{}", "position": "pos{}", "head": "H{}"}

    def labels(axis: int) -> list[str]:
        return [fmt.get(axes[axis], "{}").format(j) for j in index[axis]]

    base = _pick(exp.base_values, 0, o)
    if len(shape) == 1:
        mat, rl, cl = v[:, None], [_short(n) for n in exp.feature_names], ["value"]
    elif len(shape) == 2:
        mat, rl, cl = v, labels(0), labels(1)
    else:
        rl = [f"{a}·{b}" for a in labels(0) for b in labels(1)]
        mat, cl = v.reshape(-1, shape[2]), labels(2)
    return clean({
        "axes": axes, "row_labels": rl, "column_labels": cl, "values": mat,
        "base_value": base, "method": exp.method,
        "normalized": bool(exp.params.get("normalize", False)),
    })  # fmt: skip


def compare(a: Explanation, b: Explanation, k: int = 5, output: int = 0) -> dict[str, Any]:
    """Agreement of two explanations of the same rows (:func:`whybox.metrics.agreement`):
    the mean of each measure and the per-row table (rows of the first page)."""
    from whybox.metrics.agreement import agreement

    if a.is_ragged or b.is_ragged:
        raise InvalidParameterError(
            "compare needs two rectangular explanations of the same rows and features; "
            "text explanations are ragged."
        )
    target = None if not a.multi_output else output
    table = agreement(a, b, k=min(k, int(np.prod(a.feature_shape))), target=target)
    means = {c: float(table[c].mean()) for c in table.columns}
    rows_ = [{"row": _short(idx), **{c: table.iloc[r][c] for c in table.columns}}
             for r, idx in enumerate(table.index[:MAX_ROWS_PAGE])]  # fmt: skip
    return clean({
        "k": k, "n_rows": len(table), "measures": list(table.columns), "mean": means,
        "rows": rows_, "methods": [a.method, b.method],
    })  # fmt: skip


def to_csv(exp: Explanation) -> str:
    """The attributions as CSV text (:meth:`Explanation.to_frame`: wide for tabular, long
    ``row, feature, value`` otherwise). Cells that a spreadsheet would run as a formula
    (starting with ``= + - @``, tab or carriage return) are prefixed with ``'``."""
    frame = exp.to_frame()
    if isinstance(frame.columns, pd.MultiIndex):
        frame.columns = [" | ".join(map(str, c)) for c in frame.columns]
    frame.columns = [_cell(c) for c in frame.columns]
    frame.index = [_cell(i) for i in frame.index]
    for c in frame.columns:
        if frame[c].dtype == object:
            frame[c] = frame[c].map(_cell)
    return frame.to_csv()


def _cell(x: Any) -> Any:
    if isinstance(x, str) and x[:1] in ("=", "+", "-", "@", "\t", "\r"):
        return "'" + x
    return x
