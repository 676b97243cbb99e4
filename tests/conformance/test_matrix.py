"""The conformance matrix of issue 13: every explainer x model type x output kind.

Each applicable cell runs ``whybox.testing.check_explainer`` with every check that applies to
it (see ``checks_for``) and reports all its failures at once, one line per failed check.
Cells that do not apply are listed in ``NOT_APPLICABLE`` with the reason, and
``test_every_cell_is_run_or_not_applicable`` keeps the two lists covering the whole grid: a
cell is never skipped at run time. Checks that do not apply to a cell are likewise dropped by
``checks_for`` with the reason in a comment (no background for gradient methods, no model
call for TreeSHAP, ...).

Explainers are reached only through ``whybox``'s top-level names, so the same matrix runs
over the code before issue 13 (``PYTHONPATH=/tmp/base/src``): the failures there are the
contract's violations this issue fixes.
"""

from __future__ import annotations

import itertools
import json
import os
from typing import Any

import numpy as np
import pandas as pd
import pytest

import whybox as wb

from .conftest import N_BG, N_BG_BIG, N_EXPLAIN, N_FIT, OUTPUTS, images, model, table

AGNOSTIC = ("ExactShap", "KernelShap", "PermutationShap", "Banzhaf", "Lime")
GRADIENT = (
    "IntegratedGradients",
    "ExpectedGradients",
    "Saliency",
    "InputXGradient",
    "SmoothGrad",
    "Occlusion",
    "GradCam",
    "LRP",
)
EXPLAINERS = (*AGNOSTIC, "auto", "LinearShap", "TreeShap", *GRADIENT, "ExplainableBoosting")
TREES = ("forest", "hgb", "xgboost", "lightgbm", "catboost")
TABULAR = ("linear", *TREES, "pipeline", "torch_mlp", "callable")
MODELS = (*TABULAR, "torch_cnn", "glassbox")
TORCH = ("torch_mlp", "torch_cnn")
#: methods that satisfy efficiency / completeness (the others are not additive by design)
COMPLETE = {
    "ExactShap",
    "KernelShap",
    "PermutationShap",
    "auto",
    "LinearShap",
    "TreeShap",
    "IntegratedGradients",
    "ExpectedGradients",
    "ExplainableBoosting",
}
#: methods computed from the model's structure, never from calls to it
NO_MODEL_CALL = {"LinearShap", "TreeShap", "ExplainableBoosting"}
AUTO_NO_MODEL_CALL = {"tree", "linear", "ebm"}
AUTO_AGNOSTIC = {"exact", "kernel", "permutation", "banzhaf", "lime", "interactions"}


def not_applicable(explainer: str, model_type: str, output: str) -> str | None:
    """Why a cell of the grid does not apply, or None when it is run."""
    if model_type == "glassbox" and explainer != "ExplainableBoosting":
        return "an EBM is explained by its own exact terms (the ExplainableBoosting column)"
    if explainer == "ExplainableBoosting":
        if model_type != "glassbox":
            return "explains whybox's own explainable boosting machines only"
    if explainer == "LinearShap" and model_type != "linear":
        return "needs coef_ and intercept_ on the model itself (a pipeline's are inside it)"
    if explainer == "TreeShap" and model_type not in TREES:
        return "needs a tree ensemble"
    if explainer == "Occlusion" and model_type == "pipeline":
        return "needs numeric columns (a constant baseline cannot stand in for a string column)"
    if explainer in GRADIENT and explainer != "Occlusion" and model_type not in TORCH:
        return "needs a torch module (gradients or tensor inputs)"
    if explainer == "GradCam" and model_type != "torch_cnn":
        return "needs a convolutional layer with spatial maps"
    if explainer == "LRP" and output == "binary":
        return (
            "needs a rule for the Softmax these binary models end in (LRP refuses it, naming "
            "rules=); and class 0's relevance is not minus class 1's: LRP is not linear in "
            "the output"
        )
    return None


CELLS = [
    (e, m, o)
    for e, m, o in itertools.product(EXPLAINERS, MODELS, OUTPUTS)
    if not_applicable(e, m, o) is None
]
NOT_APPLICABLE = {
    (e, m, o): not_applicable(e, m, o)
    for e, m, o in itertools.product(EXPLAINERS, MODELS, OUTPUTS)
    if not_applicable(e, m, o) is not None
}


# ------------------------------------------------------------------------ adapters
class AutoExplain:
    """``wb.explain(model, X, method="auto", background=...)`` as an explainer object."""

    method = "auto"

    def __init__(self, model: Any, background: Any = None) -> None:
        self.model, self.background = model, background

    def explain(self, X: Any, **kwargs: Any) -> Any:
        return wb.explain(self.model, X, background=self.background, random_state=0, **kwargs)


