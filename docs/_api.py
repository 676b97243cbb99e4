"""Writes the API reference pages from ``whybox.__all__`` and the subpackages' ``__all__``.

Called by ``conf.py`` at every build. Every name in ``whybox.__all__`` must be placed in one of
the sections of :data:`TOP_LEVEL`; a public name that is in none of them stops the build with
a message naming it (so the reference can never silently miss a name).
"""

from __future__ import annotations

import importlib
from pathlib import Path

import whybox

# The top-level names, by family: (section title, one-line description, names).
TOP_LEVEL: list[tuple[str, str, list[str]]] = [
    (
        "The result and the entry point",
        "One result type for every method, and the function that picks a method for you.",
        ["Explanation", "load", "explain", "available_methods", "register_method", "wrap_model"],
    ),
    (
        "Shapley values and the game engine",
        "Model-agnostic attributions over coalitions of features (players).",
        [
            "ExactShap",
            "PermutationShap",
            "KernelShap",
            "Banzhaf",
            "ShapleyInteractions",
            "TabularGame",
            "Independent",
            "Baseline",
            "kmeans",
        ],
    ),
    ("Trees and linear models", "Exact, model-specific SHAP.", ["TreeShap", "LinearShap"]),
    (
        "LIME and occlusion",
        "Local surrogates and perturbation.",
        ["Lime", "SubmodularPick", "Occlusion"],
    ),
    (
        "Images",
        "Image segments as players of any Shapley or LIME explainer.",
        ["ImageGame", "ImageMasker", "segment"],
    ),
    (
        "Effects and importance",
        "Global views of a model: partial dependence, ALE, importance.",
        ["partial_dependence", "ale", "permutation_importance", "global_importance"],
    ),
    (
        "Recourse and reason codes",
        "What would have to change, and the principal reasons in words.",
        ["Counterfactuals", "reason_codes"],
    ),
    (
        "Glass-box models",
        "Models that are their own explanation.",
        ["ExplainableBoostingClassifier", "ExplainableBoostingRegressor"],
    ),
    (
        "Gradients and class-activation maps",
        "Attributions of torch models from their gradients.",
        [
            "Saliency",
            "InputXGradient",
            "SmoothGrad",
            "VarGrad",
            "IntegratedGradients",
            "ExpectedGradients",
            "GradCam",
            "GradCamPlusPlus",
            "GuidedGradCam",
            "GuidedBackprop",
        ],
    ),
    (
        "Transformers: propagation and attention",
        "Relevance propagated through a transformer.",
        [
            "LRP",
            "AttnLRP",
            "CheferRelevance",
            "CheferLRP",
            "AttentionRollout",
            "AttentionFlow",
            "RawAttention",
        ],
    ),
    (
        "Text and LLM attribution",
        "Which tokens, sentences or retrieved sources drove a text model's output.",
        ["TokenShap", "RagAttribution", "explain_generation", "describe"],
    ),
    (
        "Model internals",
        "Activations, lenses, patching, probes and steering of transformers.",
        [
            "Anatomy",
            "run_with_cache",
            "ActivationCache",
            "logit_lens",
            "direct_logit_attribution",
            "TunedLens",
            "activation_patching",
            "attribution_patching",
            "path_patching",
            "Probe",
            "SteeringVector",
        ],
    ),
    (
        "Quality and reports",
        "How good is an explanation, and a page a reviewer can read.",
        ["evaluate", "report"],
    ),
    (
        "Errors",
        "Every error whybox raises is a subclass of WhyboxError.",
        [
            "WhyboxError",
            "InvalidInputError",
            "InvalidParameterError",
            "UnsupportedModelError",
            "MissingDependencyError",
            "ModelCallError",
        ],
    ),
]

# Public subpackages whose own ``__all__`` is documented on a page of its own (the names they
# share with ``whybox.__all__`` are documented once, at the top level).
SUBPACKAGES = ["zoo", "sae", "metrics", "viz", "llm", "testing"]


def _is_class(obj: object) -> bool:
    return isinstance(obj, type)


def _autosummary(module: str, names: list[str]) -> list[str]:
    lines = [f".. currentmodule:: {module}", "", ".. autosummary::", "   :toctree: generated/"]
    lines.append("   :nosignatures:")
    lines.append("")
    lines += [f"   {name}" for name in names]
    return [*lines, ""]


INDEX_HEAD = """API reference
=============

Generated from the numpy-style docstrings of every name in ``whybox.__all__`` (this page) and of
the public subpackages (below). ``import whybox as wb`` is light: the names are imported on first
use, so ``wb.TreeShap`` does not import torch and ``wb.IntegratedGradients`` does.

.. toctree::
   :maxdepth: 1
   :caption: Subpackages

"""

SUB_BLURB = {
    "zoo": "Small reproducible data sets and trained toy models (cached as safetensors, no pickle).",
    "sae": "Sparse autoencoders: training, evaluation, feature browsing and steering.",
    "metrics": "The quality of an explanation: faithfulness, robustness, sanity checks, agreement.",
    "viz": "Plots of explanations (also reachable as ``exp.plot``).",
    "llm": "Clients of language models, used by autointerp and :func:`whybox.describe`.",
    "testing": "Checks for authors of new explainers.",
}


def write_api_pages(out: Path) -> None:
    """Write ``api/index.rst`` (the top level) and ``api/<subpackage>.rst`` (generated files)."""
    placed = [n for _, _, names in TOP_LEVEL for n in names]
    public = [n for n in whybox.__all__ if n != "__version__"]
    missing = sorted(set(public) - set(placed))
    unknown = sorted(set(placed) - set(public))
    if missing or unknown:
        raise RuntimeError(
            "docs/_api.py: the API reference's sections do not match whybox.__all__: "
            f"not placed in a section: {missing}; placed but not public: {unknown}. "
            "Add each name to one section of TOP_LEVEL in docs/_api.py."
        )
    out.mkdir(parents=True, exist_ok=True)
    lines = [INDEX_HEAD.rstrip("\n"), ""]
    lines += [f"   {sub}" for sub in SUBPACKAGES]
    lines.append("")
    for title, blurb, names in TOP_LEVEL:
        lines += [title, "-" * len(title), "", blurb, ""]
        lines += _autosummary("whybox", names)
    _write(out / "index.rst", lines)
    for sub in SUBPACKAGES:
        mod = importlib.import_module(f"whybox.{sub}")
        names = [
            n
            for n in getattr(mod, "__all__", [])
            if n not in whybox.__all__ or getattr(mod, n) is not getattr(whybox, n)
        ]
        names = [n for n in names if callable(getattr(mod, n)) or _is_class(getattr(mod, n))]
        title = f"``whybox.{sub}``"
        head = [
            title,
            "=" * len(title),
            "",
            SUB_BLURB[sub],
            "",
            f".. automodule:: whybox.{sub}",
            "   :no-members:",
            "",
        ]
        _write(out / f"{sub}.rst", head + _autosummary(f"whybox.{sub}", names))


def _write(path: Path, lines: list[str]) -> None:
    text = "\n".join(lines)
    if not path.exists() or path.read_text() != text:  # keep mtimes: incremental rebuilds
        path.write_text(text)
