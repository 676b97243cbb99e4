"""Adapters that turn any supported model into ``f(X) -> float[m, k]``.

Estimators never see a model object: they call a :class:`ModelFunction`, which knows how to
call scikit-learn estimators and Pipelines (DataFrames with categorical and string columns
included), XGBoost and LightGBM (scikit-learn API and native Boosters), torch modules and
plain callables, which output(s) to return (``target=``) and on which scale (``link=``).

Output selection (``target=``)
------------------------------
* binary classifiers: the positive class (``classes_[1]``) by default;
* multiclass classifiers: all classes (``"all"``) by default;
* regressors: the prediction (every column of a multi-output regressor);
* torch modules and callables: the single output, or all of them when there are several.

``target`` may be a class label, an output index, a list of either, or ``"all"``. A label is
matched before an index, so for classes ``[1, 2, 3]`` ``target=1`` means the class labelled 1.
The selected outputs and their scale are described in ``ModelFunction.output_description``
and end up in ``Explanation.params["output"]``.
"""

from __future__ import annotations

import json
import numbers
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd

from ._validation import align_columns, check_in
from .errors import (
    InvalidParameterError,
    MissingDependencyError,
    ModelCallError,
    UnsupportedModelError,
    WhyboxError,
)

__all__ = ["LINKS", "ModelFunction", "is_torch_module", "model_type_name", "wrap_model"]

LINKS = ("identity", "logit")
_SUPPORTED = (
    "scikit-learn classifiers, regressors and Pipelines; XGBoost and LightGBM models "
    "(scikit-learn API or native Booster); torch.nn.Module; or a plain callable "
    "f(X) -> array of shape (n,) or (n, k)"
)


def model_type_name(model: Any) -> str:
    """``module.ClassName`` of a model object, for messages and reports."""
    t = type(model)
    return f"{t.__module__}.{t.__qualname__}"


def _has_base(model: Any, module_prefix: str, name: str) -> bool:
    return any(
        c.__module__.startswith(module_prefix) and c.__name__ == name for c in type(model).__mro__
    )


def is_torch_module(model: Any) -> bool:
    """True for ``torch.nn.Module`` instances, checked without importing torch."""
    return _has_base(model, "torch.nn.modules", "Module")


def _is_xgb_booster(model: Any) -> bool:
    return _has_base(model, "xgboost", "Booster")


def _is_lgb_booster(model: Any) -> bool:
    return _has_base(model, "lightgbm", "Booster")


@dataclass
class _Raw:
    """All outputs of a model, before target selection and link."""

    fn: Callable[[Any], np.ndarray]
    kind: str  # "probability" | "decision" | "regression" | "output"
    output_names: list[Any] | None  # class labels or names; None = not known before a call
    feature_names_in: list[str] | None = None
    n_features_in: int | None = None
    is_classifier: bool = False


