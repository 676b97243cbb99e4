"""Self-contained HTML reports built from Explanations.

A report is a list of sections rendered by one Jinja2 template with autoescaping on: every
user-provided string (feature names, category values, row labels, phrases) is escaped. Figures
are matplotlib SVGs embedded as ``data:`` URIs in ``<img>`` tags, so the page loads nothing from
the network and nothing inside a figure can run as script.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd

from .._validation import check_int
from ..errors import InvalidParameterError
from ..explanation import Explanation
from ._page import RASTER_ABOVE, Report, _fmt, figure_data_uri, figures_section

__all__ = ["RASTER_ABOVE", "Report", "figure_data_uri", "figures_section", "report"]


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


def importance_section(
    exp: Explanation, max_display: int = 12, random_state: int = 0
) -> dict[str, Any]:
    """Global importance (mean |value|) with 95% intervals over rows, beeswarm and heatmap.

    The interval is the bootstrap percentile interval over rows of
    :func:`whybox.global_importance` (1000 resamples); with a single row there is none.
    """
    import matplotlib.pyplot as plt

    from ..inspection.importance import global_importance
    from ..viz import plots

    single = exp if not exp.multi_output else exp[:, :, 0]
    absval = np.abs(single.values)
    mean = absval.mean(axis=0)
    n = absval.shape[0]
    fig = None
    if n > 1:
        imp = global_importance(
            single, confidence=0.95, n_bootstrap=1000, random_state=random_state
        )
        lower, upper = np.asarray(imp.lower, dtype=float), np.asarray(imp.upper, dtype=float)
        how = "a 95% bootstrap percentile interval over rows (1000 resamples)"
        fig, ax = plt.subplots(figsize=(8.0, 0.5 * min(max_display, len(mean)) + 1.5))
        imp.plot(ax=ax, max_display=max_display)
    else:
        lower = upper = np.full_like(mean, np.nan)
        how = "not defined for a single row"
    order = np.argsort(-mean, kind="stable")[:max_display]
    rows = [
        {
            "feature": single.feature_names[j],
            "value": _fmt(mean[j]),
            "interval": (
                f"{_fmt(lower[j])} – {_fmt(upper[j])}" if np.isfinite(lower[j]) else "n/a"
            ),
        }
        for j in order
    ]
    if fig is None:
        fig = plots.bar(single, max_display=max_display).figure
    section = {
        "kind": "importance",
        "id": "importance",
        "title": "Global importance",
        "lead": (
            f"Mean absolute contribution of each feature to the {exp.params.get('output', 'output')}"
            f" over the {n} explained rows; the interval is {how}."
        ),
        "figure": figure_data_uri(fig),
        "alt": "bar chart of global feature importance",
        "rows": rows,
    }
    if single.data is not None and n > 1:
        ax2 = plots.beeswarm(single, max_display=max_display)
        section["more"] = [
            {
                "title": "Every explained row",
                "note": (
                    "One dot per row and feature: position is the contribution, colour the "
                    "feature's value (blue low, red high)."
                ),
                "src": figure_data_uri(ax2.figure),
            }
        ]
    if n > 2:
        from ..viz.plots_rows import heatmap

        ax3 = heatmap(single, max_display=max_display)
        ax3.figure.set_size_inches(8.0, 0.35 * min(max_display, len(single.feature_names)) + 2)
        section.setdefault("more", []).append(
            {
                "title": "Rows side by side",
                "note": (
                    "One column per explained row (rows explained alike are grouped), one "
                    "line per feature, red for a positive contribution and blue for a "
                    "negative one; the line above is the model output."
                ),
                "src": figure_data_uri(ax3.figure),
            }
        )
    return section


def local_section(
    exp: Explanation,
    rows: list[int],
    *,
    reasons: pd.DataFrame | None = None,
    headings: list[str] | None = None,
    summaries: list[str] | None = None,
    title: str = "Local explanations",
    lead: str | None = None,
    max_display: int = 10,
) -> dict[str, Any]:
    """A waterfall per chosen row, with its reason codes when given."""
    from ..viz import plots

    single = exp if not exp.multi_output else exp[:, :, 0]
    labels = single.row_labels
    items = []
    for pos, i in enumerate(rows):
        check_int("row", i, minimum=0, maximum=exp.n_rows - 1)
        ax = plots.waterfall(single, i, max_display=max_display)
        row_reasons = []
        if reasons is not None:
            sub = reasons[reasons["row"] == labels[i]]
            row_reasons = [
                {"text": str(r["reason"]), "contribution": f"{r['contribution']:+.3f}"}
                for _, r in sub.iterrows()
            ]
        pred = None if single.predictions is None else single.predictions[i]
        default_summary = f"Base value {single.base_values[i]:.4g}" + (
            f"; prediction {pred:.4g}." if pred is not None else "."
        )
        items.append(
            {
                "heading": headings[pos] if headings else f"Row {labels[i]}",
                "figure": figure_data_uri(ax.figure),
                "summary": summaries[pos] if summaries else default_summary,
                "reasons": row_reasons,
            }
        )
    return {"kind": "local", "id": "local", "title": title, "lead": lead, "rows": items}


def truth_section(exp: Explanation, truth: np.ndarray | Explanation) -> dict[str, Any]:
    """Compare attributions with known ground-truth attributions (same rows and features)."""
    import matplotlib.pyplot as plt

    tv = truth.values if isinstance(truth, Explanation) else np.asarray(truth, dtype=float)
    single = exp if not exp.multi_output else exp[:, :, 0]
    ev = single.values
    if tv.shape != ev.shape:
        raise InvalidParameterError(
            f"ground-truth attributions have shape {tv.shape} but the explanation has "
            f"{ev.shape}; they must cover the same rows and features."
        )
    names = single.feature_names
    rows = []
    for j, name in enumerate(names):
        a, b = ev[:, j], tv[:, j]
        corr = np.corrcoef(a, b)[0, 1] if a.std() > 0 and b.std() > 0 else np.nan
        rows.append(
            [
                name,
                _fmt(np.abs(b).mean()),
                _fmt(np.abs(a).mean()),
                _fmt(corr, 3),
                _fmt(np.abs(a - b).mean()),
            ]
        )
    imp_true = np.abs(tv).mean(axis=0)
    imp_model = np.abs(ev).mean(axis=0)
    from scipy.stats import spearmanr

    rho = spearmanr(imp_true, imp_model).statistic if len(names) > 1 else np.nan
    top_true = [names[j] for j in np.argsort(-imp_true)[:3]]
    top_model = [names[j] for j in np.argsort(-imp_model)[:3]]
    overall = np.corrcoef(ev.ravel(), tv.ravel())[0, 1]
    notes = [
        f"Across all rows and features the model's attributions correlate {overall:.3f} with "
        "the ground truth.",
        f"Rank correlation of global importance: {rho:.3f}. Top 3 by ground truth: "
        f"{', '.join(top_true)}; by the model's explanation: {', '.join(top_model)}.",
    ]
    fig, ax = plt.subplots(figsize=(5.5, 4.2))
    ax.scatter(tv.ravel(), ev.ravel(), s=6, alpha=0.5, color="#008bfb")
    lim = [min(tv.min(), ev.min()), max(tv.max(), ev.max())]
    ax.plot(lim, lim, color="#888", lw=1, ls="--")
    ax.set_xlabel("ground-truth attribution")
    ax.set_ylabel("model attribution")
    return {
        "kind": "truth",
        "id": "truth",
        "title": "Ground truth comparison",
        "lead": (
            "The data were generated from a known logit, so the true contribution of every "
            "feature is known exactly. A faithful model and explanation recover it."
        ),
        "header": [
            "feature",
            "true mean |value|",
            "explained mean |value|",
            "correlation",
            "mean abs error",
        ],
        "rows": rows,
        "notes": notes,
        "figure": figure_data_uri(fig),
        "alt": "scatter of explained versus true attributions",
    }


def report(
    exp: Explanation,
    *,
    model: Any = None,
    X: Any = None,
    y: Any = None,
    X_train: Any = None,
    rows: list[int] | None = None,
    reasons: pd.DataFrame | None = None,
    truth: Any = None,
    recourse: dict[str, Any] | Any = None,
    recourse_rows: list[int] | None = None,
    quality: bool = True,
    background: Any = None,
    metrics: list[str] | None = None,
    compare: Explanation | None = None,
    explain_fn: Any = None,
    quality_rows: int | None = 20,
    top_features: int = 3,
    title: str = "whybox report",
    subtitle: str | None = None,
    max_display: int = 12,
    random_state: int = 0,
) -> Report:
    """Build the standard report of an Explanation.

    Sections that do not apply are omitted: without ``model`` and ``X`` there are no effect
    curves and no faithfulness metrics; without ``recourse`` no counterfactuals; the
    limitations section appears only when a check finds something.

    Parameters
    ----------
    exp : Explanation
        A tabular explanation (other layouts get the summary only).
    model : object, optional
        The explained model: its type is shown; with ``X`` its effect curves (PDP/ICE, ALE)
        and faithfulness metrics; with ``X`` and ``y`` its accuracy.
    X, y : optional
        Data the model is described on (held-out rows and labels): data summary, model
        scores, effect curves and the correlation check.
    X_train : optional
        Training rows: the range check and the counterfactual search space (default ``X``).
    rows : list of int, optional
        Rows of ``exp`` to explain locally (default: the first three; ``[]`` for none).
    reasons : DataFrame, optional
        Reason codes from :func:`whybox.reason_codes`, shown next to each waterfall.
    truth : array or Explanation, optional
        Ground-truth attributions of the same shape as ``exp.values``.
    recourse : dict or Counterfactuals, optional
        Keyword arguments of :class:`whybox.Counterfactuals` (``immutable``, ``ranges``,
        ``monotone``, ``time_budget``...), or one already built: a recourse table for each of
        ``recourse_rows`` (default ``rows``).
    quality : bool, default True
        Measure the explanation (faithfulness with ``model``; agreement with ``compare``;
        stability with ``explain_fn``).
    background, metrics
        Passed to :func:`whybox.evaluate` (what "absent" means, which metrics).
    compare : Explanation, optional
        The same rows explained by another method, for the agreement table.
    explain_fn : callable, optional
        ``explain_fn(X, random_state=seed)`` of a sampled method (the one behind ``compare``
        when it has standard errors, else ``exp``'s), for the stability table.
    quality_rows : int or None, default 20
        Rows scored by the quality metrics (the first ones; None for all).
    top_features : int, default 3
        Features that get effect plots.
    random_state : int, default 0
        Seeds the row samples of the effect curves.

    Returns
    -------
    Report
        ``report(...).save("report.html")`` writes the page.
    """
    from .limitations import limitations_section
    from .quality import quality_section
    from .sections import data_section, effects_section, recourse_section

    check_int("max_display", max_display, minimum=1)
    check_int("top_features", top_features, minimum=0)
    metrics_ = model_metrics(model, X, y) if model is not None and y is not None else {}
    rep = Report(
        title=title,
        subtitle=subtitle
        or f"{exp.method} explanation of {exp.params.get('output', 'the model output')}",
    )
    rep.add(summary_section(exp, model, metrics_))
    data = data_section(X, y)
    if data is not None:
        rep.add(data)
    if exp.is_tabular:
        rep.add(importance_section(exp, max_display, random_state))
        single = exp if not exp.multi_output else exp[:, :, 0]
        top = [str(f) for f in single.top(min(top_features, len(single.feature_names))).index]
        effects = effects_section(exp, top, model=model, X=X, random_state=random_state)
        if effects is not None:
            rep.add(effects)
        chosen = rows if rows is not None else list(range(min(3, exp.n_rows)))
        if chosen:
            rep.add(local_section(exp, chosen, reasons=reasons, max_display=max_display))
        if recourse is not None:
            rec_rows = recourse_rows if recourse_rows is not None else chosen
            rec = recourse_section(
                exp,
                rec_rows,
                model=model,
                X_train=X_train if X_train is not None else X,
                options=recourse,
            )
            if rec is not None:
                rep.add(rec)
        if truth is not None:
            rep.add(truth_section(exp, truth))
    if quality:
        q = quality_section(
            exp,
            model=model,
            X=exp.data,
            background=background if background is not None else X_train,
            metrics=metrics,
            compare=compare,
            explain_fn=explain_fn,
            max_rows=quality_rows,
            random_state=random_state,
        )
        if q is not None:
            rep.add(q)
    lim = limitations_section(
        exp, X if X is not None else X_train, X_train, others=[compare] if compare else []
    )
    if lim is not None:
        rep.add(lim)
    return rep


def model_metrics(model: Any, X: Any, y: Any) -> dict[str, Any]:
    """Held-out accuracy numbers of a classifier or regressor."""
    from sklearn import metrics as skm

    y = np.asarray(y)
    if hasattr(model, "predict_proba"):
        proba = model.predict_proba(X)
        pred = np.asarray(model.classes_)[np.argmax(proba, axis=1)]
        out: dict[str, Any] = {"accuracy": skm.accuracy_score(y, pred)}
        if proba.shape[1] == 2:
            out["ROC AUC"] = skm.roc_auc_score(y, proba[:, 1])
        else:
            out["log loss"] = skm.log_loss(y, proba, labels=model.classes_)
        return out
    pred = np.asarray(model.predict(X), dtype=float)
    return {"R²": skm.r2_score(y, pred), "MAE": skm.mean_absolute_error(y, pred)}
