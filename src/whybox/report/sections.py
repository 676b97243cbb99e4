"""Report sections: summary, data summary, effects, recourse.

Each builder returns a section dict for :meth:`whybox.report.Report.add`, or None when it
does not apply (the report then omits it). Plots are SVG ``data:`` URIs
(:func:`whybox.report.builder.figure_data_uri`).
"""

from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd

from ..errors import WhyboxError
from ..explanation import Explanation
from ._page import _fmt, figure_data_uri, figures_section

__all__ = [
    "data_section",
    "effects_section",
    "one_output_per_row",
    "recourse_section",
    "summary_section",
    "target_of",
]


def target_of(exp: Explanation) -> Any:
    """The explained output as ``target=`` for the model adapter (class indices as ints).

    With one target per row: the target explained in most rows (effect curves show one
    output).
    """
    rows = exp.row_targets
    t = max(set(rows), key=rows.count) if rows else exp.params.get("target")
    if isinstance(t, str) and t.lstrip("-").isdigit():
        return int(t)
    return t


def summary_section(
    exp: Explanation, model: Any = None, metrics: dict[str, Any] | None = None
) -> dict[str, Any]:
    """Model, data and method at a glance."""
    cards = [
        ("method", exp.method),
        ("rows explained", _fmt(exp.n_rows)),
        ("features", _fmt(len(exp.feature_names)) if not exp.is_ragged else "varies"),
    ]
    for k, v in (metrics or {}).items():
        cards.append((k, _fmt(v)))
    table = [("explained output", str(exp.params.get("output", "model output")))]
    if model is not None:
        table.append(("model", type(model).__name__))
    elif "model_type" in exp.params:
        table.append(("model", str(exp.params["model_type"])))
    if "background_rows" in exp.params:
        table.append(("background rows", _fmt(exp.params["background_rows"])))
    if exp.n_evals is not None:
        table.append(("model evaluations per row", _fmt(exp.n_evals)))
    if exp.predictions is not None:
        gap = np.abs(exp.completeness_gap()).max()
        table.append(("largest completeness gap", f"{gap:.2e} (prediction − base − sum of values)"))
    if exp.random_state is not None:
        table.append(("random_state", str(exp.random_state)))
    if "method_selection" in exp.params:
        table.append(("method selection", str(exp.params["method_selection"])))
    return {"kind": "summary", "id": "summary", "title": "Summary", "cards": cards, "table": table}


def one_output_per_row(exp: Explanation) -> Explanation:
    """A multi-output Explanation read one output per row: each row's predicted class.

    Outputs that are not classes (a multi-output regressor), or an Explanation without
    predictions, are read for their first output (the "Classes" section shows them all).
    """
    out = str(exp.params.get("output", ""))
    is_class = "class" in out or "decision function" in out
    if is_class and exp.predictions is not None:
        return exp.per_row_output(np.argmax(exp.predictions, axis=1))
    return exp[:, :, 0]


def data_section(X: Any, y: Any = None, *, max_rows: int = 40) -> dict[str, Any] | None:
    """One line per column of the reference data: type, summary, range, missing share."""
    if X is None:
        return None
    frame = X if isinstance(X, pd.DataFrame) else pd.DataFrame(np.asarray(X))
    if frame.ndim != 2 or frame.shape[1] == 0:
        return None
    rows = []
    for c in list(frame.columns)[:max_rows]:
        col = frame[c]
        missing = float(col.isna().mean())
        if isinstance(col.dtype, pd.CategoricalDtype) or not (
            pd.api.types.is_numeric_dtype(col.dtype) or pd.api.types.is_bool_dtype(col.dtype)
        ):
            counts = col.astype(object).value_counts()
            top = ", ".join(f"{k} ({v / len(col):.0%})" for k, v in counts.head(3).items())
            rows.append([str(c), "categorical", f"{col.nunique()} levels", top, f"{missing:.1%}"])
        else:
            v = pd.to_numeric(col, errors="coerce").astype(float)
            rows.append(
                [
                    str(c),
                    str(col.dtype),
                    f"mean {_fmt(v.mean())}, sd {_fmt(v.std())}",
                    f"{_fmt(v.min())} to {_fmt(v.max())}",
                    f"{missing:.1%}",
                ]
            )
    notes = [f"{len(frame):,} rows and {frame.shape[1]} columns."]
    if frame.shape[1] > max_rows:
        notes.append(f"The first {max_rows} of {frame.shape[1]} columns are listed.")
    if y is not None:
        yy = pd.Series(np.asarray(y).ravel())
        if yy.nunique() <= 10:
            shares = ", ".join(f"{k}: {v:.1%}" for k, v in yy.value_counts(normalize=True).items())
            notes.append(f"Outcome shares: {shares}.")
        else:
            notes.append(f"Outcome: mean {_fmt(yy.mean())}, sd {_fmt(yy.std())}.")
    return {
        "kind": "table",
        "id": "data",
        "title": "Data",
        "lead": "The reference data the model is described on.",
        "header": ["feature", "type", "summary", "range / most frequent", "missing"],
        "rows": rows,
        "notes": notes,
    }


