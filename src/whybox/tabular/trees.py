"""One flat array layout for tree ensembles, parsed without shap.

:func:`parse_tree_model` reads scikit-learn trees and forests (DecisionTree*, ExtraTree(s)*,
RandomForest*, IsolationForest), GradientBoosting*, HistGradientBoosting*, XGBoost (the
booster's JSON), LightGBM (``dump_model()``) and, when installed, CatBoost (its JSON) into a
:class:`TreeEnsemble`: the nodes of all trees concatenated with global child indices, every
tree stored parents-before-children (``left[i] > i``) without unreachable nodes.

One decision rule for every library (:func:`goes_left`)::

    x is NaN            -> missing_left[node]
    categorical node    -> left iff x is one of cat_values[cat_start : cat_start + cat_len]
    numerical node      -> left iff x < threshold[node]

Each library's own rules are folded into the arrays and into :meth:`TreeEnsemble.encode`:

* ``x <= t`` splits (scikit-learn, LightGBM, CatBoost) store ``nextafter(t, +inf)``; ``encode``
  clips +-inf to the largest finite float so that infinite thresholds keep their meaning.
* scikit-learn trees, XGBoost and CatBoost compare float32 inputs: ``input_dtype`` is
  ``"float32"`` and ``encode`` rounds inputs to float32 (stored as float64), so the float64
  comparison with the float32 threshold or the nextafter of the float64 one is exact.
* XGBoost partition splits send the *listed* categories right: those nodes' children are
  swapped, so listed categories go left and every other code (unseen, negative) right.
* LightGBM reads NaN as 0.0 where a split has no missing type (``missing_left = 0 <= t``),
  reads ``|x| <= 1e-35`` as 0.0, and with ``zero_as_missing`` sends zeros the default way
  (``encode`` turns them into NaN); category values are truncated to integers and negative
  ones go right (``encode`` makes them NaN). XGBoost truncates codes too.
* Unseen categories: HistGradientBoosting and LightGBM treat them as missing; XGBoost 3.3
  refuses them (3.1-3.2 silently read them as another category, dmlc/xgboost#12189), and so
  does ``encode``.

References
----------
Lundberg, S. M. et al. (2020). From local explanations to global understanding with
explainable AI for trees. Nature Machine Intelligence 2, 56-67.
scikit-learn: ``sklearn/tree/_tree.pyx``, ``ensemble/_hist_gradient_boosting/_predictor.pyx``.
XGBoost: "Introduction to Model IO" (JSON schema); "Categorical Data" tutorial.
LightGBM: ``include/LightGBM/tree.h`` (``NumericalDecision``, ``CategoricalDecision``).
CatBoost: JSON model format (``save_model(format="json")``), oblivious trees.
"""

from __future__ import annotations

import json
import os
import re
import tempfile
from dataclasses import dataclass, field
from itertools import chain, pairwise
from typing import Any

import numpy as np
import pandas as pd
from numba import njit, prange

from .._validation import as_2d_input
from ..errors import InvalidInputError, InvalidParameterError, UnsupportedModelError
from ..models import _has_base, model_type_name

__all__ = ["SUPPORTED", "InputEncoding", "TreeEnsemble", "goes_left", "parse_tree_model"]

SUPPORTED = (
    "scikit-learn DecisionTree*, ExtraTree(s)*, RandomForest*, IsolationForest, "
    "GradientBoosting*, HistGradientBoosting*; XGBoost (XGBClassifier, XGBRegressor, "
    "XGBRanker, Booster; gbtree or dart); LightGBM (LGBMClassifier, LGBMRegressor, LGBMRanker, "
    "Booster); CatBoost (CatBoostClassifier, CatBoostRegressor, CatBoost) with numerical "
    "features, when catboost is installed"
)
_MAX = float(np.finfo(np.float64).max)  # encode maps +-inf to +-_MAX
_LGB_ZERO = float(np.float32(1e-35))  # LightGBM's kZeroThreshold
_XGB_MAX_CAT = 16777216.0  # XGBoost reads codes >= 2**24 as invalid
_SKLEARN = (
    "DecisionTreeClassifier DecisionTreeRegressor ExtraTreeClassifier ExtraTreeRegressor "
    "RandomForestClassifier RandomForestRegressor ExtraTreesClassifier ExtraTreesRegressor "
    "IsolationForest GradientBoostingClassifier GradientBoostingRegressor "
    "HistGradientBoostingClassifier HistGradientBoostingRegressor"
).split()
_LIBRARIES = {"xgboost": ("Booster", "XGBModel"), "lightgbm": ("Booster", "LGBMModel"),
              "catboost": ("CatBoost",)}  # fmt: skip