@dataclass
class ModelFunction:
    """A model as a function ``f(X) -> float[m, k]`` on the selected outputs.

    Attributes
    ----------
    model : object
        The wrapped model.
    model_type : str
        ``module.ClassName`` of the model.
    kind : str
        ``"probability"``, ``"decision"``, ``"regression"`` or ``"output"``.
    output_indices : list of int
        Indices of the selected outputs among all model outputs.
    output_names : list of str
        Names of the selected outputs (class labels as strings, or ``"prediction"``).
    single_output : bool
        True when one output was asked for: explainers then drop the output axis.
    link : str
        ``"identity"`` or ``"logit"`` (log-odds of a probability).
    output_description : str
        Plain description of what is explained, e.g. ``"log-odds of class 1"``.
    feature_names_in, n_features_in
        What the model was fitted on, when it says so; used to check and reorder inputs.
    """

    model: Any
    model_type: str
    kind: str
    output_indices: list[int]
    output_names: list[str]
    single_output: bool
    link: str
    output_description: str
    feature_names_in: list[str] | None = None
    n_features_in: int | None = None
    _raw: Callable[[Any], np.ndarray] = field(default=lambda X: np.empty(0), repr=False)
    n_calls: int = 0
    n_rows_evaluated: int = 0
    #: number of columns every model output must have (all outputs, before selection)
    _n_outputs_total: int | None = field(default=None, repr=False)

    @property
    def n_outputs(self) -> int:
        return len(self.output_indices)

    def prepare(self, X: Any, name: str = "X") -> Any:
        """Check ``X`` against the features the model was fitted on; reorder DataFrame columns."""
        return align_columns(X, self.feature_names_in, n_expected=self.n_features_in, name=name)

    def __call__(self, X: Any) -> np.ndarray:
        """Evaluate the selected outputs on the link scale: float array of shape (m, k)."""
        m = X.shape[0] if hasattr(X, "shape") else len(X)
        try:
            out = self._raw(X)
        except WhyboxError:
            raise
        except Exception as exc:
            shape = tuple(X.shape) if hasattr(X, "shape") else (m,)
            raise ModelCallError(
                f"the model ({self.model_type}) raised {type(exc).__name__}: {exc} while "
                f"whybox evaluated it on a batch of shape {shape}"
                + (f" with columns {list(X.columns)[:20]}" if isinstance(X, pd.DataFrame) else "")
                + ". Check that the model accepts inputs like X (the same columns and dtypes "
                "as at fit time); the original error is chained above."
            ) from exc
        try:
            out = np.asarray(out, dtype=float)
        except (TypeError, ValueError) as exc:
            raise ModelCallError(
                f"the model ({self.model_type}) returned {type(out).__name__}, which is not a "
                f"numeric array, for a batch of {m} rows; expected an array of shape (m,) or "
                "(m, k)."
            ) from exc
        if out.ndim == 0:
            if m != 1:
                raise ModelCallError(
                    f"the model ({self.model_type}) returned a single number for a batch of "
                    f"{m} rows; expected one output row per input row."
                )
            out = out.reshape(1, 1)
        elif out.ndim == 1:
            out = out[:, None]
        elif out.ndim > 2:
            out = out.reshape(out.shape[0], -1)
        if out.shape[0] != m:
            raise ModelCallError(
                f"the model ({self.model_type}) returned {out.shape[0]} rows for a batch of "
                f"{m} rows; expected one output row per input row."
            )
        if self._n_outputs_total is not None and out.shape[1] != self._n_outputs_total:
            raise ModelCallError(
                f"the model ({self.model_type}) returned {out.shape[1]} output column(s) but "
                f"whybox expected {self._n_outputs_total}. If the model has several outputs, "
                "pass example inputs X= to wrap_model so that whybox can count them."
            )
        self.n_calls += 1
        self.n_rows_evaluated += m
        sel = out[:, self.output_indices]
        if self.link == "logit":
            p = np.clip(sel, 1e-15, 1 - 1e-15)
            sel = np.log(p) - np.log1p(-p)
        return sel


# ------------------------------------------------------------------- raw adapters
def _sklearn_raw(model: Any) -> _Raw:
    names = getattr(model, "feature_names_in_", None)
    n_in = getattr(model, "n_features_in_", None)
    common = {
        "feature_names_in": None if names is None else [str(c) for c in names],
        "n_features_in": None if n_in is None else int(n_in),
    }
    classes = getattr(model, "classes_", None)
    if classes is not None and hasattr(model, "predict_proba"):
        return _Raw(
            fn=model.predict_proba,
            kind="probability",
            output_names=list(np.asarray(classes).tolist()),
            is_classifier=True,
            **common,
        )
    if classes is not None and hasattr(model, "decision_function"):
        classes = list(np.asarray(classes).tolist())
        names_ = [f"decision {classes[1]}"] if len(classes) == 2 else classes
        return _Raw(
            fn=model.decision_function,
            kind="decision",
            output_names=names_,
            is_classifier=len(classes) > 2,
            **common,
        )
    if not hasattr(model, "predict") and hasattr(model, "predict_proba"):
        # a classifier-like object without classes_: outputs named by index after a probe
        return _Raw(
            fn=model.predict_proba,
            kind="probability",
            output_names=None,
            is_classifier=True,
            **common,
        )
    return _Raw(fn=model.predict, kind="regression", output_names=None, **common)


