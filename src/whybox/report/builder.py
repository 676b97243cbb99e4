"""Self-contained HTML reports built from Explanations.

A report is a list of sections rendered by one Jinja2 template with autoescaping on: every
user-provided string (feature names, category values, row labels, phrases) is escaped. Figures
are matplotlib SVGs embedded as ``data:`` URIs in ``<img>`` tags, so the page loads nothing from
the network and nothing inside a figure can run as script.
"""

from __future__ import annotations

import base64
import datetime as _dt
import io
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from .._validation import check_int
from ..errors import InvalidParameterError
from ..explanation import Explanation, _atomic_write

__all__ = ["Report", "figure_data_uri", "figures_section", "report"]


#: artists with more marks than this are drawn as an embedded bitmap inside the SVG
RASTER_ABOVE = 60


def _rasterize_dense(fig: Any) -> None:
    """Rasterize the dense layers of a figure (many dots, many lines), keep text and axes
    vector: the SVG stays sharp where it matters and small where it would be huge."""
    for ax in fig.axes:
        marks = [max(len(c.get_offsets()), len(c.get_paths())) for c in ax.collections]
        if sum(marks) > 3 * RASTER_ABOVE:  # e.g. a beeswarm: one collection per feature
            for coll in ax.collections:
                coll.set_rasterized(True)
        else:
            for coll, m in zip(ax.collections, marks, strict=True):
                if m > RASTER_ABOVE:
                    coll.set_rasterized(True)
        if len(ax.lines) > RASTER_ABOVE // 3:
            widest = max(line.get_linewidth() for line in ax.lines)
            for line in ax.lines:
                if line.get_linewidth() < widest:
                    line.set_rasterized(True)


def figure_data_uri(fig: Any) -> str:
    """Render a matplotlib figure to an SVG ``data:`` URI (text drawn as paths) and close it.

    Dense layers (over ``RASTER_ABOVE`` dots or a few dozen lines) are embedded as bitmaps
    at 110 dpi; text, axes and sparse marks stay vector.
    """
    import matplotlib
    import matplotlib.pyplot as plt

    _rasterize_dense(fig)
    buf = io.BytesIO()
    with matplotlib.rc_context({"svg.fonttype": "path", "svg.hashsalt": "whybox"}):
        fig.savefig(buf, format="svg", bbox_inches="tight", dpi=150, metadata={"Date": None})
    plt.close(fig)
    return "data:image/svg+xml;base64," + base64.b64encode(buf.getvalue()).decode("ascii")


def _fmt(v: Any, digits: int = 4) -> str:
    if v is None:
        return ""
    if isinstance(v, (float, np.floating)):
        if np.isnan(v):
            return "missing"
        return f"{float(v):.{digits}g}"
    if isinstance(v, (int, np.integer)):
        return f"{int(v):,}"
    return str(v)


@dataclass
class Report:
    """An HTML report: a title and a list of sections; ``save(path)`` writes one file.

    Sections are plain dicts read by the template (``kind`` one of ``summary``,
    ``importance``, ``local``, ``truth``, ``table``, ``figures``, ...); builders in this
    module create them. The generic ``figures`` kind is
    ``{"kind": "figures", "title": str, "text": str, "figures": [{"src": data_uri,
    "caption": str}, ...], "table": {"columns": [...], "rows": [[...], ...]} or None}``:
    a responsive grid of captioned figures with an optional table (see
    :func:`figures_section`).
    """

    title: str = "whybox report"
    subtitle: str = ""
    sections: list[dict[str, Any]] = field(default_factory=list)

    def add(self, section: dict[str, Any]) -> Report:
        """Append a section dict (see the class docstring); returns the report."""
        if not isinstance(section, dict) or "kind" not in section or "title" not in section:
            raise InvalidParameterError(
                "a report section must be a dict with at least 'kind' and 'title' keys, got "
                f"{type(section).__name__}. Build one with figures_section(...) or the other "
                "*_section helpers of whybox.report.builder."
            )
        if section["kind"] == "figures":
            _check_figures(section)
        section.setdefault("id", f"s{len(self.sections) + 1}")
        self.sections.append(section)
        return self

    def insert_after(self, section_id: str, section: dict[str, Any]) -> Report:
        """Insert a section after the one with id ``section_id`` (at the end if none has it)."""
        self.add(section)
        self.sections.pop()
        ids = [s.get("id") for s in self.sections]
        pos = ids.index(section_id) + 1 if section_id in ids else len(self.sections)
        self.sections.insert(pos, section)
        return self

    def to_html(self) -> str:
        """The report as one self-contained HTML document."""
        import jinja2

        from .. import __version__

        env = jinja2.Environment(
            loader=jinja2.PackageLoader("whybox.report", "templates"),
            autoescape=True,
        )
        template = env.get_template("report.html")
        return template.render(
            title=self.title,
            subtitle=self.subtitle,
            sections=self.sections,
            version=__version__,
            generated=_dt.date.today().isoformat(),
        )

    def save(self, path: str | os.PathLike[str]) -> Path:
        """Write the report to ``path``: a ``.html`` file, or ``path/index.html`` otherwise.

        The file is written under a temporary name and renamed, so a failure never leaves a
        half-written report behind.
        """
        path = Path(path)
        if path.is_dir() or path.suffix.lower() not in (".html", ".htm"):
            path.mkdir(parents=True, exist_ok=True)
            path = path / "index.html"
        _atomic_write(path, self.to_html().encode("utf-8"))
        return path

    def _repr_html_(self) -> str:
        return self.to_html()