class EbmExplain(AutoExplain):
    """``wb.explain(ebm, X, method="ebm")``: the EBM's own exact terms, on their scale: the
    log-odds for a classifier (``link="logit"``, contract 5), the prediction for a regressor."""

    method = "ebm"

    def explain(self, X: Any, **kwargs: Any) -> Any:
        link = "logit" if hasattr(self.model, "classes_") else "identity"
        return wb.explain(self.model, X, method="ebm", link=link, **kwargs)


# ---------------------------------------------------------------------- one cell
def _inputs(model_type: str, torch_inputs: bool) -> tuple[Any, Any, Any]:
    """(X explained, background, big background) of a model type."""
    if model_type == "torch_cnn":
        data = images()
    elif model_type in ("torch_mlp", "callable"):
        data = table().to_numpy(dtype=np.float32 if model_type == "torch_mlp" else float)
    else:
        data = table("mixed" if model_type == "pipeline" else "numeric")
    if torch_inputs:
        import torch

        data = torch.from_numpy(np.asarray(data))
    X = data[N_FIT - N_EXPLAIN :] if not hasattr(data, "iloc") else data.iloc[N_FIT - N_EXPLAIN :]
    take = (lambda k: data.iloc[:k]) if hasattr(data, "iloc") else (lambda k: data[:k])
    return X, take(N_BG), take(N_BG_BIG)


def _row_targets(output: str, model_type: str, torch_targets: bool) -> Any:
    """One target per row: a tensor for torch explainers (Captum's habit), a Series for the
    pipeline (indexed like its rows), a numpy array otherwise."""
    t = np.array([0, 1, 0] if output == "binary" else [2, 0, 1])
    if torch_targets:
        import torch

        return torch.from_numpy(t)
    if model_type == "pipeline":
        return pd.Series(t, index=table("mixed").index[N_FIT - N_EXPLAIN :])
    return t


def _factory(explainer: str, model_type: str, m: Any, bg: Any) -> tuple[Any, dict[str, Any]]:
    """(make_explainer(background=, model=), explain kwargs) of a cell."""
    if model_type == "torch_cnn" and explainer in (*AGNOSTIC, "auto"):
        bg = wb.ImageMasker("grid", n_segments=4, fill="baseline", value=0.0, channels="first")
    if explainer in AGNOSTIC:
        cls = getattr(wb, explainer)
        kw = {"KernelShap": {"budget": 30}, "PermutationShap": {"budget": 30}}
        kw["Lime"] = {"budget": 200}
        if model_type == "torch_cnn":
            kw = {"KernelShap": {"budget": 14}, "PermutationShap": {"budget": 18}, "Lime": {}}

        def make(background: Any = bg, model: Any = m) -> Any:
            return cls(model, background, random_state=0)

        return make, kw.get(explainer, {})
    if explainer == "auto":
        return (lambda background=bg, model=m: AutoExplain(model, background)), {}
    if explainer == "ExplainableBoosting":
        return (lambda model=m: EbmExplain(model)), {}
    if explainer in ("LinearShap", "TreeShap"):
        cls = getattr(wb, explainer)
        return (lambda background=bg, model=m: cls(model, background)), {}
    if explainer == "IntegratedGradients":
        return (lambda model=m: wb.IntegratedGradients(model)), {"steps": 32}
    if explainer == "ExpectedGradients":

        def make_eg(background: Any = bg, model: Any = m) -> Any:
            return wb.ExpectedGradients(model, background, n_samples=16, random_state=0)

        return make_eg, {}
    if explainer == "Saliency":
        return (lambda model=m: wb.Saliency(model, absolute=False)), {}
    if explainer == "InputXGradient":
        return (lambda model=m: wb.InputXGradient(model)), {}
    if explainer == "SmoothGrad":

        def make_sg(model: Any = m) -> Any:
            return wb.SmoothGrad(wb.Saliency(model, absolute=False), n_samples=8, random_state=0)

        return make_sg, {}
    if explainer == "Occlusion":
        window, stride = ((1, 3, 3), (1, 2, 2)) if model_type == "torch_cnn" else (1, 1)
        return (lambda model=m: wb.Occlusion(model, window=window, stride=stride)), {}
    if explainer == "GradCam":
        return (lambda model=m: wb.GradCam(model, layer="3", relu=False)), {}
    if explainer == "LRP":
        return (lambda model=m: wb.LRP(model, composite="epsilon_plus_flat")), {}
    raise KeyError(explainer)


def checks_for(explainer: str, model_type: str, output: str, resolved: str | None) -> list[str]:
    """The checks that apply to a cell (``resolved``: the method ``auto`` picked)."""
    checks = ["shape", "determinism", "batch", "keywords"]
    if explainer in COMPLETE:
        checks.append("completeness")
    if output == "binary":
        checks.append("binary_target")
    if output in ("binary", "multiclass"):
        checks.append("row_targets")
    if model_type not in ("torch_mlp", "torch_cnn", "callable"):
        checks.append("column_order")  # DataFrame inputs (arrays are positional)
    takes_background = explainer in (*AGNOSTIC, "auto", "LinearShap", "TreeShap")
    takes_background = takes_background or explainer == "ExpectedGradients"
    if takes_background and model_type != "torch_cnn":  # images: the ImageMasker is the bg
        checks.append("background_whole")
        agnostic = explainer in AGNOSTIC or (explainer == "auto" and resolved in AUTO_AGNOSTIC)
        if agnostic:
            checks.append("background_required")
    calls_model = explainer not in NO_MODEL_CALL
    if explainer == "auto" and resolved in AUTO_NO_MODEL_CALL:
        calls_model = False
    if calls_model:
        checks.append("nan_output")
    if model_type in TORCH:
        checks.append("model_unchanged")
    return checks