def effects_section(
    exp: Explanation,
    features: list[str],
    *,
    model: Any = None,
    X: Any = None,
    n_rows: int = 200,
    n_ice: int = 80,
    random_state: int = 0,
) -> dict[str, Any] | None:
    """Dependence plots of the top features, with PDP/ICE and ALE curves when available.

    For each feature: the attribution against the feature's value (one dot per explained
    row); with ``model`` and ``X``, the partial dependence with ICE curves (Friedman 2001;
    Goldstein et al. 2015) and the accumulated local effects (Apley and Zhu 2020) of the
    explained output on a seeded sample of ``n_rows`` rows of ``X`` (``n_ice`` of them for
    the partial dependence and its ICE curves, which are drawn one line per row).
    """
    import matplotlib.pyplot as plt

    from ..inspection.ale import ale as ale_fn
    from ..inspection.partial_dependence import partial_dependence as pd_fn
    from ..viz import plots

    if not exp.is_tabular or exp.data is None or not features:
        return None
    single = exp if not exp.multi_output else exp[:, :, 0]
    use_model = model is not None and X is not None
    target, link = target_of(exp), exp.params.get("link")
    figures: list[dict[str, str]] = []
    notes: list[str] = []
    if use_model and exp.row_targets:
        notes.append(
            f"Each row explains its own output; the partial dependence and ALE curves show "
            f"{target}, the output explained in most rows."
        )
    if use_model and len(X) > n_rows:  # the curves average over a seeded sample of rows
        rng = np.random.default_rng(random_state)
        keep = np.sort(rng.choice(len(X), size=n_rows, replace=False))
        X = X.iloc[keep] if isinstance(X, pd.DataFrame) else np.asarray(X)[keep]
    for name in features:
        ax = plots.scatter(single, name)
        ax.figure.set_size_inches(4.6, 3.4)
        figures.append(
            {"src": figure_data_uri(ax.figure), "caption": f"{name}: attribution against value"}
        )
        if not use_model:
            continue
        try:
            res = pd_fn(
                model,
                X,
                name,
                kind="both",
                target=target,
                link=link,
                sample=min(n_ice, len(X)),
                random_state=random_state,
            )
            fig, ax = plt.subplots(figsize=(4.6, 3.4))
            res.plot(ax=ax)
            figures.append(
                {
                    "src": figure_data_uri(fig),
                    "caption": f"{name}: partial dependence (thick) and ICE curves",
                }
            )
        except WhyboxError as exc:
            notes.append(f"Partial dependence of {name} was not computed: {exc}")
        try:
            res = ale_fn(model, X, name, target=target, link=link)
            fig, ax = plt.subplots(figsize=(4.6, 3.4))
            res.plot(ax=ax)
            figures.append(
                {"src": figure_data_uri(fig), "caption": f"{name}: accumulated local effects"}
            )
        except WhyboxError as exc:
            notes.append(f"ALE of {name} was not computed: {exc}")
    text = (
        "For each of the most important features: its attribution against its value in each "
        "explained row"
        + (
            "; how the model's output changes, on average and row by row, as the feature is "
            "set to each value (partial dependence and ICE); and its accumulated local effect, "
            "which only compares nearby values and so stays on the data when features are "
            "correlated."
            if use_model
            else "."
        )
    )
    per_feature = 3 if use_model else 1
    section = figures_section(
        "Feature effects", figures, text=text, id="effects", columns=max(per_feature, 2)
    )
    section["notes"] = notes
    return section


def recourse_section(
    exp: Explanation,
    rows: list[int],
    *,
    model: Any,
    X_train: Any,
    options: dict[str, Any] | Any,
    headings: list[str] | None = None,
    n: int = 3,
) -> dict[str, Any] | None:
    """Counterfactual recourse for the given rows: what would change the decision.

    ``options`` are keyword arguments of :class:`whybox.Counterfactuals` (``immutable``,
    ``ranges``, ``monotone``, ``time_budget``, ...), or a constructed ``Counterfactuals``.
    Returns None when no rows, data, model or training rows are given.
    """
    from ..recourse.counterfactuals import Counterfactuals

    if not rows or exp.data is None or model is None or X_train is None:
        return None
    if isinstance(options, Counterfactuals):
        cf = options
    else:
        cf = Counterfactuals(model, X_train, **dict(options or {}))
    data = exp.data
    labels = exp.row_labels
    items = []
    for pos, i in enumerate(rows):
        x = data.iloc[[i]] if isinstance(data, pd.DataFrame) else np.asarray(data)[i]
        res = cf.explain(x, n=n)
        table = res.table()
        changed = [c for c in table.columns if c not in _METRIC_COLS]
        header = ["#", *changed, "reaches it", "new output", "features changed", "distance"]
        body = [
            [
                str(k + 1),
                *[str(table.iloc[k][c]).replace(" -> ", " → ") for c in changed],
                "yes" if bool(table.iloc[k]["valid"]) else "no",
                _fmt(float(table.iloc[k]["prediction"])),
                _fmt(int(table.iloc[k]["sparsity"])),
                _fmt(float(table.iloc[k]["proximity"]), 3),
            ]
            for k in range(len(table))
        ]
        items.append(
            {
                "title": headings[pos] if headings else f"Row {labels[i]}",
                "text": (
                    f"Goal: {res.desired}; judged output now {_fmt(res.query_prediction)}. "
                    f"Search: {res.status}."
                ),
                "header": header,
                "rows": body,
                "notes": [],
                "result": res,  # kept for callers and tests; not rendered
            }
        )
    immutable = getattr(cf, "immutable", None)
    names = getattr(getattr(cf, "schema", None), "columns", None)
    fixed = [str(names[j]) for j in immutable] if immutable and names is not None else []
    return {
        "kind": "quality",  # rendered as a list of titled tables
        "id": "recourse",
        "title": "Counterfactual recourse",
        "lead": (
            "The smallest changes found that would have changed the decision, each a real "
            "option within the stated constraints: old → new for every changed feature, then "
            "whether it reaches the goal, the new model output, how many features change and "
            "the distance (in median absolute deviations per feature)."
            + (f" Never changed: {', '.join(fixed)}." if fixed else "")
        ),
        "blocks": items,
    }


_METRIC_COLS = ("valid", "prediction", "proximity", "sparsity", "plausibility", "lof")
