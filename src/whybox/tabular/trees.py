"""One flat array layout for tree ensembles, parsed without shap.

:func:`parse_tree_model` reads scikit-learn trees, forests, GradientBoosting and
HistGradientBoosting models, XGBoost (the booster's JSON) and LightGBM (``dump_model()``) into
a :class:`TreeEnsemble`: the nodes of all trees concatenated, with global child indices. Every
split follows one rule -- go left iff ``x < threshold`` (``<=`` rules are converted with
``nextafter``), NaN goes to ``missing_left``, and a categorical split sends the listed
category codes left -- so the TreeSHAP kernels need no per-library code.

Inputs are turned into the float64 matrix the kernels read by :meth:`TreeEnsemble.encode`,
with each library's own conventions: scikit-learn and XGBoost compare float32 inputs,
pandas categoricals become the category codes the model was trained on, and
HistGradientBoosting's own preprocessing is applied.

References
----------
Lundberg, S. M. et al. (2020). From local explanations to global understanding with
explainable AI for trees. Nature Machine Intelligence 2. (The tree representation of shap.)
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd
from numba import njit, prange

from .._validation import as_2d_input
from ..errors import InvalidInputError, InvalidParameterError, UnsupportedModelError
from ..models import model_type_name

__all__ = ["SUPPORTED", "TreeEnsemble", "goes_left", "parse_tree_model"]

SUPPORTED = (
    "scikit-learn DecisionTree*, RandomForest*, ExtraTrees*, GradientBoosting*, "
    "HistGradientBoosting*; XGBoost (XGBClassifier, XGBRegressor, Booster); LightGBM "
    "(LGBMClassifier, LGBMRegressor, Booster)"
)


@dataclass(frozen=True)
class TreeEnsemble:
    """Tree ensemble as flat arrays (N nodes over T trees, K outputs).

    Attributes
    ----------
    left, right : int64 (N,)
        Global indices of the children; -1 at leaves.
    feature : int64 (N,)
        Split feature (column of the encoded input); -1 at leaves.
    threshold : float64 (N,)
        Go left iff ``x < threshold``.
    missing_left : bool (N,)
        Where NaN goes.
    is_categorical : bool (N,)
    cat_start, cat_len : int64 (N,)
        The category codes going left are ``cat_values[cat_start : cat_start + cat_len]``.
    cat_values : float64 (M,)
    value : float64 (N, K)
        Node values (leaves: what the tree adds; internal nodes: informative only).
    cover : float64 (N,)
        Training cover of each node (weighted samples, or hessian sums for XGBoost).
    tree_start : int64 (T + 1,)
    tree_output : int64 (T,)
        Output column each tree adds to; -1: every column (forests of classifiers).
    base_offset : float64 (K,)
        Added to the sum over trees to give the raw output.
    """

    left: np.ndarray
    right: np.ndarray
    feature: np.ndarray
    threshold: np.ndarray
    missing_left: np.ndarray
    is_categorical: np.ndarray
    cat_start: np.ndarray
    cat_len: np.ndarray
    cat_values: np.ndarray
    value: np.ndarray
    cover: np.ndarray
    tree_start: np.ndarray
    tree_output: np.ndarray
    base_offset: np.ndarray
    n_features: int
    feature_names: list[str] | None
    output_names: list[str]
    raw_output: str
    link: str
    float32_inputs: bool = False
    categories: dict[int, list[Any]] = field(default_factory=dict)
    preprocess: Any = None
    column_order: np.ndarray | None = None

    @property
    def n_trees(self) -> int:
        return int(self.tree_start.shape[0] - 1)

    @property
    def n_outputs(self) -> int:
        return int(self.value.shape[1])

    @property
    def max_depth(self) -> int:
        return int(_max_depth(self.left, self.right, self.tree_start))

    def encode(self, X: Any) -> np.ndarray:
        """The float64 matrix (n, p) the kernels read, in the model's feature order."""
        X = as_2d_input(X)
        if self.preprocess is not None:
            Z = np.asarray(self.preprocess(X), dtype=np.float64)
            if self.column_order is not None:
                Z = Z[:, self.column_order]
            return np.ascontiguousarray(Z)
        if isinstance(X, pd.DataFrame):
            if self.feature_names is not None:
                missing = [c for c in self.feature_names if c not in X.columns]
                if missing:
                    raise InvalidInputError(
                        f"X lacks the model's columns {missing}; expected {self.feature_names}."
                    )
                X = X[self.feature_names]
            cols = []
            for j, c in enumerate(X.columns):
                s = X[c]
                if j in self.categories:
                    cats = pd.Index(self.categories[j])
                    vals = s.astype(object).to_numpy()
                    codes = cats.get_indexer(vals).astype(np.float64)
                    codes[pd.isna(vals) | (codes < 0)] = np.nan
                    cols.append(codes)
                elif isinstance(s.dtype, pd.CategoricalDtype):
                    codes = s.cat.codes.to_numpy().astype(np.float64)
                    codes[codes < 0] = np.nan
                    cols.append(codes)
                else:
                    try:
                        cols.append(s.to_numpy(dtype=np.float64, na_value=np.nan))
                    except (TypeError, ValueError) as exc:
                        raise InvalidInputError(
                            f"column {c!r} is not numeric and not categorical; trees need "
                            "numbers or pandas categoricals."
                        ) from exc
            Z = np.column_stack(cols) if cols else np.zeros((len(X), 0))
        else:
            Z = np.asarray(X, dtype=np.float64)
        if Z.shape[1] != self.n_features:
            raise InvalidInputError(
                f"X has {Z.shape[1]} features but the model was trained on {self.n_features}."
            )
        if self.float32_inputs:
            Z = Z.astype(np.float32).astype(np.float64)
        return np.ascontiguousarray(Z)

    def predict_raw(self, Z: np.ndarray) -> np.ndarray:
        """Raw output (n, K) of encoded inputs ``Z`` (from :meth:`encode`)."""
        return _predict(
            np.ascontiguousarray(Z, dtype=np.float64),
            self.left,
            self.right,
            self.feature,
            self.threshold,
            self.missing_left,
            self.is_categorical,
            self.cat_start,
            self.cat_len,
            self.cat_values,
            self.value,
            self.tree_start,
            self.tree_output,
            self.base_offset,
        )


