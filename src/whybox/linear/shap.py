"""Exact SHAP values of linear models, from the coefficients and the background means.

For a model whose raw output is ``f(x) = b + w . x`` (a regressor's prediction, a linear
classifier's decision function, i.e. log-odds for logistic regression), the interventional
Shapley values against a background with mean ``mu`` are ``phi_j = w_j (x_j - mu_j)`` and
the base value is ``f(mu)``: exact, in one matrix product, for any number of features.

References
----------
Lundberg, S. M. and Lee, S.-I. (2017). A unified approach to interpreting model predictions.
NeurIPS. (Linear SHAP, Corollary 1.)
"""

from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd

from .._targets import PER_ROW_NAME, resolve_target
from .._validation import (
    as_2d_input,
    check_finite,
    check_in,
    check_int,
    check_keywords,
    check_nonempty,
)
from ..errors import InvalidParameterError, UnsupportedModelError
from ..explainer import Explainer
from ..explanation import ROW_KEYS, Explanation
from ..games.maskers import Baseline, Masker, summarise_background
from ..models import model_type_name, wrap_model

__all__ = ["LinearShap", "is_linear_model"]


def is_linear_model(model: Any) -> bool:
    """True for fitted scikit-learn style linear models (``coef_`` and ``intercept_``)."""
    coef = getattr(model, "coef_", None)
    return (
        coef is not None
        and hasattr(model, "intercept_")
        and np.asarray(coef).dtype.kind in "fiu"
        and (hasattr(model, "decision_function") or hasattr(model, "predict"))
        and not hasattr(model, "steps")
    )