_WALK = "left right feature threshold missing_left is_categorical cat_start cat_len cat_values"


@dataclass(frozen=True)
class InputEncoding:
    """What :meth:`TreeEnsemble.encode` does to inputs besides reading numbers as float64.

    Attributes
    ----------
    categories : dict[int, tuple]
        Column -> the model's categories; a value's code is its position, NaN stays NaN.
    map_numbers : bool
        Map numeric columns through ``categories`` too (HistGradientBoosting ordinal-encodes
        its categorical columns) instead of reading them as codes (XGBoost).
    unknown : {"nan", "error"}
        What a value missing from ``categories`` becomes.
    dtype_categories : tuple of tuples or None
        LightGBM's ``pandas_categorical``: the i-th categorical-dtype column of a DataFrame is
        coded against the i-th list, as LightGBM does.
    dtype_codes : bool
        Other categorical-dtype columns become their pandas codes (XGBoost) rather than
        their values.
    code_rule : {"none", "xgboost", "lightgbm"}
        How numbers in ``code_columns`` are read as category codes.
    code_columns : tuple of int
    missing_value : float or None
        A value read as missing besides NaN (XGBoost's ``missing``).
    zero_threshold : float
        ``|x| <= zero_threshold`` reads as 0.0 (LightGBM).
    zero_as_missing : tuple of int
        Columns where 0.0 reads as missing (LightGBM's ``zero_as_missing``).
    """

    categories: dict[int, tuple] = field(default_factory=dict)
    map_numbers: bool = False
    unknown: str = "nan"
    dtype_categories: tuple | None = None
    dtype_codes: bool = False
    code_rule: str = "none"
    code_columns: tuple = ()
    missing_value: float | None = None
    zero_threshold: float = 0.0
    zero_as_missing: tuple = ()