@njit(cache=True, inline="always")
def goes_left(
    xv: float,
    node: int,
    threshold: np.ndarray,
    missing_left: np.ndarray,
    is_categorical: np.ndarray,
    cat_start: np.ndarray,
    cat_len: np.ndarray,
    cat_values: np.ndarray,
) -> bool:
    """The layout's one decision rule: does ``xv`` go to the left child of ``node``?"""
    if np.isnan(xv):
        return missing_left[node]
    if is_categorical[node]:
        s = cat_start[node]
        for i in range(s, s + cat_len[node]):
            if cat_values[i] == xv:
                return True
        return False
    return xv < threshold[node]


@njit(cache=True)
def _max_depth(left: np.ndarray, right: np.ndarray, tree_start: np.ndarray) -> int:
    depth = np.zeros(left.shape[0], np.int64)
    best = 0
    for t in range(tree_start.shape[0] - 1):
        stack = [tree_start[t]]
        depth[tree_start[t]] = 0
        while stack:
            i = stack.pop()
            if left[i] >= 0:
                depth[left[i]] = depth[i] + 1
                depth[right[i]] = depth[i] + 1
                stack.append(left[i])
                stack.append(right[i])
            elif depth[i] > best:
                best = depth[i]
    return best


@njit(parallel=True, cache=True)
def _predict(
    Z,
    left,
    right,
    feature,
    threshold,
    missing_left,
    is_categorical,
    cat_start,
    cat_len,
    cat_values,
    value,
    tree_start,
    tree_output,
    base_offset,
):
    n = Z.shape[0]
    K = value.shape[1]
    out = np.empty((n, K))
    for i in prange(n):
        for k in range(K):
            out[i, k] = base_offset[k]
        for t in range(tree_start.shape[0] - 1):
            node = tree_start[t]
            while left[node] >= 0:
                gl = goes_left(
                    Z[i, feature[node]],
                    node,
                    threshold,
                    missing_left,
                    is_categorical,
                    cat_start,
                    cat_len,
                    cat_values,
                )
                node = left[node] if gl else right[node]
            if tree_output[t] < 0:
                for k in range(K):
                    out[i, k] += value[node, k]
            else:
                out[i, tree_output[t]] += value[node, tree_output[t]]
    return out


