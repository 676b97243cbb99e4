"""The method registry and ``explain(model, X, method="auto")``.

Methods register under a name; ``explain`` resolves ``method="auto"`` through explicit rules
and records in ``exp.params["method_selection"]`` what it chose and why.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from ._validation import as_2d_input, check_keywords, check_nonempty
from .errors import InvalidParameterError, WhyboxError
from .explainer import Explainer
from .explanation import Explanation
from .games.game import group_matrix
from .models import model_type_name

__all__ = [
    "available_methods",
    "available_text_methods",
    "explain",
    "get_method",
    "register_method",
    "register_text_method",
]

_REGISTRY: dict[str, Callable[[], type[Explainer]]] = {}

#: ExactShap is chosen automatically up to this many players (2**16 coalitions per row).
AUTO_EXACT_MAX_PLAYERS = 16


def register_method(name: str, loader: Callable[[], type[Explainer]]) -> None:
    """Register an explainer class under ``name``; ``loader`` imports it on first use.

    Parameters
    ----------
    name : str
        The name ``explain(method=name)`` will accept; an existing name is replaced.
    loader : callable
        Called without arguments the first time the method is used; returns the explainer
        class (constructed as ``cls(model, background, link=..., random_state=..., **kwargs)``
        and called as ``.explain(X, target=..., progress=...)``).

    Raises
    ------
    InvalidParameterError
        If ``name`` is not a non-empty string.

    Examples
    --------
    >>> wb.register_method("my_exact", lambda: wb.ExactShap)
    >>> f = lambda X: X @ np.array([1.0, 2.0, 3.0])
    >>> exp = wb.explain(f, np.ones((1, 3)), method="my_exact", background=np.zeros((1, 3)))
    >>> exp.values.round(3).tolist(), "my_exact" in wb.available_methods()
    ([[1.0, 2.0, 3.0]], True)
    """
    if not name or not isinstance(name, str):
        raise InvalidParameterError("a method name must be a non-empty string.")
    _REGISTRY[name] = loader


def available_methods() -> list[str]:
    """Names accepted by ``explain(method=...)``, besides ``"auto"``.

    Returns
    -------
    list of str
        The registered names, sorted (torch-only gradient and CAM methods are listed in
        :func:`whybox.explain`).

    Examples
    --------
    >>> wb.available_methods()[:4]
    ['banzhaf', 'ebm', 'exact', 'expected_gradients']
    >>> "kernel" in wb.available_methods(), "tree" in wb.available_methods()
    (True, True)
    """
    return sorted(_REGISTRY)


def get_method(name: str) -> type[Explainer]:
    """The explainer class registered under ``name``."""
    if name not in _REGISTRY:
        raise InvalidParameterError(
            f"unknown method {name!r}. Available methods: {['auto', *available_methods()]}; "
            f"for torch modules also {sorted(_TORCH_METHODS)}."
        )
    return _REGISTRY[name]()


def _exact() -> type[Explainer]:
    from .agnostic.shapley import ExactShap

    return ExactShap


def _permutation() -> type[Explainer]:
    from .agnostic.shapley import PermutationShap

    return PermutationShap


def _kernel() -> type[Explainer]:
    from .agnostic.kernel import KernelShap

    return KernelShap


def _banzhaf() -> type[Explainer]:
    from .agnostic.banzhaf import Banzhaf

    return Banzhaf


def _interactions() -> type[Explainer]:
    from .agnostic.interactions import ShapleyInteractions

    return ShapleyInteractions


def _linear() -> type[Explainer]:
    from .linear.shap import LinearShap

    return LinearShap


def _tree() -> type[Explainer]:
    from .trees.treeshap import TreeShap

    return TreeShap


def _lime() -> type[Explainer]:
    from .agnostic.lime import Lime

    return Lime


def _integrated_gradients() -> type[Explainer]:
    from .gradients import IntegratedGradients

    return IntegratedGradients  # type: ignore[return-value]


def _expected_gradients() -> type[Explainer]:
    from .gradients import ExpectedGradients

    return ExpectedGradients  # type: ignore[return-value]


def _ebm() -> type[Explainer]:
    from .glassbox.gam import _EBMBase

    return _EBMBase  # type: ignore[return-value]


register_method("exact", _exact)
register_method("ebm", _ebm)
register_method("integrated_gradients", _integrated_gradients)
register_method("expected_gradients", _expected_gradients)
register_method("lime", _lime)
register_method("linear", _linear)
register_method("tree", _tree)
register_method("banzhaf", _banzhaf)
register_method("interactions", _interactions)
register_method("permutation", _permutation)
register_method("kernel", _kernel)


def resolve_method(
    model: Any,
    X: Any,
    groups: Any = None,
    background: Any = None,
    link: str = "identity",
) -> tuple[str, str]:
    """Choose a method for ``method="auto"``: returns (name, reason).

    The fastest method that is EXACT for the output ``link`` selects (see
    :mod:`whybox.models`): TreeShap for the raw output of a tree ensemble (the probability
    of a random forest classifier, the log-odds of a boosted binary classifier with
    ``link="logit"``, a regressor's prediction), LinearShap for the decision function /
    log-odds of a linear model; otherwise ExactShap (at most 16 players) or KernelShap (with
    standard errors) over the background.

    Raises
    ------
    InvalidParameterError
        When no fast exact method exists for the output and no background was given: the
        message names both remedies (``background=``, or the link for which one exists).
    """
    from .games.image import ImageMasker
    from .models import is_torch_module

    ebm_classifier = _is_ebm(model) and hasattr(model, "classes_")
    if _is_ebm(model) and (not ebm_classifier or link == "logit"):
        return "ebm", (
            "explainable boosting machine: its exact additive terms ("
            + ("log-odds" if ebm_classifier else "prediction")
            + ")"
        )
    if isinstance(background, ImageMasker):
        if background.segments == "grid" and background.n_segments <= AUTO_EXACT_MAX_PLAYERS:
            return "exact", (
                f"images with {background.n_segments} grid segments <= "
                f"{AUTO_EXACT_MAX_PLAYERS}: exact Shapley values of the segments"
            )
        return "kernel", "images with an ImageMasker: KernelSHAP over the segments"
    if is_torch_module(model):
        n_bg = _n_background_rows(background)
        if n_bg > 1:
            return "expected_gradients", (
                f"torch module with a background of {n_bg} rows: Expected Gradients over it"
            )
        return "integrated_gradients", (
            "torch module: Integrated Gradients from "
            + ("the zero baseline" if background is None else "the given baseline")
        )
    X = as_2d_input(X)
    check_nonempty(X)
    names = (
        [str(c) for c in X.columns]
        if hasattr(X, "columns")
        else [f"x{j}" for j in range(X.shape[1])]
    )
    players, _ = group_matrix(names, groups)
    if ebm_classifier:  # link="identity": the probability, which its terms do not add up to
        fast, why_not, remedy = (
            None,
            "the probability of an explainable boosting classifier is not additive over its "
            "terms (they add up to the log-odds)",
            "pass link='logit' for the EBM's own exact terms",
        )
    else:
        fast, why_not, remedy = _fast_exact(model, link, groups)
    if fast is not None:
        return fast
    if background is None:
        raise InvalidParameterError(
            f"{why_not}, and the model-agnostic methods that would explain it exactly or with "
            "standard errors need background= rows that stand for the data (e.g. "
            "background=X_train.sample(100, random_state=0)) or background=wb.Baseline(...)"
            + (f"; or {remedy}" if remedy else "")
            + "."
        )
    if len(players) <= AUTO_EXACT_MAX_PLAYERS:
        return "exact", (
            f"{why_not}: ExactShap over the background ({len(players)} players <= "
            f"{AUTO_EXACT_MAX_PLAYERS}: every coalition)" + (f"; {remedy}" if remedy else "")
        )
    return "kernel", (
        f"{why_not}: KernelSHAP over the background with standard errors ({len(players)} "
        f"players > {AUTO_EXACT_MAX_PLAYERS})" + (f"; {remedy}" if remedy else "")
    )


def _n_background_rows(background: Any) -> int:
    if background is None or isinstance(background, (int, float)):
        return 0
    return int(getattr(background, "shape", (1,))[0]) if hasattr(background, "shape") else 1


def _fast_exact(
    model: Any, link: str, groups: Any
) -> tuple[tuple[str, str] | None, str, str | None]:
    """((name, reason) of a fast exact method, or None; why there is none; the remedy)."""
    from .linear.shap import _is_logistic, is_linear_model
    from .models import wrap_model
    from .trees.treeshap import is_tree_model

    fn = wrap_model(model, link=link, X=None) if _known_outputs(model) else None
    output = fn.output_description if fn is not None else "this output"
    if groups:
        return None, f"feature groups ({output})", None
    if is_tree_model(model):
        from .trees.parse import parse_tree_model

        e = parse_tree_model(model)
        is_clf = hasattr(model, "classes_") or (fn is not None and fn.kind == "probability")
        binary_logistic = e.n_outputs == 1 and e.link == "logistic"
        if type(model).__name__ == "IsolationForest":
            return (
                ("tree", "tree ensemble: exact TreeSHAP of its raw output (average path length)"),
                "",
                None,
            )
        if link == "logit":
            if is_clf and binary_logistic:
                return (
                    (
                        "tree",
                        f"boosted binary classifier: exact TreeSHAP of its margin, the "
                        f"log-odds ({output})",
                    ),
                    "",
                    None,
                )
            return (
                None,
                (
                    f"the log-odds of {type(model).__name__}'s probability is not additive over "
                    f"its trees ({output})"
                ),
                None,
            )
        if not is_clf and e.link == "identity" and not e.raw_output.startswith("probability"):
            return ("tree", f"tree ensemble: exact TreeSHAP of its prediction ({output})"), "", None
        if is_clf and e.raw_output.startswith("probability"):
            return (
                (
                    "tree",
                    f"tree ensemble averaging class fractions: exact TreeSHAP of its "
                    f"probability ({output})",
                ),
                "",
                None,
            )
        if is_clf:
            return (
                None,
                (f"the probability of a boosted ensemble is not additive over trees ({output})"),
                (
                    "pass link='logit' for exact TreeSHAP of the log-odds"
                    if binary_logistic
                    else None
                ),
            )
        return (
            None,
            (
                f"the prediction of {type(model).__name__} ({e.raw_output} through a {e.link} link) "
                f"is not additive over trees ({output})"
            ),
            None,
        )
    if is_linear_model(model):
        classes = getattr(model, "classes_", None)
        logistic = _is_logistic(model)
        if classes is None and link == "identity":
            return (
                ("linear", f"linear model: exact SHAP values from its coefficients ({output})"),
                "",
                None,
            )
        if classes is not None and logistic and link == "logit" and len(classes) == 2:
            return (
                (
                    "linear",
                    f"logistic regression: exact SHAP values of its decision "
                    f"function, the log-odds ({output})",
                ),
                "",
                None,
            )
        if classes is not None and not hasattr(model, "predict_proba") and link == "identity":
            return (
                (
                    "linear",
                    f"linear classifier: exact SHAP values of its decision function ({output})",
                ),
                "",
                None,
            )
        if logistic and link == "identity":
            return (
                None,
                (
                    f"the probability of a logistic regression is not linear in the features "
                    f"({output})"
                ),
                (
                    "pass link='logit' for exact LinearShap of the log-odds"
                    if classes is not None and len(classes) == 2
                    else None
                ),
            )
        return None, f"{output} of this linear model is not its linear output", None
    return None, f"no fast exact method for {model_type_name(model)} ({output})", None


def _known_outputs(model: Any) -> bool:
    """Models whose outputs wrap_model knows without a call (not torch / callables)."""
    from .models import describe_outputs

    try:
        return describe_outputs(model) is not None or hasattr(model, "predict")
    except WhyboxError:
        return False


_GRADIENT_METHODS = ("integrated_gradients", "expected_gradients")

#: methods for torch modules only, besides the path methods: name -> (module, class)
_TORCH_METHODS: dict[str, tuple[str, str]] = {
    "saliency": ("whybox.gradients.saliency", "Saliency"),
    "input_x_gradient": ("whybox.gradients.saliency", "InputXGradient"),
    "smoothgrad": ("whybox.gradients.saliency", "SmoothGrad"),
    "vargrad": ("whybox.gradients.saliency", "VarGrad"),
    "guided_backprop": ("whybox.gradients.cam", "GuidedBackprop"),
    "gradcam": ("whybox.gradients.cam", "GradCam"),
    "gradcam_plus_plus": ("whybox.gradients.cam", "GradCamPlusPlus"),
    "guided_gradcam": ("whybox.gradients.cam", "GuidedGradCam"),
    "lrp": ("whybox.propagation.lrp", "LRP"),
}


def _is_ebm(model: Any) -> bool:
    from .glassbox.gam import _EBMBase

    return isinstance(model, _EBMBase)


def _explain_ebm(model: Any, X: Any, target: Any) -> Explanation:
    """An EBM's exact local explanation: its own terms on its decision-function scale
    (class 0 of the classifier is the negated log-odds; per-row targets as everywhere)."""
    return model.explain_local(X, target=target)


def _explain_torch(
    model: Any,
    X: Any,
    name: str,
    background: Any,
    target: Any,
    random_state: int | None,
    tolerance: float | None,
    kwargs: dict[str, Any],
) -> Explanation:
    """Integrated Gradients of a torch module; a background of several rows (or
    ``method="expected_gradients"``) gives Expected Gradients over it."""
    from .gradients import ExpectedGradients, IntegratedGradients

    n_bg = getattr(background, "shape", (1,))[0] if background is not None else 0
    if name == "expected_gradients" or (n_bg > 1 and not isinstance(background, (int, float))):
        if background is None:
            raise InvalidParameterError(
                "method='expected_gradients' needs background= rows to integrate from."
            )
        _check_constructor_keywords(ExpectedGradients, kwargs)
        explainer = ExpectedGradients(model, background, random_state=random_state, **kwargs)
        return explainer.explain(X, target=target)
    extra = {"tolerance": tolerance} if tolerance is not None else {}
    baseline = 0 if background is None else background
    _check_constructor_keywords(IntegratedGradients, kwargs)
    explainer = IntegratedGradients(model, random_state=random_state, **kwargs)
    return explainer.explain(X, target=target, baseline=baseline, **extra)


def _explain_torch_only(
    model: Any,
    X: Any,
    name: str,
    background: Any,
    target: Any,
    random_state: int | None,
    kwargs: dict[str, Any],
) -> Explanation:
    """Saliency, SmoothGrad, Grad-CAM, LRP ... of a torch module: keywords of the explainer's
    constructor go to it, keywords of its ``explain`` (``internal_batch_size``, ``upsample``)
    to that; anything else is refused, naming the closest."""
    import importlib
    import inspect

    module, attr = _TORCH_METHODS[name]
    try:
        import torch
    except ImportError as exc:  # pragma: no cover - the torch extra is missing
        raise InvalidParameterError(
            f"method={name!r} explains torch modules; install the torch extra "
            "(pip install 'whybox[torch]')."
        ) from exc
    if not isinstance(model, torch.nn.Module):
        raise InvalidParameterError(
            f"method={name!r} explains torch modules (torch.nn.Module), got "
            f"{type(model).__name__}. For other models pass method='exact', 'kernel' or 'auto'."
        )
    if background is not None:
        raise InvalidParameterError(
            f"method={name!r} uses no background rows; drop background= (or use "
            "method='integrated_gradients' / 'expected_gradients', which integrate from it)."
        )
    cls = getattr(importlib.import_module(module), attr)
    skip = ("self", "model", "explainer", "random_state")
    ctor = [p for p in inspect.signature(cls.__init__).parameters if p not in skip]
    call = [p for p in inspect.signature(cls.explain).parameters if p not in ("self", "x")]
    inner_cls = None
    if name in ("smoothgrad", "vargrad"):  # the paper's method: noisy copies of Saliency
        from .gradients.saliency import Saliency as inner_cls
    inner = (
        [p for p in inspect.signature(inner_cls.__init__).parameters if p not in skip]
        if inner_cls
        else []
    )
    own = {k: v for k, v in kwargs.items() if k in ctor}
    wrapped = {k: v for k, v in kwargs.items() if k in inner and k not in ctor}
    rest = {k: v for k, v in kwargs.items() if k not in ctor and k not in wrapped}
    allowed = [*ctor, *inner, *(c for c in call if c not in ("kwargs", "target"))]
    check_keywords(rest, allowed, where="wb.explain")
    params = inspect.signature(cls.__init__).parameters
    missing = [p for p in ctor if params[p].default is inspect.Parameter.empty and p not in own]
    if missing:
        raise InvalidParameterError(
            f"method={name!r} needs {', '.join(m + '=' for m in missing)} (for Grad-CAM: the "
            "module path of a convolutional layer, e.g. layer='features.3'); pass it to "
            "wb.explain."
        )
    if "random_state" in params:
        own["random_state"] = random_state
    explainer = cls(inner_cls(model, **wrapped), **own) if inner_cls else cls(model, **own)
    return explainer.explain(X, target=target, **rest)  # type: ignore[no-any-return]


def explain(
    model: Any,
    X: Any,
    method: str = "auto",
    *,
    background: Any = None,
    target: Any = None,
    link: str = "identity",
    random_state: int | None = 0,
    progress: Callable[[int, int], None] | None = None,
    budget: int | None = None,
    tolerance: float | None = None,
    **kwargs: Any,
) -> Explanation:
    """Explain ``model`` on the rows of ``X`` with one call.

    Parameters
    ----------
    model : object
        Any supported model: a scikit-learn estimator or Pipeline, an XGBoost / LightGBM
        model, a ``torch.nn.Module``, or a callable ``f(X) -> (m,) | (m, k)`` (see
        :func:`whybox.wrap_model`).
    X : DataFrame or array of shape (n, p), or of shape ``(n, *input_shape)`` for torch
        Rows to explain.
    method : str, default "auto"
        ``"auto"`` or a registered name (see :func:`whybox.available_methods`).
    background : DataFrame, array or masker, optional
        Rows that stand for the data (absent features take their values), used whole. A
        model-agnostic method needs one (the explained rows never stand in); TreeShap
        without one is path-dependent.
    target : optional
        Output(s) to explain: class label or index, list, ``"all"``, or a 1-D array / tensor
        / Series with one target per row (see :func:`whybox.wrap_model`).
    link : {"identity", "logit"}, default "identity"
        The output explained (one rule for every model type, see :func:`whybox.wrap_model`):
        ``"identity"`` the class probability (the decision function of classifiers without
        probabilities, the prediction of regressors, the raw output of torch modules and
        callables); ``"logit"`` the log-odds of the class probability.
    random_state : int or None, default 0
        Seed of every random choice.
    progress : callable(done, total), optional
        Called as rows are explained.
    budget, tolerance : optional
        For sampling methods: coalitions (or samples) per row, and the standard error at
        which to stop early.
    **kwargs
        Passed to the chosen explainer's constructor (e.g. ``groups=``, ``max_background=``);
        a keyword it does not take is refused, naming the closest one.

    Returns
    -------
    Explanation
        ``values`` of shape (n, p) for one output, (n, p, k) for ``k`` outputs (or
        ``(n, *input_shape)`` for torch inputs), with ``params["method_selection"]`` recording
        the choice.

    Raises
    ------
    InvalidParameterError
        For an unknown ``method``, a keyword the chosen explainer does not take, an unknown
        ``target`` or a ``link`` that does not fit the model.
    InvalidInputError
        If ``X`` or ``background`` cannot be used (wrong columns, NaN where not allowed,
        no background for a model-agnostic method).
    UnsupportedModelError
        If whybox cannot call ``model``.
    ModelCallError
        If the model raises while it is evaluated (the original error is chained).

    Notes
    -----
    ``method="auto"`` picks the fastest method that is exact for the output ``link`` selects
    (``resolve_method``): TreeShap for a tree ensemble's raw output (a forest's
    probability, a boosted binary classifier's log-odds with ``link="logit"``, a regressor's
    prediction), LinearShap for a linear model's decision function / log-odds, an
    explainable boosting machine's own exact terms (``"ebm"``), Integrated Gradients for
    torch modules (Expected Gradients when ``background`` has several rows), ExactShap or
    KernelShap over image segments when ``background`` is an
    :class:`~whybox.games.image.ImageMasker`; otherwise ExactShap up to 16 players and
    KernelShap above, over the background. ``params["method_selection"]`` says why.

    For torch modules ``method`` may also be ``"saliency"``, ``"input_x_gradient"``,
    ``"smoothgrad"`` / ``"vargrad"`` (over Saliency), ``"guided_backprop"``, ``"gradcam"``,
    ``"gradcam_plus_plus"``, ``"guided_gradcam"`` (with ``layer=``) or ``"lrp"``: the keywords
    go to that explainer's constructor or its ``explain``.

    Texts (a string or a list of strings, with ``tokenizer=``) go to
    ``whybox.text.explain.explain_text``: players are tokens, words or sentences
    (``granularity=``), absence is ``masker=`` ("mask", "pad", "drop" or a baseline string), the
    explained number ``value=``; ``method`` is one of ``"exact"``, ``"kernel"``,
    ``"permutation"``, ``"banzhaf"``, ``"lime"``, ``"ablation"`` (or ``"auto"``). The result
    has one ragged row per text.

    Examples
    --------
    >>> from sklearn.ensemble import RandomForestClassifier
    >>> X, y = wb.zoo.breast_cancer()
    >>> model = RandomForestClassifier(n_estimators=20, max_depth=3, random_state=0).fit(X, y)
    >>> exp = wb.explain(model, X.iloc[:5], target=1)
    >>> exp.method, exp.values.shape
    ('tree', (5, 30))
    >>> bool(np.allclose(exp.values.sum(axis=1), exp.predictions - exp.base_values))
    True
    """
    if "tokenizer" in kwargs or _is_text(X):
        return _explain_texts(
            model,
            X,
            method,
            background,
            target,
            link,
            random_state,
            progress,
            budget,
            tolerance,
            kwargs,
        )
    if method == "auto":
        name, reason = resolve_method(model, X, kwargs.get("groups"), background, link)
    else:
        name, reason = method, "requested"
    if name == "ebm":
        if not _is_ebm(model):
            raise InvalidParameterError(
                f"method='ebm' needs a fitted whybox ExplainableBoostingClassifier or "
                f"Regressor, got {type(model).__name__}."
            )
        check_keywords(
            kwargs,
            ["target", "method", "background", "link", "random_state", "progress", "budget"],
            where="wb.explain",
        )
        if hasattr(model, "classes_") and link != "logit":
            raise InvalidParameterError(
                f"method='ebm' explains the classifier's own terms, which add up to its "
                f"log-odds, but link={link!r} asks for the probability. Pass link='logit', or "
                "method='exact' / 'kernel' with background= rows to explain the probability."
            )
        exp = _explain_ebm(model, X, target)
        exp.params["method_selection"] = f"{method} -> ebm: {reason}"
        return exp
    if name in _GRADIENT_METHODS:
        exp = _explain_torch(model, X, name, background, target, random_state, tolerance, kwargs)
        exp.params["method_selection"] = f"{method} -> {exp.method}: {reason}"
        return exp
    if name in _TORCH_METHODS:
        exp = _explain_torch_only(model, X, name, background, target, random_state, kwargs)
        exp.params["method_selection"] = f"{method} -> {exp.method}: {reason}"
        return exp
    cls = get_method(name)
    _check_constructor_keywords(cls, kwargs)
    explainer = cls(model, background, link=link, random_state=random_state, **kwargs)
    extra = {k: v for k, v in (("budget", budget), ("tolerance", tolerance)) if v is not None}
    exp = explainer.explain(X, target=target, progress=progress, **extra)
    exp.params["method_selection"] = f"{method} -> {name}: {reason}"
    return exp


#: keywords of wb.explain for texts, besides its own (see whybox.text.explain.explain_text)
_TEXT_KEYWORDS = (
    "tokenizer",
    "granularity",
    "masker",
    "value",
    "batch_size",
    "max_length",
    "truncate",
    "kv_cache",
    "max_new_tokens",
    "n_features",
)


#: text methods other than the perturbation ones of whybox.text.explain (gradients, attention,
#: relevance propagation, TokenSHAP): name -> loader of ``fn(model, texts, *, tokenizer,
#: target, random_state, progress, budget, tolerance, **kwargs) -> Explanation``
_TEXT_REGISTRY: dict[str, Callable[[], Callable[..., Explanation]]] = {}


def register_text_method(name: str, loader: Callable[[], Callable[..., Explanation]]) -> None:
    """Make ``wb.explain(model, texts, tokenizer=tok, method=name)`` call the function that
    ``loader`` returns (imported on first use); it receives ``target``, ``random_state``,
    ``progress``, ``budget``, ``tolerance`` and the remaining keywords (``tokenizer`` ...)."""
    if not name or not isinstance(name, str):
        raise InvalidParameterError("a method name must be a non-empty string.")
    _TEXT_REGISTRY[name] = loader


def _text_adapter(module: str, name: str) -> Callable[[], Callable[..., Explanation]]:
    """Loader of ``whybox.<module>.<name>``, a wb.explain adapter of another text method."""

    def load() -> Callable[..., Explanation]:
        import importlib

        return getattr(importlib.import_module(f"whybox.{module}"), name)  # type: ignore[no-any-return]

    return load


def _explain_tokenshap(
    model: Any,
    texts: Any,
    *,
    target: Any = None,
    random_state: int | None = 0,
    progress: Callable[[int, int], None] | None = None,
    budget: int | None = None,
    tolerance: float | None = None,
    **kwargs: Any,
) -> Explanation:
    """``wb.explain(lm, texts, tokenizer=tok, method="tokenshap", ...)``: the keywords of
    :class:`whybox.text.tokenshap.TokenShap` (``value``, ``similarity``, ``estimator`` ...)."""
    import inspect

    from .text.tokenshap import TokenShap

    allowed = set(inspect.signature(TokenShap.__init__).parameters) - {"self", "model"}
    check_keywords(
        kwargs,
        [*allowed, "target", "random_state", "progress", "budget", "tolerance"],
        where="wb.explain(method='tokenshap')",
    )
    explainer = TokenShap(model, random_state=random_state, **kwargs)
    return explainer.explain(texts, target=target, budget=budget, tolerance=tolerance)


for _name, _module, _fn in (
    ("integrated_gradients", "text.gradients", "explain_integrated_gradients"),
    ("saliency", "text.gradients", "explain_saliency"),
    ("input_x_gradient", "text.gradients", "explain_input_x_gradient"),
    ("smoothgrad", "text.gradients", "explain_smoothgrad"),
    ("rollout", "propagation.rollout", "explain_rollout"),
    ("attention_flow", "propagation.rollout", "explain_flow"),
    ("attention", "propagation.rollout", "explain_raw_attention"),
    ("chefer", "propagation.chefer", "explain_chefer"),
    ("chefer_lrp", "propagation.chefer_lrp", "explain_chefer_lrp"),
):
    register_text_method(_name, _text_adapter(_module, _fn))
register_text_method("tokenshap", lambda: _explain_tokenshap)
register_text_method("attnlrp", _text_adapter("text.explain", "explain_attnlrp"))


def available_text_methods() -> list[str]:
    """Names accepted by ``explain(model, texts, tokenizer=..., method=...)``, besides auto."""
    from .text.explain import TEXT_METHODS

    return sorted({*TEXT_METHODS, *_TEXT_REGISTRY})


def _is_text(X: Any) -> bool:
    from .text.explain import is_text_input

    return is_text_input(X)


def _explain_texts(
    model: Any,
    texts: Any,
    method: str,
    background: Any,
    target: Any,
    link: str,
    random_state: int | None,
    progress: Callable[[int, int], None] | None,
    budget: int | None,
    tolerance: float | None,
    kwargs: dict[str, Any],
) -> Explanation:
    """The text branch of :func:`explain`: players are tokens / words / sentences of each text
    (:func:`whybox.text.explain.explain_text`), one ragged row per text."""
    from .text.explain import explain_text

    if method in _TEXT_REGISTRY:
        fn = _TEXT_REGISTRY[method]()
        return fn(
            model,
            texts,
            target=target,
            random_state=random_state,
            progress=progress,
            budget=budget,
            tolerance=tolerance,
            **kwargs,
        )
    check_keywords(
        kwargs,
        [*_TEXT_KEYWORDS, "target", "method", "random_state", "progress", "budget", "tolerance"],
        where="wb.explain (texts)",
    )
    if kwargs.get("tokenizer") is None:
        raise InvalidParameterError(
            "explaining texts needs the model's tokenizer: wb.explain(model, texts, "
            "tokenizer=AutoTokenizer.from_pretrained(...), target=...)."
        )
    if background is not None:
        raise InvalidParameterError(
            "background= is not used for texts: absent tokens are represented by masker= "
            "('mask', 'pad', 'drop' or a baseline string)."
        )
    if link != "identity":
        raise InvalidParameterError(
            f"link={link!r} is not used for texts; pass value='logit', 'logprob' or 'prob'."
        )
    return explain_text(
        model,
        texts,
        method=method,
        target=target,
        random_state=random_state,
        progress=progress,
        budget=budget,
        tolerance=tolerance,
        **kwargs,
    )


#: wb.explain's own keywords: never passed on as constructor keywords
_EXPLAIN_KEYWORDS = ("model", "background", "link", "random_state", "self")


def _check_constructor_keywords(cls: type, kwargs: dict[str, Any]) -> None:
    """Refuse a keyword the chosen explainer's constructor does not take, naming the
    closest (wb.explain passes its **kwargs to the constructor)."""
    import inspect

    try:
        sig = inspect.signature(cls.__init__)
    except (TypeError, ValueError):  # pragma: no cover - builtins
        return
    params = sig.parameters.values()
    if any(p.kind is inspect.Parameter.VAR_KEYWORD for p in params):
        return
    allowed = [p.name for p in params if p.name not in _EXPLAIN_KEYWORDS]
    # wb.explain's own keywords never arrive in kwargs, but a typo of one should name it
    own = ["target", "method", "background", "link", "random_state", "progress", "budget"]
    check_keywords(
        kwargs,
        [*allowed, *(k for k in [*own, "tolerance"] if k not in allowed)],
        where="wb.explain",
        spellings={
            "model_output": (
                "wb.explain's link= ('identity': the probability; 'logit': the log-odds), or "
                "wb.TreeShap(model, model_output=...) directly"
            ),
        }
        if "model_output" not in allowed
        else None,
    )