def _xgb_raw(booster: Any) -> _Raw:
    try:
        import xgboost as xgb
    except ImportError as exc:  # pragma: no cover - the object could not exist without it
        raise MissingDependencyError("xgboost", "dev", "an XGBoost model") from exc
    config = json.loads(booster.save_config())
    objective = config["learner"]["objective"]["name"]
    n_class = int(config["learner"]["learner_model_param"].get("num_class", "0") or 0)
    fnames = booster.feature_names

    def dmatrix(X: Any) -> Any:
        if isinstance(X, pd.DataFrame):
            return xgb.DMatrix(X, enable_categorical=True, missing=np.nan)
        return xgb.DMatrix(np.asarray(X, dtype=float), feature_names=fnames, missing=np.nan)

    common = {
        "feature_names_in": None if fnames is None else list(fnames),
        "n_features_in": int(booster.num_features()),
    }
    if objective in ("binary:logistic", "reg:logistic"):

        def fn(X: Any) -> np.ndarray:
            p = booster.predict(dmatrix(X))
            return np.column_stack([1.0 - p, p])

        return _Raw(fn=fn, kind="probability", output_names=[0, 1], is_classifier=True, **common)
    if objective in ("multi:softprob", "multi:softmax"):

        def fn(X: Any) -> np.ndarray:
            margin = booster.predict(dmatrix(X), output_margin=True).reshape(-1, n_class)
            z = np.exp(margin - margin.max(axis=1, keepdims=True))
            return z / z.sum(axis=1, keepdims=True)

        return _Raw(
            fn=fn,
            kind="probability",
            output_names=list(range(n_class)),
            is_classifier=True,
            **common,
        )
    if objective.startswith(("binary:", "rank:")):  # hinge, logitraw, ranking: margins

        def fn(X: Any) -> np.ndarray:
            return booster.predict(dmatrix(X), output_margin=True)

        return _Raw(fn=fn, kind="decision", output_names=["margin"], **common)

    def fn(X: Any) -> np.ndarray:
        return booster.predict(dmatrix(X))

    return _Raw(fn=fn, kind="regression", output_names=None, **common)


def _lgb_raw(booster: Any) -> _Raw:
    objective = str(booster.params.get("objective") or booster.dump_model().get("objective", ""))
    n_class = int(booster.num_model_per_iteration())
    fnames = [str(f) for f in booster.feature_name()]
    auto = all(f == f"Column_{j}" for j, f in enumerate(fnames))
    common = {
        "feature_names_in": None if auto else fnames,
        "n_features_in": int(booster.num_feature()),
    }
    if objective.startswith(("binary", "cross_entropy", "xentropy")):

        def fn(X: Any) -> np.ndarray:
            p = np.asarray(booster.predict(X), dtype=float)
            return np.column_stack([1.0 - p, p])

        return _Raw(fn=fn, kind="probability", output_names=[0, 1], is_classifier=True, **common)
    if objective.startswith(("multiclass", "softmax", "multiclassova")):
        return _Raw(
            fn=lambda X: booster.predict(X),
            kind="probability",
            output_names=list(range(n_class)),
            is_classifier=True,
            **common,
        )
    return _Raw(fn=lambda X: booster.predict(X), kind="regression", output_names=None, **common)