class _Builder:
    """Collects trees (local child indices) into the global flat layout."""

    def __init__(self, K: int) -> None:
        self.K = K
        self.parts: dict[str, list[np.ndarray]] = {
            k: []
            for k in (
                "left",
                "right",
                "feature",
                "threshold",
                "missing_left",
                "is_categorical",
                "cat_start",
                "cat_len",
                "value",
                "cover",
            )
        }
        self.cat_values: list[float] = []
        self.starts = [0]
        self.outputs: list[int] = []

    def add(
        self,
        left: np.ndarray,
        right: np.ndarray,
        feature: np.ndarray,
        threshold: np.ndarray,
        missing_left: np.ndarray,
        value: np.ndarray,
        cover: np.ndarray,
        output: int,
        cats: dict[int, list[float]] | None = None,
    ) -> None:
        n = len(left)
        off = self.starts[-1]
        left = np.asarray(left, np.int64)
        right = np.asarray(right, np.int64)
        leaf = left < 0
        self.parts["left"].append(np.where(leaf, -1, left + off))
        self.parts["right"].append(np.where(leaf, -1, right + off))
        self.parts["feature"].append(np.where(leaf, -1, np.asarray(feature, np.int64)))
        self.parts["threshold"].append(np.asarray(threshold, np.float64))
        self.parts["missing_left"].append(np.asarray(missing_left, bool))
        is_cat = np.zeros(n, bool)
        cs = np.zeros(n, np.int64)
        cl = np.zeros(n, np.int64)
        for node, values in (cats or {}).items():
            is_cat[node] = True
            cs[node] = len(self.cat_values)
            cl[node] = len(values)
            self.cat_values.extend(float(v) for v in values)
        self.parts["is_categorical"].append(is_cat)
        self.parts["cat_start"].append(cs)
        self.parts["cat_len"].append(cl)
        v = np.asarray(value, np.float64)
        if v.ndim == 1:
            full = np.zeros((n, self.K))
            full[:, max(output, 0)] = v
            v = full
        self.parts["value"].append(v)
        self.parts["cover"].append(np.asarray(cover, np.float64))
        self.starts.append(off + n)
        self.outputs.append(output)

    def build(self, **kw: Any) -> TreeEnsemble:
        arr = {k: np.concatenate(v) if v else np.zeros(0) for k, v in self.parts.items()}
        arr["value"] = arr["value"].reshape(-1, self.K)
        return TreeEnsemble(
            cat_values=np.asarray(self.cat_values or [0.0], np.float64),
            tree_start=np.asarray(self.starts, np.int64),
            tree_output=np.asarray(self.outputs, np.int64),
            **arr,
            **kw,
        )


def _names(model: Any) -> list[str] | None:
    names = getattr(model, "feature_names_in_", None)
    return None if names is None else [str(c) for c in names]


# ------------------------------------------------------------------ scikit-learn
def _sk_tree(b: _Builder, tree: Any, scale: float, output: int, classes: bool) -> None:
    t = tree.tree_
    value = t.value[:, 0, :] if classes else t.value[:, 0, 0]
    missing = getattr(t, "missing_go_to_left", None)
    if missing is None:
        # no missing-value support: NaN compares false with <=, so it goes right
        missing = np.zeros(t.node_count, bool)
    b.add(
        t.children_left,
        t.children_right,
        t.feature,
        np.nextafter(t.threshold, np.inf),  # x <= thr  <=>  x < nextafter(thr)
        np.asarray(missing, bool),
        value * scale,
        t.weighted_n_node_samples,
        output,
    )


