"""Report sections for RAG source attribution: the sources shaded by value, the cost table.

- :func:`rag_section`: the query, the answer and every source (document or sentence) in its
  original order, its text in a cell shaded by its value (red raises the answer's value,
  blue lowers it, white 0), with the value, its standard error and its rank; and a bar
  figure of the values (:func:`whybox.text.rag.as_tabular`);
- :func:`cost_quality_section`: a :meth:`whybox.text.rag.RagAttribution.cost_quality` table;
- :func:`rag_report`: a page of these.

Documents, the query and the answer are user text or model output: they reach the page only
as table text through the template's autoescaping (a document ``<script>`` stays text), and
figures are SVG with text drawn as paths inside a base64 ``data:`` URI; cell colours are
built from numbers only.

References
----------
.. [1] Cohen-Wang, B. et al. (2024). ContextCite: attributing model generation to context.
       NeurIPS. (Sources shown with their scores.)
"""

from __future__ import annotations

from typing import Any

import numpy as np

from ..errors import InvalidParameterError
from ..explanation import Explanation
from ._page import Report, _fmt, figure_data_uri

__all__ = ["cost_quality_section", "is_rag", "rag_report", "rag_section"]


def is_rag(obj: Any) -> bool:
    """Whether ``obj`` is an explanation from :meth:`whybox.text.rag.RagAttribution.explain`."""
    return isinstance(obj, Explanation) and obj.meta.get("kind") == "rag"


def _shade(value: float, vmax: float) -> str:
    from ..viz.text import colour

    return "rgb({},{},{})".format(*colour(value, vmax))


def rag_section(exp: Explanation, *, figure: bool = True, id: str = "sources") -> dict[str, Any]:
    """The sources of a RAG answer with their values (a ``grid`` section).

    Parameters
    ----------
    exp : Explanation
        From :meth:`~whybox.text.rag.RagAttribution.explain`.
    figure : bool
        Add a bar figure of the values.
    id : str

    Returns
    -------
    dict
        One table line per source in context order: the source's text (shaded on a scale
        symmetric about 0, ``±max|value|``), its value, standard error and rank.
    """
    if not is_rag(exp):
        raise InvalidParameterError(
            "rag_section needs an explanation from RagAttribution.explain (meta['kind'] == 'rag')."
        )
    vals = np.asarray(exp.values[0], dtype=float)
    std = None if exp.std is None else np.asarray(exp.std[0], dtype=float)
    texts = list(exp.data[0])
    doc_of = exp.meta.get("source_document", [list(range(len(vals)))])[0]
    vmax = float(np.max(np.abs(vals))) if len(vals) and np.any(vals) else 1.0
    rank = np.empty(len(vals), dtype=int)
    rank[np.argsort(-vals, kind="stable")] = np.arange(1, len(vals) + 1)
    sentence = exp.params.get("granularity") == "sentence"
    lines = []
    for j, (t, v) in enumerate(zip(texts, vals, strict=True)):
        label = f"{doc_of[j]}.{j}" if sentence else str(j)
        cells = [
            {"lines": [str(t)], "shade": _shade(float(v), vmax), "title": f"{v:.7g}", "num": False},
            {"lines": [_fmt(float(v))], "shade": "transparent", "title": "", "num": True},
        ]
        if std is not None:
            cells.append(
                {"lines": [_fmt(float(std[j]))], "shade": "transparent", "title": "", "num": True}
            )
        cells.append({"lines": [str(rank[j])], "shade": "transparent", "title": "", "num": True})
        lines.append({"label": label, "cells": cells})
    columns = [{"lines": ["source"], "title": ""}, {"lines": ["value"], "title": ""}]
    if std is not None:
        columns.append({"lines": ["std. error"], "title": "standard error of the estimate"})
    columns.append({"lines": ["rank"], "title": "1 = largest value"})
    figures = []
    if figure and len(vals):
        from ..text.rag import as_tabular

        ax = as_tabular(exp).plot.bar(max_display=min(len(vals), 20))
        figures.append({"src": figure_data_uri(ax.figure), "caption": "value of each source"})
    notes = [
        f"Query: {exp.meta['query'][0]}",
        f"Answer{' (generated)' if exp.meta.get('answer_generated', [False])[0] else ''}: "
        f"{exp.meta['answer'][0]}",
    ]
    return {
        "kind": "grid",
        "id": id,
        "title": "Sources",
        "lead": (
            f"Each {'sentence' if sentence else 'document'} shaded by its {exp.method} value "
            f"for the {exp.params.get('output', 'answer')}: red raises it, blue lowers it, "
            f"white is 0 (scale ±{_fmt(vmax)})."
        ),
        "figures": figures,
        "grids": [{"title": "", "corner": "source", "columns": columns, "rows": lines}],
        "notes": notes,
    }


def cost_quality_section(table: Any, *, id: str = "cost-quality") -> dict[str, Any]:
    """A :meth:`~whybox.text.rag.RagAttribution.cost_quality` table (a ``table`` section)."""
    cols = [
        "method", "budget", "llm_calls", "wall_time_s", "spearman", "spearman_sd",
        "top_k_overlap", "note",
    ]  # fmt: skip
    missing = [c for c in cols if c not in getattr(table, "columns", [])]
    if missing:
        raise InvalidParameterError(
            f"the table lacks the columns {missing}; pass the DataFrame returned by "
            "RagAttribution.cost_quality."
        )
    rows = [[_fmt(r[c]) if c != "method" else str(r[c]) for c in cols] for _, r in table.iterrows()]
    return {
        "kind": "table",
        "id": id,
        "title": "Cost and quality of the methods",
        "header": [
            "method",
            "budget",
            "LLM calls",
            "wall time (s)",
            "Spearman vs exact",
            "sd",
            "top-k overlap",
            "note",
        ],
        "rows": rows,
        "notes": [
            "Each method ran on a fresh game (no shared cache); agreement is with exact "
            "Shapley values of the same game (arXiv:2507.04480)."
        ],
    }


def rag_report(
    exp: Explanation,
    *,
    cost_quality: Any = None,
    title: str | None = None,
    subtitle: str | None = None,
) -> Report:
    """A report page of a RAG explanation (and, optionally, its cost-quality table).

    Returns
    -------
    Report
    """
    if not is_rag(exp):
        raise InvalidParameterError(
            "rag_report needs an explanation from RagAttribution.explain (meta['kind'] == 'rag')."
        )
    rep = Report(
        title=title or "whybox: RAG source attribution",
        subtitle=subtitle or f"{exp.method} explanation of the {exp.params.get('output', '')}",
    )
    p = exp.params
    summary = [
        ["method", str(p.get("method_selection", exp.method))],
        ["explained output", str(p.get("output", ""))],
        ["sources", _fmt(len(exp.values[0]))],
        ["LLM calls", _fmt(p.get("calls"))],
        ["wall time (s)", _fmt(p.get("time_s"))],
    ]
    if p.get("lds") is not None:
        summary.append(["linear datamodeling score (held-out masks)", _fmt(float(p["lds"]))])
    rep.add(
        {
            "kind": "table",
            "id": "summary",
            "title": "Summary",
            "header": ["", ""],
            "rows": summary,
            "notes": [],
        }
    )
    rep.add(rag_section(exp))
    if cost_quality is not None:
        rep.add(cost_quality_section(cost_quality))
    return rep
