"""``target=`` of the explainable boosting machines' ``explain_local`` (CONTRACT §1).

The binary classifier's terms explain the log-odds of ``classes_[1]``; class 0 is the negated
log-odds. A multiclass classifier's terms carry one score per class (the softmax logits); a
class picks its own scores. A target is a label (matched first), the string of a label, an index, a list of
these, ``"all"``, or a 1-D array / Series / tensor with one target per row.
"""

from __future__ import annotations

import numbers
from typing import Any

import numpy as np
import pandas as pd

from ..errors import InvalidParameterError


def _plain(v: Any) -> Any:
    return v.item() if isinstance(v, np.generic) else v


def _is_per_row(target: Any) -> bool:
    if isinstance(target, (np.ndarray, pd.Series)):
        return True
    return type(target).__module__.startswith("torch") and hasattr(target, "detach")


def _resolve_one_ebm(t: Any, labels: list[Any]) -> int:
    k = len(labels)
    t = _plain(t)
    t_bool = isinstance(t, bool)
    for j, lab in enumerate(labels):  # a label first (True == 1: bools match bools only)
        if isinstance(lab, (bool, np.bool_)) == t_bool and _equal(lab, t):
            return j
    if isinstance(t, str):  # "0" for the label 0
        for j, lab in enumerate(labels):
            if str(lab) == t:
                return j
    if isinstance(t, numbers.Integral) and not t_bool and -k <= t < k:
        return int(t) % k
    raise InvalidParameterError(
        f"unknown target {t!r}: this model explains {labels}. Pass one of these labels, an "
        f"index between 0 and {k - 1}, a list of them, 'all', or one per row (a 1-D array)."
    )


def _equal(a: Any, b: Any) -> bool:
    try:
        return bool(a == b)
    except Exception:
        return False


def _resolve_ebm_target(target: Any, labels: list[Any], n: int) -> tuple[list[int], str]:
    """Indices into ``labels`` and the kind: "single", "several" or "per_row" (length n)."""
    if target is None:
        return [len(labels) - 1], "single"
    if isinstance(target, str) and target == "all" and "all" not in labels:
        return list(range(len(labels))), "several"
    if _is_per_row(target):
        arr = target.detach().cpu().numpy() if hasattr(target, "detach") else np.asarray(target)
        if arr.ndim == 0:
            return [_resolve_one_ebm(arr.item(), labels)], "single"
        if arr.ndim != 1 or arr.shape[0] != n:
            raise InvalidParameterError(
                f"a per-row target (array, Series or tensor) must be 1-D with one entry per "
                f"explained row ({n}), got shape {arr.shape}. Pass a list for several "
                "outputs of every row."
            )
        return [_resolve_one_ebm(t, labels) for t in arr.tolist()], "per_row"
    if isinstance(target, (list, tuple, pd.Index)):
        if len(target) == 0:
            raise InvalidParameterError("target is an empty list; name at least one output.")
        return [_resolve_one_ebm(t, labels) for t in target], "several"
    return [_resolve_one_ebm(target, labels)], "single"


def ebm_outputs(
    raw: np.ndarray, intercept: Any, picks: list[int], kind: str, n_labels: int
) -> tuple[np.ndarray, np.ndarray]:
    """(values, base_values) of the picked outputs.

    Parameters
    ----------
    raw : ndarray of shape (n, n_terms) or (n, n_terms, k)
        Term contributions: to the decision function (binary: the log-odds of the last
        label, whose negation is the other label's; regression: the prediction), or per
        class (multiclass).
    intercept : float or ndarray of shape (k,)
    picks, kind
        From :func:`_resolve_ebm_target`.
    n_labels : int

    Returns
    -------
    values : (n, n_terms) for "single" and "per_row", (n, n_terms, len(picks)) for "several"
    base : (n,) or (n, len(picks))
    """
    n = raw.shape[0]
    idx = np.asarray(picks, dtype=np.int64)
    if raw.ndim == 3:
        icpt = np.asarray(intercept, dtype=float)
        if kind == "single":
            return raw[:, :, idx[0]], np.full(n, icpt[idx[0]])
        if kind == "several":
            return raw[:, :, idx], np.tile(icpt[idx], (n, 1))
        return raw[np.arange(n), :, idx], icpt[idx]
    signs = np.where(idx == n_labels - 1, 1.0, -1.0)
    base1 = np.full(n, float(intercept))
    if kind == "single":
        return raw * signs[0], base1 * signs[0]
    if kind == "several":
        return raw[:, :, None] * signs, base1[:, None] * signs
    return raw * signs[:, None], base1 * signs