def _parse_sklearn(model: Any) -> TreeEnsemble:
    name = type(model).__name__
    if name.startswith("HistGradientBoosting"):
        return _parse_hgb(model)
    classes = getattr(model, "classes_", None)
    common = {
        "n_features": int(model.n_features_in_),
        "feature_names": _names(model),
        "float32_inputs": True,
    }
    if name.startswith("GradientBoosting"):
        est = model.estimators_
        K = est.shape[1]
        b = _Builder(K)
        for stage in est:
            for k, tree in enumerate(stage):
                _sk_tree(b, tree, model.learning_rate, k, False)
        x0 = np.zeros((1, model.n_features_in_))
        base = np.asarray(model._raw_predict_init(x0), float).reshape(-1)
        if classes is not None:
            outs = [str(classes[1])] if K == 1 else [str(c) for c in classes]
            raw = "log-odds margin" if K == 1 else "multinomial log-odds margin"
            link = "logistic" if K == 1 else "softmax"
        else:
            outs, raw, link = ["prediction"], "prediction", "identity"
        return b.build(base_offset=base, output_names=outs, raw_output=raw, link=link, **common)
    trees = getattr(model, "estimators_", None)
    if trees is None:
        trees = [model]
    if classes is not None:
        K = len(classes)
        b = _Builder(K)
        for tree in trees:
            v = tree.tree_.value[:, 0, :]
            v = v / np.maximum(v.sum(axis=1, keepdims=True), 1e-300)  # leaf class fractions
            t = tree.tree_
            missing = getattr(t, "missing_go_to_left", None)
            b.add(
                t.children_left,
                t.children_right,
                t.feature,
                np.nextafter(t.threshold, np.inf),
                np.zeros(t.node_count, bool) if missing is None else np.asarray(missing, bool),
                v / len(trees),
                t.weighted_n_node_samples,
                -1,
            )
        return b.build(
            base_offset=np.zeros(K),
            output_names=[str(c) for c in classes],
            raw_output="probability (averaged over trees)",
            link="identity",
            **common,
        )
    b = _Builder(1)
    for tree in trees:
        _sk_tree(b, tree, 1.0 / len(trees), 0, False)
    return b.build(
        base_offset=np.zeros(1),
        output_names=["prediction"],
        raw_output="prediction (averaged over trees)" if len(trees) > 1 else "prediction",
        link="identity",
        **common,
    )


