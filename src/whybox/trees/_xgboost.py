"""XGBoost (the booster's JSON) -> ``TreeEnsemble``.

XGBoost goes left iff ``float32(x) < split_condition``; NaN (and ``missing``) follow
``default_left``. Partition splits list the categories that go RIGHT: those nodes' children
are swapped. ``base_score`` is stored on the probability scale (a bracketed string in recent
versions) and turned into a margin by the objective's link.

References
----------
XGBoost: "Introduction to Model IO" (JSON schema); "Categorical Data" tutorial.
"""

from __future__ import annotations

import json
from itertools import chain, pairwise
from typing import Any

import numpy as np

from ..errors import UnsupportedModelError
from ..models import _has_base
from .parse import InputEncoding, TreeEnsemble, _assemble, _lt, _names_or_none, _outputs

__all__ = ["parse"]

_XGB_LOG = ("count:poisson", "reg:gamma", "reg:tweedie", "survival:cox", "survival:aft")


def _xgb_categories(m: dict) -> dict[int, tuple]:
    """Training categories stored by XGBoost >= 3.1 (``model["cats"]["enc"]``)."""
    out: dict[int, tuple] = {}
    for j, e in enumerate((m.get("cats") or {}).get("enc") or []):
        values, offsets = e.get("values") or [], e.get("offsets") or []
        if offsets:  # strings: utf-8 bytes delimited by offsets
            raw = bytes(int(v) for v in values)
            out[j] = tuple(raw[a:b].decode("utf-8") for a, b in pairwise(offsets))
        elif values:
            out[j] = tuple(values)
    return out


def parse(model: Any) -> TreeEnsemble:
    """Parse an XGBoost model from its JSON (see :func:`.trees.parse_tree_model`)."""
    sk_api = _has_base(model, "xgboost", "XGBModel")
    booster = model.get_booster() if sk_api else model
    learner = json.loads(booster.save_raw("json"))["learner"]
    objective, gb = learner["objective"]["name"], learner["gradient_booster"]
    if gb.get("name") not in ("gbtree", "dart"):
        raise UnsupportedModelError(
            f"this XGBoost model uses booster={gb.get('name')!r}, which has no trees; TreeShap "
            "needs booster='gbtree' or 'dart' (use LinearShap for gblinear)."
        )
    m = gb["model"] if "model" in gb else gb["gbtree"]["model"]
    mp = learner["learner_model_param"]
    K = max(1, int(mp.get("num_class", "0") or 0), int(mp.get("num_target", "1") or 1))
    trees = m["trees"]
    best = booster.attr("best_iteration") if sk_api else None
    if best is not None:  # the scikit-learn API predicts with the trees up to best_iteration
        per_iter = K * int(m.get("gbtree_model_param", {}).get("num_parallel_tree", "1"))
        indptr = m.get("iteration_indptr")
        trees = trees[: int(indptr[int(best) + 1]) if indptr else (int(best) + 1) * per_iter]
    base = np.asarray([float(v) for v in str(mp["base_score"]).strip("[]").split(",")])
    if objective in ("binary:logistic", "reg:logistic"):
        base = np.log(base / (1.0 - base))
    elif objective in _XGB_LOG:
        base = np.log(base)
    sizes = [int(t["tree_param"]["num_nodes"]) for t in trees]

    def flat(key: str, dtype: Any) -> np.ndarray:  # one vectorised pass over all trees
        return np.fromiter(chain.from_iterable(t[key] for t in trees), dtype, sum(sizes))

    left, right = flat("left_children", np.int64), flat("right_children", np.int64)
    cond = flat("split_conditions", np.float32).astype(np.float64)
    default_left = flat("default_left", np.int64).astype(bool)
    weight = np.asarray(gb.get("weight_drop") or np.ones(len(trees)))[: len(trees)]  # DART
    weight = np.repeat(weight, sizes)
    leaf = left < 0
    if any(int(t["tree_param"].get("size_leaf_vector", "1") or 1) > 1 for t in trees):
        # multi_output_tree: a leaf's K values are leaf_weights[right_children[leaf]]
        rows = [np.asarray(t["right_children"])[np.asarray(t["left_children"]) < 0] for t in trees]
        value = np.zeros((len(left), K))
        value[leaf] = np.concatenate(
            [np.reshape(t["leaf_weights"], (-1, K))[r] for t, r in zip(trees, rows, strict=True)]
        ).astype(np.float32)
        value, tree_output = value * weight[:, None], np.full(len(trees), -1)
    else:  # leaves store their value in split_conditions
        value, tree_output = np.where(leaf, cond * weight, 0.0), np.asarray(m["tree_info"])
        tree_output = tree_output[: len(trees)] if K > 1 else np.zeros(len(trees))
    cat_nodes, cat_lists, start = [], [], np.cumsum([0, *sizes])
    for ti, t in enumerate(trees):
        seg, size, allc = t["categories_segments"], t["categories_sizes"], t["categories"]
        for a, node in enumerate(t.get("categories_nodes") or []):
            g = int(start[ti] + node)  # listed categories go RIGHT: swap the children
            left[g], right[g], default_left[g] = right[g], left[g], not default_left[g]
            cat_nodes.append(g)
            cat_lists.append(allc[seg[a] : seg[a] + size[a]])
    a = {
        "left": np.where(leaf, -1, left),
        "right": np.where(leaf, -1, right),
        "feature": flat("split_indices", np.int64),
        "threshold": _lt(cond),  # XGBoost: go left iff float32(x) < split_condition
        "missing_left": default_left,
        "value": value,
        "cover": flat("sum_hessian", np.float64),
    }
    ftypes = list(learner.get("feature_types") or booster.feature_types or [])
    missing = getattr(model, "missing", None) if sk_api else None
    if objective.startswith("multi:"):
        meta = _outputs(model, K, "multiclass")
    elif objective in ("binary:logistic", "reg:logistic"):
        meta = _outputs(model, 1, "binary")
    elif objective in _XGB_LOG:
        meta = _outputs(model, K, "other", "log margin", "exp")
    else:
        meta = _outputs(model, K, "other", "margin")
    meta |= {
        "base_offset": np.broadcast_to(base.astype(np.float32), (K,)).astype(np.float64),
        "n_features": int(booster.num_features()),
        "feature_names": _names_or_none(booster.feature_names),
        "input_dtype": "float32",
        "categorical_encoding": InputEncoding(
            categories=_xgb_categories(m),
            unknown="error",
            dtype_codes=True,
            code_rule="xgboost",
            code_columns=tuple(j for j, f in enumerate(ftypes) if f == "c"),
            missing_value=None if missing is None else float(missing),
        ),
    }
    return _assemble(a, sizes, tree_output, K, meta, (cat_nodes, cat_lists))
