"""The report's explanation-quality section: faithfulness, stability, agreement.

The numbers come from :mod:`whybox.metrics` (deletion / insertion AUC, faithfulness
correlation, infidelity, stability across seeds, agreement between two methods); each is
shown with its one-sentence plain-language reading. The section is omitted when nothing could
be measured (no model and data, and no second explanation).

References
----------
Bhatt, U., Weller, A. and Moura, J. M. F. (2020). Evaluating and aggregating feature-based
model explanations. IJCAI.

Yeh, C.-K., Hsieh, C.-Y., Suggala, A., Inouye, D. I. and Ravikumar, P. (2019). On the
(in)fidelity and sensitivity of explanations. NeurIPS.

Krishna, S., Han, T., Gu, A., et al. (2022). The disagreement problem in explainable machine
learning: a practitioner's perspective. arXiv:2202.01602.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np
import pandas as pd

from ..explanation import Explanation
from ._page import _fmt

__all__ = ["quality_section"]


def _frame_rows(table: pd.DataFrame) -> list[list[str]]:
    """Rows ``[metric, mean ± std, n, better, reading]`` of a metrics table."""
    out = []
    for name, r in table.iterrows():
        mean, std = r.get("mean"), r.get("std")
        value = _fmt(mean) if std is None or not np.isfinite(std) else f"{_fmt(mean)} ± {_fmt(std)}"
        hib = r.get("higher_is_better")
        better = "" if hib is None or pd.isna(hib) else ("higher" if bool(hib) else "lower")
        n = r.get("n")
        out.append(
            [
                str(name),
                value,
                "" if n is None or pd.isna(n) else _fmt(int(n)),
                better,
                str(r.get("reading", "")),
            ]
        )
    return out


HEADER = ["metric", "value (mean ± std over rows)", "rows", "better", "what it means"]


def _numeric_only(X: Any) -> bool:
    if isinstance(X, pd.DataFrame):
        return all(
            pd.api.types.is_numeric_dtype(t) and not isinstance(t, pd.CategoricalDtype)
            for t in X.dtypes
        )
    return np.issubdtype(np.asarray(X).dtype, np.number)


def quality_section(
    exp: Explanation,
    *,
    model: Any = None,
    X: Any = None,
    background: Any = None,
    metrics: list[str] | None = None,
    compare: Explanation | None = None,
    explain_fn: Callable[..., Explanation] | None = None,
    stability_rows: int = 5,
    seeds: tuple[int, ...] = (0, 1, 2),
    k: int = 3,
    max_rows: int | None = 20,
    random_state: int = 0,
    allow_nan: bool = False,
) -> dict[str, Any] | None:
    """The explanation-quality section, or None when nothing could be measured.

    Parameters
    ----------
    exp : Explanation
        The explanation the report is about.
    model, X : optional
        The model and the explained rows (``exp.data`` when X is None) for the faithfulness
        metrics of :func:`whybox.evaluate`.
    background : optional
        What "absent" means for the faithfulness metrics (rows, as for the explainers).
    metrics : list of str, optional
        Faithfulness metrics (default: deletion, insertion, faithfulness correlation, and
        infidelity when every feature is numeric: it adds noise to the inputs).
    compare : Explanation, optional
        A second explanation of the same rows by another method: their agreement (Spearman
        correlation and top-``k`` overlap) is shown.
    explain_fn : callable, optional
        ``explain_fn(X, random_state=seed) -> Explanation`` of a sampled method (the one that
        produced ``compare`` when it has standard errors, else ``exp``): its stability across
        ``seeds`` on the first ``stability_rows`` scored rows is shown.
    max_rows : int or None, default 20
        Score only the first ``max_rows`` explained rows (the metrics call the model many
        times per row); None for all.
    allow_nan : bool, default False
        Accept missing values in the rows, for models that handle them.
    """
    from ..metrics import evaluate

    items: list[dict[str, Any]] = []
    rows_x = X if X is not None else exp.data
    if max_rows is not None and exp.n_rows > max_rows and not exp.is_ragged:
        exp = exp[:max_rows]
        compare = None if compare is None else compare[:max_rows]
        if rows_x is not None:
            rows_x = rows_x.iloc[:max_rows] if hasattr(rows_x, "iloc") else rows_x[:max_rows]
    images = not exp.is_ragged and len(exp.feature_shape) >= 2
    if model is not None and rows_x is not None and (exp.is_tabular or images):
        names = list(metrics) if metrics is not None else list(FAITHFULNESS)
        notes = []
        if metrics is None and not _numeric_only(rows_x):
            names.remove("infidelity")
            notes.append(
                "Infidelity was not computed: it adds noise to the inputs, and some features "
                "are categorical."
            )
        table = evaluate(
            exp,
            model,
            rows_x,
            metrics=names,
            background=background,
            random_state=random_state,
            allow_nan=allow_nan,
        )
        items.append(
            {
                "title": f"Faithfulness of the {exp.method} explanation",
                "text": (
                    "Does the model's output change the way the explanation says it should "
                    "when features are removed (set to background values)?"
                ),
                "header": HEADER,
                "rows": _frame_rows(table),
                "notes": notes,
            }
        )
    if explain_fn is not None and rows_x is not None:
        sampled = compare if compare is not None and compare.std is not None else exp
        srows = rows_x.iloc[:stability_rows] if hasattr(rows_x, "iloc") else rows_x[:stability_rows]
        table = evaluate(
            sampled, model, srows, metrics=["stability"], explain_fn=explain_fn, seeds=list(seeds)
        )
        items.append(
            {
                "title": f"Stability of {sampled.method} across random seeds",
                "text": (
                    f"{sampled.method} explained the same {len(srows)} rows with seeds "
                    f"{', '.join(map(str, seeds))}: do the attributions keep their order?"
                ),
                "header": HEADER,
                "rows": _frame_rows(table),
            }
        )
    if compare is not None:
        table = evaluate(exp, model, rows_x, metrics=["agreement"], other=compare, k=k)
        items.append(
            {
                "title": f"Agreement between {exp.method} and {compare.method}",
                "text": (
                    f"Two methods explained the same rows; top-{k} overlap is the share of "
                    f"the {k} most important features they have in common. Where they "
                    "disagree, neither ranking should be trusted on its own."
                ),
                "header": HEADER,
                "rows": _frame_rows(table),
            }
        )
    if not items:
        return None
    return {
        "kind": "quality",
        "id": "quality",
        "title": "Explanation quality",
        "lead": "Measured, not assumed: how faithful, stable and consistent this explanation is.",
        "blocks": items,
    }


FAITHFULNESS = ("deletion", "insertion", "faithfulness_correlation", "infidelity")
