"""RAG attribution with a real language model: the project's tiny GPT-2 (trained on pydoc
text) over LocalBackend, pydoc sentences as documents, one of which holds the answer."""

from __future__ import annotations

import numpy as np
import pytest

pytest.importorskip("torch")

from whybox.games.documents import DocumentGame
from whybox.text.rag import RagAttribution

# short sentences of the tiny LM's own corpus (pydoc_data.topics); document 3 has the answer
DOCS = [
    "The bounds should evaluate to integers.",
    "The target is only evaluated once.",
    "It supports no special operations.",
    "The method called is __getitem__().",
    "All other values are interpreted as true.",
    "The debugger supports aliases.",
    "The list is in definition order.",
]
QUERY, ANSWER = "The method called is", " __getitem__()."
# a completion prompt: the tiny LM is a base model, the answer continues the query
TEMPLATE, SEP = "{context}\n{query}", "\n"


@pytest.fixture(scope="module")
def backend():
    from whybox.llm.local import LocalBackend
    from whybox.zoo.tinylm import tiny_lm

    model, tok = tiny_lm(seed=0)
    return LocalBackend(model, tok, batch_size=64)


def _brute_force_shapley(game: DocumentGame) -> np.ndarray:
    from itertools import product
    from math import factorial

    n = game.n_players
    C = np.array(list(product((0, 1), repeat=n)), dtype=bool)
    v = dict(zip(map(tuple, C.astype(int)), game.value(C)[:, 0], strict=True))
    phi = np.zeros(n)
    for S, vs in v.items():
        s = sum(S)
        for j in np.flatnonzero(np.array(S) == 0):
            T = list(S)
            T[j] = 1
            phi[j] += factorial(s) * factorial(n - s - 1) / factorial(n) * (v[tuple(T)] - vs)
    return phi


def test_exact_shapley_ranks_the_answer_document_first(backend):
    rag = RagAttribution(backend, prompt_template=TEMPLATE, separator=SEP, random_state=0)
    e = rag.explain(QUERY, DOCS, ANSWER, method="exact")
    game = rag.game(QUERY, DOCS, ANSWER)
    np.testing.assert_allclose(e.values[0], _brute_force_shapley(game), atol=1e-9)
    order = np.argsort(-e.values[0])
    assert order[0] == 3
    assert e.values[0][3] > e.values[0][order[1]] + 0.2  # a clear margin (measured 0.6)
    # the log-probabilities come from the model: with document 3 the answer is likelier
    full, without = game.value(np.array([np.ones(7, bool), np.arange(7) != 3]))[:, 0]
    assert full > without
    assert e.params["calls"] == 2**7


def test_sampling_methods_on_the_real_model(backend):
    rag = RagAttribution(
        backend, prompt_template=TEMPLATE, separator=SEP, random_state=0, holdout=24
    )
    exact = rag.explain(QUERY, DOCS, ANSWER, method="exact").values[0]
    k = rag.explain(QUERY, DOCS, ANSWER, method="kernel", budget=64)
    assert np.all(np.abs(k.values[0] - exact) <= 4 * k.std[0] + 1e-9)
    c = rag.explain(QUERY, DOCS, ANSWER, method="contextcite", budget=48)
    assert int(np.argmax(c.values[0])) == 3
    assert c.params["lds"] is not None and c.params["lds"] > 0.3
    assert c.params["calls"] <= 48 + 24


def test_generated_answer_and_similarity_value(backend):
    rag = RagAttribution(backend, prompt_template=TEMPLATE, separator=SEP, max_new_tokens=6)
    e = rag.explain(QUERY, DOCS[:4], None, method="leave_one_out")
    assert e.meta["answer_generated"] == [True] and isinstance(e.meta["answer"][0], str)
    assert e.params["calls"] == 1 + 4 + 1 + 1  # generation, full, 4 leave-one-out, empty
    sim = RagAttribution(
        backend, prompt_template=TEMPLATE, separator=SEP, value="similarity", max_new_tokens=6
    )
    s = sim.explain(QUERY, DOCS[:4], None, method="exact")
    assert np.isfinite(s.values[0]).all()
    assert s.predictions[0] == pytest.approx(1.0)  # the full context regenerates the answer


def test_sentence_sources_on_the_real_model(backend):
    docs = ["The list is in definition order. The method called is __getitem__().", DOCS[0]]
    rag = RagAttribution(backend, prompt_template=TEMPLATE, separator=SEP, granularity="sentence")
    e = rag.explain(QUERY, docs, ANSWER, method="exact")
    assert e.meta["source_document"] == [[0, 0, 1]]
    assert int(np.argmax(e.values[0])) == 1


def test_a_model_and_tokenizer_become_a_local_backend():
    from whybox.llm.local import LocalBackend
    from whybox.zoo.tinylm import tiny_lm

    model, tok = tiny_lm(seed=0)
    rag = RagAttribution(model, tokenizer=tok, prompt_template=TEMPLATE, separator=SEP)
    assert isinstance(rag.backend, LocalBackend)
    e = rag.explain(QUERY, DOCS[:3], ANSWER, method="leave_one_out")
    assert e.params["backend_calls"] == e.params["calls"] == 3 + 2
