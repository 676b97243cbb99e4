"""Adverse-action reason codes from any local explanation.

Lenders who deny credit must tell the applicant the principal reasons (US ECOA / Regulation B,
FCRA). A common practice is to rank the features by how much they pushed the applicant's score
toward denial, relative to a reference population, and to report the top few as plain phrases.
Local Shapley values relative to a background are exactly such contributions, so any
Explanation of a risk score yields reason codes.

References
----------
Consumer Financial Protection Bureau (2022). Circular 2022-03: Adverse action notification
requirements in connection with credit decisions based on complex algorithms.

Hall, P., Cox, B., Dickerson, S., Ravi Kannan, A., Kulkarni, R. and Schmidt, N. (2021).
A United States fair lending perspective on machine learning. Frontiers in AI 4.
"""

from __future__ import annotations

import numbers
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
import pandas as pd

from .._validation import check_in
from ..errors import InvalidParameterError
from ..explanation import Explanation

__all__ = ["default_phrase", "reason_codes"]


def _format_value(v: Any) -> str:
    if v is None or (isinstance(v, float) and np.isnan(v)):
        return "missing"
    if isinstance(v, numbers.Integral):
        return f"{int(v):,}"
    if isinstance(v, numbers.Real):
        a = abs(float(v))
        if a >= 1000:
            return f"{float(v):,.0f}"
        return f"{float(v):.3g}"
    return str(v)


def default_phrase(feature: str, value: Any, contribution: float) -> str:
    """Plain phrasing of one reason from the feature name and the direction of its effect.

    >>> default_phrase("late_payments", 3, 0.8)
    'Late payments (3) increased the risk'
    """
    name = feature.replace("_", " ").strip()
    name = name[:1].upper() + name[1:]
    shown = f" ({_format_value(value)})" if value is not _NO_VALUE else ""
    verb = "increased" if contribution > 0 else "decreased"
    return f"{name}{shown} {verb} the risk"


_NO_VALUE = object()


def _phrase(
    feature: str, value: Any, contribution: float, phrases: Mapping[str, Any] | None
) -> str:
    entry = None if phrases is None else phrases.get(feature)
    if entry is None:
        return default_phrase(feature, value, contribution)
    if isinstance(entry, Mapping):
        key = "increase" if contribution > 0 else "decrease"
        entry = entry.get(key) or entry.get("default")
        if entry is None:
            return default_phrase(feature, value, contribution)
    return str(entry).format(value=_format_value(value) if value is not _NO_VALUE else "")


