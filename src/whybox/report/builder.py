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
from .sections import one_output_per_row, summary_section

__all__ = [
    "RASTER_ABOVE",
    "Report",
    "classes_section",
    "figure_data_uri",
    "figures_section",
    "importance_section",
    "local_section",
    "report",
    "summary_section",
    "truth_section",
]

#: above this many explained rows the importance interval is the normal approximation
#: (the bootstrap's 1000 resamples would cost 1000 passes over the rows)
BOOTSTRAP_MAX_ROWS = 20_000


def _sample_note(n: int, limit: int) -> str:
    return (
        f" It shows a random sample of {limit:,} of the {n:,} explained rows (seeded), so "
        "the page is built in time proportional to the rows."
        if n > limit
        else ""
    )


def importance_section(
    exp: Explanation, max_display: int = 12, random_state: int = 0
) -> dict[str, Any]:
    """Global importance (mean |value|) with 95% intervals over rows, beeswarm and heatmap.

    The interval is the bootstrap percentile interval over rows of
    :func:`whybox.global_importance` (1000 resamples), or above ``BOOTSTRAP_MAX_ROWS`` rows
    the normal approximation; with a single row there is none. The beeswarm and the heatmap
    draw a seeded sample of rows beyond their sizes (``whybox.viz.plots.MAX_ROWS``,
    ``whybox.viz.plots_rows.HEATMAP_MAX_ROWS``) and the page says so.
    """
    import matplotlib.pyplot as plt

    from ..inspection.importance import global_importance
    from ..viz import plots
    from ..viz.plots import MAX_ROWS
    from ..viz.plots_rows import HEATMAP_MAX_ROWS, heatmap

    single = exp if not exp.multi_output else exp[:, :, 0]
    absval = np.abs(single.values)
    mean = absval.mean(axis=0)
    n = absval.shape[0]
    fig = None
    if n > 1:
        boot = n <= BOOTSTRAP_MAX_ROWS
        imp = global_importance(
            single,
            confidence=0.95,
            n_bootstrap=1000 if boot else 0,
            random_state=random_state,
        )
        lower, upper = np.asarray(imp.lower, dtype=float), np.asarray(imp.upper, dtype=float)
        how = (
            "a 95% bootstrap percentile interval over rows (1000 resamples)"
            if boot
            else "a 95% normal-approximation interval (mean ± 1.96 standard errors over rows; "
            f"used above {BOOTSTRAP_MAX_ROWS:,} rows, where it matches the bootstrap)"
        )
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
        ax2 = plots.beeswarm(single, max_display=max_display, random_state=random_state)
        section["more"] = [
            {
                "title": "Every explained row",
                "note": (
                    "One dot per row and feature: position is the contribution, colour the "
                    "feature's value (blue low, red high)." + _sample_note(n, MAX_ROWS)
                ),
                "src": figure_data_uri(ax2.figure),
            }
        ]
    if n > 2:
        ax3 = heatmap(single, max_display=max_display, random_state=random_state)
        ax3.figure.set_size_inches(8.0, 0.35 * min(max_display, len(single.feature_names)) + 2)
        section.setdefault("more", []).append(
            {
                "title": "Rows side by side",
                "note": (
                    "One column per explained row (rows explained alike are grouped), one "
                    "line per feature, red for a positive contribution and blue for a "
                    "negative one; the line above is the model output."
                    + _sample_note(n, HEATMAP_MAX_ROWS)
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
    targets = single.row_targets
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
                "heading": headings[pos]
                if headings
                else f"Row {labels[i]}" + (f" · explained output {targets[i]}" if targets else ""),
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
    allow_nan: bool = False,
    max_images: int = 8,
) -> Report:
    """Build the report of an Explanation: tabular rows, several classes, or images.

    Sections that do not apply are omitted: without ``model`` and ``X`` there are no effect
    curves and no faithfulness metrics; without ``recourse`` no counterfactuals; the
    limitations section appears only when a check finds something.

    What is reported follows the Explanation:

    * one output (a class, the prediction): every section is about that output, and the
      model is evaluated on it (``params["target"]``, ``params["link"]``);
    * one target per row (``meta["targets"]``): each row is read for its own output;
    * several classes (``target="all"``): each row is shown for the class the model
      predicts for it (the largest of ``exp.predictions``), and a "Classes" section gives the
      global importance of every class side by side;
    * model internals (a patching grid, a direct logit attribution, a
      :class:`~whybox.internals.lens.LogitLens`, or a list of them): heatmaps and logit-lens
      tables (:func:`whybox.report.internals.internals_report`);
    * images: the vision report, each image with its attribution map, with ``model`` its
      faithfulness (deletion, insertion, faithfulness correlation, infidelity over pixels)
      and, for a torch CNN, the other attribution methods on the same images
      (:func:`whybox.report.vision.explanation_report`).

    Every plot and section costs at most O(n log n) in the rows: the beeswarm, dependence
    plots and heatmap draw a seeded sample of rows beyond a documented size, and say so.

    Parameters
    ----------
    exp : Explanation
        The explanation reported (or, for model internals, a LogitLens, or a list of
        patching / direct logit attribution Explanations and LogitLenses).
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
        Seeds the row samples of the effect curves and of the plots.
    allow_nan : bool, default False
        Accept missing values (NaN) in the rows for models that handle them (XGBoost,
        LightGBM, HistGradientBoosting), for the quality metrics.
    max_images : int, default 8
        Images shown by the report of an image explanation (the first ones).

    Returns
    -------
    Report
        ``report(...).save("report.html")`` writes the page.
    """
    from .internals import internals_report, is_internals
    from .limitations import limitations_section
    from .quality import quality_section
    from .sections import data_section, effects_section, recourse_section
    from .vision import explanation_report

    check_int("max_display", max_display, minimum=1)
    check_int("top_features", top_features, minimum=0)
    items = exp if isinstance(exp, (list, tuple)) else [exp]
    if items and all(is_internals(o) for o in items):
        own = title if title != "whybox report" else "whybox: model internals"
        return internals_report(*items, title=own, subtitle=subtitle)
    from .sae import is_sae, sae_report

    if items and all(is_sae(o) for o in items):
        own = title if title != "whybox report" else None
        return sae_report(*items, title=own, subtitle=subtitle)
    from .text import is_text, text_report

    if is_text(exp):
        own = title if title != "whybox report" else None
        return text_report(exp, rows=rows, title=own, subtitle=subtitle)
    if not isinstance(exp, Explanation):
        raise InvalidParameterError(
            f"report() takes an Explanation first, got {type(exp).__name__}. Explain the rows "
            "first, e.g. exp = wb.explain(model, X, background=X_train.sample(100))."
        )
    if not exp.is_ragged and len(exp.feature_shape) >= 2:
        return explanation_report(
            exp,
            model=model,
            X=X,
            max_images=max_images,
            title=title if title != "whybox report" else None,
            subtitle=subtitle,
            random_state=random_state,
        )
    classes = None
    if exp.multi_output and exp.is_tabular:
        classes = classes_section(exp, max_display)
        exp = one_output_per_row(exp)
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
    if classes is not None:
        rep.add(classes)
    if exp.is_tabular:
        rep.add(importance_section(exp, max_display, random_state))
        single = exp if not exp.multi_output else exp[:, :, 0]
        n_top = min(top_features, len(single.feature_names))
        top = [str(f) for f in single.top(n_top).index] if n_top else []
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
            allow_nan=allow_nan,
        )
        if q is not None:
            rep.add(q)
    lim = limitations_section(
        exp, X if X is not None else X_train, X_train, others=[compare] if compare else []
    )
    if lim is not None:
        rep.add(lim)
    return rep


def classes_section(exp: Explanation, max_display: int = 12) -> dict[str, Any]:
    """Global importance of every explained output (class) side by side, and how often
    each is the predicted one."""
    imp = exp.mean_abs()
    names = list(exp.output_names or [])
    order = np.argsort(-imp.to_numpy().mean(axis=1), kind="stable")[:max_display]
    header = ["feature", *[f"{c}: mean |value|" for c in names]]
    rows = [[str(imp.index[j]), *[_fmt(v) for v in imp.iloc[j].to_numpy()]] for j in order]
    notes = []
    if exp.predictions is not None:
        counts = np.bincount(np.argmax(exp.predictions, axis=1), minlength=len(names))
        notes.append(
            "Predicted (largest output) in the explained rows: "
            + ", ".join(f"{c} {k:,}" for c, k in zip(names, counts, strict=True))
            + "."
        )
    return {
        "kind": "table",
        "id": "classes",
        "title": "Classes",
        "lead": (
            f"This explanation covers {len(names)} outputs ({', '.join(names)}). The sections "
            "below read each row for the class the model predicts for it; this table gives "
            "each class's global importance (mean absolute contribution over every row)."
        ),
        "header": header,
        "rows": rows,
        "notes": notes,
    }


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