def _parse_hgb(model: Any) -> TreeEnsemble:
    predictors = model._predictors
    K = len(predictors[0])
    b = _Builder(K)
    pre = getattr(model, "_preprocessor", None)
    n_in = int(model.n_features_in_)
    order = None
    if pre is not None:
        # the preprocessor puts the categorical columns first: map back to X's order
        out_order: list[int] = []
        for _, _, cols in pre.transformers_:
            if isinstance(cols, slice):
                cols = list(range(n_in))[cols]
            idx = (
                [
                    int(c) if not isinstance(c, str) else list(model.feature_names_in_).index(c)
                    for c in np.atleast_1d(cols)
                ]
                if len(np.atleast_1d(cols))
                else []
            )
            if np.asarray(cols).dtype == bool:
                idx = list(np.flatnonzero(cols))
            out_order.extend(idx)
        order = np.argsort(np.asarray(out_order))  # column of X j sits at transformed pos
        pos_of = {orig: pos for pos, orig in enumerate(out_order)}
    for it in predictors:
        for k, pred in enumerate(it):
            nodes = pred.nodes
            feat = nodes["feature_idx"].astype(np.int64)
            if pre is not None:
                inv = {pos: orig for orig, pos in pos_of.items()}
                feat = np.array([inv[int(f)] for f in feat], np.int64)
            left = np.where(nodes["is_leaf"], -1, nodes["left"].astype(np.int64))
            right = np.where(nodes["is_leaf"], -1, nodes["right"].astype(np.int64))
            cats: dict[int, list[float]] = {}
            bitsets = pred.raw_left_cat_bitsets
            for node in np.flatnonzero(nodes["is_categorical"] & ~nodes["is_leaf"]):
                words = bitsets[nodes["bitset_idx"][node]]
                cats[int(node)] = [
                    float(32 * w + bit)
                    for w in range(len(words))
                    for bit in range(32)
                    if (int(words[w]) >> bit) & 1
                ]
            b.add(
                left,
                right,
                feat,
                np.nextafter(nodes["num_threshold"], np.inf),
                nodes["missing_go_to_left"].astype(bool),
                nodes["value"],
                nodes["count"].astype(np.float64),
                k,
                cats,
            )
    base = np.asarray(model._baseline_prediction, float).reshape(-1)
    classes = getattr(model, "classes_", None)
    if classes is not None:
        outs = [str(classes[1])] if K == 1 else [str(c) for c in classes]
        raw = "log-odds margin" if K == 1 else "multinomial log-odds margin"
        link = "logistic" if K == 1 else "softmax"
    else:
        outs, raw, link = ["prediction"], "raw prediction", "identity"

    def preprocess(X: Any) -> np.ndarray:
        names_in = getattr(model, "feature_names_in_", None)
        if isinstance(X, pd.DataFrame) and names_in is not None:
            missing = [c for c in names_in if c not in X.columns]
            if missing:
                raise InvalidInputError(
                    f"X lacks the model's columns {missing}; expected {list(names_in)}."
                )
            X = X[list(names_in)]
        if pre is None:
            return (
                X.to_numpy(dtype=float, na_value=np.nan)
                if isinstance(X, pd.DataFrame)
                else np.asarray(X, float)
            )
        return np.asarray(pre.transform(X), float)

    return b.build(
        base_offset=base,
        output_names=outs,
        raw_output=raw,
        link=link,
        n_features=n_in,
        feature_names=_names(model),
        preprocess=preprocess,
        column_order=None if order is None else np.asarray(order),
    )