@dataclass(frozen=True, eq=False, repr=False)
class TreeEnsemble:
    """Tree ensemble as flat arrays: N nodes over T trees, K outputs, M category codes.

    Attributes
    ----------
    left, right : int64 (N,)
        Global indices of the children, -1 at leaves; ``left[i] > i`` and ``right[i] > i``.
    feature : int64 (N,)
        Split column of the encoded input; -1 at leaves.
    threshold : float64 (N,)
        Numerical nodes go left iff ``x < threshold``; 0.0 at leaves and categorical nodes.
    missing_left : bool (N,)
        Where NaN goes (False at leaves).
    is_categorical : bool (N,)
    cat_start, cat_len : int64 (N,)
        A categorical node sends the codes ``cat_values[cat_start : cat_start + cat_len]``
        (sorted ascending) left and every other non-NaN value right; 0 at other nodes.
    cat_values : float64 (M,)
        Category codes as :meth:`encode` writes them; at least one (dummy) entry.
    value : float64 (N, K)
        Leaves: what the tree adds to the raw output, already scaled (learning rate, 1/n_trees
        of forests, DART weights, CatBoost scale). Internal nodes: the cover-weighted mean
        ``(c_l v_l + c_r v_r) / (c_l + c_r)`` of the children (plain mean if both covers are
        0). A tree with ``tree_output[t] = k >= 0`` has zeros outside column k.
    cover : float64 (N,)
        The library's node cover, as shap and the library's own TreeSHAP use it: scikit-learn
        ``weighted_n_node_samples``, HistGradientBoosting ``count``, XGBoost ``sum_hessian``,
        LightGBM ``internal_count`` / ``leaf_count``, CatBoost leaf weights summed upwards.
    tree_start : int64 (T + 1,)
        Tree t owns nodes ``tree_start[t] : tree_start[t + 1]``; its root is ``tree_start[t]``.
    tree_output : int64 (T,)
        Output column the tree adds to; -1: every column (``value[leaf, :]``).
    base_offset : float64 (K,)
        ``raw output = base_offset + sum over trees of value[leaf reached]``.
    max_depth : int
        Depth of the deepest leaf (root at depth 0).
    n_features : int
    feature_names : list of str or None
        Columns the model was fitted on; :meth:`encode` reorders DataFrames by them.
    output_names : list of str
    raw_output : str
        What the raw output is ("log-odds margin", "probability (averaged over trees)", ...).
    link : {"identity", "logistic", "softmax", "exp"}
        Maps the raw output to the model's probabilities / predictions ("logistic" element-wise;
        "identity" also where no exact link applies, as ``raw_output`` then says).
    input_dtype : {"float64", "float32"}
        Precision of the library's comparisons; :meth:`encode` applies it.
    categorical_encoding : InputEncoding
        Everything else :meth:`encode` needs.
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
    max_depth: int
    n_features: int
    feature_names: list[str] | None
    output_names: list[str]
    raw_output: str
    link: str
    input_dtype: str = "float64"
    categorical_encoding: InputEncoding = field(default_factory=InputEncoding)

    @property
    def n_trees(self) -> int:
        return int(self.tree_start.shape[0] - 1)

    @property
    def n_outputs(self) -> int:
        return int(self.value.shape[1])

    def __repr__(self) -> str:
        return (
            f"TreeEnsemble(n_trees={self.n_trees}, n_nodes={len(self.left)}, "
            f"max_depth={self.max_depth}, n_features={self.n_features}, "
            f"outputs={self.output_names}, raw_output={self.raw_output!r}, link={self.link!r})"
        )

    def encode(self, X: Any) -> np.ndarray:
        """The float64 matrix the kernels read: model column order, codes, NaN for missing.

        Parameters
        ----------
        X : array-like (n, p) or DataFrame
            DataFrames are reordered by ``feature_names`` when known (extra columns are
            ignored); pandas categoricals and strings become the model's category codes.

        Returns
        -------
        ndarray, float64 (n, n_features), C-contiguous
        """
        X = as_2d_input(X)
        enc = self.categorical_encoding
        if isinstance(X, pd.DataFrame):
            X = _select_columns(X, self.feature_names, self.n_features)
            cols = [(X.columns[j], X.iloc[:, j]) for j in range(X.shape[1])]
        else:
            X = np.asarray(X)
            if X.shape[1] != self.n_features:
                raise InvalidInputError(
                    f"X has {X.shape[1]} features but the model was fitted on "
                    f"{self.n_features}; pass the same columns, in the same order."
                )
            cols = [(j, X[:, j]) for j in range(X.shape[1])]
        Z = np.empty((len(X), self.n_features), np.float64)
        n_dtype = 0  # LightGBM: categorical-dtype columns seen so far
        for j, (name, s) in enumerate(cols):
            is_cat = isinstance(s.dtype, pd.CategoricalDtype)
            numeric = s.dtype.kind in "biuf" and not is_cat
            if j in enc.categories and (enc.map_numbers or not numeric):
                Z[:, j] = _codes(s, enc.categories[j], enc.unknown, name)
            elif is_cat and enc.dtype_categories is not None:
                if n_dtype < len(enc.dtype_categories):
                    cats = list(enc.dtype_categories[n_dtype])
                    s = s if list(s.cat.categories) == cats else s.cat.set_categories(cats)
                    Z[:, j] = np.where(s.cat.codes < 0, np.nan, s.cat.codes)
                n_dtype += 1
            elif is_cat and enc.dtype_codes:
                Z[:, j] = np.where(s.cat.codes < 0, np.nan, s.cat.codes)
            else:
                Z[:, j] = _numeric(s, name)
        if enc.dtype_categories is not None and n_dtype != len(enc.dtype_categories):
            raise InvalidInputError(
                f"X has {n_dtype} pandas categorical column(s) but the LightGBM model was "
                f"trained with {len(enc.dtype_categories)}; give X the dtypes of the training "
                "data (LightGBM matches categorical columns by position)."
            )
        return self._library_rules(Z)

    def _library_rules(self, Z: np.ndarray) -> np.ndarray:
        enc = self.categorical_encoding
        if self.input_dtype == "float32":
            with np.errstate(over="ignore"):
                Z = Z.astype(np.float32).astype(np.float64)
        np.clip(Z, -_MAX, _MAX, out=Z)  # +-inf: see _le and _lt
        if enc.missing_value is not None and not np.isnan(enc.missing_value):
            Z[Z == float(np.float32(enc.missing_value))] = np.nan
        if enc.zero_threshold > 0:
            Z[np.abs(Z) <= enc.zero_threshold] = 0.0
        with np.errstate(invalid="ignore"):
            for j in enc.code_columns:
                v = Z[:, j]
                if enc.code_rule == "xgboost":  # int cast; invalid codes match no category
                    Z[:, j] = np.where((v < 0) | (v >= _XGB_MAX_CAT), -1.0, np.trunc(v))
                elif enc.code_rule == "lightgbm":  # int cast; negative codes go right like NaN
                    Z[:, j] = np.where((v <= -1) | (v >= 2.0**31), np.nan, np.trunc(v) + 0.0)
        for j in enc.zero_as_missing:
            Z[Z[:, j] == 0.0, j] = np.nan
        return np.ascontiguousarray(Z)

    def predict_raw(self, Z: np.ndarray) -> np.ndarray:
        """Raw output (n, K) of encoded rows ``Z`` (from :meth:`encode`)."""
        Z = np.ascontiguousarray(Z, dtype=np.float64)
        walk = [getattr(self, a) for a in _WALK.split()]
        args = (self.tree_start, self.value, self.tree_output, self.base_offset)
        return _predict(Z, *walk, *args)

    def apply(self, Z: np.ndarray) -> np.ndarray:
        """Global index (n, T) of the leaf each encoded row reaches in each tree."""
        walk = [getattr(self, a) for a in _WALK.split()]
        return _apply(np.ascontiguousarray(Z, dtype=np.float64), *walk, self.tree_start)


def _select_columns(X: pd.DataFrame, names: list[str] | None, p: int) -> pd.DataFrame:
    if names is None:
        if X.shape[1] != p:
            raise InvalidInputError(
                f"X has {X.shape[1]} columns but the model was fitted on {p} unnamed features."
            )
        return X
    have = [str(c) for c in X.columns]
    if have == names:
        return X
    pos: dict[str, int] = {}
    for i, c in enumerate(have):
        pos.setdefault(c, i)
        pos.setdefault(re.sub(r"\s", "_", c), i)  # LightGBM renames "a b" to "a_b"
    missing = [c for c in names if c not in pos]
    if missing:
        raise InvalidInputError(
            f"X lacks the model's columns {missing}. The model was fitted on {names}; "
            "rename or add these columns."
        )
    dup = sorted({c for c in names if have.count(c) > 1})
    if dup:
        raise InvalidInputError(f"X has duplicated columns {dup}; each feature must appear once.")
    return X.iloc[:, [pos[c] for c in names]]


def _numeric(col: Any, name: Any) -> np.ndarray:
    try:
        if isinstance(col, pd.Series):
            if isinstance(col.dtype, pd.CategoricalDtype):
                col = col.astype(object)
            return col.to_numpy(dtype=np.float64, na_value=np.nan)
        return np.asarray(col, dtype=np.float64)
    except (TypeError, ValueError):
        raise InvalidInputError(
            f"column {name!r} holds values that are not numbers and the model has no "
            "categories for it; pass numbers, or the categoricals the model was fitted on."
        ) from None


def _codes(col: Any, cats: tuple, unknown: str, name: Any) -> np.ndarray:
    """Positions of the values of ``col`` in ``cats``; NaN for missing and unknown values."""
    index = pd.Index(list(cats))
    if isinstance(col, pd.Series) and isinstance(col.dtype, pd.CategoricalDtype):
        raw = col.cat.codes.to_numpy()
        codes = np.where(raw >= 0, index.get_indexer(col.cat.categories)[np.maximum(raw, 0)], -1)
        values = col.astype(object).to_numpy()
    else:
        values = np.asarray(col, dtype=object)
        codes = index.get_indexer(values)
    bad = (codes < 0) & ~pd.isna(values)
    if bad.any() and unknown == "error":
        seen = list(dict.fromkeys(values[bad].tolist()))
        raise InvalidInputError(
            f"column {name!r} has categories the model was not trained on: {seen[:5]}"
            f"{' ...' if len(seen) > 5 else ''} (known: {list(cats)[:20]}). XGBoost refuses "
            "unseen categories; replace them by NaN (missing) or by a known category."
        )
    return np.where(codes < 0, np.nan, codes.astype(np.float64))


# ------------------------------------------------------------------ numba kernels
@njit(cache=True, inline="always")
def goes_left(xv, node, threshold, missing_left, is_categorical, cat_start, cat_len, cat_values):
    """The layout's one decision rule: does the value ``xv`` go to the left child of ``node``?"""
    if np.isnan(xv):
        return missing_left[node]
    if is_categorical[node]:
        for i in range(cat_start[node], cat_start[node] + cat_len[node]):
            if cat_values[i] == xv:
                return True
        return False
    return xv < threshold[node]


