"""whybox: why did the model do that?

One library and one result type (:class:`Explanation`) for explaining any model. The public
names below are imported lazily, so ``import whybox`` stays light: it never imports torch,
transformers or dask.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

__version__ = "0.1.0"

_LAZY = {
    "Explanation": "whybox.explanation",
    "load": "whybox.explanation",
    "explain": "whybox.api",
    "available_methods": "whybox.api",
    "register_method": "whybox.api",
    "ExactShap": "whybox.agnostic.shapley",
    "PermutationShap": "whybox.agnostic.shapley",
    "KernelShap": "whybox.agnostic.kernel",
    "LinearShap": "whybox.linear.shap",
    "Lime": "whybox.agnostic.lime",
    "SubmodularPick": "whybox.agnostic.lime",
    "TreeShap": "whybox.trees.treeshap",
    "Banzhaf": "whybox.agnostic.banzhaf",
    "ShapleyInteractions": "whybox.agnostic.interactions",
    "Independent": "whybox.games.maskers",
    "Baseline": "whybox.games.maskers",
    "kmeans": "whybox.games.maskers",
    "TabularGame": "whybox.games.game",
    "ImageGame": "whybox.games.image",
    "ImageMasker": "whybox.games.image",
    "segment": "whybox.games.image",
    "Occlusion": "whybox.agnostic.occlusion",
    "wrap_model": "whybox.models",
    "evaluate": "whybox.metrics",
    "report": "whybox.report",  # the callable module, see whybox/report/__init__.py
    "reason_codes": "whybox.recourse.reasons",
    "partial_dependence": "whybox.inspection.partial_dependence",
    "ale": "whybox.inspection.ale",
    "permutation_importance": "whybox.inspection.importance",
    "global_importance": "whybox.inspection.importance",
    "Counterfactuals": "whybox.recourse.counterfactuals",
    "WhyboxError": "whybox.errors",
    "InvalidInputError": "whybox.errors",
    "InvalidParameterError": "whybox.errors",
    "UnsupportedModelError": "whybox.errors",
    "MissingDependencyError": "whybox.errors",
    "ModelCallError": "whybox.errors",
    "ExplainableBoostingClassifier": "whybox.glassbox.gam",
    "ExplainableBoostingRegressor": "whybox.glassbox.gam",
    "Saliency": "whybox.gradients.saliency",
    "InputXGradient": "whybox.gradients.saliency",
    "SmoothGrad": "whybox.gradients.saliency",
    "VarGrad": "whybox.gradients.saliency",
    "IntegratedGradients": "whybox.gradients.integrated",
    "ExpectedGradients": "whybox.gradients.integrated",
    "GradCam": "whybox.gradients.cam",
    "GradCamPlusPlus": "whybox.gradients.cam",
    "GuidedGradCam": "whybox.gradients.cam",
    "GuidedBackprop": "whybox.gradients.cam",
    # model internals of transformers (torch; imported on first use)
    "Anatomy": "whybox.internals.anatomy",
    "run_with_cache": "whybox.internals.cache",
    "ActivationCache": "whybox.internals.cache",
    "logit_lens": "whybox.internals.lens",
    "direct_logit_attribution": "whybox.internals.lens",
    "TunedLens": "whybox.internals.tuned_lens",
    "activation_patching": "whybox.internals.patching",
    "attribution_patching": "whybox.internals.patching",
    "path_patching": "whybox.internals.patching",
    "Probe": "whybox.internals.probing",
    "SteeringVector": "whybox.internals.steering",
    # attribution for transformers and text (torch; imported on first use)
    "AttentionRollout": "whybox.propagation.rollout",
    "AttentionFlow": "whybox.propagation.rollout",
    "RawAttention": "whybox.propagation.rollout",
    "CheferRelevance": "whybox.propagation.chefer",
    "CheferLRP": "whybox.propagation.chefer_lrp",
    "LRP": "whybox.propagation.lrp",
    "AttnLRP": "whybox.propagation.attnlrp",
    "TokenShap": "whybox.text.tokenshap",
    "RagAttribution": "whybox.text.rag",
    "describe": "whybox.llm.describe",
    "explain_generation": "whybox.text.generation",
}
_SUBMODULES = {
    "zoo",
    "viz",
    "games",
    "models",
    "errors",
    "testing",
    "trees",
    "inspection",
    "recourse",
    "linear",
    "glassbox",
    "metrics",
    "internals",
    "gradients",
    "sae",
    "llm",
}

__all__ = [
    "LRP",
    "ActivationCache",
    "Anatomy",
    "AttentionFlow",
    "AttentionRollout",
    "AttnLRP",
    "Banzhaf",
    "Baseline",
    "CheferLRP",
    "CheferRelevance",
    "Counterfactuals",
    "ExactShap",
    "ExpectedGradients",
    "ExplainableBoostingClassifier",
    "ExplainableBoostingRegressor",
    "Explanation",
    "GradCam",
    "GradCamPlusPlus",
    "GuidedBackprop",
    "GuidedGradCam",
    "ImageGame",
    "ImageMasker",
    "Independent",
    "InputXGradient",
    "IntegratedGradients",
    "InvalidInputError",
    "InvalidParameterError",
    "KernelShap",
    "Lime",
    "LinearShap",
    "MissingDependencyError",
    "ModelCallError",
    "Occlusion",
    "PermutationShap",
    "Probe",
    "RagAttribution",
    "RawAttention",
    "Saliency",
    "ShapleyInteractions",
    "SmoothGrad",
    "SteeringVector",
    "SubmodularPick",
    "TabularGame",
    "TokenShap",
    "TreeShap",
    "TunedLens",
    "UnsupportedModelError",
    "VarGrad",
    "WhyboxError",
    "__version__",
    "activation_patching",
    "ale",
    "attribution_patching",
    "available_methods",
    "describe",
    "direct_logit_attribution",
    "evaluate",
    "explain",
    "explain_generation",
    "global_importance",
    "kmeans",
    "load",
    "logit_lens",
    "partial_dependence",
    "path_patching",
    "permutation_importance",
    "reason_codes",
    "register_method",
    "report",
    "run_with_cache",
    "segment",
    "wrap_model",
]

if TYPE_CHECKING:  # pragma: no cover
    from .agnostic.banzhaf import Banzhaf
    from .agnostic.interactions import ShapleyInteractions
    from .agnostic.kernel import KernelShap
    from .agnostic.lime import Lime, SubmodularPick
    from .agnostic.occlusion import Occlusion
    from .agnostic.shapley import ExactShap, PermutationShap
    from .api import available_methods, explain, register_method
    from .errors import (
        InvalidInputError,
        InvalidParameterError,
        MissingDependencyError,
        ModelCallError,
        UnsupportedModelError,
        WhyboxError,
    )
    from .explanation import Explanation, load
    from .games.game import TabularGame
    from .games.image import ImageGame, ImageMasker, segment
    from .games.maskers import Baseline, Independent, kmeans
    from .glassbox.gam import ExplainableBoostingClassifier, ExplainableBoostingRegressor
    from .gradients.cam import GradCam, GradCamPlusPlus, GuidedBackprop, GuidedGradCam
    from .gradients.integrated import ExpectedGradients, IntegratedGradients
    from .gradients.saliency import InputXGradient, Saliency, SmoothGrad, VarGrad
    from .inspection.ale import ale
    from .inspection.importance import global_importance, permutation_importance
    from .inspection.partial_dependence import partial_dependence
    from .internals.anatomy import Anatomy
    from .internals.cache import ActivationCache, run_with_cache
    from .internals.lens import direct_logit_attribution, logit_lens
    from .internals.patching import activation_patching, attribution_patching, path_patching
    from .internals.probing import Probe
    from .internals.steering import SteeringVector
    from .internals.tuned_lens import TunedLens
    from .linear.shap import LinearShap
    from .llm.describe import describe
    from .metrics import evaluate
    from .models import wrap_model
    from .propagation.attnlrp import AttnLRP
    from .propagation.chefer import CheferRelevance
    from .propagation.chefer_lrp import CheferLRP
    from .propagation.lrp import LRP
    from .propagation.rollout import AttentionFlow, AttentionRollout, RawAttention
    from .recourse.counterfactuals import Counterfactuals
    from .recourse.reasons import reason_codes
    from .report import report
    from .text.generation import explain_generation
    from .text.rag import RagAttribution
    from .text.tokenshap import TokenShap
    from .trees.treeshap import TreeShap


def __getattr__(name: str) -> Any:
    if name == "report":
        value = importlib.import_module("whybox.report")  # a callable module
        globals()[name] = value
        return value
    if name in _LAZY:
        value = getattr(importlib.import_module(_LAZY[name]), name)
        globals()[name] = value
        return value
    if name in _SUBMODULES:
        module = importlib.import_module(f"whybox.{name}")
        globals()[name] = module
        return module
    raise AttributeError(f"module 'whybox' has no attribute {name!r}")


def __dir__() -> list[str]:
    return sorted([*__all__, *_SUBMODULES])