def run_cell(checker: Any, explainer: str, model_type: str, output: str) -> Any:
    m = model(model_type, output)
    if model_type in TORCH:  # as built, whatever an earlier (failing) cell left behind
        m.train(model_type == "torch_cnn")
    torch_inputs = explainer in GRADIENT and model_type in TORCH
    X, bg, bg_big = _inputs(model_type, torch_inputs)
    make, explain_kwargs = _factory(explainer, model_type, m, bg)
    resolved = None
    if explainer == "auto":  # which method auto picks decides which checks apply
        resolved = make().explain(X, **explain_kwargs).method
    checks = checks_for(explainer, model_type, output, resolved)
    approximate = explainer in ("IntegratedGradients", "ExpectedGradients") or (
        explainer == "auto" and resolved in ("integrated_gradients", "expected_gradients")
    )
    float32 = model_type in (*TORCH, "xgboost")  # outputs rounded to float32
    return checker.check_explainer(
        make,
        X,
        explain_kwargs=explain_kwargs,
        checks=checks,
        efficiency_atol=1e-8,
        # exact methods: rounding of float32 models; IG/EG: the contract's warning threshold
        efficiency_rtol=0.01 if approximate else 1e-6,
        rtol=1e-4 if float32 else 1e-6,
        atol=1e-5 if float32 else 1e-8,
        row_targets=_row_targets(output, model_type, torch_inputs)
        if output != "regression"
        else None,
        background=bg_big,
        model=m,
        shap_spellings={
            "KernelShap": {"nsamples": "budget"},
            "PermutationShap": {"max_evals": "budget"},
            "TreeShap": {"check_additivity": None},
        }.get(explainer),
        collect_failures=True,
    )


@pytest.mark.parametrize(
    ("explainer", "model_type", "output"),
    CELLS,
    ids=[f"{e}-{m}-{o}" for e, m, o in CELLS],
)
def test_cell(checker, explainer, model_type, output):
    try:
        run_cell(checker, explainer, model_type, output)
    except Exception as e:
        _log(f"{explainer}-{model_type}-{output}", e)
        raise


def _log(cell: str, e: Exception) -> None:
    """With WHYBOX_CONFORMANCE_LOG=path, append the cell's failures (one JSON line) there,
    for the before/after summaries of issue 13."""
    path = os.environ.get("WHYBOX_CONFORMANCE_LOG")
    if not path:
        return
    if isinstance(e, AssertionError):
        lines = str(e).splitlines()
    else:
        lines = [f"explain: raised {type(e).__name__}: {' '.join(str(e).split())[:300]}"]
    with open(path, "a", encoding="utf-8") as f:
        f.write(json.dumps({"cell": cell, "failures": lines}) + "\n")


def test_every_cell_is_run_or_not_applicable():
    grid = set(itertools.product(EXPLAINERS, MODELS, OUTPUTS))
    assert set(CELLS) | set(NOT_APPLICABLE) == grid
    assert not set(CELLS) & set(NOT_APPLICABLE)
    assert all(isinstance(r, str) and r for r in NOT_APPLICABLE.values())
    # every explainer and every model type is exercised somewhere
    assert {e for e, _, _ in CELLS} == set(EXPLAINERS)
    assert {m for _, m, _ in CELLS} == set(MODELS)


def test_every_check_runs_somewhere(checker):
    used = set()
    for e, m, o in CELLS:
        used.update(checks_for(e, m, o, resolved="exact" if e == "auto" else None))
    assert used == set(checker.ALL_CHECKS)


#: not-applicable cells whose reason is a requirement the explainer checks itself: explaining
#: them must be refused with a WhyboxError (never a raw error, never a silent result)
REFUSED = [
    cell
    for cell, reason in NOT_APPLICABLE.items()
    if reason.startswith("needs") or reason.startswith("explains whybox's own")
]


@pytest.mark.parametrize(
    ("explainer", "model_type", "output"),
    REFUSED,
    ids=[f"{e}-{m}-{o}" for e, m, o in REFUSED],
)
def test_not_applicable_cell_is_refused(explainer, model_type, output):
    m = model(model_type, output)
    X, bg, _ = _inputs(model_type, torch_inputs=False)
    make, explain_kwargs = _factory(explainer, model_type, m, bg)
    with pytest.raises(wb.WhyboxError):
        make().explain(X, **explain_kwargs)