@njit(cache=True, inline="always")
def _leaf(Z, i, root, left, right, feature, threshold, missing_left, is_cat, cs, cl, cv):
    node = root
    while left[node] >= 0:
        if goes_left(Z[i, feature[node]], node, threshold, missing_left, is_cat, cs, cl, cv):
            node = left[node]
        else:
            node = right[node]
    return node


@njit(parallel=True, cache=True)
def _predict(Z, left, right, feature, threshold, missing_left, is_cat, cs, cl, cv, tree_start,
             value, tree_output, base_offset):  # fmt: skip
    n, K = Z.shape[0], value.shape[1]
    out = np.empty((n, K))
    for i in prange(n):
        for k in range(K):
            out[i, k] = base_offset[k]
        for t in range(tree_start.shape[0] - 1):
            node = _leaf(Z, i, tree_start[t], left, right, feature, threshold, missing_left,
                         is_cat, cs, cl, cv)  # fmt: skip
            col = tree_output[t]
            if col < 0:
                for k in range(K):
                    out[i, k] += value[node, k]
            else:
                out[i, col] += value[node, col]
    return out


@njit(parallel=True, cache=True)
def _apply(Z, left, right, feature, threshold, missing_left, is_cat, cs, cl, cv, tree_start):
    T = tree_start.shape[0] - 1
    out = np.empty((Z.shape[0], T), np.int64)
    for i in prange(Z.shape[0]):
        for t in range(T):
            out[i, t] = _leaf(Z, i, tree_start[t], left, right, feature, threshold,
                              missing_left, is_cat, cs, cl, cv)  # fmt: skip
    return out


