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

from .._validation import as_2d_input, check_finite, check_nonempty
from ..errors import InvalidParameterError, UnsupportedModelError
from ..explainer import Explainer
from ..explanation import Explanation
from ..games.maskers import Independent, Masker
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
        LogisticRegression, SGD*, LinearSVC, ...). The explained output is the model's raw
        linear output: the prediction for regressors, the decision function (log-odds for
        logistic regression) for classifiers.
    background : DataFrame, array or Independent masker
        Reference rows; only their (weighted) mean is used.

    Examples
    --------
    >>> exp = LinearShap(model, background=X_train).explain(X_test)  # doctest: +SKIP

    References
    ----------
    Lundberg and Lee (2017), NeurIPS.
    """

    method = "linear"

    def __init__(self, model: Any, background: Any = None, **kwargs: Any) -> None:
        if not is_linear_model(model):
            raise UnsupportedModelError(
                f"LinearShap needs a fitted linear model with coef_ and intercept_; got "
                f"{model_type_name(model)}. Use ExactShap or KernelShap for other models."
            )
        unknown = set(kwargs) - {"random_state", "link", "max_background", "allow_nan"}
        if unknown:
            raise InvalidParameterError(
                f"LinearShap does not take {sorted(unknown)}; it takes model and background."
            )
        if kwargs.get("link", "identity") != "identity":
            raise InvalidParameterError(
                "LinearShap explains the model's linear output (log-odds for logistic "
                "regression), which is already the link scale; pass link='identity'."
            )
        self.model = model
        self.background = background
        self.random_state = kwargs.get("random_state", 0)
        self.max_background = kwargs.get("max_background", 100_000)

    def explain(
        self, X: Any, *, target: Any = None, progress: Any = None, **kwargs: Any
    ) -> Explanation:
        """Explain each row of ``X``: values of shape (n, p) or (n, p, k).

        ``target`` selects outputs of multiclass models (class label or index, list, "all").
        """
        X = as_2d_input(X)
        check_nonempty(X)
        check_finite(X)
        names_in = getattr(self.model, "feature_names_in_", None)
        fn = wrap_model(self.model, target=None, X=X)
        X = fn.prepare(X)
        Xn = _numeric(X)
        coef = np.atleast_2d(np.asarray(self.model.coef_, dtype=float))  # (k, p)
        intercept = np.atleast_1d(np.asarray(self.model.intercept_, dtype=float))
        if coef.shape[1] != Xn.shape[1]:
            raise InvalidParameterError(
                f"X has {Xn.shape[1]} features but the model has {coef.shape[1]} coefficients."
            )
        bg = self.background if self.background is not None else X
        masker = (
            bg
            if isinstance(bg, Masker)
            else Independent(bg, max_samples=self.max_background, random_state=self.random_state)
        )
        mu = masker.weights @ _numeric(masker.background)
        values = Xn[:, :, None] * coef.T[None, :, :] - (mu[:, None] * coef.T)[None, :, :]
        base = np.broadcast_to(intercept + coef @ mu, (Xn.shape[0], coef.shape[0])).copy()
        pred = Xn @ coef.T + intercept
        classes = getattr(self.model, "classes_", None)
        if coef.shape[0] == 1:
            names = [f"decision {classes[-1]}"] if classes is not None else ["prediction"]
        else:
            names = (
                [str(c) for c in classes]
                if classes is not None
                else [f"output {j}" for j in range(coef.shape[0])]
            )
        sign = 1.0
        if coef.shape[0] == 1 and classes is not None and len(classes) == 2:
            # binary: one decision function, the log-odds of classes_[1]
            if target is not None and not (isinstance(target, str) and target == "all"):
                if target in (classes[1], 1) and not (target == 0 and classes[1] != 0):
                    pass
                elif target == classes[0] or target == 0:
                    sign, names = -1.0, [f"decision {classes[0]}"]
                else:
                    raise InvalidParameterError(
                        f"unknown target {target!r}: the classes are {list(classes)}."
                    )
            target = None
        idx, single = _select(target, names, classes)
        values, base, pred = (sign * values[:, :, idx], sign * base[:, idx], sign * pred[:, idx])
        out_names = [names[i] for i in idx]
        if single:
            values, base, pred = values[:, :, 0], base[:, 0], pred[:, 0]
        is_logistic = type(self.model).__name__ in ("LogisticRegression", "LogisticRegressionCV")
        output = ("log-odds (decision function) " if is_logistic else "") + ", ".join(out_names)
        return Explanation(
            values,
            base,
            data=X,
            feature_names=[
                str(c)
                for c in (
                    names_in
                    if names_in is not None
                    else (
                        X.columns
                        if isinstance(X, pd.DataFrame)
                        else [f"x{j}" for j in range(Xn.shape[1])]
                    )
                )
            ],
            output_names=out_names,
            std=np.zeros_like(values),
            predictions=pred,
            method=self.method,
            params={
                "output": output,
                "model_type": fn.model_type,
                "background_rows": masker.n_rows,
                "estimator": "exact linear SHAP from coefficients",
            },
            n_evals=0,
            random_state=self.random_state,
        )


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


def _select(target: Any, names: list[str], classes: Any) -> tuple[list[int], bool]:
    k = len(names)
    if target is None:
        return (list(range(k)), k == 1) if k > 1 else ([0], True)
    if isinstance(target, str) and target == "all":
        return list(range(k)), False
    targets = target if isinstance(target, (list, tuple)) else [target]
    labels = list(classes) if classes is not None and len(classes) == k else names
    idx = []
    for t in targets:
        if t in labels:
            idx.append(labels.index(t))
        elif isinstance(t, (int, np.integer)) and -k <= t < k:
            idx.append(int(t) % k)
        else:
            raise InvalidParameterError(
                f"unknown target {t!r}: the model's linear outputs are {names}."
            )
    return idx, not isinstance(target, (list, tuple))
