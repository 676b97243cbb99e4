"""Desired outcome of :class:`~whybox.recourse.counterfactuals.Counterfactuals`: ``desired=``,
``desired_proba=`` and ``target=`` turned into a margin on the model's outputs.

A class is named by its label (matched first), the string of a label (``"0"`` for the label
0) or its index; regressors and single-output callables take an interval ``(lo, hi)``.
"""

from __future__ import annotations

import numbers
from typing import Any

import numpy as np

from ..errors import InvalidParameterError
from ..models import ModelFunction, describe_outputs, is_torch_module
from ._cf_search import (
    Outcome,
    argmax_outcome,
    interval_outcome,
    sign_outcome,
    threshold_outcome,
)


# ------------------------------------------------------------------------ desired outcome
def _is_interval(d: Any) -> bool:
    return isinstance(d, (tuple, list)) and len(d) == 2


def _match_label(d: Any, labels: list[Any]) -> int | None:
    d_bool = isinstance(d, (bool, np.bool_))
    for j, lab in enumerate(labels):
        if isinstance(lab, (bool, np.bool_)) != d_bool:
            continue
        try:
            if bool(lab == d):
                return j
        except Exception:
            continue
    if isinstance(d, str):
        for j, lab in enumerate(labels):
            if str(lab) == d:
                return j
    return None


def _class_index(d: Any, labels: list[Any], what: str) -> int:
    if _is_interval(d):
        raise InvalidParameterError(
            f"desired={d!r} is an interval, but this model is a classifier: desired is the "
            f"class to reach, one of {labels}. Use desired_proba= for a probability threshold."
        )
    j = _match_label(d, labels)
    if j is None and isinstance(d, numbers.Integral) and not isinstance(d, (bool, np.bool_)):
        if -len(labels) <= int(d) < len(labels):  # not a label: an index (CONTRACT §1)
            j = int(d) % len(labels)
    if j is None:
        raise InvalidParameterError(
            f"desired={d!r} is not a {what} of this model: its {what}es are {labels}. Pass one "
            "of these (or its index, or the string of a label) as desired= (or target=)."
        )
    return j


def _interval(d: Any, what: str) -> tuple[float, float]:
    if d is None:
        raise InvalidParameterError(
            f"{what} has no natural desired outcome: pass desired=(lo, hi), the interval its "
            "output must reach, e.g. desired=(250_000, None) (None for an open end)."
        )
    if not _is_interval(d):
        raise InvalidParameterError(
            f"desired={d!r}: for {what} the desired outcome is an interval (lo, hi) of the "
            "output, e.g. desired=(0, None) for a positive score."
        )
    try:
        lo, hi = (
            -np.inf if d[0] is None else float(d[0]),
            np.inf if d[1] is None else float(d[1]),
        )
    except (TypeError, ValueError) as exc:
        raise InvalidParameterError(
            f"desired={d!r}: the interval's ends must be numbers or None."
        ) from exc
    if np.isnan(lo) or np.isnan(hi) or lo > hi or (np.isinf(lo) and np.isinf(hi)):
        raise InvalidParameterError(
            f"desired={d!r} is not a usable interval: expected lo <= hi with at least one "
            "finite end."
        )
    return lo, hi


def _output_index(target: Any, names: list[str]) -> int:
    if target is None:
        if len(names) == 1:
            return 0
        raise InvalidParameterError(
            f"this model has {len(names)} outputs {names}; pass target= (an index or a name) "
            "to say which one desired=(lo, hi) applies to."
        )
    j = _match_label(target, names)
    if j is None and isinstance(target, numbers.Integral) and 0 <= int(target) < len(names):
        j = int(target)
    if j is None:
        raise InvalidParameterError(
            f"unknown target {target!r}: this model has the outputs {names}. Pass an index "
            f"between 0 and {len(names) - 1} or one of these names."
        )
    return j


def resolve_outcome(
    fn: ModelFunction, model: Any, out_q: np.ndarray, desired: Any, proba: Any, target: Any
) -> Outcome:
    """Turn ``desired`` / ``desired_proba`` / ``target`` into a margin on the outputs."""
    k = out_q.shape[1]
    if proba is not None and (
        isinstance(proba, bool)
        or not isinstance(proba, numbers.Real)
        or not 0.0 < float(proba) < 1.0
    ):
        raise InvalidParameterError(
            f"desired_proba={proba!r} must be a probability strictly between 0 and 1, e.g. 0.5."
        )
    if proba is not None and fn.kind != "probability":
        raise InvalidParameterError(
            f"desired_proba applies to classifiers with predict_proba; this model outputs "
            f"{fn.kind} values. Drop desired_proba (or pass desired=(lo, hi))."
        )
    d = desired if desired is not None else (target if fn.kind != "regression" else None)
    if fn.kind == "probability":
        labels = list(describe_outputs(model) or range(k))
        if d is None:
            if k != 2:
                raise InvalidParameterError(
                    f"this classifier has {k} classes {labels}; pass desired=<class> to say "
                    "which class the counterfactuals should reach."
                )
            c = 1 - int(np.argmax(out_q[0]))
        else:
            c = _class_index(d, labels, "class")
        if proba is None:
            return argmax_outcome(c, k, f"class {labels[c]} (most probable)", False)
        return threshold_outcome(
            c, float(proba), f"class {labels[c]} with probability >= {float(proba):g}"
        )
    if fn.kind == "decision":
        labels = list(np.asarray(getattr(model, "classes_", range(max(k, 2)))).tolist())
        if k == 1:
            c = (0 if out_q[0, 0] > 0 else 1) if d is None else _class_index(d, labels, "class")
            return sign_outcome(c == 1, f"class {labels[c]} (decision function sign)")
        if d is None:
            raise InvalidParameterError(
                f"this classifier has {k} classes {labels}; pass desired=<class>."
            )
        c = _class_index(d, labels, "class")
        return argmax_outcome(c, k, f"class {labels[c]} (largest decision value)", False)
    torch_ok = is_torch_module(model)
    names = fn.output_names
    if fn.kind == "regression" or _is_interval(d) or k == 1:
        what = "a regressor" if fn.kind == "regression" else "a model with one output"
        lo, hi = _interval(d, what)
        t = _output_index(target if fn.kind == "regression" or _is_interval(d) else None, names)
        return interval_outcome(t, lo, hi, f"{names[t]} in [{lo:g}, {hi:g}]", torch_ok)
    if d is None:
        if k != 2:
            raise InvalidParameterError(
                f"this model has {k} outputs {names}; pass desired=<output index> (the output "
                "that should become the largest) or desired=(lo, hi) with target=."
            )
        c = 1 - int(np.argmax(out_q[0]))
    else:
        c = _class_index(d, list(range(k)), "output index")
    return argmax_outcome(c, k, f"output {c} largest", torch_ok)
