"""LightGBM (``dump_model()``) -> ``TreeEnsemble``.

LightGBM goes left iff ``x <= threshold`` in float64; a split without missing type reads NaN
as 0.0, ``zero_as_missing`` sends zeros the default way, and categorical splits list the
codes that go left (NaN and negative codes go right). The initial score is folded into the
first trees; rf mode averages the trees.

References
----------
LightGBM: ``include/LightGBM/tree.h`` (``NumericalDecision``, ``CategoricalDecision``).
"""

from __future__ import annotations

from typing import Any

import numpy as np

from ..errors import UnsupportedModelError
from ..models import _has_base
from .parse import (
    _LGB_ZERO,
    InputEncoding,
    TreeEnsemble,
    _assemble,
    _concat,
    _le,
    _names_or_none,
    _outputs,
)

__all__ = ["parse"]


def _lgb_tree(root: dict, scale: float, zero_feats: set, nan_feats: set) -> dict:
    """One ``dump_model`` tree, depth-first (parents before children)."""
    rows, cats, stack = [], {}, [(root, -1, 0)]
    while stack:
        nd, parent, side = stack.pop()
        i = len(rows)
        if parent >= 0:
            rows[parent][side] = i
        if "split_index" not in nd:
            if nd.get("leaf_coeff"):
                raise UnsupportedModelError(
                    "this LightGBM model has linear trees (linear_tree=True), whose leaves are "
                    "linear models; TreeShap supports constant leaves only."
                )
            rows.append([-1, -1, -1, 0.0, False, nd["leaf_value"] * scale, nd.get("leaf_count", 0)])
            continue
        j, t = int(nd["split_feature"]), nd["threshold"]
        if nd["decision_type"] == "==":  # listed categories left; NaN and negatives right
            cats[i] = [float(c) for c in str(t).split("||")]
            thr, miss = 0.0, False
        else:
            t = float(t) if abs(float(t)) < 1e300 else np.copysign(np.inf, float(t))  # AvoidInf
            thr, mt = float(_le(t)), nd.get("missing_type", "None")
            if mt == "None":  # NaN is read as 0.0, then compared
                miss = 0.0 <= t
            else:  # "NaN": NaN; "Zero": 0.0 and NaN (encode turns 0 into NaN) go the default way
                (zero_feats if mt == "Zero" else nan_feats).add(j)
                miss = bool(nd.get("default_left", False))
        rows.append([-1, -1, j, thr, miss, 0.0, nd.get("internal_count", 0)])
        stack += [(nd["right_child"], i, 1), (nd["left_child"], i, 0)]
    cols = list(zip(*rows, strict=True))
    keys = ("left", "right", "feature", "threshold", "missing_left", "value", "cover")
    return {**{k: np.asarray(c) for k, c in zip(keys, cols, strict=True)}, "cats": cats}


def parse(model: Any) -> TreeEnsemble:
    """Parse a LightGBM model from ``dump_model()`` (see :func:`.trees.parse_tree_model`)."""
    booster = model.booster_ if _has_base(model, "lightgbm", "LGBMModel") else model
    try:
        d = booster.dump_model()  # up to best_iteration when set, as predict
    except ValueError as exc:  # json.JSONDecodeError: LightGBM writes tabs in names unescaped
        raise UnsupportedModelError(
            f"LightGBM's dump_model() returned invalid JSON ({exc}); it does so when a feature "
            "name contains a tab or another control character. Rename those features (e.g. "
            "replace tabs with spaces) and refit, or explain the model with wb.KernelShap."
        ) from exc
    K, infos = int(d.get("num_tree_per_iteration", 1)), d["tree_info"]
    # rf mode: LightGBM's raw_score (and pred_contrib) is the SUM of the trees, its
    # probability sigmoid(sum / n_iterations); the layout keeps the average
    scale = 1.0 / max(1, len(infos) // K) if d.get("average_output") else 1.0
    zero_feats: set[int] = set()
    nan_feats: set[int] = set()
    parts = [_lgb_tree(t["tree_structure"], scale, zero_feats, nan_feats) for t in infos]
    if zero_feats & nan_feats:
        raise UnsupportedModelError(
            "this LightGBM model mixes the 'Zero' and 'NaN' missing types on the features "
            f"{sorted(zero_feats & nan_feats)} (zeros go the default way at some splits and "
            "are compared with the threshold at others, which one decision rule per feature "
            "cannot express exactly). Train the model with one zero_as_missing setting "
            "throughout, or explain it with KernelShap."
        )
    cats = [p.pop("cats") for p in parts]
    a, sizes = _concat(parts)
    start = np.cumsum([0, *sizes])
    cat_nodes = [int(start[t] + i) for t, c in enumerate(cats) for i in c]
    cat_lists = [v for c in cats for v in c.values()]
    names = [str(n) for n in d.get("feature_names") or booster.feature_name()]
    finfo = d.get("feature_infos") or {}
    code_cols = {j for j, n in enumerate(names) if (finfo.get(n) or {}).get("values")}
    code_cols |= set(a["feature"][cat_nodes].tolist())
    objective = str(d.get("objective", "")).split(" ")
    sigmoid = [float(o.split(":")[1]) for o in objective if o.startswith("sigmoid:")] or [1.0]
    logistic = "logistic" if sigmoid[0] == 1.0 else "identity"
    avg = " (averaged over trees)" if d.get("average_output") else ""
    if objective[0] in ("binary", "cross_entropy", "xentropy"):
        meta = _outputs(model, 1, "binary", "log-odds margin (raw score)" + avg, logistic)
    elif objective[0] in ("multiclass", "softmax"):
        meta = _outputs(model, K, "multiclass", "raw score per class" + avg)
    elif objective[0] in ("multiclassova", "multiclass_ova", "ova", "ovr"):
        meta = _outputs(model, K, "multiclass", "one-vs-rest raw score" + avg, logistic)
    else:
        link = "exp" if objective[0] in ("poisson", "gamma", "tweedie") else "identity"
        meta = _outputs(model, K, "other", "raw score" + avg, link)
    pc = d.get("pandas_categorical") or getattr(booster, "pandas_categorical", None)
    meta |= {
        "base_offset": np.zeros(K),  # LightGBM folds the initial score into the first trees
        "n_features": int(booster.num_feature()),
        "feature_names": _names_or_none(names),
        "categorical_encoding": InputEncoding(
            dtype_categories=tuple(tuple(c) for c in pc) if pc else None,
            code_rule="lightgbm",
            code_columns=tuple(sorted(code_cols)),
            zero_threshold=_LGB_ZERO,
            zero_as_missing=tuple(sorted(zero_feats)),
        ),
    }
    return _assemble(a, sizes, np.arange(len(parts)) % K, K, meta, (cat_nodes, cat_lists))