# ------------------------------------------------------------------ XGBoost
def _parse_xgboost(model: Any) -> TreeEnsemble:
    booster = model.get_booster() if hasattr(model, "get_booster") else model
    j = json.loads(booster.save_raw("json"))
    learner = j["learner"]
    objective = learner["objective"]["name"]
    gb = learner["gradient_booster"]
    if gb.get("name") not in (None, "gbtree", "dart"):
        raise UnsupportedModelError(
            f"XGBoost booster {gb.get('name')!r} has no trees; TreeShap needs gbtree or dart."
        )
    m = gb["model"] if "model" in gb else gb["gbtree"]["model"]
    mparam = learner["learner_model_param"]
    K = max(1, int(mparam.get("num_class", "0") or 0), int(mparam.get("num_target", "1")))
    bs = [float(v) for v in str(mparam["base_score"]).strip("[]").split(",")]
    if objective in ("binary:logistic", "reg:logistic"):
        base = np.log(np.asarray(bs) / (1 - np.asarray(bs)))
    elif objective in ("count:poisson", "reg:gamma", "reg:tweedie", "survival:cox"):
        base = np.log(np.asarray(bs))
    else:
        base = np.asarray(bs)
    base = np.broadcast_to(base, (K,)).astype(float).copy()
    weights = gb.get("weight_drop")
    seg_of = m.get("cats", {}).get("feature_segments") if isinstance(m.get("cats"), dict) else None
    b = _Builder(K)
    info = m["tree_info"]
    for ti, tree in enumerate(m["trees"]):
        left = np.asarray(tree["left_children"], np.int64)
        right = np.asarray(tree["right_children"], np.int64)
        leaf = left < 0
        thr = np.asarray(tree["split_conditions"], np.float32).astype(np.float64)
        w = 1.0 if weights is None else float(weights[ti])
        value = np.where(leaf, thr, np.asarray(tree["base_weights"], np.float64)) * w
        cats: dict[int, list[float]] = {}
        if any(tree.get("split_type", [])):
            seg, size, allcats = (
                tree["categories_segments"],
                tree["categories_sizes"],
                tree["categories"],
            )
            feats = tree["split_indices"]
            for a, node in enumerate(tree["categories_nodes"]):
                right_cats = {int(c) for c in allcats[seg[a] : seg[a] + size[a]]}
                j_ = int(feats[node])
                if seg_of and len(seg_of) > j_ + 1 and seg_of[j_ + 1] > seg_of[j_]:
                    n_cat = int(seg_of[j_ + 1] - seg_of[j_])
                else:
                    n_cat = max(right_cats) + 1
                # XGBoost sends the listed categories right; the layout lists the left ones
                cats[int(node)] = [float(c) for c in range(n_cat) if c not in right_cats]
        b.add(
            left,
            right,
            tree["split_indices"],
            thr,
            np.asarray(tree["default_left"], bool),
            value,
            tree["sum_hessian"],
            int(info[ti]) if K > 1 else 0,
            cats,
        )
    names = booster.feature_names
    link = {
        "binary:logistic": "logistic",
        "reg:logistic": "logistic",
        "multi:softprob": "softmax",
        "multi:softmax": "softmax",
    }.get(objective, "identity")
    if objective.startswith("multi"):
        outs, raw = [str(k) for k in range(K)], "multinomial log-odds margin"
    elif link == "logistic":
        outs, raw = ["1"], "log-odds margin"
    else:
        outs, raw = [f"output {k}" for k in range(K)] if K > 1 else ["prediction"], "margin"
    return b.build(
        base_offset=base,
        output_names=outs,
        raw_output=raw,
        link=link,
        n_features=int(booster.num_features()),
        feature_names=None if names is None else list(names),
        float32_inputs=True,
    )


