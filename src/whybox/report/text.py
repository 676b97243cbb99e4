"""Report sections for text explanations: coloured tokens and the generation heatmap.

- :func:`text_section`: explained texts, each as its tokens (or words) in table cells
  shaded by value on a scale centred at 0 (red positive, blue negative, white 0) and as an
  image (:meth:`whybox.viz.text.TextPlot.to_image`);
- :func:`generation_section`: an :func:`whybox.explain_generation` result as a generated x
  source heatmap and a shaded table of the same matrix;
- :func:`text_report`: a page of these (``wb.report(exp)`` calls it for text explanations,
  :func:`is_text`).

Every token is user text or model output: it reaches the page only as table text through
the template's autoescaping (a token ``<script>`` stays text) or inside an SVG figure whose
text is drawn as paths and embedded as a base64 ``data:`` URI; cell colours are built from
numbers only.

References
----------
.. [1] Arras et al. (2017), "What is relevant in a text document? An interpretable machine
       learning approach", PLOS ONE.
.. [2] Sarti et al. (2023), "Inseq: An Interpretability Toolkit for Sequence Generation
       Models", ACL demo.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np

from .._validation import check_int
from ..errors import InvalidParameterError
from ..explanation import Explanation
from ._page import Report, _fmt, figure_data_uri

__all__ = ["generation_section", "is_text", "text_report", "text_section"]

#: tokens per table line of a text
TOKENS_PER_LINE = 16
#: generation matrices with more cells than this get the figure only
MAX_TABLE_CELLS = 600


def is_text(obj: Any) -> bool:
    """Whether ``obj`` is a text explanation: ragged rows of tokens (``meta["tokens"]``) or
    a generation explanation (``meta["kind"] == "generation"``)."""
    return (
        isinstance(obj, Explanation)
        and obj.is_ragged
        and (obj.meta.get("kind") == "generation" or "tokens" in obj.meta)
    )


def _shade(value: float, vmax: float) -> str:
    from ..viz.text import colour

    return "rgb({},{},{})".format(*colour(value, vmax))


def text_section(
    exp: Explanation,
    rows: Sequence[int] | None = None,
    *,
    max_rows: int = 8,
    images: bool = True,
    id: str = "texts",
) -> dict[str, Any]:
    """The explained texts with their tokens coloured by value (a ``grid`` section).

    Parameters
    ----------
    exp : Explanation
        A text or generation explanation.
    rows : sequence of int, optional
        Rows shown (default the first ``max_rows``).
    max_rows : int, default 8
    images : bool, default True
        Add each text's image (:meth:`~whybox.viz.text.TextPlot.to_image`) as a figure.
    id : str

    Returns
    -------
    dict
        The section for :meth:`Report.add`. Each text is one table: lines of up to
        ``TOKENS_PER_LINE`` tokens, each cell shaded on that text's own scale
        ([-max|value|, +max|value|], white at 0); the cell title gives the exact value.
    """
    from ..viz.text import text, visible

    check_int("max_rows", max_rows, minimum=1)
    chosen = list(rows) if rows is not None else list(range(min(max_rows, exp.n_rows)))
    for r in chosen:
        if not isinstance(r, (int, np.integer)) or not 0 <= int(r) < exp.n_rows:
            raise InvalidParameterError(f"row {r!r} is not a row of this {exp.n_rows}-row text.")
    grids, figures = [], []
    for r in chosen:
        plot = text(exp, int(r))
        label = f"text {r}" if plot.target is None else f"token {r}: {visible(plot.target)}"
        lines = []
        for start in range(0, len(plot.tokens), TOKENS_PER_LINE):
            toks = plot.tokens[start : start + TOKENS_PER_LINE]
            vals = plot.values[start : start + TOKENS_PER_LINE]
            lines.append(
                {
                    "label": f"{start}–{start + len(toks) - 1}",
                    "cells": [
                        {
                            "lines": [visible(t)],
                            "shade": _shade(float(v), plot.vmax),
                            "title": f"{visible(t)}: {float(v):.7g}",
                            "num": False,
                        }
                        for t, v in zip(toks, vals, strict=True)
                    ],
                }
            )
        grids.append(
            {
                "title": f"{label} (scale ±{_fmt(plot.vmax)})",
                "corner": "tokens",
                "columns": [],
                "rows": lines,
            }
        )
        if images:
            figures.append({"src": figure_data_uri(plot.to_image()), "caption": label})
    notes = []
    if len(chosen) < exp.n_rows:
        notes.append(f"Showing {len(chosen)} of the {exp.n_rows} explained rows.")
    return {
        "kind": "grid",
        "id": id,
        "title": "Texts",
        "lead": (
            f"Each token coloured by its {exp.method} value for "
            f"{exp.params.get('output', 'the explained output')}: red raises it, blue lowers "
            "it, white is 0 (each text on its own symmetric scale; hover a cell for the value). "
            "Spaces-only tokens are shown as ␣, newlines as ↵."
        ),
        "figures": figures,
        "grids": grids,
        "notes": notes,
    }


def generation_section(exp: Explanation, *, id: str = "generation") -> dict[str, Any]:
    """The generated x source matrix of :func:`whybox.explain_generation` (a ``grid`` section).

    A heatmap figure (:func:`whybox.viz.text.text_heatmap`) and, up to ``MAX_TABLE_CELLS``
    cells, a table: one line per generated token, one column per source token, each cell
    shaded on one scale centred at 0 for the whole matrix (blank where the source comes
    after the generated token).
    """
    from ..viz.text import text_heatmap, visible

    if exp.meta.get("kind") != "generation":
        raise InvalidParameterError(
            f"generation_section needs an explain_generation result, got method {exp.method!r}."
        )
    meta = exp.meta
    src = [visible(t) for t in meta["source_tokens"]]
    targets = [visible(t) for t in meta["targets"]]
    width = max(len(v) for v in exp.values)
    vmax = max(float(np.max(np.abs(v))) if v.size else 0.0 for v in exp.values)
    vmax = vmax if vmax > 0 else 1.0
    fig_src = figure_data_uri(text_heatmap(exp).figure)
    grids = []
    if len(targets) * width <= MAX_TABLE_CELLS:
        grids.append(
            {
                "title": "",
                "corner": "generated \\ source",
                "columns": [{"lines": [t], "title": t} for t in src[:width]],
                "rows": [
                    {
                        "label": targets[t],
                        "cells": [
                            {
                                "lines": [_fmt(float(v), 3)],
                                "shade": _shade(float(v), vmax),
                                "title": f"{targets[t]} ← {src[j]}: {float(v):.7g}",
                                "num": True,
                            }
                            for j, v in enumerate(exp.values[t])
                        ],
                    }
                    for t in range(exp.n_rows)
                ],
            }
        )
    notes = [
        f"Prompt ({meta['prompt_len']} tokens): {meta.get('prompt', '')}",
        "Continuation: " + "".join(meta["generated_tokens"]),
    ]
    if meta.get("contrast_tokens"):
        notes.append(
            "Contrast (foil per token): " + " | ".join(visible(t) for t in meta["contrast_tokens"])
        )
    if exp.predictions is not None:
        notes.append(
            "Score of each generated token: "
            + ", ".join(
                f"{t} {_fmt(float(p), 3)}" for t, p in zip(targets, exp.predictions, strict=True)
            )
        )
    if not grids:
        notes.append(f"The matrix has {len(targets) * width:,} cells; the figure shows them all.")
    return {
        "kind": "grid",
        "id": id,
        "title": "Generated tokens x source tokens",
        "lead": (
            f"Row t: the {exp.method} attribution of {exp.params.get('output', 'log p')} of "
            "generated token t to the prompt and to the tokens generated before it (red "
            "raises it, blue lowers it, white is 0 on one scale for the matrix)."
        ),
        "figures": [{"src": fig_src, "caption": "generated x source attribution"}],
        "grids": grids,
        "notes": notes,
    }


def text_report(
    exp: Explanation,
    *,
    rows: Sequence[int] | None = None,
    max_rows: int = 8,
    title: str | None = None,
    subtitle: str | None = None,
) -> Report:
    """A report page of a text or generation explanation.

    Parameters
    ----------
    exp : Explanation
        A text explanation (:func:`is_text`).
    rows : sequence of int, optional
        Texts (generated tokens) shown with coloured tokens (default the first ``max_rows``).
    max_rows : int, default 8
    title, subtitle : str, optional

    Returns
    -------
    Report
    """
    if not is_text(exp):
        raise InvalidParameterError(
            "text_report needs a text explanation (ragged rows with meta['tokens'], e.g. from "
            "wb.explain(model, texts, tokenizer=tok) or wb.explain_generation)."
        )
    gen = exp.meta.get("kind") == "generation"
    rep = Report(
        title=title or ("whybox: generated text" if gen else "whybox: text"),
        subtitle=subtitle
        or f"{exp.method} explanation of {exp.params.get('output', 'the output')}",
    )
    summary = [
        ["method", exp.method],
        ["explained output", str(exp.params.get("output", ""))],
        ["rows", _fmt(exp.n_rows)],
    ]
    if exp.predictions is not None:
        try:
            gap = np.abs(exp.completeness_gap())
            summary.append(["largest |completeness gap|", _fmt(float(np.max(gap)))])
        except (ValueError, TypeError):
            pass
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
    if gen:
        rep.add(generation_section(exp))
    rep.add(text_section(exp, rows, max_rows=max_rows))
    return rep
