"""CatBoost (``save_model(format="json")``, oblivious trees) -> ``TreeEnsemble``.

Each oblivious tree becomes a complete binary tree in heap order; CatBoost goes right iff
``float32(x) > border``. Models with categorical (CTR), text or embedding features are
refused.

References
----------
CatBoost: JSON model format (``save_model(format="json")``), oblivious trees.
"""

from __future__ import annotations

import json
import os
import tempfile
from typing import Any

import numpy as np

from ..errors import UnsupportedModelError
from .parse import TreeEnsemble, _assemble, _concat, _le, _names_or_none, _outputs

__all__ = ["parse"]


def parse(model: Any) -> TreeEnsemble:
    """Parse a CatBoost model from its JSON (see :func:`.trees.parse_tree_model`)."""
    with tempfile.TemporaryDirectory() as tmp:
        path = os.path.join(tmp, "model.json")
        model.save_model(path, format="json")
        with open(path, encoding="utf-8") as fh:
            j = json.load(fh)
    info = j["features_info"]
    if any(info.get(k) for k in ("categorical_features", "text_features", "embedding_features")):
        raise UnsupportedModelError(
            "this CatBoost model has categorical, text or embedding features; TreeShap reads "
            "CatBoost models with numerical features only (CTR splits are not plain splits). "
            "Use model.get_feature_importance(type='ShapValues') or KernelShap."
        )
    if "oblivious_trees" not in j:
        raise UnsupportedModelError("only CatBoost's symmetric (oblivious) trees are supported.")
    floats = {f["feature_index"]: f for f in info.get("float_features", [])}
    scale, bias = j.get("scale_and_bias", [1.0, [0.0]])
    bias = np.atleast_1d(np.asarray(bias, np.float64))
    K, parts = len(bias), []
    for tree in j["oblivious_trees"]:
        splits = tree.get("splits") or []
        D = len(splits)
        # heap order: level l (root 0) splits on splits[D - 1 - l], as bit d of the leaf
        # index is the outcome (float32(x) > border) of splits[d]; left = bit 0 = x <= border
        sp = [splits[D - 1 - lv] for lv in np.repeat(np.arange(D), 2 ** np.arange(D))]
        f = [floats[s["float_feature_index"]] for s in sp]
        n_int, n_leaf, idx = 2**D - 1, 2**D, np.arange(2**D - 1)
        cover = np.concatenate([np.zeros(n_int), tree["leaf_weights"]])
        for i in range(n_int - 1, -1, -1):
            cover[i] = cover[2 * i + 1] + cover[2 * i + 2]
        border = np.asarray([s["border"] for s in sp], np.float32)
        nan_left = [g["nan_value_treatment"] != "AsTrue" for g in f]  # AsIs: NaN > b is false
        lv = np.asarray(tree["leaf_values"], np.float64).reshape(n_leaf, K) * float(scale)
        parts.append(
            {
                "left": np.r_[2 * idx + 1, -np.ones(n_leaf)],
                "right": np.r_[2 * idx + 2, -np.ones(n_leaf)],
                "feature": np.r_[
                    [g.get("flat_feature_index", g["feature_index"]) for g in f], -np.ones(n_leaf)
                ],
                "threshold": np.r_[_le(border), np.zeros(n_leaf)],
                "missing_left": np.r_[np.asarray(nan_left, bool), np.zeros(n_leaf, bool)],
                "value": np.r_[np.zeros((n_int, K)), lv],
                "cover": cover,
            }
        )
    loss = str(model.get_all_params().get("loss_function", "")).split(":")[0]
    if loss == "MultiClass" and K > 1:
        meta = _outputs(model, K, "multiclass", "multinomial log-odds (RawFormulaVal)")
    elif loss == "MultiClassOneVsAll" and K > 1:
        meta = _outputs(model, K, "multiclass", "one-vs-all log-odds (RawFormulaVal)", "logistic")
    elif loss in ("Logloss", "CrossEntropy"):
        meta = _outputs(model, 1, "binary", "log-odds margin (RawFormulaVal)")
    else:
        meta = _outputs(model, K, "other", "raw prediction (RawFormulaVal)")
    meta |= {
        "base_offset": bias,
        "n_features": len(model.feature_names_),
        "feature_names": _names_or_none(model.feature_names_),
        "input_dtype": "float32",
    }
    return _assemble(*_concat(parts), np.full(len(parts), -1 if K > 1 else 0), K, meta)
