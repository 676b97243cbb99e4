"""scikit-learn trees, forests, GradientBoosting, HistGradientBoosting -> ``TreeEnsemble``.

Trees compare ``float32(x) <= threshold`` (``input_dtype="float32"``); NaN follows
``missing_go_to_left`` (scikit-learn >= 1.3). HistGradientBoosting ordinal-encodes its
categorical columns first (they come first in its preprocessed input) and sends the
categories in a node's bitset left; categories the binner never saw follow the missing
direction.

References
----------
scikit-learn: ``sklearn/tree/_tree.pyx``, ``ensemble/_hist_gradient_boosting/_predictor.pyx``,
``ensemble/_iforest.py``.
"""

from __future__ import annotations

from itertools import chain
from typing import Any

import numpy as np
import pandas as pd

from ..errors import UnsupportedModelError
from ..models import model_type_name
from .parse import InputEncoding, TreeEnsemble, _assemble, _concat, _le, _names_or_none, _outputs

__all__ = ["parse"]


def _sk_tree(t: Any, value: np.ndarray, features: Any = None) -> dict:
    leaf = t.children_left < 0
    feat = np.where(leaf, 0, t.feature)
    missing = getattr(t, "missing_go_to_left", None)  # scikit-learn >= 1.3
    return {
        "left": t.children_left,
        "right": t.children_right,
        "feature": feat if features is None else np.asarray(features)[feat],
        "threshold": _le(t.threshold),  # float32(x) <= t
        "missing_left": np.zeros(t.node_count, bool) if missing is None else missing,
        "value": value,
        "cover": t.weighted_n_node_samples,
    }


def parse(model: Any) -> TreeEnsemble:
    """Parse a fitted scikit-learn tree model (see :func:`.trees.parse_tree_model`)."""
    name = type(model).__name__
    if name.startswith("HistGradientBoosting"):
        return _parse_hgb(model)
    meta = {
        "n_features": int(model.n_features_in_),
        "feature_names": _names_or_none(getattr(model, "feature_names_in_", None)),
        "input_dtype": "float32",  # sklearn trees compare float32(X) <= threshold
    }
    if name.startswith("GradientBoosting"):
        return _parse_sklearn_gb(model, meta)
    trees = list(getattr(model, "estimators_", None) or [model])
    n, K = len(trees), int(getattr(model, "n_outputs_", 1))
    avg = " (averaged over trees)" if n > 1 else ""
    if name == "IsolationForest":  # leaf value: depth + c(samples in leaf), as score_samples
        subset = model._max_features != model.n_features_in_
        depth, c = model._decision_path_lengths, model._average_path_length_per_tree
        features = model.estimators_features_ if subset else [None] * n
        values = [(depth[i] + c[i] - 1.0) / n for i in range(n)]
        meta |= _outputs(
            model, 1, "other", "average path length (score_samples = -2 ** (-raw / c(max_samples)))"
        ) | {"output_names": ["average path length"]}
    elif hasattr(model, "classes_"):  # class fractions, as predict_proba
        if K > 1:
            raise UnsupportedModelError(
                f"{model_type_name(model)} has several classification outputs; TreeShap "
                "supports single-output classifiers. Fit one model per output."
            )
        K, features = len(model.classes_), [None] * n
        values = [e.tree_.value[:, 0, :] for e in trees]
        values = [v / np.where(v.sum(1) == 0, 1.0, v.sum(1))[:, None] / n for v in values]
        meta |= _outputs(model, K, "multiclass", "probability" + avg, "identity")
    else:  # regression, multi-output included
        values = [e.tree_.value[:, :, 0] / n for e in trees]
        values, features = [v[:, 0] if K == 1 else v for v in values], [None] * n
        meta |= _outputs(model, K, "other", "prediction" + avg)
    parts = [_sk_tree(e.tree_, v, f) for e, v, f in zip(trees, values, features, strict=True)]
    meta["base_offset"] = np.zeros(K)
    out = np.full(n, 0 if K == 1 else -1)
    return _assemble(*_concat(parts), out, K, meta)


