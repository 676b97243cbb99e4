"""The method registry and ``explain(model, X, method="auto")``.

Methods register under a name; ``explain`` resolves ``method="auto"`` through explicit rules
and records in ``exp.params["method_selection"]`` what it chose and why.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from ._validation import as_2d_input, check_nonempty
from .errors import InvalidParameterError
from .explainer import Explainer
from .explanation import Explanation
from .games.game import group_matrix

__all__ = ["available_methods", "explain", "get_method", "register_method"]

_REGISTRY: dict[str, Callable[[], type[Explainer]]] = {}

#: ExactShap is chosen automatically up to this many players (2**16 coalitions per row).
AUTO_EXACT_MAX_PLAYERS = 16


def register_method(name: str, loader: Callable[[], type[Explainer]]) -> None:
    """Register an explainer class under ``name``; ``loader`` imports it on first use."""
    if not name or not isinstance(name, str):
        raise InvalidParameterError("a method name must be a non-empty string.")
    _REGISTRY[name] = loader


def available_methods() -> list[str]:
    """Names accepted by ``explain(method=...)``, besides ``"auto"``."""
    return sorted(_REGISTRY)


def get_method(name: str) -> type[Explainer]:
    """The explainer class registered under ``name``."""
    if name not in _REGISTRY:
        raise InvalidParameterError(
            f"unknown method {name!r}. Available methods: {['auto', *available_methods()]}."
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
    model: Any, X: Any, groups: Any = None, background: Any = None
) -> tuple[str, str]:
    """Choose a method for ``method="auto"``: returns (name, reason)."""
    from .games.image import ImageMasker
    from .models import is_torch_module

    if _is_ebm(model):
        return "ebm", "explainable boosting machine: its exact additive terms (log-odds)"
    if isinstance(background, ImageMasker):
        if background.segments == "grid" and background.n_segments <= AUTO_EXACT_MAX_PLAYERS:
            return "exact", (
                f"images with {background.n_segments} grid segments <= "
                f"{AUTO_EXACT_MAX_PLAYERS}: exact Shapley values of the segments"
            )
        return "kernel", "images with an ImageMasker: KernelSHAP over the segments"
    if is_torch_module(model):
        return "integrated_gradients", (
            "torch module: Integrated Gradients (Expected Gradients over a background of "
            "several rows)"
        )
    X = as_2d_input(X)
    check_nonempty(X)
    names = (
        [str(c) for c in X.columns]
        if hasattr(X, "columns")
        else [f"x{j}" for j in range(X.shape[1])]
    )
    players, _ = group_matrix(names, groups)
    from .linear.shap import is_linear_model
    from .trees.treeshap import is_tree_model

    if is_tree_model(model) and not groups:
        return "tree", "tree ensemble: exact TreeSHAP of its raw output"
    if is_linear_model(model) and not groups:
        return "linear", "linear model: exact SHAP values from its coefficients"
    if len(players) <= AUTO_EXACT_MAX_PLAYERS:
        return "exact", (
            f"{len(players)} players <= {AUTO_EXACT_MAX_PLAYERS}: exact interventional Shapley "
            "values over all coalitions"
        )
    return "kernel", (
        f"{len(players)} players > {AUTO_EXACT_MAX_PLAYERS}: KernelSHAP with standard errors"
    )


_GRADIENT_METHODS = ("integrated_gradients", "expected_gradients")


def _is_ebm(model: Any) -> bool:
    from .glassbox.gam import _EBMBase

    return isinstance(model, _EBMBase)


def _explain_ebm(model: Any, X: Any, target: Any) -> Explanation:
    """An EBM's exact local explanation: its own terms on its decision-function scale."""
    classes = list(getattr(model, "classes_", []))
    if target is not None and not (len(classes) == 2 and target in (1, classes[1])):
        raise InvalidParameterError(
            f"method='ebm' explains the EBM's decision function (the log-odds of class "
            f"{classes[1] if classes else 'the prediction'}), got target={target!r}. Pass no "
            "target, or use method='exact' / 'kernel' to explain another output."
        )
    return model.explain_local(X)


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
        explainer = ExpectedGradients(model, background, random_state=random_state, **kwargs)
        return explainer.explain(X, target=target)
    extra = {"tolerance": tolerance} if tolerance is not None else {}
    baseline = 0 if background is None else background
    explainer = IntegratedGradients(model, random_state=random_state, **kwargs)
    return explainer.explain(X, target=target, baseline=baseline, **extra)


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
        Any supported model (see :mod:`whybox.models`).
    X : DataFrame or array of shape (n, p)
        Rows to explain.
    method : str
        ``"auto"`` or a registered name (see :func:`available_methods`).
    background : DataFrame or array, optional
        Reference rows for absent features; defaults to a sample of ``X``.
    target : optional
        Output(s) to explain (class label or index, list, or ``"all"``).
    link : {"identity", "logit"}
        Output scale.
    random_state : int or None
        Seed of every random choice.
    progress : callable(done, total), optional
        Called as rows are explained.
    budget, tolerance : optional
        For sampling methods: coalitions (or samples) per row, and the standard error at
        which to stop early.
    **kwargs
        Passed to the explainer's constructor (e.g. ``groups=``, ``max_background=``).

    Returns
    -------
    Explanation
        With ``params["method_selection"]`` recording the choice.

    Notes
    -----
    ``method="auto"`` picks TreeShap for tree ensembles, LinearShap for linear models, an
    explainable boosting machine's own exact terms (``"ebm"``),
    Integrated Gradients for torch modules (Expected Gradients when ``background`` has several
    rows), ExactShap or KernelShap over image segments when ``background`` is an
    :class:`~whybox.games.image.ImageMasker`, ExactShap up to 16 players and KernelShap above.
    """
    if method == "auto":
        name, reason = resolve_method(model, X, kwargs.get("groups"), background)
    else:
        name, reason = method, "requested"
    if name == "ebm":
        if not _is_ebm(model):
            raise InvalidParameterError(
                f"method='ebm' needs a fitted whybox ExplainableBoostingClassifier or "
                f"Regressor, got {type(model).__name__}."
            )
        exp = _explain_ebm(model, X, target)
        exp.params["method_selection"] = f"{method} -> ebm: {reason}"
        return exp
    if name in _GRADIENT_METHODS:
        exp = _explain_torch(model, X, name, background, target, random_state, tolerance, kwargs)
        exp.params["method_selection"] = f"{method} -> {exp.method}: {reason}"
        return exp
    cls = get_method(name)
    explainer = cls(model, background, link=link, random_state=random_state, **kwargs)
    extra = {k: v for k, v in (("budget", budget), ("tolerance", tolerance)) if v is not None}
    exp = explainer.explain(X, target=target, progress=progress, **extra)
    exp.params["method_selection"] = f"{method} -> {name}: {reason}"
    return exp