class LinearShap(Explainer):
    """Exact interventional SHAP values of a linear or logistic model.

    Parameters
    ----------
    model : fitted linear model
        Anything with ``coef_`` and ``intercept_`` (LinearRegression, Ridge, Lasso,
        LogisticRegression, SGD*, LinearSVC, RidgeClassifier, ...). The explained output is
        the model's raw linear output: the prediction of a regressor, the decision function
        of a classifier -- for logistic regression that is the log-odds.
    background : DataFrame, array or Independent masker
        Reference rows standing for the data (only their weighted mean is used), e.g.
        ``X_train.sample(100, random_state=0)``. Required: the explained rows never stand in.
    link : {"identity", "logit"}
        Accepted where it names the explained scale: ``"logit"`` for logistic regression
        (its decision function is the log-odds), ``"identity"`` for regressors and
        classifiers without probabilities. A classifier whose decision function is not a
        log-odds (an SVM with probabilities) refuses ``"logit"``, and logistic regression
        refuses ``"identity"`` (its probability is not linear: use ExactShap / KernelShap).
    random_state : int or None, default 0
        Seed of the background sample when ``max_background`` subsamples.
    max_background : int or None
        None (default): the background is used whole.
    allow_nan : bool, default False
        Accepted for the API's sake; linear models do not take NaN.

    Notes
    -----
    ``target`` means what it means for every explainer (see :func:`whybox.wrap_model`): for
    a binary classifier (one decision
    function, for ``classes_[1]``) ``target=0`` (or the label ``classes_[0]``) is the
    negated decision function; ``"all"`` is the one decision function; ``[0, 1]`` both; a 1-D
    array / tensor / Series gives one target per row.

    Examples
    --------
    Against a background, the SHAP value of a linear model is ``coef * (x - mean)``:

    >>> from sklearn.linear_model import LogisticRegression
    >>> X, y = wb.zoo.breast_cancer()
    >>> X = (X - X.mean()) / X.std()
    >>> model = LogisticRegression().fit(X, y)
    >>> exp = wb.LinearShap(model, X, link="logit").explain(X.iloc[:3])
    >>> exp.values.shape, exp.params["output"]
    ((3, 30), 'log-odds of class 1')
    >>> bool(np.allclose(exp.values, model.coef_[0] * (X.iloc[:3] - X.mean()).to_numpy()))
    True

    References
    ----------
    Lundberg and Lee (2017), NeurIPS.
    """

    method = "linear"

    def __init__(
        self,
        model: Any,
        background: Any = None,
        *,
        link: str | None = None,
        random_state: int | None = 0,
        max_background: int | None = None,
        allow_nan: bool = False,
    ) -> None:
        if not is_linear_model(model):
            raise UnsupportedModelError(
                f"LinearShap needs a fitted linear model with coef_ and intercept_; got "
                f"{model_type_name(model)}. Use ExactShap or KernelShap for other models."
            )
        if background is None:
            raise InvalidParameterError(
                "LinearShap needs background= rows that stand for the data (e.g. "
                "background=X_train.sample(100, random_state=0)) or background=wb.Baseline(...)"
                "; the explained rows never stand in for them."
            )
        check_in("link", link, (None, "identity", "logit"))
        logistic = _is_logistic(model)
        if link == "logit" and not logistic:
            raise InvalidParameterError(
                f"link='logit' is the log-odds of a class probability, but the linear output of "
                f"{model_type_name(model)} is "
                + ("a prediction" if not hasattr(model, "classes_") else "not a log-odds")
                + ": LinearShap explains it with link='identity'. For the log-odds of a "
                "calibrated probability use ExactShap or KernelShap."
            )
        if link == "identity" and logistic:
            raise InvalidParameterError(
                "LinearShap explains logistic regression's decision function, the log-odds "
                "(link='logit'); its probability (link='identity') is not linear in the "
                "features: use wb.explain(model, X, background=...) or ExactShap for the "
                "probability."
            )
        self.model = model
        self.background = background
        self.link = link or ("logit" if logistic else "identity")
        self.random_state = random_state
        self.max_background = (
            None
            if max_background is None
            else check_int("max_background", max_background, minimum=1)
        )
        self.allow_nan = allow_nan

    def explain(
        self, X: Any, *, target: Any = None, progress: Any = None, **kwargs: Any
    ) -> Explanation:
        """Explain each row of ``X``: values of shape (n, p) or (n, p, k).

        ``target`` selects outputs (class label or index, list, ``"all"``, or one per row;
        see the class Notes). A DataFrame's columns are matched to the model's by name and
        the values come back in its column order.
        """
        check_keywords(
            kwargs,
            ("target", "progress"),
            where="LinearShap.explain",
            constructor=("background", "link", "random_state", "max_background", "allow_nan"),
        )
        X = as_2d_input(X)
        check_nonempty(X)
        check_finite(X)
        fn = wrap_model(self.model, target=None, X=X)
        X = fn.prepare(X)
        coef = np.atleast_2d(np.asarray(self.model.coef_, dtype=float))  # (k, p)
        intercept = np.atleast_1d(np.asarray(self.model.intercept_, dtype=float))
        Xn = _numeric(fn._to_model(X))  # the model's column order
        if coef.shape[1] != Xn.shape[1]:
            raise InvalidParameterError(
                f"X has {Xn.shape[1]} features but the model has {coef.shape[1]} coefficients."
            )
        bg = self.background
        if isinstance(bg, Baseline):
            masker = bg.bound(X)
        elif isinstance(bg, Masker):
            masker = bg
        else:
            # whole, or a sample only when max_background asks, warning with its effect on the
            # mean of the linear output (the shared rule of every explainer's background)
            masker = summarise_background(
                bg,
                self.max_background,
                random_state=self.random_state,
                allow_nan=self.allow_nan,
                evaluate=lambda rows: _numeric(fn._to_model(rows)) @ coef.T + intercept,
            )
        mu = masker.weights @ _numeric(fn._to_model(masker.background))
        contrib = Xn[:, :, None] * coef.T[None, :, :] - (mu[:, None] * coef.T)[None, :, :]
        base = np.broadcast_to(intercept + coef @ mu, (Xn.shape[0], coef.shape[0])).copy()
        pred = Xn @ coef.T + intercept
        classes = getattr(self.model, "classes_", None)
        labels: list[Any]
        if classes is not None and coef.shape[0] == 1 and len(classes) == 2:
            # binary: one decision function for classes_[1]; class 0 is its negation
            labels = list(np.asarray(classes).tolist())
            columns = [(0, -1.0), (0, 1.0)]
            sel = resolve_target(
                target, labels, is_classifier=True, n_rows=Xn.shape[0], all_indices=[1]
            )
        else:
            labels = (
                list(np.asarray(classes).tolist())
                if classes is not None and len(classes) == coef.shape[0]
                else (
                    ["prediction"]
                    if coef.shape[0] == 1
                    else [f"prediction {j}" for j in range(coef.shape[0])]
                )
            )
            columns = [(j, 1.0) for j in range(coef.shape[0])]
            sel = resolve_target(
                target, labels, is_classifier=classes is not None, n_rows=Xn.shape[0]
            )
        names = [str(c) for c in labels]
        order = (
            fn._column_order([str(c) for c in X.columns])[0]
            if isinstance(X, pd.DataFrame) and fn.feature_names_in is not None
            else None
        )
        inverse = None if order is None else np.argsort(order)
        if sel.row_targets is not None:
            cols = np.asarray([columns[j][0] for j in sel.row_targets])
            signs = np.asarray([columns[j][1] for j in sel.row_targets])
            rows = np.arange(Xn.shape[0])
            values = contrib[rows, :, cols] * signs[:, None]
            base_v = base[rows, cols] * signs
            pred_v = pred[rows, cols] * signs
            out_names = [PER_ROW_NAME]
            per_row = [names[j] for j in sel.row_targets]
            params_target: Any = per_row
            meta = {"targets": per_row, ROW_KEYS: ["targets"]}
            output = f"{self._scale()} of each row's target ({PER_ROW_NAME}s)"
        else:
            cols = np.asarray([columns[j][0] for j in sel.indices])
            signs = np.asarray([columns[j][1] for j in sel.indices])
            values = contrib[:, :, cols] * signs
            base_v, pred_v = base[:, cols] * signs, pred[:, cols] * signs
            out_names = [names[j] for j in sel.indices]
            params_target = out_names[0] if sel.single else out_names
            meta = {}
            output = self._describe(
                names, sel.indices, binary=len(columns) == 2 and columns[0][1] < 0
            )
            if sel.single:
                values, base_v, pred_v = values[:, :, 0], base_v[:, 0], pred_v[:, 0]
        if inverse is not None:
            values = values[:, inverse]
        return Explanation(
            values,
            base_v,
            data=X,
            feature_names=(
                [str(c) for c in X.columns]
                if isinstance(X, pd.DataFrame)
                else (
                    list(fn.feature_names_in)
                    if fn.feature_names_in is not None
                    else [f"x{j}" for j in range(Xn.shape[1])]
                )
            ),
            output_names=out_names,
            std=np.zeros_like(values),
            predictions=pred_v,
            method=self.method,
            params={
                "output": output,
                "target": params_target,
                "link": self.link,
                "model_type": fn.model_type,
                "background_rows": masker.n_rows,
                "estimator": "exact linear SHAP from coefficients",
            },
            n_evals=0,
            random_state=self.random_state,
            meta=meta,
        )

    def _scale(self) -> str:
        if self.link == "logit":
            return "log-odds"
        return "decision function" if hasattr(self.model, "classes_") else "prediction"

    def _describe(self, names: list[str], idx: list[int], *, binary: bool) -> str:
        """``params["output"]`` in words (see :mod:`whybox.models`)."""
        if not hasattr(self.model, "classes_"):
            return ", ".join(names[j] for j in idx)
        neg = "negated margin" if self.link == "logit" else "negated"
        parts = [names[j] + (f" ({neg})" if binary and j == 0 else "") for j in idx]
        return f"{self._scale()} of class " + ", ".join(parts)


def _is_logistic(model: Any) -> bool:
    """Linear models whose decision function is the log-odds of ``classes_[1]``."""
    name = type(model).__name__
    if name in ("LogisticRegression", "LogisticRegressionCV"):
        return True
    return name == "SGDClassifier" and getattr(model, "loss", "") in ("log_loss", "log")


def _numeric(X: Any) -> np.ndarray:
    if isinstance(X, pd.DataFrame):
        bad = [c for c in X.columns if not pd.api.types.is_numeric_dtype(X[c].dtype)]
        if bad:
            raise InvalidParameterError(
                f"LinearShap needs numeric features; columns {bad} are not. Explain a "
                "Pipeline with encoders with ExactShap or KernelShap instead."
            )
        return X.to_numpy(dtype=float)
    return np.asarray(X, dtype=float)