def reason_codes(
    exp: Explanation,
    rows: int | Sequence[int] | None = None,
    *,
    k: int = 4,
    adverse: str = "positive",
    phrases: Mapping[str, Any] | None = None,
    groups: Mapping[str, Sequence[str]] | None = None,
    output: Any = None,
) -> pd.DataFrame:
    """Top ``k`` reasons per row: the features that pushed the score most toward denial.

    Parameters
    ----------
    exp : Explanation
        A tabular local explanation of a risk score (any method), values of shape (n, p)
        (or (n, p, k) with ``output=``).
    rows : int, list of int, or None, default None
        Rows of ``exp`` to give reasons for (all rows by default).
    k : int, default 4
        Reasons per row (fewer when fewer features push toward denial).
    adverse : {"positive", "negative"}, default "positive"
        Sign of a contribution that pushes toward denial: ``"positive"`` when the explained
        output is a risk (probability of default), ``"negative"`` when it is a score where
        higher is better (probability of approval).
    phrases : mapping, optional
        Plain phrases per feature or group. A value is a string (``"{value}"`` is replaced by
        the applicant's value) or a mapping with ``"increase"`` / ``"decrease"`` phrases.
        Features without a phrase get a default: the feature's name, its value and
        "increased the risk" / "decreased the risk".
    groups : mapping, optional
        Features reported together, e.g. ``{"Delinquency": ["late_payments", "util"]}``;
        a group's contribution is the sum of its members'.
    output : str or int, optional
        Output to use when ``exp`` explains several.

    Returns
    -------
    DataFrame
        One line per reason with columns ``row, rank, feature, value, contribution,
        reason``; ``row`` is the row's label (the DataFrame index of ``exp.data``).

    Raises
    ------
    InvalidParameterError
        For a bad ``k`` or ``adverse``, a row out of range, unknown features in ``phrases``
        or ``groups``, or an Explanation with several outputs and no ``output=``.

    Examples
    --------
    Reasons from the exact Shapley values of the true model of the synthetic credit data:

    >>> data = wb.zoo.credit(n=500, random_state=0)
    >>> exp = wb.explain(wb.zoo.credit_true_logit, data.X.iloc[:2], background=data.X.iloc[:50])
    >>> codes = wb.reason_codes(exp, rows=0, k=2)
    >>> codes.columns.tolist()
    ['row', 'rank', 'feature', 'value', 'contribution', 'reason']
    >>> bool((codes["contribution"] > 0).all())  # each one pushed the risk up
    True
    """
    check_in("adverse", adverse, ("positive", "negative"))
    if isinstance(k, bool) or not isinstance(k, numbers.Integral) or k < 1:
        raise InvalidParameterError(f"k must be a positive integer, got {k!r}.")
    if exp.multi_output:
        if output is None:
            raise InvalidParameterError(
                f"this Explanation has several outputs {exp.output_names}; pass output= to "
                "choose the risk score."
            )
        exp = exp[:, :, output]
    if not exp.is_tabular:
        raise InvalidParameterError(
            "reason codes need a tabular Explanation (one value per named feature per row)."
        )
    names = list(exp.feature_names)
    # aggregate into groups
    members: list[list[int]] = []
    labels: list[str] = []
    owner: dict[str, str] = {}
    for gname, feats in (groups or {}).items():
        feats = [feats] if isinstance(feats, str) else list(feats)
        unknown = [f for f in feats if f not in names]
        if unknown:
            raise InvalidParameterError(
                f"group {gname!r} names unknown features {unknown}; features are {names}."
            )
        for f in feats:
            if f in owner:
                raise InvalidParameterError(
                    f"feature {f!r} is in two reason groups ({owner[f]!r} and {gname!r})."
                )
            owner[f] = str(gname)
    for j, f in enumerate(names):
        if f in owner:
            g = owner[f]
            if g not in labels:
                labels.append(g)
                members.append([])
            members[labels.index(g)].append(j)
        else:
            labels.append(f)
            members.append([j])
    sign = 1.0 if adverse == "positive" else -1.0
    if rows is None:
        rows = list(range(exp.n_rows))
    elif isinstance(rows, numbers.Integral):
        rows = [int(rows)]
    labels_of_rows = exp.row_labels
    out: list[dict[str, Any]] = []
    for i in rows:
        if not -exp.n_rows <= i < exp.n_rows:
            raise InvalidParameterError(f"row {i} is out of range for {exp.n_rows} rows.")
        v = exp.row_values(i)
        data = exp.row_data(i)
        contrib = np.array([v[m].sum() for m in members])
        order = np.argsort(-sign * contrib, kind="stable")
        rank = 0
        for g in order:
            if sign * contrib[g] <= 0 or rank >= k:
                break
            rank += 1
            if len(members[g]) == 1 and data is not None:
                value: Any = data[members[g][0]]
            elif data is not None:
                value = ", ".join(f"{names[j]}={_format_value(data[j])}" for j in members[g])
            else:
                value = _NO_VALUE
            out.append(
                {
                    "row": labels_of_rows[i],
                    "rank": rank,
                    "feature": labels[g],
                    "value": None if value is _NO_VALUE else value,
                    "contribution": float(contrib[g]),
                    "reason": _phrase(labels[g], value, sign * float(contrib[g]), phrases),
                }
            )
    return pd.DataFrame(out, columns=["row", "rank", "feature", "value", "contribution", "reason"])