@njit(cache=True)
def _finalize(left, right, cover, value, tree_start):
    """Fill internal values bottom-up and return the max depth; -1 if a tree is not stored
    parents-before-children with every node reachable (then see :func:`_preorder`)."""
    depth = np.full(left.shape[0], -1, np.int64)
    best = 0
    for t in range(tree_start.shape[0] - 1):
        s, e = tree_start[t], tree_start[t + 1]
        depth[s] = 0
        for i in range(s, e):
            if depth[i] < 0:
                return -1
            if left[i] >= 0:
                if min(left[i], right[i]) <= i or max(left[i], right[i]) >= e:
                    return -1
                depth[left[i]] = depth[right[i]] = depth[i] + 1
            best = max(best, depth[i])
        for i in range(e - 1, s - 1, -1):
            if left[i] >= 0:
                a, b = left[i], right[i]
                tot = cover[a] + cover[b]
                for k in range(value.shape[1]):
                    if tot > 0:
                        value[i, k] = (cover[a] * value[a, k] + cover[b] * value[b, k]) / tot
                    else:
                        value[i, k] = 0.5 * (value[a, k] + value[b, k])
    return best


@njit(cache=True)
def _preorder(left, right, tree_start):
    """Old index of each new node: every tree's reachable nodes in depth-first order."""
    order = np.empty(left.shape[0], np.int64)
    stack = np.empty(left.shape[0] + 1, np.int64)
    m = 0
    for t in range(tree_start.shape[0] - 1):
        top, stack[0] = 0, tree_start[t]
        while top >= 0:
            node = stack[top]
            top -= 1
            order[m] = node
            m += 1
            if left[node] >= 0:
                stack[top + 1], stack[top + 2] = right[node], left[node]
                top += 2
    return order[:m]


# ------------------------------------------------------------------ assembling
def _le(t: Any) -> np.ndarray:
    """Threshold for ``x < threshold`` equivalent to ``x <= t`` (inputs clipped to finite)."""
    with np.errstate(over="ignore"):
        return np.nextafter(np.clip(np.asarray(t, np.float64), -_MAX, _MAX), np.inf)


