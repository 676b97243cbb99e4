"""``target=``: one meaning for every explainer and every model type.

* ``None``: a binary classifier's positive class (``classes_[1]``); a multiclass classifier's
  every class; a regressor's prediction (every output of a multi-output one); the single
  output of a torch module or callable, or all of them.
* a scalar: ONE output, a class label (matched first; ``"0"`` matches the label ``0``) or
  else an output index; values (n, p).
* a list, tuple or ``pd.Index``: SEVERAL outputs, in that order; values (n, p, k).
* ``"all"``: every output the model computes on the explained scale.
* a 1-D numpy array, ``torch.Tensor`` or ``pd.Series`` of length n: ONE TARGET PER ROW
  (Captum's meaning), labels or indices; values (n, p) without an output axis.

:func:`resolve_target` turns a ``target`` into indices of a model's outputs; the adapters
(:mod:`whybox.models`), TreeShap and LinearShap share it.
"""

from __future__ import annotations

import numbers
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd

from .errors import InvalidParameterError

__all__ = ["PER_ROW_NAME", "TargetSelection", "is_per_row_target", "resolve_target"]

#: ``Explanation.output_names`` of an explanation with one target per row
PER_ROW_NAME = "per-example target"


@dataclass(frozen=True)
class TargetSelection:
    """Outputs picked by a ``target``.

    Attributes
    ----------
    indices : list of int
        The outputs explained (for per-row targets: the distinct ones, in order).
    single : bool
        One output asked for (no output axis); True for per-row targets too.
    row_targets : list of int or None
        The output index of each row, for per-row targets; None otherwise.
    """

    indices: list[int]
    single: bool
    row_targets: list[int] | None = None


def _is_tensor(obj: Any) -> bool:
    return any(
        c.__module__.startswith("torch") and c.__name__ == "Tensor" for c in type(obj).__mro__
    )


def is_per_row_target(target: Any) -> bool:
    """True for a 1-D numpy array, torch tensor or pandas Series (one target per row)."""
    if isinstance(target, pd.Series):
        return True
    if isinstance(target, np.ndarray) or _is_tensor(target):
        return len(tuple(target.shape)) >= 1
    return False


def _per_row_values(target: Any) -> list[Any]:
    if isinstance(target, pd.Series):
        arr = target.to_numpy()
    elif _is_tensor(target):
        arr = target.detach().cpu().numpy()
    else:
        arr = np.asarray(target)
    if arr.ndim != 1:
        raise InvalidParameterError(
            f"a per-row target must be 1-D (one target per explained row), got an array of "
            f"shape {tuple(arr.shape)}. Pass a 1-D array / tensor / Series of labels or output "
            "indices, or a list for several outputs of every row."
        )
    return arr.tolist()


def _scalar(target: Any) -> Any:
    """A 0-d numpy array or tensor as a Python scalar."""
    if isinstance(target, np.ndarray) and target.ndim == 0:
        return target.item()
    if _is_tensor(target) and len(tuple(target.shape)) == 0:
        return target.item()
    return target


def resolve_one(target: Any, names: list[Any], k: int, is_classifier: bool) -> int:
    """Index of one output: a label first, then the string of a label, then an index."""
    target = _scalar(target)
    target_is_bool = isinstance(target, (bool, np.bool_))
    for j, name in enumerate(names):
        # True == 1 in Python: a bool matches only a bool label, and an int only a non-bool one
        if isinstance(name, (bool, np.bool_)) != target_is_bool:
            continue
        try:
            if bool(name == target):
                return j
        except Exception:
            continue
    if isinstance(target, str):  # "1" for the label 1, "True" for True
        for j, name in enumerate(names):
            if str(name) == target:
                return j
    if isinstance(target, numbers.Integral) and not isinstance(target, bool) and -k <= target < k:
        return int(target) % k
    what = f"classes {names}" if is_classifier else f"{k} output(s) {names}"
    raise InvalidParameterError(
        f"unknown target {target!r}: this model has {what}. Pass a "
        + ("class label, " if is_classifier else "")
        + f"an output index between 0 and {k - 1}, a list of these, 'all', or a 1-D array "
        "with one target per row."
    )


def resolve_target(
    target: Any,
    names: list[Any],
    *,
    is_classifier: bool,
    n_rows: int | None = None,
    all_indices: list[int] | None = None,
    default: list[int] | None = None,
) -> TargetSelection:
    """Resolve ``target`` against the outputs ``names`` (see the module docstring).

    Parameters
    ----------
    target : see the module docstring
    names : list
        Output labels (class labels, or output names).
    is_classifier : bool
        For the messages, and the binary default (``classes_[1]``).
    n_rows : int, optional
        Rows explained: a per-row target must have this length.
    all_indices : list of int, optional
        What ``"all"`` means (default: every output). A binary margin model computes one
        margin: ``"all"`` is that output (class 1) alone.
    default : list of int, optional
        What ``None`` means (default: the rule in the module docstring).

    Raises
    ------
    InvalidParameterError
        For an unknown label or index (the message lists the outputs), an empty list, or a
        per-row target whose length is not ``n_rows``.
    """
    k = len(names)
    if is_per_row_target(target):
        values = _per_row_values(target)
        if n_rows is not None and len(values) != n_rows:
            raise InvalidParameterError(
                f"target has {len(values)} entries but {n_rows} rows are explained: a 1-D "
                "array / tensor / Series target gives one target per row (Captum's meaning). "
                "Pass one per row, or a list for the same output(s) of every row."
            )
        rows = [resolve_one(t, names, k, is_classifier) for t in values]
        return TargetSelection(sorted(set(rows)), True, rows)
    if isinstance(target, str) and target == "all" and "all" not in names:
        idx = list(range(k)) if all_indices is None else list(all_indices)
        return TargetSelection(idx, False)
    if target is None:
        if default is not None:
            return TargetSelection(list(default), len(default) == 1)
        if is_classifier and k == 2:
            return TargetSelection([1], True)
        if k == 1:
            return TargetSelection([0], True)
        return TargetSelection(list(range(k)), False)
    if isinstance(target, (list, tuple, pd.Index)):
        if len(target) == 0:
            raise InvalidParameterError("target is an empty list; name at least one output.")
        return TargetSelection([resolve_one(t, names, k, is_classifier) for t in target], False)
    return TargetSelection([resolve_one(target, names, k, is_classifier)], True)
