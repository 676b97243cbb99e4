"""ContextCite against the ``context-cite`` package (0.0.4) on the same ablation masks.

The package's own functions compute, from the tiny LM's logits on each ablated prompt, the
per-token logit-probabilities (``_compute_logit_probs``), their sequence-level
logit-probability (``aggregate_logit_probs``) and the Lasso surrogate
(``LassoRegression.fit``); whybox's :func:`~whybox.text.contextcite.context_cite` on a
:class:`~whybox.games.documents.DocumentGame` over :class:`~whybox.llm.local.LocalBackend`
with the package's masks must give the same outputs and weights.

Skipped unless the package is installed: ``pip install --no-deps context-cite==0.0.4``
(its modules are loaded by file, without the package ``__init__``; nltk and spaCy, imported
at the top of its ``utils`` but unused by these functions, are stubbed when absent).
"""

from __future__ import annotations

import importlib.util
import sys
import types
from pathlib import Path

import numpy as np
import pytest

spec = importlib.util.find_spec("context_cite")
if spec is None or not spec.submodule_search_locations:
    pytest.skip(
        "context-cite is not installed (pip install --no-deps context-cite==0.0.4)",
        allow_module_level=True,
    )
torch = pytest.importorskip("torch")
pytest.importorskip("datasets")


def _has(name: str) -> bool:
    try:
        return importlib.util.find_spec(name) is not None
    except ValueError:  # a module in sys.modules without a spec
        return True


def _load(name: str):
    """One module of the package, by file; absent nltk / spaCy stubbed while it loads."""
    folder = Path(next(iter(spec.submodule_search_locations)))
    stubs = {}
    if not _has("nltk"):
        nltk = types.ModuleType("nltk")
        nltk.download = lambda *a, **k: None
        nltk.sent_tokenize = lambda text: [text]
        stubs["nltk"] = nltk
    if not _has("spacy"):
        for mod in ("spacy", "spacy.lang", "spacy.lang.en"):
            stubs[mod] = types.ModuleType(mod)
        stubs["spacy.lang.en"].English = object
    sys.modules.update(stubs)
    try:
        s = importlib.util.spec_from_file_location(f"_cc_oracle_{name}", folder / f"{name}.py")
        mod = importlib.util.module_from_spec(s)
        s.loader.exec_module(mod)
    finally:
        for k in stubs:
            sys.modules.pop(k, None)
    return mod


DOCS = [
    "The bounds should evaluate to integers.",
    "The target is only evaluated once.",
    "It supports no special operations.",
    "The method called is __getitem__().",
    "All other values are interpreted as true.",
    "The list is in definition order.",
]
QUERY, ANSWER = "The method called is", " __getitem__()."


def test_surrogate_equals_context_cite_package():
    from whybox.games.documents import DocumentGame
    from whybox.llm.local import LocalBackend
    from whybox.text.contextcite import context_cite
    from whybox.zoo.tinylm import tiny_lm

    utils, solver = _load("utils"), _load("solver")
    model, tok = tiny_lm(seed=0)
    n = len(DOCS)
    masks = np.stack([utils._create_mask(n, 0.5, seed) for seed in range(64)])  # package's
    game = DocumentGame(
        LocalBackend(model, tok, batch_size=64), QUERY, DOCS, ANSWER,
        prompt_template="{context}\n{query}", separator="\n",
    )  # fmt: skip
    resp = tok(ANSWER, add_special_tokens=False)["input_ids"]
    T = len(resp)
    rows = []
    with torch.no_grad():
        for m in masks:
            ids = tok(game.prompt(m))["input_ids"] + resp
            logits = model(torch.tensor([ids])).logits[:, -(T + 1) : -1]
            rows.append(utils._compute_logit_probs(logits, torch.tensor([resp]))[0].numpy())
    outputs = utils.aggregate_logit_probs(np.stack(rows))  # the package's aggregation
    w_pkg, b_pkg = solver.LassoRegression().fit(masks, outputs, T)

    fit = context_cite(game, np.random.default_rng(0), masks=masks, n_output_tokens=T)
    # the package computes in float32: measured differences 3e-6 (outputs), 5e-7 (weights)
    np.testing.assert_allclose(fit.outputs, outputs, rtol=1e-5, atol=3e-5)
    np.testing.assert_allclose(fit.weights, w_pkg, rtol=1e-4, atol=1e-5)
    assert fit.bias == pytest.approx(float(b_pkg), rel=1e-4, abs=1e-5)
    assert int(np.argmax(fit.weights)) == 3  # the document with the answer