def _parse_sklearn_gb(model: Any, meta: dict) -> TreeEnsemble:
    init = getattr(model, "init_", None)
    if type(init).__name__ not in ("DummyClassifier", "DummyRegressor", "str"):
        raise UnsupportedModelError(
            f"{model_type_name(model)} uses the init estimator {type(init).__name__}, whose "
            "prediction depends on X; TreeShap supports init=None (default) or 'zero'."
        )
    stages, lr = model.estimators_, float(model.learning_rate)
    K = stages.shape[1]
    parts = [_sk_tree(t.tree_, lr * t.tree_.value[:, 0, 0]) for t in stages.ravel()]
    base = model._raw_predict_init(np.zeros((1, model.n_features_in_), np.float32))
    if not hasattr(model, "classes_"):
        meta |= _outputs(model, 1, "other")
    elif K > 1:
        meta |= _outputs(model, K, "multiclass")
    elif model.loss == "exponential":
        raw = "exponential-loss margin (probability = sigmoid(2 raw))"
        meta |= _outputs(model, 1, "binary", raw, "identity")
    else:
        meta |= _outputs(model, 1, "binary")
    meta["base_offset"] = np.asarray(base, np.float64).reshape(-1)
    return _assemble(*_concat(parts), np.tile(np.arange(K), len(stages)), K, meta)


def _parse_hgb(model: Any) -> TreeEnsemble:
    predictors, n_in = model._predictors, int(model.n_features_in_)
    K = len(predictors[0])
    categories: dict[int, tuple] = {}
    orig = np.arange(n_in)  # column of the preprocessed X -> column of X
    if getattr(model, "_preprocessor", None) is not None:
        is_cat = np.asarray(model.is_categorical_, bool)  # encoded categoricals come first
        orig = np.concatenate([np.flatnonzero(is_cat), np.flatnonzero(~is_cat)])
        encoder = model._preprocessor.named_transformers_["encoder"]
        for col, cats in zip(np.flatnonzero(is_cat), encoder.categories_, strict=True):
            cats = list(cats)
            categories[int(col)] = tuple(cats[:-1] if cats and pd.isna(cats[-1]) else cats)
    known = model._bin_mapper.bin_thresholds_
    parts, cat_nodes, cat_lists, offset = [], [], [], 0
    for pred in chain.from_iterable(predictors):
        nodes = pred.nodes
        leaf = nodes["is_leaf"].astype(bool)
        parts.append(
            {
                "left": np.where(leaf, -1, nodes["left"].astype(np.int64)),
                "right": np.where(leaf, -1, nodes["right"].astype(np.int64)),
                "feature": orig[nodes["feature_idx"]],
                "threshold": _le(nodes["num_threshold"]),
                "missing_left": nodes["missing_go_to_left"],
                "value": nodes["value"],
                "cover": nodes["count"],  # as shap
            }
        )
        for node in np.flatnonzero(nodes["is_categorical"].astype(bool) & ~leaf):
            words = pred.raw_left_cat_bitsets[nodes["bitset_idx"][node]]
            left = np.flatnonzero(np.unpackbits(words.view(np.uint8), bitorder="little"))
            f = nodes["feature_idx"][node]
            if nodes["missing_go_to_left"][node]:  # codes the binner never saw act as missing
                unseen = np.setdiff1d(np.arange(len(categories[orig[f]])), known[f])
                left = np.union1d(left, unseen)
            cat_nodes.append(offset + node)
            cat_lists.append(left)
        offset += len(nodes)
    if hasattr(model, "classes_"):
        meta = _outputs(model, K, "binary" if K == 1 else "multiclass")
    else:
        log_link = type(getattr(model._loss, "link", None)).__name__ == "LogLink"
        meta = _outputs(model, 1, "other", "raw prediction", "exp" if log_link else "identity")
    meta |= {
        "base_offset": np.asarray(model._baseline_prediction, np.float64).reshape(-1),
        "n_features": n_in,
        "feature_names": _names_or_none(getattr(model, "feature_names_in_", None)),
        "categorical_encoding": InputEncoding(categories=categories, map_numbers=True),
    }
    tree_output = np.tile(np.arange(K), len(predictors))
    return _assemble(*_concat(parts), tree_output, K, meta, (cat_nodes, cat_lists))
