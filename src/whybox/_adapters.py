"""The raw adapters behind :func:`whybox.models.wrap_model`: every output of a model.

scikit-learn estimators and Pipelines, XGBoost and LightGBM (scikit-learn API and Boosters),
torch modules (evaluated in eval mode, their mode restored) and plain callables become a
:class:`_Raw`: a function returning all of the model's outputs, what they are, and, for
binary classifiers whose margin is the log-odds, that margin. Target selection and the link
are :mod:`whybox.models`' business.
"""

from __future__ import annotations

import json
import numbers
import warnings
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd

from .errors import (
    InvalidParameterError,
    MissingDependencyError,
    ModelCallError,
    UnsupportedModelError,
)

LINKS = ("identity", "logit")
_CLIP = 1e-15
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


def _is_lightgbm(model: Any) -> bool:
    return type(model).__module__.startswith("lightgbm")


def lightgbm_feature_name(name: Any) -> str:
    """The name LightGBM stores for a column: each space becomes ``_``.

    Measured on LightGBM 4.7 (``LGBMClassifier`` on ``load_breast_cancer(as_frame=True)``):
    ``"mean radius"`` -> ``"mean_radius"``, ``"a  b"`` -> ``"a__b"``, ``" c"`` -> ``"_c"``;
    tabs, non-ASCII letters, ``-``, ``.``, ``/``, ``\\`` and parentheses are kept, and the
    JSON characters ``,:"[]{}`` are refused at fit time.
    """
    return str(name).replace(" ", "_")


@dataclass
class _Raw:
    """All outputs of a model, before target selection and link."""

    fn: Callable[[Any], np.ndarray]
    kind: str  # "probability" | "decision" | "regression" | "output"
    output_names: list[Any] | None  # class labels or names; None = not known before a call
    feature_names_in: list[str] | None = None
    n_features_in: int | None = None
    is_classifier: bool = False
    #: binary classifiers whose own margin is the log-odds of classes_[1]: that margin
    margin_fn: Callable[[Any], np.ndarray] | None = None
    #: binary decision-only classifiers: fn returns [-d, d] for the one decision function d
    binary_margin: bool = False


# ------------------------------------------------------------------- raw adapters
_LOG_ODDS_MARGIN = {  # scikit-learn classifiers whose binary decision_function is the log-odds
    "LogisticRegression",
    "LogisticRegressionCV",
    "HistGradientBoostingClassifier",
}


def _sklearn_margin(model: Any) -> Callable[[Any], np.ndarray] | None:
    """The binary log-odds margin of a scikit-learn style classifier, when it has one."""
    est = model
    try:
        if hasattr(model, "steps"):
            est = model.steps[-1][1]
    except Exception:
        est = model
    mod, name = type(est).__module__, type(est).__name__
    if mod.startswith("sklearn"):
        ok = name in _LOG_ODDS_MARGIN
        if name == "GradientBoostingClassifier":
            ok = getattr(est, "loss", "log_loss") in ("log_loss", "deviance")
        if name == "SGDClassifier":
            ok = getattr(est, "loss", "") in ("log_loss", "log")
        if ok and hasattr(model, "decision_function"):
            return lambda X: np.asarray(model.decision_function(X), dtype=float).reshape(-1)
        return None
    if mod.startswith("xgboost") and hasattr(est, "get_booster") and est is model:
        objective = str(model.get_xgb_params().get("objective") or "")
        if objective in ("binary:logistic", "reg:logistic"):
            return lambda X: np.asarray(model.predict(X, output_margin=True), dtype=float)
        return None
    if mod.startswith("lightgbm") and hasattr(est, "booster_") and est is model:
        booster = model.booster_
        objective = str(getattr(model, "objective_", "") or "")
        if objective.startswith(("binary", "cross_entropy", "xentropy")):
            s = _lgb_sigmoid(booster)
            return lambda X: s * np.asarray(model.predict(X, raw_score=True), dtype=float)
    return None


def _lgb_sigmoid(booster: Any) -> float:
    """LightGBM's ``sigmoid`` parameter (p = 1 / (1 + exp(-sigmoid * raw))); 1 for xentropy."""
    objective = str(booster.params.get("objective") or "")
    if objective.startswith(("cross_entropy", "xentropy")):
        return 1.0
    try:
        return float(booster.params.get("sigmoid", 1.0))
    except (TypeError, ValueError):
        return 1.0


def _two_columns(d: Any) -> np.ndarray:
    """[-d, d]: class 0 is the negated margin of class 1."""
    d = np.asarray(d, dtype=float).reshape(-1)
    return np.column_stack([-d, d])


