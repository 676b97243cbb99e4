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

import warnings
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any

import numpy as np
import pandas as pd

from .._targets import PER_ROW_NAME, TargetSelection, resolve_target
from .._validation import (
    as_2d_input,
    check_finite,
    check_in,
    check_int,
    check_keywords,
    check_nonempty,
)
from ..errors import (
    InvalidInputError,
    InvalidParameterError,
    WhyboxError,
)
from ..explainer import Explainer
from ..explanation import ROW_KEYS, Explanation
from ..games.maskers import Independent, Masker
from ..models import model_type_name
from ._treeshap_checks import _output_layout, _probability_error, raw_model_output

__all__ = ["MAX_PATH_DEPTH", "TreeShap", "is_tree_model"]

#: deepest trees explained path-dependently (Gauss-Legendre points = depth / 2)
MAX_PATH_DEPTH = 128
_CHUNK_BYTES = 64 * 2**20
#: backgrounds above this many rows warn about run time (they are still used whole)
_LARGE_BACKGROUND = 1000
#: keywords of the constructor, for the message when one is passed to explain
_CONSTRUCTOR = (
    "background",
    "model_output",
    "feature_perturbation",
    "max_background",
    "random_state",
    "chunk_rows",
    "link",
    "allow_nan",
    "n_jobs",
    "backend",
    "client",
)

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
        ``"raw"``: the ensemble's raw output, explained exactly (log-odds margin of boosted
        classifiers, averaged class fractions of forests, the prediction of regressors).
        ``"probability"``: shap's rescaled interventional approximation on the probability
        scale of a boosted binary classifier (each background row's raw-scale values are
        scaled by the logistic's secant). It is NOT the Shapley value of the probability
        (the logistic does not decompose over trees): every call warns with its error
        measured against exact enumeration (or a permutation estimate) on the first row, and
        ``params["output"]`` says "approximate". For exact values of the probability use
        ``wb.explain(model, X, background=...)`` (ExactShap / KernelShap over the background).
    feature_perturbation : {"auto", "interventional", "tree_path_dependent"}
        ``"auto"``: interventional when a background is given.
    max_background : int or None
        None (default): the background is used whole. An int below its rows draws that many
        with ``random_state`` and warns with the measured effect (how far the mean model
        output moves). A background of more than 1000 rows warns about run time.
    random_state : int or None, default 0
        Seed of the background sample when ``max_background`` subsamples.
    chunk_rows : int, optional
        Rows explained per chunk (bounds the memory beyond the output array).
    link : {"identity", "logit"}
        ``"logit"`` (log-odds) is allowed where the raw output IS the log-odds: boosted
        binary classifiers with a logistic link. Other ensembles refuse it (a forest's
        log-odds is not additive over trees: use ``wb.explain(..., link="logit",
        background=...)``).
    allow_nan : bool, default True
        Missing values (NaN) in X are routed as the model routes them (trees handle them);
        infinities are always refused.
    n_jobs : int, optional
        Threads of the numba kernels (default: numba's, all cores).
    backend : {"serial", "dask"}
        ``"dask"`` (or a Dask DataFrame / Array as ``X``): partition by partition on the
        workers of ``client`` (default: the current one), bit-identical to ``"serial"``.
    client : distributed.Client, optional
        The Dask cluster for ``backend="dask"``.

    Notes
    -----
    ``target`` means what it means for every explainer (see :func:`whybox.wrap_model`): for a
    boosted binary classifier (one margin
    for class 1) ``target=0`` explains class 0 as the NEGATED margin (values, base value and
    prediction negated; ``1 - p`` with ``model_output="probability"``); ``"all"`` is the one
    margin the model computes (class 1); ``target=[0, 1]`` gives both; a 1-D array / tensor /
    Series gives one target per row. Values come back in the caller's column order under the
    caller's names (columns are matched to the model's by name).

    ``.explain(X, target=None)`` returns values of shape (n, p) (or (n, p, k));
    ``.explain_interactions(X)`` SHAP interaction values of shape (n, p, p), whose rows add
    up to the SHAP values.

    Examples
    --------
    >>> from sklearn.ensemble import GradientBoostingRegressor
    >>> X, y = wb.zoo.diabetes()
    >>> model = GradientBoostingRegressor(n_estimators=20, max_depth=3, random_state=0).fit(X, y)
    >>> exp = wb.TreeShap(model).explain(X.iloc[:5])  # path-dependent: no background
    >>> exp.values.shape, bool(np.allclose(exp.predictions, model.predict(X.iloc[:5])))
    ((5, 10), True)
    >>> bool(np.allclose(exp.values.sum(axis=1), exp.predictions - exp.base_values))
    True
    >>> inter = wb.TreeShap(model).explain_interactions(X.iloc[:2])
    >>> inter.values.shape, bool(np.allclose(inter.values.sum(axis=2), exp.values[:2]))
    ((2, 10, 10), True)
    """

    method = "tree"

    def __init__(
        self,
        model: Any,
        background: Any = None,
        *,
        model_output: str = "raw",
        feature_perturbation: str = "auto",
        max_background: int | None = None,
        random_state: int | None = 0,
        chunk_rows: int | None = None,
        link: str = "identity",
        allow_nan: bool = True,
        n_jobs: int | None = None,
        backend: str = "serial",
        client: Any = None,
    ) -> None:
        from .parse import parse_tree_model

        check_in("backend", backend, ("serial", "dask"))
        self.backend = "dask" if client is not None else backend
        self.client = client

        check_in("model_output", model_output, ("raw", "probability"))
        check_in(
            "feature_perturbation",
            feature_perturbation,
            ("auto", "interventional", "tree_path_dependent"),
        )
        self.model = model
        self.ensemble = parse_tree_model(model)
        self._labels, self._columns, self._is_classifier = _output_layout(model, self.ensemble)
        check_in("link", link, ("identity", "logit"))
        if link == "logit" and self.ensemble.link != "logistic":
            raise InvalidParameterError(
                "link='logit' asks for log-odds, but this ensemble's raw output is "
                f"{self.ensemble.raw_output!r}, which is not a log-odds margin (and its "
                "log-odds are not additive over trees); TreeShap explains the raw output. For "
                "the log-odds use wb.explain(model, X, link='logit', background=X_train_sample) "
                "(exact Shapley values over the background), or link='identity' here."
            )
        self.link = link
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
            if self.ensemble.link != "logistic" or self.ensemble.n_outputs != 1:
                raise InvalidParameterError(
                    f"model_output='probability' needs a boosted binary classifier (logistic "
                    f"link); this model's raw output is {self.ensemble.raw_output!r} with link "
                    f"{self.ensemble.link!r}. Its raw output (model_output='raw') is what "
                    "TreeShap explains exactly."
                )
        self.model_output = model_output
        self.n_jobs = n_jobs
        self.feature_perturbation = feature_perturbation
        self.random_state = random_state
        self.max_background = (
            None
            if max_background is None
            else check_int("max_background", max_background, minimum=1)
        )
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
        self.background_effect: float | None = None
        if feature_perturbation == "interventional":
            self._bg = self._background(background)

    def __getstate__(self) -> dict[str, Any]:
        state = self.__dict__.copy()
        state["client"] = None  # a connection, not data (backend="dask" finds the default)
        return state

    def _background(self, background: Any) -> tuple[np.ndarray, np.ndarray]:
        """The encoded background and its weights: whole, or sampled with a warning."""
        e = self.ensemble
        if isinstance(background, Masker):
            masker = background
        else:
            bg = as_2d_input(background, name="background")
            check_nonempty(bg, name="background")
            n_bg = int(bg.shape[0])
            keep = n_bg if self.max_background is None else min(self.max_background, n_bg)
            masker = Independent(
                bg, max_samples=keep, random_state=self.random_state, allow_nan=True
            )
            if keep < n_bg:
                full = self._explained_scale(e.predict_raw(self._encode(bg))).mean(axis=0)
                Zs = self._encode(masker.background)
                sample = masker.weights @ self._explained_scale(e.predict_raw(Zs))
                self.background_effect = float(np.abs(full - sample).max())
                warnings.warn(
                    f"TreeShap: max_background={keep} keeps {keep} of the {n_bg} background "
                    f"rows (drawn with random_state={self.random_state!r}); the mean model "
                    f"output over the sample differs from the full background's by "
                    f"{self.background_effect:.3g} (the base value and the values move with "
                    "it). Pass max_background=None to use every row, or summarise them with "
                    "background=wb.kmeans(background, k).",
                    UserWarning,
                    stacklevel=3,
                )
            elif n_bg > _LARGE_BACKGROUND:
                warnings.warn(
                    f"TreeShap: a background of {n_bg} rows is used whole; interventional "
                    "TreeSHAP's run time grows with the background rows (results are exact "
                    "either way). To summarise it pass max_background= (a random sample, its "
                    "effect measured) or background=wb.kmeans(background, k) (weighted "
                    "representative rows).",
                    UserWarning,
                    stacklevel=3,
                )
        Z = e.encode(masker.background)
        return np.ascontiguousarray(Z, dtype=np.float64), masker.weights

    def _explained_scale(self, raw: np.ndarray) -> np.ndarray:
        return _sigmoid(raw) if self.model_output == "probability" else raw

    # ---------------------------------------------------------------- helpers
    def _encode(self, X: Any) -> np.ndarray:
        return np.ascontiguousarray(self.ensemble.encode(X), dtype=np.float64)

    def _select(self, target: Any, n_rows: int) -> tuple[TargetSelection, str]:
        """The outputs ``target`` picks (:mod:`whybox._targets`) and their description."""
        all_idx = [1] if self._binary_margin else None
        sel = resolve_target(
            target,
            self._labels,
            is_classifier=self._is_classifier,
            n_rows=n_rows,
            all_indices=all_idx,
            default=[1] if self._binary_margin else None,
        )
        names = [str(c) for c in self._labels]
        if sel.row_targets is not None:
            return sel, f"{self._scale()} of each row's target ({PER_ROW_NAME}s)"
        return sel, self._describe([names[j] for j in sel.indices], sel.indices)

    @property
    def _binary_margin(self) -> bool:
        return self.ensemble.n_outputs == 1 and len(self._labels) == 2

    def _scale(self) -> str:
        e = self.ensemble
        if self.model_output == "probability":
            return "probability"
        if self._binary_margin and e.link == "logistic":
            return "log-odds"
        if e.raw_output.startswith("probability"):
            return "probability"
        return e.raw_output

    def _describe(self, names: list[str], idx: list[int]) -> str:
        """``params["output"]`` in words (see :mod:`whybox.models`)."""
        scale = self._scale()
        if self._binary_margin:
            neg = "1 - p" if self.model_output == "probability" else "negated margin"
            parts = [n + (f" ({neg})" if j == 0 else "") for n, j in zip(names, idx, strict=True)]
            out = f"{scale} of class " + ", ".join(parts)
        elif self._is_classifier:
            out = f"{scale} of class " + ", ".join(names)
        elif scale.startswith("prediction"):
            out = ", ".join(names)
        else:
            out = f"{scale}: " + ", ".join(names)
        if self.model_output == "probability":
            out += (
                " (approximate: shap's rescaled interventional TreeSHAP, not exact Shapley "
                "values of the probability)"
            )
        return out

    def _chunk(self, n_cols: int) -> int:
        if self.chunk_rows is not None:
            return self.chunk_rows
        return max(256, _CHUNK_BYTES // max(1, 8 * n_cols))

    def _prepare(self, X: Any) -> tuple[Any, Any, list[str], np.ndarray | None]:
        """Validate ``X``: (X as given, X in the model's column order, the caller's names,
        the permutation from model positions to the caller's or None)."""
        X = as_2d_input(X)
        check_nonempty(X)
        e = self.ensemble
        if isinstance(X, pd.DataFrame) and e.feature_names is not None:
            # the ensemble matches the columns as the library does (LightGBM renames them)
            selected = e.select_columns(X)
            if selected.shape[1] != X.shape[1]:
                chosen = set(selected.columns)
                extra = [c for c in X.columns if c not in chosen]
                raise InvalidInputError(
                    f"X has columns the model was not fitted on: {extra}. Expected exactly: "
                    f"{list(e.feature_names)} (in any order); drop the other columns."
                )
            pos = {c: j for j, c in enumerate(X.columns)}
            order = np.asarray([pos[c] for c in selected.columns], dtype=np.int64)
            inverse = None if np.array_equal(order, np.arange(len(order))) else np.argsort(order)
            check_finite(X, allow_nan=True)  # NaN is missing; infinities are refused
            return X, selected, [str(c) for c in X.columns], inverse
        if X.shape[1] != e.n_features:
            raise InvalidInputError(
                f"X has {X.shape[1]} features but the model was trained on {e.n_features}."
                " A numpy array is read by position: pass the same features, in the same "
                "order, as at fit time (or a DataFrame, matched by column name)."
            )
        names = (
            list(e.feature_names)
            if e.feature_names is not None
            else (
                [str(c) for c in X.columns]
                if isinstance(X, pd.DataFrame)
                else [f"x{j}" for j in range(X.shape[1])]
            )
        )
        check_finite(X, allow_nan=True)
        return X, X, names, None

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
        self,
        X: Any,
        *,
        target: Any = None,
        progress: Any = None,
        out: Any = None,
        **kwargs: Any,
    ) -> Explanation:
        """SHAP values of each row of ``X``: (n, p) or (n, p, k).

        Parameters
        ----------
        X : DataFrame or array (n, p)
            Rows to explain (NaN allowed where the model handles missing values). A
            DataFrame's columns are matched to the model's by name; values come back in
            its column order.
        target : optional
            Output(s): class label or index, list, ``"all"``, or a 1-D array / tensor /
            Series with one target per row (see the class Notes).
        progress : callable(done, total), optional
        out : str or path-like, optional
            On Dask: a new or empty folder for one ``.npy`` shard per partition, opened
            lazily by ``wb.load(out)`` (a :class:`~whybox._shards.ShardedExplanation`).

        Raises
        ------
        InvalidParameterError
            For an unknown keyword (e.g. shap's ``check_additivity``: whybox always checks),
            or ``out=`` without Dask or naming a non-empty folder.
        """
        check_keywords(
            kwargs,
            ("target", "progress", "out"),
            where="TreeShap.explain",
            constructor=_CONSTRUCTOR,
        )
        from .._dask_explain import route

        routed = route(self, X, out=out, progress=progress, target=target)
        if routed is not None:  # a Dask X, or backend="dask"
            return routed
        with _numba_threads(self.n_jobs):
            return self._explain(X, target=target, progress=progress)

    def _explain(self, X: Any, *, target: Any = None, progress: Any = None) -> Explanation:
        """The work of :meth:`explain`."""
        X, Xm, names, inverse = self._prepare(X)
        e = self.ensemble
        prob = self.model_output == "probability"
        if self.feature_perturbation == "tree_path_dependent":
            compute, base = self._path_kernel(), self._expected_value_path()
        else:
            compute, base = self._interventional_kernel(prob)
        sel, output = self._select(target, X.shape[0])
        values, base_values, predictions = self._run(
            Xm, sel, (len(names),), compute, base, progress, _sigmoid if prob else None
        )
        approx = _probability_error(self, Xm, values, sel) if prob else None
        if inverse is not None:
            values = values[:, inverse]
        out_names, params_target, meta = self._target_names(sel)
        params = {
            "output": output,
            "target": params_target,
            "link": self.link,
            "model_output": self.model_output,
            "exact": not prob,
            "feature_perturbation": self.feature_perturbation,
            "model_type": model_type_name(self.model),
            "background_rows": None if self._bg is None else int(self._bg[0].shape[0]),
            "n_trees": int(e.n_trees),
            "max_depth": self._depth,
        }
        if self.background_effect is not None:
            params["background_effect"] = self.background_effect
        if approx is not None:
            err, how = approx
            params["approximation_error"] = err
            warnings.warn(
                f"TreeShap(model_output='probability') is shap's rescaled approximation, not "
                f"the Shapley values of the probability: on the first explained row its values "
                f"differ from the exact ones by up to {err:.3g} ({how}). For exact values use "
                "wb.explain(model, X, background=...) (ExactShap / KernelShap over the "
                "background), or explain the log-odds exactly with model_output='raw'.",
                UserWarning,
                stacklevel=3,
            )
        return Explanation(
            values,
            base_values,
            data=X,
            feature_names=names,
            output_names=out_names,
            std=None,  # exact: no sampling error (and no second n x p array)
            predictions=predictions,
            method=self.method,
            params=params,
            n_evals=0,
            random_state=self.random_state,
            meta=meta,
        )

    def _target_names(self, sel: TargetSelection) -> tuple[list[str], Any, dict[str, Any]]:
        """output_names, params["target"] and meta of a selection."""
        names = [str(c) for c in self._labels]
        if sel.row_targets is not None:
            per_row = [names[j] for j in sel.row_targets]
            return [PER_ROW_NAME], per_row, {"targets": per_row, ROW_KEYS: ["targets"]}
        out = [names[j] for j in sel.indices]
        return out, (out[0] if sel.single else out), {}

    def _run(
        self,
        X: Any,
        sel: TargetSelection,
        feature_shape: tuple[int, ...],
        compute: Callable[[np.ndarray, np.ndarray], np.ndarray],
        base: np.ndarray,
        progress: Any,
        transform: Callable[[np.ndarray], np.ndarray] | None = None,
    ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """Explain ``X`` chunk by chunk and check the result: the one loop of every mode.

        ``compute(Z, raw)`` maps encoded rows (c, p) and their raw output (c, K) to values
        (c, *feature_shape, K); ``transform`` maps the raw output to the explained one
        (the logistic for probabilities). Each selected output is an ensemble column times
        a sign (class 0 of a binary margin model: -1; on probabilities ``1 - p``). The
        parsed ensemble is checked against the model on the first rows and the values must
        add up; either failure raises.

        Returns
        -------
        values (n, *feature_shape[, k]), base_values (n[, k]) and predictions (n[, k]); the
        output axis is dropped when one output (or one per row) was asked for.
        """
        e = self.ensemble
        n, K = X.shape[0], e.n_outputs
        per_row = sel.row_targets is not None
        chosen = sel.row_targets if per_row else sel.indices
        cols = np.asarray([self._columns[j][0] for j in chosen], dtype=np.int64)
        signs = np.asarray([self._columns[j][1] for j in chosen], dtype=float)
        k = 1 if per_row else len(cols)
        values = np.zeros((n, *feature_shape, k))
        preds = np.zeros((n, K))
        per = int(np.prod(feature_shape)) * K
        chunk = self._chunk(per) if len(feature_shape) == 1 else self._chunk(per) // 4
        chunk = max(1, chunk)
        for start in range(0, n, chunk):
            stop = min(n, start + chunk)
            Xc = self._encode(X.iloc[start:stop] if isinstance(X, pd.DataFrame) else X[start:stop])
            raw = e.predict_raw(Xc)
            if start == 0:
                m = min(200, stop)
                self._verify(X.iloc[:m] if isinstance(X, pd.DataFrame) else X[:m], raw[:m])
            v = compute(Xc, raw)
            if per_row:
                rows = np.arange(stop - start)
                picked = v[rows, ..., cols[start:stop]]  # (c, *feature_shape)
                shape = (-1,) + (1,) * len(feature_shape)
                values[start:stop, ..., 0] = picked * signs[start:stop].reshape(shape)
            else:
                values[start:stop] = v[..., cols] * signs
            preds[start:stop] = raw if transform is None else transform(raw)
            if progress is not None:
                progress(stop, n)
        base_all = np.asarray(base, dtype=float)
        # class 0 on the probability scale is 1 - p: offset 1 where the sign is -1
        offset = (1.0 - signs) / 2.0 if transform is not None else np.zeros_like(signs)
        if per_row:
            base_values = (offset + signs * base_all[cols])[:, None]
            predictions = (offset + signs * preds[np.arange(n), cols])[:, None]
        else:
            base_values = np.broadcast_to(offset + signs * base_all[cols], (n, k)).copy()
            predictions = offset + signs * preds[:, cols]
        gap = predictions - base_values - values.sum(axis=tuple(range(1, values.ndim - 1)))
        scale = max(1.0, float(np.abs(predictions).max()))
        if np.abs(gap).max() > 1e-6 * scale:
            raise WhyboxError(
                f"TreeSHAP values do not add up (completeness gap {np.abs(gap).max():.3g}); "
                "refusing to return them. Please report this with the model type and version."
            )
        if per_row or sel.single:
            values, base_values, predictions = values[..., 0], base_values[:, 0], predictions[:, 0]
        return values, base_values, predictions

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
        self, X: Any, *, target: Any = None, progress: Any = None, **kwargs: Any
    ) -> Explanation:
        """Path-dependent SHAP interaction values: values (n, p, p) or (n, p, p, k).

        Row ``i`` of each matrix adds up to feature ``i``'s SHAP value; the matrix adds up to
        ``prediction - base value``. ``target`` as in :meth:`explain`; features in the
        caller's column order.
        """
        check_keywords(
            kwargs,
            ("target", "progress"),
            where="TreeShap.explain_interactions",
            constructor=_CONSTRUCTOR,
        )
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
        X, Xm, names, inverse = self._prepare(X)
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
        sel, output = self._select(target, X.shape[0])
        values, base_values, predictions = self._run(
            Xm,
            sel,
            (p, p),
            lambda Z, raw: path_dependent_interactions(Z, layout, depth, tq, wq, tf_, tfs_),
            self._expected_value_path(),
            progress,
        )
        if inverse is not None:
            values = values[:, inverse][:, :, inverse]
        out_names, params_target, meta = self._target_names(sel)
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
                "output": output,
                "target": params_target,
                "feature_perturbation": "tree_path_dependent",
                "model_type": model_type_name(self.model),
                "features": names,
            },
            n_evals=0,
            random_state=self.random_state,
            meta=meta,
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
