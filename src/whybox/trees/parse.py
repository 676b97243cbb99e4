"""One flat array layout for tree ensembles, parsed without shap.

:func:`parse_tree_model` reads scikit-learn trees and forests (DecisionTree*, ExtraTree(s)*,
RandomForest*, IsolationForest), GradientBoosting*, HistGradientBoosting*, XGBoost (the
booster's JSON), LightGBM (``dump_model()``) and, when installed, CatBoost (its JSON) into a
:class:`TreeEnsemble`: the nodes of all trees concatenated with global child indices, every
tree stored parents-before-children (``left[i] > i``) without unreachable nodes. Each library
has its parser module (``_sklearn``, ``_xgboost``, ``_lightgbm``,
``_catboost``); this module holds the layout, its encoding and its kernels.

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

from dataclasses import dataclass, field
from importlib import import_module
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
#: field order of :attr:`TreeEnsemble.layout`
LAYOUT = (*_WALK.split(), "value", "cover", "tree_start", "tree_output")


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

    @property
    def layout(self) -> tuple:
        """The arrays the numba kernels read, as one tuple (in this order): ``left, right,
        feature, threshold, missing_left, is_categorical, cat_start, cat_len, cat_values,
        value, cover, tree_start, tree_output``."""
        return tuple(getattr(self, a) for a in LAYOUT)

    def __repr__(self) -> str:
        return (
            f"TreeEnsemble(n_trees={self.n_trees}, n_nodes={len(self.left)}, "
            f"max_depth={self.max_depth}, n_features={self.n_features}, "
            f"outputs={self.output_names}, raw_output={self.raw_output!r}, link={self.link!r})"
        )

    def select_columns(self, X: pd.DataFrame) -> pd.DataFrame:
        """The model's columns of ``X``, in the model's order.

        Columns are matched by name, also under the library's renaming (LightGBM writes
        each space of a name as ``_``); extra columns are left out. Without
        known ``feature_names`` ``X`` is returned as is (it must have ``n_features`` columns).

        Raises
        ------
        InvalidInputError
            When a model column is missing (the message names it) or appears twice.
        """
        return _select_columns(as_2d_input(X), self.feature_names, self.n_features)

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
        return _predict(Z, self.layout, self.base_offset)

    def apply(self, Z: np.ndarray) -> np.ndarray:
        """Global index (n, T) of the leaf each encoded row reaches in each tree."""
        return _apply(np.ascontiguousarray(Z, dtype=np.float64), self.layout)


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
        pos.setdefault(c.replace(" ", "_"), i)  # LightGBM writes each space as "_"
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
def _leaf(Z, i, root, layout):
    left, right, feature, threshold, missing_left, is_cat, cs, cl, cv = layout[:9]
    node = root
    while left[node] >= 0:
        if goes_left(Z[i, feature[node]], node, threshold, missing_left, is_cat, cs, cl, cv):
            node = left[node]
        else:
            node = right[node]
    return node


@njit(parallel=True, cache=True)
def _predict(Z, layout, base_offset):
    value, tree_start, tree_output = layout[9], layout[11], layout[12]
    n, K = Z.shape[0], value.shape[1]
    out = np.empty((n, K))
    for i in prange(n):
        for k in range(K):
            out[i, k] = base_offset[k]
        for t in range(tree_start.shape[0] - 1):
            node = _leaf(Z, i, tree_start[t], layout)
            col = tree_output[t]
            if col < 0:
                for k in range(K):
                    out[i, k] += value[node, k]
            else:
                out[i, col] += value[node, col]
    return out


@njit(parallel=True, cache=True)
def _apply(Z, layout):
    tree_start = layout[11]
    T = tree_start.shape[0] - 1
    out = np.empty((Z.shape[0], T), np.int64)
    for i in prange(Z.shape[0]):
        for t in range(T):
            out[i, t] = _leaf(Z, i, tree_start[t], layout)
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
    parse = import_module(f"._{kind}", __package__).parse  # one module per library
    try:
        return parse(model)
    except (AttributeError, KeyError, IndexError) as exc:
        raise UnsupportedModelError(
            f"could not read the trees of {model_type_name(model)} ({type(exc).__name__}: "
            f"{exc}); this version or variant is not supported. Supported: {SUPPORTED}."
        ) from exc