def _lt(t: Any) -> np.ndarray:
    """Threshold for ``x < threshold`` equivalent to ``x < t`` (inputs clipped to finite)."""
    return np.clip(np.asarray(t, np.float64), -_MAX, _MAX)


def _concat(parts: list[dict[str, Any]]) -> tuple[dict[str, np.ndarray], list[int]]:
    """Per-tree arrays -> (concatenated arrays, tree sizes)."""
    sizes = [len(p["left"]) for p in parts]
    return {k: np.concatenate([np.asarray(p[k]) for p in parts]) for k in parts[0]}, sizes


def _assemble(
    a: dict[str, np.ndarray], sizes: Any, tree_output: Any, K: int, meta: dict, cats: Any = None
) -> TreeEnsemble:
    """Build the layout from concatenated per-tree arrays with LOCAL child indices.

    ``a`` holds left and right (-1 at leaves), feature, threshold (a ``<`` threshold),
    missing_left, value ((N,) for single-output trees, (N, K) where ``tree_output`` is -1)
    and cover; ``cats`` = (global indices of categorical nodes, the codes each sends left).
    """
    sizes = np.asarray(sizes, np.int64)
    tree_start = np.concatenate([[0], np.cumsum(sizes)]).astype(np.int64)
    N, tree_output = int(tree_start[-1]), np.asarray(tree_output, np.int64)
    leaf = a["left"].astype(np.int64) < 0
    offset = np.repeat(tree_start[:-1], sizes)
    value = np.asarray(a["value"], np.float64)
    if value.ndim == 1:
        value = np.zeros((N, K))
        value[np.arange(N), np.repeat(np.maximum(tree_output, 0), sizes)] = a["value"]
    arrays = {
        "left": np.where(leaf, -1, a["left"].astype(np.int64) + offset),
        "right": np.where(leaf, -1, a["right"].astype(np.int64) + offset),
        "feature": np.where(leaf, -1, a["feature"].astype(np.int64)),
        "threshold": np.where(leaf, 0.0, a["threshold"].astype(np.float64)),
        "missing_left": a["missing_left"].astype(bool) & ~leaf,
        "is_categorical": np.zeros(N, bool),
        "cat_start": np.zeros(N, np.int64),
        "cat_len": np.zeros(N, np.int64),
        "value": np.ascontiguousarray(value.reshape(N, K)),
        "cover": a["cover"].astype(np.float64),
    }
    cat_values = np.zeros(1)
    if cats is not None and len(cats[0]):
        nodes = np.asarray(cats[0], np.int64)
        lists = [np.unique(np.asarray(c, np.float64)) for c in cats[1]]
        lengths = np.array([len(c) for c in lists], np.int64)
        arrays["is_categorical"][nodes] = True
        arrays["threshold"][nodes] = 0.0
        arrays["cat_len"][nodes] = lengths
        arrays["cat_start"][nodes] = np.cumsum(lengths) - lengths
        cat_values = np.concatenate([*lists, [0.0]])
    depth = _finalize(arrays["left"], arrays["right"], arrays["cover"], arrays["value"], tree_start)
    if depth < 0:  # renumber depth-first, dropping unreachable (deleted) nodes
        order = _preorder(arrays["left"], arrays["right"], tree_start)
        new = np.full(N, -1, np.int64)
        new[order] = np.arange(len(order))
        arrays = {k: v[order] for k, v in arrays.items()}
        for side in ("left", "right"):
            arrays[side] = np.where(arrays[side] >= 0, new[np.maximum(arrays[side], 0)], -1)
        owner = np.repeat(np.arange(len(sizes)), sizes)[order]
        tree_start = np.searchsorted(owner, np.arange(len(sizes) + 1)).astype(np.int64)
        depth = _finalize(
            arrays["left"], arrays["right"], arrays["cover"], arrays["value"], tree_start
        )
    return TreeEnsemble(
        **arrays,
        cat_values=cat_values,
        tree_start=tree_start,
        tree_output=tree_output,
        max_depth=int(depth),
        **meta,
    )


def _names_or_none(names: Any) -> list[str] | None:
    if names is None:
        return None
    names = [str(c) for c in names]
    auto = ([f"Column_{j}" for j in range(len(names))], [str(j) for j in range(len(names))])
    return None if names in auto else names


_DEFAULTS = {
    "binary": ("log-odds margin", "logistic"),
    "multiclass": ("multinomial log-odds margin", "softmax"),
    "other": ("prediction", "identity"),
}