def _torch_raw(module: Any) -> _Raw:
    try:
        import torch
    except ImportError as exc:  # pragma: no cover
        raise MissingDependencyError("torch", "torch", "explaining a torch model") from exc
    try:
        param = next(module.parameters())
        dtype, device = param.dtype, param.device
    except StopIteration:
        dtype, device = torch.get_default_dtype(), torch.device("cpu")

    def fn(X: Any) -> np.ndarray:
        if isinstance(X, pd.DataFrame):
            X = X.to_numpy(dtype=float)
        # C order, so DataFrame and array inputs take the same kernels (identical outputs);
        # writable, as torch cannot share read-only memory (pandas copy-on-write arrays)
        arr = np.ascontiguousarray(X)
        if not arr.flags.writeable:
            arr = arr.copy()
        t = torch.as_tensor(arr, dtype=dtype, device=device)
        with torch.no_grad():
            out = module(t)
        if isinstance(out, (tuple, list)):
            out = out[0]
        if hasattr(out, "logits"):
            out = out.logits
        return out.detach().to("cpu", torch.float64).numpy()

    return _Raw(fn=fn, kind="output", output_names=None)


def _callable_raw(fn: Callable[[Any], Any]) -> _Raw:
    return _Raw(fn=lambda X: np.asarray(fn(X)), kind="output", output_names=None)


def _raw_adapter(model: Any) -> _Raw:
    if isinstance(model, ModelFunction):
        raise InvalidParameterError("pass the original model, not a ModelFunction.")
    if _is_xgb_booster(model):
        return _xgb_raw(model)
    if _is_lgb_booster(model):
        return _lgb_raw(model)
    if is_torch_module(model):
        return _torch_raw(model)
    if hasattr(model, "predict") and hasattr(model, "fit"):
        return _sklearn_raw(model)
    if hasattr(model, "predict_proba") or (hasattr(model, "predict") and not callable(model)):
        return _sklearn_raw(model)
    if callable(model):
        return _callable_raw(model)
    raise UnsupportedModelError(
        f"whybox cannot call a model of type {model_type_name(model)}: it has no predict "
        f"method and is not callable. Supported: {_SUPPORTED}. Wrap anything else as a "
        "function, e.g. wb.explain(lambda X: my_model.score(X), X)."
    )


# ------------------------------------------------------------------ target selection
def _resolve_one(target: Any, names: list[Any], k: int, is_classifier: bool) -> int:
    target_is_bool = isinstance(target, (bool, np.bool_))
    for j, name in enumerate(names):
        # True == 1 in Python: a bool matches only a bool label, and an int only a non-bool one
        if isinstance(name, (bool, np.bool_)) != target_is_bool:
            continue
        try:
            if bool(name == target):
                return j
        except Exception:
            continue
    if isinstance(target, str):  # "1" for the label 1, "True" for True
        for j, name in enumerate(names):
            if str(name) == target:
                return j
    if isinstance(target, numbers.Integral) and not isinstance(target, bool) and -k <= target < k:
        return int(target) % k
    what = f"classes {names}" if is_classifier else f"{k} output(s) {names}"
    raise InvalidParameterError(
        f"unknown target {target!r}: this model has {what}. Pass a "
        + ("class label, " if is_classifier else "")
        + f"an output index between 0 and {k - 1}, a list of these, or 'all'."
    )


def _n_outputs_without_call(model: Any) -> int | None:
    """Number of outputs of a regressor, read from its fitted attributes; None if unknown."""
    try:  # the final step of a scikit-learn Pipeline
        est = model.steps[-1][1] if hasattr(model, "steps") else model
    except Exception:
        est = model
    for obj in (model, est):
        n = getattr(obj, "n_outputs_", None)
        if isinstance(n, numbers.Integral) and not isinstance(n, bool) and n >= 1:
            return int(n)
    try:
        coef = getattr(est, "coef_", None)
    except Exception:  # e.g. XGBoost raises for tree boosters
        coef = None
    if coef is not None and np.ndim(coef) == 2:
        return int(np.shape(coef)[0])
    booster = model if _is_xgb_booster(model) else None
    if booster is None and hasattr(est, "get_booster"):
        try:
            booster = est.get_booster()
        except Exception:
            booster = None
    if booster is not None and _is_xgb_booster(booster):
        try:
            params = json.loads(booster.save_config())["learner"]["learner_model_param"]
            return max(int(params.get("num_target", "1") or 1), 1)
        except Exception:
            return None
    return None