def _sklearn_raw(model: Any) -> _Raw:
    names = getattr(model, "feature_names_in_", None)
    n_in = getattr(model, "n_features_in_", None)
    common = {
        "feature_names_in": None if names is None else [str(c) for c in names],
        "n_features_in": None if n_in is None else int(n_in),
    }
    classes = getattr(model, "classes_", None)
    if classes is not None and hasattr(model, "predict_proba"):
        classes = list(np.asarray(classes).tolist())
        return _Raw(
            fn=model.predict_proba,
            kind="probability",
            output_names=classes,
            is_classifier=True,
            margin_fn=_sklearn_margin(model) if len(classes) == 2 else None,
            **common,
        )
    if classes is not None and hasattr(model, "decision_function"):
        classes = list(np.asarray(classes).tolist())
        if len(classes) == 2:
            return _Raw(
                fn=lambda X: _two_columns(model.decision_function(X)),
                kind="decision",
                output_names=classes,
                is_classifier=True,
                binary_margin=True,
                **common,
            )
        return _Raw(
            fn=model.decision_function,
            kind="decision",
            output_names=classes,
            is_classifier=True,
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

        def margin(X: Any) -> np.ndarray:
            return np.asarray(booster.predict(dmatrix(X), output_margin=True), dtype=float)

        return _Raw(
            fn=fn,
            kind="probability",
            output_names=[0, 1],
            is_classifier=True,
            margin_fn=margin,
            **common,
        )
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
    if objective.startswith("binary:"):  # hinge, logitraw: a margin for class 1

        def fn(X: Any) -> np.ndarray:
            return _two_columns(booster.predict(dmatrix(X), output_margin=True))

        return _Raw(
            fn=fn,
            kind="decision",
            output_names=[0, 1],
            is_classifier=True,
            binary_margin=True,
            **common,
        )
    if objective.startswith("rank:"):  # ranking scores

        def fn(X: Any) -> np.ndarray:
            return booster.predict(dmatrix(X), output_margin=True)

        return _Raw(fn=fn, kind="regression", output_names=["ranking score"], **common)

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

        s = _lgb_sigmoid(booster)
        return _Raw(
            fn=fn,
            kind="probability",
            output_names=[0, 1],
            is_classifier=True,
            margin_fn=lambda X: s * np.asarray(booster.predict(X, raw_score=True), dtype=float),
            **common,
        )
    if objective.startswith(("multiclass", "softmax", "multiclassova")):
        return _Raw(
            fn=lambda X: booster.predict(X),
            kind="probability",
            output_names=list(range(n_class)),
            is_classifier=True,
            **common,
        )
    return _Raw(fn=lambda X: booster.predict(X), kind="regression", output_names=None, **common)


def _pick_output(out: Any, output: Any, what: str) -> Any:
    """One array out of a model's structured output (dict, ModelOutput, tuple, list)."""
    is_map = isinstance(out, Mapping) or (hasattr(out, "keys") and hasattr(out, "__getitem__"))
    if output is not None:
        if is_map:
            keys = list(out.keys())
            if output not in keys:
                raise InvalidParameterError(
                    f"output={output!r} is not a key of the {what}'s output; its keys are "
                    f"{keys}. Pass output= one of them."
                )
            return out[output]
        if isinstance(out, (tuple, list)):
            if (
                not isinstance(output, numbers.Integral)
                or isinstance(output, bool)
                or not -len(out) <= output < len(out)
            ):
                raise InvalidParameterError(
                    f"output={output!r} does not select an element of the {what}'s output, a "
                    f"{type(out).__name__} of {len(out)} elements; pass an index between 0 "
                    f"and {len(out) - 1}."
                )
            return out[int(output)]
        raise InvalidParameterError(
            f"output={output!r} selects an element of a tuple, list or dict output, but the "
            f"{what} returned a {type(out).__name__}; drop output=."
        )
    if is_map:
        keys = list(out.keys())
        if "logits" in keys:
            return out["logits"]
        raise InvalidParameterError(
            f"the {what} returned a {type(out).__name__} with keys {keys} and no 'logits'; "
            "pass output=<key> (to wrap_model or the explainer) to say which one to explain."
        )
    if isinstance(out, (tuple, list)):
        shapes = [tuple(getattr(o, "shape", ())) for o in out]
        raise InvalidParameterError(
            f"the {what} returned a {type(out).__name__} of {len(out)} elements (shapes "
            f"{shapes}); whybox does not guess which one to explain. Pass output=<index> (to "
            "wrap_model or the explainer), e.g. output=1 for the second element."
        )
    if hasattr(out, "logits") and not hasattr(out, "shape"):
        return out.logits
    return out


def _torch_raw(module: Any, output: Any = None) -> _Raw:
    try:
        import torch
    except ImportError as exc:  # pragma: no cover
        raise MissingDependencyError("torch", "torch", "explaining a torch model") from exc
    try:
        param = next(module.parameters())
        dtype, device = param.dtype, param.device
    except StopIteration:
        dtype, device = torch.get_default_dtype(), torch.device("cpu")
    warned = [False]

    def fn(X: Any) -> np.ndarray:
        if isinstance(X, pd.DataFrame):
            X = X.to_numpy(dtype=float)
        # C order, so DataFrame and array inputs take the same kernels (identical outputs);
        # writable, as torch cannot share read-only memory (pandas copy-on-write arrays)
        arr = np.ascontiguousarray(X)
        if not arr.flags.writeable:
            arr = arr.copy()
        t = torch.as_tensor(arr, dtype=dtype, device=device)
        with eval_mode(module, warned):
            with torch.no_grad():
                out = module(t)
        out = _pick_output(out, output, "torch model")
        if not hasattr(out, "detach"):
            raise ModelCallError(
                f"the torch model returned {type(out).__name__} where whybox expected a "
                "tensor; pass output= to select the tensor to explain."
            )
        return out.detach().to("cpu", torch.float64).numpy()

    return _Raw(fn=fn, kind="output", output_names=None)


class eval_mode:
    """Evaluate a torch module in eval mode and restore every submodule's mode afterwards.

    Warns (``UserWarning``) once per ``warned`` flag when the module was in training mode;
    the mode is restored also when the forward pass raises.
    """

    def __init__(self, module: Any, warned: list[bool] | None = None) -> None:
        self.module = module
        self.warned = warned if warned is not None else [False]
        self.modes: list[tuple[Any, bool]] = []

    def __enter__(self) -> None:
        self.modes = [(m, bool(m.training)) for m in self.module.modules()]
        if any(training for _, training in self.modes):
            if not self.warned[0]:
                warnings.warn(
                    f"the torch model ({model_type_name(self.module)}) is in training mode: "
                    "whybox evaluates it in eval mode (dropout off, batch-norm running "
                    "statistics used and left unchanged) and restores its mode afterwards. "
                    "Call model.eval() before explaining to silence this warning.",
                    UserWarning,
                    stacklevel=3,
                )
                self.warned[0] = True
            self.module.eval()

    def __exit__(self, *exc: Any) -> None:
        for m, training in self.modes:
            m.training = training


def _callable_raw(fn: Callable[[Any], Any], output: Any = None) -> _Raw:
    def call(X: Any) -> np.ndarray:
        out = fn(X)
        if output is not None or isinstance(out, Mapping):
            out = _pick_output(out, output, "callable")
        if hasattr(out, "detach"):  # a torch tensor
            out = out.detach().cpu().numpy()
        return np.asarray(out)

    return _Raw(fn=call, kind="output", output_names=None)


def _raw_adapter(model: Any, output: Any = None) -> _Raw:
    if type(model).__name__ == "ModelFunction" and type(model).__module__ == "whybox.models":
        raise InvalidParameterError("pass the original model, not a ModelFunction.")
    if _is_xgb_booster(model):
        raw = _xgb_raw(model)
    elif _is_lgb_booster(model):
        raw = _lgb_raw(model)
    elif is_torch_module(model):
        return _torch_raw(model, output)
    elif hasattr(model, "predict") and hasattr(model, "fit"):
        raw = _sklearn_raw(model)
    elif hasattr(model, "predict_proba") or (hasattr(model, "predict") and not callable(model)):
        raw = _sklearn_raw(model)
    elif callable(model):
        return _callable_raw(model, output)
    else:
        raise UnsupportedModelError(
            f"whybox cannot call a model of type {model_type_name(model)}: it has no predict "
            f"method and is not callable. Supported: {_SUPPORTED}. Wrap anything else as a "
            "function, e.g. wb.explain(lambda X: my_model.score(X), X)."
        )
    if output is not None:
        raise InvalidParameterError(
            f"output={output!r} selects an element of a torch module's or callable's tuple or "
            f"dict output; a {model_type_name(model)} has its own outputs: use target= to "
            "pick one."
        )
    return raw


# ------------------------------------------------------------------ output counts
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