def _outputs(model: Any, K: int, kind: str, raw: str | None = None, link: str | None = None):
    """``output_names``, ``raw_output`` and ``link`` of a binary / multiclass / other model."""
    classes = getattr(model, "classes_", None)
    classes = None if classes is None else [str(c) for c in classes]
    if kind == "binary":
        names = [classes[-1] if classes else "1"]
    elif kind == "multiclass":
        names = classes or [str(k) for k in range(K)]
    else:
        names = ["prediction"] if K == 1 else [f"prediction {k}" for k in range(K)]
    default_raw, default_link = _DEFAULTS[kind]
    return {"output_names": names, "raw_output": raw or default_raw, "link": link or default_link}


# ------------------------------------------------------------------ scikit-learn
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


def _parse_sklearn(model: Any) -> TreeEnsemble:
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


# ------------------------------------------------------------------ XGBoost
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


def _parse_xgboost(model: Any) -> TreeEnsemble:
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


# ------------------------------------------------------------------ LightGBM
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


def _parse_lightgbm(model: Any) -> TreeEnsemble:
    booster = model.booster_ if _has_base(model, "lightgbm", "LGBMModel") else model
    d = booster.dump_model()  # up to best_iteration when set, as predict
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
            f"{sorted(zero_feats & nan_feats)}; TreeShap does not support that."
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


# ------------------------------------------------------------------ CatBoost
def _parse_catboost(model: Any) -> TreeEnsemble:
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


# ------------------------------------------------------------------ dispatch
def _kind(model: Any) -> str | None:
    mro = type(model).__mro__
    if any(c.__module__.startswith("sklearn.") and c.__name__ in _SKLEARN for c in mro):
        return "sklearn"
    for lib, bases in _LIBRARIES.items():
        if any(_has_base(model, lib, b) for b in bases):
            return lib
    return None


def parse_tree_model(model: Any) -> TreeEnsemble:
    """Parse a fitted tree model into a :class:`TreeEnsemble`.

    Parameters
    ----------
    model : object
        One of :data:`SUPPORTED`, recognised by class and module without importing the
        libraries.

    Returns
    -------
    TreeEnsemble
        ``ens.predict_raw(ens.encode(X))`` reproduces the model's raw output: scikit-learn
        ``predict_proba`` (classification trees and forests; K = n_classes, binary included),
        ``predict`` (regressors), ``decision_function`` (GradientBoostingClassifier),
        HistGradientBoosting ``_raw_predict``, XGBoost ``predict(output_margin=True)`` (up to
        ``best_iteration`` for the scikit-learn API, as its ``predict``), LightGBM
        ``predict(raw_score=True)`` (divided by the number of iterations in rf mode),
        CatBoost ``RawFormulaVal``, and an IsolationForest's average path length.

    Raises
    ------
    UnsupportedModelError
        For other objects (the message lists what is supported) and unsupported variants.
    InvalidParameterError
        When the model is not fitted.
    """
    kind = _kind(model)
    if kind is None:
        raise UnsupportedModelError(
            f"TreeShap cannot read a model of type {model_type_name(model)}. Supported: "
            f"{SUPPORTED}. For other models use KernelShap, PermutationShap or ExactShap."
        )
    if kind == "sklearn":
        fitted = any(hasattr(model, a) for a in ("tree_", "estimators_", "_predictors"))
    elif kind == "catboost":
        fitted = bool(model.is_fitted())
    else:  # the scikit-learn APIs of XGBoost and LightGBM
        fitted = model.__class__.__name__ == "Booster" or getattr(model, "_Booster", None)
    if not fitted:
        raise InvalidParameterError(
            f"{model_type_name(model)} is not fitted: call fit before explaining it."
        )
    parse = {
        "sklearn": _parse_sklearn,
        "xgboost": _parse_xgboost,
        "lightgbm": _parse_lightgbm,
        "catboost": _parse_catboost,
    }[kind]
    try:
        return parse(model)
    except (AttributeError, KeyError, IndexError) as exc:
        raise UnsupportedModelError(
            f"could not read the trees of {model_type_name(model)} ({type(exc).__name__}: "
            f"{exc}); this version or variant is not supported. Supported: {SUPPORTED}."
        ) from exc