def _probe_outputs(raw: _Raw, X_example: Any) -> int:
    if X_example is None:
        raise InvalidParameterError(
            "the number of model outputs is not known before calling the model; pass X."
        )
    sample = X_example.iloc[:1] if isinstance(X_example, pd.DataFrame) else X_example[:1]
    try:
        out = np.asarray(raw.fn(sample), dtype=float)
    except WhyboxError:
        raise
    except Exception as exc:
        raise ModelCallError(
            f"the model raised {type(exc).__name__}: {exc} while whybox evaluated it on one "
            f"row of shape {tuple(np.shape(sample))} to find its number of outputs. Check that "
            "it accepts inputs like X; the original error is chained above."
        ) from exc
    return 1 if out.ndim <= 1 else int(np.prod(out.shape[1:]))


def wrap_model(
    model: Any, *, target: Any = None, link: str = "identity", X: Any = None
) -> ModelFunction:
    """Wrap ``model`` as a :class:`ModelFunction` returning the outputs selected by ``target``.

    Parameters
    ----------
    model : object
        A supported model (see module docstring) or a callable ``f(X) -> (m,) | (m, k)``.
    target : None, int, str, label, list or "all"
        Output(s) to explain; see the module docstring for the defaults.
    link : {"identity", "logit"}
        Scale of the outputs: ``"logit"`` turns probabilities ``p`` into ``log(p / (1 - p))``.
    X : array or DataFrame, optional
        Example inputs, used to find the number of outputs of callables and torch modules.

    Returns
    -------
    ModelFunction
    """
    check_in("link", link, LINKS)
    raw = _raw_adapter(model)
    names = raw.output_names
    if names is None:
        if raw.kind == "regression" and X is None:
            k = _n_outputs_without_call(model) or 1
        else:
            k = _probe_outputs(raw, X)
        if raw.kind == "regression":
            names = ["prediction"] if k == 1 else [f"prediction {j}" for j in range(k)]
        elif raw.kind == "probability":
            names = list(range(k))
        else:
            names = ["output"] if k == 1 else [f"output {j}" for j in range(k)]
    k = len(names)

    if isinstance(target, str) and target == "all" and "all" not in names:
        indices, single = list(range(k)), False
    elif target is None:
        if raw.is_classifier and k == 2:
            indices, single = [1], True
        elif k == 1:
            indices, single = [0], True
        else:
            indices, single = list(range(k)), False
    elif isinstance(target, (list, tuple, np.ndarray, pd.Index)):
        if len(target) == 0:
            raise InvalidParameterError("target is an empty list; name at least one output.")
        indices = [_resolve_one(t, names, k, raw.is_classifier) for t in target]
        single = False
    else:
        indices, single = [_resolve_one(target, names, k, raw.is_classifier)], True

    if link == "logit" and raw.kind not in ("probability", "output"):
        raise InvalidParameterError(
            f"link='logit' turns probabilities into log-odds, but this model ({raw.kind} "
            f"outputs, {model_type_name(model)}) does not output probabilities. Use "
            "link='identity'."
        )
    sel_names = [str(names[j]) for j in indices]
    if raw.kind == "probability":
        scale = "log-odds" if link == "logit" else "probability"
        desc = f"{scale} of class " + ", ".join(sel_names)
    elif raw.kind == "decision":
        desc = "decision function " + ", ".join(sel_names)
    elif raw.kind == "regression":
        desc = ", ".join(sel_names)
    else:
        desc = ("logit of " if link == "logit" else "") + ", ".join(sel_names)
    return ModelFunction(
        model=model,
        model_type=model_type_name(model),
        kind=raw.kind,
        output_indices=indices,
        output_names=sel_names,
        single_output=single,
        link=link,
        output_description=desc,
        feature_names_in=raw.feature_names_in,
        n_features_in=raw.n_features_in,
        _raw=raw.fn,
        _n_outputs_total=k,
    )


def describe_outputs(model: Any) -> Sequence[Any] | None:
    """Class labels or output names of ``model`` when known without calling it."""
    return _raw_adapter(model).output_names
