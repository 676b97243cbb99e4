"""TreeSHAP: exact SHAP values of tree ensembles, in numba.

``TreeShap(model)`` parses scikit-learn, XGBoost, LightGBM (and CatBoost) ensembles into one
array layout (:mod:`whybox.trees.parse`) and explains them

* path-dependently (no background; the trees' covers stand for the data distribution):
  quadrature TreeSHAP over one linear walk per tree, rows traversed in blocks
  (:mod:`whybox.trees._treeshap_path`);
* interventionally against a background sample (``TreeShap(model, background=X_bg)``),
  optionally on the probability scale of boosted classifiers
  (:mod:`whybox.trees._treeshap_interventional`);

and gives SHAP interaction values (path-dependent) with ``explain_interactions``.

Why quadrature rather than Linear TreeSHAP's polynomial arithmetic: the Shapley weights of a
leaf's game are a Beta integral of a polynomial of degree < depth, so ``ceil(depth / 2)``
Gauss-Legendre points evaluate it exactly, and the walk only multiplies and divides positive
numbers at those points -- no polynomial coefficients, no interpolation on Chebyshev points,
no ill-conditioning as depth grows. And because path-dependent TreeSHAP visits every node
for every row, rows are walked in blocks that share the node bookkeeping.

Every result is checked: the ensemble's own prediction from the parsed arrays must equal the
model's raw prediction, and the values must add up (completeness gap below 1e-6 of the output
scale); a failure raises instead of returning wrong numbers.

References
----------
Lundberg, S. M., Erion, G., Chen, H. et al. (2020). From local explanations to global
understanding with explainable AI for trees. Nature Machine Intelligence 2.

Yu, P., Bifet, A., Read, J. and Xu, C. (2022). Linear TreeShap. NeurIPS.

Quadrature-TreeSHAP (2026), arXiv:2605.04497.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any

import numpy as np
import pandas as pd

from .._validation import as_2d_input, check_finite, check_in, check_int, check_nonempty
from ..errors import (
    InvalidInputError,
    InvalidParameterError,
    UnsupportedModelError,
    WhyboxError,
)
from ..explainer import Explainer
from ..explanation import Explanation
from ..games.maskers import Independent, Masker
from ..models import model_type_name

__all__ = ["MAX_PATH_DEPTH", "TreeShap", "is_tree_model"]

#: deepest trees explained path-dependently (Gauss-Legendre points = depth / 2)
MAX_PATH_DEPTH = 128
_CHUNK_BYTES = 64 * 2**20

_TREE_CLASSES = {
    "DecisionTreeClassifier",
    "DecisionTreeRegressor",
    "ExtraTreeClassifier",
    "ExtraTreeRegressor",
    "RandomForestClassifier",
    "RandomForestRegressor",
    "ExtraTreesClassifier",
    "ExtraTreesRegressor",
    "GradientBoostingClassifier",
    "GradientBoostingRegressor",
    "HistGradientBoostingClassifier",
    "HistGradientBoostingRegressor",
    "IsolationForest",
}


def is_tree_model(model: Any) -> bool:
    """True for the tree ensembles TreeShap parses (checked by type, without parsing)."""
    for cls in type(model).__mro__:
        mod = cls.__module__
        if mod.startswith("sklearn.") and cls.__name__ in _TREE_CLASSES:
            return True
        if mod.startswith(("xgboost", "lightgbm", "catboost")) and cls.__name__ in (
            "Booster",
            "XGBModel",
            "LGBMModel",
            "CatBoost",
        ):
            return True
    return False


class TreeShap(Explainer):
    """Exact SHAP values of tree ensembles (path-dependent or interventional).

    Parameters
    ----------
    model : tree ensemble
        scikit-learn trees and forests, GradientBoosting, HistGradientBoosting; XGBoost and
        LightGBM (scikit-learn API or Booster); CatBoost when installed.
    background : DataFrame or array, optional
        With a background, interventional TreeSHAP (absent features take background
        values); without, path-dependent TreeSHAP.
    model_output : {"raw", "probability"}
        ``"raw"``: the ensemble's raw output (log-odds margin of boosted classifiers,
        averaged leaf values of forests). ``"probability"``: the logistic transform of a
        boosted binary classifier's margin (interventional only, as in shap).
    feature_perturbation : {"auto", "interventional", "tree_path_dependent"}
        ``"auto"``: interventional when a background is given.
    max_background : int
        Background rows kept (subsampled with ``random_state``).
    random_state : int or None
    chunk_rows : int, optional
        Rows explained per chunk (bounds the memory beyond the output array).
    link : {"identity", "logit"}
        Accepted for the API's sake: ``"logit"`` is allowed for boosted binary classifiers,
        whose raw output already is the log-odds.
    n_jobs : int, optional
        Threads of the numba kernels (default: numba's, all cores).

    Examples
    --------
    >>> exp = TreeShap(xgb_model).explain(X)  # doctest: +SKIP
    >>> inter = TreeShap(xgb_model).explain_interactions(X[:100])  # doctest: +SKIP
    """

    method = "tree"

    def __init__(
        self,
        model: Any,
        background: Any = None,
        *,
        model_output: str = "raw",
        feature_perturbation: str = "auto",
        max_background: int = 100,
        random_state: int | None = 0,
        chunk_rows: int | None = None,
        link: str = "identity",
        allow_nan: bool = True,
        n_jobs: int | None = None,
    ) -> None:
        from .parse import parse_tree_model

        check_in("model_output", model_output, ("raw", "probability"))
        check_in(
            "feature_perturbation",
            feature_perturbation,
            ("auto", "interventional", "tree_path_dependent"),
        )
        self.model = model
        self.ensemble = parse_tree_model(model)
        check_in("link", link, ("identity", "logit"))
        if link == "logit" and self.ensemble.link != "logistic":
            raise InvalidParameterError(
                "link='logit' asks for log-odds, but this ensemble's raw output is "
                f"{self.ensemble.raw_output!r}; TreeShap explains the raw output, or the "
                "probability with model_output='probability'."
            )
        if feature_perturbation == "auto":
            feature_perturbation = "tree_path_dependent" if background is None else "interventional"
        if feature_perturbation == "interventional" and background is None:
            raise InvalidParameterError(
                "feature_perturbation='interventional' needs a background: pass "
                "TreeShap(model, background=X_train_sample)."
            )
        if model_output == "probability":
            if feature_perturbation != "interventional":
                raise InvalidParameterError(
                    "model_output='probability' is explained interventionally (the logistic "
                    "transform does not decompose over trees): pass background=."
                )
            if self.ensemble.link != "logistic":
                raise InvalidParameterError(
                    f"model_output='probability' needs a boosted binary classifier (logistic "
                    f"link); this model's raw output is {self.ensemble.raw_output!r} with link "
                    f"{self.ensemble.link!r}."
                )
        self.model_output = model_output
        self.n_jobs = n_jobs
        self.feature_perturbation = feature_perturbation
        self.random_state = random_state
        self.max_background = check_int("max_background", max_background, minimum=1)
        self.chunk_rows = (
            None if chunk_rows is None else check_int("chunk_rows", chunk_rows, minimum=1)
        )
        self.background = background
        self._bg: tuple[np.ndarray, np.ndarray] | None = None
        self._masks: Any = None
        self._paths: Any = None
        self._base_path: np.ndarray | None = None
        self._gl: tuple[np.ndarray, np.ndarray] | None = None
        self._depth = int(self.ensemble.max_depth)
        if feature_perturbation == "interventional":
            masker = (
                background
                if isinstance(background, Masker)
                else Independent(
                    background,
                    max_samples=max_background,
                    random_state=random_state,
                    allow_nan=True,
                )
            )
            Z = self.ensemble.encode(masker.background)
            self._bg = (np.ascontiguousarray(Z, dtype=np.float64), masker.weights)

    # ---------------------------------------------------------------- helpers
    def _encode(self, X: Any) -> np.ndarray:
        return np.ascontiguousarray(self.ensemble.encode(X), dtype=np.float64)

    def _select(self, target: Any) -> tuple[list[int], bool]:
        e = self.ensemble
        names = list(e.output_names)
        k = len(names)
        binary_probs = k == 2 and e.raw_output.startswith("probability")
        if target is None:
            if k == 1:
                return [0], True
            if binary_probs:
                return [1], True
            return list(range(k)), False
        if isinstance(target, str) and target == "all":
            return list(range(k)), False
        many = isinstance(target, (list, tuple, np.ndarray))
        out = []
        for t in target if many else [target]:
            if str(t) in names:
                out.append(names.index(str(t)))
            elif isinstance(t, (int, np.integer)) and not isinstance(t, bool) and -k <= t < k:
                out.append(int(t) % k)
            else:
                raise InvalidParameterError(
                    f"unknown target {t!r}: this ensemble's outputs are {names} "
                    f"({e.raw_output}). Pass an output name or index, a list, or 'all'."
                )
        return out, not many

    def _chunk(self, n_cols: int) -> int:
        if self.chunk_rows is not None:
            return self.chunk_rows
        return max(256, _CHUNK_BYTES // max(1, 8 * n_cols))

    def _prepare(self, X: Any) -> tuple[Any, list[str]]:
        X = as_2d_input(X)
        check_nonempty(X)
        e = self.ensemble
        names = (
            list(e.feature_names)
            if e.feature_names is not None
            else (
                [str(c) for c in X.columns]
                if isinstance(X, pd.DataFrame)
                else [f"x{j}" for j in range(X.shape[1])]
            )
        )
        if isinstance(X, pd.DataFrame) and e.feature_names is not None:
            # the ensemble matches the columns as the library does (LightGBM renames them)
            selected = e.select_columns(X)
            if selected.shape[1] != X.shape[1]:
                chosen = set(selected.columns)
                extra = [c for c in X.columns if c not in chosen]
                raise InvalidInputError(
                    f"X has columns the model was not fitted on: {extra}. Expected exactly: "
                    f"{list(e.feature_names)}; drop the other columns."
                )
            X = selected
            names = [str(c) for c in X.columns]  # the caller's names, in the model's order
        elif X.shape[1] != e.n_features:
            raise InvalidInputError(
                f"X has {X.shape[1]} features but the model was trained on {e.n_features}."
                " Pass the same features, in the same order, as at fit time."
            )
        check_finite(X, allow_nan=True)  # NaN is missing; infinities are refused
        return X, names

    def _verify(self, X: Any, raw: np.ndarray) -> None:
        """The parsed ensemble must reproduce the model's own raw output."""
        own = raw_model_output(self.model, X)
        if own is None:
            return
        own = np.asarray(own, dtype=float).reshape(raw.shape[0], -1)
        if own.shape != raw.shape:
            return
        scale = max(1.0, float(np.abs(own).max()))
        err = float(np.abs(own - raw).max())
        if err > 1e-5 * scale:
            raise WhyboxError(
                f"the parsed {model_type_name(self.model)} does not reproduce the model's own "
                f"predictions (largest difference {err:.3g}); refusing to return SHAP values "
                "that would not add up. Please report this with the model type and version."
            )

    # ---------------------------------------------------------------- explain
    def explain(
        self, X: Any, *, target: Any = None, progress: Any = None, **kwargs: Any
    ) -> Explanation:
        """SHAP values of each row of ``X``: (n, p) or (n, p, k).

        Parameters
        ----------
        X : DataFrame or array (n, p)
            Rows to explain (NaN allowed where the model handles missing values).
        target : optional
            Output(s): class label or index, list, or ``"all"``; defaults as in the module
            docstring of :mod:`whybox.models`.
        progress : callable(done, total), optional
        """
        with _numba_threads(self.n_jobs):
            return self._explain(X, target=target, progress=progress, **kwargs)

    def _explain(
        self, X: Any, *, target: Any = None, progress: Any = None, **kwargs: Any
    ) -> Explanation:
        """The work of :meth:`explain`."""
        X, names = self._prepare(X)
        e = self.ensemble
        prob = self.model_output == "probability"
        if self.feature_perturbation == "tree_path_dependent":
            compute, base = self._path_kernel(), self._expected_value_path()
        else:
            compute, base = self._interventional_kernel(prob)
        values, base_values, predictions, idx = self._run(
            X, target, (len(names),), compute, base, progress, _sigmoid if prob else None
        )
        out_names = [str(e.output_names[i]) for i in idx]
        output = ("probability of " if prob else f"{e.raw_output}: ") + ", ".join(out_names)
        return Explanation(
            values,
            base_values,
            data=X,
            feature_names=names,
            output_names=out_names,
            std=None,  # exact: no sampling error (and no second n x p array)
            predictions=predictions,
            method=self.method,
            params={
                "output": output,
                "model_output": self.model_output,
                "feature_perturbation": self.feature_perturbation,
                "model_type": model_type_name(self.model),
                "background_rows": None if self._bg is None else int(self._bg[0].shape[0]),
                "n_trees": int(e.n_trees),
                "max_depth": self._depth,
            },
            n_evals=0,
            random_state=self.random_state,
        )

    def _run(
        self,
        X: Any,
        target: Any,
        feature_shape: tuple[int, ...],
        compute: Callable[[np.ndarray, np.ndarray], np.ndarray],
        base: np.ndarray,
        progress: Any,
        transform: Callable[[np.ndarray], np.ndarray] | None = None,
    ) -> tuple[np.ndarray, np.ndarray, np.ndarray, list[int]]:
        """Explain ``X`` chunk by chunk and check the result: the one loop of every mode.

        ``compute(Z, raw)`` maps encoded rows (c, p) and their raw output (c, K) to values
        (c, *feature_shape, K); ``transform`` maps the raw output to the explained one
        (the logistic for probabilities). The parsed ensemble is checked against the model
        on the first rows and the values must add up; either failure raises.

        Returns
        -------
        values (n, *feature_shape[, k]), base_values (n[, k]), predictions (n[, k]) and the
        selected output indices; the output axis is dropped when one output was asked for.
        """
        e = self.ensemble
        idx, single = self._select(target)
        n, K = X.shape[0], e.n_outputs
        values = np.zeros((n, *feature_shape, len(idx)))
        preds = np.zeros((n, K))
        per_row = int(np.prod(feature_shape)) * K
        chunk = self._chunk(per_row) if len(feature_shape) == 1 else self._chunk(per_row) // 4
        chunk = max(1, chunk)
        for start in range(0, n, chunk):
            stop = min(n, start + chunk)
            Xc = self._encode(X.iloc[start:stop] if isinstance(X, pd.DataFrame) else X[start:stop])
            raw = e.predict_raw(Xc)
            if start == 0:
                m = min(200, stop)
                self._verify(X.iloc[:m] if isinstance(X, pd.DataFrame) else X[:m], raw[:m])
            values[start:stop] = compute(Xc, raw)[..., idx]
            preds[start:stop] = raw if transform is None else transform(raw)
            if progress is not None:
                progress(stop, n)
        base_values = np.broadcast_to(np.asarray(base)[idx], (n, len(idx))).copy()
        predictions = preds[:, idx]
        gap = predictions - base_values - values.sum(axis=tuple(range(1, values.ndim - 1)))
        scale = max(1.0, float(np.abs(predictions).max()))
        if np.abs(gap).max() > 1e-6 * scale:
            raise WhyboxError(
                f"TreeSHAP values do not add up (completeness gap {np.abs(gap).max():.3g}); "
                "refusing to return them. Please report this with the model type and version."
            )
        if single:
            values, base_values, predictions = values[..., 0], base_values[:, 0], predictions[:, 0]
        return values, base_values, predictions, idx

    def _check_depth(self) -> None:
        if self._depth > MAX_PATH_DEPTH:
            raise InvalidParameterError(
                f"trees of depth {self._depth} exceed the {MAX_PATH_DEPTH} levels path-dependent "
                "TreeSHAP supports here; pass background= to use interventional TreeSHAP, "
                "which has no depth limit."
            )

    def _path_kernel(self) -> Callable[[np.ndarray, np.ndarray], np.ndarray]:
        from ._treeshap_path import ROW_BLOCK, path_dependent_shap

        self._check_depth()
        layout, depth = self.ensemble.layout, self._depth
        tq, wq = self._quadrature()

        return lambda Z, raw: path_dependent_shap(Z, layout, depth, tq, wq, ROW_BLOCK)

    def _interventional_kernel(
        self, prob: bool
    ) -> tuple[Callable[[np.ndarray, np.ndarray], np.ndarray], np.ndarray]:
        from ._treeshap_interventional import (
            background_masks,
            interventional_shap,
            interventional_shap_masks,
            interventional_shap_per_reference,
            leaf_paths,
        )

        e, depth = self.ensemble, self._depth
        layout = e.layout
        Z, w = self._bg  # type: ignore[misc]
        fz = e.predict_raw(Z)
        if prob:
            gz = _sigmoid(fz)

            def per_reference(X: np.ndarray, raw: np.ndarray) -> np.ndarray:
                # the logistic's secant between each background row and the row spreads
                # the raw-scale values of the pair onto the probability scale
                per = interventional_shap_per_reference(X, Z, layout, depth)
                gx = _sigmoid(raw)
                diff = raw[:, None, :] - fz[None, :, :]
                num = gx[:, None, :] - gz[None, :, :]
                small = np.abs(diff) < 1e-12
                factor = np.where(
                    small, (gx * (1 - gx))[:, None, :], num / np.where(small, 1, diff)
                )
                return np.einsum("nbpk,nbk,b->npk", per, factor, w)

            return per_reference, w @ gz
        if self._paths is None:
            self._paths = leaf_paths(layout)
        paths = self._paths
        if int(np.max(np.diff(paths[6]), initial=0)) <= 62:  # path features fit a bit mask
            if self._masks is None:
                self._masks = background_masks(Z, w, paths, layout)
            if _masks_pay_off(e, paths, self._masks, Z.shape[0]):
                masks = self._masks
                return (lambda X, raw: interventional_shap_masks(X, paths, masks, layout)), w @ fz
        return (lambda X, raw: interventional_shap(X, Z, w, layout, depth)), w @ fz

    def explain_interactions(
        self, X: Any, *, target: Any = None, progress: Any = None
    ) -> Explanation:
        """Path-dependent SHAP interaction values: values (n, p, p) or (n, p, p, k).

        Row ``i`` of each matrix adds up to feature ``i``'s SHAP value; the matrix adds up to
        ``prediction - base value``.
        """
        with _numba_threads(self.n_jobs):
            return self._explain_interactions(X, target=target, progress=progress)

    def _explain_interactions(
        self, X: Any, *, target: Any = None, progress: Any = None
    ) -> Explanation:
        """The work of :meth:`explain_interactions`."""
        from ._treeshap_path import path_dependent_interactions

        if self.feature_perturbation != "tree_path_dependent":
            raise InvalidParameterError(
                "SHAP interaction values are computed path-dependently (as shap and XGBoost "
                "do); this explainer was built with a background (interventional). Build "
                "TreeShap(model) without background, or use "
                "ShapleyInteractions(model, background=...) for interventional interactions."
            )
        X, names = self._prepare(X)
        self._check_depth()
        e = self.ensemble
        layout, depth = e.layout, self._depth
        tq, wq = self._quadrature()
        tf, tfs = [], [0]  # each tree's distinct split features
        for t in range(e.n_trees):
            f = np.unique(e.feature[e.tree_start[t] : e.tree_start[t + 1]])
            tf.extend(f[f >= 0].tolist())
            tfs.append(len(tf))
        tf_, tfs_ = np.asarray(tf, dtype=np.int64), np.asarray(tfs, dtype=np.int64)
        p = len(names)
        values, base_values, predictions, idx = self._run(
            X,
            target,
            (p, p),
            lambda Z, raw: path_dependent_interactions(Z, layout, depth, tq, wq, tf_, tfs_),
            self._expected_value_path(),
            progress,
        )
        out_names = [str(e.output_names[i]) for i in idx]
        return Explanation(
            values,
            base_values,
            data=X,
            feature_names=[f"{a_} × {b_}" for a_ in names for b_ in names],
            output_names=out_names,
            std=None,  # exact: no sampling error (and no second n x p array)
            predictions=predictions,
            method="tree_interactions",
            params={
                "output": f"{e.raw_output}: " + ", ".join(out_names),
                "feature_perturbation": "tree_path_dependent",
                "model_type": model_type_name(self.model),
                "features": names,
            },
            n_evals=0,
            random_state=self.random_state,
        )

    def _quadrature(self) -> tuple[np.ndarray, np.ndarray]:
        """Gauss-Legendre points exact for every leaf: ``ceil(d / 2)`` for paths splitting on
        at most ``d`` distinct features (the integrand's degree is ``d - 1``)."""
        if self._gl is None:
            from ._treeshap_path import gauss_legendre_01, max_path_features

            e = self.ensemble
            d = int(max_path_features(e.left, e.right, e.feature, e.tree_start))
            self._gl = gauss_legendre_01(max(1, (d + 1) // 2))
        return self._gl

    def _expected_value_path(self) -> np.ndarray:
        """``base_offset + sum_t sum_leaves v_l prod(cover fractions)``: shape (K,)."""
        if self._base_path is None:
            from ._treeshap_path import expected_values

            e = self.ensemble
            self._base_path = expected_values(
                e.left,
                e.right,
                np.asarray(e.cover, float),
                np.asarray(e.value, float),
                e.tree_start,
                e.tree_output,
                np.asarray(e.base_offset, float),
            )
        return self._base_path


@contextmanager
def _numba_threads(n_jobs: int | None) -> Iterator[None]:
    """Run numba kernels on ``n_jobs`` threads (None: numba's default, -1: all)."""
    if n_jobs is None:
        yield
        return
    import numba

    most = numba.config.NUMBA_NUM_THREADS
    n = most if n_jobs < 0 else max(1, min(int(n_jobs), most))
    old = numba.get_num_threads()
    numba.set_num_threads(n)
    try:
        yield
    finally:
        numba.set_num_threads(old)


def _sigmoid(z: np.ndarray) -> np.ndarray:
    return 1.0 / (1.0 + np.exp(-z))


def _masks_pay_off(
    e: Any, lp: tuple[np.ndarray, ...], masks: tuple[np.ndarray, ...], n_bg: int
) -> bool:
    """Leaf-mask interventional TreeSHAP when a row's pass over every leaf and its distinct
    background masks is cheaper than walking the trees with every background row."""
    n_leaves = len(lp[0])
    if n_leaves == 0:
        return False
    # relative costs measured on 500-tree depth-6 and 100-tree depth-12 ensembles: a mask
    # check is ~1 unit, a path split ~2, a background row's step down a tree ~16
    path_work = 2.0 * float(lp[2][-1])
    mask_work = float(len(masks[1]))
    cost_masks = path_work + mask_work
    cost_walk = 16.0 * n_bg * e.n_trees * (e.max_depth + 1)
    return cost_masks < cost_walk


def raw_model_output(model: Any, X: Any) -> np.ndarray | None:
    """The model's own raw output (what the parsed ensemble must reproduce), or None when
    it cannot be asked for."""
    mod = type(model).__module__
    try:
        if mod.startswith("xgboost"):
            import xgboost as xgb

            sk_api = hasattr(model, "get_booster")
            booster = model.get_booster() if sk_api else model
            missing = getattr(model, "missing", np.nan) if sk_api else np.nan
            dm = (
                xgb.DMatrix(X, enable_categorical=True, missing=missing)
                if isinstance(X, pd.DataFrame)
                else xgb.DMatrix(
                    np.asarray(X, float), missing=missing, feature_names=booster.feature_names
                )
            )
            best = booster.attr("best_iteration") if sk_api else None
            # the scikit-learn API predicts with the trees up to best_iteration (early
            # stopping), and so does the parsed ensemble
            rounds = (0, int(best) + 1) if best is not None else (0, 0)
            return booster.predict(dm, output_margin=True, iteration_range=rounds)
        if mod.startswith("lightgbm"):
            booster = model.booster_ if hasattr(model, "booster_") else model
            return booster.predict(X, raw_score=True)
        if mod.startswith("sklearn"):
            name = type(model).__name__
            if name.startswith("HistGradientBoosting"):
                return model._raw_predict(X)
            if name == "GradientBoostingClassifier":
                return model.decision_function(X)
            if name == "GradientBoostingRegressor":
                return model.predict(X)
            if hasattr(model, "predict_proba") and not name.startswith("IsolationForest"):
                return model.predict_proba(X)
            if hasattr(model, "predict") and not name.startswith("IsolationForest"):
                out = model.predict(X)
                return out
    except (UnsupportedModelError, InvalidParameterError):
        raise
    except Exception:
        return None
    return None
