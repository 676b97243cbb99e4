"""Checks around TreeShap: the model's own raw output, the output layout of ``target``, and
the measured error of shap's probability approximation.
"""

from __future__ import annotations

from math import factorial
from typing import Any

import numpy as np
import pandas as pd

from .._targets import TargetSelection
from ..errors import InvalidParameterError, UnsupportedModelError, WhyboxError
from ..models import _raw_adapter

__all__ = ["raw_model_output"]

#: model rows one error measurement may evaluate (enumeration or permutations)
_MEASURE_ROWS = 2**22


def _output_layout(model: Any, e: Any) -> tuple[list[Any], list[tuple[int, float]], bool]:
    """The outputs ``target`` picks from: (labels, (ensemble column, sign) per label,
    is_classifier). A binary classifier with one margin column has two labels: class 0 is
    the negated margin."""
    try:
        raw = _raw_adapter(model)
        labels, is_clf = raw.output_names, raw.is_classifier
    except WhyboxError:
        labels, is_clf = None, False
    K = e.n_outputs
    if is_clf and labels is not None and len(labels) == 2 and K == 1:
        return list(labels), [(0, -1.0), (0, 1.0)], True
    if is_clf and labels is not None and len(labels) == K:
        return list(labels), [(j, 1.0) for j in range(K)], True
    return list(e.output_names), [(j, 1.0) for j in range(K)], is_clf and K > 1


def _probability_error(
    explainer: Any, Xm: Any, values: np.ndarray, sel: TargetSelection
) -> tuple[float, str]:
    """Largest difference, on the first explained row, between shap's rescaled probability
    values and the exact interventional Shapley values of the probability game
    ``v(S) = sum_b w_b sigmoid(f(x_S, z_b))``: by enumerating every coalition when that
    costs at most ``_MEASURE_ROWS`` model rows, else estimated from antithetic permutations
    (the reply names the standard error)."""
    e = explainer.ensemble
    Z, w = explainer._bg
    z0 = explainer._encode(Xm.iloc[:1] if isinstance(Xm, pd.DataFrame) else Xm[:1])[0]
    p, B = z0.shape[0], Z.shape[0]
    chosen = sel.row_targets if sel.row_targets is not None else sel.indices
    sign = explainer._columns[chosen[0]][1]
    approx = values[0] if values.ndim == 2 else values[0, :, 0]

    def v(masks: np.ndarray) -> np.ndarray:
        out = np.empty(len(masks))
        step = max(1, _MEASURE_ROWS // 16 // B)
        for s in range(0, len(masks), step):
            m = masks[s : s + step]
            rows = np.where(m[:, None, :], z0[None, None, :], Z[None, :, :]).reshape(-1, p)
            prob = 1.0 / (1.0 + np.exp(-e.predict_raw(rows)[:, 0]))
            out[s : s + step] = prob.reshape(len(m), B) @ w
        return out

    if (2**p) * B <= _MEASURE_ROWS:
        codes = np.arange(2**p)
        masks = ((codes[:, None] >> np.arange(p)) & 1).astype(bool)
        vals = v(masks)
        size = masks.sum(axis=1)
        weight = np.array([factorial(k) * factorial(p - k - 1) / factorial(p) for k in range(p)])
        phi = np.zeros(p)
        for j in range(p):
            without = codes[~masks[:, j]]
            phi[j] = np.sum(weight[size[without]] * (vals[without | (1 << j)] - vals[without]))
        return float(np.abs(sign * phi - approx).max()), (
            f"exact enumeration of the {2**p} coalitions over {B} background rows"
        )
    rng = np.random.default_rng(explainer.random_state)
    n_perm = int(max(2, min(256, _MEASURE_ROWS // ((p + 1) * B))) // 2 * 2)
    draws = np.zeros((n_perm, p))
    for r in range(0, n_perm, 2):
        perm = rng.permutation(p)
        for q, order in enumerate((perm, perm[::-1])):  # antithetic pair
            masks = np.zeros((p + 1, p), dtype=bool)
            for i, j in enumerate(order):
                masks[i + 1 :, j] = True
            vals = v(masks)
            draws[r + q, order] = np.diff(vals)
    pairs = draws.reshape(-1, 2, p).mean(axis=1)
    phi = pairs.mean(axis=0)
    se = pairs.std(axis=0, ddof=1) / np.sqrt(len(pairs))
    return float(np.abs(sign * phi - approx).max()), (
        f"estimated from {n_perm} antithetic permutations over {B} background rows, standard "
        f"error up to {float(se.max()):.2g}"
    )


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