# ------------------------------------------------------------------ LightGBM
def _parse_lightgbm(model: Any) -> TreeEnsemble:
    booster = model.booster_ if hasattr(model, "booster_") else model
    d = booster.dump_model()
    K = int(d.get("num_tree_per_iteration", 1))
    b = _Builder(K)
    n_iter = max(1, len(d["tree_info"]) // K)
    scale = 1.0 / n_iter if d.get("average_output") else 1.0
    for ti, tree in enumerate(d["tree_info"]):
        left, right, feat, thr, miss, val, cov = [], [], [], [], [], [], []
        cats: dict[int, list[float]] = {}
        stack = [(tree["tree_structure"], -1, 0)]
        while stack:
            node, parent, side = stack.pop()
            i = len(left)
            if parent >= 0:
                (left if side == 0 else right)[parent] = i
            left.append(-1)
            right.append(-1)
            if "split_index" in node:
                feat.append(int(node["split_feature"]))
                mt = node.get("missing_type", "None")
                default_left = bool(node.get("default_left", False))
                if node["decision_type"] == "==":
                    thr.append(0.0)
                    cats[i] = [float(c) for c in str(node["threshold"]).split("||")]
                    miss.append(False)  # LightGBM sends missing categories right
                else:
                    t = float(node["threshold"])
                    thr.append(np.nextafter(t, np.inf))
                    if mt == "NaN":
                        miss.append(default_left)
                    elif mt == "Zero":
                        if default_left != (0.0 <= t):
                            raise UnsupportedModelError(
                                "this LightGBM model treats zeros as missing with a default "
                                "direction different from the threshold's; not supported."
                            )
                        miss.append(default_left)
                    else:  # NaN is read as 0.0
                        miss.append(0.0 <= t)
                val.append(float(node.get("internal_value", 0.0)) * scale)
                cov.append(float(node.get("internal_count", 0)))
                stack.append((node["right_child"], i, 1))
                stack.append((node["left_child"], i, 0))
            else:
                feat.append(-1)
                thr.append(0.0)
                miss.append(False)
                val.append(float(node["leaf_value"]) * scale)
                cov.append(float(node.get("leaf_count", 0)))
        b.add(
            np.array(left),
            np.array(right),
            np.array(feat),
            np.array(thr),
            np.array(miss),
            np.array(val),
            np.array(cov),
            ti % K if K > 1 else 0,
            cats,
        )
    objective = str(d.get("objective", ""))
    names = [str(n) for n in booster.feature_name()]
    if all(n == f"Column_{j}" for j, n in enumerate(names)):
        names = None
    if objective.startswith("binary"):
        outs, raw, link = ["1"], "log-odds margin (raw score)", "logistic"
    elif objective.startswith(("multiclass", "softmax")):
        outs, raw, link = [str(k) for k in range(K)], "raw score per class", "softmax"
    else:
        outs, raw, link = ["prediction"], "raw score", "identity"
    cat_map: dict[int, list[Any]] = {}
    pc = getattr(booster, "pandas_categorical", None)
    cat_feats = [int(c) for c in d.get("feature_infos", {}) and []]
    del cat_feats
    if pc:
        cat_cols = _lgb_categorical_columns(booster)
        for col, cats_ in zip(cat_cols, pc, strict=False):
            cat_map[col] = list(cats_)
    return b.build(
        base_offset=np.zeros(K),
        output_names=outs,
        raw_output=raw,
        link=link,
        n_features=int(booster.num_feature()),
        feature_names=names,
        categories=cat_map,
    )


def _lgb_categorical_columns(booster: Any) -> list[int]:
    params = booster.params or {}
    cats = params.get("categorical_feature") or params.get("categorical_column")
    if cats:
        if isinstance(cats, str):
            cats = [c for c in cats.split(",") if c]
        names = booster.feature_name()
        return [int(c) if str(c).isdigit() else names.index(str(c)) for c in cats]
    d = booster.dump_model()
    infos = d.get("feature_infos", {})
    names = booster.feature_name()
    return [
        j
        for j, n in enumerate(names)
        if ":" not in str(infos.get(n, {}).get("values", ""))
        and infos.get(n, {}).get("values") is not None
    ]


# ------------------------------------------------------------------ dispatch
def parse_tree_model(model: Any) -> TreeEnsemble:
    """Parse a fitted tree model into a :class:`TreeEnsemble`.

    Raises
    ------
    UnsupportedModelError
        For anything else, listing what is supported.
    """
    mods = [c.__module__ for c in type(model).__mro__]
    try:
        if any(m.startswith("xgboost") for m in mods):
            return _parse_xgboost(model)
        if any(m.startswith("lightgbm") for m in mods):
            return _parse_lightgbm(model)
        if any(m.startswith("sklearn") for m in mods) and (
            hasattr(model, "estimators_")
            or hasattr(model, "tree_")
            or hasattr(model, "_predictors")
        ):
            return _parse_sklearn(model)
    except (AttributeError, KeyError) as exc:
        raise UnsupportedModelError(
            f"could not read the trees of {model_type_name(model)} ({exc}); is it fitted?"
        ) from exc
    if any(m.startswith("sklearn") for m in mods) and type(model).__name__ in (
        "RandomForestClassifier",
        "RandomForestRegressor",
        "GradientBoostingClassifier",
        "GradientBoostingRegressor",
        "HistGradientBoostingClassifier",
        "HistGradientBoostingRegressor",
        "DecisionTreeClassifier",
        "DecisionTreeRegressor",
        "ExtraTreesClassifier",
        "ExtraTreesRegressor",
    ):
        raise InvalidParameterError(
            f"{model_type_name(model)} is not fitted: fit it before explaining it."
        )
    raise UnsupportedModelError(
        f"TreeShap cannot read a model of type {model_type_name(model)}. Supported: "
        f"{SUPPORTED}. For other models use KernelShap, PermutationShap or ExactShap."
    )