# ---------------------------------------------------------------------- sections
def _check_figures(section: dict[str, Any]) -> None:
    """Validate a ``figures`` section: inline image data URIs only, a well-formed table."""
    figures = section.get("figures")
    if not isinstance(figures, (list, tuple)):
        raise InvalidParameterError(
            f"a 'figures' section needs figures=[{{'src': data_uri, 'caption': str}}, ...], "
            f"got {type(figures).__name__}."
        )
    for k, fig in enumerate(figures):
        src = fig.get("src") if isinstance(fig, dict) else None
        if not isinstance(src, str) or not src.startswith("data:image/"):
            shown = src[:40] if isinstance(src, str) else type(src).__name__
            raise InvalidParameterError(
                f"figure {k} of section {section.get('title')!r} has src {shown!r}; the "
                "report is self-contained, so each src must be an inline 'data:image/...' URI "
                "(use whybox.report.builder.figure_data_uri(fig) for a matplotlib figure)."
            )
    table = section.get("table")
    if table is not None:
        if not isinstance(table, dict) or "columns" not in table or "rows" not in table:
            raise InvalidParameterError(
                "the table of a 'figures' section must be None or "
                "{'columns': [...], 'rows': [[...], ...]}."
            )
        width = len(table["columns"])
        for r, row in enumerate(table["rows"]):
            if len(row) != width:
                raise InvalidParameterError(
                    f"row {r} of the table of section {section.get('title')!r} has "
                    f"{len(row)} cells but there are {width} columns."
                )


def figures_section(
    title: str,
    figures: list[dict[str, str]],
    *,
    text: str = "",
    table: dict[str, Any] | None = None,
    id: str | None = None,
    columns: int | None = None,
) -> dict[str, Any]:
    """A generic section: a responsive grid of captioned figures and an optional table.

    Parameters
    ----------
    title : str
        Section heading.
    figures : list of dict
        ``[{"src": data_uri, "caption": str}, ...]``; each ``src`` an inline
        ``data:image/...`` URI (e.g. from :func:`figure_data_uri`).
    text : str, optional
        A paragraph shown above the figures.
    table : dict, optional
        ``{"columns": [...], "rows": [[...], ...]}`` shown below the figures.
    id : str, optional
        Anchor id of the section (default: assigned by :meth:`Report.add`).
    columns : int, optional
        Figures per grid row, 1 to 4 (default: as many as fit, at least 220 px wide).

    Returns
    -------
    dict
        The section, for :meth:`Report.add`. Every string in it is escaped when rendered.
    """
    section: dict[str, Any] = {
        "kind": "figures",
        "title": str(title),
        "text": str(text),
        "figures": [
            {"src": f.get("src"), "caption": str(f.get("caption", ""))}
            if isinstance(f, dict)
            else f
            for f in figures
        ],
        "table": None
        if table is None
        else {
            "columns": [str(c) for c in table.get("columns", [])],
            "rows": [[_fmt(c) for c in row] for row in table.get("rows", [])],
        }
        if isinstance(table, dict)
        else table,
    }
    if id is not None:
        section["id"] = str(id)
    if columns is not None:
        section["columns"] = check_int("columns", columns, minimum=1, maximum=4)
    _check_figures(section)
    return section


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
